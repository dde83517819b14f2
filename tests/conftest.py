"""Shared fixtures: configs, an in-process gateway on real loopback ports, a fake upstream."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from rtproxy.app import create_app
from rtproxy.auth.admission import is_session_path
from rtproxy.server.front import serve_main_port
from rtproxy.server.http_leg import ready as http_ready
from rtproxy.config import Config, parse_config
from rtproxy.server.gateway import Gateway

from .fakes import FakeUpstream, serve_fake_upstream

USER_KEY = "test-user-key-0123456789"
ADMIN_KEY = "test-admin-key-0123456789"
LIMITED_KEY = "test-limited-key-0123456789"


def make_config(tmp_path: Path, *, server: dict[str, Any] | None = None, models: list[dict[str, Any]] | None = None,
                keys: list[dict[str, Any]] | None = None, spend_log: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None, local: dict[str, Any] | None = None,
                state: dict[str, Any] | None = None) -> Config:
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "realtime_port": 0, "close_timeout_s": 1.0,
                   "shutdown_grace_s": 3.0, "upstream_connect_timeout_s": 3.0, **(server or {})},
        "spend_log": {"path": str(tmp_path / "spend.jsonl"), **(spend_log or {})},
        "local": {"port": 0, "stream_delay_ms": 1.0, **(local or {})},
        "state": state or {},
        "models": models if models is not None else [
            {"name": "gpt-realtime", "provider": "local"},
            {"name": "gpt-realtime-mini", "provider": "local", "upstream_model": "gpt-realtime-mini"},
        ],
        "keys": keys if keys is not None else [
            # the SDK clients' default session configs name transcription models: opted into here
            {"name": "user", "key": USER_KEY, "models": ["gpt-realtime"], "transcription_models": ["*"]},
            {"name": "admin", "key": ADMIN_KEY, "role": "admin"},
        ],
    }
    return parse_config(data, source="test.toml", base_dir=tmp_path, environ=environ or {})


@attrs.define
class RunningServer:
    gateway: Gateway
    main_port: int
    stop: trio.Event

    @property
    def realtime_port(self) -> int:
        assert self.gateway.realtime_port is not None
        return self.gateway.realtime_port

    def port(self, listener: str) -> int:
        return self.realtime_port if listener == "realtime" else self.main_port

    def ws_url(self, listener: str, path: str = "/v1/realtime", query: str = "model=gpt-realtime") -> str:
        return f"ws://127.0.0.1:{self.port(listener)}{path}" + (f"?{query}" if query else "")

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.main_port}"

    def records(self) -> list[dict[str, Any]]:
        path = self.gateway.spend.path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def start_server(nursery: trio.Nursery, config: Config, **gateway_kwargs: Any) -> RunningServer:
    gateway = Gateway(config, **gateway_kwargs)
    app = create_app(gateway=gateway)
    stop = trio.Event()
    port = await nursery.start(functools.partial(
        serve_main_port, config, http_ready(config, app), gateway.run_session, gateway.connections, is_session_path,
        gateway.server_ssl_context(), shutdown_trigger=stop.wait))
    return RunningServer(gateway, port, stop)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
async def server(nursery: trio.Nursery, config: Config) -> AsyncIterator[RunningServer]:
    running = await start_server(nursery, config)
    yield running
    running.stop.set()


@pytest.fixture
async def fake_upstream(nursery: trio.Nursery) -> FakeUpstream:
    return await nursery.start(serve_fake_upstream)


@pytest.fixture(params=["realtime", "main"])
def listener(request: pytest.FixtureRequest) -> str:
    """Every socket test runs against both listeners."""
    return request.param  # type: ignore[no-any-return]


# the ledger tests' fixtures (tests/ledger_fixtures.py): here, so one PostgreSQL serves every module
from .ledger_fixtures import ledger, ledger_backend, ledger_config, pg_server  # noqa: E402, F401
