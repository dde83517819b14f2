"""No unauthenticated request may stall the process: the main port's REST routes and both ports'
heads, black box over loopback sockets against a real server.

- a WebRTC offer (and GPT-Live's WebRTC start, and a call's operations) is refused for an unknown
  caller before its body is read, and a known caller's offer is read by a bounded parser;
- a request body has a total deadline (``http_body_timeout_s``), a request head one too
  (``handshake_timeout_s``), however slowly they trickle in, on both ports;
- spend-log scans run in scan processes, bounded per process and per key;
- every malformed request is a 4xx with rtproxy's JSON error, a bug a JSON 500 (traceback logged);
- every refusal is logged with its code, route and key name, never a credential.
"""

from __future__ import annotations

import json
import logging
import random
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, ConnectionRejected

import rtproxy.server.calls as calls_module
from rtproxy.errors import ConfigError
from rtproxy.protocols.formdata import MAX_FORM_PARTS
from rtproxy.protocols.realtime.calls import MAX_OFFER_BODY_BYTES
from rtproxy.spend import scans as scans_module
from rtproxy.spend.scans import MAX_CONCURRENT_SCANS, MAX_SCANS_PER_KEY, SCAN_RETRY_AFTER_S

from .conftest import ADMIN_KEY, LIMITED_KEY, USER_KEY, RunningServer, make_config, start_server
from .helpers import auth_headers, ws_connect

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
#: What a wrong key looks like in these tests: it must never reach a log line either.
WRONG_KEY = "not-a-key-but-a-secret-0123456789"
#: Generous bounds: the configured timeouts are a fraction of a second, these only stop a hung test.
WITHIN_S = 8.0
#: How often a trickling client sends its next byte (pacing, not waiting for anything).
DRIP_EVERY_S = 0.05


def multipart(*parts: tuple[bytes, bytes], boundary: bytes = b"XyZ") -> tuple[str, bytes]:
    """(Content-Type, body) of a form whose parts are (header block, data)."""
    body = b"".join(b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n" for head, data in parts)
    return f"multipart/form-data; boundary={boundary.decode()}", body + b"--" + boundary + b"--\r\n"


def named(name: str, ctype: str = "application/sdp") -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\nContent-Type: {ctype}'.encode()


def parse_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of the first HTTP answer in ``raw``."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, rest[:int(headers.get("content-length", len(rest)))]


def json_error(status: int, body: bytes) -> dict[str, Any]:
    """The error object of one of rtproxy's JSON error answers (asserting its shape)."""
    assert b"Traceback" not in body and b"<html" not in body.lower(), body[:200]
    error = json.loads(body)["error"]
    assert {k: type(v) for k, v in error.items()} == {"type": str, "code": str, "message": str}, error
    assert error["type"] == ("server_error" if status >= 500 else error["type"])
    return error  # type: ignore[no-any-return]


async def until_closed(port: int, head: bytes, drip: bytes = b"") -> bytes:
    """Send ``head``, then ``drip`` a byte at a time every :data:`DRIP_EVERY_S` for as long as the
    server keeps the connection; return what the server sent before it closed (the test fails
    if it does not close within :data:`WITHIN_S`)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = bytearray()

    async def trickle() -> None:
        try:
            for i in range(10_000):
                await trio.sleep(DRIP_EVERY_S)
                await stream.send_all(drip[i % len(drip):i % len(drip) + 1])
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    with trio.fail_after(WITHIN_S):
        async with trio.open_nursery() as nursery:
            try:
                await stream.send_all(head)
                if drip:
                    nursery.start_soon(trickle)
                while data := await stream.receive_some(65536):
                    received += data
            except (trio.BrokenResourceError, OSError):
                pass  # a reset is a close too
            nursery.cancel_scope.cancel()
    await stream.aclose()
    return bytes(received)


def count_offer_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every content type the broker hands the offer parser, from now on."""
    seen: list[str] = []
    parse = calls_module.parse_offer

    def counted(content_type: str, body: bytes, query_model: str | None) -> Any:
        seen.append(content_type)
        return parse(content_type, body, query_model)

    monkeypatch.setattr(calls_module, "parse_offer", counted)
    return seen


def slow_config(tmp_path: Path, **server: Any) -> Any:
    """Timeouts of a fraction of a second where the test is about them, long ones elsewhere: a
    connection that closes does so because of the bound under test."""
    return make_config(tmp_path, server={"handshake_timeout_s": 0.5, "http_body_timeout_s": 0.5,
                                         "keep_alive_timeout_s": 30.0, "http_read_timeout_s": 30.0, **server})


# -- the WebRTC offer: the key before the body, a bounded reader after ------------------------------


@pytest.mark.parametrize("path", ["/v1/realtime/calls", "/openai/v1/realtime/calls", "/v1/live/sessions",
                                  "/v1/realtime/calls/rtc_1/hangup", "/v1/live/sessions/live_1/hangup"])
@pytest.mark.parametrize("authorization, code", [
    (None, "missing_api_key"),
    (f"Bearer {WRONG_KEY}", "invalid_api_key"),
    ("Bearer ek_forged.signature", "invalid_ephemeral_token"),
])
async def test_an_unknown_caller_is_refused_before_its_body_is_read(
        server: RunningServer, path: str, authorization: str | None, code: str) -> None:
    # the head promises a body the client never sends: only an answer that reads none can come back
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {MAX_OFFER_BODY_BYTES // 2}\r\n").encode()
    if authorization:
        head += f"Authorization: {authorization}\r\n".encode()
    status, headers, body = parse_answer(await until_closed(server.main_port, head + b"\r\n"))
    assert status == 401 and json_error(status, body)["code"] == code
    assert headers["connection"] == "close"  # its body is never read: no next request on this connection


@pytest.mark.parametrize("authorization, status, code, parsed", [
    (f"Bearer {WRONG_KEY}", 401, "invalid_api_key", 0),  # the attack of the issue: never parsed
    (f"Bearer {USER_KEY}", 413, "part_header_too_large", 1),  # a known key's: refused at the bound
])
async def test_a_part_header_of_encoded_words_costs_no_parse(
        server: RunningServer, monkeypatch: pytest.MonkeyPatch, authorization: str, status: int, code: str,
        parsed: int) -> None:
    offers = count_offer_parses(monkeypatch)
    words = b"X-Words: " + b"=?utf-8?q?=41=42?= " * (190 * 1024 // 19)
    ctype, body = multipart((named("sdp") + b"\r\n" + words, SDP.encode()))
    assert len(body) <= MAX_OFFER_BODY_BYTES
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.post("/v1/realtime/calls", params={"model": "gpt-realtime"}, content=body,
                            headers={"Authorization": authorization, "Content-Type": ctype})
    assert (r.status_code, json_error(r.status_code, r.content)["code"]) == (status, code)
    assert len(offers) == parsed
    assert server.gateway.rtc_peer is not None and server.gateway.rtc_peer.starts == 0


async def test_a_known_callers_offer_is_read_by_the_bounded_reader(server: RunningServer) -> None:
    parts = [(named("sdp"), SDP.encode())] + [(named(f"x{i}", "text/plain"), b"x") for i in range(MAX_FORM_PARTS)]
    ctype, body = multipart(*parts)
    async with httpx.AsyncClient(base_url=server.http) as http:
        too_many = await http.post("/v1/realtime/calls", params={"model": "gpt-realtime"}, content=body,
                                   headers={**auth_headers(USER_KEY), "Content-Type": ctype})
        # an ek_ token is a known caller too: its offer is read, and refused for what it is
        token = (await http.post("/v1/realtime/client_secrets", headers=auth_headers(USER_KEY), json={
            "session": {"type": "realtime", "model": "gpt-realtime"}})).json()["value"]
        by_token = await http.post("/v1/realtime/calls", content=b"not an offer",
                                   headers={**auth_headers(token), "Content-Type": "application/sdp"})
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (413, "too_many_parts")
    assert (by_token.status_code, by_token.json()["error"]["code"]) == (400, "invalid_sdp")


# -- request bodies and heads: a total deadline, however they trickle -------------------------------


@pytest.mark.parametrize("head", [
    b"POST /v1/realtime/client_secrets HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n",
    b"POST /v1/realtime/calls?model=gpt-realtime HTTP/1.1\r\nContent-Type: application/sdp\r\nContent-Length: 9000\r\n",
    (b"POST /v1/realtime/calls?model=gpt-realtime HTTP/1.1\r\nContent-Type: application/sdp\r\n"
     b"Transfer-Encoding: chunked\r\n"),
    b"POST /v1/live/sessions HTTP/1.1\r\nContent-Length: 1000\r\n",
])
async def test_a_body_trickled_a_byte_at_a_time_is_answered_408_and_its_connection_closed(
        nursery: trio.Nursery, tmp_path: Path, head: bytes) -> None:
    srv = await start_server(nursery, slow_config(tmp_path))
    drip = b"1\r\nx\r\n" if b"chunked" in head else b"x"
    raw = await until_closed(srv.main_port, head + b"Host: x\r\nAuthorization: Bearer " + USER_KEY.encode()
                             + b"\r\n\r\n", drip)
    status, _, body = parse_answer(raw)
    assert status == 408 and json_error(status, body)["code"] == "body_timeout"
    await trio.testing.wait_all_tasks_blocked()
    assert srv.gateway.connections.stats()["open"] == 0  # the slot is back


async def test_a_head_trickled_a_byte_at_a_time_is_closed_by_the_handshake_timeout_on_both_ports(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, slow_config(tmp_path))
    for listener, head in [
        ("main", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "),  # a REST request
        ("main", b"POST /v1/realtime/calls HTTP/1.1\r\nX-Slow: "),
        ("main", b"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nX-Slow: "),  # a WebSocket upgrade
        ("main", b"GET /heal"),  # the request line itself
        ("realtime", b"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nX-Slow: "),
    ]:
        assert await until_closed(srv.port(listener), head, b"a") == b"", (listener, head)  # closed, unanswered
        await trio.testing.wait_all_tasks_blocked()
        assert srv.gateway.connections.stats()["open"] == 0, (listener, head)
    # the realtime listener reads no request body at all: a handshake that announces one is refused
    status, _, body = parse_answer(await until_closed(srv.realtime_port, b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\n"
                                                      b"Content-Length: 100000\r\n\r\n"))
    assert status == 400 and json_error(status, body)["code"] == "invalid_handshake"


async def test_a_body_that_arrives_in_time_is_served_and_its_connection_kept_alive(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, slow_config(tmp_path, http_body_timeout_s=5.0))
    body = json.dumps({"session": {"type": "realtime", "model": "gpt-realtime"}}).encode()
    request = (b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + USER_KEY.encode()
               + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    last = request.replace(b"Host: x", b"Host: x\r\nConnection: close")
    stream = await trio.open_tcp_stream("127.0.0.1", srv.main_port)
    raw = b""
    with trio.fail_after(WITHIN_S):
        await stream.send_all(request[:-5])
        for byte in range(-5, 0):  # the first body trickles in, well within its deadline
            await trio.sleep(DRIP_EVERY_S)
            await stream.send_all(request[byte:][:1])
        await stream.send_all(last)  # the second follows on the same connection
        while data := await stream.receive_some(65536):
            raw += data
    await stream.aclose()
    first, _, second = raw.partition(b"\r\n\r\n{")
    assert parse_answer(first + b"\r\n\r\n")[0] == 200 and b"connection: close" not in first.lower()
    status, _, answer = parse_answer(second[second.index(b"HTTP/1.1"):])
    assert status == 200 and json.loads(answer)["value"].startswith("ek_")


def test_the_body_timeout_is_a_positive_server_setting_of_30_s_by_default(tmp_path: Path) -> None:
    assert make_config(tmp_path).server.http_body_timeout_s == 30.0
    with pytest.raises(ConfigError, match=r"server\.http_body_timeout_s: must be a positive number of seconds"):
        make_config(tmp_path, server={"http_body_timeout_s": 0})


# -- spend-log scans: in scan processes, bounded ----------------------------------------------------


class ScanProbe:
    """Wraps the scan processes' conversation: counts the scans asked of them and, when holding,
    keeps each from answering until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, hold: bool = False) -> None:
        self.asked: list[str] = []
        self.hold = hold
        self.release = trio.Event()
        self.started_send, self.started = trio.open_memory_channel[str](16)
        real = scans_module._Worker.ask
        probe = self

        async def ask(worker: Any, request: Any) -> str:
            probe.asked.append(request.kind)
            if probe.hold:
                probe.started_send.send_nowait(request.kind)
                await probe.release.wait()
            return await real(worker, request)
        monkeypatch.setattr(scans_module._Worker, "ask", ask)


async def test_a_200k_line_log_is_scanned_in_a_scan_process_while_the_loop_serves(
        nursery: trio.Nursery, tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    line = ('{"id":"rec_%d","record":"response","session_id":"sess_%d","key_name":"user","model":"gpt-realtime",'
            '"start_time":"2026-01-01T00:00:00Z","cost_usd":0.0001,"duration_ms":120}\n')
    (tmp_path / "spend.jsonl").write_text("".join(line % (i, i // 10) for i in range(200_000)))
    srv = await start_server(nursery, make_config(tmp_path))
    worst = 0.0
    done = trio.Event()

    async def ticker() -> None:  # what a session's task would see: how late its wake-ups come
        nonlocal worst
        while not done.is_set():
            before = trio.current_time()
            await trio.sleep(0.01)
            worst = max(worst, trio.current_time() - before - 0.01)

    nursery.start_soon(ticker)
    async with httpx.AsyncClient(base_url=srv.http, timeout=120) as http:
        newest = await http.get("/spend/logs", params={"limit": 3, "source": "log"}, headers=auth_headers(ADMIN_KEY))
        follow = await http.get("/spend/logs", params={"after": 0, "limit": 2, "source": "log"},
                                headers=auth_headers(USER_KEY))
        summary = await http.get("/spend/summary", params={"source": "log"}, headers=auth_headers(ADMIN_KEY))
    done.set()
    record_property("worst_wakeup_delay_s", round(worst, 3))  # for the record; never asserted (timing)
    assert [r["id"] for r in newest.json()["data"]] == ["rec_199999", "rec_199998", "rec_199997"]
    assert [r["id"] for r in follow.json()["data"]] == ["rec_0", "rec_1"]
    assert summary.status_code == 200 and summary.json()
    # the scans ran in a child process (no interpreter lock shared with the sessions), kept for the next
    workers = srv.gateway.scans._idle
    assert workers and all(w.proc.pid != os.getpid() and w.proc.returncode is None for w in workers)


async def test_scans_are_bounded_per_key_and_per_process_with_clear_refusals(
        nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (MAX_CONCURRENT_SCANS, MAX_SCANS_PER_KEY) == (2, 1)
    srv = await start_server(nursery, make_config(tmp_path, keys=[
        {"name": "user", "key": USER_KEY, "models": ["gpt-realtime"]},
        {"name": "admin", "key": ADMIN_KEY, "role": "admin"},
        {"name": "other", "key": LIMITED_KEY}]))
    probe = ScanProbe(monkeypatch, hold=True)
    answers: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(base_url=srv.http, timeout=WITHIN_S * 3) as http:

        async def held(name: str, path: str, key: str) -> None:
            answers[name] = await http.get(path, headers=auth_headers(key))

        try:
            with trio.fail_after(WITHIN_S):
                async with trio.open_nursery() as requests:
                    requests.start_soon(held, "user", "/spend/logs?source=log", USER_KEY)
                    assert await probe.started.receive() == "logs"
                    same_key = await http.get("/spend/summary?source=log", headers=auth_headers(USER_KEY))
                    requests.start_soon(held, "admin", "/spend/summary?source=log", ADMIN_KEY)
                    assert await probe.started.receive() == "summary"
                    busy = await http.get("/spend/logs?source=log", headers=auth_headers(LIMITED_KEY))
                    probe.release.set()
        finally:
            probe.release.set()
        after = await http.get("/spend/logs?source=log", headers=auth_headers(LIMITED_KEY))
    assert same_key.status_code == 429 and json_error(429, same_key.content)["code"] == "too_many_scans"
    assert busy.status_code == 503 and json_error(503, busy.content)["code"] == "scans_busy"
    assert busy.headers["retry-after"] == str(SCAN_RETRY_AFTER_S)
    assert answers["user"].status_code == answers["admin"].status_code == after.status_code == 200
    assert probe.asked == ["logs", "summary", "logs"]  # the refused ones never started a scan


async def test_a_scan_process_that_dies_is_a_503_and_the_next_scan_gets_a_new_one(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, make_config(tmp_path))
    async with httpx.AsyncClient(base_url=srv.http, timeout=60) as http:
        assert (await http.get("/spend/logs?source=log", headers=auth_headers(ADMIN_KEY))).status_code == 200
        (worker,) = srv.gateway.scans._idle
        worker.kill()
        await worker.proc.wait()
        failed = await http.get("/spend/logs?source=log", headers=auth_headers(ADMIN_KEY))
        again = await http.get("/spend/logs?source=log", headers=auth_headers(ADMIN_KEY))
    assert failed.status_code == 503 and json_error(503, failed.content)["code"] == "scan_failed"
    assert again.status_code == 200


# -- malformed input: a 4xx with rtproxy's JSON error, never a 500 ----------------------------------


def hostile_offers() -> list[tuple[str, bytes]]:
    """(Content-Type, body) of offers a client may craft, and a few random mutations of a good one."""
    good_ctype, good = multipart((named("sdp"), SDP.encode()),
                                 (named("session", "application/json"), b'{"type": "realtime"}'))
    cases = [
        multipart((b"Content-Disposition: form-data; name*", SDP.encode())),
        multipart((b"Content-Disposition: form-data; name=sdp" + b"(" * 1000, SDP.encode())),
        multipart((b"Content-Disposition: form-data; name=sdp" + b"(" * 500, SDP.encode())),
        multipart((b"Content-Disposition: form-data; name*=UTF-8''sdp", SDP.encode())),
        multipart((b'Content-Disposition: form-data; name="=?utf-8?b?c2Rw?="', SDP.encode())),
        multipart((named("sdp") + b"\r\n folded: line", SDP.encode())),
        multipart((named("sdp") + b"\r\nContent-Transfer-Encoding: base64", b"dj0w")),
        multipart((named("sdp", "multipart/mixed; boundary=in"), b"--in\r\n\r\nv=0\r\n--in--")),
        multipart((named("sdp"), SDP.encode()), (named("sdp"), SDP.encode())),
        multipart((named("session", "application/json"), b"[" * 100_000)),
        multipart((named("sdp"), SDP.encode()), (named("session", "application/json"), b'{"model": 5}')),
        multipart((named("sdp"), b"\xff\xfe")),
        ("multipart/form-data", good),
        ("multipart/form-data; boundary=", good),
        ('multipart/form-data; boundary="XyZ', good),
        ("multipart/form-data; boundary=" + "b" * 71, good),
        ("multipart/form-data; boundary=XyZ; boundary=XyZ", good),
        ("multipart/form-data; boundary=\u00ff\u00fe", good),
        (good_ctype, good[: len(good) // 2]),
        (good_ctype, b"no boundary anywhere"),
        (good_ctype, b""),
        ("application/sdp", b"v=0\r\n" + b"a=" + b"\x00" * 1000),
        ("text/html", b"<html>"),
        ("", b""),
    ]
    rng = random.Random(20260101)
    for _ in range(40):
        mutated = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(mutated))
            choice = rng.random()
            if choice < 0.4:
                mutated[at] = rng.choice(b'\r\n-"=;:( \x00\xffXyZ')
            elif choice < 0.7:
                del mutated[at:at + rng.randint(1, 40)]
            else:
                mutated[at:at] = mutated[rng.randrange(len(mutated)):][:rng.randint(1, 60)]
        cases.append((good_ctype, bytes(mutated)))
    return cases


HOSTILE_QUERIES = [
    "/spend/logs?after=-1", "/spend/logs?cursor=-5", "/spend/logs?limit=0", "/spend/logs?limit=-3",
    "/spend/logs?after=abc", "/spend/logs?cursor=", "/spend/logs?limit=1e3", "/spend/logs?after=" + "9" * 5000,
    "/spend/logs?since=yesterday", "/spend/logs?until=2026-13-45T99:00:00Z", "/spend/logs?key_name=admin",
    "/spend/summary?bucket=week", "/spend/summary?since=%00", "/spend/summary?key_prefix=adm",
    # the ledger's positions: a cursor is a previous page's, an offset a previous answer's
    "/spend/logs?cursor=" + "9" * 4000, "/spend/logs?after=" + "9" * 4000, "/spend/logs?cursor=99999999999999999999:x",
    "/spend/logs?source=disk",
]
#: Queries that are odd but harmless: answered 200 (a file_id that names no file restarts the follow).
ODD_QUERIES = ["/spend/logs?after=0&file_id=" + "1" * 5000 + ":1", "/spend/logs?after=0&file_id=\u0661:\u0662",
               "/spend/logs?source=log&cursor=" + "9" * 4000, "/spend/logs?source=log&after=" + "9" * 4000,
               "/spend/logs?limit=" + "9" * 4000]


async def test_every_malformed_request_is_a_4xx_json_error_and_the_server_keeps_serving(
        server: RunningServer) -> None:
    answers: list[tuple[str, httpx.Response]] = []
    calls = {k.encode(): v.encode() for k, v in auth_headers(USER_KEY).items()}
    async with httpx.AsyncClient(base_url=server.http, timeout=30) as http:
        for ctype, body in hostile_offers():
            # a model the key may not use: an offer that parses is refused at admission (no provider)
            r = await http.post("/v1/realtime/calls", params={"model": "gpt-realtime-mini"}, content=body,
                                headers={**calls, b"Content-Type": ctype.encode("latin-1")})
            answers.append((f"offer {ctype!r} {body[:60]!r}", r))
        for query in HOSTILE_QUERIES:
            answers.append((query, await http.get(query, headers=auth_headers(USER_KEY))))
        for query in ODD_QUERIES:
            r = await http.get(query, headers=auth_headers(USER_KEY))
            assert r.status_code == 200 and r.json()["object"] == "list", (query[:80], r.text[:200])
        for path, body in [
            ("/v1/realtime/client_secrets", b'{"session": []}'), ("/v1/realtime/client_secrets", b"[1]"),
            ("/v1/realtime/client_secrets", b"[" * 100_000), ("/v1/realtime/client_secrets", b"\xff"),
            ("/v1/realtime/client_secrets", b'{"expires_after": {"seconds": 1e999}}'),
            ("/v1/realtime/sessions", b'{"client_secret": [1]}'), ("/v1/realtime/sessions", b'{"client_secret": "x"}'),
            ("/v1/realtime/transcription_sessions", b'{"input_audio_transcription": [1]}'),
            ("/v1/live/sessions", b"{"), ("/v1/live/sessions", b'{"transport": {"type": "webrtc", "sdp": 5}}'),
            ("/v1/live/sessions", b'{"session": [], "transport": {"type": "webrtc", "sdp": "v=0"}}'),
            ("/v1/realtime/calls/..%2F..%2Fx/hangup", b""), ("/v1/realtime/calls/rtc_1/explode", b""),
            ("/v1/realtime/calls/" + "a" * 300 + "/hangup", b""),
        ]:
            answers.append((f"{path} {body[:40]!r}", await http.post(path, content=body, headers=calls)))
        for method, path in [("GET", "/nope"), ("POST", "/health"), ("DELETE", "/v1/models"), ("GET", "/js/../x"),
                             ("GET", "/%00%0a%ff"), ("PUT", "/v1/realtime/calls")]:
            answers.append((f"{method} {path}", await http.request(method, path, headers=calls)))
        answers.append(("no key", await http.get("/v1/models", headers={"Authorization": "Bearer"})))
        for host in ("[::1", "a:xyz", "a:99999", "[zz]:1"):  # the Host is the client's to get wrong
            r = await http.get("/v1/realtime/endpoints", headers={"Host": host})
            assert r.status_code == 200 and r.json()["listeners"], host
        health = await http.get("/health")
    for what, r in answers:
        assert 400 <= r.status_code < 500, f"{what}: {r.status_code} {r.text[:200]}"
        json_error(r.status_code, r.content)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert server.gateway.rtc_peer is not None and server.gateway.rtc_peer.starts == 0
    named_ones = {what.split(" ")[0]: r.json()["error"]["code"] for what, r in answers if what.startswith("/spend")}
    assert named_ones["/spend/logs?after=-1"] == "invalid_number"


async def test_a_bug_answers_a_json_500_and_its_traceback_goes_to_the_log_only(
        server: RunningServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("kaboom in the scan")

    monkeypatch.setattr(scans_module.ScanSlots, "run", broken)
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.get("/spend/logs", params={"source": "log"}, headers=auth_headers(USER_KEY))
        assert (await http.get("/health")).status_code == 200
    assert r.status_code == 500 and json_error(500, r.content)["code"] == "internal_error"
    assert "kaboom" not in r.text
    (logged,) = [rec for rec in caplog.records if rec.levelno == logging.ERROR and rec.exc_info]
    assert logged.getMessage() == "GET /spend/logs failed" and "kaboom in the scan" in caplog.text


# -- refusals are logged with their reason and the key's name, never a credential -------------------


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and r.getMessage().startswith("refused")]


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for secret in secrets:
        assert secret not in text and secret[:16] not in text


async def test_each_rest_refusal_is_logged_with_its_code_route_and_key_name(
        nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: none may print a credential
    (tmp_path / "spend.jsonl").write_text(json.dumps({"record": "response", "id": "r1", "key_name": "broke",
                                                      "cost_usd": 1.0}) + "\n")
    srv = await start_server(nursery, make_config(tmp_path, keys=[
        {"name": "user", "key": USER_KEY, "models": ["gpt-realtime"]},
        {"name": "admin", "key": ADMIN_KEY, "role": "admin"},
        {"name": "broke", "key": LIMITED_KEY, "max_budget_usd": 0.5}]))
    sdp = {"Content-Type": "application/sdp"}
    async with httpx.AsyncClient(base_url=srv.http) as http:
        token = (await http.post("/v1/realtime/client_secrets", headers=auth_headers(USER_KEY), json={
            "session": {"type": "realtime", "model": "gpt-realtime"}})).json()["value"]
        await http.post("/v1/realtime/calls", params={"model": "gpt-realtime"}, content=SDP, headers=sdp)
        await http.post("/v1/realtime/calls", params={"model": "gpt-realtime"}, content=SDP,
                        headers={**sdp, **auth_headers(WRONG_KEY)})
        await http.post("/v1/realtime/calls", params={"model": "gpt-realtime-mini"}, content=SDP,
                        headers={**sdp, **auth_headers(token)})
        await http.post("/v1/realtime/calls", params={"model": "nope"}, content=SDP,
                        headers={**sdp, "api-key": USER_KEY})
        await http.post("/v1/realtime/calls", content=b"v=0\r\n" + b"a=x\r\n" * 60_000,
                        headers={**sdp, **auth_headers(USER_KEY)})
        await http.get("/metrics", headers=auth_headers(USER_KEY))
        await http.get("/nope", headers=auth_headers(ADMIN_KEY))
        await http.post("/v1/realtime/client_secrets", headers=auth_headers(LIMITED_KEY),
                        json={"session": {"type": "realtime", "model": "gpt-realtime"}})
        await http.get("/v1/models", headers=auth_headers(token))  # a token opens no REST route
    assert refusal_lines(caplog) == [
        "refused POST /v1/realtime/calls: missing_api_key (401) key=- ip=127.0.0.1",
        "refused POST /v1/realtime/calls: invalid_api_key (401) key=- ip=127.0.0.1",
        "refused POST /v1/realtime/calls: model_not_allowed (403) key=user ip=127.0.0.1",
        "refused POST /v1/realtime/calls: model_not_found (404) key=user ip=127.0.0.1",
        "refused POST /v1/realtime/calls: offer_too_large (413) key=user ip=127.0.0.1",
        "refused GET /metrics: admin_only (403) key=user ip=127.0.0.1",
        "refused GET /nope: not_found (404) key=admin ip=127.0.0.1",
        "refused POST /v1/realtime/client_secrets: budget_exceeded (429) key=broke ip=127.0.0.1",
        "refused GET /v1/models: invalid_api_key (401) key=user ip=127.0.0.1",
    ]
    assert_no_secret_logged(caplog, USER_KEY, ADMIN_KEY, LIMITED_KEY, WRONG_KEY, token, token[3:40])


@pytest.mark.parametrize("listener", ["realtime", "main"])
async def test_each_handshake_refusal_is_logged_with_its_code_route_and_key_name(
        server: RunningServer, listener: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(base_url=server.http) as http:
        token = (await http.post("/v1/realtime/client_secrets", headers=auth_headers(USER_KEY), json={
            "session": {"type": "realtime", "model": "gpt-realtime"}})).json()["value"]
    refused = [
        ("model=gpt-realtime", auth_headers(WRONG_KEY), None, 401),
        ("model=gpt-realtime-mini", auth_headers(USER_KEY), None, 403),
        ("model=gpt-realtime-mini", auth_headers(token), None, 403),
        ("model=nope", {}, ["realtime", f"openai-insecure-api-key.{USER_KEY}"], 4404),  # a browser's close
        ("call_id=rtc_nope", auth_headers(USER_KEY), None, 404),
    ]
    for query, headers, subprotocols, status in refused:
        try:
            async with ws_connect(server.ws_url(listener, query=query), headers=headers,
                                  subprotocols=subprotocols) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await ws.get_message()
                assert closed.value.reason is not None and closed.value.reason.code == status
        except ConnectionRejected as exc:
            assert exc.status_code == status
    assert refusal_lines(caplog) == [
        "refused GET /v1/realtime: invalid_api_key (401) key=- ip=127.0.0.1",
        "refused GET /v1/realtime: model_not_allowed (403) key=user ip=127.0.0.1",
        "refused GET /v1/realtime: model_not_allowed (403) key=user ip=127.0.0.1",
        "refused GET /v1/realtime: model_not_found (404) key=user ip=127.0.0.1",
        "refused GET /v1/realtime: call_not_found (404) key=user ip=127.0.0.1",
    ]
    assert_no_secret_logged(caplog, USER_KEY, WRONG_KEY, token, token[3:40])
