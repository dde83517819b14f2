"""The shipper: the spend log into the ledger through rotations, crashes and outages, on SQLite
and a real PostgreSQL; the gateway's shipper, its lag in /health and /metrics."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from rtproxy.config import Config, LedgerConfig
from rtproxy.ledger import Ledger, open_ledger, shipper_for
from rtproxy.ledger import shipper as shipper_module
from rtproxy.ledger.shipper import Shipper
from rtproxy.spend.log import SpendLogWriter, encode_record

from .conftest import make_config, start_server
from .ledger_fixtures import count, ids, line, record
from .postgres_server import PostgresServer


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def _ship_all(shipper: Shipper) -> None:
    while await shipper.ship_once():
        pass


def _write(writer: SpendLogWriter, i: int, written: list[str] | set[str]) -> None:
    r = record(i)
    ok = writer.write(r)
    assert ok
    if isinstance(written, list):
        written.append(r["id"])
    else:
        written.add(r["id"])


def _log(cfg: Config) -> Path:
    return cfg.resolve_path(cfg.spend_log.path)


async def test_shipping_across_a_rename_rotation_loses_and_doubles_nothing(ledger_config: Config) -> None:
    path = _log(ledger_config)
    wclock, sclock = Clock(), Clock()
    w1, w2 = SpendLogWriter(path, clock=wclock), SpendLogWriter(path, clock=Clock())  # w2: a slow worker
    led = open_ledger(ledger_config)
    shipper = Shipper(led, path, batch_records=30, clock=sclock)
    written: list[str] = []
    for i in range(100):
        _write(w1, i, written)
    _write(w2, 100, written)
    await shipper.prepare()
    assert await shipper.ship_once()  # 30 of them
    os.rename(path, path.with_name(path.name + ".1"))  # logrotate `create`
    for i in range(101, 121):  # before the writer notices: into the renamed file
        _write(w1, i, written)
    await _ship_all(shipper)
    wclock.t += 2  # the writer notices and goes on in a new file
    for i in range(121, 171):
        _write(w1, i, written)
    await _ship_all(shipper)
    for i in range(171, 176):  # the slow worker notices later still: late lines in the old file
        _write(w2, i, written)
    sclock.t += 1
    await _ship_all(shipper)
    sclock.t += 10  # the old file settles and is left
    await _ship_all(shipper)
    await _ship_all(shipper)
    assert count(led) == len(written) == 176 and ids(led) == set(written)
    assert shipper.status()["lag"] == {"records": 0, "bytes": 0, "seconds": 0.0}
    # restarted: the cursor is on the new file; nothing shipped again
    again = Shipper(led, path, clock=sclock)
    await again.prepare()
    await _ship_all(again)
    assert again.shipped == 0 and again.duplicates == 0 and count(led) == 176
    led.close()


async def test_shipping_across_copytruncate_loses_and_doubles_nothing(ledger_config: Config) -> None:
    path = _log(ledger_config)
    wclock = Clock()
    writer = SpendLogWriter(path, clock=wclock)
    led = open_ledger(ledger_config)
    shipper = Shipper(led, path, batch_records=30, clock=Clock())
    written: set[str] = set()
    for i in range(100):
        _write(writer, i, written)
    wclock.t += 11  # the first 100 are older than the writer's rewrite window
    for i in range(100, 110):
        _write(writer, i, written)
    await shipper.prepare()
    assert await shipper.ship_once()  # 30 shipped, 80 not yet
    shutil.copyfile(path, path.with_name(path.name + ".1"))  # logrotate copytruncate
    with open(path, "r+b") as f:
        f.truncate(0)
    for i in range(110, 130):  # the writer notices, writes its last 10 s again, then these
        _write(writer, i, written)
    await _ship_all(shipper)
    await _ship_all(shipper)
    assert count(led) == len(written) == 130 and ids(led) == written
    assert shipper.duplicates > 0  # the writer's rewritten lines were in the copy too: kept once
    assert shipper.status()["missed_files"] == 0
    led.close()


async def test_the_lag_is_reported_in_records_bytes_and_seconds(ledger_config: Config) -> None:
    path = _log(ledger_config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line(record(i)) for i in range(50)))
    clock = Clock()
    led = open_ledger(ledger_config)
    shipper = Shipper(led, path, batch_records=10, clock=clock)
    await shipper.prepare()
    clock.t += 5
    assert await shipper.ship_once()
    lag = shipper.lag()
    assert lag["records"] == 40 and lag["bytes"] == sum(len(line(record(i))) for i in range(10, 50))
    assert lag["seconds"] == 5.0
    await _ship_all(shipper)
    assert shipper.lag() == {"records": 0, "bytes": 0, "seconds": 0.0} and count(led) == 50
    led.close()


def _write_config(cfg: Config, tmp_path: Path) -> Path:
    url = cfg.ledger.url
    text = (f'[spend_log]\npath = "{_log(cfg)}"\n' + (f'[ledger]\nurl = "{url}"\n' if url else ""))
    p = tmp_path / "ship.toml"
    p.write_text(text)
    return p


async def test_kill_9_mid_shipping_then_restart_loses_and_doubles_no_record(ledger_config: Config,
                                                                             tmp_path: Path) -> None:
    path = _log(ledger_config)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 40_000
    with open(path, "wb") as f:
        f.write(b"".join(encode_record(record(i)) for i in range(n)))
    conf = _write_config(ledger_config, tmp_path)
    led = open_ledger(ledger_config)
    cmd = [sys.executable, "-m", "rtproxy", "ledger", "ship", "--config", str(conf)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        shipped = 0
        while shipped == 0 and time.monotonic() < deadline:
            await trio.sleep(0.05)
            try:
                shipped = count(led)
            except Exception:  # the schema is not there yet
                pass
        assert 0 < shipped < n, shipped
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        at_kill = count(led)
        assert at_kill < n
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while count(led) < n and time.monotonic() < deadline + 30:
            await trio.sleep(0.1)
        await trio.sleep(0.3)
        assert count(led) == n and len(ids(led)) == n
        # the hourly rollups were added to in the same transactions: each record counted once there too
        rolled, stored = led.call(lambda c: (
            c.execute("SELECT SUM(billed) + SUM(sessions), SUM(cost_usd) FROM spend_hourly")[0],
            c.execute("SELECT COUNT(*), SUM(COALESCE(cost_usd, 0)) FROM spend_records "
                      "WHERE record IN ('response', 'transcription', 'usage', 'session')")[0]))
        assert int(rolled[0]) == int(stored[0]) and float(rolled[1]) == pytest.approx(
            float(led.call(lambda c: c.execute("SELECT SUM(COALESCE(cost_usd, 0)) FROM spend_records "
                                               "WHERE record <> 'session'")[0][0] or 0)))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        led.close()


async def test_a_database_that_is_down_is_retried_with_backoff_then_shipped_to(
        pg_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shipper_module, "BACKOFF_MIN_S", 0.05)
    name = f"later_{os.getpid()}"
    cfg = attrs.evolve(make_config(tmp_path), ledger=LedgerConfig(url=pg_server.url(name), timeout_s=2))
    path = _log(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line(record(i)) for i in range(25)))
    shipper = shipper_for(cfg)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(shipper.run)
        with trio.fail_after(10):
            while shipper.failures < 3:  # after 0.05, 0.1, 0.2 s, ...
                await trio.sleep(0.05)
        assert not shipper.healthy
        lag = shipper.lag()  # nothing read yet: how long it has been behind, not how much
        assert lag["records"] is None and lag["seconds"] > 0
        assert name in (shipper.status()["error"] or "")
        pg_server.create_database(name)
        with trio.fail_after(10):
            await shipper.caught_up.wait()
        assert shipper.healthy and shipper.shipped == 25
        nursery.cancel_scope.cancel()
    led = Ledger(shipper.ledger.target)
    assert count(led) == 25
    led.close()


async def test_the_gateway_ships_its_records_and_reports_the_lag(nursery: trio.Nursery, tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    server = await start_server(nursery, cfg)
    gateway = server.gateway
    for i in range(20):
        await gateway.write_record(record(i, key="user"))
    with trio.fail_after(10):
        while gateway.shipper.shipped < 20:
            await trio.sleep(0.05)
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{server.http}/health")).json()
    assert health["status"] == "ok"
    ledger = health["ledger"]
    assert ledger["ok"] and ledger["shipping"] and ledger["backend"] == "sqlite" and ledger["schema_version"] >= 1
    assert ledger["lag"] == {"records": 0, "bytes": 0, "seconds": 0.0}
    text = gateway._scrape().decode()
    assert "rtproxy_ledger_lag_seconds 0.0" in text and "rtproxy_ledger_shipped_records_total 20.0" in text
    assert (tmp_path / "ledger.sqlite3").exists()
    server.stop.set()


async def test_the_gateway_serves_on_while_the_ledger_is_down(nursery: trio.Nursery, tmp_path: Path) -> None:
    cfg = attrs.evolve(make_config(tmp_path),
                       ledger=LedgerConfig(url="postgresql://app:s3cretpw@127.0.0.1:1/rt", timeout_s=1))
    server = await start_server(nursery, cfg)
    await server.gateway.write_record(record(1, key="user"))
    with trio.fail_after(10):
        while server.gateway.shipper.failures == 0:
            await trio.sleep(0.05)
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.http}/health")
    health = response.json()
    assert response.status_code == 200 and health["status"] == "degraded"
    assert not health["ledger"]["ok"] and health["spend_log"]["ok"] and health["spend_log"]["written"] == 1
    assert "s3cretpw" not in response.text and "***" in health["ledger"]["where"]
    server.stop.set()


async def test_one_process_per_log_ships(ledger_config: Config) -> None:
    path = _log(ledger_config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line(record(i)) for i in range(10)))
    a, b = shipper_for(ledger_config), shipper_for(ledger_config)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.run)
        with trio.fail_after(10):
            await a.caught_up.wait()
        nursery.start_soon(b.run)
        await trio.sleep(0.2)
        assert a.shipping and not b.shipping and b.status()["lag"]["records"] is None
        nursery.cancel_scope.cancel()
    assert a.shipped == 10 and b.shipped == 0


async def test_a_reader_waits_for_the_shipping_gateway_to_have_shipped_the_log_as_it_ends_now(
        ledger_config: Config) -> None:
    path = _log(ledger_config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line(record(i)) for i in range(3)))
    gateway, reader = shipper_for(ledger_config), shipper_for(ledger_config)
    assert await gateway.ship_if_unclaimed(10)  # the ledger exists, the first 3 are in it
    assert await gateway.ship_if_unclaimed(10)
    assert gateway._try_lock()  # the running gateway holds the lock from here on
    try:
        with path.open("ab") as f:  # a session just ended: its record is in the log, not yet shipped
            f.write(line(record(3)))
        assert not await reader.ship_if_unclaimed(10)
        assert not await reader.wait_caught_up(0.2)  # nothing ships it: the reader gives up, bounded
        async with trio.open_nursery() as nursery:
            async def ship_soon() -> None:
                await trio.sleep(0.1)
                await gateway.prepare()
                await _ship_all(gateway)

            nursery.start_soon(ship_soon)
            with trio.fail_after(5):
                assert await reader.wait_caught_up(5)
        assert count(gateway.ledger) == 4
    finally:
        gateway._unlock()


async def test_a_spend_log_that_is_no_regular_file_is_not_shipped(nursery: trio.Nursery, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, spend_log={"path": "/dev/full"})
    server = await start_server(nursery, cfg)
    assert server.gateway.shipper.ledger.target.path == tmp_path / ".rtproxy" / "ledger.sqlite3"
    with trio.fail_after(5):
        await server.gateway.shipper.stopped.wait()
    assert not server.gateway.shipper.shipping and server.gateway.health()["ledger"]["ok"]
    assert not Path("/dev/.full.ledger-lock").exists()
    server.stop.set()


async def test_a_restart_finds_its_file_renamed_or_reports_it_gone(ledger_config: Config) -> None:
    path = _log(ledger_config)
    wclock = Clock()
    writer = SpendLogWriter(path, clock=wclock)
    led = open_ledger(ledger_config)
    written: list[str] = []
    for i in range(100):
        _write(writer, i, written)
    first = Shipper(led, path, batch_records=30, clock=Clock())
    await first.prepare()
    assert await first.ship_once()  # 30 shipped; then the process stops
    os.rename(path, path.with_name(path.name + ".1"))  # rotated while nothing ships
    wclock.t += 2
    for i in range(100, 120):
        _write(writer, i, written)
    second = Shipper(led, path, clock=Clock())
    await second.prepare()
    await _ship_all(second)
    await _ship_all(second)
    assert count(led) == 120 and ids(led) == set(written) and second.status()["missed_files"] == 0
    # the renamed file compressed (gone) before a restart: reported, and the current file shipped whole
    path.with_name(path.name + ".1").unlink()
    led.call(lambda c: c.execute("UPDATE ledger_cursors SET file_id = 'x:1', head = 'gone', file_offset = 5"))
    third = Shipper(led, path, clock=Clock())
    await third.prepare()
    await _ship_all(third)
    assert third.status()["missed_files"] == 1 and third.duplicates == 20 and count(led) == 120
    led.close()
