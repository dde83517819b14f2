"""Admission to the letter: every refusal's status, code and message, GPT-Live and transcription
admissions field by field, and the path and dialect rules at their edges (what a client reads
when it is refused is part of the contract; the mutation run found these only loosely pinned)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rtproxy.auth.admission import (
    Admission,
    HandshakeRequest,
    Rejection,
    admit,
    is_session_path,
    transcription_route,
)
from rtproxy.auth.keys import KeyStore
from rtproxy.auth.tokens import TokenClaims

from .conftest import ADMIN_KEY, USER_KEY, make_config
from .test_admission_table import NOW, SIGNER, req, run, token

OTHER_KEY = "rtp-other-key-0123456789"
MODELS = [
    {"name": "gpt-realtime", "provider": "local"},
    {"name": "other", "provider": "local"},
    {"name": "dep", "provider": "azure", "api_key": "az-secret", "api_base": "https://r.openai.azure.com",
     "api_version": "2025-04-01-preview"},
    {"name": "gpt-live-1", "provider": "local", "api": "live"},
    {"name": "whisper-1", "provider": "openai", "api_key": "sk-x", "api": "transcription"},
]


@pytest.fixture
def env(tmp_path: Path) -> tuple[KeyStore, Any]:
    cfg = make_config(tmp_path, models=MODELS, keys=[
        # a key limited to some models names its transcription models itself ("*": any)
        {"name": "user", "key": USER_KEY, "models": ["gpt-realtime", "dep", "gpt-live-1"], "transcription_models": ["*"]},
        {"name": "none", "key": OTHER_KEY, "models": ["gpt-realtime"], "transcription_models": ["nothing"]},
        {"name": "admin", "key": ADMIN_KEY, "role": "admin"}],
        server={"allowed_origins": ["https://app.example"]})
    return KeyStore.from_config(cfg), cfg


BEARER = f"Bearer {USER_KEY}"


@pytest.mark.parametrize(("request_", "expected"), [
    (req(origin="https://evil.example", authorization=BEARER),
     (403, "origin_not_allowed", "this Origin may not open realtime sessions")),
    (req("/v1/nope/", authorization=BEARER),
     (404, "not_found", "no realtime endpoint at '/v1/nope'; use /v1/realtime?model=...")),
    (req("/" + "x" * 150, authorization=BEARER),
     (404, "not_found", f"no realtime endpoint at {'/' + 'x' * 99!r}; use /v1/realtime?model=...")),
    (req(query="model=a&model=b", authorization=BEARER),
     (400, "ambiguous_model", "model is given more than once, with different values")),
    (req("/openai/realtime", "deployment=a&deployment=b", authorization=BEARER),
     (400, "ambiguous_model", "deployment is given more than once, with different values")),
    (req(),
     (401, "missing_api_key",
      "no API key: send 'Authorization: Bearer <key>' or the subprotocol 'openai-insecure-api-key.<key>'")),
    (req("/", authorization=BEARER), (404, "not_found", "no realtime endpoint at '/'; use /v1/realtime?model=...")),
    (req("/v1/realtimeX", authorization=BEARER),
     (404, "not_found", "no realtime endpoint at '/v1/realtimeX'; use /v1/realtime?model=...")),
    (req(authorization=f"Bearer {token(expires_at=NOW)}"),
     (401, "invalid_ephemeral_token", "the ephemeral token has expired; mint a new one")),
    (req(authorization="Bearer rtp-not-a-key-0123456789"),
     (401, "invalid_api_key", "the API key is not valid for this gateway")),
    (req(authorization=f"Bearer {token(key_name='gone')}"),
     (401, "invalid_ephemeral_token", "the key that minted this token no longer exists")),
    (req(query="model=other", authorization=f"Bearer {token()}"),
     (403, "model_not_allowed", "this ephemeral token opens model 'gpt-realtime' only")),
    (req(query="", authorization=BEARER), (400, "missing_model", "name a model: /v1/realtime?model=<model>")),
    (req(query="model=-x", authorization=BEARER),
     (400, "invalid_model", "the model name has characters that are not allowed")),
    (req(query="model=nope", authorization=BEARER),
     (404, "model_not_found", "model 'nope' is not served by this gateway")),
    (req(query="model=whisper-1", authorization=BEARER),
     (400, "wrong_api", "model 'whisper-1' serves transcription sessions, not realtime conversations: "
                        "add ?intent=transcription")),
    (req(query="model=gpt-live-1", authorization=BEARER),
     (400, "wrong_api", "model 'gpt-live-1' serves live sessions, not realtime conversations")),
    (req(query="model=other", authorization=BEARER),
     (403, "model_not_allowed", "this key may not use model 'other'")),
    (req(query="model=gpt-realtime&call_id=bad id", authorization=BEARER),
     (400, "invalid_call_id", "call_id must be one call id (letters, digits, '_' and '-')")),
    (req(query="call_id=rtc_1&call_id=rtc_2", authorization=BEARER),
     (400, "invalid_call_id", "call_id must be one call id (letters, digits, '_' and '-')")),
    (req("/realtime", "call_id=rtc_1", authorization=BEARER),
     (400, "invalid_call_id", "a call's sideband is /v1/realtime?call_id=<call_id>")),
    (req(query="intent=transcription&model=-x", authorization=BEARER),
     (400, "invalid_model", "the model name has characters that are not allowed")),
    (req(query="intent=transcription&model=gpt-realtime", authorization=BEARER),
     (404, "model_not_found", "transcription model 'gpt-realtime' is not served by this gateway")),
    (req(query="intent=transcription&model=whisper-1", authorization=f"Bearer {OTHER_KEY}"),
     (403, "model_not_allowed", "this key may not use transcription model 'whisper-1'")),
    (req(query="intent=transcription", authorization=f"Bearer {OTHER_KEY}"),
     (403, "model_not_allowed", "this key may use none of the gateway's transcription models")),
    (req("/v1/live/sessions", "", authorization=f"Bearer {token()}"),
     (403, "model_not_allowed", "this ephemeral token opens model 'gpt-realtime' only, not GPT-Live sessions")),
], ids=lambda v: v[1] if isinstance(v, tuple) else None)
def test_every_refusal_says_exactly_why(env: Any, request_: HandshakeRequest, expected: tuple[int, str, str]) -> None:
    got = run(env, request_)
    assert isinstance(got, Rejection), got
    assert (got.status, got.code, got.message) == expected


def test_an_origin_refusal_is_never_a_browser_one_and_echoes_nothing(env: Any) -> None:
    got = run(env, req(origin="https://evil.example",
                       sec_websocket_protocol=f"realtime, openai-insecure-api-key.{USER_KEY}"))
    assert isinstance(got, Rejection) and got.browser is False and got.subprotocol is None


def test_a_browser_that_sends_an_auth_header_too_is_not_a_browser(env: Any) -> None:
    bare = run(env, req(query="model=nope", sec_websocket_protocol="realtime", api_key=USER_KEY))
    assert isinstance(bare, Rejection) and bare.browser is False and bare.subprotocol == "realtime"
    header = run(env, req(query="model=nope", sec_websocket_protocol="realtime", authorization=BEARER))
    assert isinstance(header, Rejection) and header.browser is False
    browser = run(env, req(query="model=nope", sec_websocket_protocol=f"realtime, openai-insecure-api-key.{USER_KEY}"))
    assert isinstance(browser, Rejection) and browser.browser is True and browser.close_code == 4404


@pytest.mark.parametrize(("path", "op", "live_id"), [
    ("/v1/live/sessions", "start", None),
    ("/v1/live/sessions/", "start", None),
    ("/openai/v1/live/sessions", "start", None),
    ("/v1/live/sessions/live_abc-1/attach", "attach", "live_abc-1"),
    ("/v1/live/sessions/live_X_2/fork", "fork", "live_X_2"),
])
def test_a_live_handshake_is_admitted_for_its_key_with_no_model_yet(env: Any, path: str, op: str,
                                                                      live_id: str | None) -> None:
    got = run(env, req(path, "graceful_close=true", authorization=BEARER, x_rtproxy_end_user="eu",
                       x_rtproxy_tags="a, b", sec_websocket_protocol="realtime"))
    assert isinstance(got, Admission), got
    assert (got.api, got.live_op, got.live_id, got.model, got.key.name) == ("live", op, live_id, None, "user")
    assert (got.graceful_close, got.end_user, got.tags, got.ephemeral) == (True, "eu", ("a", "b"), False)
    assert (got.dialect, got.browser, got.subprotocol) == ("ga", False, "realtime")


def test_a_live_token_opens_its_model_for_its_end_user(env: Any) -> None:
    got = run(env, req("/v1/live/sessions", "", x_rtproxy_end_user="forged",
                       sec_websocket_protocol=f"realtime, openai-insecure-api-key."
                                              f"{token(model='gpt-live-1', end_user='minted')}"))
    assert isinstance(got, Admission), got
    assert (got.model.name, got.ephemeral, got.end_user, got.browser) == ("gpt-live-1", True, "minted", True)
    assert got.graceful_close is False
    plain = run(env, req("/v1/live/sessions", "", x_rtproxy_end_user="eu",
                         authorization=f"Bearer {token(model='gpt-live-1')}"))
    assert isinstance(plain, Admission) and plain.end_user == "eu" and plain.tags == ()
    many = run(env, req("/v1/live/sessions", "", authorization=BEARER,
                        x_rtproxy_tags=",".join(f"t{i}" for i in range(40))))
    assert isinstance(many, Admission) and many.tags == tuple(f"t{i}" for i in range(32))


def test_a_live_refusal_of_a_token_reaches_a_browser_as_a_browser_refusal(env: Any) -> None:
    got = run(env, req("/v1/live/sessions", "",
                       sec_websocket_protocol=f"realtime, openai-insecure-api-key.{token()}"))
    assert isinstance(got, Rejection) and (got.code, got.browser, got.subprotocol) == ("model_not_allowed", True,
                                                                                       "realtime")


@pytest.mark.parametrize("path", ["/v1/live/sessions/live_x/delete", "/v1/live/sessions/abc/attach",
                                  "/v1/live", "/openai/live/sessions"])
def test_other_live_like_paths_are_not_found(env: Any, path: str) -> None:
    got = run(env, req(path, "", authorization=BEARER))
    assert isinstance(got, Rejection) and got.code == "not_found"


@pytest.mark.parametrize(("path", "expected"), [
    ("/v1/realtime", True), ("/v1/realtime/", True), ("/v1/realtime//", True), ("/realtime", True),
    ("/openai/realtime", True), ("/openai/v1/realtime/", True), ("/v1/live/sessions", True),
    ("/v1/live/sessions/", True), ("/v1/live/sessions/live_1/attach", True), ("/openai/v1/live/sessions", True),
    ("/", False), ("", False), ("//", False), ("/v1/realtime/x", False), ("v1/realtime", False),
    ("/v1/realtimeX", False), ("/v1/live/sessionsX", False),
    ("/v1/realtimex", False), ("/v1/live/sessions/live_1", False),
])
def test_which_paths_open_sessions(path: str, expected: bool) -> None:
    assert is_session_path(path) is expected


@pytest.mark.parametrize(("path", "query", "headers", "dialect"), [
    ("/openai/realtime/", "deployment=dep&api-version=2024-10-01-preview", {}, "beta"),
    ("/openai/realtime", "deployment=dep", {"openai_beta": ""}, "ga"),
    ("/openai/realtime", "deployment=dep&api-version=", {}, "ga"),
    ("/v1/realtime", "model=gpt-realtime", {"openai_beta": "realtime=v1"}, "beta"),
    ("/v1/realtime", "model=gpt-realtime", {"openai_beta": "realtime=v10"}, "beta"),  # matched as a substring of the header
])
def test_dialect_edges(env: Any, path: str, query: str, headers: dict[str, str], dialect: str) -> None:
    got = run(env, req(path, query, api_key=USER_KEY, **headers))
    assert isinstance(got, Admission), got
    assert got.dialect == dialect


def test_a_transcription_token_routes_by_its_model_and_says_so_upstream(env: Any) -> None:
    got = run(env, req(query="intent=conversation", authorization=f"Bearer {token(model='whisper-1')}"))
    assert isinstance(got, Admission), got
    assert (got.intent, got.model.name, got.forward_query) == ("transcription", "whisper-1",
                                                             (("intent", "transcription"),))
    conversation = run(env, req(query="intent=transcription", authorization=f"Bearer {token()}"))
    assert isinstance(conversation, Admission)  # a conversation token opens a conversation
    assert (conversation.intent, conversation.forward_query) == ("conversation", ())


def test_the_transcription_route_for_a_named_model_and_for_the_only_one(env: Any) -> None:
    keys, cfg = env
    user = keys.by_name("user")
    assert transcription_route("whisper-1", user, cfg).name == "whisper-1"  # type: ignore[union-attr]
    assert transcription_route(None, user, cfg).name == "whisper-1"  # type: ignore[union-attr]
    assert transcription_route("", user, cfg).name == "whisper-1"  # type: ignore[union-attr]


def test_a_gateway_with_no_transcription_models_says_how_to_add_one(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "local"}],
                      keys=[{"name": "k", "key": USER_KEY}])
    key = KeyStore.from_config(cfg).by_name("k")
    assert transcription_route(None, key, cfg) == (  # type: ignore[arg-type]
        404, "model_not_found", 'this gateway serves no transcription models ([[models]] api = "transcription")')


def test_transcription_models_on_several_upstreams_must_be_named(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, models=[
        {"name": "a", "provider": "openai", "api_key": "sk-a", "api": "transcription"},
        {"name": "b", "provider": "openai", "api_key": "sk-a", "api": "transcription"},  # the same upstream
        {"name": "c", "provider": "local", "api": "transcription"}], keys=[{"name": "k", "key": USER_KEY}])
    keys = KeyStore.from_config(cfg)
    key = keys.by_name("k")
    assert transcription_route(None, key, cfg) == (  # type: ignore[arg-type]
        400, "missing_model", "this gateway's transcription models are on several upstreams: name one, "
                              "/v1/realtime?intent=transcription&model=<model>")
    same = make_config(tmp_path, models=[
        {"name": "a", "provider": "openai", "api_key": "sk-a", "api": "transcription"},
        {"name": "b", "provider": "openai", "api_key": "sk-a", "api": "transcription"}],
        keys=[{"name": "k", "key": USER_KEY}])
    assert transcription_route(None, KeyStore.from_config(same).by_name("k"), same).name == "a"  # type: ignore[union-attr, arg-type]


def test_a_call_sideband_carries_its_attribution_and_credential_kind(env: Any) -> None:
    got = run(env, req("/openai/v1/realtime", "call_id=rtc_9", authorization=f"Bearer {token()}",
                       x_rtproxy_end_user=" eu\x00 "))
    assert isinstance(got, Admission), got
    assert (got.call_id, got.model, got.end_user, got.ephemeral, got.dialect) == ("rtc_9", None, "eu", True, "ga")
    assert (got.key.name, got.subprotocol, got.browser) == ("user", None, False)
    browser = run(env, req(query="call_id=rtc_9", sec_websocket_protocol=f"realtime, openai-insecure-api-key.{USER_KEY}"))
    assert isinstance(browser, Admission) and (browser.subprotocol, browser.browser) == ("realtime", True)


def test_a_token_is_checked_against_the_clock_unless_a_time_is_given(env: Any) -> None:
    keys, cfg = env
    clock = int(time.time())
    fresh = SIGNER.mint(TokenClaims("user", "gpt-realtime", expires_at=clock + 60, issued_at=clock))
    assert isinstance(admit(req(authorization=f"Bearer {fresh}"), keys, cfg, tokens=SIGNER), Admission)
    assert isinstance(admit(req(authorization=f"Bearer {fresh}"), keys, cfg, tokens=SIGNER, now=clock + 61),
                      Rejection)
    # minted long ago: with no time given it is the clock's, not some fixed default under which
    # no token would ever expire
    old = SIGNER.mint(TokenClaims("user", "gpt-realtime", expires_at=1000, issued_at=900))
    got = admit(req(authorization=f"Bearer {old}"), keys, cfg, tokens=SIGNER)
    assert isinstance(got, Rejection) and got.message == "the ephemeral token has expired; mint a new one"


def test_a_request_without_a_user_agent_or_subprotocols(env: Any) -> None:
    got = run(env, req(authorization=BEARER))
    assert isinstance(got, Admission)
    assert (got.browser, got.subprotocol, got.end_user, got.tags, got.intent) == (False, None, None, (), "conversation")
