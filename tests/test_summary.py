"""The spend dashboard's figures (/spend/summary): hours or days × key × model, from the log."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import httpx
import pytest

from rtproxy.spend.log import SpendLogWriter
from rtproxy.spend.summary import summarize

from .conftest import ADMIN_KEY, USER_KEY, RunningServer


def rec(kind: str, key: str, model: str, t: str, **kw: Any) -> dict[str, Any]:
    return {"record": kind, "id": f"rec_{key}_{kind}_{t}_{kw.get('n', 0)}", "key_name": key, "model": model,
            "start_time": t, **{k: v for k, v in kw.items() if k != "n"}}


RECORDS = [
    rec("session", "user", "gpt-realtime", "2026-03-01T09:10:00.000Z", cost_usd=0.3),
    rec("response", "user", "gpt-realtime", "2026-03-01T09:10:01.000Z", cost_usd=0.1, duration_ms=400),
    rec("response", "user", "gpt-realtime", "2026-03-01T09:20:00.000Z", cost_usd=0.2, duration_ms=800, n=1),
    rec("usage", "admin", "gpt-live-1", "2026-03-01T10:00:00.000Z", cost_usd=0.05),
    rec("transcription", "admin", "gpt-live-1", "2026-03-01T10:30:00.000Z", cost_usd=None),
]


def test_records_are_summed_per_hour_key_and_model_and_a_repeated_line_counts_once() -> None:
    got = summarize(RECORDS + [RECORDS[1]], "hour")
    assert got["buckets"] == ["2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z"]
    rows = {(r["time"][11:13], r["key_name"]): r for r in got["data"]}
    user = rows[("09", "user")]
    # the session record's own cost_usd is the sum of its responses': not counted twice
    assert (user["cost_usd"], user["sessions"], user["responses"]) == (pytest.approx(0.3), 1, 2)
    admin = rows[("10", "admin")]
    assert admin["cost_usd"] == pytest.approx(0.05) and admin["unpriced"] == 1
    (nine, ten) = got["latency"]
    assert (nine["responses"], nine["p50_ms"], nine["p95_ms"]) == (2, 800.0, 800.0)
    assert ten["p50_ms"] is None
    assert summarize(RECORDS, "day")["buckets"] == ["2026-03-01T00:00:00Z"]


async def test_the_summary_endpoint_keeps_the_key_rules(server: RunningServer) -> None:
    w = SpendLogWriter(server.gateway.spend.path)
    for r in RECORDS:
        w.write(r)
    async with httpx.AsyncClient() as http:
        get = lambda key, **q: http.get(server.http + "/spend/summary", params=q,
                                        headers={"Authorization": f"Bearer {key}"})
        admin = (await get(ADMIN_KEY)).json()
        user = (await get(USER_KEY)).json()
        by_day = (await get(ADMIN_KEY, bucket="day", model_prefix="GPT-L")).json()
        assert (await get(USER_KEY, key_prefix="adm")).status_code == 403
        assert (await get(ADMIN_KEY, bucket="week")).status_code == 400
        assert (await get(ADMIN_KEY, since="yesterday")).status_code == 400
    assert {r["key_name"] for r in admin["data"]} == {"user", "admin"}
    assert {r["key_name"] for r in user["data"]} == {"user"}  # a user key sees its own
    assert [(r["key_name"], r["model"]) for r in by_day["data"]] == [("admin", "gpt-live-1")]


def test_buckets_are_utc_hours_percentiles_are_exact_and_odd_records_are_skipped() -> None:
    records = [
        rec("response", "k", "m", "2026-03-01T11:59:59.999+02:00", cost_usd=0.1, duration_ms=d, n=d)  # 09:59 UTC
        for d in range(1, 101)
    ]
    records.insert(10, dict(records[3]))  # a line written again, in the middle: counted once, the rest still read
    records += [
        {"record": "usage", "id": "u1", "key_name": "k", "model": "m", "time": "2026-03-01T10:00:00.000Z", "cost_usd": 1.0},
        {"record": "response", "id": "nt", "key_name": "k", "model": "m", "cost_usd": 5.0},  # no time: skipped
        {"record": "rate_limits", "id": "x", "key_name": "k", "model": "m", "start_time": "2026-03-01T10:00:00Z",
         "cost_usd": 9.0},  # not a billed kind: skipped
        rec("response", "k", "m", "2026-03-01T10:05:00.000Z", cost_usd=0.0, duration_ms=-5, n=999),
    ]
    got = summarize(records, "hour")
    assert got["buckets"] == ["2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z"]
    nine, ten = got["data"]
    assert (nine["responses"], nine["cost_usd"]) == (100, pytest.approx(10.0))
    assert (ten["responses"], ten["cost_usd"]) == (1, pytest.approx(1.0))
    lat_nine, lat_ten = got["latency"]
    assert (lat_nine["responses"], lat_nine["p50_ms"], lat_nine["p95_ms"]) == (100, 51.0, 96.0)
    assert (lat_ten["responses"], lat_ten["p50_ms"]) == (0, None)  # a negative duration is not a latency
    from datetime import datetime

    from rtproxy.spend.summary import bucket_start
    assert bucket_start(datetime(2026, 3, 1, 9, 59, 59, 999999, tzinfo=UTC), "hour") == "2026-03-01T09:00:00Z"
    assert bucket_start(datetime(2026, 3, 1, 23, 30, tzinfo=UTC), "day") == "2026-03-01T00:00:00Z"


def test_the_repeat_memory_is_bounded_to_the_most_recent_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    from rtproxy.spend import summary

    monkeypatch.setattr(summary, "MAX_DEDUPE_IDS", 3)
    base = [rec("response", "k", "m", "2026-03-01T09:00:00Z", cost_usd=1.0, n=i) for i in range(5)]
    # a recent repeat is dropped; one older than the memory counts again (a copytruncate never goes back so far)
    got = summarize([*base, base[4], base[0]], "hour")
    assert got["data"][0]["responses"] == 6
