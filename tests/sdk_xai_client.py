"""Run by tests in a subprocess: the official openai SDK (GA) through an xAI-backed model (the
gateway normalizes xAI's events). Every event the client receives is validated against the SDK's
own GA event union. Prints one JSON line with what happened.

Usage: python sdk_xai_client.py PORT KEY MODEL MODE
  text   a typed question, a text answer (with an OpenAI voice name set: mapped to xAI's)
  voice  a spoken question with its input transcript, an audio answer with its transcript
  tool   a spoken question that calls the session's function, its output, the spoken answer
"""

import asyncio
import json
import sys
from pathlib import Path

import pydantic
from openai import AsyncOpenAI
from openai.types.realtime import RealtimeServerEvent

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_fixtures import append_events, said

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ADAPTER = pydantic.TypeAdapter(RealtimeServerEvent)


class Run:
    def __init__(self) -> None:
        self.types: list[str] = []
        self.invalid: list[str] = []
        #: (type, output_index, content_index, response_id) of each indexed event, as the SDK parsed it
        self.indices: list[tuple[str, int | None, int | None, str | None]] = []

    async def until(self, conn, *types):
        seen = []
        async for event in conn:
            raw = event.model_dump(mode="json", exclude_unset=True)
            try:
                ADAPTER.validate_python(raw)
            except pydantic.ValidationError as exc:
                self.invalid.append(f"{event.type}: {str(exc)[:300]}")
            self.types.append(event.type)
            if "output_index" in raw:
                self.indices.append((event.type, raw.get("output_index"), raw.get("content_index"),
                                     raw.get("response_id")))
            seen.append(event)
            if event.type in types or event.type == "error":
                return seen
        return seen


def text_of(events, delta_type):
    return "".join(e.delta for e in events if e.type == delta_type)


async def main(port: int, key: str, model: str, mode: str) -> None:
    client = AsyncOpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1",
                         websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    run = Run()
    out: dict = {}
    async with client.realtime.connect(model=model) as conn:
        await run.until(conn, "session.created")
        if mode == "text":
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"],
                                               "audio": {"output": {"voice": "marin"}}})
            updated = await run.until(conn, "session.updated")
            out["voice"] = updated[-1].session.audio.output.voice
            await conn.conversation.item.create(item={"type": "message", "role": "user",
                                                      "content": [{"type": "input_text", "text": "Say hi"}]})
            await conn.response.create()
            done = await run.until(conn, "response.done")
            out["text"] = text_of(done, "response.output_text.delta")
            out["usage"] = done[-1].response.usage.model_dump(exclude_none=True) if done[-1].type == "response.done" \
                else None
        else:
            tools = [WEATHER] if mode == "tool" else []
            await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"], "tools": tools,
                                               "audio": {"input": {"turn_detection": {"type": "server_vad"},
                                                                   "transcription": {"model": "whisper-1"}},
                                                         "output": {"voice": "alloy"}}})
            await run.until(conn, "session.updated")
            question = "What is the weather in Paris?" if mode == "tool" else "Hello there"
            for append in append_events(said(question)):
                await conn.send(append)
            done = await run.until(conn, "response.done")
            out["transcripts"] = [e.transcript for e in done
                                  if e.type == "conversation.item.input_audio_transcription.completed"]
            out["status"] = [done[-1].response.status]
            out["audio_deltas"] = sum(e.type == "response.output_audio.delta" for e in done)
            out["said"] = text_of(done, "response.output_audio_transcript.delta")
            out["parts"] = [e.part.model_dump(exclude_none=True) for e in done if e.type == "response.content_part.done"]
            if mode == "tool":
                output = done[-1].response.output
                out["output_types"] = [o.type for o in output]
                calls = [o for o in output if o.type == "function_call"]
                out["calls"] = [(c.name, json.loads(c.arguments)) for c in calls]
                await conn.conversation.item.create(item={"type": "function_call_output", "call_id": calls[0].call_id,
                                                          "output": json.dumps({"forecast": "sunny, 21 C"})})
                await conn.response.create()
                answer = await run.until(conn, "response.done")
                out["answer"] = text_of(answer, "response.output_audio_transcript.delta")
                out["status"].append(answer[-1].response.status)
    out["types"] = run.types
    out["invalid"] = run.invalid
    out["indices"] = run.indices
    print(json.dumps(out))


asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
