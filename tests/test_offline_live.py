"""The offline model's GPT-Live, driven sans-IO; every server event it sends must validate
against the official SDK's ``openai.types.live`` models, and every nested backend event against
``openai.types.responses``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Union, get_args

import pytest
from openai.types.live import ServerEvent
from openai.types.responses import ResponseStreamEvent
from pydantic import Field, TypeAdapter

from rtproxy.offline.live import OfflineLiveModel

from .audio_fixtures import append_events, utterance


def _strict(union: Any) -> TypeAdapter[Any]:
    members = get_args(get_args(union)[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # type: ignore[valid-type]  # noqa: UP007


LIVE = _strict(ServerEvent)
RESPONSES = _strict(ResponseStreamEvent)
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
RESPONSES_DELEGATION = {"type": "responses", "responses": {"model": "gpt-5.6-luna", "tools": TOOLS}}


class LiveDriver:
    def __init__(self, **kwargs: Any) -> None:
        self.model = OfflineLiveModel(**kwargs)
        self.sent: list[dict[str, Any]] = []

    def take(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for event in events:
            LIVE.validate_python(event)
            if event["type"] == "response.event":
                RESPONSES.validate_python(event["event"])
        self.sent += events
        return events

    def send(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return self.take(self.model.receive(json.dumps(event)))

    def drain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while self.model.responding:
            out += self.take(self.model.next_chunk())
        return out

    def start(self, **session: Any) -> dict[str, Any]:
        (started,) = self.send({"type": "session.start", "event_id": "c1", "session": {"model": "gpt-live-1", **session}})
        return started

    def speak(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for append in append_events(utterance(speech_ms=900)):
            out += self.send({"type": "session.input_audio.append", "audio": append["audio"]})
        return out + self.drain()


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_it_stays_silent_until_session_start_and_refuses_unknown_session_keys() -> None:
    d = LiveDriver()
    (err,) = d.send({"type": "session.input_audio.append", "audio": ""})
    assert err["error"]["code"] == "session_not_started"
    (err,) = d.send({"type": "session.start", "session": {"model": "gpt-live-1", "voice": "x"}})
    assert (err["error"]["code"], err["error"]["param"]) == ("unknown_parameter", "session.voice")
    started = d.start(instructions="Be brief.")
    assert started["client_event_id"] == "c1" and started["session"]["id"].startswith("live_")
    assert started["session"]["model"] == "gpt-live-1" and started["session"]["delegation"] == {"type": "client"}


def test_a_voice_turn_under_client_delegation_is_delegated_and_the_commentary_is_spoken() -> None:
    d = LiveDriver()
    d.start()
    events = d.speak()
    heard = "".join(e["delta"] for e in events if e["type"] == "session.input_transcript.delta")
    assert heard.startswith("(spoken, ")
    (delegated,) = [e for e in events if e["type"] == "session.delegation.created"]
    assert delegated["delegation"]["target"] == "client"
    said = "".join(e["delta"] for e in events if e["type"] == "session.output_transcript.delta")
    assert said == "One moment."
    assert "event_id" not in next(e for e in events if e["type"] == "session.output_audio.delta")
    acked = d.send({"type": "session.commentary.append", "event_id": "c2",
                    "delegation_id": delegated["delegation"]["id"], "content": "It is sunny in Paris."})
    assert types(acked) == ["session.commentary.appended"] and acked[0]["client_event_id"] == "c2"
    said = "".join(e["delta"] for e in d.drain() if e["type"] == "session.output_transcript.delta")
    assert said == " It is sunny in Paris."  # a fragment continuing earlier speech starts with a space
    # in client mode the backend is not there
    assert d.send({"type": "response.create"})[0]["type"] == "error"


def test_a_typed_turn_and_a_tool_round_trip_under_responses_delegation() -> None:
    d = LiveDriver()
    d.start(delegation=RESPONSES_DELEGATION)
    assert d.send({"type": "response.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "What is the weather in Paris? use get_weather"}]}}) == []
    assert d.send({"type": "response.create", "event_id": "c3"}) == []
    first = d.drain()
    inner = [e["event"] for e in first if e["type"] == "response.event"]
    assert first[0]["client_event_id"] == "c3" and inner[0]["type"] == "response.created"
    (call,) = [i["item"] for i in inner if i["type"] == "response.output_item.done"]
    assert (call["type"], call["name"], json.loads(call["arguments"])) == ("function_call", "get_weather",
                                                                           {"city": "Paris"})
    completed = inner[-1]
    assert completed["type"] == "response.completed" and completed["response"]["usage"]["input_tokens"] > 0
    assert completed["response"]["model"] == "gpt-5.6-luna"
    d.send({"type": "response.item.create", "item": {"type": "function_call_output", "call_id": call["call_id"],
                                                     "output": '{"temp_c": 18}'}})
    d.send({"type": "response.create"})
    second = d.drain()
    text = "".join(e["event"]["delta"] for e in second if e["type"] == "response.event"
                   and e["event"]["type"] == "response.output_text.delta")
    assert text == 'get_weather returned {"temp_c": 18}'
    said = "".join(e["delta"] for e in second if e["type"] == "session.output_transcript.delta")
    assert said == text
    usage = [e["event"]["response"]["usage"] for e in second if e["type"] == "response.event"
             and e["event"]["type"] == "response.completed"][0]
    assert usage["input_tokens_details"]["cached_tokens"] > 0  # the prefix the first response saw


def backend_call(d: LiveDriver, text: str) -> dict[str, Any] | None:
    """The function call the backend makes for a typed ``text`` (``None``: it answered in words)."""
    d.send({"type": "response.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": text}]}})
    d.send({"type": "response.create"})
    done = [e["event"]["item"] for e in d.drain() if e["type"] == "response.event"
            and e["event"]["type"] == "response.output_item.done"]
    return next((item for item in done if item["type"] == "function_call"), None)


def test_the_backend_calls_the_tool_a_question_is_about_as_the_realtime_model_does() -> None:
    """"What is the weather in Paris?" names no tool; its topic calls get_weather, as it does in a
    Realtime session (the one brain); tool_choice "none" calls nothing."""
    d = LiveDriver()
    d.start(delegation=RESPONSES_DELEGATION)
    call = backend_call(d, "What is the weather in Paris?")
    assert call is not None and (call["name"], json.loads(call["arguments"])) == ("get_weather", {"city": "Paris"})
    quiet = LiveDriver()
    quiet.start(delegation={"type": "responses", "responses": {**RESPONSES_DELEGATION["responses"],
                                                               "tool_choice": "none"}})
    assert backend_call(quiet, "What is the weather in Paris?") is None


def test_usage_rises_with_the_session_timeline_and_close_reports_the_final_seconds() -> None:
    d = LiveDriver()
    d.start(delegation=RESPONSES_DELEGATION)
    assert d.take(d.model.usage_tick()) == []  # nothing billed yet
    events = d.speak()  # a voice turn under Responses delegation: delegated, answered, spoken
    assert "session.delegation.created" in types(events)
    assert any(e["type"] == "response.event" and e["event"]["type"] == "response.completed" for e in events)
    (update,) = d.take(d.model.usage_tick())
    assert update["usage"]["seconds"] == d.model.seconds >= 2
    assert d.take(d.model.usage_tick()) == []  # only when the seconds rose
    (closed,) = d.send({"type": "session.close", "event_id": "c9"})
    assert (closed["reason"], closed["usage"]["seconds"], closed["client_event_id"]) == \
        ("close_requested", d.model.seconds, "c9")
    assert d.model.closed


@pytest.mark.parametrize("event, code", [
    ({"type": "session.update", "session": {"instructions": "x"}}, "unknown_parameter"),
    ({"type": "session.instructions.append", "content": "x"}, "missing_required_parameter"),
    ({"type": "session.thinking.append", "content": "x", "delegation_id": "nope"}, "invalid_value"),
    ({"type": "response.item.create", "item": {"type": "message"}}, "invalid_request_error"),
    ({"type": "nope"}, "invalid_value"),
])
def test_invalid_client_events_get_error_events(event: dict[str, Any], code: str) -> None:
    d = LiveDriver()
    d.start()
    (err,) = d.send(event)
    assert err["type"] == "error" and err["error"]["code"] == code


def test_mute_fixtures_and_forks_validate_and_a_fork_inherits_its_source() -> None:
    d = LiveDriver()
    d.start(instructions="Be brief.", store=True)
    assert types(d.send({"type": "session.input_audio.mute", "event_id": "m"})) == ["session.input_audio.muted"]
    assert [e for e in d.speak() if e["type"] == "session.input_transcript.delta"] == []  # muted: it heard silence
    assert types(d.send({"type": "session.input_audio.unmute"})) == ["session.input_audio.unmuted"]
    fixture = "AAAA" * 1200
    assert types(d.send({"type": "session.output_audio.fixture.play", "audio": fixture})) == [
        "session.output_audio.fixture.playing", "session.output_audio.fixture.played"]
    fork = LiveDriver(op="fork", source=d.model)
    (err,) = fork.send({"type": "session.start", "session": {"model": "gpt-live-1"}})
    assert err["error"]["code"] == "unknown_parameter"  # a fork inherits its model
    (started,) = fork.send({"type": "session.start", "session": {}})
    assert started["session"]["model"] == "gpt-live-1" and started["session"]["instructions"] == "Be brief."
    assert started["session"]["id"] != d.model.session_id
