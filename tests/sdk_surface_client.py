"""Run by tests in a subprocess: the official openai SDK (asyncio) using the rest of the
Realtime surface through the gateway. Prints one JSON line with what happened.

Usage: python sdk_surface_client.py PORT KEY MODE
  transcription  a GA transcription session (intent=transcription): one spoken turn
  mcp            an MCP tool: listed, approval requested, approved, called
  image          an image part and a question about it
  spoken         a spoken question ("What is the weather in Paris?") calls the session's tool
"""

import asyncio
import json
import sys
from pathlib import Path

from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_fixtures import append_events, said

MCP_TOOL = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example/sse?token=s3cret",
            "authorization": "Bearer s3cret", "headers": {"X-Api-Key": "s3cret"}}
IMAGE = "data:image/png;base64," + "iVBORw0KGgo" * 40


async def until(conn, *types):
    seen = []
    async for event in conn:
        seen.append(event)
        if event.type in types or event.type == "error":
            return seen
    return seen


async def transcription(client):
    out = {}
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        created = await until(conn, "session.created")
        out["created_type"] = created[-1].session.type
        await conn.session.update(session={"type": "transcription", "audio": {"input": {
            "transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": {"type": "server_vad"}}}})
        await until(conn, "session.updated")
        for append in append_events(said("What is the weather in Paris?")):
            await conn.send(append)
        done = await until(conn, "conversation.item.input_audio_transcription.completed")
        out["types"] = [e.type for e in done]
        out["transcript"] = getattr(done[-1], "transcript", None)
    return out


async def mcp(client):
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"], "tools": [MCP_TOOL]})
        listed = await until(conn, "mcp_list_tools.completed")
        await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Please echo hello world"}]})
        await conn.response.create()
        first = await until(conn, "response.done")
        request = first[-1].response.output[0]
        await conn.conversation.item.create(item={"type": "mcp_approval_response",
                                                  "approval_request_id": request.id, "approve": True})
        await conn.response.create()
        second = await until(conn, "response.done")
        call = second[-1].response.output[0]
        return {"listed": [e.type for e in listed], "request": request.type, "call": call.type,
                "output": call.output}


async def image(client):
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [
            {"type": "input_image", "image_url": IMAGE}, {"type": "input_text", "text": "What is this?"}]})
        await conn.response.create()
        done = await until(conn, "response.done")
        return {"image_tokens": done[-1].response.usage.input_token_details.image_tokens}


WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Current weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


async def spoken(client):
    import base64

    out = {}
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"], "tools": [WEATHER_TOOL],
                                           "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"},
                                                               "turn_detection": {"type": "server_vad"}}}})
        await until(conn, "session.updated")
        for append in append_events(said("What is the weather in Paris?")):
            await conn.send(append)
        events = await until(conn, "response.done")
        heard = [e for e in events if e.type == "conversation.item.input_audio_transcription.completed"]
        out["transcript"] = heard[0].transcript if heard else None
        call = events[-1].response.output[0]
        out["call"] = {"type": call.type, "name": getattr(call, "name", None),
                       "arguments": getattr(call, "arguments", None)}
        await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call.call_id,
                                                  "output": "sunny"})
        await conn.response.create()
        reply = await until(conn, "response.done")
        out["reply"] = reply[-1].response.output[0].content[0].transcript
        out["reply_audio_bytes"] = sum(len(base64.b64decode(e.delta)) for e in reply
                                       if e.type == "response.output_audio.delta")
    return out


async def main(port: int, key: str, mode: str) -> None:
    client = AsyncOpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1",
                         websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    print(json.dumps(await {"transcription": transcription, "mcp": mcp, "image": image, "spoken": spoken}[mode](client)))


asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
