"""WebRTC calls through the gateway, on the offline model's WebRTC peer (aiortc) over loopback:
the browser's path (an SDP offer to /v1/realtime/calls, Opus both ways, events on the data
channel), with the gateway's own sideband billing and recording the call."""

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

from rtproxy.config import Config

from .conftest import ADMIN_KEY, USER_KEY, RunningServer, make_config, start_server
from .fake_calls import FakeCalls, serve_fake_calls
from .helpers import auth_headers, events_until, send_event, ws_connect

CLIENT = Path(__file__).with_name("rtc_client.py")
SDP_OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"


async def call(server: RunningServer, mode: str, key: str = USER_KEY, model: str = "gpt-realtime") -> dict[str, Any]:
    with trio.fail_after(120):
        result: subprocess.CompletedProcess[bytes] = await trio.run_process(
            [sys.executable, str(CLIENT), server.http, key, mode, model], capture_stdout=True, capture_stderr=True,
            check=False)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return json.loads(result.stdout)  # type: ignore[no-any-return]


async def held(server: RunningServer) -> int:
    """Sessions the key "user" holds in the state store (a refused call must hold none)."""
    return int(await server.gateway.limits.store.open_sessions("user", now=time.time()))


async def records_when_ended(server: RunningServer, sessions: int = 1) -> list[dict[str, Any]]:
    with trio.fail_after(30):
        while sum(r["record"] == "session" for r in server.records()) < sessions:
            await trio.sleep(0.05)
    return server.records()


@pytest.mark.parametrize("mode", ["raw", "multipart"])
async def test_a_webrtc_call_is_answered_heard_billed_and_recorded_by_the_gateways_sideband(
        server: RunningServer, mode: str) -> None:
    out = await call(server, mode)
    assert out["status"] == 201 and out["content_type"] == "application/sdp", out
    assert out["location"].startswith("/v1/realtime/calls/rtc_")
    # the voice turn went browser ↔ model directly (Opus), and the model heard the words
    assert out["transcript"] == "What is the weather in Paris?"
    assert out["call"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert out["reply"] == "get_weather returned sunny"
    assert out["loud_frames"] > 10 and out["stopped"] and out["hangup"] == 200
    records = await records_when_ended(server)
    call_id = out["location"].rsplit("/", 1)[1]
    responses = [r for r in records if r["record"] == "response"]
    (session,) = [r for r in records if r["record"] == "session"]
    assert len(responses) == 2 and all(r["transport"] == "webrtc" for r in responses + [session])
    asked, answered = responses
    assert asked["response"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert {"role": "user", "content": "What is the weather in Paris?"}.items() <= asked["messages"][-1].items()
    # the tool's answer went over the data channel; the gateway saw the provider's echo of it
    assert any(m.get("role") == "tool" and m.get("content") == "sunny" for m in answered["messages"])
    assert answered["response"]["output_transcript"] == "get_weather returned sunny"
    assert session["upstream_session_id"] and session["responses"] == 2 and session["key_name"] == "user"
    assert session["close"]["by"] == "upstream" and session["close"]["code"] == 1000
    (heard,) = [r for r in records if r["record"] == "transcription"]  # the input transcription, billed too
    assert heard["transcript"] == "What is the weather in Paris?" and heard["transport"] == "webrtc"
    assert session["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in [*responses, heard]))
    assert [t["name"] for t in session["tools"]] == ["get_weather"]
    assert call_id not in json.dumps([r.get("error") for r in records])


async def test_an_ephemeral_token_makes_a_call_for_its_model_only(server: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        minted = (await http.post(f"{server.http}/v1/realtime/client_secrets", headers=auth_headers(USER_KEY),
                                  json={"session": {"type": "realtime", "model": "gpt-realtime",
                                                    "instructions": "Be brief."}})).json()
    token = minted["value"]
    other = await call(server, "offer", key=token, model="gpt-realtime-mini")
    assert other["status"] == 403 and "gpt-realtime" in json.loads(other["body"])["error"]["message"]
    out = await call(server, "raw", key=token, model="")
    assert out["status"] == 201 and out["transcript"] == "What is the weather in Paris?", out
    (session,) = [r for r in await records_when_ended(server) if r["record"] == "session"]
    assert session["credential"] == "ephemeral_token" and session["key_name"] == "user"
    assert token not in json.dumps(server.records())


@pytest.mark.parametrize("body, content_type, status, code", [
    (b"hello", "application/sdp", 400, "invalid_sdp"),
    (b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n", "application/sdp", 400, "invalid_sdp"),  # no audio
    (SDP_OFFER.encode(), "text/plain", 415, "unsupported_media_type"),
    (b"v=0\r\n" + b"a=x\r\n" * 20_000, "application/sdp", 413, "sdp_too_large"),
    (b"v=0\r\n" + b"a=x\r\n" * 60_000, "application/sdp", 413, "offer_too_large"),
])
async def test_a_malformed_offer_gets_a_clear_error_and_opens_nothing(
        server: RunningServer, body: bytes, content_type: str, status: int, code: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{server.http}/v1/realtime/calls", params={"model": "gpt-realtime"}, content=body,
                            headers={**auth_headers(USER_KEY), "Content-Type": content_type})
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert server.gateway.rtc_peer is not None and server.gateway.rtc_peer.starts == 0  # the provider never asked
    assert not server.gateway.sessions and await held(server) == 0


@pytest.mark.parametrize("key, model, status, code", [
    ("", "gpt-realtime", 401, "missing_api_key"),
    ("sk-wrong", "gpt-realtime", 401, "invalid_api_key"),
    (USER_KEY, "gpt-realtime-mini", 403, "model_not_allowed"),
    (USER_KEY, "nope", 404, "model_not_found"),
])
async def test_an_offer_the_key_may_not_make_is_refused_before_the_provider_sees_it(
        server: RunningServer, key: str, model: str, status: int, code: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{server.http}/v1/realtime/calls", params={"model": model}, content=SDP_OFFER,
                            headers={**(auth_headers(key) if key else {}), "Content-Type": "application/sdp"})
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert server.gateway.rtc_peer is not None and server.gateway.rtc_peer.starts == 0


async def test_a_session_config_naming_a_transcription_model_the_key_may_not_use_is_refused(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, make_config(tmp_path, keys=[
        {"name": "user", "key": USER_KEY, "models": ["gpt-realtime"], "transcription_models": ["whisper-1"]}]))
    session = {"type": "realtime", "model": "gpt-realtime",
               "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{srv.http}/v1/realtime/calls", headers=auth_headers(USER_KEY), files={
            "sdp": (None, SDP_OFFER, "application/sdp"), "session": (None, json.dumps(session), "application/json")})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "model_not_allowed")


async def test_an_offer_the_provider_cannot_answer_is_its_clear_error_and_no_call(server: RunningServer) -> None:
    # SDP that parses as an offer but that no peer can answer (no ICE, no DTLS fingerprint)
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.post(f"{server.http}/v1/realtime/calls", params={"model": "gpt-realtime"}, content=SDP_OFFER,
                            headers={**auth_headers(USER_KEY), "Content-Type": "application/sdp"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "upstream_refused"
    assert "cannot be answered" in r.json()["error"]["message"]
    assert not server.gateway.sessions and await held(server) == 0
    assert not [rec for rec in server.records() if rec["record"] == "session"]


def make_unreachable_config(tmp_path: Path) -> Config:
    return make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "openai",
                                          "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-upstream-secret"}])


async def test_an_unreachable_provider_is_a_502_that_names_no_secret(nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, make_unreachable_config(tmp_path))
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.post(f"{srv.http}/v1/realtime/calls", params={"model": "gpt-realtime"}, content=SDP_OFFER,
                            headers={**auth_headers(USER_KEY), "Content-Type": "application/sdp"})
    assert (r.status_code, r.json()["error"]["code"]) == (502, "upstream_unreachable")
    assert "sk-upstream-secret" not in r.text
    assert await held(srv) == 0


async def test_only_the_key_that_made_the_call_may_hang_it_up_or_attach_a_sideband(
        server: RunningServer, listener: str) -> None:
    out = await call(server, "offer")
    # "offer" mode leaves the call up (its peer connection never connects; the call ends on its own later)
    location = out["location"]
    call_id = location.rsplit("/", 1)[1]
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{server.http}{location}/hangup", headers=auth_headers(ADMIN_KEY))
        assert (r.status_code, r.json()["error"]["code"]) == (403, "call_not_owned")
        r = await http.post(f"{server.http}/v1/realtime/calls/rtc_nope/hangup", headers=auth_headers(USER_KEY))
        assert (r.status_code, r.json()["error"]["code"]) == (404, "call_not_found")
    async with ws_connect(server.ws_url(listener, query=f"call_id={call_id}"), headers=auth_headers(USER_KEY)) as ws:
        created = await events_until(ws, "session.created")
        assert created[-1]["type"] == "session.created"
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "instructions": "Hi."}})
        updated = await events_until(ws, "session.updated")
        assert updated[-1]["session"]["instructions"] == "Hi."
    from trio_websocket import ConnectionRejected

    with pytest.raises(ConnectionRejected) as refused:
        async with ws_connect(server.ws_url(listener, query=f"call_id={call_id}"), headers=auth_headers(ADMIN_KEY)):
            pass
    assert refused.value.status_code == 403
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{server.http}{location}/hangup", headers=auth_headers(USER_KEY))
        assert r.status_code == 200
    records = await records_when_ended(server)
    (session,) = [r for r in records if r["record"] == "session"]  # the client's sideband wrote none
    assert session["transport"] == "webrtc" and session["close"]["by"] == "upstream"


async def test_a_call_over_budget_is_hung_up_by_the_gateway(nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, make_config(tmp_path, keys=[
        {"name": "user", "key": USER_KEY, "models": ["gpt-realtime"], "transcription_models": ["*"],
         "max_budget_usd": 0.000001}]))
    out = await call(srv, "raw")
    # the first billed record (the input transcription) spends the budget: the gateway hangs up,
    # and the caller's data channel closes before the conversation is over
    assert out["status"] == 201 and "ended_before" in out, out
    records = await records_when_ended(srv)
    (session,) = [r for r in records if r["record"] == "session"]
    assert session["close"]["by"] == "proxy" and session["close"]["code"] == 4429
    billed = [r for r in records if r["record"] in ("transcription", "response")]
    assert billed and session["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in billed))
    assert session["cost_usd"] > 0.000001
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{srv.http}/v1/realtime/calls", params={"model": "gpt-realtime"}, content=SDP_OFFER,
                            headers={**auth_headers(USER_KEY), "Content-Type": "application/sdp"})
    assert (r.status_code, r.json()["error"]["code"]) == (429, "budget_exceeded")


@pytest.fixture
async def provider(nursery: trio.Nursery) -> FakeCalls:
    return await nursery.start(serve_fake_calls)


def provider_config(tmp_path: Path, provider: FakeCalls) -> Config:
    return make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "openai", "upstream_model": "gpt-rt-up",
                                          "api_base": f"http://127.0.0.1:{provider.port}/v1",
                                          "api_key": "sk-provider-secret"}])


async def offer(srv: RunningServer) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{srv.http}/v1/realtime/calls", params={"model": "gpt-realtime"}, content=SDP_OFFER,
                               headers={**auth_headers(USER_KEY), "Content-Type": "application/sdp"})


async def test_the_provider_gets_the_offer_with_its_own_key_and_the_configured_model_and_the_observer_says_nothing(
        nursery: trio.Nursery, tmp_path: Path, provider: FakeCalls) -> None:
    srv = await start_server(nursery, provider_config(tmp_path, provider))
    r = await offer(srv)
    assert r.status_code == 201 and r.content.startswith(b"v=0") and r.headers["location"] == "/v1/realtime/calls/rtc_fake1"
    ((headers, body),) = provider.offers
    assert headers["authorization"] == "Bearer sk-provider-secret" and USER_KEY not in json.dumps(headers)
    assert headers["content-type"].startswith("multipart/form-data; boundary=")
    assert SDP_OFFER.encode() in body and b'"model": "gpt-rt-up"' in body and b'"type": "realtime"' in body
    with trio.fail_after(10):
        await provider.sideband_ended.wait()
    assert provider.sideband_headers[0]["authorization"] == "Bearer sk-provider-secret"
    records = await records_when_ended(srv)
    (response,) = [x for x in records if x["record"] == "response"]
    assert response["usage"]["total_tokens"] == 30 and response["transport"] == "webrtc" and response["cost_usd"] > 0
    (session,) = [x for x in records if x["record"] == "session"]
    assert session["close"] == {"by": "upstream", "code": 1000, "reason": ""} or session["close"]["code"] == 1000
    assert provider.sent_by_observer == []
    assert not provider.hung_up.is_set()  # the provider ended the call: nothing to hang up
    assert "sk-provider-secret" not in json.dumps(records)


async def test_a_provider_that_refuses_the_call_is_a_clear_error_without_its_secrets(
        nursery: trio.Nursery, tmp_path: Path, provider: FakeCalls) -> None:
    provider.refuse_status = 400
    srv = await start_server(nursery, provider_config(tmp_path, provider))
    r = await offer(srv)
    assert r.status_code == 400 and r.json()["error"]["code"] == "upstream_refused"
    assert "Invalid SDP" in r.json()["error"]["message"] and "sk-proj" not in r.text
    assert await held(srv) == 0 and not srv.gateway.sessions


@pytest.mark.parametrize("ending", ["drop", "refuse"])
async def test_a_sideband_that_drops_or_cannot_attach_hangs_the_call_up_and_is_recorded(
        nursery: trio.Nursery, tmp_path: Path, provider: FakeCalls, ending: str) -> None:
    provider.sideband = ending
    srv = await start_server(nursery, provider_config(tmp_path, provider))
    assert (await offer(srv)).status_code == 201
    with trio.fail_after(10):
        await provider.hung_up.wait()  # unwatched is unbilled: the gateway ends the call
    (call_id, op, headers), = provider.ops
    assert (call_id, op) == ("rtc_fake1", "hangup") and headers["authorization"] == "Bearer sk-provider-secret"
    (session,) = [x for x in await records_when_ended(srv) if x["record"] == "session"]
    assert session["status"] == "failure" and session["transport"] == "webrtc"
    if ending == "drop":
        assert session["close"]["code"] == 1011 and session["responses"] == 1
        assert session["error"]["code"] == "sideband_lost"
    assert await held(srv) == 0


@pytest.fixture
def live_config(tmp_path: Path) -> Config:
    return make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "local"},
                                         {"name": "gpt-live-1", "provider": "local", "api": "live"}],
                       keys=[{"name": "user", "key": USER_KEY, "models": ["gpt-realtime", "gpt-live-1"]},
                             {"name": "admin", "key": ADMIN_KEY, "role": "admin"}],
                       local={"live_usage_interval_ms": 200})


async def test_a_gpt_live_session_over_webrtc_is_started_by_the_post_and_billed_by_the_second_through_attach(
        nursery: trio.Nursery, live_config: Config) -> None:
    srv = await start_server(nursery, live_config)
    out = await call(srv, "live", model="gpt-live-1")
    assert out["status"] == 200 and out["session_id"].startswith("live_"), out
    assert out["heard"] == "What is the weather in Paris?"  # the input transcript, over the data channel
    assert out["said"].endswith("It is sunny in Paris.") and out["loud_frames"] > 10 and out["hangup"] == 200
    records = await records_when_ended(srv)
    usage = [r for r in records if r["record"] == "usage"]
    (session,) = [r for r in records if r["record"] == "session"]
    assert usage and all(r["transport"] == "webrtc" for r in usage + [session])
    assert session["upstream_session_id"] == out["session_id"] and session["model"] == "gpt-live-1"
    assert session["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in usage)) and session["cost_usd"] > 0
    assert session["close"]["by"] == "upstream" and session["close"]["code"] == 1000
    # the attach sideband through the gateway is the session's key's only
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{srv.http}/v1/live/sessions/{out['session_id']}/hangup", headers=auth_headers(ADMIN_KEY))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "call_not_owned")


@pytest.mark.parametrize("body, status, code", [
    ({"session": {"model": "gpt-live-1"}, "transport": {"type": "websocket"}}, 400, "unsupported_transport"),
    ({"session": {"model": "gpt-live-1"}, "transport": {"type": "webrtc", "sdp": "nope"}}, 400, "invalid_sdp"),
    ({"session": {"model": "gpt-realtime"}, "transport": {"type": "webrtc", "sdp": SDP_OFFER}}, 404, "model_not_found"),
    ({"session": {"model": "gpt-live-1", "delegation": {"type": "responses", "responses": {"model": "o-secret"}}},
      "transport": {"type": "webrtc", "sdp": SDP_OFFER}}, 403, "model_not_allowed"),
])
async def test_a_gpt_live_webrtc_start_the_key_may_not_make_is_refused_before_the_provider(
        nursery: trio.Nursery, tmp_path: Path, body: dict[str, Any], status: int, code: str) -> None:
    config = make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "local"},
                                           {"name": "gpt-live-1", "provider": "local", "api": "live"}],
                         keys=[{"name": "user", "key": USER_KEY, "models": ["gpt-realtime", "gpt-live-1"],
                                "delegation_models": ["gpt-5.6-luna"]}])
    srv = await start_server(nursery, config)
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{srv.http}/v1/live/sessions", headers=auth_headers(USER_KEY), json=body)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert srv.gateway.rtc_peer is not None and srv.gateway.rtc_peer.starts == 0


async def test_a_call_switched_to_a_model_the_key_may_not_use_is_hung_up(
        nursery: trio.Nursery, tmp_path: Path, provider: FakeCalls) -> None:
    """The data channel's session.update is never seen, but the provider's session.updated is:
    a call switched to another model is ended by the gateway, not billed at a price it never admitted."""
    provider.sideband = "switch"
    srv = await start_server(nursery, provider_config(tmp_path, provider))
    assert (await offer(srv)).status_code == 201
    with trio.fail_after(10):
        await provider.hung_up.wait()
    (session,) = [x for x in await records_when_ended(srv) if x["record"] == "session"]
    assert session["close"]["by"] == "proxy" and session["close"]["code"] == 4403
    assert session["close"]["reason"] == "the call's session was switched to model 'gpt-realtime-expensive'"
