"""Run by tests in a subprocess: the official openai SDK's ``client.live.connect()`` (asyncio)
through the gateway. Prints one JSON line with what the client saw.

Usage: python sdk_live_client.py PORT KEY MODE [MODEL]
  voice      client delegation: a spoken turn, the delegation answered with commentary, close
  delegated  Responses delegation: a typed turn, a tool round trip, close
"""

import asyncio
import json
import sys
from pathlib import Path

from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_fixtures import append_events, utterance

TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


async def until(conn, *types, seen):
    async for event in conn:
        seen.append(event.type)
        if event.type == "error":  # what the gateway (or the model) refused, and how the socket closed
            code = None
            try:
                async for _ in conn:
                    pass
            except Exception as exc:  # the websockets ConnectionClosed the 4xxx close raises
                code = getattr(getattr(exc, "rcvd", None), "code", None)
            print(json.dumps({"error": event.error.model_dump(), "close_code": code, "types": seen}))
            sys.exit(3)
        if event.type in types:
            return event
    return None


async def voice(conn, out, seen):
    await conn.session.start(session={"model": out["model"], "instructions": "Be brief.",
                                      "audio": {"format": {"type": "audio/pcm", "rate": 24000}}})
    out["session_id"] = (await until(conn, "session.started", seen=seen)).session.id
    for append in append_events(utterance(speech_ms=900)):
        await conn.session.input_audio.append(audio=append["audio"])
    delegation = await until(conn, "session.delegation.created", seen=seen)
    await conn.session.commentary.append(content="It is sunny in Paris.", delegation_id=delegation.delegation.id)
    await until(conn, "session.commentary.appended", seen=seen)


async def delegated(conn, out, seen):
    await conn.session.start(session={"model": out["model"], "delegation": {
        "type": "responses", "responses": {"model": "gpt-5.6-luna", "tools": TOOLS}}})
    out["session_id"] = (await until(conn, "session.started", seen=seen)).session.id
    out["responses"] = []
    await conn.response.item.create(item={"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "What is the weather in Paris? use get_weather"}]})
    await conn.response.create()
    calls = []
    while True:
        event = await until(conn, "response.event", seen=seen)
        inner = event.event
        if inner["type"] == "response.output_item.done" and inner["item"]["type"] == "function_call":
            calls.append(inner["item"])
        if inner["type"] == "response.completed":
            out["responses"].append({"id": inner["response"]["id"], "usage": inner["response"]["usage"]})
            break
    out["calls"] = [{"call_id": c["call_id"], "name": c["name"], "arguments": json.loads(c["arguments"])}
                    for c in calls]
    await conn.response.item.create(item={"type": "function_call_output", "call_id": calls[0]["call_id"],
                                          "output": '{"temp_c": 18}'})
    await conn.response.create()
    while True:
        event = await until(conn, "response.event", seen=seen)
        if event.event["type"] == "response.completed":
            out["responses"].append({"id": event.event["response"]["id"], "usage": event.event["response"]["usage"]})
            break


async def main(port: int, key: str, mode: str, model: str) -> None:
    client = AsyncOpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1",
                         websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    out = {"model": model}
    seen = []
    async with client.live.connect() as conn:
        await {"voice": voice, "delegated": delegated}[mode](conn, out, seen)
        # let a usage update or two arrive, then close and read the final seconds
        await asyncio.sleep(0.3)
        await conn.session.close()
        closed = await until(conn, "session.closed", seen=seen)
        out["closed"] = {"reason": closed.reason, "seconds": closed.usage.seconds} if closed else None
    out["types"] = seen
    print(json.dumps(out))


asyncio.run(asyncio.wait_for(main(int(sys.argv[1]), sys.argv[2], sys.argv[3],
                                  sys.argv[4] if len(sys.argv) > 4 else "gpt-live-1"), 45))
