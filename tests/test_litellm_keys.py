"""LiteLLM's key routes (#29): an operator's LiteLLM admin script — the request bodies of LiteLLM's
virtual-keys docs — runs against rtproxy unchanged: generate → use → info → update → list →
regenerate → delete, with LiteLLM's response and error shapes."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from .conftest import ADMIN_KEY, USER_KEY, RunningServer
from .helpers import auth_headers, events_until, text_turn, ws_connect
from .test_keys_api import server  # noqa: F401 - the fixture: a server with the embedded ledger


async def post(server: RunningServer, path: str, body: Any, *, headers: dict[str, str] | None = None
               ) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        return await client.post(path, json=body, headers=auth_headers(ADMIN_KEY) if headers is None else headers)


async def get(server: RunningServer, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        return await client.get(path, params=params, headers={"x-litellm-api-key": ADMIN_KEY})


async def test_a_litellm_admin_script_generates_uses_updates_lists_regenerates_and_deletes_a_key(
        server: RunningServer) -> None:  # noqa: F811
    # the body of LiteLLM's docs (tpm_limit and the like are accepted and ignored, as LiteLLM ignores unknowns)
    made = await post(server, "/key/generate", {
        "models": ["gpt-realtime"], "duration": "20m", "metadata": {"user": "ishaan@berri.ai"}, "max_budget": 10,
        "key_alias": "my-app", "budget_duration": "30d", "tpm_limit": 1000, "rpm_limit": 60,
        "max_parallel_requests": 5, "user_id": "u1", "soft_budget": 8})
    assert made.status_code == 200, made.text
    g = made.json()
    secret = g["key"]
    assert g["token"] == g["token_id"] == hashlib.sha256(secret.encode()).hexdigest()
    assert g["key_name"] == f"sk-...{secret[-4:]}" and g["key_alias"] == "my-app" and g["expires"]
    assert (g["max_budget"], g["budget_duration"], g["rpm_limit"], g["max_parallel_requests"], g["user_id"]) == (
        10, "30d", 60, 5, "u1")
    assert g["models"] == ["gpt-realtime"] and g["metadata"] == {"user": "ishaan@berri.ai"} and g["duration"] is None
    async with ws_connect(server.ws_url("realtime"), headers=auth_headers(secret)) as ws:
        await text_turn(ws)
    info = (await get(server, "/key/info", key=secret)).json()
    assert info["key"] == secret and "token" not in info["info"] and info["info"]["key_alias"] == "my-app"
    assert info["info"]["spend"] > 0 and info["info"]["budget_reset_at"]
    # by its hash too, as LiteLLM accepts
    assert (await get(server, "/key/info", key=g["token"])).json()["info"]["key_alias"] == "my-app"
    updated = await post(server, "/key/update", {"key": secret, "max_budget": 20, "models": [],
                                                 "metadata": {"team": "core-infra"}})
    assert updated.status_code == 200
    u = updated.json()
    assert u["key"] == secret and u["max_budget"] == 20 and u["models"] == [] and u["metadata"] == {"team": "core-infra"}
    listed = (await get(server, "/key/list", page=1, size=10)).json()
    assert listed == {"keys": [g["token"]], "total_count": 1, "current_page": 1, "total_pages": 1}
    full = (await get(server, "/key/list", return_full_object="true", key_alias="my-app")).json()
    assert full["keys"][0]["key_alias"] == "my-app" and full["keys"][0]["spend"] > 0
    regenerated = (await post(server, f"/key/{secret}/regenerate", {"grace_period": "24h", "max_budget": 30})).json()
    new = regenerated["key"]
    assert new != secret and regenerated["token"] is None
    assert regenerated["token_id"] == hashlib.sha256(new.encode()).hexdigest() and regenerated["max_budget"] == 30
    for s in (secret, new):  # the old one lasts its grace period
        async with ws_connect(server.ws_url("realtime"), headers=auth_headers(s)) as ws:
            await events_until(ws, "session.created")
    deleted = await post(server, "/key/delete", {"keys": [new]})
    assert deleted.json() == {"deleted_keys": [new]}
    async with httpx.AsyncClient(base_url=server.http) as client:
        assert (await client.get("/v1/models", headers=auth_headers(new))).status_code == 401


async def test_litellm_errors_have_litellm_s_envelope_with_the_status_as_a_string(
        server: RunningServer) -> None:  # noqa: F811
    missing = await get(server, "/key/info", key="sk-no-such-key-0000000000")
    assert missing.status_code == 404
    assert missing.json()["error"] == {"message": "Key not found in database", "type": "not_found_error",
                                       "param": "key", "code": "404"}
    assert (await post(server, "/key/delete", {"key_aliases": ["nobody"]})).json()["error"]["code"] == "404"
    bad = await post(server, "/key/generate", {"budget_duration": "2w"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "budget_period"
    none = await post(server, "/key/generate", {}, headers={})
    assert none.status_code == 401 and none.json()["error"]["type"] == "auth_error"
    user = await post(server, "/key/generate", {}, headers=auth_headers(USER_KEY))
    assert user.status_code == 403
    big = await get(server, "/key/list", size=101)
    assert big.status_code == 400


@pytest.mark.parametrize("header", ["x-litellm-api-key", "Authorization"])
async def test_the_master_key_may_come_as_litellm_s_header_or_a_bearer_token(
        server: RunningServer, header: str) -> None:  # noqa: F811
    value = ADMIN_KEY if header == "x-litellm-api-key" else f"Bearer {ADMIN_KEY}"
    made = await post(server, "/key/generate", {}, headers={header: value})
    assert made.status_code == 200 and made.json()["key_alias"].startswith("key-")
