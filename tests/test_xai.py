"""OpenAI Realtime clients served by xAI's Grok Voice (issue #28, the protocol half): the official
openai SDK (GA) through an xAI-backed model, on the offline model playing xAI and on a fake of
xAI's endpoint that emits its quirks verbatim, both listeners: every event the SDK receives
validates against its own GA types, no ``ping`` reaches it, ``session.created`` comes first and
once; openai-agents' runner completes a tool round trip; beta clients are refused at the
handshake; browsers open sessions with a gateway-minted ephemeral token in xAI's
``xai-client-secret.`` subprotocol (minted from xAI's own request body), never with a key.
Costs are another test's (the billing half)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected

from rtproxy.auth.admission import HandshakeRequest, Rejection, admit, select_subprotocol
from rtproxy.auth.keys import KeyStore
from rtproxy.auth.tokens import TokenClaims, TokenSigner

from .conftest import USER_KEY, RunningServer, make_config, start_server
from .fake_xai import FORECAST, GREETING, HEARD, FakeXai, serve_fake_xai
from .helpers import (
    PROVIDER_KEY,
    auth_headers,
    events_until,
    expect_error_then_close,
    send_event,
    user_text,
    ws_connect,
)
from .test_openai_agents import CLIENTS_PYTHON

SDK_CLIENT = Path(__file__).with_name("sdk_xai_client.py")
AGENTS_CLIENT = Path(__file__).with_name("agents_xai_client.py")
GROK = "grok-voice-think-fast-1.0"
OFFLINE = {"name": "xai-voice", "provider": "local", "dialect": "xai", "upstream_model": GROK}
XAI_PREFIX = "xai-client-secret."


@pytest.fixture
async def fake_xai(nursery: trio.Nursery) -> FakeXai:
    return await nursery.start(serve_fake_xai)


def xai_config(tmp_path: Path, fake: FakeXai | None = None, **local: Any) -> Any:
    models: list[dict[str, Any]] = [OFFLINE]
    if fake is not None:
        models.append({"name": "grok", "provider": "xai", "api_base": fake.base, "api_key": PROVIDER_KEY,
                       "upstream_model": GROK})
    return make_config(tmp_path, models=models, local=local,
                       keys=[{"name": "user", "key": USER_KEY, "models": ["xai-voice", "grok"] if fake else ["xai-voice"],
                              "transcription_models": ["*"]}])


async def run_sdk(srv: RunningServer, listener: str, model: str, mode: str) -> dict[str, Any]:
    with trio.fail_after(90):
        result: subprocess.CompletedProcess[bytes] = await trio.run_process(
            [sys.executable, str(SDK_CLIENT), str(srv.port(listener)), USER_KEY, model, mode],
            capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["invalid"] == [], out["invalid"]
    types = out["types"]
    assert types[0] == "session.created" and types.count("session.created") == 1
    assert "conversation.created" in types and "ping" not in types and "error" not in types
    assert "input_audio_buffer.dtmf_event_received" not in types
    return out


def assert_streaming_indices(out: dict[str, Any]) -> None:
    """Every indexed event the SDK parsed carries both indices (where GA has them)."""
    for etype, output_index, content_index, _ in out["indices"]:
        assert isinstance(output_index, int), etype
        if etype.startswith(("response.output_audio", "response.output_text", "response.content_part")):
            assert isinstance(content_index, int), etype


# -- the offline model playing xAI ------------------------------------------------------------------

async def test_the_openai_sdk_completes_a_text_turn_on_the_offline_xai_model(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, xai_config(tmp_path, speech="off"))
    out = await run_sdk(srv, listener, "xai-voice", "text")
    assert out["text"] == "You said: Say hi"
    assert out["voice"] == "eve"  # the client asked for OpenAI's marin: xAI got (and reports) eve
    assert out["usage"]["total_tokens"] == 0 and out["usage"]["input_token_details"]["text_tokens"] == 0
    assert_streaming_indices(out)


async def test_a_spoken_question_on_the_offline_xai_model_is_transcribed_and_answered_in_audio(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, xai_config(tmp_path))
    out = await run_sdk(srv, listener, "xai-voice", "voice")
    assert out["status"] == ["completed"] and out["transcripts"] and out["audio_deltas"] > 0 and out["said"]
    assert out["parts"] == [{"type": "audio", "transcript": out["said"]}]  # back-filled: xAI sends none
    assert_streaming_indices(out)


async def test_a_tool_round_trip_on_the_offline_xai_model(nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, xai_config(tmp_path))
    out = await run_sdk(srv, listener, "xai-voice", "tool")
    assert out["calls"] == [["get_weather", {"city": "Paris"}]]
    assert out["status"] == ["completed", "completed"] and "get_weather returned" in out["answer"]
    assert_streaming_indices(out)


async def test_a_session_on_the_offline_xai_model_gets_no_ping_however_long_it_is_quiet(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    """The offline model pings every second (as xAI keeps its sockets alive): the gateway drops
    them all, and says how many it dropped."""
    srv = await start_server(nursery, xai_config(tmp_path, speech="off"))
    async with ws_connect(srv.ws_url("realtime", query="model=xai-voice"), headers=auth_headers(USER_KEY)) as ws:
        first = await events_until(ws, "conversation.created")
        assert [e["type"] for e in first] == ["session.created", "conversation.created"]
        (session,) = srv.gateway.sessions
        normalizer = session._upstream.translation  # type: ignore[attr-defined]
        with trio.fail_after(10):
            while normalizer.stats["pings_dropped"] < 2:
                await trio.sleep(0.1)
        with trio.move_on_after(0.2):
            extra = await ws.get_message()
            pytest.fail(f"an event reached the client: {extra!r}")


# -- a fake of xAI's endpoint, quirks verbatim --------------------------------------------------------

def assert_dialed_like_xai(fake: FakeXai) -> None:
    (seen,) = fake.requests
    assert seen.path == f"/v1/realtime?model={GROK}"
    assert seen.headers["authorization"] == f"Bearer {PROVIDER_KEY}" and "openai-beta" not in seen.headers
    assert not any(USER_KEY in v for v in seen.headers.values()) and seen.subprotocols == []
    assert fake.problems == []


async def test_the_openai_sdk_completes_a_text_turn_on_xai(
        nursery: trio.Nursery, tmp_path: Path, listener: str, fake_xai: FakeXai) -> None:
    srv = await start_server(nursery, xai_config(tmp_path, fake_xai, speech="off"))
    out = await run_sdk(srv, listener, "grok", "text")
    assert out["text"] == GREETING + " " and out["voice"] == "eve"
    assert out["usage"] == {"input_token_details": {"audio_tokens": 0, "cached_tokens": 0, "text_tokens": 0},
                            "input_tokens": 0, "output_token_details": {"audio_tokens": 0, "text_tokens": 0},
                            "output_tokens": 0, "total_tokens": 0}
    assert_streaming_indices(out)
    assert_dialed_like_xai(fake_xai)
    (update,) = [e for e in fake_xai.received if e["type"] == "session.update"]
    assert update["session"] == {"type": "realtime", "output_modalities": ["text"], "voice": "eve"}


async def test_a_spoken_turn_on_xai_with_its_transcripts(
        nursery: trio.Nursery, tmp_path: Path, listener: str, fake_xai: FakeXai) -> None:
    srv = await start_server(nursery, xai_config(tmp_path, fake_xai, speech="off"))
    out = await run_sdk(srv, listener, "grok", "voice")
    assert out["transcripts"] == [HEARD] and out["said"] == GREETING + " " and out["audio_deltas"] == 4
    assert out["parts"] == [{"type": "audio", "transcript": GREETING + " "}]
    assert_streaming_indices(out)
    assert_dialed_like_xai(fake_xai)
    (update,) = [e for e in fake_xai.received if e["type"] == "session.update"]
    assert update["session"] == {"type": "realtime", "output_modalities": ["audio"], "tools": [], "voice": "sal",
                                 "turn_detection": {"type": "server_vad"}}  # alloy → sal; no transcription model
    assert any(e["type"] == "input_audio_buffer.append" for e in fake_xai.received)


async def test_a_tool_round_trip_on_xai_indexes_the_message_and_the_call_of_one_response(
        nursery: trio.Nursery, tmp_path: Path, listener: str, fake_xai: FakeXai) -> None:
    srv = await start_server(nursery, xai_config(tmp_path, fake_xai, speech="off"))
    out = await run_sdk(srv, listener, "grok", "tool")
    assert out["output_types"] == ["message", "function_call"]
    assert out["calls"] == [["get_weather", {"city": "Paris"}]]
    assert out["status"] == ["completed", "completed"] and out["answer"] == FORECAST + " "
    responses = list(dict.fromkeys(rid for *_, rid in out["indices"]))
    assert len(responses) == 2
    for rid, items in zip(responses, ([0, 1], [0])):  # counted per response, not LiteLLM's constant 0
        assert [i for t, i, _, r in out["indices"] if r == rid and t == "response.output_item.added"] == items
    assert {i for t, i, _, _ in out["indices"] if t.startswith("response.function_call_arguments")} == {1}
    assert {(i, c) for t, i, c, r in out["indices"] if r == responses[0] and t.startswith("response.output_audio")} \
        == {(0, 0)}
    assert_dialed_like_xai(fake_xai)
    (output,) = [e for e in fake_xai.received if e["type"] == "conversation.item.create"]
    assert output["item"]["type"] == "function_call_output"


# -- openai-agents ------------------------------------------------------------------------------------

async def test_an_agents_sdk_function_tool_runs_through_the_xai_model(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, xai_config(tmp_path, speech="off"))
    with trio.fail_after(90):
        result: subprocess.CompletedProcess[bytes] = await trio.run_process(
            [str(CLIENTS_PYTHON), str(AGENTS_CLIENT), srv.ws_url(listener, query="model=xai-voice"), USER_KEY,
             "xai-voice", "tool"], capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["errors"] == [], out["errors"]
    assert out["types"][0] == "session.created" and "ping" not in out["types"]
    assert out["tools"] == [{"name": "get_weather", "output": "sunny in Paris"}]
    assert out["status"] == ["completed", "completed"]
    assert out["replies"] == ["", "get_weather returned sunny in Paris"]


# -- what xAI cannot serve --------------------------------------------------------------------------

async def test_a_beta_client_is_refused_at_the_handshake_with_what_to_do(
        nursery: trio.Nursery, tmp_path: Path, listener: str, fake_xai: FakeXai) -> None:
    srv = await start_server(nursery, xai_config(tmp_path, fake_xai, speech="off"))
    for model in ("xai-voice", "grok"):
        with pytest.raises(ConnectionRejected) as refused:
            async with ws_connect(srv.ws_url(listener, query=f"model={model}"),
                                  headers={**auth_headers(USER_KEY), "OpenAI-Beta": "realtime=v1"}):
                pass
        assert refused.value.status_code == 400
        error = json.loads(refused.value.body)["error"]
        assert error["code"] == "unsupported_dialect" and "GA Realtime dialect only" in error["message"]
    assert fake_xai.requests == []  # refused before dialing


async def test_truncate_is_answered_by_the_gateway_and_never_reaches_xai(
        nursery: trio.Nursery, tmp_path: Path, fake_xai: FakeXai) -> None:
    srv = await start_server(nursery, xai_config(tmp_path, fake_xai, speech="off"))
    async with ws_connect(srv.ws_url("realtime", query="model=grok"), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "conversation.created")
        await send_event(ws, {"type": "conversation.item.truncate", "event_id": "c1", "item_id": "x",
                              "content_index": 0, "audio_end_ms": 10})
        (error,) = [e for e in await events_until(ws, "error")]  # no such item: answered here all the same
        assert error["error"]["code"] == "item_not_found" and error["error"]["event_id"] == "c1"
        await send_event(ws, user_text("hello"))
        await events_until(ws, "conversation.item.done")
    assert [e["type"] for e in fake_xai.received] == ["conversation.item.create"]


# -- browsers: ephemeral tokens in xAI's subprotocol --------------------------------------------------

async def mint_like_xai(srv: RunningServer) -> dict[str, Any]:
    """``POST /v1/realtime/client_secrets`` with xAI's body: no session, no model."""
    async with httpx.AsyncClient(base_url=srv.http) as http:
        r = await http.post("/v1/realtime/client_secrets", headers=auth_headers(USER_KEY),
                            json={"expires_after": {"seconds": 300}})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_browser_opens_an_xai_session_with_a_token_minted_from_xais_request_body(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, xai_config(tmp_path, speech="off"))
    minted = await mint_like_xai(srv)
    token = minted["value"]
    assert token.startswith("ek_") and abs(minted["expires_at"] - (time.time() + 300)) < 10
    offered = XAI_PREFIX + token
    async with ws_connect(srv.ws_url(listener, query="model=xai-voice"), subprotocols=[offered]) as ws:
        assert ws.subprotocol == offered  # echoed, as xAI does: a browser fails the upgrade otherwise
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        await events_until(ws, "session.updated")
        await send_event(ws, user_text("Say hi"))
        await send_event(ws, {"type": "response.create"})
        done = (await events_until(ws, "response.done"))[-1]
        assert done["response"]["status"] == "completed"
    async with ws_connect(srv.ws_url(listener, query="model=xai-voice"), subprotocols=["realtime", offered]) as ws:
        assert ws.subprotocol == "realtime"
        await events_until(ws, "session.created")


async def test_a_token_minted_the_openai_way_carries_its_session_to_xai_in_xais_shape(
        nursery: trio.Nursery, tmp_path: Path, fake_xai: FakeXai) -> None:
    srv = await start_server(nursery, xai_config(tmp_path, fake_xai, speech="off"))
    async with httpx.AsyncClient(base_url=srv.http) as http:
        r = await http.post("/v1/realtime/client_secrets", headers=auth_headers(USER_KEY), json={
            "session": {"type": "realtime", "model": "grok", "audio": {"output": {"voice": "coral"}}}})
    assert r.status_code == 200 and r.json()["session"]["model"] == "grok"
    async with ws_connect(srv.ws_url("main", query="model=grok"), subprotocols=[XAI_PREFIX + r.json()["value"]]) as ws:
        events = await events_until(ws, "session.updated")
    assert events[-1]["session"]["audio"]["output"]["voice"] == "ara"  # coral, as xAI has it
    (update,) = [e for e in fake_xai.received if e["type"] == "session.update"]
    assert update["session"] == {"type": "realtime", "voice": "ara"} and fake_xai.problems == []


async def test_a_key_in_xais_subprotocol_is_refused_and_never_echoed(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, xai_config(tmp_path, speech="off"))
    async with ws_connect(srv.ws_url(listener, query="model=xai-voice"), subprotocols=[XAI_PREFIX + USER_KEY]) as ws:
        assert ws.subprotocol is None
        reason = await expect_error_then_close(ws, "invalid_ephemeral_token", 4401)
        assert USER_KEY not in reason


async def test_a_token_minted_without_a_model_opens_only_the_keys_models(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, models=[OFFLINE, {"name": "gpt-realtime", "provider": "local"}], local={"speech": "off"},
                      keys=[{"name": "user", "key": USER_KEY, "models": ["xai-voice"]}])
    srv = await start_server(nursery, cfg)
    token = (await mint_like_xai(srv))["value"]
    async with ws_connect(srv.ws_url("realtime", query="model=gpt-realtime"), subprotocols=[XAI_PREFIX + token]) as ws:
        await expect_error_then_close(ws, "model_not_allowed", 4403)


# -- admission, as plain values -----------------------------------------------------------------------

SIGNER = TokenSigner(b"xai-admission-secret-0123")
NOW = 1_900_000_000


@pytest.fixture
def keys_and_config(tmp_path: Path) -> tuple[KeyStore, Any]:
    cfg = make_config(tmp_path, models=[OFFLINE], keys=[{"name": "user", "key": USER_KEY}])
    return KeyStore.from_config(cfg), cfg


def admit_with(env: tuple[KeyStore, Any], protocols: str) -> Any:
    keys, cfg = env
    request = HandshakeRequest("/v1/realtime", "model=xai-voice", (("sec-websocket-protocol", protocols),))
    return admit(request, keys, cfg, tokens=SIGNER, now=NOW)


def test_an_ek_token_in_xais_subprotocol_admits_a_browser_and_is_echoed(keys_and_config: Any) -> None:
    token = SIGNER.mint(TokenClaims(key_name="user", model="", expires_at=NOW + 60, issued_at=NOW))
    admitted = admit_with(keys_and_config, XAI_PREFIX + token)
    assert not isinstance(admitted, Rejection)
    assert admitted.browser and admitted.ephemeral and admitted.model.name == "xai-voice"
    assert admitted.subprotocol == XAI_PREFIX + token
    assert admit_with(keys_and_config, f"realtime, {XAI_PREFIX}{token}").subprotocol == "realtime"


@pytest.mark.parametrize(("credential", "echoed"), [
    (USER_KEY, False), ("sk-anything", False),
    ("ek_forged.signature", True),  # no key in it: echoed, so the browser can read why it is refused
])
def test_anything_but_a_valid_ek_token_in_xais_subprotocol_is_refused(keys_and_config: Any, credential: str,
                                                                       echoed: bool) -> None:
    refused = admit_with(keys_and_config, XAI_PREFIX + credential)
    assert isinstance(refused, Rejection) and refused.status == 401 and refused.browser
    assert refused.code == "invalid_ephemeral_token"
    assert refused.subprotocol == (XAI_PREFIX + credential if echoed else None)
    assert USER_KEY not in refused.message


def test_only_an_ek_token_is_ever_echoed_from_xais_subprotocol() -> None:
    assert select_subprotocol([XAI_PREFIX + USER_KEY]) is None
    assert select_subprotocol([XAI_PREFIX + "ek_abc.def"]) == XAI_PREFIX + "ek_abc.def"
    assert select_subprotocol(["openai-insecure-api-key." + USER_KEY, XAI_PREFIX + "ek_a.b"]) == XAI_PREFIX + "ek_a.b"

