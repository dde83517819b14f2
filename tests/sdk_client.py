"""Run by tests in a subprocess: the official openai SDK (asyncio) doing one text turn.

Usage: python sdk_client.py PORT KEY ga|beta|azure  → prints one JSON line with what happened.
(azure: AsyncAzureOpenAI in its GA mode, on /openai/realtime with a GA api-version.)
"""

import asyncio
import json
import sys

from openai import AsyncAzureOpenAI, AsyncOpenAI


async def main(port: int, key: str, dialect: str) -> None:
    client = AsyncOpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1",
                         websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    if dialect == "azure":
        client = AsyncAzureOpenAI(api_key=key, api_version="2025-08-28", azure_endpoint=f"http://127.0.0.1:{port}",
                                  websocket_base_url=f"ws://127.0.0.1:{port}/openai")
    if dialect == "beta":
        connect = client.beta.realtime.connect(model="gpt-realtime")
        session = {"modalities": ["text"]}
        delta_type = "response.text.delta"
    else:
        connect = client.realtime.connect(model="gpt-realtime")
        session = {"type": "realtime", "output_modalities": ["text"]}
        delta_type = "response.output_text.delta"
    types, text = [], []
    async with connect as conn:
        await conn.session.update(session=session)
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hi"}]})
        await conn.response.create()
        async for event in conn:
            types.append(event.type)
            if event.type == delta_type:
                text.append(event.delta)
            if event.type in ("response.done", "error"):
                break
    print(json.dumps({"types": types, "text": "".join(text)}))


asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
