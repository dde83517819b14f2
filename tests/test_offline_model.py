"""The offline model, driven sans-IO; every event it sends must validate against the official SDK."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Union, get_args

import pytest
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime import RealtimeServerEvent
from pydantic import Field, TypeAdapter

from rtproxy.offline.model import OfflineModel

from .audio_fixtures import append_events, silence, utterance


def _strict(union: Any) -> TypeAdapter[Any]:
    members = get_args(get_args(union)[0])  # unwrap Annotated -> Union members
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # type: ignore[valid-type]


GA = _strict(RealtimeServerEvent)
BETA = _strict(BetaServerEvent)
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


class Driver:
    """Feeds a model client events and collects (and validates) everything it sends."""

    def __init__(self, dialect: str = "ga", intent: str = "conversation") -> None:
        self.model = OfflineModel(dialect=dialect, intent=intent)
        self.adapter = BETA if dialect == "beta" else GA
        self.sent: list[dict[str, Any]] = []
        self._take(self.model.start())

    def _take(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for event in events:
            self.adapter.validate_python(event)  # raises on anything the SDK would not accept
        self.sent.extend(events)
        return events

    def send(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return self._take(self.model.receive(json.dumps(event)))

    def drain(self, max_chunks: int = 10_000) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _ in range(max_chunks):
            if not self.model.responding:
                break
            out.extend(self._take(self.model.next_chunk()))
        return out

    def types(self, events: list[dict[str, Any]] | None = None) -> list[str]:
        return [e["type"] for e in (self.sent if events is None else events)]


def user_message(text: str) -> dict[str, Any]:
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}


def test_text_turn_streams_a_deterministic_reply() -> None:
    d = Driver()
    assert d.types() == ["session.created"]
    d.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"],
                                                  "instructions": "Be terse."}})
    assert d.types(d.send(user_message("Hello model"))) == ["conversation.item.added", "conversation.item.done"]
    created = d.send({"type": "response.create"})
    assert d.types(created) == ["response.created"]
    events = d.drain()
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "You said: Hello model"
    done = events[-1]
    assert done["type"] == "response.done"
    assert done["response"]["status"] == "completed"
    usage = done["response"]["usage"]
    assert usage["output_tokens"] == usage["output_token_details"]["text_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # the same conversation gives the same usage: deterministic
    again = Driver()
    again.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"],
                                                      "instructions": "Be terse."}})
    again.send(user_message("Hello model"))
    again.send({"type": "response.create"})
    assert again.drain()[-1]["response"]["usage"] == usage


def test_audio_reply_streams_pcm16_and_its_transcript() -> None:
    d = Driver()
    d.send(user_message("Tell me something"))
    d.send({"type": "response.create"})
    events = d.drain()
    audio = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    assert transcript == "You said: Tell me something"
    assert len(audio) > 24000 and len(audio) % 2 == 0  # over half a second of 16-bit samples
    usage = events[-1]["response"]["usage"]
    assert usage["output_token_details"]["audio_tokens"] > 0
    assert events[-1]["response"]["output"][0]["content"][0] == {"type": "output_audio", "transcript": transcript}


def test_voice_turn_with_server_vad_transcribes_and_answers() -> None:
    d = Driver()
    d.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"], "audio": {
        "input": {"transcription": {"model": "gpt-4o-mini-transcribe"},
                  "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}}})
    events: list[dict[str, Any]] = []
    for append in append_events(utterance(speech_ms=900)):
        events.extend(d.send(append))
    events.extend(d.drain())
    types = d.types(events)
    assert types[:7] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                         "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
                         "conversation.item.input_audio_transcription.delta",
                         "conversation.item.input_audio_transcription.completed"]
    assert types[7] == "response.created" and types[-1] == "response.done"
    started, stopped = events[0], events[1]
    assert 0 <= started["audio_start_ms"] <= 300 and 1150 <= stopped["audio_end_ms"] <= 1250
    transcript = events[6]["transcript"]
    usage = events[6]["usage"]  # gpt-4o-mini-transcribe bills tokens: audio in, the transcript's text out
    assert usage["type"] == "tokens" and usage["input_token_details"]["audio_tokens"] > 0 and usage["output_tokens"] > 0
    assert transcript.startswith("(spoken, ")
    reply = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert reply == f"You said: {transcript}"
    assert events[-1]["response"]["usage"]["input_token_details"]["audio_tokens"] > 0


def test_push_to_talk_commits_on_request_and_refuses_an_empty_buffer() -> None:
    d = Driver()
    d.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}})
    (error,) = d.send({"type": "input_audio_buffer.commit", "event_id": "evt_1"})
    assert error["error"]["code"] == "input_audio_buffer_commit_empty" and error["error"]["event_id"] == "evt_1"
    for append in append_events(utterance()):
        assert d.send(append) == []  # no VAD: nothing happens until the commit
    assert d.types(d.send({"type": "input_audio_buffer.commit"}))[0] == "input_audio_buffer.committed"
    d.send({"type": "response.create"})
    assert d.drain()[-1]["response"]["status"] == "completed"


def test_tool_call_round_trip() -> None:
    d = Driver()
    d.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"], "tools": TOOLS}})
    d.send(user_message("Use get_weather for Paris please"))
    d.send({"type": "response.create"})
    events = d.drain()
    call = events[-1]["response"]["output"][0]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    args = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert args == call["arguments"]
    d.send({"type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": call["call_id"], "output": '{"temp_c": 18}'}})
    d.send({"type": "response.create"})
    events = d.drain()
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == 'get_weather returned {"temp_c": 18}'
    usage = events[-1]["response"]["usage"]
    cached = usage["input_token_details"]["cached_tokens"]
    assert cached > 0 and cached % 16 == 0  # the first response's context is the cached prefix
    assert usage["input_token_details"]["cached_tokens_details"]["text_tokens"] == cached


def test_cancel_ends_the_response_as_cancelled() -> None:
    d = Driver()
    d.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    d.send(user_message("one two three four five six seven eight nine ten"))
    d.send({"type": "response.create"})
    d._take(d.model.next_chunk())
    d._take(d.model.next_chunk())
    events = d.send({"type": "response.cancel"})
    assert d.types(events)[-1] == "response.done"
    assert events[-1]["response"]["status"] == "cancelled"
    assert events[-1]["response"]["status_details"]["reason"] == "client_cancelled"
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"
    assert not d.model.responding
    (error,) = d.send({"type": "response.cancel"})
    assert error["error"]["code"] == "response_cancel_not_active"


def test_speech_during_a_response_interrupts_it() -> None:
    d = Driver()
    d.send(user_message("a long reply please with many many words in it"))
    d.send({"type": "response.create"})
    d._take(d.model.next_chunk())
    events: list[dict[str, Any]] = []
    for append in append_events(silence(100) + utterance()):
        events.extend(d.send(append))
    done = [e for e in events if e["type"] == "response.done"]
    assert done[0]["response"]["status"] == "cancelled"
    assert done[0]["response"]["status_details"]["reason"] == "turn_detected"


@pytest.mark.parametrize(("event", "code"), [
    ("not json", "invalid_json"),
    ('["a list"]', "invalid_event"),
    ('{"type": "no.such.event"}', "invalid_value"),
    ('{"type": "session.update", "session": {"instructions": "x"}}', "missing_required_parameter"),
    ('{"type": "session.update", "session": {"type": "realtime", "tools": [{"type": "function"}]}}', "invalid_value"),
    ('{"type": "input_audio_buffer.append", "audio": "***"}', "invalid_value"),
    ('{"type": "conversation.item.create", "item": {"type": "bogus"}}', "invalid_value"),
    ('{"type": "conversation.item.delete", "item_id": "nope"}', "item_not_found"),
])
def test_invalid_client_events_get_error_events(event: str, code: str) -> None:
    d = Driver()
    (error,) = d._take(d.model.receive(event))
    assert error["type"] == "error" and error["error"]["code"] == code


def test_a_second_response_create_while_responding_is_an_error() -> None:
    d = Driver()
    d.send(user_message("hi"))
    d.send({"type": "response.create"})
    (error,) = d.send({"type": "response.create"})
    assert error["error"]["code"] == "conversation_already_has_active_response"


def test_beta_sessions_use_beta_event_names_and_validate() -> None:
    d = Driver("beta")
    assert d.types() == ["session.created", "conversation.created"]
    d.send({"type": "session.update", "session": {"modalities": ["text", "audio"], "tools": TOOLS,
                                                  "input_audio_transcription": {"model": "whisper-1"}}})
    assert d.types(d.send(user_message("hello"))) == ["conversation.item.created"]
    d.send({"type": "response.create"})
    types = set(d.types(d.drain()))
    assert {"response.audio.delta", "response.audio_transcript.delta", "response.audio.done"} <= types
    assert not any(t.startswith(("response.output_text", "response.output_audio")) for t in types)
    for append in append_events(utterance()):
        d.send(append)
    d.drain()
    assert "conversation.item.input_audio_transcription.completed" in d.types()


def test_a_responses_metadata_comes_back_on_created_and_done() -> None:
    """Clients (livekit's plugin) match a response to their request by response.metadata."""
    d = Driver()
    d.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    d.send(user_message("Hi"))
    [created] = d.send({"type": "response.create", "response": {"metadata": {"client_event_id": "ce_1"}}})
    assert created["response"]["metadata"] == {"client_event_id": "ce_1"}
    assert d.drain()[-1]["response"]["metadata"] == {"client_event_id": "ce_1"}
    [created] = d.send({"type": "response.create"})
    assert created["response"]["metadata"] is None
    d.drain()
    [error] = d.send({"type": "response.create", "response": {"metadata": {"k": 5}}})
    assert error["type"] == "error" and error["error"]["param"] == "response.metadata"
