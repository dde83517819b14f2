"""Shared by the ledger tests: a ledger on each backend, synthetic records, counting rows.

The fixtures (``pg_server``, ``ledger_backend``, ``ledger_config``, ``ledger``) are registered in
conftest.py, so the session's PostgreSQL is one for every module."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from rtproxy.config import Config, LedgerConfig
from rtproxy.ledger import Ledger, open_ledger

from .postgres_server import PostgresServer, pg_bin_dir, postgres_server

_db_numbers = itertools.count()
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _psycopg() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session (each test makes its own database on it)."""
    if pg_bin_dir() is None or not _psycopg():
        pytest.skip("PostgreSQL (Debian's postgresql) or psycopg is not installed")
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def ledger_config(ledger_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Config:
    """A config whose ledger is a fresh SQLite file or a fresh Postgres database."""
    from .conftest import make_config

    cfg = make_config(tmp_path)
    if ledger_backend == "postgres":
        server: PostgresServer = request.getfixturevalue("pg_server")
        url = server.create_database(f"t{os.getpid()}_{next(_db_numbers)}")
        cfg = attrs.evolve(cfg, ledger=LedgerConfig(url=url))
    return cfg


@pytest.fixture
def ledger(ledger_config: Config) -> Iterator[Ledger]:
    led = open_ledger(ledger_config)
    yield led
    led.close()


def record(i: int, *, key: str = "k0", model: str = "gpt-realtime", provider: str = "openai",
           session: str | None = None, kind: str = "response", at: datetime | None = None,
           cost: float = 0.001) -> dict[str, Any]:
    at = at or T0 + timedelta(seconds=i)
    return {"record": kind, "id": f"rec_{i:08d}", "session_id": session or f"sess_rtp_{i // 10:020d}",
            "key_name": key, "model": model, "provider": provider,
            "start_time": (at - timedelta(seconds=1)).isoformat(), "end_time": at.isoformat(), "cost_usd": cost, "audio_in_ms": 1000, "audio_out_ms": 2000,
            "usage": {"input_tokens": 10, "output_tokens": 20}}


def line(r: dict[str, Any]) -> bytes:
    return json.dumps(r, separators=(",", ":")).encode() + b"\n"


def row(r: dict[str, Any]) -> tuple[Any, ...]:
    from rtproxy.ledger.rows import line_to_row

    got = line_to_row(line(r), 0)
    assert got is not None
    return got


def count(led: Ledger) -> int:
    return led.call(lambda c: int(c.execute("SELECT COUNT(*) FROM spend_records")[0][0]))


def ids(led: Ledger) -> set[str]:
    return {r[0] for r in led.call(lambda c: c.execute("SELECT id FROM spend_records"))}
