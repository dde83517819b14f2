"""Run by tests in a subprocess: livekit-agents' OpenAI realtime plugin as a standalone realtime
session (no room) through the gateway: a text turn, then a tool turn.

Usage: python livekit_client.py PORT KEY openai|azure-preview|azure-v1  → one JSON line.
"""

import asyncio
import json
import sys

import aiohttp
from livekit.agents import llm
from livekit.plugins.openai.realtime import RealtimeModel


@llm.function_tool
async def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def make_model(port: int, key: str, mode: str, http: aiohttp.ClientSession) -> RealtimeModel:
    if mode == "openai":
        return RealtimeModel(model="gpt-realtime", api_key=key, base_url=f"http://127.0.0.1:{port}/v1",
                             http_session=http, modalities=["text"])
    extra = {"api_version": "2025-04-01-preview"} if mode == "azure-preview" else {}
    return RealtimeModel.with_azure(azure_deployment="gpt-realtime", base_url=f"http://127.0.0.1:{port}/openai",
                                    api_key=key, http_session=http, modalities=["text"], **extra)


async def reply_text(generation: llm.GenerationCreatedEvent) -> str:
    parts = []
    async for message in generation.message_stream:
        async for chunk in message.text_stream:
            parts.append(chunk)
    return "".join(parts)


async def main(port: int, key: str, mode: str) -> None:
    async with aiohttp.ClientSession() as http:
        model = make_model(port, key, mode, http)
        session = model.session()
        errors: list[str] = []
        session.on("error", lambda e: errors.append(str(e.error)))
        try:
            ctx = session.chat_ctx.copy()
            ctx.add_message(role="user", content="Say hi")
            await session.update_chat_ctx(ctx)
            generation = await asyncio.wait_for(session.generate_reply(), 15)
            text = await asyncio.wait_for(reply_text(generation), 15)

            await session.update_tools([get_weather])
            ctx = session.chat_ctx.copy()
            ctx.add_message(role="user", content="What is the weather in Paris? use get_weather")
            await session.update_chat_ctx(ctx)
            generation = await asyncio.wait_for(session.generate_reply(), 15)
            calls = []

            async def collect() -> None:
                async for call in generation.function_stream:
                    calls.append({"name": call.name, "arguments": json.loads(call.arguments)})
                await reply_text(generation)

            await asyncio.wait_for(collect(), 15)
        finally:
            await session.aclose()
            await model.aclose()
    print(json.dumps({"text": text, "calls": calls, "errors": errors}))


asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
