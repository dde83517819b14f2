"""LiteLLM's key routes, so an operator's LiteLLM admin scripts work against rtproxy unchanged:
``POST /key/generate``, ``GET /key/info``, ``POST /key/update``, ``POST /key/delete``,
``GET /key/list``, ``POST /key/regenerate`` and ``POST /key/{key}/regenerate``. The shapes are
rtproxy/ledger/litellm_shapes.py's; the operations are the admin API's (admin_api.py), so a key
made here is the same ledger key ``/admin/keys`` and ``rtproxy keys`` show.

Authentication as LiteLLM's: ``x-litellm-api-key`` (with or without ``Bearer``), else
``Authorization: Bearer``; the caller must be an admin key (LiteLLM's master key).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Response, jsonify, request

from ..auth.keys import VirtualKey
from ..ledger.db import LedgerError
from ..ledger.key_admin import InvalidInput, check_secret, new_secret, parse_duration_s
from ..ledger.keys import KeyRow, RegistryConflict, RegistryNotFound, get_key, get_key_by_digest, list_keys
from .admin_common import Answered, ReadOnly
from ..ledger.litellm_shapes import (
    digest_of,
    error,
    generate_response,
    key_object,
    list_response,
    page_args,
    references,
    to_rtproxy,
)


def register(quart: Any, api: Any, *, body_of: Callable[[], Awaitable[dict[str, Any]]], **_: Any) -> None:
    gateway = api.gateway

    def answer(payload: Any, status: int = 200) -> Response:
        response = jsonify(payload)
        response.status_code = status
        return response

    def caller() -> VirtualKey | Response:
        presented = request.headers.get("x-litellm-api-key", "").strip()
        if presented.lower().startswith("bearer "):
            presented = presented[7:].strip()
        if not presented:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else ""
        if not presented:
            return answer(error(401, "Authentication Error, No api key passed in.", "auth_error"), 401)
        key = gateway.keys.lookup(presented)
        if key is None:
            return answer(error(401, "Authentication Error, Invalid proxy server token passed.",
                                "token_not_found_in_db", "key"), 401)
        if not key.is_admin:
            return answer(error(403, "Only admin keys can manage keys.", "auth_error"), 403)
        return key

    def guarded(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def inner(*args: Any, **kwargs: Any) -> Any:
            who = caller()
            if isinstance(who, Response):
                return who
            try:
                return await fn(*args, **kwargs)
            except Answered as a:
                return a.response
            except InvalidInput as exc:
                return answer(error(400, str(exc), "bad_request_error", exc.field), 400)
            except RegistryNotFound as exc:
                return answer(error(404, str(exc), "not_found_error", "key"), 404)
            except RegistryConflict as exc:
                return answer(error(400, str(exc), "bad_request_error", "key_alias"), 400)
            except LedgerError:
                return answer(error(500, "the key ledger cannot be reached; retry later", "no_db_connection"), 500)
            except ReadOnly as exc:
                return answer(error(400, str(exc), "bad_request_error", "key"), 400)
            except (RecursionError, OverflowError, ValueError) as exc:
                return answer(error(400, f"a value out of range ({type(exc).__name__})", "bad_request_error"), 400)
        inner.__name__ = fn.__name__
        return inner

    async def row_by_reference(reference: object) -> KeyRow:
        if not isinstance(reference, str) or not reference.strip():
            raise InvalidInput("key", "the key (its secret or its hash) is required")
        digest = digest_of(reference)
        row = await api.run(lambda conn: get_key_by_digest(conn, digest))
        if row is None:
            raise RegistryNotFound("Key not found in database")
        return row  # type: ignore[no-any-return]

    async def spend(row: KeyRow) -> float:
        live = gateway.keys.by_name(row.name)
        if live is None:
            return 0.0
        return float((await api.spend_of([live]))[row.name]["usd"])

    async def generate() -> Any:
        raw = await body_of()
        ours = to_rtproxy(raw)
        if ours.get("key") is not None and not isinstance(ours["key"], str):
            raise InvalidInput("key", "a string")
        secret = ours.get("key") or new_secret()
        ours["key"] = secret
        if "name" not in ours:
            ours["name"] = "key-" + digest_of(secret)[:12]
        row, secret = await api.create_key(ours)
        return answer(generate_response(row, secret, time.time()))

    async def info() -> Any:
        reference = request.args.get("key")
        if reference is None:
            raise InvalidInput("key", "?key= names the key (its secret or its hash)")
        row = await row_by_reference(reference)
        return answer({"key": reference, "info": key_object(row, await spend(row), time.time(), with_token=False)})

    async def update() -> Any:
        raw = await body_of()
        row = await row_by_reference(raw.get("key"))
        ours = to_rtproxy(raw, for_update=True)
        ours.pop("name", None)  # a key keeps its name: it is in its spend records
        updated = await api.update_key(row.name, ours)
        return answer({"key": raw.get("key"), **key_object(updated, await spend(updated), time.time())})

    async def delete() -> Any:
        raw = await body_of()
        keys, aliases = references(raw, "keys"), references(raw, "key_aliases")
        if not keys and not aliases:
            raise InvalidInput("keys", "keys or key_aliases: a non-empty list")
        names: list[str] = []
        if keys:
            for reference in keys:
                digest = digest_of(reference)
                row = await api.run(lambda conn, d=digest: get_key_by_digest(conn, d))
                if row is not None:
                    names.append(row.name)
        else:
            for alias in aliases:
                row = await api.run(lambda conn, a=alias: get_key(conn, a))
                if row is not None:
                    names.append(row.name)
        if not names:
            raise RegistryNotFound("No keys found")
        for name in names:
            await api.revoke_key(name, reload=False)
        await api.changed()  # one reload for them all
        return answer({"deleted_keys": keys or aliases})

    async def listing() -> Any:
        page, size, full = page_args(request.args)
        unsupported = [p for p in ("organization_id", "project_id", "access_group_id", "status", "sort_by")
                       if request.args.get(p)]
        if unsupported:  # a filter ignored would list (and a script then delete) every key
            raise InvalidInput(unsupported[0], "not supported by this gateway's /key/list")
        key_hash = request.args.get("key_hash") or None
        team = request.args.get("team_id") or None
        user = request.args.get("user_id") or None
        alias = request.args.get("key_alias") or None
        def matching(conn: Any) -> list[KeyRow]:  # in the worker thread: every key may be many
            rows, _ = list_keys(conn, team=team, limit=1_000_000)
            rows = [r for r in rows if (user is None or r.terms.user == user) and (alias is None or r.name == alias)
                    and (key_hash is None or r.sha256 == key_hash)]
            rows.sort(key=lambda r: (r.created_us, r.sha256), reverse=True)  # LiteLLM's order: newest first
            return rows

        rows = await api.run(matching)
        chosen = rows[(page - 1) * size: page * size]
        live = [k for r in chosen if (k := gateway.keys.by_name(r.name)) is not None]
        spent = await api.spend_of(live) if full else {}
        return answer(list_response([(r, spent.get(r.name, {}).get("usd", 0.0)) for r in chosen], len(rows), page,
                                    size, full=full, now=time.time()))

    async def regenerate(reference: str | None = None) -> Any:
        raw = await body_of()
        row = await row_by_reference(raw.get("key") or reference)
        # what the rotation takes is checked first: a refused regenerate changes nothing
        if raw.get("new_key") is not None:
            check_secret(raw["new_key"], "new_key")
        parse_duration_s(raw.get("grace_period") or 0, "grace_period")
        changes = to_rtproxy(raw, for_update=True)
        changes.pop("name", None)
        if changes:
            row = await api.update_key(row.name, changes)
        rotate: dict[str, Any] = {"grace_period": raw.get("grace_period") or 0}
        if raw.get("new_key") is not None:
            rotate["key"] = raw["new_key"]
        row, secret = await api.rotate_key(row.name, rotate)
        return answer(generate_response(row, secret, time.time(), regenerated=True, spend_usd=await spend(row)))

    quart.add_url_rule("/key/generate", "litellm_key_generate", guarded(generate), methods=["POST"])
    quart.add_url_rule("/key/info", "litellm_key_info", guarded(info), methods=["GET"])
    quart.add_url_rule("/key/update", "litellm_key_update", guarded(update), methods=["POST"])
    quart.add_url_rule("/key/delete", "litellm_key_delete", guarded(delete), methods=["POST"])
    quart.add_url_rule("/key/list", "litellm_key_list", guarded(listing), methods=["GET"])
    quart.add_url_rule("/key/regenerate", "litellm_key_regenerate", guarded(regenerate), methods=["POST"])
    quart.add_url_rule("/key/<path:reference>/regenerate", "litellm_key_regenerate_path", guarded(regenerate),
                       methods=["POST"])
