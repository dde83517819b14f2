"""The logs viewer in real headless Chromium, after real sessions through the offline model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from playwright.sync_api import Page, expect

from .browser import LiveServer, checked_page as shared_checked_page, module_browser, live_server
from .conftest import ADMIN_KEY, USER_KEY


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of each test's own: what the viewer shows never depends on another test."""
    yield from live_server(tmp_path)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    yield from module_browser()


def checked_page(browser, width: int = 1500, height: int = 1000) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    yield from shared_checked_page(browser, width, height)


@pytest.fixture
def page(browser) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    yield from checked_page(browser)


@pytest.fixture
def sized_page(browser, width: int) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """A page ``width`` pixels wide (the test's parameter), 800 high."""
    yield from checked_page(browser, width, 800)


def tool_call_session(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/#key={USER_KEY}")
    page.select_option("#modalities", "text")
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "ok")
    page.fill("#text-input", "What's the weather in Paris? use get_weather")
    page.click("#send")
    card = page.locator(".tool-card")
    expect(card.locator(".tool-name")).to_have_text("get_weather")
    card.locator(".tool-result").fill('{"temp_c": 18}')
    card.locator(".tool-send").click()
    expect(page.locator('.entry[data-role="assistant"] .text').last).to_have_text('get_weather returned {"temp_c": 18}')
    page.click("#disconnect")
    expect(page.locator("#status")).to_contain_text("Disconnected")


def test_logs_show_the_session_responses_and_tools(page: Page, server: LiveServer) -> None:
    tool_call_session(page, server)
    page.goto(f"{server.url}/logs")
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_have_attribute("data-status", "success")
    expect(row.locator("td").nth(1)).to_have_text("user")
    expect(row.locator("td").nth(4)).to_have_text("2")
    session_id = row.get_attribute("data-session")
    (session,) = httpx.get(f"{server.url}/spend/logs", params={"session_id": session_id, "record": "session"},
                           headers={"Authorization": f"Bearer {USER_KEY}"}).json()["data"]
    assert session["cost_usd"] > 0
    expect(row.locator("td").nth(6)).to_have_text(f"${session['cost_usd']:.6f}")
    row.click()
    responses = page.locator("#d-responses > li")
    expect(responses).to_have_count(2)
    records = httpx.get(f"{server.url}/spend/logs", params={"session_id": session_id, "record": "response"},
                        headers={"Authorization": f"Bearer {USER_KEY}"}).json()["data"][::-1]
    for i, record in enumerate(records):  # each row shows the record's tokens and cost
        expect(responses.nth(i).locator(".usage .cost")).to_have_text(
            f"{record['usage']['total_tokens']} · ${record['cost_usd']:.6f}")
    expect(responses.first.locator('.message[data-source="text"]')).to_contain_text("use get_weather")
    expect(responses.nth(1).locator('.message[data-role="tool"]')).to_contain_text('{"temp_c": 18}')
    expect(responses.nth(1).locator(".output")).to_contain_text('get_weather returned {"temp_c": 18}')
    defs = page.locator("#d-tool-defs .tool-def")
    expect(defs).to_have_count(1)
    expect(defs.first.locator(".tool-name")).to_have_text("get_weather")
    expect(defs.first.locator(".tool-schema")).to_contain_text('"city"')
    calls = page.locator("#d-tool-calls .tool-call")
    expect(calls).to_have_count(1)
    expect(calls.first.locator(".tool-call-id")).to_contain_text("call_")
    expect(calls.first.locator(".tool-args")).to_have_text('{\n  "city": "Paris"\n}')
    expect(calls.first.locator(".tool-output")).to_contain_text('{"temp_c": 18}')


def run_sdk_surface(server: LiveServer, mode: str) -> None:
    import subprocess
    import sys

    client = Path(__file__).with_name("sdk_surface_client.py")
    subprocess.run([sys.executable, str(client), str(server.port), USER_KEY, mode], check=True, timeout=60,
                   capture_output=True)


def test_the_tools_section_shows_mcp_servers_and_calls_and_transcriptions_show_apart(page: Page,
                                                                                     server: LiveServer) -> None:
    run_sdk_surface(server, "mcp")
    run_sdk_surface(server, "transcription")
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(2)
    rows.nth(1).click()  # newest first: the MCP session is the older one
    defs = page.locator('#d-tool-defs .tool-def[data-kind="mcp"]')
    expect(defs.locator(".tool-name")).to_have_text("docs")
    expect(defs).to_contain_text("MCP server https://mcp.example/sse?[redacted]")
    call = page.locator('#d-tool-calls .tool-call[data-kind="mcp_call"]')
    expect(call.locator(".tool-server")).to_have_text("docs")
    expect(call.locator(".tool-name")).to_have_text("echo")
    expect(call.locator(".tool-args")).to_contain_text('"text": "hello world"')
    expect(call.locator(".tool-output")).to_contain_text("hello world")
    request = page.locator('#d-tool-calls .tool-call[data-kind="mcp_approval_request"]')
    expect(request.locator(".tool-name")).to_have_text("echo")
    expect(page.locator('#d-tool-calls .tool-call[data-kind="mcp_list_tools"] .tool-output')).to_contain_text("echo, add")
    expect(page.locator('#d-tool-calls .tool-call[data-kind="mcp_approval_response"] .tool-output')).to_contain_text(
        "approved")
    expect(page.locator("#d-transcriptions-section")).to_be_hidden()
    rows.nth(0).click()
    expect(page.locator("#d-transcriptions-section")).to_be_visible()
    expect(page.locator("#d-transcriptions .transcription")).to_have_count(1)
    expect(page.locator("#d-transcriptions .transcription")).to_contain_text("gpt-4o-transcribe")
    expect(page.locator("#d-transcriptions .transcript")).to_have_text("What is the weather in Paris?")


def test_a_gpt_live_session_shows_its_seconds_costs_conversation_and_tools(page: Page, server: LiveServer) -> None:
    import subprocess
    import sys

    client = Path(__file__).with_name("sdk_live_client.py")
    subprocess.run([sys.executable, str(client), str(server.port), USER_KEY, "delegated"], check=True, timeout=60,
                   capture_output=True)
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(1)
    rows.first.click()
    (session,) = httpx.get(f"{server.url}/spend/logs", params={"record": "session"},
                           headers={"Authorization": f"Bearer {USER_KEY}"}).json()["data"]
    summary = page.locator("#d-summary")
    expect(summary).to_contain_text(f"{session['seconds']} (session.closed)")
    expect(summary).to_contain_text(f"${session['voice_cost_usd']:.6f}")
    expect(summary).to_contain_text(f"${session['delegated_cost_usd']:.6f}")
    expect(page.locator("#d-conversation-section")).to_be_visible()
    expect(page.locator('#d-conversation .message[data-source="text"]')).to_contain_text("What is the weather in Paris?")
    expect(page.locator("#d-responses > li")).to_have_count(2)
    expect(page.locator("#d-responses > li").first.locator(".usage th").first).to_have_text("gpt-5.6-luna in")
    call = page.locator('#d-tool-calls .tool-call[data-kind="function"]')
    expect(call.locator(".tool-name")).to_have_text("get_weather")
    expect(call.locator(".tool-output")).to_contain_text('{"temp_c": 18}')


def test_a_client_delegated_gpt_live_session_shows_no_empty_responses_and_each_utterance_on_its_line(
        page: Page, server: LiveServer) -> None:
    import subprocess
    import sys

    client = Path(__file__).with_name("sdk_live_client.py")
    subprocess.run([sys.executable, str(client), str(server.port), USER_KEY, "voice"], check=True, timeout=60,
                   capture_output=True)
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    page.locator("#sessions tbody tr").first.click()
    expect(page.locator("#d-conversation-section")).to_be_visible()
    # the app answered the delegation itself: no delegated response, so no Responses heading
    expect(page.locator("#d-responses-section")).to_be_hidden()
    expect(page.locator("#detail h2", has_text="Responses")).to_be_hidden()
    # the holding line and the answer after it: one recorded turn (the SDK's grouper), two lines
    said = page.locator('#d-conversation .message[data-role="assistant"][data-source="transcript"]')
    expect(said).to_have_count(1)
    expect(said.locator(".utterance")).to_have_text(["One moment.", "It is sunny in Paris."])
    lines = [said.locator(".utterance").nth(i).bounding_box() for i in range(2)]
    assert lines[0] is not None and lines[1] is not None and lines[1]["y"] >= lines[0]["y"] + lines[0]["height"] - 1


def test_follow_mode_shows_new_sessions_and_admin_sees_all(page: Page, server: LiveServer, browser) -> None:  # type: ignore[no-untyped-def]
    tool_call_session(page, server)  # a user's session, for the admin to see beside its own
    page.goto(f"{server.url}/logs#key={ADMIN_KEY}")
    before = page.locator("#sessions tbody tr")
    expect(before.first).to_be_attached()
    n = before.count()
    page.check("#follow")
    other = browser.new_context().new_page()
    other.goto(f"{server.url}/#key={ADMIN_KEY}")
    other.select_option("#modalities", "text")
    other.click("#connect")
    expect(other.locator("#status")).to_have_attribute("data-state", "ok")
    other.fill("#text-input", "hello logs")
    other.click("#send")
    expect(other.locator('.entry[data-role="assistant"] .text')).to_have_text("You said: hello logs")
    # the running session appears as live, then as finished once it closes; the count follows
    expect(page.locator('#sessions tbody tr[data-status="live"]')).to_have_count(1)
    expect(page.locator("#status")).to_have_text(f"{n + 1} session(s), following.")
    other.click("#disconnect")
    expect(page.locator("#sessions tbody tr")).to_have_count(n + 1)
    expect(page.locator('#sessions tbody tr[data-status="live"]')).to_have_count(0)
    expect(page.locator("#status")).to_have_text(f"{n + 1} session(s), following.")
    page.uncheck("#follow")
    expect(page.locator("#status")).to_have_text(f"{n + 1} session(s).")
    expect(page.locator("#sessions tbody tr").first.locator("td").nth(1)).to_have_text("admin")
    other.context.close()


def test_a_user_key_sees_only_its_own_sessions(page: Page, server: LiveServer, browser) -> None:  # type: ignore[no-untyped-def]
    tool_call_session(page, server)
    admins = browser.new_context().new_page()  # and an admin's session it must not see
    admins.goto(f"{server.url}/#key={ADMIN_KEY}")
    admins.select_option("#modalities", "text")
    admins.click("#connect")
    expect(admins.locator("#status")).to_have_attribute("data-state", "ok")
    admins.click("#disconnect")
    admins.context.close()
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    expect(page.locator("#sessions tbody tr").first).to_be_attached()
    names = page.locator("#sessions tbody tr td:nth-child(2)").all_inner_texts()
    assert set(names) == {"user"}
    page.fill("#f-key", "admin")
    page.click("#apply-filters")
    expect(page.locator("#status")).to_contain_text("only its own records")


def write_sessions(server: LiveServer) -> None:
    from rtproxy.spend.log import SpendLogWriter

    w = SpendLogWriter(server.root / "spend.jsonl")
    for sid, key, model, start in [("sess_rtp_aaaaaaaaaaaaaaaaaaaa", "user", "gpt-realtime", "2026-03-01T09:00:00.000Z"),
                                   ("sess_rtp_bbbbbbbbbbbbbbbbbbbb", "user", "GPT-Live-1", "2026-03-01T15:30:00.000Z")]:
        w.write({"record": "session", "session_id": sid, "key_name": key, "model": model, "start_time": start,
                 "end_time": start, "status": "success", "responses": 0, "usage": {}, "cost_usd": 0.0,
                 "close": {"by": "client", "code": 1000, "reason": ""}})


@pytest.mark.parametrize("width", [800, 1280])
def test_a_filter_the_api_refuses_shows_its_error_and_one_matching_nothing_says_so(
        sized_page: Page, server: LiveServer, width: int) -> None:
    page = sized_page
    write_sessions(server)
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(2)
    status = page.locator("#status")
    # a time the page cannot read is not dropped (that listed every session): the API's refusal shows
    for field, typed, message in (("#f-since", "2026-13-45", "since must be an ISO-8601 time"),
                                  ("#f-until", "yesterday", "until must be an ISO-8601 time")):
        page.fill(field, typed)
        page.click("#apply-filters")
        expect(status).to_have_text(f"Cannot read the spend log: {message}")
        expect(status).to_have_attribute("data-state", "error")
        expect(rows).to_have_count(0)
        expect(page.locator(field)).to_have_attribute("aria-invalid", "true")
        page.fill(field, "")
    page.click("#apply-filters")
    expect(rows).to_have_count(2)
    expect(status).to_have_text("2 session(s).")
    # nothing matches: said so, in the list and the status, neither green nor red
    page.fill("#f-model", "no-such-model")
    page.click("#apply-filters")
    expect(rows).to_have_count(0)
    expect(page.locator("#sessions-empty")).to_have_text("No sessions match.")
    expect(status).to_have_text("No sessions match.")
    expect(status).to_have_attribute("data-state", "idle")
    color = page.evaluate("() => getComputedStyle(document.querySelector('#status')).color")
    assert color == "rgb(107, 114, 128)"  # the muted ink, not --ok's green or --err's red


def write_long_sessions(server: LiveServer) -> None:
    """Two sessions of 25 responses each, so each one's detail is taller than the screen."""
    from rtproxy.spend.log import SpendLogWriter

    w = SpendLogWriter(server.root / "spend.jsonl")
    for n, sid in enumerate(("sess_rtp_cccccccccccccccccccc", "sess_rtp_dddddddddddddddddddd")):
        start = f"2026-03-0{n + 1}T10:00:00.000Z"
        for i in range(25):
            w.write({"record": "response", "id": f"r{n}-{i}", "session_id": sid, "key_name": "user", "model": "gpt-realtime",
                     "response_id": f"resp_{n}_{i}", "start_time": f"2026-03-0{n + 1}T10:00:{i + 1:02d}.000Z",
                     "status": "completed", "usage": {},
                     "cost_usd": 0.0, "messages": [{"role": "user", "content": f"question {i}", "source": "text"}],
                     "response": {"output_text": f"answer {i}"}})
        w.write({"record": "session", "session_id": sid, "key_name": "user", "model": "gpt-realtime",
                 "start_time": start, "end_time": start, "status": "success", "responses": 25, "usage": {},
                 "cost_usd": 0.0, "close": {"by": "client", "code": 1000, "reason": ""}})


@pytest.mark.parametrize("width", [800, 1280])
def test_another_session_is_shown_from_the_top_of_its_detail(sized_page: Page, server: LiveServer, width: int) -> None:
    page = sized_page
    write_long_sessions(server)
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(2)
    rows.first.click()
    expect(page.locator("#d-id")).to_have_text("sess_rtp_dddddddddddddddddddd")
    # read down to the end of its detail (the panel scrolls beside the list; a narrow page scrolls)
    page.locator("#d-tool-calls").scroll_into_view_if_needed()
    header = page.locator("#d-id")
    box = header.bounding_box()
    assert box is not None and box["y"] < 0  # the header is out of sight
    rows.nth(1).click()
    expect(header).to_have_text("sess_rtp_cccccccccccccccccccc")
    expect(page.locator("#d-responses > li").first).to_contain_text("answer 0")
    page.wait_for_function("() => { const r = document.querySelector('#d-id').getBoundingClientRect();"
                           " return r.top >= 0 && r.bottom <= innerHeight; }")
    if width >= 1280:  # side by side: the detail panel itself went back to its top
        assert page.evaluate("() => document.querySelector('#detail-panel').scrollTop") == 0


def test_a_webrtc_call_is_labelled_and_the_callers_hang_up_is_not_an_upstream_close(page: Page, server: LiveServer) -> None:
    """The records of a WebRTC call the user hung up (as tests/test_webrtc.py finds them): marked
    ``transport: webrtc``, closed by the provider's end of the gateway's sideband with 1000."""
    from rtproxy.spend.log import SpendLogWriter

    w = SpendLogWriter(server.root / "spend.jsonl")
    for sid, extra, reason in (("sess_rtp_eeeeeeeeeeeeeeeeeeee", {"transport": "webrtc"}, "call ended"),
                               ("sess_rtp_ffffffffffffffffffff", {}, "")):
        w.write({"record": "session", "session_id": sid, "key_name": "user", "model": "gpt-realtime",
                 "provider": "local", "start_time": "2026-03-01T09:00:00.000Z", "end_time": "2026-03-01T09:00:05.000Z",
                 "status": "success", "responses": 0, "usage": {}, "cost_usd": 0.0,
                 "close": {"by": "upstream", "code": 1000, "reason": reason}, **extra})
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    call = page.locator('#sessions tbody tr[data-session="sess_rtp_eeeeeeeeeeeeeeeeeeee"]')
    expect(call.locator(".badge.transport")).to_have_text("WebRTC")
    expect(page.locator('#sessions tbody tr[data-session="sess_rtp_ffffffffffffffffffff"] .badge.transport')).to_have_count(0)
    call.click()
    summary = page.locator("#d-summary")
    expect(summary.locator("dt", has_text="transport").locator("xpath=following-sibling::dd[1]")).to_have_text("WebRTC")
    closed = summary.locator("dt", has_text="closed by").locator("xpath=following-sibling::dd[1]")
    expect(closed).to_have_text("the call was hung up (1000)")
    page.locator('#sessions tbody tr[data-session="sess_rtp_ffffffffffffffffffff"]').click()
    expect(closed).to_have_text("upstream 1000")  # over a WebSocket, the upstream did close it


def test_times_are_utc_both_ways_and_filters_are_case_insensitive_prefixes(browser, server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    write_sessions(server)
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, timezone_id="America/New_York")
    page = context.new_page()
    try:
        page.goto(f"{server.url}/logs#key={ADMIN_KEY}")
        rows = page.locator("#sessions tbody tr")
        expect(rows).to_have_count(2)
        expect(page.locator("#sessions th").first).to_have_text("time (UTC)")
        shown = rows.nth(1).locator("td").first.text_content() or ""
        assert shown == "2026-03-01 09:00:00"  # UTC, not New York's 04:00
        page.fill("#f-since", shown)  # a time copied from the list finds its session, in any zone
        page.fill("#f-until", "2026-03-01 09:00:01")
        page.click("#apply-filters")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-session", "sess_rtp_aaaaaaaaaaaaaaaaaaaa")
        page.fill("#f-since", "")
        page.fill("#f-until", "")
        page.fill("#f-model", "gpt-l")  # a case-insensitive prefix
        page.click("#apply-filters")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-session", "sess_rtp_bbbbbbbbbbbbbbbbbbbb")
        page.fill("#f-model", "")
        page.fill("#f-key", "US")
        page.click("#apply-filters")
        expect(rows).to_have_count(2)
    finally:
        context.close()


def test_a_key_change_clears_the_old_keys_sessions_and_a_pasted_key_link_is_taken_at_once(
        page: Page, server: LiveServer) -> None:
    write_sessions(server)
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(2)
    rows.first.click()
    expect(page.locator("#detail")).to_be_visible()
    page.fill("#key", "not-a-valid-key-0000")
    page.locator("#key").dispatch_event("change")
    expect(page.locator("#status")).to_have_attribute("data-state", "error")
    expect(rows).to_have_count(0)  # nothing of the previous key stays under the error
    expect(page.locator("#detail")).to_be_hidden()
    page.evaluate(f"() => {{ location.hash = 'key={ADMIN_KEY}'; }}")  # a #key= link pasted into this tab
    expect(rows).to_have_count(2)
    expect(page.locator("#key")).to_have_value(ADMIN_KEY)


def test_the_dashboard_plots_spend_sessions_and_latency_from_the_summary(page: Page, server: LiveServer) -> None:
    from rtproxy.spend.log import SpendLogWriter

    w = SpendLogWriter(server.root / "spend.jsonl")
    for i, (key, model, hour) in enumerate([("user", "gpt-realtime", "09"), ("user", "gpt-live-1", "09"),
                                            ("user", "gpt-realtime", "10")]):
        t = f"2026-03-01T{hour}:1{i}:00.000Z"
        w.write({"record": "session", "id": f"s{i}", "session_id": f"sess_rtp_{i:020d}", "key_name": key,
                 "model": model, "start_time": t, "end_time": t, "status": "success", "responses": 1, "usage": {},
                 "cost_usd": 0.01 * (i + 1), "close": {"by": "client", "code": 1000, "reason": ""}})
        w.write({"record": "response", "id": f"r{i}", "session_id": f"sess_rtp_{i:020d}", "key_name": key,
                 "model": model, "start_time": t, "status": "completed", "usage": {}, "cost_usd": 0.01 * (i + 1),
                 "duration_ms": 300 * (i + 1)})
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    expect(page.locator("#sessions tbody tr")).to_have_count(3)
    page.locator("#dashboard summary").click()
    spend = page.locator("#chart-spend svg")
    expect(spend).to_have_attribute("aria-label", "Spend (USD)")
    expect(spend.locator("rect.bar")).to_have_count(2)  # one key, two hours
    expect(spend.locator("rect.bar").first.locator("title")).to_have_text("user · 2026-03-01T09:00:00Z: $0.03")
    page.select_option("#dash-by", "model")
    expect(page.locator("#chart-sessions svg rect.bar")).to_have_count(3)  # two models in hour 9, one in 10
    expect(page.locator("#chart-latency svg polyline")).to_have_count(2)  # p50 and p95
    page.select_option("#dash-bucket", "day")
    expect(page.locator("#chart-spend svg rect.bar")).to_have_count(2)  # one day, two models


# -- providers: a Gemini-backed session beside others ---------------------------------------------

@pytest.fixture
def gemini_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of the test's own whose config also has ``gemini-live``: the offline model
    speaking Gemini Live, reached through the gateway's translation."""
    yield from live_server(tmp_path, gemini=True)


def gemini_session(page: Page, server: LiveServer) -> None:
    """A typed turn on gemini-live through the playground, then the session closed."""
    page.goto(f"{server.url}/#key={USER_KEY}")
    expect(page.locator('#model option[value="gemini-live"]')).to_be_attached()
    page.select_option("#model", "gemini-live")
    page.select_option("#modalities", "text")
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "ok")
    page.fill("#text-input", "Hello Gemini")
    page.click("#send")
    expect(page.locator('.entry[data-role="assistant"] .text')).to_have_text("You said: Hello Gemini")
    page.click("#disconnect")
    expect(page.locator("#status")).to_contain_text("Disconnected")


def write_provider_sessions(server: LiveServer) -> None:
    """Two finished sessions of other providers (an OpenAI and a Vertex AI one), each with its
    response, in this hour: beside the real session, the dashboard has three providers."""
    from datetime import UTC, datetime

    from rtproxy.spend.log import SpendLogWriter

    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    w = SpendLogWriter(server.root / "spend.jsonl")
    for i, (provider, model, cost) in enumerate([("openai", "gpt-realtime-cloud", 0.25), ("vertex", "gemini-vertex", 0.5)]):
        sid = f"sess_rtp_{provider:0>20}"
        base = {"session_id": sid, "key_name": "user", "model": model, "provider": provider, "start_time": now,
                "end_time": now, "usage": {"total_tokens": 10}, "cost_usd": cost}
        w.write({**base, "record": "response", "id": f"rec_r{i}", "status": "completed", "duration_ms": 200})
        w.write({**base, "record": "session", "id": f"rec_s{i}", "status": "success", "responses": 1,
                 "close": {"by": "client", "code": 1000, "reason": ""}})


def spend(server: LiveServer, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers={"Authorization": f"Bearer {USER_KEY}"})


def test_the_viewer_shows_each_sessions_provider_and_filters_by_it(page: Page, gemini_server: LiveServer) -> None:
    server = gemini_server
    gemini_session(page, server)
    write_provider_sessions(server)
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    rows = page.locator("#sessions tbody tr")
    expect(rows).to_have_count(3)
    badges = {"gemini-live": ("local", "Gemini Live (offline)"), "gpt-realtime-cloud": ("openai", "OpenAI"),
              "gemini-vertex": ("vertex", "Gemini Live (Vertex AI)")}
    for model, (provider, label) in badges.items():
        badge = page.locator("#sessions td.model", has_text=model).locator(".badge.provider")
        expect(badge).to_have_text(label)
        expect(badge).to_have_attribute("data-provider", provider)
    page.locator("#sessions tbody tr", has_text="gemini-live").click()
    expect(page.locator("#d-summary")).to_contain_text("Gemini Live (offline) (local)")
    # the filter bar's provider: the server filters (the offline model's sessions are "local")
    page.select_option("#f-provider", "local")
    page.click("#apply-filters")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.model")).to_contain_text("gemini-live")
    page.select_option("#f-provider", "vertex")
    page.click("#apply-filters")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.model")).to_contain_text("gemini-vertex")
    page.select_option("#f-provider", "")
    page.click("#apply-filters")
    expect(rows).to_have_count(3)
    records = spend(server, "/spend/logs", provider="openai").json()["data"]
    assert {r["provider"] for r in records} == {"openai"} and len(records) == 2  # its response and its session


def test_the_dashboard_splits_spend_and_sessions_by_provider(page: Page, gemini_server: LiveServer) -> None:
    server = gemini_server
    gemini_session(page, server)
    write_provider_sessions(server)
    summary = spend(server, "/spend/summary", split="provider").json()
    by_provider: dict[str, float] = {}
    for row in summary["data"]:
        by_provider[row["provider"]] = by_provider.get(row["provider"], 0.0) + row["cost_usd"]
    assert set(by_provider) == {"local", "openai", "vertex"} and by_provider["local"] > 0
    assert all("provider" not in row for row in spend(server, "/spend/summary").json()["data"])  # rows as before
    assert spend(server, "/spend/summary", split="colour").status_code == 400
    page.goto(f"{server.url}/logs#key={USER_KEY}")
    expect(page.locator("#sessions tbody tr")).to_have_count(3)
    page.locator("#dashboard summary").click()
    page.select_option("#dash-by", "provider")
    spend_chart = page.locator("#chart-spend svg")
    for name in ("offline model", "OpenAI", "Gemini (Vertex AI)"):
        expect(spend_chart.locator(f'rect.bar[data-series="{name}"]')).to_have_count(1)
    expect(page.locator("#chart-sessions svg rect.bar")).to_have_count(3)  # a session of each, in one hour
    expect(page.locator("#dash-totals-title")).to_have_text("Totals by provider")
    totals = page.locator("#dash-totals tbody tr")
    expect(totals).to_have_count(3)
    expect(totals.nth(0).locator("td")).to_have_text(["Gemini (Vertex AI)", "1", "1", "$0.500000"])  # the costliest first
    expect(totals.nth(1).locator("td")).to_have_text(["OpenAI", "1", "1", "$0.250000"])
    local = page.locator('#dash-totals tr[data-name="offline model"] td.cost')
    expect(local).to_have_text(re.compile(r"^\$\d+\.\d{6}$"))  # the server's sum, to a millionth (JS rounds)
    assert abs(float((local.text_content() or "")[1:]) - by_provider["local"]) <= 0.5e-6 + 1e-12
    # the provider filter narrows the dashboard too
    page.select_option("#f-provider", "local")
    page.click("#apply-filters")
    expect(totals).to_have_count(1)
    expect(totals.first.locator("td").first).to_have_text("offline model")
