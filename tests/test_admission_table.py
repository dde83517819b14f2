"""Admission, case by case: every credential form, dialect, refusal (status and code), echo and
attribution rule of :func:`rtproxy.auth.admission.admit`, as plain values (no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rtproxy.auth.admission import Admission, HandshakeRequest, Rejection, admit, select_subprotocol
from rtproxy.auth.keys import KeyStore
from rtproxy.auth.tokens import TokenClaims, TokenSigner

from .conftest import ADMIN_KEY, USER_KEY, make_config

PREFIX = "openai-insecure-api-key."
SIGNER = TokenSigner(b"admission-table-secret-0123")
NOW = 1_900_000_000


def req(path: str = "/v1/realtime", query: str = "model=gpt-realtime", **headers: str) -> HandshakeRequest:
    return HandshakeRequest(path, query, tuple((k.replace("_", "-").lower(), v) for k, v in headers.items()),
                            client_ip="10.0.0.1")


@pytest.fixture
def env(tmp_path: Path) -> tuple[KeyStore, Any]:
    cfg = make_config(tmp_path, models=[
        {"name": "gpt-realtime", "provider": "local"},
        {"name": "other", "provider": "local"},
        {"name": "dep", "provider": "azure", "api_key": "az-secret", "api_base": "https://r.openai.azure.com",
         "api_version": "2025-04-01-preview"},
    ], keys=[{"name": "user", "key": USER_KEY, "models": ["gpt-realtime", "dep"]},
             {"name": "admin", "key": ADMIN_KEY, "role": "admin"}],
        server={"allowed_origins": ["https://app.example"]})
    return KeyStore.from_config(cfg), cfg


def run(env: tuple[KeyStore, Any], request: HandshakeRequest) -> Admission | Rejection:
    keys, cfg = env
    return admit(request, keys, cfg, tokens=SIGNER, now=NOW)


def token(**kw: Any) -> str:
    claims = {"key_name": "user", "model": "gpt-realtime", "expires_at": NOW + 60, "issued_at": NOW, **kw}
    return SIGNER.mint(TokenClaims(**claims))


# -- credentials ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "key", "browser"), [
    ({"authorization": f"Bearer {USER_KEY}"}, "user", False),
    ({"authorization": f"bearer {USER_KEY}"}, "user", False),            # the scheme is case-insensitive
    ({"authorization": f"Bearer   {USER_KEY}  "}, "user", False),        # spaces around the token
    ({"api_key": USER_KEY}, "user", False),                              # Azure's header
    ({"api_key": f"  {USER_KEY} "}, "user", False),
    ({"sec_websocket_protocol": f"realtime, {PREFIX}{USER_KEY}"}, "user", True),
    ({"sec_websocket_protocol": f"{PREFIX}{ADMIN_KEY}, realtime"}, "admin", True),
    # Bearer first, then api-key, then the subprotocol
    ({"authorization": f"Bearer {ADMIN_KEY}", "api_key": USER_KEY}, "admin", False),
    ({"api_key": ADMIN_KEY, "sec_websocket_protocol": f"realtime, {PREFIX}{USER_KEY}"}, "admin", False),
    ({"authorization": f"Basic {USER_KEY}", "api_key": ADMIN_KEY}, "admin", False),  # not a Bearer: next
    ({"authorization": "Bearer ", "sec_websocket_protocol": f"realtime, {PREFIX}{USER_KEY}"}, "user", True),
])
def test_each_credential_form_finds_its_key(env: Any, headers: dict[str, str], key: str, browser: bool) -> None:
    got = run(env, req(**headers))
    assert isinstance(got, Admission), got
    assert (got.key.name, got.browser, got.ephemeral) == (key, browser, False)


@pytest.mark.parametrize(("headers", "status", "code", "browser"), [
    ({}, 401, "missing_api_key", False),
    ({"authorization": "Bearer"}, 401, "missing_api_key", False),
    ({"authorization": "Bearer    "}, 401, "missing_api_key", False),
    ({"authorization": f"Token {USER_KEY}"}, 401, "missing_api_key", False),
    ({"api_key": "   "}, 401, "missing_api_key", False),
    ({"sec_websocket_protocol": f"realtime, {PREFIX}"}, 401, "missing_api_key", True),   # a prefix, no key
    ({"sec_websocket_protocol": "realtime"}, 401, "missing_api_key", True),              # a browser, no key
    ({"authorization": "Bearer not-a-key-0123456789"}, 401, "invalid_api_key", False),
    ({"sec_websocket_protocol": f"realtime, {PREFIX}not-a-key-0123456789"}, 401, "invalid_api_key", True),
])
def test_missing_and_wrong_credentials_are_refused(env: Any, headers: dict[str, str], status: int, code: str,
                                                   browser: bool) -> None:
    got = run(env, req(**headers))
    assert isinstance(got, Rejection)
    assert (got.status, got.code, got.browser) == (status, code, browser)
    assert USER_KEY not in got.message and "not-a-key" not in got.message


def test_a_browser_rejection_closes_with_4000_plus_the_status_and_echoes_realtime(env: Any) -> None:
    got = run(env, req(sec_websocket_protocol=f"realtime, {PREFIX}not-a-key-0123456789"))
    assert isinstance(got, Rejection)
    assert got.close_code == 4401 and got.subprotocol == "realtime" and got.error_type == "authentication_error"


@pytest.mark.parametrize(("status", "error_type"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"), (404, "invalid_request_error"),
    (429, "rate_limit_error"), (499, "invalid_request_error"), (500, "server_error"), (503, "server_error")])
def test_rejection_error_types(status: int, error_type: str) -> None:
    assert Rejection(status, "c", "m", browser=False).error_type == error_type


def test_the_subprotocol_echo_is_realtime_or_nothing_never_the_key() -> None:
    assert select_subprotocol(["realtime", PREFIX + "k"]) == "realtime"
    assert select_subprotocol([PREFIX + "k", "realtime"]) == "realtime"
    assert select_subprotocol([PREFIX + "k"]) is None
    assert select_subprotocol([]) is None
    assert select_subprotocol(["openai-beta.realtime-v1"]) is None


def test_subprotocols_are_split_trimmed_and_gathered_over_headers() -> None:
    r = HandshakeRequest("/v1/realtime", "", (("sec-websocket-protocol", " realtime ,, a "),
                                               ("sec-websocket-protocol", "b")))
    assert r.subprotocols == ["realtime", "a", "b"]
    assert HandshakeRequest("/", "", (("user-agent", "x" * 300),)).user_agent == "x" * 256
    assert HandshakeRequest("/", "", ()).user_agent == ""


# -- dialect, model, path -------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "dialect"), [
    ({}, "ga"),
    ({"openai_beta": "realtime=v1"}, "beta"),
    ({"openai_beta": "realtime = v1"}, "beta"),
    ({"openai_beta": "assistants=v2, realtime=v1"}, "beta"),
    ({"openai_beta": "realtime=v2"}, "ga"),
    ({"sec_websocket_protocol": "realtime, openai-beta.realtime-v1"}, "beta"),
])
def test_the_dialect_comes_from_the_beta_header_or_subprotocol(env: Any, headers: dict[str, str], dialect: str) -> None:
    got = run(env, req(authorization=f"Bearer {USER_KEY}", **headers))
    assert isinstance(got, Admission) and got.dialect == dialect


@pytest.mark.parametrize(("path", "query", "dialect"), [
    ("/openai/realtime", "deployment=dep&api-version=2024-10-01-preview", "beta"),  # a preview speaks beta
    ("/openai/realtime", "deployment=dep&api-version=2025-08-28", "ga"),
    ("/openai/realtime", "deployment=dep", "ga"),
    ("/openai/v1/realtime", "model=dep", "ga"),
    ("/v1/realtime", "model=dep&api-version=2024-10-01-preview", "ga"),  # only Azure's path reads it
])
def test_azure_preview_api_versions_speak_beta(env: Any, path: str, query: str, dialect: str) -> None:
    got = run(env, req(path, query, api_key=USER_KEY))
    assert isinstance(got, Admission), got
    assert got.dialect == dialect


@pytest.mark.parametrize(("path", "query", "status", "code"), [
    ("/v1/nope", "model=gpt-realtime", 404, "not_found"),
    ("/v1/realtime", "", 400, "missing_model"),
    ("/v1/realtime", "model=", 400, "missing_model"),
    ("/v1/realtime", "model=bad%20name", 400, "invalid_model"),
    ("/v1/realtime", "model=" + "a" * 129, 400, "invalid_model"),
    ("/v1/realtime", "model=-dash-first", 400, "invalid_model"),
    ("/v1/realtime", "model=unknown", 404, "model_not_found"),
    ("/v1/realtime", "model=other", 403, "model_not_allowed"),
    ("/v1/realtime", "model=gpt-realtime&model=other", 400, "ambiguous_model"),
    ("/openai/realtime", "api-version=1", 400, "missing_model"),
])
def test_paths_and_models_are_checked_in_order(env: Any, path: str, query: str, status: int, code: str) -> None:
    got = run(env, req(path, query, authorization=f"Bearer {USER_KEY}"))
    assert isinstance(got, Rejection), got
    assert (got.status, got.code) == (status, code)


@pytest.mark.parametrize(("path", "query", "model"), [
    ("/v1/realtime", "model=gpt-realtime", "gpt-realtime"),
    ("/v1/realtime/", "model=gpt-realtime", "gpt-realtime"),
    ("/realtime", "model=gpt-realtime", "gpt-realtime"),
    ("/openai/realtime", "deployment=dep&api-version=x", "dep"),
    ("/openai/realtime", "model=dep&api-version=x", "dep"),          # Azure v1 names the model
    ("/openai/realtime", "deployment=dep&model=gpt-realtime", "dep"),  # the deployment wins there
    ("/openai/v1/realtime", "model=dep", "dep"),                       # Azure's GA v1 path
    ("/openai/v1/realtime/", "model=dep", "dep"),
])
def test_every_realtime_path_names_its_model(env: Any, path: str, query: str, model: str) -> None:
    got = run(env, req(path, query, authorization=f"Bearer {USER_KEY}"))
    assert isinstance(got, Admission), got
    assert got.model.name == model


def test_an_admin_key_may_use_every_model(env: Any) -> None:
    got = run(env, req(query="model=other", authorization=f"Bearer {ADMIN_KEY}"))
    assert isinstance(got, Admission) and got.key.is_admin


# -- origins ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("origin", "ok"), [(None, True), ("https://app.example", True),
                                            ("https://evil.example", False), ("https://app.example.evil", False)])
def test_only_allowed_origins_open_sessions(env: Any, origin: str | None, ok: bool) -> None:
    headers = {"authorization": f"Bearer {USER_KEY}", **({"origin": origin} if origin else {})}
    got = run(env, req(**headers))
    if ok:
        assert isinstance(got, Admission)
    else:
        assert isinstance(got, Rejection) and (got.status, got.code, got.browser) == (403, "origin_not_allowed", False)


# -- ephemeral tokens -------------------------------------------------------------------------------

def test_a_token_opens_its_model_for_its_parent_key(env: Any) -> None:
    got = run(env, req(query="", sec_websocket_protocol=f"realtime, {PREFIX}{token(end_user='eu', session={'voice': 'x'})}"))
    assert isinstance(got, Admission), got
    assert (got.key.name, got.model.name, got.ephemeral, got.browser) == ("user", "gpt-realtime", True, True)
    assert got.initial_session == {"voice": "x"} and got.end_user == "eu" and got.session_ref is None


def test_a_token_with_a_stored_config_hands_on_the_reference(env: Any) -> None:
    got = run(env, req(query="", authorization=f"Bearer {token(session_ref='ref-1')}"))
    assert isinstance(got, Admission) and got.session_ref == "ref-1" and got.initial_session is None


def test_the_end_user_a_token_was_minted_for_cannot_be_overridden(env: Any) -> None:
    got = run(env, req(query="", authorization=f"Bearer {token(end_user='minted')}", x_rtproxy_end_user="forged"))
    assert isinstance(got, Admission) and got.end_user == "minted"


@pytest.mark.parametrize(("case", "query", "status", "code"), [
    ("for a model the parent may not use", "", 403, "model_not_allowed"),
    ("asked for another model", "model=other", 403, "model_not_allowed"),
    ("expired", "", 401, "invalid_ephemeral_token"),
    ("of a key that is gone", "", 401, "invalid_ephemeral_token"),
    ("forged", "", 401, "invalid_ephemeral_token"),
])
def test_bad_tokens_are_refused(env: Any, case: str, query: str, status: int, code: str) -> None:
    t = {"for a model the parent may not use": lambda: token(model="other"),
         "asked for another model": token,
         "expired": lambda: token(expires_at=NOW),
         "of a key that is gone": lambda: token(key_name="gone"),
         "forged": lambda: token()[:-2] + ("xx" if not token().endswith("xx") else "yy")}[case]()
    got = run(env, req(query=query, authorization=f"Bearer {t}"))
    assert isinstance(got, Rejection), got
    assert (got.status, got.code) == (status, code)
    assert t not in got.message


def test_without_a_signer_an_ek_string_is_just_an_unknown_key(env: Any) -> None:
    keys, cfg = env
    got = admit(req(query="", authorization=f"Bearer {token()}"), keys, cfg, tokens=None, now=NOW)
    assert isinstance(got, Rejection) and got.code == "invalid_api_key"


# -- attribution ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("end_user", "tags", "want_user", "want_tags"), [
    (None, None, None, ()),
    ("u-1", "a, b,,c ", "u-1", ("a", "b", "c")),
    ("  spaced  ", " ", "spaced", ()),
    ("bad\x00\nchars", "t\x07ag", "badchars", ("tag",)),
    ("x" * 300, ",".join(f"t{i}" for i in range(40)), "x" * 256, tuple(f"t{i}" for i in range(32))),
    ("\x00\x01", None, None, ()),
])
def test_attribution_headers_are_cleaned_and_bounded(env: Any, end_user: str | None, tags: str | None,
                                                     want_user: str | None, want_tags: tuple[str, ...]) -> None:
    headers = {"authorization": f"Bearer {USER_KEY}"}
    if end_user is not None:
        headers["x_rtproxy_end_user"] = end_user
    if tags is not None:
        headers["x_rtproxy_tags"] = tags
    got = run(env, req(**headers))
    assert isinstance(got, Admission)
    assert (got.end_user, got.tags) == (want_user, want_tags)


def test_forwarded_query_keeps_order_and_values(env: Any) -> None:
    got = run(env, req(query="intent=conversation&model=gpt-realtime&x=1&intent=other",
                       authorization=f"Bearer {USER_KEY}"))
    assert isinstance(got, Admission)
    assert got.forward_query == (("intent", "conversation"), ("intent", "other"))


def test_a_call_id_is_a_sideband_of_that_call_never_a_query_passed_on(env: Any) -> None:
    # before WebRTC calls had owners, call_id went upstream beside the model: any key could
    # attach to any call it could name
    got = run(env, req(query="model=gpt-realtime&call_id=rtc_1", authorization=f"Bearer {USER_KEY}"))
    assert isinstance(got, Admission) and got.call_id == "rtc_1" and got.model is None and got.forward_query == ()
