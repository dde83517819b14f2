"""Scripted Gemini Live sessions through the protocol (classify, parse, gate) into its collector,
every record compared whole with a reviewed golden copy (``tests/golden/gemini_<name>.json``).
Server frames are written as Google writes them (pretty-printed JSON), client frames as
google-genai 3.6.1 does (its snake/camel mix). Regenerate with RTPROXY_GOLDEN=write, then read
the diff before committing it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtproxy.protocols.seam import AUDIO, COLLECT

from .test_gemini_protocol_collector import Relay, pcm_b64, said, text, tool_call, turn_complete, usage

GOLDEN = Path(__file__).parent / "golden"

WEATHER_SETUP = {"setup": {
    "model": "models/gemini-live",
    "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": {
        "voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}}},
    "systemInstruction": {"parts": [{"text": "You answer weather questions."}], "role": "user"},
    "tools": [{"functionDeclarations": [{"description": "Weather now", "name": "get_weather", "parameters": {
        "properties": {"city": {"type": "STRING"}}, "type": "OBJECT"}}]}],
    "sessionResumption": {}, "inputAudioTranscription": {}, "outputAudioTranscription": {},
    "realtimeInputConfig": {"automatic_activity_detection": {"silence_duration_ms": 500}},
    "contextWindowCompression": {"sliding_window": {}}}}


def text_turn() -> Relay:
    r = Relay({"setup": {"model": "models/gemini-live", "generationConfig": {"responseModalities": ["TEXT"]},
                         "systemInstruction": {"parts": [{"text": "Be brief."}]}}}, ids=True)
    r.server({"setupComplete": {}})
    r.client({"client_content": {"turns": [{"parts": [{"text": "Name a colour."}], "role": "user"}],
                                 "turnComplete": True}})
    r.server({"serverContent": {"modelTurn": {"parts": [{"text": "thinking…", "thought": True}]}}})
    r.server(text("Blue"))
    r.server(text("."))
    r.server({"serverContent": {"generationComplete": True}})
    r.server(turn_complete(usage(prompt=42, response=2, thoughtsTokenCount=7, totalTokenCount=51)))
    return r


def audio_turn() -> Relay:
    r = Relay(WEATHER_SETUP, ids=True)
    r.server({"setupComplete": {}})
    r.server({"sessionResumptionUpdate": {"newHandle": "handle-1", "resumable": True}})
    for _ in range(4):
        r.audio_in(0.5)
    r.server({"serverContent": {"inputTranscription": {"text": "Hello, "}}})
    r.server({"serverContent": {"inputTranscription": {"text": "who are you?"}}})
    r.audio_out(0.4)
    r.server(said("I'm a "))
    r.audio_out(0.4)
    r.server(said("weather bot."))
    r.server({"serverContent": {"outputTranscription": {"text": "", "finished": True}}})
    r.server({"serverContent": {"generationComplete": True}})
    r.server(turn_complete(usage(prompt=60, audio_in=64, audio_out=26,
                                 cachedContentTokenCount=40,
                                 cacheTokensDetails=[{"modality": "TEXT", "tokenCount": 40}])))
    r.server({"sessionResumptionUpdate": {"newHandle": "handle-2", "resumable": True}})
    r.server({"goAway": {"timeLeft": "50s"}})
    r.end("upstream")
    return r


def tool_pause() -> Relay:
    """``toolCall`` with its usage, no ``turnComplete`` until the answer comes back."""
    r = Relay(WEATHER_SETUP, ids=True)
    r.server({"setupComplete": {}})
    r.audio_in(1.0)
    r.server({"serverContent": {"inputTranscription": {"text": "Weather in Paris?", "finished": True}}})
    r.server(tool_call(("function-call-1", "get_weather", {"city": "Paris"}), u=usage(prompt=120, audio_in=32,
                                                                                       response=9)))
    r.client({"tool_response": {"functionResponses": [{"id": "function-call-1", "name": "get_weather",
                                                       "response": {"temp_c": 18, "sky": "clear"}}]}})
    r.audio_out(0.5)
    r.server(said("It's 18 and clear."))
    r.server({"serverContent": {"generationComplete": True}})
    r.server(turn_complete(usage(prompt=170, audio_in=32, audio_out=35)))
    r.end()
    return r


def tool_complete() -> Relay:
    """Spoken preamble, ``toolCall``, trailing transcript and audio, ``turnComplete`` with usage."""
    r = Relay(WEATHER_SETUP, ids=True)
    r.server({"setupComplete": {}})
    r.audio_in(1.0)
    r.audio_out(0.3)
    r.server(said("Let me check."))
    r.server(tool_call(("fc-a", "get_weather", {"city": "Oslo"}), ("fc-b", "get_weather", {"city": "Rome"})))
    r.server({"serverContent": {"outputTranscription": {"text": "", "finished": True}}})
    r.audio_out(0.1)
    r.server({"serverContent": {"generationComplete": True}})
    r.server(turn_complete(usage(prompt=110, audio_in=32, audio_out=12, response=20)))
    r.client({"tool_response": {"functionResponses": [
        {"id": "fc-a", "name": "get_weather", "response": {"output": "rain"}},
        {"id": "fc-b", "name": "get_weather", "response": {"output": "sun"}}]}})
    r.audio_out(0.6)
    r.server(said("Rain in Oslo, sun in Rome."))
    r.server(turn_complete(usage(prompt=160, audio_in=32, audio_out=40)))
    r.server(turn_complete())  # a stray end: swallowed
    r.end()
    return r


def interrupted() -> Relay:
    r = Relay(WEATHER_SETUP, ids=True)
    r.audio_in(0.5)
    r.audio_out(0.5)
    r.server(said("The forecast for the whole"))
    r.audio_in(0.5)  # the user talks over it
    r.server({"serverContent": {"interrupted": True}})
    r.server({"toolCallCancellation": {"ids": ["fc-x"]}})
    r.server(turn_complete(usage(prompt=30, audio_in=16, audio_out=16)))
    r.server({"serverContent": {"inputTranscription": {"text": "Stop, just today.", "finished": True}}})
    r.audio_out(0.3)
    r.server(said("Today: sunny."))
    r.server({"serverContent": {"generationComplete": True}})
    r.server(turn_complete(usage(prompt=50, audio_in=32, audio_out=10)))
    r.end()
    return r


def standalone_usage() -> Relay:
    """Usage that comes alone between turns: the turn just closed, then the next turn's, then none."""
    r = Relay(WEATHER_SETUP, ids=True)
    r.audio_in(0.5)
    r.audio_out(0.5)
    r.server(said("First."))
    r.server(turn_complete())
    r.server({"usageMetadata": usage(prompt=20, audio_in=16, audio_out=16)})  # the first turn's
    r.audio_in(0.5)
    r.audio_out(0.5)
    r.server(said("Second."))
    r.server(turn_complete())
    r.audio_out(0.5)
    r.server(said("Third."))  # the third starts: the second's usage never came
    r.server(turn_complete(usage(prompt=70, audio_in=48, audio_out=16)))
    r.server({"usageMetadata": usage(prompt=5)})  # belongs to no turn: billed on its own
    r.end()
    return r


def vertex_usage() -> Relay:
    r = Relay(WEATHER_SETUP, ids=True)
    r.server({"setupComplete": {"sessionId": "vertex-session-9"}})
    r.audio_in(1.0)
    r.audio_out(0.5)
    r.server(said("Vertex says hi."))
    r.server(turn_complete(usage(prompt=10, audio_in=32, audio_out=47, vertex=True, thoughtsTokenCount=5,
                                 toolUsePromptTokenCount=3, totalTokenCount=97)))
    r.end()
    return r


def snake_case_client() -> Relay:
    """Every client frame in snake_case, as the proto's names (and some SDK paths) spell them."""
    r = Relay({"setup": {"model": "gemini-live", "generation_config": {
        "response_modalities": ["AUDIO"], "speech_config": {"voice_config": {"prebuilt_voice_config": {
            "voice_name": "Puck"}}}}, "system_instruction": {"parts": [{"text": "Speak slowly."}]},
        "tools": [{"function_declarations": [{"name": "lookup", "parameters": {"type": "OBJECT"}}]}],
        "input_audio_transcription": {}, "session_resumption": {"handle": "old-handle"}}}, ids=True)
    r.server({"setup_complete": {}})
    r.client({"client_content": {"turns": [
        {"role": "user", "parts": [{"text": "Earlier question"}]},
        {"role": "model", "parts": [{"text": "Earlier answer"}]},
        {"role": "user", "parts": [{"inline_data": {"mime_type": "image/jpeg", "data": "A" * 1000}}]}],
        "turn_complete": False}})
    r.client({"realtime_input": {"text": "What is in the picture?"}})
    r.client({"realtime_input": {"media_chunks": [{"mime_type": "audio/pcm;rate=16000", "data": pcm_b64(0.5, 16000)}]}})
    r.client({"realtime_input": {"activity_end": {}}})
    assert r.kinds[-4:] == [COLLECT, COLLECT, AUDIO, COLLECT]  # media chunks of audio: counted, not collected
    r.server(tool_call(("lk-1", "lookup", {"q": "picture"}), u=usage(prompt=300, response=6)))
    r.client({"tool_response": {"function_responses": [{"id": "lk-1", "name": "lookup", "response": "a red bike"}]}})
    r.audio_out(0.5)
    r.server(said("A red bike."))
    r.server(turn_complete(usage(prompt=330, audio_out=20)))
    r.end()
    return r


SCENARIOS: dict[str, Callable[[], Relay]] = {
    "text_turn": text_turn, "audio_turn": audio_turn, "tool_pause": tool_pause, "tool_complete": tool_complete,
    "interrupted": interrupted, "standalone_usage": standalone_usage, "vertex_usage": vertex_usage,
    "snake_case_client": snake_case_client,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_scripted_gemini_session_gives_exactly_the_golden_records(name: str) -> None:
    relay = SCENARIOS[name]()
    if not relay.records or relay.records[-1]["record"] != "session":
        relay.end()
    records: list[dict[str, Any]] = json.loads(json.dumps(relay.records))
    written = json.dumps(records)
    assert not any(secret in written for secret in ("old-handle", "handle-1", "handle-2"))  # resumption handles
    assert not relay.refused
    path = GOLDEN / f"gemini_{name}.json"
    if os.environ.get("RTPROXY_GOLDEN") == "write":
        path.write_text(json.dumps(records, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    assert records == json.loads(path.read_text())
