"""The playground in real headless Chromium against a real server on the offline model."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from .browser import (
    checked_page as shared_checked_page,
    CHROMIUM,
    CHROMIUM_ARGS,
    LiveServer,
    launch_browser,
    live_server,
    mic_wav,
    silence,
    speech_wav,
    spoken,
    voiced,
)
from .conftest import USER_KEY

WEB = Path(__file__).resolve().parent.parent / "web"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from live_server(tmp_path_factory.mktemp("browser-server"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    wav = speech_wav(tmp_path_factory.mktemp("audio") / "speech.wav")
    with sync_playwright() as p:
        b = launch_browser(p, wav)
        yield b
        b.close()


def checked_page(browser, width: int = 1400) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    yield from shared_checked_page(browser, width, 900, timeout_ms=TIMEOUT_MS)


@pytest.fixture
def page(browser, server: LiveServer) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    yield from checked_page(browser)


@pytest.fixture
def sized_page(browser, server: LiveServer, width: int) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """A page ``width`` pixels wide (the test's parameter)."""
    yield from checked_page(browser, width)


def open_playground(page: Page, server: LiveServer, key: str = USER_KEY) -> None:
    page.goto(f"{server.url}/#key={key}")
    expect(page.locator("#key")).to_have_value(key)
    assert "key=" not in page.url  # the fragment is moved to sessionStorage, out of the address bar


def connect(page: Page) -> None:
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "ok")
    expect(page.locator("#status")).to_contain_text("Connected (realtime)")


def test_web_modules_pass_node_tests() -> None:
    result = subprocess.run(["node", "--test", str(WEB / "tests")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) >= 20, "node found (almost) no tests: " + result.stdout[-2000:]
    assert re.search(r"^# fail 0$", result.stdout, re.MULTILINE)


def test_connects_with_subprotocol_auth_and_streams_a_typed_reply(page: Page, server: LiveServer) -> None:
    open_playground(page, server)
    expect(page.locator("#model option")).to_have_count(1)
    page.select_option("#modalities", "text")
    connect(page)
    page.fill("#text-input", "Hello from the browser")
    page.click("#send")
    assistant = page.locator('.entry[data-role="assistant"] .text')
    expect(assistant).to_have_text("You said: Hello from the browser")
    expect(page.locator('.entry[data-role="user"] .text')).to_have_text("Hello from the browser")
    expect(page.locator("#usage-table tbody tr")).to_have_count(1)
    # the page prices usage with the server's price table: its cost is the spend record's
    expect(page.locator("#usage-table tbody tr")).to_have_attribute("data-status", "completed")
    record = newest_response(server, lambda r: (r.get("response") or {}).get("output_text")
                             == "You said: Hello from the browser")
    expect(page.locator("#session-cost")).to_have_text(f"${record['cost_usd']:.6f}")
    expect(page.locator('.log-entry[data-type="response.output_text.delta"] .log-count')).to_be_visible()


@pytest.mark.parametrize("listener_index", [0, 1])
def test_both_listeners_work_from_the_page(page: Page, server: LiveServer, listener_index: int) -> None:
    open_playground(page, server)
    expect(page.locator("#listener option")).to_have_count(2)
    page.select_option("#listener", index=listener_index)
    page.select_option("#modalities", "text")
    connect(page)
    page.fill("#text-input", "ping")
    page.click("#send")
    expect(page.locator('.entry[data-role="assistant"] .text')).to_have_text("You said: ping")


def test_voice_turn_with_the_fake_microphone(page: Page, server: LiveServer) -> None:
    open_playground(page, server)
    page.select_option("#modalities", "audio")
    page.select_option("#turn", "server_vad")
    connect(page)
    page.click("#mic")
    log = page.locator("#event-log")
    expect(log.locator('[data-type="input_audio_buffer.speech_started"]').first).to_be_attached(timeout=20_000)
    expect(log.locator('[data-type="input_audio_buffer.speech_stopped"]').first).to_be_attached(timeout=20_000)
    # the offline model hears the words (pocketsphinx) and the spoken request calls the page's tool
    voice = page.locator('.entry[data-kind="voice"] .text').first
    expect(voice).to_have_text("What is the weather in Paris?", timeout=20_000)
    card = page.locator(".tool-card").first
    expect(card.locator(".tool-name")).to_have_text("get_weather", timeout=20_000)
    expect(card.locator(".tool-args")).to_have_text('{\n  "city": "Paris"\n}')
    # the input meter moves while the (fake) microphone speaks
    page.wait_for_function("() => parseFloat(document.querySelector('#level').style.width) > 5", timeout=20_000)
    page.click("#mic")  # stop, so the loop of the fake microphone does not ask again
    card.locator(".tool-result").fill('{"temp_c": 18}')
    card.locator(".tool-send").click()
    reply = page.locator('.entry[data-role="assistant"] .text').last
    expect(reply).to_have_text('get_weather returned {"temp_c": 18}', timeout=20_000)
    expect(log.locator('[data-type="response.output_audio.delta"]').first).to_be_attached()
    # the cost the page shows is the spend log's: the responses and the input transcription(s),
    # billed apart at the transcription model's price (the shipped config's listed one)
    transcribed = page.locator('#usage-table tbody tr[data-kind="transcription"]')
    expect(transcribed.first).to_be_attached()
    page.wait_for_function("() => !window.rtproxyPlayground.state().responding")
    page.wait_for_timeout(1000)  # the microphone is off: nothing more is billed
    session_id = newest_response(server, lambda r: (r.get("response") or {}).get("output_transcript")
                                 == 'get_weather returned {"temp_c": 18}')["session_id"]
    page.click("#disconnect")
    expect(page.locator("#status")).to_contain_text("Disconnected")
    records = spend_records(server, session_id, "session")
    (session,) = records
    heard = spend_records(server, session_id, "transcription")
    assert heard and session["cost_usd"] > sum(r["cost_usd"] for r in spend_records(server, session_id, "response"))
    assert heard[0]["transcription_model"] == "gpt-4o-transcribe"  # the one the gateway lists, so priced alike
    expect(transcribed).to_have_count(len(heard))
    for row, record in zip(transcribed.all(), sorted(heard, key=lambda r: r["start_time"]), strict=True):
        expect(row.locator("td").last).to_have_text(f"${record['cost_usd']:.6f}")
    expect(page.locator("#session-cost")).to_have_text(f"${session['cost_usd']:.6f}")


def spend_records(server: LiveServer, session_id: str, record: str) -> list[dict[str, Any]]:
    """One session's records of a kind (its session record: once it is written)."""
    deadline = time.monotonic() + 10
    while True:
        found = httpx.get(f"{server.url}/spend/logs", params={"session_id": session_id, "record": record, "limit": 100},
                          headers={"Authorization": f"Bearer {USER_KEY}"}).json()["data"]
        if found or record != "session":
            return found  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, "no session record"
        time.sleep(0.05)


def newest_response(server: LiveServer, wanted: Any) -> dict[str, Any]:
    """The newest response record ``wanted`` accepts: tests share the server, and a record may
    land a moment after the page shows its response, so the newest is not always this test's."""
    deadline = time.monotonic() + 10
    while True:
        records = httpx.get(f"{server.url}/spend/logs", params={"record": "response", "limit": 20},
                            headers={"Authorization": f"Bearer {USER_KEY}"}).json()["data"]
        for r in records:
            if wanted(r):
                return r  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, "no such response record"
        time.sleep(0.05)


def recorded_tool_call(server: LiveServer, call_id: str) -> dict[str, Any]:
    """The tool call the gateway recorded under ``call_id`` (waiting for its record to land)."""
    record = newest_response(server, lambda r: any(
        c.get("id") == call_id for c in (r.get("response") or {}).get("tool_calls") or ()))
    return next(c for c in record["response"]["tool_calls"] if c["id"] == call_id)  # type: ignore[no-any-return]


def test_tool_call_card_and_typed_result_continue_the_conversation(page: Page, server: LiveServer) -> None:
    open_playground(page, server)
    page.select_option("#modalities", "text")
    connect(page)
    page.fill("#text-input", "What's the weather in Paris? use get_weather")
    page.click("#send")
    card = page.locator(".tool-card")
    expect(card.locator(".tool-name")).to_have_text("get_weather")
    # the card shows the call id the model sent, as the gateway recorded it (the record lands a
    # moment after the card, and an earlier test's tool call may still be the newest record)
    expect(card.locator(".tool-call-id")).to_have_text(re.compile(r"^call_\w+$"))
    call = recorded_tool_call(server, card.locator(".tool-call-id").inner_text().strip())
    assert call["function"]["name"] == "get_weather"
    expect(card.locator(".tool-args")).to_have_text('{\n  "city": "Paris"\n}')
    card.locator(".tool-result").fill('{"temp_c": 18}')
    card.locator(".tool-send").click()
    expect(page.locator('.entry[data-role="assistant"] .text').last).to_have_text('get_weather returned {"temp_c": 18}')
    expect(card.locator(".tool-output")).to_have_text('→ {"temp_c": 18}')
    # answered: the answer box is gone, not just its button disabled
    expect(card.locator(".tool-result")).to_be_hidden()
    expect(card.locator(".tool-send")).to_be_hidden()


def test_invalid_tools_json_is_caught_before_sending(page: Page, server: LiveServer) -> None:
    open_playground(page, server)
    page.fill("#tools", '[{"name": "has space"}]')
    expect(page.locator("#tools-error")).to_contain_text("tools[0].name")
    page.click("#connect")
    expect(page.locator("#status")).to_have_text("Fix the tools JSON first.")


def test_wrong_key_says_so_in_words_for_a_browser_and_a_new_key_keeps_the_connect_error(
        page: Page, server: LiveServer) -> None:
    open_playground(page, server, key="not-a-valid-key-0000")
    expect(page.locator("#key-status")).to_have_text("That key is not valid for this gateway.")
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "error")
    expect(page.locator("#status")).to_have_text("Refused (401): that key is not valid for this gateway")
    expect(page.locator("#status")).not_to_contain_text("Authorization")  # no header advice for a browser
    page.fill("#key", USER_KEY)
    page.locator("#key").dispatch_event("change")
    expect(page.locator("#key-status")).to_contain_text("Key accepted")
    expect(page.locator("#status")).to_have_text("Refused (401): that key is not valid for this gateway")


def test_the_page_sends_an_ephemeral_token_never_the_key(page: Page, server: LiveServer) -> None:
    open_playground(page, server)
    sent = page.evaluate("""() => {
        const original = window.WebSocket;
        window.__offered = [];
        window.WebSocket = function (url, protocols) { window.__offered.push(protocols); return new original(url, protocols); };
        window.WebSocket.prototype = original.prototype;
        Object.assign(window.WebSocket, { OPEN: 1, CLOSED: 3, CONNECTING: 0, CLOSING: 2 });
        return true;
    }""")
    assert sent
    page.select_option("#modalities", "text")
    connect(page)
    offered = page.evaluate("window.__offered")[0]
    assert offered[0] == "realtime"
    token = offered[1].removeprefix("openai-insecure-api-key.")
    assert token.startswith("ek_") and USER_KEY not in "".join(offered)
    page.fill("#text-input", "with a token")
    page.click("#send")
    expect(page.locator('.entry[data-role="assistant"] .text')).to_have_text("You said: with a token")
    record = newest_response(server, lambda r: (r.get("response") or {}).get("output_text")
                             == "You said: with a token")
    assert record["key_name"] == "user"  # billed to the parent key


def test_the_key_lives_in_this_tabs_session_storage_only(page: Page, server: LiveServer, browser) -> None:  # type: ignore[no-untyped-def]
    open_playground(page, server)
    connect(page)
    stored = page.evaluate("""() => ({
        session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)),
        local: Object.keys(localStorage).map((k) => localStorage.getItem(k)),
        cookie: document.cookie, url: location.href, history: history.length })""")
    assert USER_KEY in stored["session"]
    assert not any(USER_KEY in (v or "") for v in stored["local"]) and USER_KEY not in stored["cookie"]
    assert USER_KEY not in stored["url"]
    # another tab of the same browser profile does not get it
    other = page.context.new_page()
    other.goto(server.url + "/")
    assert other.evaluate("() => Object.keys(sessionStorage).length") == 0
    expect(other.locator("#key")).to_have_value("")
    other.close()


@pytest.fixture
def barge_in_page(browser, server: LiveServer, tmp_path: Path) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """A browser whose microphone asks a question, pauses, and speaks again: the second
    utterance starts while the reply (its words read back, about 3 s of audio; the page's tools
    are cleared so that no tool is called) is playing, after the model has heard the question
    (about 1 s) and begun to answer."""
    wav = mic_wav(tmp_path / "barge-in.wav", silence(0.5),
                  spoken("What is the weather in Paris?"),
                  silence(3.0), voiced(2.0), silence(3.0))
    b = browser.browser_type.launch(executable_path=CHROMIUM,
                                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"])
    try:
        yield from checked_page(b)
    finally:
        b.close()


def test_speaking_over_the_reply_truncates_what_was_not_heard(barge_in_page: Page, server: LiveServer) -> None:
    """Barge-in: the user speaks again while the reply's audio plays; the page tells the server
    how much of the reply was heard (conversation.item.truncate), less than it received."""
    page = barge_in_page
    open_playground(page, server)
    page.fill("#tools", "[]")
    page.select_option("#modalities", "audio")
    page.select_option("#turn", "server_vad")
    connect(page)
    page.click("#mic")
    log = page.locator("#event-log")
    expect(log.locator('[data-type="response.output_audio.delta"]').first).to_be_attached(timeout=20_000)
    truncate = log.locator('[data-direction="client"][data-type="conversation.item.truncate"]').first
    expect(truncate).to_be_attached(timeout=30_000)
    sent = json.loads(truncate.locator("pre").first.text_content() or "{}")
    assert sent["content_index"] == 0 and sent["item_id"]
    assert sent["audio_end_ms"] > 0  # some of the reply was heard before the user spoke again
    # the bubble shows what was heard, marked interrupted; the whole reply stays in its title
    bubble = page.locator('.entry[data-status="interrupted"] .text').first
    expect(bubble).to_be_attached(timeout=10_000)
    full = bubble.get_attribute("title") or ""
    assert full.startswith("interrupted after ")
    shown = bubble.text_content() or ""
    assert len(shown) < len(full.split(": ", 1)[1])
    mark = page.evaluate("(el) => getComputedStyle(el, '::after').content", bubble.element_handle())
    assert "interrupted" in mark
    page.click("#mic")


def connect_live(page: Page, delegation: str) -> None:
    page.select_option("#api", "live")
    expect(page.locator("#model option")).to_have_text(["gpt-live-1 — GPT-Live (offline)"])
    page.select_option("#delegation", delegation)
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "ok")
    expect(page.locator("#status")).to_contain_text("Connected (GPT-Live live_")


def test_live_mode_speaks_with_the_microphone_and_the_page_answers_a_client_delegation(
        page: Page, server: LiveServer) -> None:
    open_playground(page, server)
    connect_live(page, "client")
    page.click("#mic")  # the fake microphone says "What is the weather in Paris?"
    voice = page.locator('.entry[data-kind="voice"][data-role="user"] .text').first
    expect(voice).to_have_text("What is the weather in Paris?", timeout=20_000)  # heard by pocketsphinx
    card = page.locator('.tool-card[data-kind="delegation"]').first
    expect(card.locator(".tool-name")).to_have_text("(the last turn)", timeout=20_000)
    card.locator(".tool-result").fill("It is sunny in Paris.")
    card.locator(".tool-send").click()
    said = page.locator('.entry[data-kind="voice"][data-role="assistant"] .text')
    expect(said.last).to_contain_text("It is sunny in Paris.", timeout=20_000)
    expect(page.locator('.log-entry[data-type="session.output_audio.delta"]').first).to_be_attached()
    page.wait_for_function("() => parseInt(document.querySelector('#live-seconds').textContent) > 0", timeout=20_000)
    expect(page.locator("#live-voice-cost")).not_to_have_text("n/a")
    page.click("#mic")
    page.click("#disconnect")
    expect(page.locator("#status")).to_contain_text("s billed.")
    records = httpx.get(f"{server.url}/spend/logs", params={"record": "session", "limit": 5},
                        headers={"Authorization": f"Bearer {USER_KEY}"}).json()["data"]
    live = next(r for r in records if r.get("api") == "live")
    assert live["seconds_source"] == "session.closed" and live["credential"] == "ephemeral_token"
    seconds = int(page.locator("#live-seconds").text_content() or "0")
    assert live["seconds"] == seconds  # the page and the spend log agree on what was billed


@pytest.mark.parametrize("width", [800, 1280])
def test_live_mode_client_delegation_answers_typed_text_through_the_page(sized_page: Page, server: LiveServer,
                                                                          width: int) -> None:
    """Client delegation: the app is the backend. Typed text is a task for it, not words for the voice
    to read back: silent context for the voice model, a card here, and the card's answer spoken."""
    page = sized_page
    open_playground(page, server)
    page.select_option("#api", "live")
    page.select_option("#delegation", "client")
    expect(page.locator("#delegation-help")).to_have_text(
        "This page is the backend: what you say or type comes here as a card, and the answer you type there is spoken.")
    # what does not apply to a client delegation is not offered: it has no backend model and no tools
    expect(page.locator("#tools")).to_be_hidden()
    expect(page.locator("#backend-model")).to_be_hidden()
    connect_live(page, "client")
    page.fill("#text-input", "What is the weather in Paris?")
    page.click("#send")
    expect(page.locator('.entry[data-kind="text"][data-role="user"] .text')).to_have_text("What is the weather in Paris?")
    card = page.locator('.tool-card[data-kind="delegation"]')
    expect(card.locator(".tool-name")).to_have_text("(what you typed)")
    expect(card.locator(".tool-args")).to_have_text("What is the weather in Paris?")
    sent = page.locator('.log-entry[data-direction="client"][data-type="session.thinking.append"] pre')
    assert json.loads(sent.text_content() or "{}")["delegation_id"] is None
    card.locator(".tool-result").fill("It is sunny in Paris.")
    card.locator(".tool-send").click()
    expect(card.locator(".tool-output")).to_have_text("→ It is sunny in Paris.")
    said = page.locator('.entry[data-kind="voice"][data-role="assistant"] .text')
    expect(said.last).to_have_text("It is sunny in Paris.")
    # the question was never read back aloud
    expect(said.filter(has_text="weather")).to_have_count(0)
    expect(page.locator("#delegation")).to_be_disabled()  # fixed for the session
    page.click("#disconnect")
    expect(page.locator("#status")).to_contain_text("s billed.")


@pytest.mark.parametrize("width", [800, 1280])
def test_live_mode_responses_delegation_answers_a_typed_question_with_the_sessions_tool(
        sized_page: Page, server: LiveServer, width: int) -> None:
    """Responses delegation: the question names no tool; the backend calls the one it is about, as
    the same sentence does in a Realtime session."""
    page = sized_page
    open_playground(page, server)
    page.select_option("#api", "live")
    page.select_option("#delegation", "responses")
    expect(page.locator("#delegation-help")).to_have_text(
        "A backend model answers what you say or type (and calls the Tools); the voice speaks its answer.")
    expect(page.locator("#tools")).to_be_visible()
    expect(page.locator("#backend-model")).to_be_visible()
    connect_live(page, "responses")
    page.fill("#text-input", "What is the weather in Paris?")
    page.click("#send")
    card = page.locator('.tool-card[data-kind="tool_call"]')
    expect(card.locator(".tool-name")).to_have_text("get_weather")
    expect(card.locator(".tool-args")).to_have_text('{\n  "city": "Paris"\n}')
    card.locator(".tool-result").fill('{"temp_c": 18}')
    card.locator(".tool-send").click()
    said = page.locator('.entry[data-kind="voice"][data-role="assistant"] .text').last
    expect(said).to_contain_text('get_weather returned {"temp_c": 18}')
    page.wait_for_function("() => parseInt(document.querySelector('#live-tokens').textContent) > 0")
    page.click("#disconnect")
    expect(page.locator("#status")).to_contain_text("s billed.")


@pytest.mark.parametrize("width", [800, 1280])
def test_the_event_log_follows_new_events_unless_scrolled_up(sized_page: Page, server: LiveServer, width: int) -> None:
    page = sized_page
    open_playground(page, server)
    page.select_option("#modalities", "text")
    connect(page)
    for i in range(6):
        page.fill("#text-input", f"message {i}")
        page.click("#send")
        expect(page.locator('.entry[data-role="assistant"] .text')).to_have_count(i + 1)
    scrolled = "() => { const b = document.querySelector('#event-log'); return [b.scrollTop, b.scrollHeight, b.clientHeight]; }"
    _, height, shown = page.evaluate(scrolled)
    assert height > shown + 200, "the log does not scroll by itself"
    page.wait_for_function("() => { const b = document.querySelector('#event-log');"
                           " return b.scrollHeight - b.scrollTop - b.clientHeight < 2; }")  # at the newest event
    page.evaluate("() => { document.querySelector('#event-log').scrollTop = 0; }")
    page.fill("#text-input", "one more")
    page.click("#send")
    expect(page.locator('.entry[data-role="assistant"] .text')).to_have_count(7)
    expect(page.locator('.log-entry[data-type="response.done"]').last).to_contain_text("response.done")
    page.wait_for_timeout(300)
    assert page.evaluate(scrolled)[0] == 0  # left where the reader is
    page.evaluate("() => { const b = document.querySelector('#event-log'); b.scrollTop = b.scrollHeight; }")
    page.fill("#text-input", "and again")
    page.click("#send")
    expect(page.locator('.entry[data-role="assistant"] .text')).to_have_count(8)
    page.wait_for_function("() => { const b = document.querySelector('#event-log');"
                           " return b.scrollHeight - b.scrollTop - b.clientHeight < 2; }")  # following again


@pytest.mark.parametrize("width", [800, 1280])
def test_with_no_key_the_page_says_where_the_key_comes_from(sized_page: Page, server: LiveServer, width: int) -> None:
    page = sized_page
    page.goto(f"{server.url}/")
    hint = page.locator("#conversation-hint")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text("make run")
    expect(hint).to_contain_text(f"{server.url}/#key=")
    expect(page.locator("#model option")).to_have_text(["(enter a key to list your models)"])
    page.fill("#key", USER_KEY)
    page.locator("#key").dispatch_event("change")
    expect(page.locator("#model option")).to_have_text(["gpt-realtime — OpenAI (offline)"])
    expect(hint).to_be_hidden()


#: Each visible select of the connection panel whose options do not fit it: [id, option, text px, room px].
CUT_OPTIONS = """() => {
  const ctx = document.createElement('canvas').getContext('2d');
  const cut = [];
  for (const s of document.querySelectorAll('#connection-panel select')) {
    if (!s.offsetParent) continue;
    const st = getComputedStyle(s);
    ctx.font = st.font;
    const room = s.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight) - 20;  // the arrow
    for (const o of s.options) {
      const w = ctx.measureText(o.text).width;
      if (w > room) cut.push([s.id, o.text, Math.round(w), Math.round(room)]);
    }
  }
  return cut;
}"""
#: The logs filter bar: inputs whose placeholder is cut, and whether Show and Follow share one line.
FILTER_BAR = """() => {
  const ctx = document.createElement('canvas').getContext('2d');
  const cut = [];
  for (const i of document.querySelectorAll('#filters input[placeholder]')) {
    const st = getComputedStyle(i);
    ctx.font = st.font;
    const room = i.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight);
    if (ctx.measureText(i.placeholder).width > room) cut.push(i.id);
  }
  const show = document.getElementById('apply-filters').getBoundingClientRect();
  const follow = document.getElementById('follow').getBoundingClientRect();
  const line = parseFloat(getComputedStyle(document.getElementById('apply-filters')).lineHeight);
  return { cut, sameRow: Math.abs((show.top + show.bottom) / 2 - (follow.top + follow.bottom) / 2) < 6,
           showOnOneLine: show.height < 2 * line };
}"""


@pytest.mark.parametrize("width", [800, 1280, 1440])
def test_both_pages_are_usable_from_800_pixels_wide(browser, server: LiveServer, width: int) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/#key={USER_KEY}")
        expect(page.locator("#model option")).to_have_count(1)
        for panel in ("#connection-panel", "#conversation-panel", "#events-panel"):
            box = page.locator(panel).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (panel, box)
        # no setting's label is cut: the listener says its name and port (its URL in full below), the
        # transport its name (what it means below)
        for api in ("realtime", "live"):
            page.select_option("#api", api)
            assert page.evaluate(CUT_OPTIONS) == [], api
        page.select_option("#api", "realtime")
        expect(page.locator("#listener-url")).to_have_text(re.compile(r"^ws://127\.0\.0\.1:\d+/v1/realtime$"))
        for note in ("#listener-url", "#transport-note"):
            assert page.evaluate(f"() => {{ const n = document.querySelector('{note}');"
                                 " return n.scrollWidth <= n.clientWidth; }")
        page.select_option("#transport", "webrtc")
        expect(page.locator("#transport-note")).to_contain_text("the gateway authorizes, watches and bills the call")
        page.goto(f"{server.url}/logs#key={USER_KEY}")
        for column in ("time (UTC)", "cost", "status"):
            header = page.locator("#sessions th", has_text=column).first
            box = header.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width + 1, (column, box)
        # the filter bar: every placeholder whole, Show and Follow together on one line
        assert page.evaluate(FILTER_BAR) == {"cut": [], "sameRow": True, "showOnOneLine": True}
    finally:
        context.close()


def test_a_webrtc_call_from_the_page_is_heard_calls_the_tool_and_is_billed_by_the_gateways_sideband(
        page: Page, server: LiveServer) -> None:
    """The WebRTC transport: an ek_ token, RTCPeerConnection with the microphone track, the
    offer through the gateway, events on the data channel, the model's voice on the remote
    track — and the spend records written by the gateway's own sideband."""
    open_playground(page, server)
    page.select_option("#transport", "webrtc")
    page.select_option("#modalities", "audio")
    page.select_option("#turn", "server_vad")
    page.click("#connect")
    expect(page.locator("#status")).to_contain_text("Connected over WebRTC to gpt-realtime (rtc_", timeout=30_000)
    page.click("#mic")  # the fake microphone says "What is the weather in Paris?" into the call's track
    # (the fake microphone loops its file: the track may open mid-sentence, so a first turn can
    # be the sentence's tail; the next is whole)
    voice = page.locator('.entry[data-kind="voice"] .text').filter(has_text="What is the weather in Paris?")
    expect(voice.first).to_be_visible(timeout=40_000)
    card = page.locator(".tool-card").first
    expect(card.locator(".tool-name")).to_have_text("get_weather", timeout=20_000)
    expect(card.locator(".tool-args")).to_have_text('{\n  "city": "Paris"\n}')
    page.click("#mic")
    card.locator(".tool-result").fill('{"temp_c": 18}')
    card.locator(".tool-send").click()
    reply = page.locator('.entry[data-role="assistant"] .text').last
    expect(reply).to_have_text('get_weather returned {"temp_c": 18}', timeout=20_000)
    log = page.locator("#event-log")
    expect(log.locator('[data-type="output_audio_buffer.started"]').first).to_be_attached(timeout=20_000)
    assert not log.locator('[data-type="response.output_audio.delta"]').count()  # audio is on the track
    # Opus both ways: the microphone went out and the model's voice came in
    page.wait_for_function("async () => { const s = await window.rtproxyPlayground.rtcStats();"
                           " return s && s.sent > 2000 && s.received > 2000; }", timeout=20_000)
    page.click("#disconnect")
    expect(page.locator("#status")).to_have_text("Hung up.")
    answered = newest_response(server, lambda r: r.get("transport") == "webrtc"
                               and (r.get("response") or {}).get("output_transcript") == 'get_weather returned {"temp_c": 18}')
    asked = newest_response(server, lambda r: r.get("transport") == "webrtc" and r["session_id"] == answered["session_id"]
                            and (r.get("response") or {}).get("tool_calls"))
    assert asked["response"]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert answered["cost_usd"] > 0 and answered["key_name"] == "user"
    # the logs viewer labels the call, and reads the user's hang-up as one (not "closed by upstream")
    (session,) = spend_records(server, answered["session_id"], "session")
    assert session["transport"] == "webrtc" and session["close"]["by"] == "upstream"
    page.goto(f"{server.url}/logs")
    row = page.locator(f'#sessions tbody tr[data-session="{answered["session_id"]}"]')
    expect(row.locator(".badge.transport")).to_have_text("WebRTC")
    row.click()
    closed = page.locator("#d-summary dt", has_text="closed by").locator("xpath=following-sibling::dd[1]")
    expect(closed).to_have_text("the call was hung up (1000)")


# -- a Gemini-backed model (the offline model speaking Gemini Live, translated by the gateway) ---

@pytest.fixture(scope="module")
def gemini_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose config also has ``gemini-live`` (kept apart: the tests above count models)."""
    yield from live_server(tmp_path_factory.mktemp("gemini-server"), gemini=True)


@pytest.fixture
def wide_page(browser) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    yield from checked_page(browser, width=1280)


def open_gemini_session(page: Page, server: LiveServer, modalities: str) -> None:
    open_playground(page, server)
    options = page.locator("#model option")
    expect(options).to_have_text(["gpt-realtime — OpenAI (offline)", "gemini-live — Gemini Live (offline)"])
    page.select_option("#model", "gemini-live")
    # a Gemini Live upstream has no WebRTC calls: the page does not offer one
    expect(page.locator('#transport option[value="webrtc"]')).to_be_disabled()
    expect(page.locator("#model-note")).to_have_text(
        "Served by Gemini Live (offline), translated by the gateway: WebSocket only; instructions are per session.")
    page.select_option("#modalities", modalities)
    connect(page)
    expect(page.locator("#status")).to_contain_text("to gemini-live.")


def test_a_gemini_backed_model_answers_a_typed_question_and_the_usage_table_prices_it(
        wide_page: Page, gemini_server: LiveServer) -> None:
    page = wide_page
    open_gemini_session(page, gemini_server, "text")
    page.fill("#text-input", "What is the capital of France?")
    page.click("#send")
    expect(page.locator('.entry[data-role="assistant"] .text')).to_have_text("You said: What is the capital of France?")
    row = page.locator("#usage-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "completed")
    record = newest_response(gemini_server, lambda r: (r.get("response") or {}).get("output_text")
                             == "You said: What is the capital of France?")
    assert record["model"] == "gemini-live" and record["cost_usd"] > 0
    # the page prices Gemini's usage (translated to Realtime's) at the server's price: the record's
    # cost, to the dollar's millionth the page shows (JS and Python may round a last 5 apart)
    for cost in (row.locator("td").last, page.locator("#session-cost")):
        expect(cost).to_have_text(re.compile(r"^\$\d+\.\d{6}$"))
        assert abs(float((cost.text_content() or "")[1:]) - record["cost_usd"]) <= 0.5e-6 + 1e-12
    for panel in ("#connection-panel", "#conversation-panel", "#events-panel"):  # all three side by side
        box = page.locator(panel).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1281, (panel, box)


def test_a_voice_turn_on_a_gemini_backed_model_is_heard_answered_and_its_transcript_shown(
        page: Page, gemini_server: LiveServer) -> None:
    open_gemini_session(page, gemini_server, "audio")
    page.select_option("#turn", "server_vad")
    page.click("#apply")
    page.click("#mic")  # the fake microphone says "What is the weather in Paris?"
    voice = page.locator('.entry[data-kind="voice"] .text').filter(has_text="What is the weather in Paris?")
    expect(voice.first).to_be_visible(timeout=30_000)
    card = page.locator(".tool-card").first
    expect(card.locator(".tool-name")).to_have_text("get_weather", timeout=20_000)
    page.click("#mic")
    card.locator(".tool-result").fill('{"temp_c": 18}')
    card.locator(".tool-send").click()
    reply = page.locator('.entry[data-role="assistant"] .text').last
    expect(reply).to_have_text('get_weather returned {"temp_c": 18}', timeout=20_000)
    log = page.locator("#event-log")  # Gemini's audio and its transcript, as Realtime events
    expect(log.locator('[data-type="response.output_audio.delta"]').first).to_be_attached()
    expect(log.locator('[data-type="response.output_audio_transcript.delta"]').first).to_be_attached()


def test_what_gemini_cannot_do_comes_back_as_a_readable_error_and_the_session_goes_on(
        page: Page, gemini_server: LiveServer) -> None:
    open_playground(page, gemini_server)
    page.evaluate("""() => {
        const original = window.WebSocket;
        window.WebSocket = function (url, protocols) { window.__socket = new original(url, protocols); return window.__socket; };
        window.WebSocket.prototype = original.prototype;
        Object.assign(window.WebSocket, { OPEN: 1, CLOSED: 3, CONNECTING: 0, CLOSING: 2 });
    }""")
    page.select_option("#model", "gemini-live")
    page.select_option("#modalities", "text")
    connect(page)
    # per-response instructions (a Realtime client may send them; the page has no field for it)
    page.evaluate("""() => window.__socket.send(JSON.stringify({ type: "response.create",
        response: { instructions: "Answer in French." } }))""")
    error = page.locator('.entry[data-kind="error"]')
    expect(error.locator(".who")).to_have_text("Server error")
    expect(error.locator(".text")).to_have_text(re.compile(
        r"^Gemini Live fixes instructions for the whole session.* \(response\.instructions; unsupported_parameter\)$"))
    expect(page.locator("#status")).to_have_attribute("data-state", "error")
    expect(page.locator("#status")).to_contain_text("Server error: Gemini Live fixes instructions")
    page.fill("#text-input", "still there?")
    page.click("#send")
    expect(page.locator('.entry[data-role="assistant"] .text')).to_have_text("You said: still there?")
