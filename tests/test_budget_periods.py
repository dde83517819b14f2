"""Budgets that reset (#29): which period a moment falls in, a key's monthly budget starting again at
00:00 UTC on the 1st (on a clock the test controls), and a rebuild booking old records to the
periods and teams they were spent in."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import attrs
import pytest

from rtproxy.auth.keys import TeamTerms, VirtualKey
from rtproxy.periods import parse_period, window
from rtproxy.server.limits import Limits, budgets_of
from rtproxy.spend.budgets import Book, Terms, period_account, spend_ledger, team_account
from rtproxy.state import MemoryStore

from .conftest import make_config


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()


@pytest.mark.parametrize(("period", "anchor", "now", "start", "end"), [
    ("monthly", "2026-01-15T10:00", "2026-12-31T23:59:59", "2026-12-01", "2027-01-01"),
    ("monthly", "2026-01-15T10:00", "2027-01-01T00:00:00", "2027-01-01", "2027-02-01"),
    ("monthly", "2026-01-15T10:00", "2028-02-29T12:00:00", "2028-02-01", "2028-03-01"),
    ("1d", "2026-01-15T10:00", "2026-12-05T23:59:59", "2026-12-05", "2026-12-06"),
    # 7 and 30 days count from 00:00 UTC of the anchor's day: a Wednesday's key resets on Wednesdays
    ("7d", "2026-12-02T17:30", "2026-12-08T23:59:59", "2026-12-02", "2026-12-09"),
    ("7d", "2026-12-02T17:30", "2026-12-09T00:00:00", "2026-12-09", "2026-12-16"),
    ("30d", "2026-11-01T08:00", "2026-12-01T00:00:00", "2026-12-01", "2026-12-31"),
    # before the anchor: the period before the anchor's (records older than the period setting)
    ("7d", "2026-12-02T17:30", "2026-12-01T12:00:00", "2026-11-25", "2026-12-02"),
])
def test_a_moment_falls_in_the_period_that_starts_at_midnight_utc_of_its_first_day(
        period: str, anchor: str, now: str, start: str, end: str) -> None:
    w = window(parse_period(period), at(anchor), at(now))  # type: ignore[arg-type]
    assert (w.start.isoformat(), w.end.isoformat()) == (start, end)
    assert w.start_s <= at(now) < w.end_s


def test_periods_are_named_as_rtproxy_and_litellm_spell_them_and_nothing_else() -> None:
    assert [parse_period(p) for p in ("1d", "24h", "7d", "30d", "monthly", "1mo", None, "")] == [
        "1d", "1d", "7d", "30d", "monthly", "monthly", None, None]
    with pytest.raises(ValueError, match="1d, 7d, 30d, monthly"):
        parse_period("2w")


def monthly_key(**changes: object) -> VirtualKey:
    key = VirtualKey(name="app", sha256="0" * 64, models=("*",), role="user", max_budget_usd=1.0, max_sessions=None,
                     max_sessions_per_minute=None, store_prompts=None, budget_period="monthly")
    return attrs.evolve(key, **changes)


async def test_a_monthly_budget_spent_in_december_admits_again_at_midnight_on_january_the_first(
        tmp_path: Path) -> None:
    limits = Limits(make_config(tmp_path), store=MemoryStore())
    await limits.store.rebuild("log", {}, [], epoch="e")
    now = [at("2026-12-31T23:59:58")]
    limits.clock = lambda: now[0]
    key = monthly_key()
    await limits.charge("app", 1.0, "r1", terms=key)
    refused = await limits.admit("s1", key)
    assert refused is not None and refused.code == "budget_exceeded"
    assert refused.message == "key 'app' has used its budget of $1 for the period from 2026-12-01"
    assert limits.over_limit(key) is not None
    now[0] = at("2027-01-01T00:00:00")
    await limits.refresh(limits.limited_accounts(key))
    assert limits.over_limit(key) is None  # an open session is no longer over: its key's month is new
    assert await limits.admit("s2", key) is None
    # the lifetime total still has December's spend (the dashboards' figure)
    assert (await limits.store.spent(["app"]))["app"] == pytest.approx(1.0)


async def test_a_team_budget_is_held_with_the_keys_own_and_the_tighter_refuses(tmp_path: Path) -> None:
    limits = Limits(make_config(tmp_path), store=MemoryStore())
    await limits.store.rebuild("log", {}, [], epoch="e")
    team = TeamTerms("voice", max_budget_usd=0.5, budget_period="1d")
    a, b = monthly_key(name="a", team=team), monthly_key(name="b", team=team)
    await limits.charge("a", 0.3, "r1", terms=a, team="voice")
    assert await limits.admit("s1", b) is None
    await limits.charge("b", 0.3, "r2", terms=b, team="voice")
    refused = await limits.admit("s2", a)
    assert refused is not None and refused.message.startswith("team 'voice' (of key 'a') has used its budget of $0.5")
    assert limits.over_limit(a) is not None and limits.over_limit(b) is not None
    # each key itself is within its own budget of $1
    assert [x.account for x in budgets_of(a, limits.clock())][0].startswith("a\x1fp:")


def test_a_rebuild_books_each_record_to_the_period_and_team_it_was_spent_in(tmp_path: Path) -> None:
    log = tmp_path / "spend.jsonl"
    records = [
        {"record": "response", "id": "r1", "key_name": "app", "cost_usd": 0.25, "end_time": "2026-11-30T23:59:59Z"},
        {"record": "response", "id": "r2", "key_name": "app", "cost_usd": 0.5, "end_time": "2026-12-01T00:00:00Z",
         "team": "voice", "audio_in_ms": 1000},
        {"record": "response", "id": "r2", "key_name": "app", "cost_usd": 0.5, "end_time": "2026-12-01T00:00:00Z",
         "team": "voice", "audio_in_ms": 1000},  # written again after a copytruncate: counted once
        {"record": "session", "id": "s1", "key_name": "app", "cost_usd": 0.75, "end_time": "2026-12-01T00:00:01Z"},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    book = Book({"app": Terms("monthly")}, {"voice": Terms("1d")})
    older, recent = spend_ledger(log, 0, book)
    assert not recent
    assert older["app"] == pytest.approx(0.75)
    assert older[period_account("app", Terms("monthly"), at("2026-11-15T00:00"))] == pytest.approx(0.25)
    assert older[period_account("app", Terms("monthly"), at("2026-12-15T00:00"))] == pytest.approx(0.5)
    assert older[team_account("voice")] == pytest.approx(0.5)
    assert older[period_account(team_account("voice"), Terms("1d"), at("2026-12-01T12:00"))] == pytest.approx(0.5)
    assert older["\x1faudio_ms:app\x1fp:2026-12-01"] == pytest.approx(1000)
