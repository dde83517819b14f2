"""Regenerate docs/playground.png, docs/logs.png, docs/dashboard.png and docs/usage.png: a real
server, real Chromium, real sessions.

    .venv/bin/python scripts/screenshots.py          # all four
    .venv/bin/python scripts/screenshots.py usage    # docs/usage.png alone
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
KEY = "screenshot-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session(page, url: str, key: str, text: str | None) -> None:  # type: ignore[no-untyped-def]
    """A session through the playground with ``key``: a typed turn (``text``), or the microphone's
    sentence, its tool call answered (``None``)."""
    page.goto("about:blank")  # from the playground to the playground with another #key= would not load the page again
    page.goto(f"{url}/#key={key}")
    if text is not None:
        page.select_option("#modalities", "text")
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "ok")
    if text is None:
        page.click("#mic")
        card = page.locator(".tool-card").first
        expect(card.locator(".tool-name")).to_have_text("get_weather", timeout=20000)
        page.click("#mic")
        card.locator(".tool-result").fill('{"temp_c": 18}')
        card.locator(".tool-send").click()
        expect(page.locator('.entry[data-role="assistant"]').last).to_contain_text("returned", timeout=20000)
    else:
        page.fill("#text-input", text)
        page.click("#send")
        expect(page.locator('.entry[data-role="assistant"]').last).to_contain_text("You said")
    page.click("#disconnect")
    expect(page.locator("#status")).to_contain_text("Disconnected")


def usage_picture(page, url: str) -> None:  # type: ignore[no-untyped-def]
    """The Usage page this month: keys of a team (made through the admin API) and the demo key,
    each with sessions of its own."""
    admin = {"Authorization": f"Bearer {KEY}"}
    httpx.post(f"{url}/admin/teams", headers=admin, timeout=10,
               json={"name": "support", "max_budget_usd": 25, "budget_period": "monthly"}).raise_for_status()
    secrets = {}
    for name, terms in (("support-bot", {"team": "support", "max_budget_usd": 10, "budget_period": "monthly"}),
                        ("voice-agent", {"team": "support"}), ("batch-jobs", {})):
        r = httpx.post(f"{url}/admin/keys", headers=admin, timeout=10, json={"name": name, **terms})
        r.raise_for_status()
        secrets[name] = r.json()["secret"]
    session(page, url, secrets["voice-agent"], None)  # spoken: audio minutes too
    for name, texts in (("support-bot", ("Where is my order?", "Can I change the address?", "Thanks!")),
                        ("batch-jobs", ("Summarise the call",)), ("voice-agent", ("Hello again",))):
        for text in texts:
            session(page, url, secrets[name], text)
    session(page, url, KEY, "How are you?")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{url}/usage#key={KEY}")
    expect(page.locator("#top-keys tbody tr")).to_have_count(4)
    expect(page.locator("#chart-latency svg")).to_have_count(1)
    page.screenshot(path=str(ROOT / "docs" / "usage.png"), full_page=True)


def main(only: set[str] | None = None) -> None:
    tmp = Path(tempfile.mkdtemp())
    port, rt = free_port(), free_port()
    (tmp / "config.toml").write_text(textwrap.dedent(f"""
        [server]
        port = {port}
        realtime_port = {rt}
        [spend_log]
        path = "spend.jsonl"
        [[models]]
        name = "gpt-realtime"
        provider = "local"
        # as in the shipped config: the playground's input transcription is then priced on the page too
        [[models]]
        name = "gpt-4o-mini-transcribe"
        provider = "local"
        api = "transcription"
        [[keys]]
        name = "demo"
        key = "env:SHOT_KEY"
        role = "admin"
    """))
    sys.path.insert(0, str(ROOT))
    from tests.browser import speech_wav  # the tests' recorded sentence, in the offline model's voice

    wav = speech_wav(tmp / "speech.wav")
    server = subprocess.Popen([str(Path(sys.executable).parent / "rtproxy"), "serve", "--config", str(tmp / "config.toml")],
                              env={**os.environ, "SHOT_KEY": KEY}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{url}/health")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            if only == {"usage"}:
                usage_picture(page, url)
                browser.close()
                return
            page.goto(f"{url}/#key={KEY}")
            page.click("#connect")
            expect(page.locator("#status")).to_have_attribute("data-state", "ok")
            page.click("#mic")  # "What is the weather in Paris?": heard, and the page's tool called
            card = page.locator(".tool-card").first
            expect(card.locator(".tool-name")).to_have_text("get_weather", timeout=20000)
            page.click("#mic")
            card.locator(".tool-result").fill('{"temp_c": 18, "sky": "clear"}')
            card.locator(".tool-send").click()
            expect(page.locator('.entry[data-role="assistant"]').last).to_contain_text("returned", timeout=20000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ROOT / "docs" / "playground.png"))
            page.click("#disconnect")
            page.goto(f"{url}/logs")
            page.locator("#sessions tbody tr").first.click()
            expect(page.locator("#d-tool-calls .tool-call")).to_have_count(1)
            page.locator("#d-tool-calls").scroll_into_view_if_needed()
            page.screenshot(path=str(ROOT / "docs" / "logs.png"))
            # the dashboard: a few more sessions, so the charts have something to show
            for text in ("Hello there", "How are you?", "What time is it?"):
                page.goto(f"{url}/#key={KEY}")
                page.select_option("#modalities", "text")
                page.click("#connect")
                expect(page.locator("#status")).to_have_attribute("data-state", "ok")
                page.fill("#text-input", text)
                page.click("#send")
                expect(page.locator('.entry[data-role="assistant"]').last).to_contain_text("You said")
                page.click("#disconnect")
            page.set_viewport_size({"width": 1440, "height": 1500})  # the whole dashboard, totals included
            page.goto(f"{url}/logs")
            page.locator("#dashboard summary").click()
            page.select_option("#dash-by", "model")
            expect(page.locator("#chart-latency svg")).to_have_count(1)
            page.locator("#dashboard").screenshot(path=str(ROOT / "docs" / "dashboard.png"))
            usage_picture(page, url)
            browser.close()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    wanted = set(sys.argv[1:])
    if wanted - {"usage"}:
        sys.exit(f"usage: {sys.argv[0]} [usage]   (no argument: every picture)")
    main(wanted or None)
