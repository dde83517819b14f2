"""The OpenAI Realtime (GA) ⇄ xAI normalizer, sans-IO: client events in, frames for xAI out; xAI's
frames (quirks verbatim) in, GA events out. A scripted session is compared with a reviewed golden
copy (``tests/golden/xai_normalizer_session.json``; regenerate with RTPROXY_GOLDEN=write, then read
the diff), and every event it emits for the client validates against the openai SDK's GA union."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pydantic
import pytest
from openai.types.realtime import RealtimeServerEvent

from rtproxy.translate.realtime_xai import (
    MAX_TRACKED_RESPONSES,
    OPENAI_TO_XAI_VOICE,
    ZERO_TRANSCRIPTION_USAGE,
    ZERO_USAGE,
    RealtimeXaiNormalizer,
)

GOLDEN = Path(__file__).parent / "golden" / "xai_normalizer_session.json"
GA = pydantic.TypeAdapter(RealtimeServerEvent)
AUDIO = base64.b64encode(bytes(960)).decode()


def normalizer() -> RealtimeXaiNormalizer:
    counter = itertools.count(1)
    return RealtimeXaiNormalizer(model="grok", upstream_model="grok-voice-think-fast-1.0",
                                 new_id=lambda prefix: f"{prefix}_{next(counter)}", clock=lambda: 1_900_000_000)


def opened() -> RealtimeXaiNormalizer:
    """A normalizer past xAI's first event (its session.created synthesised)."""
    n = normalizer()
    n.from_upstream({"type": "conversation.created", "event_id": "x0", "conversation": {"id": "conv_1"}})
    return n


def up(n: RealtimeXaiNormalizer, frame: dict[str, Any]) -> list[dict[str, Any]]:
    return n.from_upstream(copy.deepcopy(frame)).to_client


def valid(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for e in events:
        GA.validate_python(e)
    return events


# -- client → xAI -----------------------------------------------------------------------------------

def test_a_ga_session_update_is_reshaped_as_xai_takes_it() -> None:
    n = normalizer()
    out = n.from_client({"type": "session.update", "event_id": "c1", "session": {
        "type": "realtime", "model": "grok", "instructions": "Be brief.", "output_modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": {"type": "server_vad",
                            "silence_duration_ms": 400}, "transcription": {"model": "whisper-1", "language": "en"}},
                  "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}}}})
    assert out.to_client == []
    assert out.to_upstream == [{"type": "session.update", "event_id": "c1", "session": {
        "type": "realtime", "instructions": "Be brief.", "output_modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"language": "en"}},
                  "output": {"format": {"type": "audio/pcm", "rate": 24000}}},
        "voice": "eve", "turn_detection": {"type": "server_vad", "silence_duration_ms": 400}}}]


def test_nothing_xai_does_not_take_is_left_behind_when_the_update_is_only_that() -> None:
    out = normalizer().from_client({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"turn_detection": None, "transcription": {"model": "gpt-4o-transcribe"}}, "output": {"voice": "Ara"}}}})
    assert out.to_upstream == [{"type": "session.update", "session": {"type": "realtime", "voice": "Ara",
                                                                      "turn_detection": None}}]


@pytest.mark.parametrize(("asked", "sent"), [*OPENAI_TO_XAI_VOICE.items(), ("eve", "eve"), ("REX", "REX"), ("Leo", "Leo")])
def test_openai_voices_are_mapped_and_xais_pass_as_named(asked: str, sent: str) -> None:
    out = normalizer().from_client({"type": "session.update", "session": {"type": "realtime",
                                                                          "audio": {"output": {"voice": asked}}}})
    assert out.to_upstream[0]["session"]["voice"] == sent
    assert sent.lower() in ("eve", "ara", "rex", "sal", "leo")


@pytest.mark.parametrize(("session", "param"), [
    ({"audio": {"output": {"voice": "nova"}}}, "session.audio.output.voice"),
    ({"audio": {"output": {"voice": 7}}}, "session.audio.output.voice"),
    ({"voice": "bob"}, "session.voice"),
])
def test_a_voice_xai_has_not_refuses_the_whole_update_naming_the_field(session: dict[str, Any], param: str) -> None:
    n = normalizer()
    out = n.from_client({"type": "session.update", "event_id": "c9", "session": {"type": "realtime",
                                                                                 "instructions": "x", **session}})
    assert out.to_upstream == []
    (error,) = valid(out.to_client)
    assert error["type"] == "error" and error["error"]["param"] == param and error["error"]["event_id"] == "c9"
    assert error["error"]["type"] == "invalid_request_error"
    assert "eve, ara, rex, sal, leo" in error["error"]["message"] or error["error"]["code"] == "invalid_type"
    assert n.session["instructions"] == ""  # nothing applied


@pytest.mark.parametrize("etype", ["conversation.item.delete", "output_audio_buffer.clear"])
def test_events_xai_has_not_are_answered_with_an_error_and_never_sent(etype: str) -> None:
    n = normalizer()
    out = n.from_client({"type": etype, "event_id": "c2", "item_id": "item_1"})
    assert out.to_upstream == []
    (error,) = valid(out.to_client)
    assert error["error"]["code"] == "unsupported_event" and error["error"]["param"] == "type"
    assert error["error"]["event_id"] == "c2"


def test_retrieve_and_truncate_are_answered_here_from_the_items_xai_announced() -> None:
    # openai-agents retrieves at each input transcript and truncates at barge-in: xAI has neither
    n = normalizer()
    item = {"id": "item_9", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    n.from_upstream({"type": "conversation.created", "conversation": {"id": "conv_1"}})
    n.from_upstream({"type": "conversation.item.added", "previous_item_id": None, "item": item})
    out = n.from_client({"type": "conversation.item.retrieve", "event_id": "c1", "item_id": "item_9"})
    (retrieved,) = valid(out.to_client)
    assert retrieved["type"] == "conversation.item.retrieved" and retrieved["item"]["id"] == "item_9"
    out = n.from_client({"type": "conversation.item.truncate", "item_id": "item_9", "content_index": 0,
                         "audio_end_ms": 120})
    (truncated,) = valid(out.to_client)
    assert (truncated["type"], truncated["audio_end_ms"]) == ("conversation.item.truncated", 120)
    assert out.to_upstream == []
    (missing,) = valid(n.from_client({"type": "conversation.item.retrieve", "event_id": "c3",
                                      "item_id": "nope"}).to_client)
    assert missing["error"]["code"] == "item_not_found" and missing["error"]["event_id"] == "c3"


@pytest.mark.parametrize("event", [
    {"type": "input_audio_buffer.commit"}, {"type": "response.create", "response": {"instructions": "x"}},
    {"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "c", "output": "{}"}},
    {"type": "response.cancel"}, {"type": "input_audio_buffer.clear"},
])
def test_other_client_events_pass_unchanged(event: dict[str, Any]) -> None:
    out = normalizer().from_client(copy.deepcopy(event))
    assert out.to_upstream == [event] and out.to_client == []


def test_appends_pass_as_their_bytes_and_nothing_else_does() -> None:
    n = normalizer()
    for frame in (b'{"type":"input_audio_buffer.append","audio":"AAAA"}',
                  b'{"type": "input_audio_buffer.append", "audio": "AAAA"}'):
        assert n.fast_client(frame) is frame
    for frame in (b'{"type":"input_audio_buffer.appendix","audio":"AAAA"}', b'{"audio":"AAAA","type":"x"}',
                  b'{"type":"session.update","session":{}}'):
        assert n.fast_client(frame) is None


# -- xAI → client -----------------------------------------------------------------------------------

def test_session_created_is_synthesised_ahead_of_xais_first_event_and_never_twice() -> None:
    n = normalizer()
    n.from_client({"type": "session.update", "session": {"type": "realtime", "instructions": "Hi",
                                                         "audio": {"output": {"voice": "cedar"}}}})
    out = valid(up(n, {"type": "conversation.created", "event_id": "x1", "conversation": {"id": "conv_9"}}))
    assert [e["type"] for e in out] == ["session.created", "conversation.created"]
    session = out[0]["session"]
    # the session as xAI starts it: a client's update is the session once xAI says so (session.updated),
    # never before (the spend meter reads its audio formats)
    assert session["type"] == "realtime" and session["model"] == "grok" and session["instructions"] == ""
    assert session["audio"]["output"]["voice"] == "eve"
    assert up(n, {"type": "session.created", "event_id": "x2", "session": {"id": "sess_xai"}}) == []
    assert n.stats["session_created_synthesised"] == 1 and n.stats["session_created_dropped"] == 1


def test_xais_own_session_created_is_forwarded_in_the_ga_shape_and_none_synthesised() -> None:
    n = normalizer()
    (created,) = valid(up(n, {"type": "session.created", "event_id": "x1", "session": {
        "id": "sess_xai", "voice": "ara", "turn_detection": {"type": "server_vad"}, "modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcmu"}}}}}))
    assert created["session"] == {
        "id": "sess_xai", "type": "realtime", "object": "realtime.session", "output_modalities": ["audio"],
        "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": {"type": "server_vad"}},
                  "output": {"voice": "ara"}}}
    assert [e["type"] for e in up(n, {"type": "conversation.created", "event_id": "x2", "conversation": {}})] == \
        ["conversation.created"]
    assert n.stats["session_created_synthesised"] == 0


def test_pings_and_dtmf_never_reach_the_client_and_are_counted() -> None:
    n = opened()
    assert up(n, {"type": "ping"}) == [] and up(n, {"type": "ping", "event_id": "p"}) == []
    assert up(n, {"type": "input_audio_buffer.dtmf_event_received", "event": "5", "received_at": 1}) == []
    assert (n.stats["pings_dropped"], n.stats["dtmf_dropped"]) == (2, 1)


def test_usage_is_null_on_response_created_and_the_full_ga_shape_on_response_done() -> None:
    n = opened()
    (created,) = valid(up(n, {"type": "response.created", "event_id": "x", "response": {"id": "r1", "usage": {}}}))
    assert created["response"]["usage"] is None
    (done,) = valid(up(n, {"type": "response.done", "event_id": "y", "response": {"id": "r1", "usage": {}}}))
    assert done["response"]["usage"] == ZERO_USAGE == {
        "total_tokens": 0, "input_tokens": 0, "output_tokens": 0,
        "input_token_details": {"text_tokens": 0, "audio_tokens": 0, "cached_tokens": 0},
        "output_token_details": {"text_tokens": 0, "audio_tokens": 0}}
    for usage in (None, "absent"):
        response: dict[str, Any] = {"id": "r2"} if usage == "absent" else {"id": "r2", "usage": None}
        assert up(n, {"type": "response.done", "event_id": "z", "response": response})[0]["response"]["usage"] == ZERO_USAGE
    (partial,) = up(n, {"type": "response.done", "event_id": "w", "response": {
        "id": "r3", "usage": {"total_tokens": 7, "output_tokens": 7, "output_token_details": {"audio_tokens": 7}}}})
    assert partial["response"]["usage"] == {**ZERO_USAGE, "total_tokens": 7, "output_tokens": 7,
                                            "output_token_details": {"text_tokens": 0, "audio_tokens": 7}}


def test_role_tool_leaves_every_item_that_is_not_a_message() -> None:
    n = opened()
    call = {"id": "fc_1", "type": "function_call", "role": "tool", "name": "f", "call_id": "c", "arguments": "{}"}
    for etype in ("conversation.item.added", "conversation.item.done"):
        (event,) = valid(up(n, {"type": etype, "event_id": "x", "item": call}))
        assert "role" not in event["item"]
    (done,) = up(n, {"type": "response.done", "event_id": "y", "response": {"id": "r", "output": [call], "usage": {}}})
    assert "role" not in done["response"]["output"][0]
    message = {"id": "m", "type": "message", "role": "assistant", "content": []}
    assert up(n, {"type": "conversation.item.added", "event_id": "z", "item": message})[0]["item"]["role"] == "assistant"


def test_an_input_transcription_without_usage_gets_zero_usage_and_its_index() -> None:
    n = opened()
    (event,) = valid(up(n, {"type": "conversation.item.input_audio_transcription.completed", "event_id": "x",
                            "item_id": "i", "transcript": "hello"}))
    assert event["usage"] == ZERO_TRANSCRIPTION_USAGE and event["content_index"] == 0


def test_unknown_events_are_forwarded_unchanged_and_counted() -> None:
    n = opened()
    frame = {"type": "response.x_debug", "event_id": "x", "detail": {"a": 1}}
    assert up(n, frame) == [frame]
    assert up(n, {"type": "response.x_debug", "event_id": "y"}) != []
    assert n.unknown_events == 2 and n.unknown_types == {"response.x_debug": 2}


@pytest.mark.parametrize("frame", [{"type": ["a"]}, {"type": None}, {"no_type": 1}, {"type": {"x": 1}},
                                   {"type": "response.done", "response": "x"},
                                   {"type": "response.created", "response": {"output": "abc", "usage": {}}},
                                   {"type": "session.updated", "session": None},
                                   {"type": "response.output_text.delta", "output_index": "1", "item_id": 5}])
def test_odd_frames_are_forwarded_without_failing(frame: dict[str, Any]) -> None:
    assert len(up(opened(), frame)) == 1


def test_an_event_without_event_id_gets_one() -> None:
    (event,) = up(opened(), {"type": "input_audio_buffer.speech_started", "item_id": "i", "audio_start_ms": 0})
    assert event["event_id"]


def _delta(rid: str | None, item: str, *, compact: bool = False, **extra: Any) -> bytes:
    frame: dict[str, Any] = {"type": "response.output_audio.delta", "event_id": "e"}
    if rid is not None:
        frame["response_id"] = rid
    frame.update(item_id=item, delta=AUDIO, **extra)
    return json.dumps(frame, separators=(",", ":") if compact else (", ", ": ")).encode()


def test_an_audio_delta_gets_the_same_indices_by_bytes_as_by_parsing() -> None:
    fast, slow = opened(), opened()
    script = [{"type": "response.created", "event_id": "a", "response": {"id": "r1", "usage": {}}},
              {"type": "response.output_item.added", "event_id": "b", "response_id": "r1", "item": {"id": "m1"}},
              {"type": "response.output_item.added", "event_id": "c", "response_id": "r1", "item": {"id": "m2"}},
              {"type": "response.content_part.added", "event_id": "d", "response_id": "r1", "item_id": "m2"},
              {"type": "response.content_part.added", "event_id": "d", "response_id": "r1", "item_id": "m2"}]
    for frame in script:
        up(fast, frame), up(slow, frame)
    for compact in (False, True):
        payload = _delta("r1", "m2", compact=compact)
        spliced = fast.fast_upstream(payload)
        assert spliced is not None and spliced.startswith(payload[:36])  # the type stays first
        (parsed,) = up(slow, json.loads(payload))
        assert json.loads(spliced) == parsed and (parsed["output_index"], parsed["content_index"]) == (1, 1)
    complete = _delta("r1", "m2", output_index=1, content_index=1)
    assert fast.fast_upstream(complete) is complete


@pytest.mark.parametrize("payload", [
    _delta(None, "m1"),                                                          # no response id: parsed
    _delta('r"1', "m1"),                                                         # an escaped id: parsed
    b'{"type":"response.output_audio.delta","response_id":"r","item_id":"m","delta":"AA"}',  # no event_id
    b'{"event_id":"e","type":"response.output_audio.delta","response_id":"r","item_id":"m","delta":"AA"}',
    b'{"type":"response.output_text.delta","event_id":"e","response_id":"r","item_id":"m","delta":"A"}',
])
def test_what_the_byte_path_cannot_vouch_for_is_parsed(payload: bytes) -> None:
    assert opened().fast_upstream(payload) is None


def test_nothing_takes_the_byte_path_before_session_created_went_out() -> None:
    assert normalizer().fast_upstream(_delta("r", "m")) is None


def test_responses_are_tracked_up_to_a_bound() -> None:
    n = opened()
    for i in range(MAX_TRACKED_RESPONSES * 3):
        up(n, {"type": "response.output_item.added", "event_id": "x", "response_id": f"r{i}", "item": {"id": "i"}})
    assert len(n._responses) == MAX_TRACKED_RESPONSES


def test_a_text_responses_missing_parts_are_text_parts() -> None:
    n = opened()
    up(n, {"type": "response.created", "event_id": "a", "response": {"id": "r", "output_modalities": ["text"]}})
    (added,) = valid(up(n, {"type": "response.content_part.added", "event_id": "b", "response_id": "r", "item_id": "m"}))
    assert added["part"] == {"type": "text", "text": ""}
    (done,) = valid(up(n, {"type": "response.content_part.done", "event_id": "c", "response_id": "r", "item_id": "m"}))
    assert done["part"] == {"type": "text", "text": ""}


# -- a whole session, golden ------------------------------------------------------------------------

def _ev(etype: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"type": etype, "event_id": f"event_xai_{n}", **fields}


def xai_session() -> list[tuple[str, dict[str, Any]]]:
    """A voice session with a tool, as a GA client and xAI (quirks verbatim) play it."""
    msg, fc = {"response_id": "resp_1", "item_id": "msg_1"}, {"response_id": "resp_1", "item_id": "fc_1"}
    call = {"id": "fc_1", "object": "realtime.item", "type": "function_call", "status": "completed",
            "name": "get_weather", "call_id": "call_1", "arguments": '{"city":"Paris"}'}
    said = {"id": "msg_1", "object": "realtime.item", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_audio", "transcript": "Let me check."}]}
    return [
        ("client", {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["audio"],
                    "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
                    "audio": {"input": {"turn_detection": {"type": "server_vad"},
                                        "transcription": {"model": "whisper-1"}},
                              "output": {"voice": "alloy"}}}}),
        ("xai", _ev("conversation.created", 1, conversation={"id": "conv_1", "object": "realtime.conversation"})),
        ("xai", {"type": "ping"}),
        ("xai", _ev("session.updated", 2, session={"id": "sess_1", "object": "realtime.session", "voice": "sal",
                                                    "turn_detection": {"type": "server_vad"},
                                                    "output_modalities": ["audio"],
                                                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
                                                              "output": {"format": {"type": "audio/pcm", "rate": 24000}}},
                                                    "tools": [{"type": "function", "name": "get_weather",
                                                               "parameters": {"type": "object"}}]})),
        ("xai", _ev("input_audio_buffer.speech_started", 3, item_id="item_u", audio_start_ms=300)),
        ("xai", _ev("input_audio_buffer.speech_stopped", 4, item_id="item_u", audio_end_ms=1800)),
        ("xai", _ev("input_audio_buffer.committed", 5, item_id="item_u", previous_item_id=None)),
        ("xai", {"type": "input_audio_buffer.dtmf_event_received", "event": "5", "received_at": 17}),
        ("xai", _ev("conversation.item.input_audio_transcription.completed", 6, item_id="item_u",
                    transcript="What is the weather in Paris?")),
        ("xai", _ev("response.created", 7, response={"id": "resp_1", "object": "realtime.response",
                                                      "status": "in_progress", "output": [], "usage": {}})),
        ("xai", _ev("response.output_item.added", 8, response_id="resp_1",
                    item={**said, "status": "in_progress", "content": []})),
        ("xai", _ev("response.content_part.added", 9, **msg, part={"type": "audio", "transcript": ""})),
        ("xai", _ev("response.output_audio_transcript.delta", 10, **msg, delta="Let me check.")),
        ("xai_bytes", _ev("response.output_audio.delta", 11, **msg, delta=AUDIO)),
        ("xai", {"type": "ping"}),
        ("xai", _ev("response.output_audio.done", 12, **msg)),
        ("xai", _ev("response.output_audio_transcript.done", 13, **msg, transcript="Let me check.")),
        ("xai", _ev("response.content_part.done", 14, **msg)),
        ("xai", _ev("response.output_item.done", 15, response_id="resp_1", item=said)),
        ("xai", _ev("response.output_item.added", 16, response_id="resp_1",
                    item={**call, "status": "in_progress", "arguments": ""})),
        ("xai", _ev("conversation.item.added", 17, item={**call, "role": "tool", "arguments": ""})),
        ("xai", _ev("response.function_call_arguments.delta", 18, **fc, call_id="call_1", delta='{"city":"Paris"}')),
        ("xai", _ev("response.function_call_arguments.done", 19, **fc, call_id="call_1", name="get_weather",
                    arguments='{"city":"Paris"}')),
        ("xai", _ev("response.output_item.done", 20, response_id="resp_1", item=call)),
        ("xai", _ev("response.done", 21, response={"id": "resp_1", "object": "realtime.response", "status": "completed",
                                                    "output": [said, {**call, "role": "tool"}], "usage": {}})),
        ("client", {"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_1",
                                                                  "output": '{"forecast":"sunny"}'}}),
        ("client", {"type": "response.create"}),
        ("client", {"type": "conversation.item.truncate", "event_id": "c_t", "item_id": "msg_1", "content_index": 0,
                    "audio_end_ms": 200}),
        ("xai", _ev("response.created", 22, response={"id": "resp_2", "output": [], "usage": {}})),
        ("xai", _ev("response.output_item.added", 23, response_id="resp_2", item={"id": "msg_2", "type": "message",
                                                                                   "role": "assistant", "content": []})),
        ("xai", _ev("response.content_part.added", 24, response_id="resp_2", item_id="msg_2")),
        ("xai", _ev("response.output_audio_transcript.done", 25, response_id="resp_2", item_id="msg_2",
                    transcript="Sunny.")),
        ("xai", _ev("response.content_part.done", 26, response_id="resp_2", item_id="msg_2")),
        ("xai", _ev("x.unknown_extra", 27, note="forwarded")),
        ("xai", _ev("response.done", 28, response={"id": "resp_2", "status": "completed", "output": [], "usage": {}})),
    ]


def run_session() -> dict[str, Any]:
    n = normalizer()
    steps = []
    for side, event in xai_session():
        if side == "client":
            out = n.from_client(copy.deepcopy(event))
            steps.append({"client": event, "to_upstream": out.to_upstream, "to_client": out.to_client})
        elif side == "xai_bytes":
            payload = json.dumps(event).encode()
            spliced = n.fast_upstream(payload)
            assert spliced is not None
            steps.append({"xai": event, "to_client": [json.loads(spliced)]})
        else:
            steps.append({"xai": event, "to_client": n.from_upstream(copy.deepcopy(event)).to_client})
    return {"steps": steps, "stats": dict(sorted(n.stats.items())), "unknown_types": n.unknown_types}


def test_a_voice_session_with_a_tool_normalizes_as_reviewed() -> None:
    got = run_session()
    if os.environ.get("RTPROXY_GOLDEN") == "write":
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(GOLDEN.read_text())
    to_client = [e for step in got["steps"] for e in step["to_client"]]
    valid([e for e in to_client if e["type"] != "x.unknown_extra"])
    types = [e["type"] for e in to_client]
    assert types[:2] == ["session.created", "conversation.created"] and types.count("session.created") == 1
    assert "ping" not in types and "input_audio_buffer.dtmf_event_received" not in types
    first = [e for e in to_client if e.get("response_id") == "resp_1" and "output_index" in e]
    assert {e["output_index"] for e in first if e.get("item_id", e.get("item", {}).get("id")) == "msg_1"} == {0}
    assert {e["output_index"] for e in first if e.get("item_id", e.get("item", {}).get("id")) == "fc_1"} == {1}
    parts = [e["part"] for e in to_client if e["type"] == "response.content_part.done"]
    assert parts == [{"type": "audio", "transcript": "Let me check."}, {"type": "audio", "transcript": "Sunny."}]
    assert got["stats"]["pings_dropped"] == 2 and got["unknown_types"] == {"x.unknown_extra": 1}
