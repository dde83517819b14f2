"""The Keys page (/keys) in real headless Chromium against a real server process: keys and teams
made, changed, rotated, revoked and deleted through the page, checked by what the page shows, by
the admin API and by using the secrets it showed."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from playwright.sync_api import Locator, Page, expect

from .browser import LiveServer, checked_page as shared_checked_page, module_browser, live_server
from .conftest import ADMIN_KEY, USER_KEY
from .helpers import auth_headers, text_turn, ws_connect

NAME_RULE = "name: 1 to 100 characters: letters, digits and . _ : @ + - (starting with a letter or digit)"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of each test's own (and its own ledger): no test sees another's keys."""
    yield from live_server(tmp_path)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    yield from module_browser()


def checked_page(browser, width: int = 1440, height: int = 900) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    yield from shared_checked_page(browser, width, height, timeout_ms=10_000, clipboard=True)


@pytest.fixture
def page(browser, server: LiveServer) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """Closed before its server stops (an open keep-alive connection would hold the server's shutdown)."""
    yield from checked_page(browser)


# -- the API and the secrets, from outside the page ----------------------------------------------------

def admin(server: LiveServer, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", headers=auth_headers(ADMIN_KEY), timeout=10,
                         content=None if body is None else json.dumps(body))


def make_key(server: LiveServer, name: str, **terms: Any) -> dict[str, Any]:
    r = admin(server, "POST", "/admin/keys", {"name": name, **terms})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def make_team(server: LiveServer, name: str, **terms: Any) -> dict[str, Any]:
    r = admin(server, "POST", "/admin/teams", {"name": name, **terms})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def models_status(server: LiveServer, secret: str) -> int:
    """What the gateway answers a client presenting ``secret``."""
    return httpx.get(f"{server.url}/v1/models", headers=auth_headers(secret), timeout=10).status_code


def spend_with(server: LiveServer, secret: str) -> None:
    """A text turn through the offline model with ``secret``, so that the key has spent something."""
    async def turn() -> None:
        async with ws_connect(f"ws://127.0.0.1:{server.realtime_port}/v1/realtime?model=gpt-realtime",
                              headers=auth_headers(secret)) as ws:
            await text_turn(ws)
    trio.run(turn)


# -- the page -------------------------------------------------------------------------------------------

def open_keys(page: Page, server: LiveServer) -> None:
    """The page, given the admin key by a `#key=` link (as `make run` prints)."""
    page.goto(f"{server.url}/keys#key={ADMIN_KEY}")
    expect(page.locator("#status")).to_contain_text("made here")


def key_row(page: Page, name: str) -> Locator:
    return page.locator(f'#keys-table tbody tr[data-name="{name}"]')


def team_row(page: Page, name: str) -> Locator:
    return page.locator(f'#teams-table tbody tr[data-name="{name}"]')


def cell(row: Locator, name: str) -> Locator:
    """A row's cell under the column headed ``name`` (once the row is shown)."""
    row.wait_for()
    columns = row.locator("xpath=ancestor::table").locator("thead th").all_inner_texts()
    return row.locator("td").nth([c.strip() for c in columns].index(name))


def bar_width(row: Locator) -> float:
    """How full a row's spend bar is drawn (0 to 1 of the bar)."""
    return float(row.locator(".bar").evaluate(
        "b => b.querySelector('.fill').getBoundingClientRect().width / b.getBoundingClientRect().width"))


def shown_secret(page: Page) -> str:
    """The secret the page shows once (in its dialog)."""
    expect(page.locator("#secret-dialog")).to_be_visible()
    expect(page.locator("#secret")).to_have_value(re.compile(r"^sk-rtp-"))
    return page.locator("#secret").input_value()


def fill_key_form(page: Page, **fields: str) -> None:
    dialog = page.locator("#key-dialog")
    for field, value in fields.items():
        dialog.locator(f"#k-{field}").fill(value)


# -- the tests ------------------------------------------------------------------------------------------

def test_a_key_made_in_the_page_shows_its_secret_once_and_the_secret_works(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/keys")
    expect(page.locator("#no-key")).to_contain_text("admin key")
    page.get_by_label("Admin key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Load").click()
    expect(page.locator("#keys-empty")).to_contain_text("No ledger keys yet: create one")

    page.get_by_role("button", name="New key").click()
    dialog = page.locator("#key-dialog")
    expect(dialog.get_by_role("heading")).to_have_text("New key")
    fill_key_form(page, name="support-bot", budget="5")
    dialog.get_by_label("Any model the gateway serves").uncheck()
    dialog.get_by_label("gpt-realtime", exact=True).check()
    dialog.locator("#k-period").select_option(label="monthly (on the 1st)")
    dialog.locator("#k-expires").select_option(label="in 30 days")
    dialog.get_by_role("button", name="Create key").click()

    shown = page.locator("#secret-dialog")
    expect(shown).to_be_visible()
    expect(shown.get_by_role("heading")).to_have_text("Key support-bot created")
    expect(shown).to_contain_text("you will not see it again")
    secret = shown_secret(page)
    shown.get_by_role("button", name="Copy").click()
    expect(shown.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    # the secret works at once, for the models the form gave it
    r = httpx.get(f"{server.url}/v1/models", headers=auth_headers(secret))
    assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == ["gpt-realtime"]
    shown.get_by_role("button", name="I have copied it").click()
    expect(shown).to_be_hidden()

    api = admin(server, "GET", "/admin/keys/support-bot").json()
    row = key_row(page, "support-bot")
    expect(cell(row, "name")).to_contain_text(f"sk-...{secret[-4:]}")
    expect(cell(row, "models")).to_have_text("gpt-realtime")
    expect(cell(row, "spend / budget")).to_contain_text("$0.00 of $5.00")
    expect(cell(row, "spend / budget")).to_contain_text(f"monthly from {api['spend']['period_start']}")
    expect(cell(row, "expires")).to_contain_text("in 30 days")
    expect(page.locator("#keys-empty")).to_be_hidden()
    expect(page.locator("#status")).to_contain_text("Key support-bot created.")
    assert secret not in page.content()  # gone with its dialog

    page.reload()
    expect(key_row(page, "support-bot")).to_be_visible()
    expect(page.locator("#secret-dialog")).to_be_hidden()
    assert secret not in page.content()
    assert secret not in page.evaluate("JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")


def test_editing_a_key_changes_its_budget_in_the_table_and_in_the_api(page: Page, server: LiveServer) -> None:
    make_key(server, "billing", models=["gpt-realtime"], max_budget_usd=5, budget_period="monthly")
    open_keys(page, server)
    row = key_row(page, "billing")
    expect(cell(row, "spend / budget")).to_contain_text("$0.00 of $5.00")
    row.get_by_role("button", name="Edit").click()
    dialog = page.locator("#key-dialog")
    expect(dialog.get_by_role("heading")).to_have_text("Edit key billing")
    expect(dialog.locator("#k-name")).to_be_disabled()
    expect(dialog.locator("#k-budget")).to_have_value("5")
    expect(dialog.get_by_label("gpt-realtime", exact=True)).to_be_checked()
    fill_key_form(page, budget="12.5", soft="10", audio="90")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(cell(row, "spend / budget")).to_contain_text("$0.00 of $12.50")
    expect(cell(row, "spend / budget")).to_contain_text("monthly from")
    expect(page.locator("#status")).to_contain_text("Key billing saved.")
    got = admin(server, "GET", "/admin/keys/billing").json()
    assert (got["max_budget_usd"], got["soft_budget_usd"], got["max_audio_minutes"]) == (12.5, 10, 90)
    assert got["budget_period"] == "monthly" and got["models"] == ["gpt-realtime"]  # what was not touched stays
    # an emptied field clears its term
    row.get_by_role("button", name="Edit").click()
    fill_key_form(page, budget="")
    dialog.get_by_role("button", name="Save").click()
    expect(cell(row, "spend / budget")).to_contain_text("spent · no budget")
    assert admin(server, "GET", "/admin/keys/billing").json()["max_budget_usd"] is None


def test_rotating_a_key_shows_a_new_secret_that_works(page: Page, server: LiveServer) -> None:
    first = make_key(server, "rotor")["secret"]
    open_keys(page, server)
    row = key_row(page, "rotor")
    row.get_by_role("button", name="Rotate").click()
    rotate = page.locator("#rotate-dialog")
    expect(rotate.get_by_role("heading")).to_have_text("Rotate key rotor")
    expect(rotate.get_by_label("Old secret keeps working")).to_have_value("1h")
    rotate.get_by_role("button", name="Rotate").click()
    shown = page.locator("#secret-dialog")
    expect(shown.get_by_role("heading")).to_have_text("New secret for rotor")
    expect(shown).to_contain_text("The old secret keeps working until")
    second = shown_secret(page)
    assert second != first
    assert models_status(server, second) == 200 and models_status(server, first) == 200  # within its hour
    shown.get_by_role("button", name="I have copied it").click()
    expect(cell(row, "name")).to_contain_text("old secret works until")
    expect(cell(row, "name")).to_contain_text(f"sk-...{second[-4:]}")

    row.get_by_role("button", name="Rotate").click()
    rotate.get_by_label("Old secret keeps working").select_option(label="no: it stops now")
    rotate.get_by_role("button", name="Rotate").click()
    expect(shown).to_contain_text("The old secret no longer works.")
    third = shown_secret(page)
    assert third not in (first, second)
    assert models_status(server, third) == 200
    assert models_status(server, second) == 401 and models_status(server, first) == 401


def test_revoking_a_key_asks_first_then_removes_it_and_its_secret_stops_working(page: Page,
                                                                               server: LiveServer) -> None:
    secret = make_key(server, "leaver")["secret"]
    open_keys(page, server)
    row = key_row(page, "leaver")
    row.get_by_role("button", name="Revoke").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm.get_by_role("heading")).to_have_text("Revoke key leaver?")
    expect(confirm).to_contain_text("open sessions end")
    confirm.get_by_role("button", name="Cancel").click()  # changing one's mind changes nothing
    expect(confirm).to_be_hidden()
    expect(row).to_be_visible()
    assert models_status(server, secret) == 200

    row.get_by_role("button", name="Revoke").click()
    confirm.get_by_role("button", name="Revoke").click()
    expect(confirm).to_be_hidden()
    expect(row).to_have_count(0)
    expect(page.locator("#status")).to_contain_text("Key leaver revoked.")
    assert models_status(server, secret) == 401
    page.get_by_label("Show revoked").check()  # still there for the record, with nothing left to do
    expect(cell(row, "name")).to_contain_text("revoked")
    expect(row.get_by_role("button")).to_have_count(0)


def test_config_keys_show_read_only_with_no_edit_controls(page: Page, server: LiveServer) -> None:
    make_key(server, "made-here")
    open_keys(page, server)
    for name in ("user", "admin"):
        row = key_row(page, name)
        expect(cell(row, "source")).to_have_text("config · read-only")
        expect(row).to_contain_text("edit config.toml")
        expect(row.get_by_role("button")).to_have_count(0)
    expect(cell(key_row(page, "admin"), "name")).to_contain_text("admin")  # its role, as a badge
    ledger = key_row(page, "made-here")
    expect(cell(ledger, "source")).to_have_text("ledger")
    expect(ledger.get_by_role("button")).to_have_text(["Edit", "Rotate", "Revoke"])


def test_a_team_made_in_the_page_gets_a_key_and_both_show_their_spend(page: Page, server: LiveServer) -> None:
    open_keys(page, server)
    expect(page.locator("#teams-empty")).to_contain_text("No teams yet")
    page.get_by_role("button", name="New team").click()
    dialog = page.locator("#team-dialog")
    dialog.locator("#t-name").fill("voice")
    dialog.locator("#t-budget").fill("20")
    dialog.locator("#t-period").select_option(label="monthly (on the 1st)")
    dialog.get_by_role("button", name="Create team").click()
    expect(dialog).to_be_hidden()
    team = team_row(page, "voice")
    expect(cell(team, "keys")).to_have_text("0")
    expect(cell(team, "spend / budget")).to_contain_text("$0.00 of $20.00")
    expect(cell(team, "spend / budget")).to_contain_text("monthly from")
    expect(team.locator(".bar")).to_be_visible()

    page.get_by_role("button", name="New key").click()
    fill_key_form(page, name="voice-agent", budget="0.01")
    page.locator("#k-team").select_option("voice")
    page.get_by_role("button", name="Create key").click()
    secret = shown_secret(page)
    page.get_by_role("button", name="I have copied it").click()
    row = key_row(page, "voice-agent")
    expect(cell(row, "team")).to_have_text("voice")
    expect(cell(team, "keys")).to_have_text("1")
    assert admin(server, "GET", "/admin/keys/voice-agent").json()["team"] == "voice"

    spend_with(server, secret)
    page.reload()
    spent = admin(server, "GET", "/admin/keys/voice-agent").json()["spend"]["usd"]
    assert spent > 0
    expect(cell(row, "spend / budget")).not_to_contain_text("$0.00 of")
    expect(cell(team, "spend / budget")).not_to_contain_text("$0.00 of")
    assert 0 < bar_width(team) < bar_width(row) <= 1  # the same spend: a larger share of the smaller budget

    team.get_by_role("button", name="Edit").click()
    expect(dialog.locator("#t-name")).to_be_disabled()
    dialog.locator("#t-budget").fill("30")
    dialog.get_by_role("button", name="Save").click()
    expect(cell(team, "spend / budget")).to_contain_text("of $30.00")
    assert admin(server, "GET", "/admin/teams/voice").json()["max_budget_usd"] == 30


def test_an_invalid_field_shows_the_api_message_beside_the_form(page: Page, server: LiveServer) -> None:
    make_key(server, "taken")
    open_keys(page, server)
    page.get_by_role("button", name="New key").click()
    dialog = page.locator("#key-dialog")
    error = dialog.locator("#key-form-error")
    fill_key_form(page, name="has space")
    dialog.get_by_role("button", name="Create key").click()
    expect(error).to_have_text(NAME_RULE)
    expect(dialog).to_be_visible()  # nothing typed is lost
    expect(dialog.locator("#k-name")).to_have_attribute("aria-invalid", "true")
    assert admin(server, "POST", "/admin/keys", {"name": "has space"}).json()["error"]["message"] == NAME_RULE

    fill_key_form(page, name="taken")
    dialog.get_by_role("button", name="Create key").click()
    expect(error).to_have_text("a key named 'taken' exists")
    expect(dialog.locator("#k-name")).not_to_have_attribute("aria-invalid", "true")
    fill_key_form(page, name="user")
    dialog.get_by_role("button", name="Create key").click()
    expect(error).to_contain_text("key 'user' is defined in config.toml")
    fill_key_form(page, name="fine", soft="-1")
    dialog.get_by_role("button", name="Create key").click()
    expect(error).to_have_text("soft_budget_usd: must be at least 0")
    expect(dialog.locator("#k-soft")).to_have_attribute("aria-invalid", "true")
    dialog.get_by_role("button", name="Cancel").click()
    expect(key_row(page, "fine")).to_have_count(0)

    page.get_by_role("button", name="New team").click()
    team_dialog = page.locator("#team-dialog")
    team_dialog.locator("#t-name").fill("two words")
    team_dialog.get_by_role("button", name="Create team").click()
    expect(team_dialog.locator("#team-form-error")).to_have_text(NAME_RULE)


def test_deleting_a_team_with_keys_shows_why_it_is_refused(page: Page, server: LiveServer) -> None:
    make_team(server, "busy", max_budget_usd=10)
    make_key(server, "busy-1", team="busy")
    make_team(server, "idle")
    open_keys(page, server)
    busy = team_row(page, "busy")
    expect(cell(busy, "keys")).to_have_text("1")
    busy.get_by_role("button", name="Delete").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm.get_by_role("heading")).to_have_text("Delete team busy?")
    confirm.get_by_role("button", name="Delete").click()
    expect(confirm.locator("#confirm-error")).to_have_text("team 'busy' still has 1 key(s): move or revoke them first")
    confirm.get_by_role("button", name="Cancel").click()
    expect(busy).to_be_visible()

    team_row(page, "idle").get_by_role("button", name="Delete").click()
    expect(confirm.locator("#confirm-error")).to_be_hidden()  # nothing left from the refusal
    confirm.get_by_role("button", name="Delete").click()
    expect(team_row(page, "idle")).to_have_count(0)
    expect(page.locator("#status")).to_contain_text("Team idle deleted.")
    assert [t["name"] for t in admin(server, "GET", "/admin/teams").json()["data"]] == ["busy"]


def test_the_page_takes_the_key_the_logs_viewer_kept_and_says_when_it_is_not_an_admin_key(
        page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/logs")
    page.locator("#key").fill(USER_KEY)
    page.locator("#key").dispatch_event("change")
    page.get_by_role("link", name="Keys").click()
    expect(page).to_have_url(re.compile(r"/keys$"))
    expect(page.get_by_label("Admin key")).to_have_value(USER_KEY)
    expect(page.locator("#key-error")).to_have_text(
        'this route needs an admin key: this key is not an admin key (role = "admin" in config.toml)')
    expect(page.locator("#admin")).to_be_hidden()

    page.goto(f"{server.url}/logs")
    page.locator("#key").fill(ADMIN_KEY)
    page.locator("#key").dispatch_event("change")
    page.goto(f"{server.url}/keys")
    expect(key_row(page, "admin")).to_be_visible()  # no typing: the kept key was taken
    expect(page.locator("#key-error")).to_be_hidden()


@pytest.mark.parametrize("width", [1440, 1280, 800])
def test_the_page_fits_its_width_with_keys_and_a_team(browser, server: LiveServer, width: int) -> None:  # type: ignore[no-untyped-def]
    """Nothing runs off the page's side or out of its panel; at 1440x900 the picture docs/keys.png
    is this page (written when $KEYS_SCREENSHOT names the file)."""
    make_team(server, "voice", max_budget_usd=20, budget_period="monthly", soft_budget_usd=15)
    agent = make_key(server, "voice-agent", team="voice", models=["gpt-realtime"], max_budget_usd=0.001,
                     budget_period="monthly", soft_budget_usd=0.0003, expires="90d")
    make_key(server, "support-bot", models=["gpt-realtime", "gpt-live-1"], max_budget_usd=5, budget_period="1d",
             max_audio_minutes=120, expires="7d")
    make_key(server, "batch-jobs", team="voice")
    spend_with(server, agent["secret"])
    spend_with(server, agent["secret"])
    assert admin(server, "GET", "/admin/keys/voice-agent").json()["spend"]["soft_budget_exceeded"]
    for page in checked_page(browser, width, 900):
        open_keys(page, server)
        expect(key_row(page, "voice-agent").locator(".soft-warning")).to_be_visible()
        expect(cell(team_row(page, "voice"), "keys")).to_have_text("2")
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        for panel in ("#keys-panel", "#teams-panel"):  # and each table keeps to its panel
            assert page.locator(panel).evaluate("p => p.scrollWidth <= p.clientWidth"), panel
        out = os.environ.get("KEYS_SCREENSHOT")
        if width == 1440 and out:
            page.screenshot(path=out)
