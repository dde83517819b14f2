"""The ledger core: its URL, migrations, and the query API, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from rtproxy.config import Config, LedgerConfig
from rtproxy.errors import ConfigError
from rtproxy.ledger import Ledger, LedgerError, ledger_target
from rtproxy.ledger.db import LedgerSchemaTooNew
from rtproxy.ledger.query import (
    count_records,
    key_page,
    records_page,
    session_records,
    summary,
    summary_query,
)
from rtproxy.ledger.rows import COLUMN, line_to_row
from rtproxy.ledger.schema import MIGRATIONS, SCHEMA_VERSION, Migration
from rtproxy.ledger.shipper import store_batch
from rtproxy.ledger.url import redact, scrub

from .conftest import make_config
from .ledger_fixtures import T0, record, row


def _config(tmp_path: Path, url: str | None, environ: dict[str, str] | None = None) -> Config:
    from rtproxy.config import parse_config

    data = {"spend_log": {"path": "logs/spend.jsonl"}, "ledger": {} if url is None else {"url": url}}
    return parse_config(data, source="t.toml", base_dir=tmp_path, environ=environ or {})


def test_the_default_ledger_is_an_sqlite_file_beside_the_spend_log(tmp_path: Path) -> None:
    target = ledger_target(_config(tmp_path, None))
    assert target.kind == "sqlite" and target.path == tmp_path / "logs" / "ledger.sqlite3"


def test_ledger_urls_name_sqlite_files_and_postgres(tmp_path: Path) -> None:
    assert ledger_target(_config(tmp_path, "sqlite:///var/x.db")).path == Path("/var/x.db")
    assert ledger_target(_config(tmp_path, "db/l.sqlite3")).path == tmp_path / "db" / "l.sqlite3"
    env = {"DATABASE_URL": "postgresql://u:s3cretpw@db:5432/rt"}
    target = ledger_target(_config(tmp_path, "env:DATABASE_URL", env))
    assert target.kind == "postgres" and target.dsn == env["DATABASE_URL"]
    assert "s3cretpw" not in target.display and "s3cretpw" not in repr(target)
    assert "s3cretpw" not in repr(_config(tmp_path, "env:DATABASE_URL", env).ledger)


def test_a_bad_ledger_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, "mysql://u:s3cretpw@db/x")
    assert "ledger.url" in str(err.value) and "s3cretpw" not in str(err.value)
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        _config(tmp_path, "env:DATABASE_URL")


def test_passwords_are_redacted_and_scrubbed_from_driver_messages() -> None:
    url = "postgresql://app:p%40ss-w0rd@db.example:5433/rt?sslmode=require"
    assert redact(url) == "postgresql://app:***@db.example:5433/rt?sslmode=require"
    assert "w0rd" not in scrub(f"failed: {url} said p@ss-w0rd is wrong", url)


async def test_an_unreachable_postgres_fails_with_a_scrubbed_error(tmp_path: Path) -> None:
    cfg = attrs.evolve(make_config(tmp_path), ledger=LedgerConfig(url="postgresql://u:s3cretpw@127.0.0.1:1/x",
                                                                   timeout_s=2))
    led = Ledger(ledger_target(cfg), timeout_s=2)
    with pytest.raises(LedgerError) as err:
        await led.migrate()
    assert "s3cretpw" not in str(err.value)


async def test_migrations_are_versioned_and_idempotent(ledger: Ledger) -> None:
    assert await ledger.migrate() == (SCHEMA_VERSION, [m.version for m in MIGRATIONS])
    assert await ledger.migrate() == (SCHEMA_VERSION, [])
    extra = Migration(SCHEMA_VERSION + 1, "test column", sqlite=("ALTER TABLE spend_records ADD COLUMN extra TEXT",),
                      postgres=("ALTER TABLE spend_records ADD COLUMN extra TEXT",))
    assert await ledger.migrate((*MIGRATIONS, extra)) == (SCHEMA_VERSION + 1, [SCHEMA_VERSION + 1])
    assert await ledger.migrate((*MIGRATIONS, extra)) == (SCHEMA_VERSION + 1, [])
    rows = ledger.call(lambda c: c.execute("SELECT version, name FROM ledger_schema ORDER BY version"))
    assert [r[0] for r in rows] == [*(m.version for m in MIGRATIONS), SCHEMA_VERSION + 1]
    with pytest.raises(LedgerSchemaTooNew, match="upgrade rtproxy"):  # this code knows fewer
        await ledger.migrate()


def _fill(ledger: Ledger) -> None:
    """Three keys, two models, two providers; sessions of 10 records (the tenth a session record)."""
    rows = []
    for i in range(300):
        kind = "session" if i % 10 == 9 else "response"
        r = record(i, key=f"k{i % 3}", model="m-a" if i % 2 else "m-b", provider="openai" if i < 200 else "gemini",
                   kind=kind, cost=0.5 if kind == "session" else 0.01)
        rows.append(row(r))
    ledger.call(lambda c: store_batch(c, rows, "test", None))


async def test_a_keys_records_page_newest_first_with_a_cursor(ledger: Ledger) -> None:
    await ledger.migrate()
    _fill(ledger)
    seen, cursor = [], None
    while True:
        page = await records_page(ledger, "k1", limit=30, cursor=cursor)
        seen += [r["id"] for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"rec_{i:08d}" for i in reversed(range(300)) if i % 3 == 1]
    window = await records_page(ledger, "k1", limit=1000, since=T0 + timedelta(seconds=100),
                                until=T0 + timedelta(seconds=130))
    assert [r["id"] for r in window.records] == [f"rec_{i:08d}" for i in reversed(range(100, 130)) if i % 3 == 1]
    with pytest.raises(ValueError):
        key_page("k1", cursor="nonsense")


async def test_a_sessions_records_oldest_first(ledger: Ledger) -> None:
    await ledger.migrate()
    _fill(ledger)
    got = await session_records(ledger, f"sess_rtp_{4:020d}")
    assert [r["id"] for r in got] == [f"rec_{i:08d}" for i in range(40, 50)]
    assert got[-1]["record"] == "session"


async def test_a_summary_by_key_model_and_provider_counts_billed_records_once(ledger: Ledger) -> None:
    await ledger.migrate()
    _fill(ledger)
    month = (T0, T0 + timedelta(days=30))
    by_key = {r.group: r for r in await summary(ledger, "key_name", *month)}
    assert set(by_key) == {"k0", "k1", "k2"}
    assert sum(r.billed_records for r in by_key.values()) == 270
    assert sum(r.sessions for r in by_key.values()) == 30
    assert sum(r.cost_usd for r in by_key.values()) == pytest.approx(2.70)  # session records' sums not added
    assert sum(r.audio_out_ms for r in by_key.values()) == 270 * 2000
    by_provider = {r.group: r.responses for r in await summary(ledger, "provider", *month)}
    assert by_provider == {"openai": 180, "gemini": 90}
    by_model = {r.group: r.responses for r in await summary(ledger, "model", *month, key_name="k0")}
    assert sum(by_model.values()) == 90
    none = await summary(ledger, "model", T0 - timedelta(days=30), T0)
    assert none == []
    with pytest.raises(ValueError):
        summary_query("data; DROP TABLE x", *month)  # type: ignore[arg-type]
    assert await count_records(ledger) == 300


async def test_a_record_stored_twice_is_kept_once(ledger: Ledger) -> None:
    await ledger.migrate()
    rows = [row(record(i)) for i in range(10)]
    assert ledger.call(lambda c: store_batch(c, rows, "t", None)) == 10
    assert ledger.call(lambda c: store_batch(c, [*rows[5:], row(record(10))], "t", None)) == 1
    assert await count_records(ledger) == 11


def test_lines_that_are_no_record_are_skipped_and_odd_text_is_kept() -> None:
    assert line_to_row(b'{"record":"resp', 0) is None
    assert line_to_row(b'[1,2]\n', 0) is None
    # a record without an id is kept, under an id made of its bytes (the same line: the same id)
    no_id = line_to_row(b'{"record":"response"}\n', 0)
    assert no_id is not None and no_id[0].startswith("line_") and no_id[0] == line_to_row(b'{"record":"response"}', 0)[0]
    got = line_to_row(b'{"id":"rec_1","record":"response","key_name":"a\\u0000b\\ud800","time":"x"}\n', 77)
    assert got is not None and got[2] == 77 and got[3].startswith("a\ufffdb") and got[3].encode("utf-8")
    assert json.loads(got[COLUMN["data"]])["key_name"] == "a\x00b\ud800"


def test_rtproxy_ledger_migrate_applies_once_and_hides_the_password(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from rtproxy.server.cli import main

    conf = tmp_path / "c.toml"
    conf.write_text('[spend_log]\npath = "logs/spend.jsonl"\n')
    assert main(["ledger", "migrate", "--config", str(conf)]) == 0
    assert main(["ledger", "migrate", "--config", str(conf)]) == 0
    out = capsys.readouterr().out.splitlines()
    where = f"ledger sqlite:{tmp_path / 'logs' / 'ledger.sqlite3'}: schema version {SCHEMA_VERSION}"
    applied = ", ".join(str(v) for v in range(1, SCHEMA_VERSION + 1))
    assert out == [f"{where} (applied {applied})", f"{where} (nothing to apply)"]
    conf.write_text('[ledger]\nurl = "postgresql://app:s3cretpw@127.0.0.1:1/rt"\ntimeout_s = 2\n')
    assert main(["ledger", "migrate", "--config", str(conf)]) == 1
    captured = capsys.readouterr()
    assert "cannot connect to the ledger" in captured.err and "s3cretpw" not in captured.err + captured.out
