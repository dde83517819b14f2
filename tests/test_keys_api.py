"""Keys and teams as data (#29): the admin API on one server with the embedded SQLite ledger —
create, use, list with spend, update, rotate with a grace period, revoke (open sessions end),
teams whose budget cuts off a key's session, and config keys shown read-only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected


from .conftest import ADMIN_KEY, USER_KEY, RunningServer, make_config, start_server
from .helpers import auth_headers, events_until, expect_error_then_close, text_turn, ws_connect


async def call(server: RunningServer, method: str, path: str, key: str = ADMIN_KEY, body: Any = None,
               **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        # json.dumps escapes what UTF-8 cannot carry (a lone surrogate travels as \\ud800, valid JSON)
        return await client.request(method, path, content=None if body is None else json.dumps(body),
                                    params=params or None,
                                    headers={**auth_headers(key), "Content-Type": "application/json"})


async def create(server: RunningServer, **body: Any) -> dict[str, Any]:
    r = await call(server, "POST", "/admin/keys", body=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path) -> RunningServer:
    running = await start_server(nursery, make_config(tmp_path))
    await running.gateway.registry.loaded.wait()
    return running


async def test_a_created_key_opens_a_session_and_its_secret_is_shown_once_and_stored_as_a_hash(
        server: RunningServer, tmp_path: Path) -> None:
    made = await create(server, name="app-1", models=["gpt-realtime"], max_budget_usd=5, budget_period="monthly",
                        user="ada", tags=["beta"], metadata={"owner": "ops"})
    secret = made["secret"]
    assert secret.startswith("sk-rtp-") and made["hint"] == f"sk-...{secret[-4:]}"
    assert made["budget_period"] == "monthly" and made["spend"]["usd"] == 0 and made["spend"]["period_start"]
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(secret)) as ws:
        done = await text_turn(ws)
    assert done[-1]["response"]["status"] == "completed"
    # never the secret again: not on get, not in the ledger file, not in the spend log
    got = (await call(server, "GET", "/admin/keys/app-1")).json()
    assert "secret" not in got and got["spend"]["usd"] > 0 and got["spend"]["lifetime_usd"] == got["spend"]["usd"]
    ledger_file = server.gateway.registry.ledger.target.path
    assert secret.encode() not in ledger_file.read_bytes()
    records = [r for r in server.records() if r.get("key_name") == "app-1"]
    assert records and all(secret not in json.dumps(r) for r in records)
    # every record of the key carries its user and tags
    assert all(r["user"] == "ada" and r["tags"] == ["beta"] for r in records)


async def test_the_list_shows_config_keys_read_only_and_ledger_keys_with_spend(server: RunningServer) -> None:
    await create(server, name="app-2")
    listed = (await call(server, "GET", "/admin/keys")).json()
    by_name = {k["name"]: k for k in listed["data"]}
    assert by_name["user"]["read_only"] is True and by_name["user"]["source"] == "config"
    assert by_name["app-2"]["read_only"] is False and "spend" in by_name["app-2"]
    assert listed["total"] == 3
    r = await call(server, "PATCH", "/admin/keys/user", body={"max_budget_usd": 1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "read_only_key"
    r = await call(server, "GET", "/admin/keys", key=USER_KEY)
    assert r.status_code == 403


async def test_bad_fields_are_refused_with_the_field_named(server: RunningServer) -> None:
    for body, field in (({"name": "has space"}, "name"), ({"name": "k", "models": ["nope"]}, "models"),
                        ({"name": "k", "budget_period": "fortnight"}, "budget_period"),
                        ({"name": "k", "max_budget_usd": -1}, "max_budget_usd"),
                        ({"name": "k", "metadata": {"x": "\ud800"}}, "metadata"),
                        ({"name": "k", "key": "short"}, "key"), ({"name": "k", "expires": "soon"}, "expires")):
        r = await call(server, "POST", "/admin/keys", body=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["message"].startswith(field), r.json()
    r = await call(server, "POST", "/admin/keys", body={"name": "k", "team": "no-such-team"})
    assert r.status_code == 404
    await create(server, name="dup")
    assert (await call(server, "POST", "/admin/keys", body={"name": "dup"})).status_code == 409


async def test_an_update_is_in_force_at_once_a_lower_budget_ends_the_open_session(server: RunningServer) -> None:
    secret = (await create(server, name="app-3", max_budget_usd=100))["secret"]
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(secret)) as ws:
        await text_turn(ws)
        r = await call(server, "PATCH", "/admin/keys/app-3", body={"max_budget_usd": 0.0000001})
        assert r.status_code == 200 and r.json()["max_budget_usd"] == 0.0000001
        await expect_error_then_close(ws, "budget_exceeded", 4429)
    # a narrower model list: refused at the handshake from now on
    r = await call(server, "PATCH", "/admin/keys/app-3", body={"models": ["gpt-realtime-mini"], "max_budget_usd": None})
    assert r.status_code == 200
    with pytest.raises(ConnectionRejected) as refused:
        async with ws_connect(server.ws_url("realtime"), headers=auth_headers(secret)):
            pass
    assert refused.value.status_code == 403 and b"model_not_allowed" in (refused.value.body or b"")


async def test_rotation_keeps_the_old_secret_for_its_grace_period_only(server: RunningServer) -> None:
    old = (await create(server, name="app-4"))["secret"]
    rotated = (await call(server, "POST", "/admin/keys/app-4/rotate", body={"grace_period": "1h"})).json()
    new = rotated["secret"]
    assert new != old and rotated["previous_secret_valid_until"]
    for secret in (old, new):
        async with ws_connect(server.ws_url("realtime"), headers=auth_headers(secret)) as ws:
            await events_until(ws, "session.created")
    # a second rotation without grace: the secret before it stops at once, and its session ends
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(new)) as ws:
        await events_until(ws, "session.created")
        newest = (await call(server, "POST", "/admin/keys/app-4/rotate", body={})).json()["secret"]
        await expect_error_then_close(ws, "key_revoked", 4401)
    r = (await call(server, "GET", "/v1/models", key=new))
    assert r.status_code == 401
    assert (await call(server, "GET", "/v1/models", key=newest)).status_code == 200


async def test_revoking_a_key_ends_its_open_session_and_refuses_it_after(server: RunningServer) -> None:
    secret = (await create(server, name="app-5"))["secret"]
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(secret)) as ws:
        await events_until(ws, "session.created")
        r = await call(server, "POST", "/admin/keys/app-5/revoke")
        assert r.status_code == 200 and r.json()["revoked_at"]
        await expect_error_then_close(ws, "key_revoked", 4401)
    assert (await call(server, "GET", "/v1/models", key=secret)).status_code == 401
    got = (await call(server, "GET", "/admin/keys/app-5")).json()
    assert got["revoked_at"]
    listed = {k["name"] for k in (await call(server, "GET", "/admin/keys")).json()["data"]}
    assert "app-5" not in listed
    # the name is not given again: a new key would inherit its spend and records
    again = await call(server, "POST", "/admin/keys", body={"name": "app-5"})
    assert again.status_code == 409 and "was revoked" in again.json()["error"]["message"]


async def test_an_expired_key_is_refused_and_its_session_ends(server: RunningServer) -> None:
    secret = (await create(server, name="app-6", expires="2s"))["secret"]
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(secret)) as ws:
        await events_until(ws, "session.created")
        await expect_error_then_close(ws, "key_expired", 4401, timeout_s=10)
    assert (await call(server, "GET", "/v1/models", key=secret)).status_code == 401


async def test_a_team_budget_cuts_off_a_session_of_one_of_its_keys(server: RunningServer) -> None:
    r = await call(server, "POST", "/admin/teams", body={"name": "voice", "max_budget_usd": 100,
                                                         "budget_period": "monthly", "soft_budget_usd": 0.0000001})
    assert r.status_code == 201, r.text
    first = (await create(server, name="voice-a", team="voice"))["secret"]
    second = (await create(server, name="voice-b", team="voice", max_budget_usd=50))["secret"]
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(first)) as ws:
        await text_turn(ws)
    team = (await call(server, "GET", "/admin/teams/voice")).json()
    assert team["spend"]["usd"] > 0 and team["spend"]["soft_budget_exceeded"] is True and team["keys"] == 2
    records = [r for r in server.records() if r.get("key_name") == "voice-a"]
    assert records and all(r["team"] == "voice" for r in records)
    # the team's budget is lowered under what it spent: the other key's open session is cut off
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(second)) as ws:
        await events_until(ws, "session.created")
        await call(server, "PATCH", "/admin/teams/voice", body={"max_budget_usd": team["spend"]["usd"] / 2})
        message = await expect_error_then_close(ws, "budget_exceeded", 4429)
    assert "team 'voice'" in message
    with pytest.raises(ConnectionRejected) as refused:
        async with ws_connect(server.ws_url("realtime"), headers=auth_headers(second)):
            pass
    error = json.loads(refused.value.body or b"{}")["error"]
    assert refused.value.status_code == 429 and error["code"] == "budget_exceeded"
    assert error["message"].startswith("team 'voice' (of key 'voice-b') has used its budget of")
    r = await call(server, "DELETE", "/admin/teams/voice")
    assert r.status_code == 409  # it still has keys




async def test_a_soft_budget_reached_shows_in_the_metrics_and_refuses_nothing(
        server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from rtproxy.server import gateway as gateway_module

    monkeypatch.setattr(gateway_module, "SOFT_BUDGET_CHECK_S", 0.0)
    secret = (await create(server, name="soft", soft_budget_usd=0.0000001))["secret"]
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(secret)) as ws:
        await text_turn(ws)
        await text_turn(ws, fresh=False)  # nothing refused
    line = 'rtproxy_soft_budget_exceeded{holder="key",name="soft"} 1.0'
    with trio.fail_after(10):
        while line not in (await call(server, "GET", "/metrics")).text:
            await trio.sleep(0.1)
    assert (await call(server, "GET", "/admin/keys/soft")).json()["spend"]["soft_budget_exceeded"] is True


async def mint(server: RunningServer, secret: str) -> str:
    r = await call(server, "POST", "/v1/realtime/client_secrets", key=secret,
                   body={"session": {"type": "realtime", "model": "gpt-realtime"}})
    assert r.status_code == 200, r.text
    return r.json()["value"]  # type: ignore[no-any-return]


async def test_an_ephemeral_token_opens_nothing_once_its_key_is_rotated_past_grace_or_revoked(
        server: RunningServer) -> None:
    secret = (await create(server, name="tok"))["secret"]
    token = await mint(server, secret)
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(token)) as ws:
        await events_until(ws, "session.created")  # it works while its secret does
    await call(server, "POST", "/admin/keys/tok/rotate", body={"grace_period": "1h"})
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(token)) as ws:
        await events_until(ws, "session.created")  # within the grace period too
    newest = (await call(server, "POST", "/admin/keys/tok/rotate", body={})).json()["secret"]
    with pytest.raises(ConnectionRejected) as refused:  # its secret is no longer accepted: nor is it
        async with ws_connect(server.ws_url("realtime"), headers=auth_headers(token)):
            pass
    assert refused.value.status_code == 401 and b"invalid_ephemeral_token" in (refused.value.body or b"")
    fresh = await mint(server, newest)
    await call(server, "POST", "/admin/keys/tok/revoke")
    with pytest.raises(ConnectionRejected) as refused:
        async with ws_connect(server.ws_url("realtime"), headers=auth_headers(fresh)):
            pass
    assert refused.value.status_code == 401


async def test_a_revoked_key_s_last_records_still_reach_its_team_and_period(server: RunningServer) -> None:
    await call(server, "POST", "/admin/teams", body={"name": "last", "max_budget_usd": 10, "budget_period": "1d"})
    await create(server, name="leaving", team="last", max_budget_usd=5, budget_period="1d")
    session_key = server.gateway.keys.by_name("leaving")
    assert session_key is not None
    await call(server, "POST", "/admin/keys/leaving/revoke")
    assert server.gateway.keys.by_name("leaving") is None
    # a response that ends after the revocation, written by the session that began before it
    await server.gateway.write_record({"record": "response", "id": "rec_after_revoke", "key_name": "leaving",
                                       "cost_usd": 0.25}, key=session_key)
    (record,) = [r for r in server.records() if r.get("id") == "rec_after_revoke"]
    assert record["team"] == "last"
    limits = server.gateway.limits
    accounts = limits.limited_accounts(session_key)  # the key's day, its team's day
    got = await limits.store.spent([*accounts, "\x1fteam:last"])
    assert all(v == pytest.approx(0.25) for v in got.values()), got


def test_no_key_reaches_a_log_line_through_litellm_s_regenerate_path_and_names_are_one_line() -> None:
    from rtproxy.ledger.key_admin import InvalidInput, check_name
    from rtproxy.server.app import _loggable

    assert _loggable("/key/sk-rtp-secretsecretsecret/regenerate") == "/key/…/regenerate"
    assert _loggable("/key/generate") == "/key/generate"
    for bad in ("user\n", "a b", "", "x" * 101, "\x1fteam"):
        with pytest.raises(InvalidInput):
            check_name(bad)
