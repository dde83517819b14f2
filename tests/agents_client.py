"""Run by tests in a subprocess: openai-agents' realtime runner (a real client library) through
the gateway: an agent with a function tool, asked a question that calls it; the SDK runs the
tool, sends its output and asks for the reply.

Usage: python agents_client.py URL KEY  → one JSON line with what happened.
"""

import asyncio
import json
import sys

from agents import function_tool
from agents.realtime import RealtimeAgent, RealtimeRunner


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


async def main(url: str, key: str) -> None:
    agent = RealtimeAgent(name="weather", instructions="Answer with the weather tool.", tools=[get_weather])
    runner = RealtimeRunner(agent, config={"model_settings": {"model_name": "gpt-realtime",
                                                              "output_modalities": ["text"]}})
    session = await runner.run(model_config={"api_key": key, "url": url})
    tools, errors, replies = [], [], []
    async with session:
        await session.send_message("What is the weather in Paris? use get_weather")
        ends = 0
        async for event in session:
            if event.type == "tool_end":
                tools.append({"name": event.tool.name, "output": event.output})
            elif event.type == "error":
                errors.append(str(event.error))
                break
            elif event.type == "raw_model_event" and event.data.type == "raw_server_event" \
                    and event.data.data.get("type") == "response.done":
                ends += 1
                for item in event.data.data["response"].get("output") or []:
                    for part in item.get("content") or []:
                        if part.get("text"):
                            replies.append(part["text"])
                if ends == 2:  # the tool call, then the reply that uses its output
                    break
    print(json.dumps({"tools": tools, "replies": replies, "errors": errors}))


asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 30))
