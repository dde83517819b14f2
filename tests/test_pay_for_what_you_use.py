"""A gateway loads only what it uses: `rtproxy serve` with remote providers relays sessions without
the offline model, the Quart app, hypercorn's HTTP server, httpx or the price database (a child
process exports the rows it needs: rtproxy/spend/price_table.py); the first HTTP request loads the HTTP side, once, and every
request that came meanwhile is answered; a HTTP side that cannot load answers 503, sessions go on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio
import trio.testing

from rtproxy.auth.admission import is_session_path
from rtproxy.server.front import HttpServing, serve_main_port
from rtproxy.server.gateway import Gateway

from .conftest import USER_KEY, make_config
from .fakes import serve_fake_upstream
from .helpers import auth_headers, events_until, ws_connect

#: Run in a fresh interpreter (this test process has imported everything already): `rtproxy
#: serve`'s own serve_main in front of an in-process fake upstream, then what is loaded when.
SCRIPT = r"""
import json, sys, functools
from pathlib import Path
import trio
from trio_websocket import open_websocket_url
sys.path.insert(0, sys.argv[1])
from tests.fakes import serve_fake_upstream
from rtproxy.config import parse_config
from rtproxy.server.cli import serve_main

WATCHED = ("quart", "hypercorn.trio.tcp_server", "rtproxy.server.app", "rtproxy.server.http_leg", "httpx",
           "rtproxy.offline.model", "numpy", "aiortc", "genai_prices")

def loaded():
    return sorted(m for m in WATCHED if m in sys.modules)

async def main():
    out = {}
    tmp = Path(sys.argv[2])
    async with trio.open_nursery() as nursery:
        fake = await nursery.start(serve_fake_upstream)
        cfg = parse_config({
            "server": {"host": "127.0.0.1", "port": 0, "realtime_port": 0},
            "spend_log": {"path": str(tmp / "spend.jsonl")},
            "models": [{"name": "gpt-realtime", "provider": "openai", "api_base": f"ws://127.0.0.1:{fake.port}/v1",
                        "api_key": "sk-upstream-secret-000000"}],
            "keys": [{"name": "user", "key": sys.argv[3]}]}, source="t.toml", base_dir=tmp, environ={})
        out["before"] = loaded()
        gateway = await nursery.start(functools.partial(serve_main, cfg))
        out["started"] = loaded()
        url = f"ws://127.0.0.1:{gateway.realtime_port}/v1/realtime?model=gpt-realtime"
        async with open_websocket_url(url, extra_headers=[(b"authorization", b"Bearer " + sys.argv[3].encode())]) as ws:
            first = json.loads(await ws.get_message())
        out["first"] = first["type"]
        out["after_session"] = loaded()
        out["price_known"] = gateway.prices_known.is_set()
        nursery.cancel_scope.cancel()
    print(json.dumps(out))

trio.run(main)
"""


def test_serve_relays_a_session_without_loading_the_http_side_or_the_offline_model(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(root), str(tmp_path), USER_KEY], capture_output=True, text=True,
                         timeout=60, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"] == []
    assert seen["started"] == []  # both ports open, the banner printed
    assert seen["first"] == "session.created"
    # a whole session relayed and priced: from the price table a child exported (price_table.py)
    assert seen["after_session"] == []
    assert seen["price_known"] is True


class _SlowSide:
    """An HTTP side that answers every request 200 with how many times it was loaded."""

    loads = 0

    def __init__(self, loaded: trio.Event | None) -> None:
        self._loaded = loaded

    async def start(self, nursery: trio.Nursery) -> None:
        if self._loaded is not None:
            await self._loaded.wait()

    async def serve(self, conn: Any, head: bytes) -> None:
        body = json.dumps({"loads": _SlowSide.loads}).encode()
        await conn.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        await conn.aclose()

    async def stop_idle(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


async def _get(port: int) -> tuple[int, dict[str, Any]]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


async def _serve(nursery: trio.Nursery, tmp_path: Path, load: Any) -> tuple[Gateway, int, trio.Event]:
    fake = await nursery.start(serve_fake_upstream)
    cfg = make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "openai",
                                         "api_base": f"ws://127.0.0.1:{fake.port}/v1", "api_key": "sk-up-0000000000"}])
    gateway = Gateway(cfg)
    await nursery.start(gateway.run)
    stop = trio.Event()
    port = await nursery.start(lambda task_status: serve_main_port(
        cfg, load, gateway.run_session, gateway.connections, is_session_path, None, shutdown_trigger=stop.wait,
        http_on_demand=True, task_status=task_status))
    return gateway, port, stop


async def test_requests_that_arrive_while_the_http_side_loads_wait_for_it_and_it_loads_once(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    release = trio.Event()

    async def load() -> HttpServing:
        _SlowSide.loads += 1
        return _SlowSide(release)

    _SlowSide.loads = 0
    gateway, port, stop = await _serve(nursery, tmp_path, load)
    assert _SlowSide.loads == 0  # nothing loaded before the first HTTP request
    answers: list[tuple[int, dict[str, Any]]] = []

    async def get() -> None:
        answers.append(await _get(port))

    async with trio.open_nursery() as requests:
        for _ in range(3):
            requests.start_soon(get)
        await trio.testing.wait_all_tasks_blocked()
        assert answers == []  # waiting for the HTTP side
        # a realtime session is not held up by the HTTP side loading
        url = f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
        async with ws_connect(url, headers=auth_headers(USER_KEY)) as ws:
            await events_until(ws, "session.created")
        release.set()
    assert answers == [(200, {"loads": 1})] * 3
    assert await _get(port) == (200, {"loads": 1})
    stop.set()
    await gateway.shutdown()


async def test_a_http_side_that_cannot_load_answers_503_sessions_go_on_and_the_next_request_tries_again(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    attempts: list[int] = []

    async def load() -> HttpServing:
        attempts.append(1)
        if len(attempts) == 1:
            raise ImportError("a broken install")
        _SlowSide.loads = len(attempts)
        return _SlowSide(None)

    gateway, port, stop = await _serve(nursery, tmp_path, load)
    status, body = await _get(port)
    assert status == 503
    assert body["error"]["code"] == "http_unavailable"
    url = f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
    async with ws_connect(url, headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
    assert await _get(port) == (200, {"loads": 2})  # loaded on the next request
    assert await _get(port) == (200, {"loads": 2}) and len(attempts) == 2
    stop.set()
    await gateway.shutdown()


async def test_callers_that_import_a_module_while_it_loads_get_it_whole(
        tmp_path: Path, monkeypatch: Any) -> None:
    import threading
    import types

    from rtproxy.server.lazy_import import import_off_loop

    # the module's body signals it has started, then waits for the test: the first caller's import
    # is held half done (already in sys.modules) while a second caller asks for it
    gate = types.ModuleType("half_loaded_gate")
    gate.entered, gate.release = threading.Event(), threading.Event()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "half_loaded_gate", gate)
    (tmp_path / "half_loaded_mod.py").write_text(
        "import half_loaded_gate as g\ng.entered.set()\ng.release.wait(30)\nWHOLE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    got: list[Any] = []

    async def load() -> None:
        got.append(await import_off_loop("half_loaded_mod"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(load)
        assert await trio.to_thread.run_sync(gate.entered.wait, 30)  # type: ignore[attr-defined]
        assert "half_loaded_mod" in sys.modules
        nursery.start_soon(load)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []  # the second caller waits for the first import, not for a half module
        gate.release.set()  # type: ignore[attr-defined]
    assert [m.WHOLE for m in got] == [True, True]
    monkeypatch.delitem(sys.modules, "half_loaded_mod")
