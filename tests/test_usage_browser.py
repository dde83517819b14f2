"""The Usage page (/usage) in real headless Chromium against a real server process: records of known
cost written into the server's spend log (the server ships them to its ledger before answering),
then the page's cards, top tables, charts and periods checked against them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from playwright.sync_api import Page, expect

from .browser import LiveServer, checked_page, module_browser, live_server
from .conftest import ADMIN_KEY, USER_KEY


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of each test's own (and its own ledger): what the page shows is this test's records."""
    yield from live_server(tmp_path)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    yield from module_browser()


@pytest.fixture
def page(browser) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    yield from checked_page(browser)


# -- the records --------------------------------------------------------------------------------------

NOW = datetime.now(UTC)
MONTH = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
LAST_MONTH = (MONTH - timedelta(days=1)).replace(day=1)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: (key, team, model, hour after the month's start, cost of its response; None: unpriced, audio ms in/out)
#: — each a session of one response. This month: $2.05 over five sessions, one response unpriced,
#: 1.5 audio minutes; keys admin $0.90 > user $0.75 > support-bot $0.40; teams voice $1.15 >
#: (no team) $0.90; models gpt-realtime $1.80 > gpt-live-1 $0.25. Last month: user $2.00.
SESSIONS: list[tuple[str, str | None, str, float, float | None, tuple[int, int]]] = [
    ("user", "voice", "gpt-realtime", 1, 0.50, (60_000, 30_000)),
    ("user", "voice", "gpt-live-1", 2, 0.25, (0, 0)),
    ("support-bot", "voice", "gpt-realtime", 2, 0.40, (0, 0)),
    ("admin", None, "gpt-realtime", 1, 0.90, (0, 0)),
    ("admin", None, "gpt-live-1", 3, None, (0, 0)),
    ("user", "voice", "gpt-realtime", -12, 2.00, (0, 0)),  # the last day of last month, at noon
]


def write_usage(server: LiveServer) -> None:
    from rtproxy.spend.log import SpendLogWriter

    w = SpendLogWriter(server.root / "spend.jsonl")
    for i, (key, team, model, hours, cost, (audio_in, audio_out)) in enumerate(SESSIONS):
        start = MONTH + timedelta(hours=hours, minutes=10)
        base = {"session_id": f"sess_rtp_{i:020d}", "key_name": key, "team": team, "model": model, "provider": "local",
                "start_time": iso(start), "end_time": iso(start + timedelta(seconds=20)), "usage": {}}
        w.write({**base, "record": "response", "id": f"rec_usage_r{i}", "status": "completed", "cost_usd": cost,
                 "duration_ms": 200 * (i + 1), "audio_in_ms": audio_in, "audio_out_ms": audio_out})
        w.write({**base, "record": "session", "id": f"rec_usage_s{i}", "status": "success", "responses": 1,
                 "cost_usd": cost or 0.0, "close": {"by": "client", "code": 1000, "reason": ""}})


def api(server: LiveServer, method: str, path: str, key: str = ADMIN_KEY, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=10,
                         content=None if body is None else json.dumps(body))


def open_usage(page: Page, server: LiveServer, key: str = ADMIN_KEY, query: str = "") -> None:
    page.goto(f"{server.url}/usage{query}#key={key}")
    expect(page.locator("#status")).to_have_attribute("data-state", "ok")


def card(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f"#card-{name} .card-value")


def table_rows(page: Page, table: str) -> list[list[str]]:
    return [[c.strip() for c in row] for row in page.locator(f"#{table} tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].filter(c => getComputedStyle(c).display !== 'none').map(c => c.innerText))")]


# -- the tests ----------------------------------------------------------------------------------------

def test_this_month_by_default_cards_top_tables_and_budgets(page: Page, server: LiveServer) -> None:
    write_usage(server)
    assert api(server, "POST", "/admin/teams", body={"name": "voice", "max_budget_usd": 20,
                                                      "budget_period": "monthly"}).status_code == 201
    open_usage(page, server)
    expect(page.locator('input[name="period"][value="month"]')).to_be_checked()
    next_month = (MONTH + timedelta(days=32)).replace(day=1)
    expect(page.locator("#range")).to_have_text(
        f"{MONTH:%Y-%m-%d} 00:00 → {next_month:%Y-%m-%d} 00:00 UTC")
    # the cards: the API's totals, in words
    expect(card(page, "spend")).to_have_text("$2.05")
    expect(page.locator("#card-spend")).to_have_attribute("title", "$2.050000")
    expect(card(page, "sessions")).to_have_text("5")
    expect(card(page, "responses")).to_have_text("5")
    expect(card(page, "audio")).to_have_text("1.50 min")
    expect(card(page, "unpriced")).to_have_text("1")
    expect(page.locator("#card-unpriced")).to_have_attribute("data-flag", "true")  # flagged: the spend misses it
    expect(page.locator("#card-unpriced .card-note")).to_have_text("its cost is not in the spend: add the model's price")
    totals = api(server, "GET", f"/spend/totals?since={iso(MONTH)}").json()["total"]
    assert round(totals["cost_usd"], 6) == 2.05 and totals["unpriced"] == 1 and totals["sessions"] == 5
    # the top tables, the costliest first, with each one's share of the spend
    expect(page.locator("#top-keys tbody tr")).to_have_count(3)
    assert table_rows(page, "top-keys") == [
        ["admin", "$0.90 + 1 unpriced", "43.9 %", "2", "2", "0 min", "no budget"],
        ["user", "$0.75", "36.6 %", "2", "2", "1.50 min", "no budget"],
        ["support-bot", "$0.40", "19.5 %", "1", "1", "0 min", "—"],  # no such key any more: no budget to say
    ]
    expect(page.locator('#top-keys tr[data-name="admin"] .unpriced')).to_have_attribute(
        "title", "records without a price: not in the spend")
    assert table_rows(page, "top-teams") == [
        ["voice", "$1.15", "56.1 %", "3", "3", "1.50 min", "$20.00 left of $20.00 (monthly)"],
        ["(no team)", "$0.90 + 1 unpriced", "43.9 %", "2", "2", "0 min", "—"],
    ]
    assert table_rows(page, "top-models") == [
        ["gpt-realtime", "$1.80", "87.8 %", "3", "3", "1.50 min"],
        ["gpt-live-1", "$0.25 + 1 unpriced", "12.2 %", "2", "2", "0 min"],
    ]
    expect(page.locator("#top-keys-caption")).to_have_text("All 3 keys, by spend.")
    expect(page.locator("#scope")).to_be_hidden()
    expect(page.locator("#status")).to_have_text("This month: $2.05 over 5 session(s), 5 response(s).")


def test_the_charts_per_day_and_per_hour_by_key_model_and_provider(page: Page, server: LiveServer) -> None:
    write_usage(server)
    open_usage(page, server)
    day = iso(MONTH).replace(".000Z", "Z")
    spend = page.locator("#chart-spend svg")
    expect(spend).to_have_attribute("aria-label", "Spend (USD)")
    expect(page.locator("#spend-title")).to_have_text("Spend (USD) per day (UTC), by key")
    expect(spend.locator("rect.bar")).to_have_count(3)  # three keys, all on the 1st
    expect(spend.locator('rect.bar[data-series="admin"] title')).to_have_text(f"admin · {day}: $0.90")
    expect(page.locator("#bucket")).to_have_value("day")
    page.select_option("#chart-by", "model")
    expect(spend.locator("rect.bar")).to_have_count(2)
    expect(spend.locator('rect.bar[data-series="gpt-realtime"] title')).to_have_text(f"gpt-realtime · {day}: $1.80")
    expect(page.locator("#chart-sessions svg rect.bar")).to_have_count(2)
    expect(page.locator('#chart-sessions svg rect.bar[data-series="gpt-realtime"] title')).to_have_text(
        f"gpt-realtime · {day}: 3")
    expect(page.locator("#chart-latency svg polyline")).to_have_count(2)  # p50 and p95
    page.select_option("#chart-by", "provider")
    expect(spend.locator('rect.bar[data-series="offline model"]')).to_have_count(1)
    page.select_option("#bucket", "hour")  # per hour: asked again
    expect(page.locator("#spend-title")).to_have_text("Spend (USD) per hour (UTC), by provider")
    expect(spend.locator("rect.bar")).to_have_count(2)  # hours 1 and 2 (hour 3's response is unpriced)
    expect(page.locator("#chart-latency svg circle")).to_have_count(2 * 3)  # hours 1, 2 and 3, p50 and p95 each
    assert "per=hour" in page.url
    page.reload()  # the address keeps the choice
    expect(page.locator("#bucket")).to_have_value("hour")


def test_the_period_switch_last_month_and_today(page: Page, server: LiveServer) -> None:
    write_usage(server)
    open_usage(page, server)
    expect(card(page, "spend")).to_have_text("$2.05")
    page.get_by_label("Last month").check()
    expect(page.locator("#range")).to_have_text(f"{LAST_MONTH:%Y-%m-%d} 00:00 → {MONTH:%Y-%m-%d} 00:00 UTC")
    expect(card(page, "spend")).to_have_text("$2.00")  # last month's record, and only it
    expect(card(page, "sessions")).to_have_text("1")
    expect(page.locator("#card-unpriced")).to_have_attribute("data-flag", "false")
    assert table_rows(page, "top-keys") == [["user", "$2.00", "100.0 %", "1", "1", "0 min", "no budget"]]
    assert "period=last-month" in page.url
    page.get_by_label("This month").check()
    expect(card(page, "spend")).to_have_text("$2.05")  # last month's is not in this month
    page.get_by_label("Today").check()
    expect(page.locator("#range")).to_contain_text(f"{NOW:%Y-%m-%d} 00:00 → ")
    if NOW.day == 1:  # the month's records are today's too
        expect(card(page, "spend")).to_have_text("$2.05")
    else:
        expect(page.locator("#empty")).to_contain_text("No spend in this period")
        expect(card(page, "spend")).to_have_text("$0.00")


def test_a_user_key_sees_only_its_own_figures_and_is_told_why(page: Page, server: LiveServer) -> None:
    write_usage(server)
    assert api(server, "GET", "/admin/teams", key=USER_KEY).status_code == 403
    open_usage(page, server, key=USER_KEY)
    expect(card(page, "spend")).to_have_text("$0.75")
    expect(card(page, "sessions")).to_have_text("2")
    expect(card(page, "audio")).to_have_text("1.50 min")
    expect(page.locator("#card-unpriced")).to_have_attribute("data-flag", "false")  # the admin's unpriced is not its
    expect(page.locator("#top-keys-panel")).to_be_hidden()
    expect(page.locator("#top-teams-panel")).to_be_hidden()
    expect(page.locator("#scope")).to_have_text(
        "A user key sees only its own figures (key user): the top keys and teams need an admin key.")
    assert table_rows(page, "top-models") == [["gpt-realtime", "$0.50", "66.7 %", "1", "1", "1.50 min"],
                                              ["gpt-live-1", "$0.25", "33.3 %", "1", "1", "0 min"]]
    # its charts are by model or provider: by key would say nothing
    expect(page.locator("#chart-by option")).to_have_text(["model", "provider"])
    expect(page.locator("#chart-spend svg rect.bar")).to_have_count(2)
    for series in page.locator("#chart-spend svg rect.bar").evaluate_all("bs => bs.map(b => b.dataset.series)"):
        assert series in ("gpt-realtime", "gpt-live-1")


def test_a_custom_range_its_checks_the_apis_error_and_an_empty_period(page: Page, server: LiveServer) -> None:
    write_usage(server)
    open_usage(page, server)
    page.get_by_label("Custom").check()
    expect(page.locator("#from")).to_be_focused()
    expect(page.locator("#range")).to_have_text("Type From and To (UTC), then Show.")
    # a date alone as To is that whole day: the month so far, as This month shows it
    page.fill("#from", f"{MONTH:%Y-%m-%d}")
    page.fill("#to", f"{NOW:%Y-%m-%d}")
    page.click("#show")
    expect(card(page, "spend")).to_have_text("$2.05")
    tomorrow = (NOW + timedelta(days=1)).strftime("%Y-%m-%d")
    expect(page.locator("#range")).to_have_text(f"{MONTH:%Y-%m-%d} 00:00 → {tomorrow} 00:00 UTC")
    # what the page cannot read goes as typed: the API's refusal is shown in its words, nothing else
    page.fill("#from", "2026-13-45")
    page.press("#from", "Enter")
    error = page.locator("#error")
    expect(error).to_have_text("Cannot read the usage: since and until are ISO 8601 times, e.g. 2026-01-01T00:00:00Z")
    expect(page.locator("#status")).to_have_attribute("data-state", "error")
    expect(page.locator("#from")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#results")).to_be_hidden()  # no figure of the previous range stays under the error
    # a range the page can judge: said at once
    page.fill("#from", "2026-03-05")
    page.fill("#to", "2026-03-01")
    page.click("#show")
    expect(error).to_have_text("Custom: To must be after From.")
    expect(page.locator("#to")).to_have_attribute("aria-invalid", "true")
    # a period without records: said in words, the cards at zero, no empty charts or tables
    page.fill("#from", "2020-01-01")
    page.fill("#to", "2020-01-31")
    page.click("#show")
    expect(error).to_be_hidden()
    expect(page.locator("#empty")).to_have_text(
        "No spend in this period (2020-01-01 00:00 → 2020-02-01 00:00 UTC).")
    expect(card(page, "spend")).to_have_text("$0.00")
    expect(page.locator("#details")).to_be_hidden()
    expect(page.locator("#status")).to_have_text("Custom: no spend.")
    expect(page.locator("#status")).to_have_attribute("data-state", "idle")
    # the range is in the address: reloaded, the same view
    page.reload()
    expect(page.locator("#from")).to_have_value("2020-01-01")
    expect(page.locator("#empty")).to_be_visible()


def test_without_a_key_it_says_where_one_comes_from_and_a_bad_key_is_refused_in_words(
        page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/usage")
    expect(page.locator("#no-key")).to_contain_text("make run")
    expect(page.locator("#results")).to_be_hidden()
    page.fill("#key", "not-a-valid-key-0000")
    page.locator("#key").dispatch_event("change")
    expect(page.locator("#error")).to_have_text("Cannot read the usage: the API key is not valid for this gateway")
    expect(page.locator("#results")).to_be_hidden()


#: What does not fit: the page wider than the window, a panel or card whose content runs past it,
#: an input whose placeholder is cut, a period choice cut, and SVG text out of its chart.
CUT = """() => {
  const out = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth) out.push(['page', doc.scrollWidth, doc.clientWidth]);
  for (const n of document.querySelectorAll('.panel, .card, .card-value, .top-table th, #range, #scope, #empty')) {
    if (n.offsetParent && n.scrollWidth > n.clientWidth + 1) out.push([n.id || n.className || n.tagName, n.scrollWidth, n.clientWidth]);
  }
  const ctx = document.createElement('canvas').getContext('2d');
  for (const i of document.querySelectorAll('#controls input[placeholder]')) {
    if (!i.offsetParent) continue;
    const st = getComputedStyle(i);
    ctx.font = st.font;
    const room = i.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight);
    if (ctx.measureText(i.placeholder).width > room) out.push(['placeholder', i.id]);
  }
  for (const l of document.querySelectorAll('#periods label, #controls > label, .custom label')) {
    const r = l.getBoundingClientRect();
    if (r.right > innerWidth) out.push(['off the side', l.textContent.trim()]);
  }
  for (const l of document.querySelectorAll('#periods label')) {
    if (l.scrollWidth > l.clientWidth + 1) out.push(['cut', l.textContent.trim()]);
  }
  for (const t of document.querySelectorAll('svg.chart text')) {
    const b = t.getBoundingClientRect();
    const s = t.ownerSVGElement.getBoundingClientRect();
    if (b.left < s.left - 1 || b.right > s.right + 1 || b.top < s.top - 1 || b.bottom > s.bottom + 1) {
      out.push(['svg', t.textContent, Math.round(b.left - s.left), Math.round(s.right - b.right)]);
    }
  }
  return out;
}"""


@pytest.mark.parametrize("width", [800, 1280, 1440])
def test_nothing_is_cut_at_800_1280_and_1440_pixels(browser, server: LiveServer, width: int) -> None:  # type: ignore[no-untyped-def]
    write_usage(server)
    # a long key and team name beside the others, and more keys than the charts' legend has room for
    from rtproxy.spend.log import SpendLogWriter

    w = SpendLogWriter(server.root / "spend.jsonl")
    for i in range(8):
        start = iso(MONTH + timedelta(hours=1))
        w.write({"record": "response", "id": f"rec_many_{i}", "session_id": f"sess_rtp_many{i:015d}",
                 "key_name": f"customer-support-voice-agent-eu-west-{i}", "team": "customer-support-emea-north",
                 "model": "gpt-realtime", "provider": "local", "start_time": start, "cost_usd": 0.01 * (i + 1),
                 "duration_ms": 250})
    assert api(server, "POST", "/admin/teams", body={"name": "voice", "max_budget_usd": 20,
                                                      "budget_period": "monthly"}).status_code == 201
    for page in checked_page(browser, width, 900):
        open_usage(page, server)
        expect(page.locator("#top-keys tbody tr")).to_have_count(10)
        expect(page.locator("#top-keys-caption")).to_have_text("The top 10 of 11 keys by spend.")
        expect(page.locator("#chart-spend svg .legend-item")).to_have_count(4)  # three keys and "8 others"
        assert page.evaluate(CUT) == []
        page.get_by_label("Custom").check()  # its fields too
        assert page.evaluate(CUT) == []
        page.get_by_label("This month").check()
        expect(page.locator("#status")).to_have_attribute("data-state", "ok")
        # two columns of charts and tables on a wide screen, one under 1200 px
        spend = page.locator("#chart-spend").bounding_box()
        sessions = page.locator("#chart-sessions").bounding_box()
        assert spend is not None and sessions is not None
        assert (abs(spend["y"] - sessions["y"]) < 2) == (width >= 1200), (spend, sessions)
        assert spend["x"] >= 0 and spend["x"] + spend["width"] <= width
