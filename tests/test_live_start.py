"""GPT-Live admission from the first frame, sans-IO: session.start in, the frame to send upstream
(or the API's refusal) out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtproxy.config import ModelConfig
from rtproxy.protocols.live.start import (
    MAX_START_FRAME_BYTES,
    StartRefused,
    check_delegation,
    delegated_models,
    parse_start,
)

LIVE = ModelConfig("gpt-live", "openai", "gpt-live-1", api_key="sk-x", api="live")


def start(session: Any, *, fork: bool = False, allowed: tuple[str, ...] = ("gpt-live",),
          delegation: tuple[str, ...] = ("luna",), **event: Any) -> Any:
    frame = json.dumps({"type": "session.start", "session": session, **event})
    return parse_start(frame, fork=fork, served=lambda n: LIVE if n in ("gpt-live", "gpt-live-1") else None,
                       allows=lambda n: n in allowed, allows_delegation=lambda n: n in delegation)


def test_an_admitted_start_is_rewritten_to_the_providers_model_and_keeps_everything_else() -> None:
    got = start({"model": "gpt-live", "instructions": "Be brief.",
                 "delegation": {"type": "responses", "responses": {"model": "luna"}}}, event_id="c1")
    assert got.model is LIVE
    sent = json.loads(got.frame)
    assert sent == {"type": "session.start", "event_id": "c1", "session": {
        "model": "gpt-live-1", "instructions": "Be brief.", "delegation": {"type": "responses", "responses": {"model": "luna"}}}}


@pytest.mark.parametrize("session, kwargs, status, code, param", [
    ({}, {}, 400, "missing_required_parameter", "session.model"),
    ({"model": ""}, {}, 400, "missing_required_parameter", "session.model"),
    ({"model": 7}, {}, 400, "missing_required_parameter", "session.model"),
    ({"model": "gpt-realtime"}, {}, 404, "model_not_found", "session.model"),
    ({"model": "gpt-live"}, {"allowed": ()}, 403, "model_not_allowed", "session.model"),
    ({"model": "gpt-live", "delegation": {"type": "responses", "responses": {"model": "secret"}}}, {}, 403,
     "model_not_allowed", "session.delegation.responses.model"),
    ({"model": "gpt-live", "delegation": {"type": "decisions", "decisions": {"model": 3}}}, {}, 403,
     "model_not_allowed", "session.delegation.responses.model"),
    ({"model": "gpt-live"}, {"fork": True}, 400, "unknown_parameter", "session.model"),
    ("not an object", {}, 400, "invalid_value", "session"),
])
def test_a_start_that_cannot_open_a_session_is_refused_with_the_apis_code_and_param(
        session: Any, kwargs: dict[str, Any], status: int, code: str, param: str) -> None:
    with pytest.raises(StartRefused) as refused:
        start(session, event_id="c9", **kwargs)
    r = refused.value
    assert (r.status, r.code, r.param, r.client_event_id) == (status, code, param, "c9")


@pytest.mark.parametrize("frame, code", [
    (b"{nope", "invalid_json"),
    (b'[1, 2]', "session_not_started"),
    (b'{"type": "session.update", "session": {}}', "session_not_started"),
    (b'{"type": "session.start", "session": {"model": "x"}}' + b" " * MAX_START_FRAME_BYTES, "start_too_large"),
])
def test_a_first_frame_that_is_not_a_session_start_is_refused(frame: bytes, code: str) -> None:
    with pytest.raises(StartRefused) as refused:
        parse_start(frame, fork=False, served=lambda n: LIVE, allows=lambda n: True, allows_delegation=lambda n: True)
    assert refused.value.code == code and refused.value.status == 400


def test_a_fork_needs_no_model_and_its_start_goes_up_unchanged() -> None:
    got = start({"delegation": {"type": "responses", "responses": {"model": "luna"}}}, fork=True)
    assert got.model is None and json.loads(got.frame)["session"] == {
        "delegation": {"type": "responses", "responses": {"model": "luna"}}}


def test_delegated_models_are_read_from_both_delegation_kinds() -> None:
    session = {"delegation": {"responses": {"model": "a"}, "decisions": {"model": "b"}}}
    assert delegated_models(session) == ["a", "b"]
    assert delegated_models({"delegation": "odd"}) == [] and delegated_models({}) == []
    assert check_delegation(session, lambda n: True) is None
    message, param = check_delegation(session, lambda n: n == "a") or ("", "")
    assert "'b'" in message and param == "session.delegation.responses.model"


@pytest.mark.parametrize("frame, message", [
    (b"{nope", "the first frame is not valid JSON"),
    (b'{"type": "session.update"}', "the first frame must be session.start, not 'session.update'"),
    (b'{"type": 5}', "the first frame must be session.start, not (not a string)"),
    (b'{"type": "session.start", "session": 3}', "session.start needs a session object"),
    (b'{"type": "session.start", "session": {}}', "session.start needs session.model"),
    (b'{"type": "session.start", "session": {"model": "' + b"n" * 300 + b'"}}',
     "model '" + "n" * 100 + "' is not served by this gateway as a GPT-Live model"),
    (b'{"type": "session.start", "session": {"model": "gpt-live", "delegation": {"responses": {"model": "x"}}}}',
     "this key may not use the delegated model 'x'"),
])
def test_each_refusal_says_what_was_wrong_in_words(frame: bytes, message: str) -> None:
    with pytest.raises(StartRefused) as refused:
        parse_start(frame, fork=False, served=lambda n: LIVE if n == "gpt-live" else None, allows=lambda n: True,
                    allows_delegation=lambda n: False)
    assert refused.value.message == message


def test_a_start_of_exactly_the_largest_size_is_read_and_a_non_string_event_id_is_not_echoed() -> None:
    head = b'{"type": "session.start", "event_id": 7, "session": {"model": "gpt-live", "instructions": "'
    frame = head + b"x" * (MAX_START_FRAME_BYTES - len(head) - 3) + b'"}}'
    assert len(frame) == MAX_START_FRAME_BYTES
    got = parse_start(frame, fork=False, served=lambda n: LIVE, allows=lambda n: True, allows_delegation=lambda n: True)
    assert got.model is LIVE
    with pytest.raises(StartRefused) as refused:
        parse_start(b'{"type": "session.start", "event_id": 7, "session": {}}', fork=False, served=lambda n: LIVE,
                    allows=lambda n: True, allows_delegation=lambda n: True)
    assert refused.value.client_event_id is None
    with pytest.raises(StartRefused) as fork:
        parse_start(b'{"type": "session.start", "session": {"model": "m"}}', fork=True, served=lambda n: LIVE,
                    allows=lambda n: True, allows_delegation=lambda n: True)
    assert fork.value.message == "a fork inherits its model: no session.model"


# -- found by the mutation run (2026-12-02) ---------------------------------------------------------

def test_the_refusals_say_exactly_why_and_name_the_field() -> None:
    with pytest.raises(StartRefused) as info:
        parse_start("x" * (MAX_START_FRAME_BYTES + 1), fork=False, served=lambda n: None, allows=lambda n: True,
                    allows_delegation=lambda n: True)
    assert (info.value.status, info.value.code, info.value.message, info.value.param) == (
        400, "start_too_large", f"session.start is larger than {MAX_START_FRAME_BYTES} bytes", None)
    with pytest.raises(StartRefused) as info:
        parse_start('{"type":"session.update"}', fork=False, served=lambda n: None, allows=lambda n: True,
                    allows_delegation=lambda n: True)
    assert (info.value.code, info.value.param) == ("session_not_started", "type")
    assert info.value.message.startswith("the first frame must be session.start, not ")
    with pytest.raises(StartRefused) as info:
        start({"model": "gpt-live"}, allowed=(), event_id="c9")
    assert (info.value.status, info.value.code, info.value.message, info.value.param, info.value.client_event_id) == (
        403, "model_not_allowed", "this key may not use model 'gpt-live'", "session.model", "c9")
