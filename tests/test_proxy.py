"""The realtime route end to end over real loopback sockets, on both listeners."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection

from .conftest import ADMIN_KEY, LIMITED_KEY, USER_KEY, RunningServer
from .fakes import SESSION_CREATED, FakeUpstream
from .helpers import (
    PROVIDER_KEY,
    auth_headers,
    events_until,
    raw_upgrade,
    send_event,
    server_with_fake,
    text_turn,
    ws_connect,
)

KEY_TOKEN = f"openai-insecure-api-key.{USER_KEY}"


# -- authentication -----------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["bearer", "api-key", "subprotocol"])
async def test_each_credential_source_completes_a_text_turn(server: RunningServer, listener: str, how: str) -> None:
    headers, subprotocols = {}, None
    if how == "bearer":
        headers = auth_headers(USER_KEY)
    elif how == "api-key":
        headers = {"api-key": USER_KEY}
    else:
        subprotocols = ["realtime", KEY_TOKEN]
    async with ws_connect(server.ws_url(listener), headers=headers, subprotocols=subprotocols) as ws:
        if subprotocols:
            assert ws.subprotocol == "realtime"
        events = await text_turn(ws, "Hello there")
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "You said: Hello there"
    assert events[-1]["response"]["status"] == "completed"


async def test_browser_key_subprotocol_is_never_echoed(server: RunningServer, listener: str) -> None:
    # Offered without "realtime": nothing may be echoed, certainly not the key token.
    async with ws_connect(server.ws_url(listener), subprotocols=[KEY_TOKEN]) as ws:
        assert ws.subprotocol is None
        await events_until(ws, "session.created")
    async with ws_connect(server.ws_url(listener), subprotocols=[KEY_TOKEN, "realtime", "openai-beta.realtime-v1"]) as ws:
        assert ws.subprotocol == "realtime"


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": "Bearer wrong-key-0123456789"}, 401),
    ({"api-key": "wrong-key-0123456789"}, 401),
])
async def test_header_clients_without_a_valid_key_get_401(server: RunningServer, listener: str,
                                                           headers: dict[str, str], status: int) -> None:
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(server.ws_url(listener), headers=headers):
            pass
    assert info.value.status_code == status
    body = json.loads(info.value.body)
    assert body["error"]["code"] in ("missing_api_key", "invalid_api_key")
    assert "wrong-key" not in info.value.body.decode()


@pytest.mark.parametrize(("query", "status", "code"), [
    ("model=gpt-realtime-mini", 403, "model_not_allowed"),
    ("model=no-such-model", 404, "model_not_found"),
    ("", 400, "missing_model"),
    ("model=bad%0d%0amodel", 400, "invalid_model"),
])
async def test_model_checks_reject_with_status(server: RunningServer, listener: str, query: str, status: int,
                                               code: str) -> None:
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(server.ws_url(listener, query=query), headers=auth_headers(USER_KEY)):
            pass
    assert info.value.status_code == status
    assert json.loads(info.value.body)["error"]["code"] == code


@pytest.mark.parametrize(("key", "query", "close_code", "code"), [
    ("wrong-key-0123456789", "model=gpt-realtime", 4401, "invalid_api_key"),
    (USER_KEY, "model=gpt-realtime-mini", 4403, "model_not_allowed"),
    (USER_KEY, "model=nope", 4404, "model_not_found"),
])
async def test_browser_refusal_is_an_error_event_and_4xxx_close(server: RunningServer, listener: str, key: str,
                                                                query: str, close_code: int, code: str) -> None:
    async with ws_connect(server.ws_url(listener, query=query),
                          subprotocols=["realtime", f"openai-insecure-api-key.{key}"]) as ws:
        assert ws.subprotocol == "realtime"
        event = json.loads(await ws.get_message())
        assert event["type"] == "error"
        assert event["error"]["code"] == code
        assert key not in event["error"]["message"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason.code == close_code
    assert closed.value.reason.reason


async def test_admin_key_may_use_every_model(server: RunningServer, listener: str) -> None:
    async with ws_connect(server.ws_url(listener, query="model=gpt-realtime-mini"), headers=auth_headers(ADMIN_KEY)) as ws:
        events = await text_turn(ws, "hi")
    assert events[-1]["type"] == "response.done"


# -- what reaches the upstream ------------------------------------------------------------------

async def test_upstream_gets_the_provider_key_and_never_the_clients(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    async with ws_connect(srv.ws_url(listener, query="model=fake&intent=x"),
                          subprotocols=["realtime", KEY_TOKEN, "openai-beta.realtime-v1"],
                          headers={"X-Trace": "t1"}) as ws:
        await events_until(ws, "session.created")
    seen = fake_upstream.requests[0]
    assert seen.path == "/v1/realtime?model=gpt-realtime&intent=x"
    assert seen.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert seen.headers["openai-beta"] == "realtime=v1"
    assert seen.subprotocols == []
    flat = json.dumps(seen.headers)
    assert USER_KEY not in flat
    assert "remote-addr" not in seen.headers and "x-trace" not in seen.headers


async def test_azure_upstream_gets_deployment_api_version_and_api_key(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    async with ws_connect(srv.ws_url(listener, path="/openai/realtime",
                                     query="api-version=2025-04-01-preview&deployment=fake-azure"),
                          headers={"api-key": USER_KEY}) as ws:
        await events_until(ws, "session.created")
    seen = fake_upstream.requests[0]
    assert seen.path == "/openai/realtime?api-version=2025-04-01-preview&deployment=my-deployment"
    assert seen.headers["api-key"] == PROVIDER_KEY
    assert "authorization" not in seen.headers
    # a preview api-version: the beta dialect, though the client sent no OpenAI-Beta header
    assert seen.headers.get("openai-beta") == "realtime=v1"


async def test_frames_are_forwarded_byte_for_byte_both_ways(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    # odd, but its bytes prove its one top-level type (a \u escape would not: such a client frame is
    # forwarded as parsed, tests/test_gate_parse.py)
    odd_text = '{ "type" :"x.unknown",  "v": "é ✓", "n": 1.50 }'
    payloads = [odd_text, b"\x00\x01binary\xff", b"", ""]
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        assert json.loads(await ws.get_message())["type"] == "session.created"
        for p in payloads:
            await ws.send_message(p)
        echoed = []
        with trio.fail_after(5):
            for _ in payloads:
                echoed.append(await ws.get_message())
    assert fake_upstream.received == payloads
    assert echoed == payloads
    assert isinstance(echoed[2], bytes) and isinstance(echoed[3], str)


# -- closing ------------------------------------------------------------------------------------

async def test_client_close_closes_upstream_promptly(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    # a close timeout far longer than the wait below: the upstream must be closed at once, not
    # when some timeout runs out (no tight wall-clock window on a loaded machine)
    srv = await server_with_fake(nursery, tmp_path, fake_upstream, server={"close_timeout_s": 60.0})
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        await ws.get_message()
        await ws.send_message('{"type":"ping"}')
        await ws.get_message()
    with trio.fail_after(20):
        await fake_upstream.closed.wait()
    code = fake_upstream.closes[0][0]
    # both ports forward the client's own 1000 (the main port's sessions take the fast path too)
    assert code == 1000


async def test_client_vanishing_closes_upstream_with_1001(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream, server={"close_timeout_s": 60.0})
    stream = await raw_upgrade(srv.port(listener), USER_KEY, model="fake")
    with trio.fail_after(5):
        await fake_upstream.connected.wait()
        data = await stream.receive_some(65536)
    assert data.startswith(b"HTTP/1.1 101")
    await stream.aclose()  # no close frame: the client just vanishes
    with trio.fail_after(20):  # far inside the 60 s close timeout: closed at once
        await fake_upstream.closed.wait()
    assert fake_upstream.closes == [(1001, "client went away")]


async def test_upstream_close_code_reaches_the_client(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    async def close_with_4001(ws: WebSocketConnection, fake: FakeUpstream) -> None:
        await ws.send_message(SESSION_CREATED)
        await ws.get_message()
        await ws.aclose(4001, "upstream done")

    fake_upstream.behaviour = close_with_4001
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        await ws.get_message()
        await ws.send_message('{"type":"response.create"}')
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
            await ws.get_message()
    assert (closed.value.reason.code, closed.value.reason.reason) == (4001, "upstream done")


async def test_upstream_dropping_mid_response_gives_error_event_and_1011(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    async def drop(ws: WebSocketConnection, fake: FakeUpstream) -> None:
        await ws.send_message(SESSION_CREATED)
        await ws.get_message()
        await ws.send_message('{"type":"response.created","event_id":"e","response":{"id":"resp_1"}}')
        await ws._stream.aclose()  # TCP gone, no close frame: 1006 from the proxy's view

    fake_upstream.behaviour = drop
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        await ws.get_message()
        await ws.send_message('{"type":"response.create"}')
        events = []
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
            while True:
                events.append(json.loads(await ws.get_message()))
    assert [e["type"] for e in events] == ["response.created", "error"]
    assert events[-1]["error"]["code"] == "upstream_disconnected"
    assert closed.value.reason.code == 1011
    with trio.fail_after(5):
        while not any(r["record"] == "session" for r in srv.records()):
            await trio.sleep(0.01)
    session = [r for r in srv.records() if r["record"] == "session"][0]
    assert session["status"] == "failure" and session["responses_in_flight"] == 1


# -- upstream refusals --------------------------------------------------------------------------

@pytest.mark.parametrize(("upstream_status", "status", "code"), [
    (401, 502, "upstream_auth_failed"),
    (403, 502, "upstream_auth_failed"),
    (429, 429, "upstream_rate_limited"),
    (500, 502, "upstream_refused"),
])
async def test_upstream_refusal_is_mapped_and_recorded_as_failure(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str,
        upstream_status: int, status: int, code: str) -> None:
    fake_upstream.reject_status = upstream_status
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)):
            pass
    assert info.value.status_code == status
    body = info.value.body.decode()
    assert json.loads(body)["error"]["code"] == code
    assert "sk-pr" not in body  # the upstream's body (which can echo key fragments) is not passed on
    (record,) = srv.records()
    assert record["record"] == "session" and record["status"] == "failure"
    assert record["error"]["code"] == code and record["cost_usd"] == 0.0


async def test_upstream_down_is_502_for_headers_and_4502_for_browsers(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    dead_port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    fake = FakeUpstream(port=dead_port)
    srv = await server_with_fake(nursery, tmp_path, fake)
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)):
            pass
    assert info.value.status_code == 502
    assert json.loads(info.value.body)["error"]["code"] == "upstream_unreachable"
    async with ws_connect(srv.ws_url(listener, query="model=fake"), subprotocols=["realtime", KEY_TOKEN]) as ws:
        event = json.loads(await ws.get_message())
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert event["error"]["code"] == "upstream_unreachable"
    assert closed.value.reason.code == 4502


async def test_upstream_slow_to_accept_hits_the_connect_timeout(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    fake_upstream.accept_delay_s = 5
    srv = await server_with_fake(nursery, tmp_path, fake_upstream, server={"upstream_connect_timeout_s": 0.3})
    with pytest.raises(ConnectionRejected) as info, trio.fail_after(3):
        async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)):
            pass
    assert info.value.status_code == 502
    assert "did not answer" in json.loads(info.value.body)["error"]["message"]


# -- limits -------------------------------------------------------------------------------------

async def test_oversize_client_message_closes_with_1009(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream, server={"max_message_bytes": 64 * 1024})
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        await ws.get_message()
        await ws.send_message("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
            await ws.get_message()
    assert closed.value.reason.code == 1009
    with trio.fail_after(2):
        await fake_upstream.closed.wait()
    assert fake_upstream.received == []  # the oversize message never went upstream


async def test_large_audio_sized_messages_pass_under_the_limit(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    big = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (3 * 2**20)})  # > trio-websocket's 1 MiB
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        await ws.get_message()
        await send_event(ws, json.loads(big))
        with trio.fail_after(10):
            assert await ws.get_message() == big


async def test_undocumented_query_parameters_never_reach_the_provider(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    query = "model=fake&model%20=evil&api-key=sk-x&foo=bar&intent=conversation"
    async with ws_connect(srv.ws_url(listener, query=query), headers=auth_headers(USER_KEY)) as ws:
        await ws.get_message()
    [seen] = fake_upstream.requests
    assert seen.path == "/v1/realtime?model=gpt-realtime&intent=conversation"


# -- models named mid-session -------------------------------------------------------------------

def transcription_update(model: str, event_id: str = "evt_1") -> dict[str, Any]:
    return {"type": "session.update", "event_id": event_id, "session": {
        "type": "realtime", "audio": {"input": {"transcription": {"model": model}}}}}


@pytest.mark.parametrize(("update", "code"), [
    (transcription_update("gpt-4o-transcribe"), "model_not_allowed"),                 # GA transcription model
    ({"type": "session.update", "session": {"input_audio_transcription": {"model": "whisper-1"}}},
     "model_not_allowed"),                                                           # beta shape
    ({"type": "transcription_session.update", "session": {"input_audio_transcription": {"model": "whisper-1"}}},
     "model_not_allowed"),
    ({"type": "session.update", "session": {"type": "realtime", "model": "gpt-realtime-mini"}}, "model_not_allowed"),
    (transcription_update("gpt-4o-mini-transcribe"), None),                         # on the key's list
    ({"type": "session.update", "session": {"type": "realtime", "model": "fake"}}, None),  # its own: forwarded
    ({"type": "session.update", "session": {"type": "realtime", "model": "gpt-realtime"}}, None),  # upstream name
])
async def test_a_session_update_naming_a_model_the_key_may_not_use_is_refused_not_forwarded(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str,
        update: dict[str, Any], code: str | None) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream,
                                 keys=[{"name": "narrow", "key": LIMITED_KEY, "models": ["fake"],
                                        "transcription_models": ["gpt-4o-mini-transcribe"]}])
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(LIMITED_KEY)) as ws:
        await ws.get_message()  # session.created
        await send_event(ws, update)
        await ws.send_message('{"type":"ping","n":1}')  # a marker the fake echoes: everything before it arrived
        errors = []
        with trio.fail_after(10):
            while True:
                event = json.loads(await ws.get_message())
                if event["type"] == "error":
                    errors.append(event["error"]["code"])
                if event.get("n") == 1:
                    break
        assert errors == ([code] if code else [])
    seen_types = [json.loads(m).get("type") for m in fake_upstream.received]
    assert (update["type"] in seen_types) == (code is None)


async def test_a_transcription_list_defaults_to_the_keys_models_and_star_opens_them_all(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream, keys=[
        {"name": "any-asr", "key": "test-any-asr-key-0123456789", "models": ["fake"], "transcription_models": ["*"]}])
    # "user" lists models but no transcription models: only its models may be named
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        await ws.get_message()
        await send_event(ws, transcription_update("gpt-4o-transcribe"))
        events = await events_until(ws, "error")
        assert events[-1]["error"]["code"] == "model_not_allowed"
    async with ws_connect(srv.ws_url(listener, query="model=fake"),
                          headers=auth_headers("test-any-asr-key-0123456789")) as ws:
        await ws.get_message()
        await send_event(ws, transcription_update("gpt-4o-transcribe"))
        await ws.send_message('{"type":"ping","n":2}')
        with trio.fail_after(10):
            while json.loads(await ws.get_message()).get("n") != 2:
                pass
    assert [json.loads(m).get("type") for m in fake_upstream.received].count("session.update") == 1


def test_the_gate_echoes_the_offending_event_id_and_names_no_value_it_should_not() -> None:
    from rtproxy.protocols.realtime.gate import ModelGate

    gate = ModelGate(frozenset({"fake", "gpt-realtime"}), lambda name: name == "fake",
                     lambda name: name == "allowed-asr")
    refusal = json.loads(gate.check(json.dumps(transcription_update("x" * 500, "evt_9")).encode()) or "{}")
    assert refusal["type"] == "error" and refusal["error"]["event_id"] == "evt_9"
    assert refusal["error"]["param"] == "session.audio.input.transcription.model"
    assert len(refusal["error"]["message"]) < 200
    assert gate.check(json.dumps(transcription_update("allowed-asr")).encode()) is None
    assert gate.check(b'{"type":"response.create"}') is None
    assert gate.check(b"not json") is None
    refusal = json.loads(gate.check(b'{"type":"session.update","session":{"model":5}}') or "{}")
    assert refusal["error"]["code"] == "model_not_allowed"


async def test_another_model_the_key_may_use_still_cannot_replace_the_sessions(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        await ws.get_message()
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "model": "fake-azure"}})
        event = json.loads(await ws.get_message())
    assert event["type"] == "error" and event["error"]["code"] == "model_cannot_change"
    assert "session.update" not in [json.loads(m).get("type") for m in fake_upstream.received]


async def test_azures_v1_path_and_a_preview_api_version_are_served(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    # the GA v1 path, as the openai SDK's Azure client opens it
    async with ws_connect(srv.ws_url(listener, path="/openai/v1/realtime", query="model=fake-azure"),
                          headers={"api-key": USER_KEY}) as ws:
        await ws.get_message()
    # a preview api-version without OpenAI-Beta (livekit's Azure mode): the session is beta
    async with ws_connect(srv.ws_url(listener, path="/openai/realtime",
                                     query="api-version=2024-10-01-preview&deployment=fake-azure"),
                          headers={"api-key": USER_KEY}) as ws:
        await ws.get_message()
    ga, preview = fake_upstream.requests
    assert "openai-beta" not in ga.headers
    assert preview.headers.get("openai-beta") == "realtime=v1"
    assert ga.headers["api-key"] == preview.headers["api-key"] != USER_KEY
