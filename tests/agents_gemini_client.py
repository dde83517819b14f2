"""Run by tests in a subprocess: openai-agents' realtime runner (a real client library) through a
Gemini-backed model: the gateway translates OpenAI Realtime ⇄ Gemini Live. The SDK validates
every server event it receives against its own types; an event it rejects, and any server
``error``, comes to the session as an ``error`` event: collected here (the run stops at the
first). Prints one JSON line with what happened.

Usage: python agents_gemini_client.py URL KEY MODE
  text     a typed question, a text answer
  tool     a typed question that calls the agent's function tool: the SDK runs it, sends its
           output and asks for the answer, which uses it
  voice    a spoken question (its transcript), a spoken answer (audio and its transcript), with
           the SDK's default session (semantic VAD, input transcription)
  bargein  speaking over the model's spoken answer: the SDK stops its playback, the answer ends
           cancelled, the next one completes
"""

import asyncio
import json
import sys
from pathlib import Path

from agents import function_tool
from agents.realtime import RealtimeAgent, RealtimeRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_fixtures import said

MODEL = "gemini-live"
TRANSCRIBED = "conversation.item.input_audio_transcription.completed"
#: How much audio each send_audio carries: the SDK's users stream a microphone in small chunks.
CHUNK_BYTES = 24000 * 2 * 40 // 1000


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Failed(Exception):
    """The session got an error event."""


class Run:
    """The session's events, read up to a point at a time; what they showed, for the report."""

    def __init__(self, session) -> None:
        self.events = aiter(session)
        self.types: list[str] = []
        self.errors: list[str] = []
        self.tools: list[dict] = []
        self.audio_bytes = 0
        self.interrupted = 0
        self.history: list = []

    async def next(self) -> dict | None:
        """The next session event taken in; the raw server event it carries, if it does."""
        event = await anext(self.events)
        if event.type == "error":
            self.errors.append(str(event.error)[:1000])
            raise Failed
        if event.type == "tool_end":
            self.tools.append({"name": event.tool.name, "output": event.output})
        elif event.type == "audio":
            self.audio_bytes += len(event.audio.data)
        elif event.type == "audio_interrupted":
            self.interrupted += 1
        elif event.type == "history_updated":
            self.history = list(event.history)
        elif event.type == "history_added":
            self.history = [i for i in self.history if i.item_id != event.item.item_id] + [event.item]
        elif event.type == "raw_model_event" and event.data.type == "raw_server_event":
            self.types.append(event.data.data.get("type"))
            return event.data.data
        return None

    async def until(self, *types: str) -> list[dict]:
        """The raw server events up to one of each of ``types`` (in any order)."""
        waiting, seen = set(types), []
        while waiting:
            raw = await self.next()
            if raw is not None:
                seen.append(raw)
                waiting.discard(raw.get("type"))
        return seen

    async def transcribed(self) -> None:
        """Until the SDK's conversation has the transcript of every spoken item (it takes one in
        just after the raw event that brings it)."""
        while not all(part.transcript for item in self.history if item.type == "message"
                      for part in item.content if part.type == "input_audio"):
            await self.next()


def deltas(events: list[dict], kind: str) -> str:
    return "".join(e["delta"] for e in events if e["type"] == kind)


def done(events: list[dict]) -> dict:
    return [e for e in events if e["type"] == "response.done"][-1]["response"]


def history(items: list) -> list[dict]:
    """The SDK's own view of the conversation: each message's role and words."""
    out = []
    for item in items:
        if item.type == "message":
            words = [getattr(p, "transcript", None) or getattr(p, "text", None) for p in item.content]
            out.append({"role": item.role,
                        "content": [{"type": p.type, "words": w} for p, w in zip(item.content, words)]})
        else:
            out.append({"type": item.type, "name": getattr(item, "name", None),
                        "output": getattr(item, "output", None)})
    return out


async def speak(session, sentence: str) -> None:
    pcm = said(sentence)
    for i in range(0, len(pcm), CHUNK_BYTES):
        await session.send_audio(pcm[i:i + CHUNK_BYTES])


async def main(url: str, key: str, mode: str) -> None:
    text = mode in ("text", "tool")
    agent = RealtimeAgent(name="weather", instructions="Answer with the weather tool.",
                          tools=[get_weather] if mode == "tool" else [])
    settings = {"model_name": MODEL, **({"output_modalities": ["text"]} if text else {})}
    runner = RealtimeRunner(agent, config={"model_settings": settings})
    session = await runner.run(model_config={"api_key": key, "url": url})
    out: dict = {"status": [], "replies": []}
    async with session:
        run = Run(session)
        try:
            await run.until("session.updated")
            if text:
                question = "What is the weather in Paris? use get_weather" if mode == "tool" else "Say hi"
                await session.send_message(question)
                for _ in range(2 if mode == "tool" else 1):  # the tool call, then the answer using its output
                    events = await run.until("response.done")
                    out["status"].append(done(events)["status"])
                    out["replies"].append(deltas(events, "response.output_text.delta"))
            elif mode == "voice":
                await speak(session, "Hello there")
                # a transcript complete, the SDK asks for the item it last played (retrieve): that answer too
                events = await run.until("response.done", TRANSCRIBED, "conversation.item.retrieved")
                await run.transcribed()
                out["status"].append(done(events)["status"])
                out["transcripts"] = [e["transcript"] for e in events if e["type"] == TRANSCRIBED]
                out["said"] = deltas(events, "response.output_audio_transcript.delta")
            else:
                await speak(session, "Tell me a long story about the sea")
                await run.until("response.output_audio.delta")
                await speak(session, "Stop please")
                talked_over = await run.until("response.done")
                # the answer to "Stop please", and its transcript (complete when its turn is)
                answer = await run.until("response.done", TRANSCRIBED)
                await run.transcribed()
                for events in (talked_over, answer):
                    out["status"].append(done(events)["status"])
                    out["replies"].append(deltas(events, "response.output_audio_transcript.delta"))
        except Failed:
            pass
    out.update(types=run.types, errors=run.errors, tools=run.tools, audio_bytes=run.audio_bytes,
               interrupted=run.interrupted, history=history(run.history))
    print(json.dumps(out))


asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2], sys.argv[3]), 60))
