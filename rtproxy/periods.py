"""Budget periods (sans-IO): which period a moment falls in, for a key's or a team's budget.

``budget_period`` is one of :data:`PERIODS`:

- ``monthly``: from 00:00 UTC on the first day of each calendar month;
- ``1d``: from 00:00 UTC each day;
- ``7d`` and ``30d``: runs of 7 or 30 days from 00:00 UTC of the key's (or team's) *anchor* day —
  the day it was created, or given a period — so a key made on a Wednesday resets every
  Wednesday at 00:00 UTC.

A period is named by the date it starts (``2026-12-01``): its spend is kept under an account of
that name (:mod:`rtproxy.spend.budgets`), so a new period starts from zero by itself, on every
server at once, and nothing has to be reset.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, get_args

import attrs

Period = Literal["1d", "7d", "30d", "monthly"]
PERIODS: tuple[str, ...] = get_args(Period)
_DAYS = {"1d": 1, "7d": 7, "30d": 30}
_EPOCH = dt.date(1970, 1, 1)


def parse_period(value: object) -> Period | None:
    """``value`` as a period (None, "" and "none": no period). Raises ValueError naming the choices.
    LiteLLM's spellings of the same periods (``"24h"``, ``"1mo"``, ``"30d"``) are accepted."""
    if value is None or value == "" or value == "none":
        return None
    aliases = {"24h": "1d", "1mo": "monthly", "1month": "monthly", "month": "monthly", "1w": "7d", "7days": "7d"}
    text = aliases.get(str(value).strip().lower(), str(value).strip().lower())
    if text not in PERIODS:
        raise ValueError(f"budget_period must be one of {', '.join(PERIODS)} (got {str(value)[:40]!r})")
    return text  # type: ignore[return-value]


def _day(t: float) -> dt.date:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).date()


@attrs.frozen
class PeriodWindow:
    start: dt.date
    end: dt.date  # exclusive

    @property
    def name(self) -> str:
        return self.start.isoformat()

    @property
    def start_s(self) -> float:
        return _timestamp(self.start)

    @property
    def end_s(self) -> float:
        return _timestamp(self.end)


def _timestamp(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()


def window(period: Period, anchor_s: float, now_s: float) -> PeriodWindow:
    """The period of ``period`` that holds ``now_s`` (seconds since the epoch, UTC). ``anchor_s``:
    when the key or team was created (only ``7d`` and ``30d`` use it). A moment before the anchor
    falls in the period before the anchor's (records written before a key got its period)."""
    today = _day(now_s)
    if period == "monthly":
        start = today.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
        return PeriodWindow(start, end)
    days = _DAYS[period]
    anchor = _day(anchor_s) if days > 1 else _EPOCH
    index = (today - anchor).days // days  # floor division: negative before the anchor
    start = anchor + dt.timedelta(days=index * days)
    return PeriodWindow(start, start + dt.timedelta(days=days))
