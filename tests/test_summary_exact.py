"""The dashboard's summary at its edges: its output's exact shape, counts that add up past one,
bounds at their limits, and UTC buckets whatever the server's time zone (found loosely pinned by
the mutation run of 2026-12-02)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from rtproxy.spend import summary as summary_module
from rtproxy.spend.summary import MAX_DEDUPE_IDS, bucket_start, summarize


def rec(kind: str, t: str = "2026-12-02T10:30:00Z", **kw: Any) -> dict[str, Any]:
    return {"record": kind, "start_time": t, "key_name": "k", "model": "m", **kw}


def test_the_summary_has_exactly_this_shape() -> None:
    out = summarize([rec("response", cost_usd=0.5, duration_ms=10), rec("session")])
    assert out == {
        "bucket": "hour",  # the default
        "buckets": ["2026-12-02T10:00:00Z"],
        "data": [{"time": "2026-12-02T10:00:00Z", "key_name": "k", "model": "m", "cost_usd": 0.5, "sessions": 1,
                  "responses": 1, "unpriced": 0}],
        "latency": [{"time": "2026-12-02T10:00:00Z", "responses": 1, "p50_ms": 10.0, "p95_ms": 10.0}],
    }


def test_counts_add_up_and_missing_names_are_empty() -> None:
    out = summarize([rec("session", key_name=None, model=None), rec("session", key_name=None, model=None),
                     rec("response", key_name=None, model=None), rec("response", key_name=None, model=None)])
    (row,) = out["data"]
    assert (row["key_name"], row["model"], row["sessions"], row["responses"], row["unpriced"]) == ("", "", 2, 2, 2)


def test_costs_are_summed_to_a_ten_billionth() -> None:
    (row,) = summarize([rec("response", cost_usd=1.23456789012e-3)])["data"]
    assert row["cost_usd"] == 0.0012345679


@pytest.mark.parametrize(("duration", "counted"), [(0, True), (0.5, True), (-1, False), (True, False), ("5", False)])
def test_a_latency_of_zero_counts_and_a_nonsense_one_does_not(duration: Any, counted: bool) -> None:
    (lat,) = summarize([rec("response", duration_ms=duration)])["latency"]
    assert lat["responses"] == (1 if counted else 0)
    assert lat["p50_ms"] == (float(duration) if counted else None)


def test_latency_samples_stop_at_the_bound_but_the_count_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_module, "MAX_LATENCY_SAMPLES", 3)
    (lat,) = summarize([rec("response", duration_ms=d) for d in (1, 2, 3, 100, 100)])["latency"]
    assert lat["responses"] == 5 and lat["p95_ms"] == 3.0  # only the first three were kept


def test_buckets_stop_at_the_bound_and_later_records_of_known_buckets_still_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_module, "MAX_BUCKETS", 2)
    records = [rec("session", t=f"2026-12-02T{h:02d}:00:00Z") for h in (1, 2, 3)] + [
        rec("session", t="2026-12-02T01:30:00Z")]
    out = summarize(records)
    assert out["buckets"] == ["2026-12-02T01:00:00Z", "2026-12-02T02:00:00Z"]
    assert [r["sessions"] for r in out["data"]] == [2, 1]


def test_a_line_repeated_within_the_remembered_ids_counts_once() -> None:
    records = [rec("session", id=f"r{i}") for i in range(MAX_DEDUPE_IDS)] + [rec("session", id="r0")]
    assert summarize(records)["data"][0]["sessions"] == MAX_DEDUPE_IDS
    # one more id and the oldest is forgotten: its repeat counts again
    records = [rec("session", id=f"r{i}") for i in range(MAX_DEDUPE_IDS + 1)] + [rec("session", id="r0")]
    assert summarize(records)["data"][0]["sessions"] == MAX_DEDUPE_IDS + 2


@pytest.fixture
def far_time_zone() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_buckets_are_utc_whatever_the_servers_time_zone(far_time_zone: None) -> None:
    t = datetime(2026, 12, 2, 10, 30, tzinfo=timezone(timedelta(hours=-7)))
    assert bucket_start(t, "hour") == "2026-12-02T17:00:00Z"
    assert bucket_start(t, "day") == "2026-12-02T00:00:00Z"
