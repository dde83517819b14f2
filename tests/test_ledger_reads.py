"""The spend API's reads from the ledger (#29), on SQLite and a real PostgreSQL: pages newest first
that cover every record once, a follow by shipping batch that misses and repeats nothing, and
summaries and totals from the hourly rollups that equal what the spend log's own summary says."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from rtproxy.config import Config
from rtproxy.ledger import Ledger
from rtproxy.ledger.query import read_logs, read_summary, read_totals
from rtproxy.ledger.shipper import Shipper
from rtproxy.spend.log import SpendLogWriter
from rtproxy.spend.query import SpendFilter
from rtproxy.spend.summary import summarize


T0 = datetime(2026, 11, 30, 22, 0, tzinfo=timezone.utc)


def records(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        start = T0 + timedelta(minutes=i * 3)
        kind = rng.choice(["response", "response", "response", "transcription", "session", "usage"])
        r: dict[str, Any] = {
            "record": kind, "id": f"rec_{i:06d}", "session_id": f"sess_rtp_{i // 5:020d}",
            "key_name": rng.choice(["Alpha", "alpha-2", "beta"]), "model": rng.choice(["gpt-realtime", "GPT-Live-1"]),
            "provider": rng.choice(["openai", "local"]), "status": rng.choice(["completed", "cancelled"]),
            "start_time": start.isoformat(), "end_time": (start + timedelta(seconds=2)).isoformat(),
            "cost_usd": None if i % 17 == 0 else round(rng.uniform(0.0001, 0.01), 6),
            "audio_in_ms": rng.randint(0, 5000), "audio_out_ms": rng.randint(0, 5000)}
        if kind == "response":
            r["duration_ms"] = rng.choice([120, 480, 800, 1500, 3200])
        out.append(r)
    return out


async def shipped(cfg: Config, led: Ledger, recs: list[dict[str, Any]]) -> Shipper:
    path = cfg.resolve_path(cfg.spend_log.path)
    w = SpendLogWriter(path)
    for r in recs:
        w.write(r)
    shipper = Shipper(led, path, batch_records=37)  # several batches
    await shipper.prepare()
    while await shipper.ship_once():
        pass
    return shipper


async def test_pages_newest_first_cover_every_matching_record_once(ledger_config: Config, ledger: Ledger) -> None:
    recs = records(300)
    await shipped(ledger_config, ledger, recs)
    for flt in (SpendFilter(), SpendFilter(key_prefix="ALPHA"), SpendFilter(status="cancelled", record="response"),
                SpendFilter(since=T0 + timedelta(hours=3), until=T0 + timedelta(hours=6), model_prefix="gpt-l")):
        seen: list[str] = []
        cursor = None
        while True:
            page = ledger.call(lambda c: read_logs(c, flt, limit=25, cursor=cursor))
            seen += [r["id"] for r in page.records]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        expected = [r["id"] for r in sorted((r for r in recs if flt.matches(r)),
                                            key=lambda r: (r["end_time"], r["id"]), reverse=True)]
        assert seen == expected, flt


async def test_a_follow_by_shipping_batch_gets_each_new_record_once(ledger_config: Config, ledger: Ledger) -> None:
    recs = records(200)
    shipper = await shipped(ledger_config, ledger, recs[:100])
    head = ledger.call(lambda c: read_logs(c, SpendFilter(), limit=1)).end_offset
    w = SpendLogWriter(shipper.log_path)
    for r in recs[100:]:
        w.write(r)
    while await shipper.ship_once():
        pass
    got: list[str] = []
    after = head
    while True:  # small pages: each is cut at a batch's edge
        page = ledger.call(lambda c: read_logs(c, SpendFilter(), limit=50, after=after))
        got += [r["id"] for r in page.records]
        if not page.records:
            break
        after = page.end_offset
    assert sorted(got) == [r["id"] for r in recs[100:]] and len(got) == len(set(got))


@pytest.mark.parametrize("bucket", ["hour", "day"])
async def test_the_summary_from_the_rollups_is_the_spend_log_s_own(ledger_config: Config, ledger: Ledger,
                                                                   bucket: str) -> None:
    recs = records(400)
    shipper = await shipped(ledger_config, ledger, recs)
    await shipped_again(shipper)  # a batch stored twice (a crash before the cursor) adds nothing
    for flt, by_provider in ((SpendFilter(), False), (SpendFilter(key_prefix="alp", provider="local"), True)):
        want = summarize((r for r in recs if flt.matches(r)), bucket, by_provider=by_provider)  # type: ignore[arg-type]
        got = ledger.call(lambda c: read_summary(c, flt, bucket, by_provider=by_provider))
        assert got["buckets"] == want["buckets"]
        strip = lambda rows: [{k: (round(v, 9) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
        assert strip(got["data"]) == strip(want["data"])
        for g, w in zip(got["latency"], want["latency"], strict=True):
            assert g["responses"] == w["responses"]
            for p in ("p50_ms", "p95_ms"):
                assert (g[p] is None) == (w[p] is None) and (g[p] is None or abs(g[p] - w[p]) <= 0.1 * w[p])


async def shipped_again(shipper: Shipper) -> None:
    from rtproxy.ledger.rows import line_to_row
    from rtproxy.ledger.shipper import store_batch

    rows = [r for line in shipper.log_path.read_bytes().splitlines()[:50] if (r := line_to_row(line, 0))]
    assert shipper.ledger.call(lambda c: store_batch(c, rows, "again", None)) == 0


async def test_totals_by_key_team_model_and_provider_add_up(ledger_config: Config, ledger: Ledger) -> None:
    recs = records(300)
    await shipped(ledger_config, ledger, recs)
    billed = [r for r in recs if r["record"] != "session"]
    for by in ("key_name", "model", "provider"):
        got = ledger.call(lambda c: read_totals(c, SpendFilter(), by))  # type: ignore[arg-type]
        assert got["total"]["cost_usd"] == pytest.approx(sum(r["cost_usd"] or 0 for r in billed))
        assert got["total"]["sessions"] == sum(r["record"] == "session" for r in recs)
        assert got["total"]["unpriced"] == sum(r["cost_usd"] is None for r in billed)
        assert got["total"]["audio_minutes"] == pytest.approx(
            sum(r["audio_in_ms"] + r["audio_out_ms"] for r in billed) / 60_000, abs=0.01)
        costs = [g["cost_usd"] for g in got["data"]]
        assert costs == sorted(costs, reverse=True)
