"""Run by tests in a subprocess: the official openai SDK through a Gemini-backed model (the
gateway translates OpenAI Realtime ⇄ Gemini Live). Every event the client receives is validated
against the SDK's own event types. Prints one JSON line with what happened.

Usage: python sdk_gemini_client.py PORT KEY MODEL MODE
  text     a typed question, a text answer (GA)
  beta     the same in the beta dialect
  voice    a spoken question with input and output transcripts, an audio answer
  tool     a spoken question that calls the session's function, its output, the spoken answer
  bargein  speaking over the model's answer: the response ends cancelled, the next one completes
"""

import asyncio
import json
import sys
from pathlib import Path

import pydantic
from openai import AsyncOpenAI
from openai.types.beta.realtime import RealtimeServerEvent as BetaEvent
from openai.types.realtime import RealtimeServerEvent as GaEvent

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_fixtures import append_events, said

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


class Run:
    def __init__(self, beta: bool) -> None:
        self.adapter = pydantic.TypeAdapter(BetaEvent if beta else GaEvent)
        self.types: list[str] = []
        self.invalid: list[str] = []

    async def until(self, conn, *types):
        seen = []
        async for event in conn:
            raw = event.model_dump(mode="json", exclude_unset=True)
            try:
                self.adapter.validate_python(raw)
            except pydantic.ValidationError as exc:
                self.invalid.append(f"{event.type}: {str(exc)[:300]}")
            self.types.append(event.type)
            seen.append(event)
            if event.type in types or event.type == "error":
                return seen
        return seen


def text_of(events, delta_types):
    return "".join(e.delta for e in events if e.type in delta_types)


async def main(port: int, key: str, model: str, mode: str) -> None:
    client = AsyncOpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1",
                         websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    beta = mode == "beta"
    run = Run(beta)
    out: dict = {}
    connect = client.beta.realtime.connect(model=model) if beta else client.realtime.connect(model=model)
    async with connect as conn:
        await run.until(conn, "session.created")
        if mode in ("text", "beta"):
            session = {"modalities": ["text"]} if beta else {"type": "realtime", "output_modalities": ["text"]}
            await conn.session.update(session=session)
            await run.until(conn, "session.updated")
            await conn.conversation.item.create(item={"type": "message", "role": "user",
                                                      "content": [{"type": "input_text", "text": "Say hi"}]})
            await conn.response.create()
            done = await run.until(conn, "response.done")
            out["text"] = text_of(done, ("response.output_text.delta", "response.text.delta"))
            out["usage"] = done[-1].response.usage.model_dump() if done[-1].type == "response.done" else None
        else:
            tools = [WEATHER] if mode == "tool" else []
            await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"], "tools": tools,
                                               "audio": {"input": {"turn_detection": {"type": "server_vad"},
                                                                   "transcription": {"model": "whisper-1"}}}})
            await run.until(conn, "session.updated")
            question = "What is the weather in Paris?" if mode == "tool" else "Hello there"
            for append in append_events(said(question)):
                await conn.send(append)
            done = await run.until(conn, "response.done")
            out["transcripts"] = [e.transcript for e in done
                                  if e.type == "conversation.item.input_audio_transcription.completed"]
            out["status"] = [done[-1].response.status]
            out["audio_deltas"] = sum(e.type == "response.output_audio.delta" for e in done)
            out["said"] = text_of(done, ("response.output_audio_transcript.delta",))
            if mode == "tool":
                calls = [o for o in done[-1].response.output if o.type == "function_call"]
                out["calls"] = [(c.name, json.loads(c.arguments)) for c in calls]
                await conn.conversation.item.create(item={"type": "function_call_output", "call_id": calls[0].call_id,
                                                          "output": json.dumps({"forecast": "sunny, 21 C"})})
                await conn.response.create()
                answer = await run.until(conn, "response.done")
                out["answer"] = text_of(answer, ("response.output_audio_transcript.delta",))
                out["status"].append(answer[-1].response.status)
            if mode == "bargein":
                for append in append_events(said("Tell me a long story about the sea")):
                    await conn.send(append)
                started = await run.until(conn, "response.output_audio.delta")
                for append in append_events(said("Stop please")):
                    await conn.send(append)
                first = await run.until(conn, "response.done")
                out["status"].append(first[-1].response.status)
                second = await run.until(conn, "response.done")
                out["status"].append(second[-1].response.status)
                del started
    out["types"] = run.types
    out["invalid"] = run.invalid
    print(json.dumps(out))


asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
