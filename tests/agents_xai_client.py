"""Run by tests in a subprocess: openai-agents' realtime runner (a real client library) through an
xAI-backed model (the gateway normalizes xAI's events). The SDK validates every server event it
receives against its own types; an event it rejects, and any server ``error``, comes to the
session as an ``error`` event: collected here (the run stops at the first). Prints one JSON line.

Usage: python agents_xai_client.py URL KEY MODEL MODE
  text   a typed question, a text answer
  tool   a typed question that calls the agent's function tool: the SDK runs it, sends its
         output and asks for the answer
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


class Failed(Exception):
    """The session got an error event."""


async def main(url: str, key: str, model: str, mode: str) -> None:
    agent = RealtimeAgent(name="weather", instructions="Answer with the weather tool.",
                          tools=[get_weather] if mode == "tool" else [])
    runner = RealtimeRunner(agent, config={"model_settings": {"model_name": model, "output_modalities": ["text"]}})
    session = await runner.run(model_config={"api_key": key, "url": url})
    out: dict = {"status": [], "replies": [], "types": [], "errors": [], "tools": []}
    async with session:
        events = aiter(session)

        async def until(*types: str) -> list[dict]:
            waiting, seen = set(types), []
            while waiting:
                event = await anext(events)
                if event.type == "error":
                    out["errors"].append(str(event.error)[:1000])
                    raise Failed
                if event.type == "tool_end":
                    out["tools"].append({"name": event.tool.name, "output": event.output})
                if event.type == "raw_model_event" and event.data.type == "raw_server_event":
                    raw = event.data.data
                    out["types"].append(raw.get("type"))
                    seen.append(raw)
                    waiting.discard(raw.get("type"))
            return seen

        try:
            await until("session.updated")
            question = "What is the weather in Paris? use get_weather" if mode == "tool" else "Say hi"
            await session.send_message(question)
            for _ in range(2 if mode == "tool" else 1):  # the tool call, then the answer using its output
                seen = await until("response.done")
                done = [e for e in seen if e["type"] == "response.done"][-1]["response"]
                out["status"].append(done["status"])
                out["replies"].append("".join(e["delta"] for e in seen if e["type"] == "response.output_text.delta"))
        except Failed:
            pass
    print(json.dumps(out))


asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]), 60))
