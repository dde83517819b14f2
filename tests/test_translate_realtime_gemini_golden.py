"""The OpenAI Realtime ⇄ Gemini Live translator, both ways, for scripted sessions: every client
event and Gemini frame in, every event out to the client and every frame up to Gemini, compared
with reviewed golden copies in ``tests/golden/translate_*.json``. Ids come from a counter; audio
payloads are replaced by their length and digest. Regenerate with RTPROXY_GOLDEN=write, then read
the diff before committing it.

Each scenario is also checked here for what a reader of its golden file should not have to find
by eye (the billed tokens, the key events)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from .test_translate_realtime_gemini_harness import Script, append, b64, gemini_audio, tone, usage, user_text

GOLDEN = Path(__file__).parent / "golden"

WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}


def _text_session(s: Script, **extra: object) -> None:
    s.start()
    s.client({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief.",
                                                    "output_modalities": ["text"], **extra}})
    s.upstream({"setupComplete": {}})
    s.upstream({"sessionResumptionUpdate": {"newHandle": "h-1", "resumable": True}})


def _audio_session(s: Script, *, tools: bool = False, manual: bool = False,
                   setup_complete: dict[str, object] | None = None) -> None:
    s.start()
    session: dict[str, object] = {
        "type": "realtime", "instructions": "Be brief.", "output_modalities": ["audio"],
        "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"},
                            "turn_detection": None if manual else {"type": "server_vad", "silence_duration_ms": 400,
                                                                   "prefix_padding_ms": 200, "threshold": 0.3}},
                  "output": {"voice": "marin"}}}
    if tools:
        session["tools"] = [WEATHER]
    s.client({"type": "session.update", "session": session})
    s.upstream({"setupComplete": setup_complete or {}})
    s.upstream({"sessionResumptionUpdate": {"newHandle": "h-1", "resumable": True}})


def text_turn() -> Script:
    s = Script()
    _text_session(s, max_output_tokens=200)
    s.client(user_text("Hello there", "item_user_1"))
    s.client({"type": "response.create", "response": {"metadata": {"turn": "1"}}})
    s.upstream({"serverContent": {"modelTurn": {"parts": [{"text": "Hi"}]}}})
    s.upstream({"serverContent": {"modelTurn": {"parts": [{"text": " there!"}]}}})
    s.upstream({"serverContent": {"generationComplete": True}})
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_text=14, out_text=3)})
    assert s.billed() == 17 and s.billed("output_token_details.text_tokens") == 3
    assert s.dones()[0]["metadata"] == {"turn": "1"}
    return s


def audio_turn() -> Script:
    s = Script()
    s.start()
    s.client({"type": "session.update", "session": {
        "type": "realtime", "output_modalities": ["audio"],
        "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 400, "threshold": 0.7}},
                  "output": {"voice": "cedar"}}}})
    for _ in range(3):  # before setupComplete: held
        s.client(append())
    s.upstream({"setupComplete": {}})
    s.client(append())
    s.upstream({"serverContent": {"inputTranscription": {"text": "What time"}}})
    s.upstream(gemini_audio())
    s.upstream({"serverContent": {"outputTranscription": {"text": "It's"}}})
    s.upstream({"serverContent": {"inputTranscription": {"text": " is it?", "finished": True}}})
    frame = gemini_audio()  # 3.1 sends several parts and a transcript in one frame
    frame["serverContent"]["outputTranscription"] = {"text": " noon."}
    s.upstream(frame)
    s.upstream({"serverContent": {"generationComplete": True}})
    s.upstream({"serverContent": {"turnComplete": True},
                "usageMetadata": usage(prompt_text=20, prompt_audio=25, out_text=0, out_audio=40, thoughts=5)})
    assert s.billed("output_token_details.audio_tokens") == 40
    assert s.billed("output_token_details.text_tokens") == 5  # thoughts bill as output text
    assert s.billed("input_token_details.audio_tokens") == 25
    [done] = s.of_type("conversation.item.input_audio_transcription.completed")
    assert done["transcript"] == "What time is it?"
    return s


def tool_pause() -> Script:
    """Gemini pauses at the toolCall (usage on it) and sends no turnComplete until the toolResponse."""
    s = Script()
    _text_session(s, tools=[WEATHER])
    s.client(user_text("Weather in Paris?"))
    s.client({"type": "response.create"})
    s.upstream({"toolCall": {"functionCalls": [{"id": "fc-1", "name": "get_weather", "args": {"city": "Paris"}}]},
                "usageMetadata": usage(prompt_text=30, out_text=8)})
    [call] = [i for i in s.dones()[0]["output"] if i["type"] == "function_call"]
    s.client({"type": "conversation.item.create",
              "item": {"type": "function_call_output", "call_id": call["call_id"], "output": '{"temp_c": 18}'}})
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"modelTurn": {"parts": [{"text": "It is 18 °C in Paris."}]}}})
    s.upstream({"serverContent": {"generationComplete": True, "turnComplete": True},
                "usageMetadata": usage(prompt_text=45, out_text=9)})
    assert [d["status"] for d in s.dones()] == ["completed", "completed"]
    assert s.billed() == 38 + 54
    up = s.upstream_frames[-1]
    assert up == {"toolResponse": {"functionResponses": [{"id": "fc-1", "name": "get_weather",
                                                          "response": {"temp_c": 18}}]}}
    return s


def tool_complete() -> Script:
    """Gemini finishes the turn after the toolCall (a tail, then turnComplete with the usage); the
    second time, the client answers before that turnComplete arrives."""
    s = Script()
    _audio_session(s, tools=True)
    s.client(user_text("Weather in Paris?"))
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"outputTranscription": {"text": "Let me check."}}})
    s.upstream(gemini_audio())
    s.upstream({"toolCall": {"functionCalls": [{"id": "fc-1", "name": "get_weather", "args": {"city": "Paris"}}]}})
    s.upstream({"serverContent": {"outputTranscription": {"finished": True}}})
    s.upstream(gemini_audio(20))  # the trailing frame: dropped, no ghost response
    s.upstream({"serverContent": {"generationComplete": True}})
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_text=30, out_audio=12)})
    call = s.dones()[0]["output"][1]
    s.client({"type": "conversation.item.create",
              "item": {"type": "function_call_output", "call_id": call["call_id"], "output": "18"}})
    s.client({"type": "response.create"})
    s.upstream({"toolCall": {"functionCalls": [{"id": "fc-2", "name": "get_weather", "args": {"city": "Lyon"}}]}})
    call2 = s.dones()[-1]["output"][0]
    s.client({"type": "conversation.item.create",
              "item": {"type": "function_call_output", "call_id": call2["call_id"], "output": "21"}})
    s.client({"type": "response.create"})  # before the tool turn's turnComplete: it is still swallowed
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_text=50, out_audio=4)})
    s.upstream({"serverContent": {"outputTranscription": {"text": "18 in Paris, 21 in Lyon."}}})
    s.upstream(gemini_audio())
    s.upstream({"serverContent": {"generationComplete": True}})
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_text=70, out_audio=30)})
    dones = s.dones()
    ids = [d["id"] for d in dones]
    assert ids[0] == ids[1] and ids[2] == ids[3] and len(set(ids)) == 3
    assert [d.get("metadata") for d in dones] == [None, {"rtproxy_usage": "supplement"}, None,
                                                  {"rtproxy_usage": "supplement"}, None]
    assert s.billed() == 42 + 54 + 100
    assert s.billed("output_token_details.audio_tokens") == 12 + 4 + 30
    assert [f["toolResponse"]["functionResponses"][0]["response"] for f in s.upstream_frames if "toolResponse" in f] \
        == [{"output": 18}, {"output": 21}]
    return s


def barge_in() -> Script:
    s = Script()
    _audio_session(s)
    for _ in range(2):
        s.client(append())
    s.upstream({"serverContent": {"inputTranscription": {"text": "Tell me a story"}}})
    s.upstream(gemini_audio())
    s.upstream({"serverContent": {"outputTranscription": {"text": "Once upon"}}})
    s.client(append(hz=660))  # the user talks over it
    s.upstream({"serverContent": {"interrupted": True}})
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_audio=30, out_audio=20)})
    item = s.dones()[0]["output"][0]["id"]
    s.client({"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 20})
    s.upstream({"serverContent": {"inputTranscription": {"text": "Stop.", "finished": True}}})
    s.upstream(gemini_audio())
    s.upstream({"serverContent": {"outputTranscription": {"text": "Okay."}}})
    s.client({"type": "response.cancel"})  # the client cancels this one
    s.upstream(gemini_audio())  # the rest of the turn is dropped
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_audio=40, out_audio=10)})
    dones = s.dones()
    assert [(d["status"], (d["status_details"] or {}).get("reason")) for d in dones] == [
        ("cancelled", "turn_detected"), ("cancelled", "client_cancelled"), ("cancelled", "client_cancelled")]
    assert dones[2]["output"] == [] and dones[2]["metadata"] == {"rtproxy_usage": "supplement"}
    assert s.billed() == 50 + 50
    assert s.of_type("conversation.item.truncated")[0]["audio_end_ms"] == 20
    return s


def standalone_usage() -> Script:
    s = Script()
    _text_session(s)
    s.client(user_text("One"))
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"modelTurn": {"parts": [{"text": "1"}]}}})
    s.upstream({"serverContent": {"turnComplete": True}})  # no usage yet
    s.upstream({"usageMetadata": usage(prompt_text=10, out_text=1)})  # between turns: the one just closed
    s.upstream({"usageMetadata": usage(prompt_text=3)})  # it has one now: kept for the next response
    s.client(user_text("Two"))
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"modelTurn": {"parts": [{"text": "2"}]}},
                "usageMetadata": usage(prompt_text=15, out_text=1)})  # mid-turn: a snapshot
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_text=20, out_text=2)})
    dones = s.dones()
    assert [d["usage"]["total_tokens"] if d["usage"] else None for d in dones] == [None, 11, 3 + 22]
    assert s.billed() == 11 + 3 + 22
    return s


def session_update_reconnect() -> Script:
    s = Script()
    s.start()
    s.client({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}})
    s.client({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "Kore"}}}})
    s.upstream({"setupComplete": {}})  # nothing was sent: the second update made a fresh connection
    s.upstream({"sessionResumptionUpdate": {"newHandle": "h-1", "resumable": True}})
    s.client({"type": "session.update", "session": {"type": "realtime", "model": "gpt-4o-realtime"}})
    s.client({"type": "session.update", "session": {
        "type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}})  # local: answered now
    s.client(user_text("Hi"))
    s.client({"type": "response.create"})
    s.upstream(gemini_audio())
    s.client({"type": "session.update", "session": {"type": "realtime", "instructions": "Be very brief."}})
    s.upstream({"sessionResumptionUpdate": {"resumable": False}})
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_text=5, out_audio=9)})
    s.client({"type": "input_audio_buffer.append", "audio": b64(bytes(160))})  # still the old connection
    s.upstream({"sessionResumptionUpdate": {"newHandle": "h-2", "resumable": True}})
    s.client({"type": "input_audio_buffer.append", "audio": b64(bytes(160))})  # moving: held
    s.upstream({"setupComplete": {}})
    assert [step.get("reconnect", False) for step in s.steps].count(True) == 2
    resumed = [step["setup_frame"]["setup"]["sessionResumption"] for step in s.steps if step.get("reconnect")]
    assert resumed == [{}, {"handle": "h-2"}]
    assert len(s.of_type("session.updated")) == 4
    assert sum(1 for f in s.upstream_frames if "setup" in f) == 3
    return s


def goaway_resumption() -> Script:
    s = Script()
    _audio_session(s)
    s.client(append())
    s.upstream(gemini_audio())
    s.upstream({"goAway": {"timeLeft": "10s"}})  # mid-turn: wait for a resumable point
    s.client(append())
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_audio=10, out_audio=20)})
    s.upstream({"sessionResumptionUpdate": {"newHandle": "h-2", "resumable": True}})
    s.client(append())  # held while moving
    s.client(append())
    s.upstream({"setupComplete": {}})
    s.client(append())
    # then the socket drops mid-turn: resumed from the last handle, the turn reported failed
    s.upstream({"sessionResumptionUpdate": {"newHandle": "h-3", "resumable": True}})
    s.upstream(gemini_audio())
    s.closed(1011, "Deadline expired before operation could complete.")
    s.upstream({"setupComplete": {}})
    # a resume Gemini refuses before setupComplete ends the session
    s.closed(1006, "")
    s.closed(1008, "BidiGenerateContent session not found")
    assert [d["status"] for d in s.dones()] == ["completed", "failed"]
    assert s.steps[-1]["close"] == [1011, "upstream closed"]
    return s


def g711_session() -> Script:
    s = Script()
    s.start()
    s.client({"type": "session.update", "session": {
        "type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": None},
                                      "output": {"format": {"type": "audio/pcmu"}, "voice": "ash"}}}})
    s.upstream({"setupComplete": {}})
    s.client({"type": "input_audio_buffer.append", "audio": b64(bytes([0xFF]) * 160)})  # 20 ms of μ-law silence
    s.client({"type": "input_audio_buffer.commit"})
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000",
                                                                          "data": b64(tone(60))}}]}}})
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_audio=1, out_audio=2)})
    audio_up = [f for f in s.upstream_frames if "audio" in f.get("realtimeInput", {})]
    assert len(audio_up) == 1
    deltas = s.of_type("response.output_audio.delta")
    assert [len(__import__("base64").b64decode(d["delta"])) for d in deltas] == [480]  # 60 ms at 8 kHz
    return s


def beta_dialect() -> Script:
    s = Script("beta")
    s.start()
    s.client({"type": "session.update", "session": {
        "modalities": ["text", "audio"], "voice": "alloy", "instructions": "Be brief.", "temperature": 0.7,
        "input_audio_transcription": {"model": "whisper-1"}, "turn_detection": None}})
    s.upstream({"setupComplete": {}})
    s.client(append())
    s.client(append())
    s.client({"type": "input_audio_buffer.commit"})
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"inputTranscription": {"text": "Hello", "finished": True}}})
    s.upstream(gemini_audio())
    s.upstream({"serverContent": {"outputTranscription": {"text": "Hi!"}}})
    s.upstream({"serverContent": {"generationComplete": True}})
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_audio=6, out_audio=12)})
    assert "conversation.created" in s.types() and "conversation.item.created" in s.types()
    assert "response.audio.delta" in s.types() and "response.audio_transcript.done" in s.types()
    assert not any(t.startswith(("response.output_text", "response.output_audio")) or t == "conversation.item.added"
                   for t in s.types())
    realtime = [f["realtimeInput"] for f in s.upstream_frames if "realtimeInput" in f]
    assert list(realtime[0]) == ["activityStart"] and list(realtime[-1]) == ["activityEnd"]
    return s


def vertex_usage() -> Script:
    s = Script(vertex=True, upstream_model="projects/p/locations/us-central1/publishers/google/models/gemini-live-2.5-flash")
    _audio_session(s, tools=True, setup_complete={"sessionId": "vertex-session-1"})
    assert s.t.upstream_session_id == "vertex-session-1"
    s.client(user_text("Weather in Paris?"))
    s.client({"type": "response.create"})
    s.upstream({"toolCall": {"functionCalls": [{"id": "fc-1", "name": "get_weather", "args": {"city": "Paris"}}]},
                "usageMetadata": usage(prompt_text=30, out_audio=7, vertex=True)})
    call = s.dones()[0]["output"][0]
    s.client({"type": "conversation.item.create",
              "item": {"type": "function_call_output", "call_id": call["call_id"], "output": '"sunny"'}})
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"outputTranscription": {"text": "Sunny."}}})
    s.upstream(gemini_audio())
    s.upstream({"serverContent": {"turnComplete": True},
                "usageMetadata": usage(prompt_text=40, out_audio=16, out_text=2, vertex=True)})
    assert s.billed("output_token_details.audio_tokens") == 23
    assert s.billed("output_token_details.text_tokens") == 2
    [tool] = [f["toolResponse"] for f in s.upstream_frames if "toolResponse" in f]
    assert tool == {"functionResponses": [{"name": "get_weather", "response": {"output": "sunny"}}]}
    assert s.upstream_frames[0]["setup"]["model"].startswith("projects/p/")
    return s


def manual_turns() -> Script:
    s = Script()
    _audio_session(s, manual=True)
    s.client({"type": "input_audio_buffer.commit"})  # nothing appended: refused
    s.client(append())
    s.client(append())
    s.client({"type": "input_audio_buffer.commit"})
    s.client({"type": "response.create", "response": {"metadata": {"ptt": "1"}}})
    s.upstream({"serverContent": {"inputTranscription": {"text": "Hi"}}})
    s.upstream(gemini_audio())
    s.upstream({"serverContent": {"outputTranscription": {"text": "Hello!"}}})
    s.client(append())  # push-to-talk again while it speaks: a new activity
    s.upstream({"serverContent": {"interrupted": True}})
    s.client({"type": "input_audio_buffer.commit"})
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_audio=5, out_audio=6)})
    s.client({"type": "response.create"})
    s.upstream(gemini_audio())
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": usage(prompt_audio=9, out_audio=3)})
    frames = [next(iter(f["realtimeInput"])) for f in s.upstream_frames if "realtimeInput" in f]
    assert frames == ["activityStart", "audio", "audio", "activityEnd", "activityStart", "audio", "activityEnd"]
    assert s.dones()[0]["metadata"] == {"ptt": "1"}
    return s


def refusals() -> Script:
    s = Script()
    _text_session(s)
    s.client({"type": "session.update", "session": {"type": "realtime", "tool_choice": "required"}})
    s.client({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "mcp", "server_label": "x", "server_url": "https://example.com"}]}})
    s.client({"type": "session.update", "session": {"type": "transcription"}})
    s.client({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "nobody"}}}})
    s.client({"type": "conversation.item.create", "item": {"type": "message", "role": "system",
                                                           "content": [{"type": "input_text", "text": "x"}]}})
    s.client({"type": "conversation.item.create", "previous_item_id": "item_elsewhere",
              "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}})
    s.client({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_image", "image_url": "https://example.com/cat.png"}]}})
    s.client({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_unknown", "output": "{}"}})
    s.client(user_text("kept", "item_kept"))
    s.client({"type": "conversation.item.delete", "item_id": "item_kept"})  # not sent yet: deleted
    s.client(user_text("sent", "item_sent"))
    s.client({"type": "response.create", "response": {"instructions": "Be verbose."}})
    s.client({"type": "response.create", "response": {"conversation": "none"}})
    s.client({"type": "response.create", "response": {"instructions": "Be brief.", "output_modalities": ["text"]}})
    s.client({"type": "conversation.item.delete", "item_id": "item_sent"})  # sent: Gemini keeps it
    s.client({"type": "conversation.item.retrieve", "item_id": "item_sent"})
    s.client({"type": "response.cancel", "response_id": "resp_other"})
    s.client({"type": "output_audio_buffer.clear"})
    s.client({"type": "transcription_session.update", "session": {}})
    s.client({"type": "input_audio_buffer.append", "audio": "not base64!"})
    s.client({"type": "made.up"})
    errors = [e["error"]["code"] for e in s.of_type("error")]
    assert errors == ["unsupported_tool_choice", "unsupported_tool", "unsupported_session_type", "invalid_value",
                      "unsupported_item", "unsupported_item_position", "unsupported_image", "tool_call_not_found",
                      "unsupported_parameter", "unsupported_parameter", "unsupported_item_delete",
                      "response_cancel_not_active", "unsupported_event", "unsupported_event", "invalid_value",
                      "invalid_value"]
    turns = [f["clientContent"]["turns"] for f in s.upstream_frames if "clientContent" in f]
    assert turns == [[{"role": "user", "parts": [{"text": "sent"}]}]]
    return s


SCENARIOS: dict[str, Callable[[], Script]] = {f.__name__: f for f in (
    text_turn, audio_turn, tool_pause, tool_complete, barge_in, standalone_usage, session_update_reconnect,
    goaway_resumption, g711_session, beta_dialect, vertex_usage, manual_turns, refusals)}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_scripted_session_gives_exactly_the_golden_frames_both_ways(name: str) -> None:
    got = json.loads(json.dumps(SCENARIOS[name]().golden()))
    path = GOLDEN / f"translate_{name}.json"
    if os.environ.get("RTPROXY_GOLDEN") == "write":
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(path.read_text())
