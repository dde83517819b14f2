"""The spend ledger at scale: fill it with N synthetic response records, then time the queries
the viewer and /spend will make, the thread hop each call pays, and the shipper's throughput.

    .venv/bin/python bench/ledger.py                               # SQLite, 2 million records
    .venv/bin/python bench/ledger.py --backend postgres            # a throwaway PostgreSQL, 10 million
    .venv/bin/python bench/ledger.py --backend postgres --records 2000000 --url postgresql://…

Prints p50/p95 of: the first page (100 records) of one key, one session's records, a month's
summary by key and by model; the cost of a call's hop to a worker thread; and shipping
throughput (records/s of one shipper, the JSONL to the filled ledger). Not part of `make test`
(`make bench-ledger`). The records: 500 keys, 12 models on 4 providers, sessions of 1–40
responses, spread over 90 days; a response record as the gateway writes it without prompts.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtproxy.ledger.db import Ledger, migrate  # noqa: E402
from rtproxy.ledger.query import (  # noqa: E402
    key_page,
    logs_query,
    read_summary,
    read_totals,
    run_query,
    session_query,
    summary_query,
)
from rtproxy.ledger.rollup import rollups  # noqa: E402
from rtproxy.ledger.rows import ROW_COLUMNS, line_to_row  # noqa: E402
from rtproxy.spend.query import SpendFilter  # noqa: E402
from rtproxy.ledger.schema import MIGRATIONS  # noqa: E402
from rtproxy.ledger.shipper import HOURLY_UPSERT, LATENCY_UPSERT, Shipper  # noqa: E402
from rtproxy.ledger.url import LedgerTarget  # noqa: E402

KEYS = 500
MODELS = [(f"model-{i}", ("openai", "azure", "gemini", "xai")[i % 4]) for i in range(12)]
DAYS = 90
T0 = datetime(2026, 8, 1, tzinfo=timezone.utc)
FILL_BATCH = 20_000


def synthetic(rng: random.Random, n: int, start: int = 0):  # type: ignore[no-untyped-def]
    """(line, key, session, row) for n response records in time order."""
    step = DAYS * 86400 / max(n, 1)
    i = start
    session, left, key, model, provider = "", 0, "", "", ""
    while i < start + n:
        if left == 0:
            session = f"sess_rtp_{rng.getrandbits(80):020x}"
            left = rng.randint(1, 40)
            key = f"key-{int(rng.paretovariate(1.2)) % KEYS:03d}"
            model, provider = MODELS[rng.randrange(len(MODELS))]
        left -= 1
        end = T0 + timedelta(seconds=(i - start) * step)
        audio_in, audio_out = rng.randint(500, 8000), rng.randint(500, 12000)
        r: dict[str, Any] = {
            "record": "response", "id": f"rec_{i:012d}{rng.getrandbits(32):08x}", "session_id": session,
            "upstream_session_id": f"sess_{rng.getrandbits(64):016x}", "response_id": f"resp_{rng.getrandbits(64):016x}",
            "call_type": "realtime", "status": "completed", "key_name": key, "key_hash": f"{hash(key) & 0xFFFFFFFFFFFF:012x}",
            "model": model, "provider": provider, "upstream_model": model,
            "api_base": "wss://api.example.com/v1/realtime", "end_user": None, "tags": [],
            "start_time": (end - timedelta(milliseconds=1200)).isoformat(), "end_time": end.isoformat(),
            "duration_ms": 1200, "usage": {"input_tokens": 420, "output_tokens": 380, "total_tokens": 800,
                                           "input_token_details": {"text_tokens": 20, "audio_tokens": 400,
                                                                   "cached_tokens": 0},
                                           "output_token_details": {"text_tokens": 80, "audio_tokens": 300}},
            "cost_usd": round(rng.uniform(0.001, 0.05), 6),
            "cost_breakdown": {"input_text": 0.0001, "input_audio": 0.012, "output_text": 0.0008, "output_audio": 0.024},
            "billing_unit": "tokens", "usage_source": "provider", "audio_in_ms": audio_in, "audio_out_ms": audio_out,
            "messages": None, "proxy_server_request": None, "response": None, "error": None,
        }
        data = json.dumps(r, separators=(",", ":"))
        row = line_to_row(data.encode(), 0, batch_no=1 + i // FILL_BATCH)
        yield data.encode() + b"\n", key, session, row
        i += 1


def fill(ledger: Ledger, n: int, rng: random.Random) -> tuple[list[str], list[str], float]:
    """Insert n records (indexes built after, on Postgres: COPY, then CREATE INDEX, ANALYZE)."""
    keys: set[str] = set()
    sessions: list[str] = []
    t = time.perf_counter()
    pg = ledger.dialect == "postgres"
    index_sql = [s for m in MIGRATIONS for s in m.postgres if s.startswith("CREATE INDEX")] if pg else []

    def work(conn: Any) -> None:
        migrate(conn)
        if pg:  # building the indexes of millions of rows takes longer than a call's limit
            conn.execute("SET statement_timeout = 0")
        if pg:
            for s in index_sql:
                conn.execute("DROP INDEX IF EXISTS " + s.split()[2])
        batch: list[tuple[Any, ...]] = []

        def flush() -> None:
            # the hourly rollups as the shipper adds to them (rtproxy/ledger/shipper.py store_batch)
            sums, latency = rollups(batch)
            with conn.transaction():
                if pg:
                    with conn.raw.cursor() as cur, cur.copy(f"COPY spend_records ({', '.join(ROW_COLUMNS)}) "
                                                            "FROM STDIN") as cp:
                        for row in batch:
                            cp.write_row(row)
                else:
                    conn.raw.executemany(f"INSERT INTO spend_records ({', '.join(ROW_COLUMNS)}) VALUES "
                                         f"({', '.join('?' * len(ROW_COLUMNS))})", batch)
                conn.executemany(HOURLY_UPSERT, [(*g, *s) for g, s in sums.items()])
                conn.executemany(LATENCY_UPSERT, [(*g, b, c) for (g, b), c in latency.items()])
            batch.clear()

        done = 0
        for _, key, session, row in synthetic(rng, n):
            batch.append(row)
            keys.add(key)
            if not sessions or sessions[-1] != session:
                sessions.append(session)
            if len(batch) >= FILL_BATCH:
                flush()
                done += FILL_BATCH
                if done % 500_000 == 0:
                    print(f"  {done:,} records, {time.perf_counter() - t:.0f} s", flush=True)
        if batch:
            flush()
        if pg:
            print(f"  building indexes ({time.perf_counter() - t:.0f} s)", flush=True)
            conn.execute("SET maintenance_work_mem = '512MB'")
            for s in index_sql:
                conn.execute(s)
            conn.execute("VACUUM ANALYZE spend_records")
        else:
            conn.execute("ANALYZE")

    ledger.call(work)
    return sorted(keys), sessions, time.perf_counter() - t


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def timed(ledger: Ledger, name: str, queries: list[Any], goal_ms: float | None) -> None:
    """Each query timed through a worker thread, as the gateway runs it: a Query, or a function of a
    connection (what /spend/summary runs)."""
    times = []
    rows = 0
    for q in queries:
        t = time.perf_counter()
        got = await ledger.run(q if callable(q) else functools.partial(run_query, q=q))
        if isinstance(got, dict):
            got = got["data"]
        times.append((time.perf_counter() - t) * 1000)
        rows += len(got)
    goal = f"   (goal on Postgres: p95 < {goal_ms:g} ms)" if goal_ms else ""
    print(f"{name:<34} p50 {pct(times, 50):8.2f} ms   p95 {pct(times, 95):8.2f} ms   "
          f"({len(queries)} runs, {rows / len(queries):.0f} rows each){goal}", flush=True)


async def hop_cost(ledger: Ledger, n: int = 2000) -> None:
    conn_direct = ledger._take()
    t = time.perf_counter()
    for _ in range(n):
        conn_direct.execute("SELECT 1")
    direct = (time.perf_counter() - t) / n * 1e6
    ledger._give_back(conn_direct)
    t = time.perf_counter()
    for _ in range(n):
        await ledger.run(lambda conn: conn.execute("SELECT 1"))
    threaded = (time.perf_counter() - t) / n * 1e6
    print(f"{'SELECT 1, on the caller thread':<34} {direct:8.1f} µs per call")
    print(f"{'SELECT 1, via a worker thread':<34} {threaded:8.1f} µs per call "
          f"(the hop: {threaded - direct:.1f} µs)", flush=True)


async def shipping(ledger: Ledger, n: int, rng: random.Random, workdir: Path) -> None:
    log = workdir / "ship.jsonl"
    with open(log, "wb") as f:
        for raw, _, _, _ in synthetic(rng, n, start=10**11):
            f.write(raw)
    shipper = Shipper(ledger, log)
    t = time.perf_counter()
    await shipper.prepare()
    while await shipper.ship_once():
        pass
    await shipper.ship_once()
    dt = time.perf_counter() - t
    print(f"{'shipping (one shipper)':<34} {shipper.shipped / dt:8.0f} records/s   ({shipper.shipped:,} records "
          f"in {dt:.1f} s, {shipper.batches} batches; goal ≥ 2,000/s)", flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--records", type=int, help="records to fill (default: 2,000,000 SQLite, 10,000,000 Postgres)")
    ap.add_argument("--url", help="an existing, empty Postgres database (default: a throwaway server)")
    ap.add_argument("--runs", type=int, default=200, help="runs of each page/session query (summaries: a tenth)")
    ap.add_argument("--ship", type=int, default=50_000, help="records written to a JSONL and shipped")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    n = args.records or (2_000_000 if args.backend == "sqlite" else 10_000_000)
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="rtproxy-bench-ledger-"))
    pg_cm = None
    try:
        if args.backend == "sqlite":
            target = LedgerTarget("sqlite", path=workdir / "ledger.sqlite3")
        elif args.url:
            target = LedgerTarget("postgres", dsn=args.url)
        else:
            from tests.postgres_server import postgres_server

            pg_cm = postgres_server()
            server = pg_cm.__enter__()
            target = LedgerTarget("postgres", dsn=server.create_database("bench"))
        ledger = Ledger(target, timeout_s=600)
        print(f"ledger: {target.display}; filling {n:,} response records", flush=True)
        keys, sessions, took = fill(ledger, n, rng)
        print(f"filled in {took:.0f} s ({n / took:,.0f} records/s); {len(keys)} keys, {len(sessions):,} sessions",
              flush=True)
        if target.kind == "sqlite" and target.path is not None:
            print(f"database file: {target.path.stat().st_size / 2**30:.2f} GiB")
        qrng = random.Random(args.seed + 1)
        month = (T0 + timedelta(days=30), T0 + timedelta(days=60))
        busy = keys[:20]  # the pareto head: the keys with the most records
        await hop_cost(ledger)
        await timed(ledger, "first page, one key (100)", [key_page(qrng.choice(keys)) for _ in range(args.runs)], 50)
        await timed(ledger, "first page, a busiest key (100)", [key_page(qrng.choice(busy)) for _ in range(args.runs)],
                    50)
        await timed(ledger, "one session's records", [session_query(qrng.choice(sessions)) for _ in range(args.runs)],
                    50)
        await timed(ledger, "/spend/logs first page, all keys", [logs_query(SpendFilter(), limit=100)
                                                                 for _ in range(args.runs)], 50)
        await timed(ledger, "/spend/logs first page, one key", [logs_query(SpendFilter(key_name=qrng.choice(keys)),
                                                                           limit=100) for _ in range(args.runs)], 50)
        runs = max(args.runs // 10, 5)
        since, until = month
        for bucket in ("day", "hour"):
            flt = SpendFilter(since=since, until=until)
            await timed(ledger, f"/spend/summary, a month by {bucket}", [
                functools.partial(read_summary, flt=flt, bucket=bucket, by_provider=False) for _ in range(runs)], 500)
        await timed(ledger, "/spend/summary, a month, one key", [
            functools.partial(read_summary, flt=SpendFilter(since=since, until=until, key_name=qrng.choice(busy)),
                              bucket="day", by_provider=False) for _ in range(runs)], 500)
        for by in ("key_name", "model"):
            await timed(ledger, f"/spend/totals, a month by {by}", [
                functools.partial(read_totals, flt=SpendFilter(since=since, until=until), by=by)
                for _ in range(runs)], 500)
        await timed(ledger, "a month by key, from the records", [summary_query("key_name", *month, dialect=ledger.dialect) for _ in range(runs)], None)
        await timed(ledger, "a month by model, from the records", [summary_query("model", *month, dialect=ledger.dialect) for _ in range(runs)], None)
        await shipping(ledger, args.ship, rng, workdir)
        ledger.close()
    finally:
        if pg_cm is not None:
            pg_cm.__exit__(None, None, None)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    trio.run(main)
