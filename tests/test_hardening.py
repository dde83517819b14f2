"""Hardening: ephemeral tokens, TLS, limits, faults and bad input — nothing lost, nothing leaked."""

from __future__ import annotations

import json
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url, serve_websocket
from websockets.frames import Close, Frame, Opcode

from rtproxy.auth.tokens import TokenClaims, TokenSigner

from .conftest import ADMIN_KEY, LIMITED_KEY, USER_KEY, RunningServer, make_config, start_server
from .fakes import SESSION_CREATED, FakeUpstream
from .helpers import (
    expect_error_then_close,
    PROVIDER_KEY,
    auth_headers,
    events_until,
    raw_upgrade,
    send_event,
    server_with_fake,
    text_turn,
    user_text,
    ws_connect,
)

TOKEN_SECRET = "a-shared-token-secret-0123456789"


async def mint(srv: RunningServer, key: str = USER_KEY, body: dict[str, Any] | None = None,
               path: str = "/v1/realtime/client_secrets", headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=srv.http) as http:
        return await http.post(path, json=body if body is not None else {"session": {"type": "realtime",
                                                                                      "model": "gpt-realtime"}},
                               headers={**auth_headers(key), **(headers or {})})


async def wait_for(predicate: Any, timeout_s: float = 10.0) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.01)


def sessions(srv: RunningServer) -> list[dict[str, Any]]:
    return [r for r in srv.records() if r["record"] == "session"]


# -- ephemeral tokens ---------------------------------------------------------------------------

async def test_minted_token_opens_its_model_on_both_listeners_billed_to_the_parent(
        server: RunningServer, listener: str) -> None:
    r = await mint(server, headers={"x-rtproxy-end-user": "visitor-7"})
    assert r.status_code == 200
    body = r.json()
    token = body["value"]
    assert token.startswith("ek_") and body["expires_at"] - time.time() == pytest.approx(60, abs=5)
    assert body["session"]["model"] == "gpt-realtime" and body["session"]["type"] == "realtime"
    assert USER_KEY not in r.text
    async with ws_connect(server.ws_url(listener), subprotocols=["realtime", f"openai-insecure-api-key.{token}"]) as ws:
        assert ws.subprotocol == "realtime"
        await text_turn(ws)
    async with ws_connect(server.ws_url(listener, query=""), headers=auth_headers(token)) as ws:  # model from the token
        await text_turn(ws)
    await wait_for(lambda: len(sessions(server)) == 2)
    for record in server.records():
        assert record["key_name"] == "user" and record["end_user"] == "visitor-7"
    assert {s["credential"] for s in sessions(server)} == {"ephemeral_token"}
    assert token.encode() not in server.gateway.spend.path.read_bytes()


async def test_beta_sessions_endpoint_and_the_token_session_config_is_applied(server: RunningServer) -> None:
    r = await mint(server, path="/v1/realtime/sessions", body={
        "model": "gpt-realtime", "instructions": "Speak like a pirate.", "modalities": ["text"],
        "client_secret": {"expires_after": {"anchor": "created_at", "seconds": 600}}})
    assert r.status_code == 200
    body = r.json()
    assert body["client_secret"]["value"].startswith("ek_")
    assert body["client_secret"]["expires_at"] - time.time() == pytest.approx(600, abs=5)
    assert body["instructions"] == "Speak like a pirate."
    token = body["client_secret"]["value"]
    async with ws_connect(server.ws_url("realtime"), subprotocols=[
            "realtime", f"openai-insecure-api-key.{token}", "openai-beta.realtime-v1"]) as ws:
        events = await events_until(ws, "session.updated")
    assert events[-1]["session"]["instructions"] == "Speak like a pirate."
    assert events[-1]["session"]["modalities"] == ["text"]


async def test_a_token_with_a_large_session_config_is_short_and_opens_on_both_listeners(
        server: RunningServer, listener: str) -> None:
    """Long instructions and tools would make a 12 KB token that no header line takes: the
    config is kept in the state store and the token carries a reference to it."""
    instructions = "You are a careful assistant. " * 700  # about 20 KB
    tools = [{"type": "function", "name": f"tool_{i}", "description": "d" * 200,
              "parameters": {"type": "object", "properties": {}}} for i in range(10)]
    r = await mint(server, body={"session": {"type": "realtime", "model": "gpt-realtime",
                                             "instructions": instructions, "tools": tools}})
    assert r.status_code == 200, r.text
    token = r.json()["value"]
    assert len(token) <= 2048
    async with ws_connect(server.ws_url(listener), subprotocols=["realtime", f"openai-insecure-api-key.{token}"]) as ws:
        events = await events_until(ws, "session.updated")
        assert events[-1]["session"]["instructions"] == instructions
        assert [t["name"] for t in events[-1]["session"]["tools"]] == [t["name"] for t in tools]
        await text_turn(ws, fresh=False)


async def test_a_small_session_config_stays_inside_the_token(server: RunningServer) -> None:
    r = await mint(server, body={"session": {"type": "realtime", "model": "gpt-realtime", "instructions": "Be brief."}})
    claims = server.gateway.tokens.verify(r.json()["value"], now=time.time())
    assert claims.session == {"instructions": "Be brief."} and claims.session_ref is None


async def test_a_token_whose_stored_config_is_gone_is_refused_clearly(nursery: trio.Nursery, tmp_path: Path,
                                                                      listener: str) -> None:
    srv = await start_server(nursery, make_config(tmp_path / "a", server={"token_secret": "shared-secret-0123456789"}))
    other = await start_server(nursery, make_config(tmp_path / "b", server={"token_secret": "shared-secret-0123456789"}))
    r = await mint(srv, body={"session": {"type": "realtime", "model": "gpt-realtime", "instructions": "x" * 5000}})
    token = r.json()["value"]
    # the other gateway shares the signing secret but not the state store (a separate SQLite file)
    with pytest.raises(ConnectionRejected) as refused:
        async with ws_connect(other.ws_url(listener, query=""), headers=auth_headers(token)):
            pass
    assert refused.value.status_code == 401
    assert b"state store" in (refused.value.body or b"")


async def test_a_session_config_too_large_even_for_the_store_is_refused(server: RunningServer) -> None:
    r = await mint(server, body={"session": {"type": "realtime", "model": "gpt-realtime",
                                             "instructions": "x" * 300_000}})
    assert r.status_code == 413 and r.json()["error"]["code"] == "session_too_large"


@pytest.mark.parametrize(("mutate", "status", "code"), [
    (lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"), 401, "invalid_ephemeral_token"),
    (lambda t: "ek_" + t[3:].replace(".", "x.", 1), 401, "invalid_ephemeral_token"),
])
async def test_forged_tokens_are_refused(server: RunningServer, listener: str, mutate: Any, status: int,
                                        code: str) -> None:
    token = mutate((await mint(server)).json()["value"])
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(server.ws_url(listener), headers=auth_headers(token)):
            pass
    assert info.value.status_code == status
    assert json.loads(info.value.body)["error"]["code"] == code
    assert token not in info.value.body.decode()


async def test_expired_and_wrong_model_tokens_are_refused(server: RunningServer, listener: str) -> None:
    now = int(time.time())
    expired = server.gateway.tokens.mint(TokenClaims("user", "gpt-realtime", expires_at=now - 1, issued_at=now - 61))
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(server.ws_url(listener), headers=auth_headers(expired)):
            pass
    assert info.value.status_code == 401 and "expired" in json.loads(info.value.body)["error"]["message"]
    admin_token = (await mint(server, key=ADMIN_KEY)).json()["value"]
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(server.ws_url(listener, query="model=gpt-realtime-mini"), headers=auth_headers(admin_token)):
            pass
    assert info.value.status_code == 403
    async with ws_connect(server.ws_url(listener, query="model=gpt-realtime-mini"),
                          subprotocols=["realtime", f"openai-insecure-api-key.{expired}"]) as ws:
        event = json.loads(await ws.get_message())
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert event["error"]["code"] == "invalid_ephemeral_token" and closed.value.reason.code == 4401


async def test_a_token_is_no_key_for_anything_else(server: RunningServer) -> None:
    token = (await mint(server)).json()["value"]
    async with httpx.AsyncClient(base_url=server.http) as http:
        assert (await http.get("/v1/models", headers=auth_headers(token))).status_code == 401
        assert (await http.get("/spend/logs", headers=auth_headers(token))).status_code == 401
    assert (await mint(server, key=token)).status_code == 401


@pytest.mark.parametrize(("body", "status"), [
    ({"session": {"type": "realtime"}}, 400),
    ({"session": {"model": "nope"}}, 404),
    ({"session": {"model": "gpt-realtime-mini"}}, 403),
    ({"session": {"model": "gpt-realtime"}, "expires_after": {"seconds": 5}}, 400),
    ({"session": {"model": "gpt-realtime"}, "expires_after": {"seconds": 7201}}, 400),
    ({"session": {"model": "gpt-realtime"}, "expires_after": {"anchor": "now", "seconds": 60}}, 400),
    ({"session": {"model": "gpt-realtime", "instructions": "x" * 300_000}}, 413),  # over the 256 KiB a store keeps
    ([1, 2], 400),
])
async def test_mint_validates_its_request(server: RunningServer, body: Any, status: int) -> None:
    assert (await mint(server, body=body)).status_code == status


async def test_workers_sharing_the_secret_accept_each_others_tokens(nursery: trio.Nursery, tmp_path: Path) -> None:
    a = await start_server(nursery, make_config(tmp_path / "a", server={"token_secret": TOKEN_SECRET}))
    b = await start_server(nursery, make_config(tmp_path / "b", server={"token_secret": TOKEN_SECRET}))
    c = await start_server(nursery, make_config(tmp_path / "c"))  # its own generated secret
    token = (await mint(a)).json()["value"]
    async with ws_connect(b.ws_url("realtime"), headers=auth_headers(token)) as ws:
        await text_turn(ws)
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(c.ws_url("realtime"), headers=auth_headers(token)):
            pass
    assert info.value.status_code == 401


def test_token_signer_round_trip_and_tampering() -> None:
    signer = TokenSigner(TOKEN_SECRET.encode())
    claims = TokenClaims("k", "m", expires_at=2_000_000_000, issued_at=1, session={"instructions": "hi"})
    token = signer.mint(claims)
    assert signer.verify(token, now=1_999_999_999).session == {"instructions": "hi"}
    with pytest.raises(Exception, match="expired"):
        signer.verify(token, now=2_000_000_000)
    with pytest.raises(Exception, match="signature"):
        TokenSigner(b"another-secret-0123456789").verify(token, now=0)


# -- TLS ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    return certfile, keyfile, cafile


async def test_tls_serves_both_listeners_and_the_pages(nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA) -> None:
    certfile, keyfile, cafile = tls_files(ca, tmp_path)
    cfg = make_config(tmp_path, server={"tls_certfile": str(certfile), "tls_keyfile": str(keyfile)})
    srv = await start_server(nursery, cfg)
    client_ctx = ssl.create_default_context(cafile=str(cafile))
    for port in (srv.realtime_port, srv.main_port):
        async with open_websocket_url(f"wss://127.0.0.1:{port}/v1/realtime?model=gpt-realtime", ssl_context=client_ctx,
                                      extra_headers=[(b"authorization", f"Bearer {USER_KEY}".encode())]) as ws:
            events = await text_turn(ws, "over TLS")
        assert events[-1]["response"]["status"] == "completed"
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{srv.main_port}", verify=client_ctx) as http:
        assert (await http.get("/health")).json()["status"] == "ok"
        assert "rtproxy" in (await http.get("/")).text
        ep = (await http.get("/v1/realtime/endpoints")).json()
        assert ep["listeners"][0]["url"].startswith("wss://")
    # a client that does not trust the certificate gets no further than the TLS handshake
    tls = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", srv.realtime_port), ssl.create_default_context(),
                         server_hostname="127.0.0.1")
    with pytest.raises(trio.BrokenResourceError), trio.fail_after(5):
        await tls.do_handshake()
    await tls.transport_stream.aclose()


async def test_wss_upstream_is_verified_against_the_configured_ca(nursery: trio.Nursery, tmp_path: Path,
                                                                  ca: trustme.CA) -> None:
    certfile, keyfile, cafile = tls_files(ca, tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(certfile), str(keyfile))

    async def handler(request: Any) -> None:
        ws = await request.accept()
        await ws.send_message(SESSION_CREATED)
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            pass

    upstream = await nursery.start(lambda task_status: serve_websocket(
        handler, "127.0.0.1", 0, server_ctx, task_status=task_status))
    models = [{"name": "gpt-realtime", "provider": "local"},
              {"name": "private", "provider": "openai", "api_base": f"wss://localhost:{upstream.port}/v1",
               "api_key": PROVIDER_KEY}]
    keys = [{"name": "user", "key": USER_KEY}]
    trusted = await start_server(nursery, make_config(tmp_path / "t", models=models, keys=keys,
                                                      server={"upstream_ca_file": str(cafile)}))
    async with ws_connect(trusted.ws_url("realtime", query="model=private"), headers=auth_headers(USER_KEY)) as ws:
        assert json.loads(await ws.get_message())["type"] == "session.created"
        await ws.send_message('{"type":"ping"}')
        assert await ws.get_message() == '{"type":"ping"}'
    untrusted = await start_server(nursery, make_config(tmp_path / "u", models=models, keys=keys))
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(untrusted.ws_url("realtime", query="model=private"), headers=auth_headers(USER_KEY)):
            pass
    assert info.value.status_code == 502


# -- limits -------------------------------------------------------------------------------------

async def test_idle_sessions_are_closed(nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, make_config(tmp_path, server={"idle_timeout_s": 0.4}))
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await text_turn(ws)  # activity resets the clock; then silence
        reason = await expect_error_then_close(ws, "idle_timeout", 1008)
    assert "0.4 s" in reason
    await wait_for(lambda: sessions(srv))
    assert sessions(srv)[0]["close"]["code"] == 1008 and sessions(srv)[0]["responses"] == 1


async def test_sessions_end_at_their_maximum_duration(nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, make_config(tmp_path, server={"max_session_duration_s": 0.5}))
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await expect_error_then_close(ws, "session_expired", 1008)


async def test_global_session_cap(nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, make_config(tmp_path, server={"max_concurrent_sessions": 1}))
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        with pytest.raises(ConnectionRejected) as info:
            async with ws_connect(srv.ws_url(listener), headers=auth_headers(ADMIN_KEY)):
                pass
        assert info.value.status_code == 503
        async with ws_connect(srv.ws_url(listener), subprotocols=["realtime", f"openai-insecure-api-key.{ADMIN_KEY}"]) as b:
            await expect_error_then_close(b, "server_at_capacity", 4503)


async def test_new_sessions_per_key_per_minute(nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    cfg = make_config(tmp_path, keys=[{"name": "limited", "key": LIMITED_KEY, "max_sessions_per_minute": 2}])
    srv = await start_server(nursery, cfg)
    for _ in range(2):
        async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)) as ws:
            await events_until(ws, "session.created")
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)):
            pass
    assert info.value.status_code == 429 and json.loads(info.value.body)["error"]["code"] == "rate_limited"


async def test_origin_allow_list(nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, make_config(tmp_path, server={"allowed_origins": ["https://app.example.com"]}))
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(srv.ws_url(listener), headers={**auth_headers(USER_KEY), "Origin": "https://evil.example"}):
            pass
    assert info.value.status_code == 403
    async with ws_connect(srv.ws_url(listener), headers={**auth_headers(USER_KEY), "Origin": "https://app.example.com"}) as ws:
        await events_until(ws, "session.created")
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:  # servers send no Origin
        await events_until(ws, "session.created")


async def test_a_client_that_stops_reading_is_closed_not_buffered(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    sent = 0

    async def flood(ws: WebSocketConnection, fake: FakeUpstream) -> None:
        nonlocal sent
        await ws.send_message(SESSION_CREATED)
        chunk = json.dumps({"type": "response.output_audio.delta", "delta": "A" * 200_000})
        while True:
            await ws.send_message(chunk)
            sent += 1

    fake_upstream.behaviour = flood
    srv = await server_with_fake(nursery, tmp_path, fake_upstream, server={"client_send_timeout_s": 0.5})
    stream = await raw_upgrade(srv.port(listener), USER_KEY, model="fake")
    # ...and never read again
    with trio.fail_after(15):
        await fake_upstream.closed.wait()
    await wait_for(lambda: sessions(srv))
    record = sessions(srv)[0]
    assert record["close"]["by"] == "client" and record["close"]["code"] == 1008
    # The proxy holds one batch per direction; the rest sits in the kernel socket buffers on the
    # way. Measured: 2–3 frames of 200 KB on both ports, idle machine; the bound allows the
    # kernel's default send-buffer ceiling (4 MiB, 20 frames) for autotuning under load. A proxy
    # that buffered for the slow client would take hundreds within the send timeout.
    assert sent <= 20, f"{sent} frames of 200 KB were taken from the upstream for a client that reads nothing"
    await stream.aclose()


# -- bad input ----------------------------------------------------------------------------------

async def test_non_json_binary_and_unknown_events_are_forwarded_and_counted(server: RunningServer,
                                                                            listener: str) -> None:
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await ws.send_message("this is not json")
        assert (await events_until(ws, "error"))[-1]["error"]["code"] == "invalid_json"
        await ws.send_message(json.dumps(user_text("binary hello")).encode())  # JSON in a binary frame
        await events_until(ws, "conversation.item.done")
        await ws.send_message('{"type":"no.such.event","x":1}')
        assert (await events_until(ws, "error"))[-1]["error"]["code"] == "invalid_value"
        nested = '{"type":"session.update","session":' + "[" * 50_000 + "]" * 50_000 + "}"
        await ws.send_message(nested)
        await events_until(ws, "error")
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "tools": "nope"}})
        assert (await events_until(ws, "error"))[-1]["error"]["code"] == "invalid_type"
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "tools": [5]}})
        await events_until(ws, "error")
        events = await text_turn(ws, "still fine", fresh=False)  # the session carries on
    assert events[-1]["response"]["status"] == "completed"
    await wait_for(lambda: sessions(server))
    record = sessions(server)[0]
    assert record["unknown_event_types"] == {"no.such.event": 1}
    assert record["malformed_frames"] >= 2  # the non-JSON text and the over-deep JSON


async def raw_ws(port: int, key: str = USER_KEY, extra: bytes = b"") -> trio.SocketStream:
    return await raw_upgrade(port, key, extra=extra)


async def read_until_close(stream: trio.SocketStream) -> bytes:
    """Bytes up to the server's close frame, or EOF (a server may wait for our close reply)."""
    data = b""
    with trio.fail_after(10):
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return data
            data += chunk
            head = data.partition(b"\r\n\r\n")[2] if data.startswith(b"HTTP/1.1 101") else b""
            if not data.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in data:
                return data  # an HTTP error response
            if b"\x88" in head:
                return data


async def test_invalid_utf8_text_closes_with_1007(server: RunningServer, listener: str) -> None:
    stream = await raw_ws(server.port(listener))
    with trio.fail_after(10):
        head = await stream.receive_some(65536)
    assert head.startswith(b"HTTP/1.1 101")
    await stream.send_all(Frame(Opcode.TEXT, b'{"type":"x","v":"\xff\xfe"}').serialize(mask=True))
    data = head + await read_until_close(stream)
    close_at = data.rfind(b"\x88")
    assert close_at > 0
    assert Close.parse(data[close_at + 2:close_at + 2 + data[close_at + 1]]).code == 1007
    await stream.aclose()
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await text_turn(ws)


@pytest.mark.parametrize("header", [b"X-Rtproxy-End-User: a\rb\r\n", b"X-Bad\r\n", b"X-Long: " + b"a" * 20000 + b"\r\n"])
async def test_malformed_headers_are_refused_and_the_server_carries_on(server: RunningServer, listener: str,
                                                                     header: bytes) -> None:
    stream = await raw_ws(server.port(listener), extra=header)
    with trio.fail_after(10):
        data = await stream.receive_some(65536)
    status = int(data.split(b" ", 2)[1])
    assert 400 <= status < 500, data[:120]
    await stream.aclose()
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await text_turn(ws)


@pytest.mark.parametrize("model", ["gpt%E2%80%AErealtime", "a" * 200, "../../etc/passwd", "gpt%20realtime"])
async def test_odd_model_names_are_refused(server: RunningServer, listener: str, model: str) -> None:
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(server.ws_url(listener, query=f"model={model}"), headers=auth_headers(USER_KEY)):
            pass
    assert info.value.status_code == 400


# -- secrets ------------------------------------------------------------------------------------

async def test_no_secret_reaches_logs_records_errors_or_bodies(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    token = (await mint(srv)).json()["value"]
    seen: list[str] = []  # everything a client was told
    async with ws_connect(srv.ws_url("realtime"), subprotocols=["realtime", f"openai-insecure-api-key.{USER_KEY}"]) as ws:
        await text_turn(ws)
    async with ws_connect(srv.ws_url("main"), headers=auth_headers(token)) as ws:
        await text_turn(ws)
    async with ws_connect(srv.ws_url("realtime", query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        seen.append(await ws.get_message())
    for bad in (f"{USER_KEY}x", f"{token}x"):
        try:
            async with ws_connect(srv.ws_url("realtime"), headers=auth_headers(bad)):
                pass
        except ConnectionRejected as exc:
            seen.append(exc.body.decode())
        async with ws_connect(srv.ws_url("main"), subprotocols=["realtime", f"openai-insecure-api-key.{bad}"]) as ws:
            seen.append(await ws.get_message())
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                seen.append(str(exc.reason.reason))
    fake_upstream.reject_status = 401  # the provider refuses the provider key
    try:
        async with ws_connect(srv.ws_url("main", query="model=fake"), headers=auth_headers(USER_KEY)):
            pass
    except ConnectionRejected as exc:
        seen.append(exc.body.decode())
    async with httpx.AsyncClient(base_url=srv.http) as http:
        seen.append((await http.get("/v1/models", headers=auth_headers(USER_KEY + "x"))).text)
        seen.append((await http.post("/v1/realtime/client_secrets", headers=auth_headers(token), json={})).text)
    await wait_for(lambda: len(sessions(srv)) >= 4)
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "rtproxy" in logs  # the capture did see the server's logging
    places = {"logs": logs, "records": srv.gateway.spend.path.read_text(), "client": "\n".join(seen)}
    for secret in (USER_KEY, ADMIN_KEY, PROVIDER_KEY, token, token[3:40], srv.gateway.local_secret):
        for where, text in places.items():
            assert secret not in text, f"a secret reached the {where}"


async def test_admin_routes_refuse_user_keys(server: RunningServer) -> None:
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        async with httpx.AsyncClient(base_url=server.http) as http:
            assert (await http.get("/admin/sessions", headers=auth_headers(USER_KEY))).status_code == 403
            live = (await http.get("/admin/sessions", headers=auth_headers(ADMIN_KEY))).json()["data"]
    assert [(s["key_name"], s["credential"]) for s in live] == [("user", "key")]


async def test_pages_carry_a_restrictive_content_security_policy(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        for path in ("/", "/logs", "/js/playground.js"):
            r = await http.get(path)
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert r.headers["x-content-type-options"] == "nosniff"
        page = (await http.get("/")).text
    assert "<script>" not in page and " on" + "click=" not in page  # no inline script for the CSP to allow


async def test_an_oversize_message_from_the_upstream_closes_it_with_1009(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    async def too_big(ws: WebSocketConnection, fake: FakeUpstream) -> None:
        await ws.send_message(SESSION_CREATED)
        await ws.get_message()
        await ws.send_message(json.dumps({"type": "response.output_audio.delta", "delta": "A" * 70_000}))
        while True:
            await ws.get_message()  # until the proxy's close arrives

    fake_upstream.behaviour = too_big
    srv = await server_with_fake(nursery, tmp_path, fake_upstream, server={"max_message_bytes": 65536})
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        await ws.get_message()
        await ws.send_message('{"type":"response.create"}')
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(10):
            while True:
                await ws.get_message()
    assert closed.value.reason.code == 1011  # the client is told the upstream failed
    with trio.fail_after(10):
        await fake_upstream.closed.wait()
    assert fake_upstream.closes[0][0] == 1009
    await wait_for(lambda: sessions(srv))
    assert sessions(srv)[0]["close"]["by"] == "upstream" and sessions(srv)[0]["close"]["code"] == 1009
