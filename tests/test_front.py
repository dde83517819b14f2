"""The main port's front: realtime upgrades to the fast path, every other request to hypercorn
with the bytes already read (keep-alive, pipelining, bodies, TLS), and sessions that behave as on
the realtime listener."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import trio
import trustme

from rtproxy.auth.admission import is_session_path
from rtproxy.server.front import realtime_request_line

from .conftest import ADMIN_KEY, USER_KEY, RunningServer, make_config, start_server
from .helpers import auth_headers, text_turn, ws_connect

PATHS = is_session_path


def test_only_a_get_to_a_realtime_path_is_a_realtime_request() -> None:
    assert realtime_request_line(b"GET /v1/realtime?model=x HTTP/1.1\r\nHost: a\r\n", PATHS)
    assert realtime_request_line(b"GET /v1/realtime/ HTTP/1.1\r\n", PATHS)
    assert realtime_request_line(b"GET /openai/realtime?api-version=1 HTTP/1.1\r\n", PATHS)
    assert not realtime_request_line(b"POST /v1/realtime HTTP/1.1\r\n", PATHS)
    assert not realtime_request_line(b"GET /v1/realtime/calls HTTP/1.1\r\n", PATHS)
    assert not realtime_request_line(b"GET /v1/realtimex HTTP/1.1\r\n", PATHS)
    assert not realtime_request_line(b"GET /v1/realtime HTTP/2\r\n", PATHS)
    assert not realtime_request_line(b"GET  /v1/realtime HTTP/1.1\r\n", PATHS)
    # GPT-Live's primary, sideband and fork paths, OpenAI's and Azure's
    assert realtime_request_line(b"GET /v1/live/sessions HTTP/1.1\r\n", PATHS)
    assert realtime_request_line(b"GET /openai/v1/live/sessions/live_ab12/attach?graceful_close=true HTTP/1.1\r\n",
                                 PATHS)
    assert realtime_request_line(b"GET /v1/live/sessions/live_ab12/fork HTTP/1.1\r\n", PATHS)
    assert not realtime_request_line(b"GET /v1/live/sessions/abc/attach HTTP/1.1\r\n", PATHS)
    assert not realtime_request_line(b"GET /v1/live/sessions/live_ab12/hangup HTTP/1.1\r\n", PATHS)


async def read_responses(stream: trio.SocketStream, count: int) -> list[tuple[int, bytes]]:
    """``count`` HTTP/1.1 responses (with Content-Length bodies) from one connection."""
    data = b""
    out: list[tuple[int, bytes]] = []
    with trio.fail_after(10):
        while len(out) < count:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                              if line.startswith(b"content-length:"))
                if len(rest) >= length:
                    out.append((int(head.split(b" ")[1]), rest[:length]))
                    data = rest[length:]
                    continue
            data += await stream.receive_some(65536)
    return out


async def test_keep_alive_and_pipelined_requests_are_served_in_order(server: RunningServer) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server.main_port)
    await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    [(status, body)] = await read_responses(stream, 1)
    assert status == 200 and json.loads(body)["status"] == "ok"
    # the same connection again, then three requests in one write
    await stream.send_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + USER_KEY.encode()
                          + b"\r\n\r\n" + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                          + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    answers = await read_responses(stream, 3)
    assert [a[0] for a in answers] == [200, 200, 404]
    assert json.loads(answers[0][1])["data"]
    await stream.aclose()


async def test_a_request_with_a_body_is_handed_over_whole(server: RunningServer) -> None:
    """The front reads past the request line; hypercorn must still get the head and body."""
    body = json.dumps({"session": {"type": "realtime", "model": "gpt-realtime", "instructions": "x" * 5000}})
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.post("/v1/realtime/client_secrets", content=body, headers=auth_headers(USER_KEY))
    assert r.status_code == 200 and r.json()["value"].startswith("ek_")


async def test_other_paths_and_methods_go_to_the_app(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        assert (await http.post("/v1/realtime", headers=auth_headers(USER_KEY))).status_code == 404  # a Quart answer
        r = await http.get("/v1/realtime/endpoints", headers=auth_headers(USER_KEY))
        assert r.status_code == 200 and r.json()["listeners"]
        assert (await http.get("/admin/sessions", headers=auth_headers(ADMIN_KEY))).status_code == 200


async def test_main_port_sessions_are_recorded_like_the_realtime_listeners(server: RunningServer) -> None:
    for listener in ("main", "realtime"):
        async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
            await text_turn(ws)
    with trio.fail_after(10):
        while len([r for r in server.records() if r["record"] == "session"]) < 2:
            await trio.sleep(0.02)
    main, fast = [r for r in server.records() if r["record"] == "session"]
    assert main["close"] == fast["close"] == {"by": "client", "code": 1000, "reason": ""}


async def test_tls_main_port_keeps_alive_and_upgrades(nursery: trio.Nursery, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile, cafile = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    ca.cert_pem.write_to_path(str(cafile))
    srv = await start_server(nursery, make_config(tmp_path, server={"tls_certfile": str(certfile),
                                                                    "tls_keyfile": str(keyfile)}))
    ctx = ssl.create_default_context(cafile=str(cafile))
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{srv.main_port}", verify=ctx) as http:
        for _ in range(3):  # one TLS connection, kept alive
            assert (await http.get("/health")).status_code == 200
    assert srv.gateway.connections.stats()["refused"] == 0


async def test_every_answer_carries_the_security_headers(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        for path in ("/", "/logs", "/health", "/v1/models", "/nope"):
            r = await http.get(path, headers=auth_headers(USER_KEY))
            assert r.headers["referrer-policy"] == "no-referrer", path
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert "default-src 'self'" in r.headers["content-security-policy"], path
