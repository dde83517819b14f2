"""Hourly rollups of spend records (sans-IO): rows in, the sums to add to ``spend_hourly`` and
``spend_hourly_latency`` out (schema migration 3).

A record counts in the hour of its ``start_time`` (its write time when it has none), under its key,
team, model and provider (``""`` for none: the rollups' key columns are never null). The sums are
those of ``/spend/summary``: the cost of billed records, how many were billed, responses,
sessions, billed records without a price, audio in and out. A response's ``duration_ms`` is
counted in a latency bin: bins are a quarter of a doubling wide (about 19 %), so a percentile read
back from them (:func:`percentile`) is within ~10 % of the exact one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .rows import COLUMN

HOUR_US = 3_600_000_000
#: Latency bins per doubling; bin 0 holds everything under 1 ms, the last everything beyond.
BINS_PER_DOUBLING = 4
MAX_BIN = 1 + 22 * BINS_PER_DOUBLING  # 2**22 ms: 70 minutes
_BILLED = frozenset({"response", "transcription", "usage"})
_COUNTED = _BILLED | {"session"}

#: (hour_us, key_name, team, model, provider)
Group = tuple[int, str, str, str, str]
#: cost_usd, billed, responses, sessions, unpriced, audio_in_ms, audio_out_ms
SUMS = 7


def latency_bin(ms: float) -> int:
    if ms < 1:
        return 0
    return min(MAX_BIN, 1 + int(math.log2(ms) * BINS_PER_DOUBLING))


def bin_value_ms(b: int) -> float:
    """The value a bin stands for: the geometric middle of its bounds (0 for bin 0)."""
    if b <= 0:
        return 0.0
    low = 2 ** ((b - 1) / BINS_PER_DOUBLING)
    return low * 2 ** (0.5 / BINS_PER_DOUBLING)


def rollups(rows: Iterable[tuple[Any, ...]]) -> tuple[dict[Group, list[float]], dict[tuple[Group, int], int]]:
    sums: dict[Group, list[float]] = {}
    latency: dict[tuple[Group, int], int] = {}
    for row in rows:
        kind = row[COLUMN["record"]]
        if kind not in _COUNTED:
            continue
        start = row[COLUMN["start_us"]]
        t = start if start is not None else row[COLUMN["time_us"]]
        group: Group = (t - t % HOUR_US, row[COLUMN["key_name"]] or "", row[COLUMN["team"]] or "",
                        row[COLUMN["model"]] or "", row[COLUMN["provider"]] or "")
        s = sums.get(group)
        if s is None:
            s = sums[group] = [0.0] * SUMS
        if kind in _BILLED:
            cost = row[COLUMN["cost_usd"]]
            s[0] += cost or 0.0
            s[1] += 1
            s[4] += cost is None
            s[5] += row[COLUMN["audio_in_ms"]] or 0
            s[6] += row[COLUMN["audio_out_ms"]] or 0
        if kind == "response":
            s[2] += 1
            d = row[COLUMN["duration_ms"]]
            if d is not None and d >= 0:
                k = (group, latency_bin(d))
                latency[k] = latency.get(k, 0) + 1
        elif kind == "session":
            s[3] += 1
    return sums, latency


def percentile(bins: Mapping[int, int], p: float) -> float | None:
    """The ``p``-th percentile of a latency histogram (None when it is empty), as
    :func:`rtproxy.spend.summary` takes it: the value at rank ``int(p / 100 * n)``."""
    n = sum(bins.values())
    if n == 0:
        return None
    rank = min(n - 1, int(p / 100 * n))
    seen = 0
    for b in sorted(bins):
        seen += bins[b]
        if seen > rank:
            return round(bin_value_ms(b), 1)
    return None  # not reached
