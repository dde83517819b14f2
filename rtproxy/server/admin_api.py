"""The key and team admin API (admin keys only): ``/admin/keys`` and ``/admin/teams``, and
LiteLLM's key routes (``/key/*``) beside them (rtproxy/ledger/litellm_keys.py).

Every change is one ledger transaction (rtproxy/ledger/keys.py, in a worker thread); this server
reads the keys again at once, the others within their poll (rtproxy/ledger/registry.py). Keys of
``config.toml`` are listed read-only: changing one is refused with 409 ``read_only_key``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from quart import Response, jsonify, request
from quart_trio import QuartTrio

from ..auth.keys import VirtualKey, hash_key
from ..ledger.db import LedgerError
from ..ledger.key_admin import (
    MAX_GRACE_S,
    InvalidInput,
    check_name,
    check_secret,
    config_key_json,
    key_json,
    new_key_row,
    new_secret,
    parse_duration_s,
    parse_expiry,
    parse_key_terms,
    parse_team_terms,
    secret_hint,
    team_json,
)
from ..ledger.keys import (
    KeyRow,
    RegistryConflict,
    RegistryNotFound,
    TeamRow,
    delete_team,
    get_key,
    get_team,
    insert_key,
    list_keys,
    list_teams,
    revoke_key,
    rotate_key,
    update_key,
    upsert_team,
)
from ..periods import window
from ..spend.budgets import LIFETIME, Terms, audio_account, period_account, team_account
from . import litellm_routes
from .admin_common import Answered, ReadOnly
from .limits import key_terms

log = logging.getLogger("rtproxy.admin")

#: An admin request's body, at most.
MAX_ADMIN_BODY_BYTES = 64 * 1024
#: A key list's page, at most.
MAX_PAGE = 1000

ErrorFn = Callable[..., Response]


class AdminApi:
    def __init__(self, gateway: Any, json_error: ErrorFn) -> None:
        self.gateway = gateway
        self.error = json_error

    @property
    def models(self) -> set[str]:
        return {m.name for m in self.gateway.config.models}

    async def run(self, fn: Callable[..., Any]) -> Any:
        result = await self.gateway.registry.ledger.run(fn)
        return result

    async def changed(self) -> None:
        """Read the keys again now, so this server answers with the change in force."""
        try:
            await self.gateway.registry.load()
        except LedgerError:
            pass  # the poll reads them when the ledger answers

    # -- spend ---------------------------------------------------------------------------------

    async def spend_of(self, keys: list[VirtualKey]) -> dict[str, dict[str, Any]]:
        """Each key's spend in its current period (lifetime without one), from the state store."""
        limits = self.gateway.limits
        now = limits.clock()
        plan: dict[str, tuple[str, str, str]] = {}
        for k in keys:
            kt = key_terms(k)
            plan[k.name] = (period_account(k.name, kt, now), period_account(audio_account(k.name), kt, now), k.name)
        accounts = sorted({a for p in plan.values() for a in p})
        if accounts:
            await limits.refresh(accounts)
        out: dict[str, dict[str, Any]] = {}
        for k in keys:
            money, audio, lifetime = plan[k.name]
            usd = limits.spent.get(money, 0.0)
            w = window(k.budget_period, k.budget_anchor_s, now) if k.budget_period else None
            out[k.name] = {
                "period": k.budget_period, "period_start": w.name if w else None,
                "period_end": w.end.isoformat() if w else None, "usd": round(usd, 9),
                "audio_minutes": round(limits.spent.get(audio, 0.0) / 60_000, 6),
                "lifetime_usd": round(limits.spent.get(lifetime, 0.0), 9),
                "budget_left_usd": None if k.max_budget_usd is None else round(k.max_budget_usd - usd, 9),
                "soft_budget_exceeded": k.soft_budget_usd is not None and usd >= k.soft_budget_usd,
            }
        return out

    async def team_spend(self, teams: list[TeamRow]) -> dict[str, dict[str, Any]]:
        limits = self.gateway.limits
        now = limits.clock()
        plan = {}
        for t in teams:
            terms = t.terms
            tt = Terms(terms.budget_period, t.anchor_us / 1e6) if terms.budget_period else LIFETIME
            plan[t.name] = (period_account(team_account(t.name), tt, now), team_account(t.name), terms)
        accounts = sorted({a for p in plan.values() for a in p[:2]})
        if accounts:
            await limits.refresh(accounts)
        out = {}
        for t in teams:
            money, lifetime, terms = plan[t.name]
            usd = limits.spent.get(money, 0.0)
            w = window(terms.budget_period, t.anchor_us / 1e6, now) if terms.budget_period else None
            out[t.name] = {"period": terms.budget_period, "period_start": w.name if w else None,
                           "period_end": w.end.isoformat() if w else None, "usd": round(usd, 9),
                           "lifetime_usd": round(limits.spent.get(lifetime, 0.0), 9),
                           "budget_left_usd": None if terms.max_budget_usd is None
                           else round(terms.max_budget_usd - usd, 9),
                           "soft_budget_exceeded": terms.soft_budget_usd is not None
                           and usd >= terms.soft_budget_usd}
        return out

    async def key_view(self, row: KeyRow) -> dict[str, Any]:
        live = self.gateway.keys.by_name(row.name)
        spend = (await self.spend_of([live]))[row.name] if live is not None and live.source == "ledger" else None
        return key_json(row, spend)

    # -- the operations (each raises InvalidInput, RegistryConflict, RegistryNotFound, LedgerError) --

    def _writable(self, name: str) -> None:
        key = self.gateway.keys.by_name(name)
        if key is not None and key.source == "config":
            raise ReadOnly(name)

    async def create_key(self, body: Mapping[str, Any]) -> tuple[KeyRow, str]:
        name = check_name(body.get("name"))
        self._writable(name)
        terms = parse_key_terms(body, self.models)
        team = None if body.get("team") is None else check_name(body.get("team"), "team")
        expires = parse_expiry(body.get("expires"), "expires")
        secret = check_secret(body["key"]) if body.get("key") is not None else new_secret()
        if self.gateway.keys.lookup(secret) is not None:
            raise RegistryConflict("that secret is already some key's")
        row = new_key_row(name, secret, team=team, terms=terms, expires_us=expires)
        await self.run(lambda conn: insert_key(conn, row))
        await self.changed()
        log.info("key %s created (team %s)", name, team or "-")
        return row, secret

    async def update_key(self, name: str, body: Mapping[str, Any]) -> KeyRow:
        self._writable(name)
        current = await self.run(lambda conn: get_key(conn, name))
        if current is None:
            raise RegistryNotFound(f"no key named {name!r}")
        terms = parse_key_terms(body, self.models, current.terms)
        kwargs: dict[str, Any] = {"terms": terms}
        if "team" in body:
            kwargs["team"] = None if body["team"] is None else check_name(body["team"], "team")
        if "expires" in body:
            kwargs["expires_us"] = parse_expiry(body["expires"], "expires")
        row = await self.run(lambda conn: update_key(conn, name, **kwargs))
        await self.changed()
        log.info("key %s updated", name)
        return row  # type: ignore[no-any-return]

    async def rotate_key(self, name: str, body: Mapping[str, Any]) -> tuple[KeyRow, str]:
        self._writable(name)
        grace = parse_duration_s(body.get("grace_period", 0), "grace_period")
        if grace > MAX_GRACE_S:
            raise InvalidInput("grace_period", f"at most {MAX_GRACE_S / 86_400:g} days")
        secret = check_secret(body["key"]) if body.get("key") is not None else new_secret()
        row = await self.run(lambda conn: rotate_key(conn, name, hash_key(secret), secret_hint(secret), grace))
        await self.changed()
        log.info("key %s rotated (the old secret valid for %g s more)", name, grace)
        return row, secret

    async def revoke_key(self, name: str, *, reload: bool = True) -> KeyRow:
        self._writable(name)
        row = await self.run(lambda conn: revoke_key(conn, name))
        if reload:
            await self.changed()
        log.warning("key %s revoked", name)
        return row  # type: ignore[no-any-return]




def register(quart: QuartTrio, gateway: Any, *, require_admin: Callable[[], Any],
             read_body: Callable[[int, str, str], Awaitable[bytes | Response]], json_error: ErrorFn) -> None:
    api = AdminApi(gateway, json_error)

    async def guarded(fn: Callable[[], Awaitable[Any]]) -> Any:
        """The admin check, then ``fn``; its refusals as JSON errors."""
        caller = require_admin()
        if isinstance(caller, Response):
            return caller
        try:
            return await fn()
        except InvalidInput as exc:
            return json_error(400, "invalid_field", str(exc))
        except (RecursionError, OverflowError, ValueError) as exc:  # a number or a nesting no field takes
            return json_error(400, "invalid_field", f"a value out of range ({type(exc).__name__})")
        except ReadOnly as exc:
            return json_error(409, "read_only_key", str(exc))
        except RegistryConflict as exc:
            return json_error(409, "conflict", str(exc))
        except RegistryNotFound as exc:
            return json_error(404, "not_found", str(exc))
        except LedgerError as exc:
            log.error("admin: the ledger failed: %s", exc)
            return json_error(503, "ledger_unavailable", "the key ledger cannot be reached; retry later",
                              "server_error")

    async def body_of() -> dict[str, Any]:
        raw = await read_body(MAX_ADMIN_BODY_BYTES, "body_too_large", f"at most {MAX_ADMIN_BODY_BYTES} bytes")
        if isinstance(raw, Response):
            raise Answered(raw)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("body", "not JSON") from None
        except RecursionError:
            raise InvalidInput("body", "nested too deeply") from None
        if not isinstance(body, dict):
            raise InvalidInput("body", "a JSON object")
        return body

    def answered(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def inner() -> Any:
            try:
                return await fn()
            except Answered as a:
                return a.response
        return inner

    def status(payload: Any, code: int = 200) -> Response:
        response = jsonify(payload)
        response.status_code = code
        return response

    # -- rtproxy's own routes ------------------------------------------------------------------------

    @quart.post("/admin/keys")
    async def admin_create_key() -> Any:
        async def go() -> Any:
            row, secret = await api.create_key(await body_of())
            view = await api.key_view(row)
            return status({**view, "secret": secret}, 201)
        return await guarded(answered(go))

    @quart.get("/admin/keys")
    async def admin_list_keys() -> Any:
        async def go() -> Any:
            args = request.args
            try:
                limit = min(int(args.get("limit", "100")), MAX_PAGE)
                offset = int(args.get("offset", "0"))
            except ValueError:
                raise InvalidInput("limit", "limit and offset are whole numbers") from None
            if limit < 1 or not 0 <= offset < 2 ** 62:
                raise InvalidInput("limit", "limit at least 1, offset 0 or more")
            team = args.get("team") or None
            revoked = args.get("include_revoked") in ("1", "true")
            rows, total = await api.run(lambda conn: list_keys(conn, team=team, include_revoked=revoked,
                                                               limit=limit, offset=offset))
            live = [k for r in rows if (k := gateway.keys.by_name(r.name)) is not None and k.source == "ledger"]
            configured = [] if team or offset else gateway.keys.configured
            spend = await api.spend_of(live + configured)
            data = [config_key_json(k, spend.get(k.name)) for k in configured]
            data += [key_json(r, spend.get(r.name)) for r in rows]
            return {"object": "list", "data": data, "total": total + len(gateway.keys.configured),
                    "limit": limit, "offset": offset}
        return await guarded(go)

    @quart.get("/admin/keys/<name>")
    async def admin_get_key(name: str) -> Any:
        async def go() -> Any:
            key = gateway.keys.by_name(name)
            if key is not None and key.source == "config":
                return config_key_json(key, (await api.spend_of([key]))[name])
            row = await api.run(lambda conn: get_key(conn, name, include_revoked=True))
            if row is None:
                raise RegistryNotFound(f"no key named {name!r}")
            return await api.key_view(row)
        return await guarded(go)

    @quart.route("/admin/keys/<name>", methods=["PATCH"])
    async def admin_update_key(name: str) -> Any:
        async def go() -> Any:
            row = await api.update_key(name, await body_of())
            return await api.key_view(row)
        return await guarded(answered(go))

    @quart.post("/admin/keys/<name>/rotate")
    async def admin_rotate_key(name: str) -> Any:
        async def go() -> Any:
            row, secret = await api.rotate_key(name, await body_of())
            return {**(await api.key_view(row)), "secret": secret}
        return await guarded(answered(go))

    @quart.post("/admin/keys/<name>/revoke")
    @quart.delete("/admin/keys/<name>")
    async def admin_revoke_key(name: str) -> Any:
        async def go() -> Any:
            return key_json(await api.revoke_key(name))
        return await guarded(go)

    @quart.post("/admin/teams")
    async def admin_create_team() -> Any:
        async def go() -> Any:
            body = await body_of()
            name = check_name(body.get("name"))
            terms = parse_team_terms(body)
            row = await api.run(lambda conn: upsert_team(conn, name, terms, create=True))
            await api.changed()
            return status(_team_view(row, (await api.team_spend([row]))[name]), 201)
        return await guarded(answered(go))

    @quart.get("/admin/teams")
    async def admin_list_teams() -> Any:
        async def go() -> Any:
            rows = await api.run(list_teams)
            spend = await api.team_spend(rows)
            members = _members(gateway)
            return {"object": "list", "data": [_team_view(r, spend[r.name], members.get(r.name, 0)) for r in rows]}
        return await guarded(go)

    @quart.get("/admin/teams/<name>")
    async def admin_get_team(name: str) -> Any:
        async def go() -> Any:
            row = await api.run(lambda conn: get_team(conn, name))
            if row is None:
                raise RegistryNotFound(f"no team named {name!r}")
            return _team_view(row, (await api.team_spend([row]))[name], _members(gateway).get(name, 0))
        return await guarded(go)

    @quart.route("/admin/teams/<name>", methods=["PATCH"])
    async def admin_update_team(name: str) -> Any:
        async def go() -> Any:
            body = await body_of()
            current = await api.run(lambda conn: get_team(conn, name))
            if current is None:
                raise RegistryNotFound(f"no team named {name!r}")
            terms = parse_team_terms(body, current.terms)
            row = await api.run(lambda conn: upsert_team(conn, name, terms, create=False))
            await api.changed()
            return _team_view(row, (await api.team_spend([row]))[name], _members(gateway).get(name, 0))
        return await guarded(answered(go))

    @quart.delete("/admin/teams/<name>")
    async def admin_delete_team(name: str) -> Any:
        async def go() -> Any:
            await api.run(lambda conn: delete_team(conn, name))
            await api.changed()
            return {"object": "team", "name": name, "deleted": True}
        return await guarded(go)

    litellm_routes.register(quart, api, guarded=guarded, body_of=body_of, answered=answered, status=status)


def _members(gateway: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for k in gateway.keys:
        if k.team is not None:
            counts[k.team.name] = counts.get(k.team.name, 0) + 1
    return counts


def _team_view(row: TeamRow, spend: Mapping[str, Any], keys: int | None = None) -> dict[str, Any]:
    return team_json(row, spend, keys)
