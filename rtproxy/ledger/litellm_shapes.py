"""LiteLLM's key-route shapes (sans-IO): its request bodies as rtproxy's key terms, rtproxy's key
rows as its response bodies. Checked against LiteLLM's source (``key_management_endpoints.py``,
``_types.py``: GenerateKeyRequest, UpdateKeyRequest, RegenerateKeyRequest, KeyRequest,
GenerateKeyResponse) and its virtual-keys docs.

How LiteLLM's fields map (docs/keys.md has the table for operators):

- ``key_alias`` → the key's name (a generated ``key-<12 hex>`` without one); ``models: []`` → any
  model; ``max_budget``, ``soft_budget``, ``budget_duration`` (``1d``, ``7d``, ``30d``, ``1mo``)
  → the budget and its period; ``duration`` → expiry; ``user_id`` → user; ``team_id`` → team;
  ``metadata`` (its ``tags`` too) and ``tags`` → metadata and tags; ``max_parallel_requests`` →
  ``max_sessions``; ``rpm_limit`` → ``max_sessions_per_minute`` (a realtime session is the
  request). ``tpm_limit`` and LiteLLM's other fields are accepted and ignored, as LiteLLM ignores
  fields it does not know.
- A key is named by its secret (``sk-…``) or its sha256 (``token``), as LiteLLM accepts both.
- Errors: ``{"error": {"message", "type", "param", "code"}}`` with ``code`` the status as a string.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from ..periods import window
from .key_admin import InvalidInput, iso_us, parse_expiry
from .keys import KeyRow

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: /key/list's page size, at most (LiteLLM's bound).
MAX_LIST_SIZE = 100


def digest_of(reference: str) -> str:
    """The sha256 a key reference names: the hash itself, or a secret's hash."""
    ref = reference.strip()
    return ref if _HEX64.match(ref) else hashlib.sha256(ref.encode("utf-8", "surrogateescape")).hexdigest()


def error(status: int, message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param if param is not None else "None",
                      "code": str(status)}}


def to_rtproxy(body: Mapping[str, Any], *, for_update: bool = False) -> dict[str, Any]:
    """A LiteLLM key body as an rtproxy admin body (the fields it sets, nothing else)."""
    out: dict[str, Any] = {}
    if "key_alias" in body and body["key_alias"] is not None:
        out["name"] = body["key_alias"]
    if "models" in body:
        models = body["models"]
        out["models"] = ["*"] if models in ([], None) else models
    for theirs, ours in (("max_budget", "max_budget_usd"), ("soft_budget", "soft_budget_usd"),
                         ("max_parallel_requests", "max_sessions"), ("rpm_limit", "max_sessions_per_minute"),
                         ("user_id", "user"), ("team_id", "team")):
        if theirs in body:
            value = body[theirs]
            out[ours] = None if value == "" else value
    if "budget_duration" in body:
        out["budget_period"] = body["budget_duration"]
    if "duration" in body:
        duration = body["duration"]
        out["expires"] = None if duration in (None, "-1", -1) else duration
    metadata = body.get("metadata")
    tags = body.get("tags")
    if isinstance(metadata, dict):
        out["metadata"] = dict(metadata)
        if tags is None and isinstance(metadata.get("tags"), list):
            tags = metadata["tags"]
    elif metadata is not None:
        raise InvalidInput("metadata", "an object")
    if tags is not None:
        out["tags"] = tags
    if not for_update and body.get("key") is not None:
        out["key"] = body["key"]
    return out


def expiry(body: Mapping[str, Any]) -> int | None:
    return parse_expiry(body.get("duration"), "duration")


def _budget_reset_at(row: KeyRow, now: float) -> str | None:
    period = row.terms.budget_period
    if period is None:
        return None
    end = window(period, row.anchor_us / 1e6, now).end_s
    return iso_us(int(end * 1_000_000))


def key_object(row: KeyRow, spend_usd: float, now: float, *, with_token: bool = True) -> dict[str, Any]:
    """A key as LiteLLM's ``LiteLLM_VerificationToken`` row shows it."""
    t = row.terms
    metadata = dict(t.metadata)
    if t.tags:
        metadata["tags"] = list(t.tags)
    out: dict[str, Any] = {
        "key_name": row.hint, "key_alias": row.name, "spend": round(spend_usd, 9),
        "expires": iso_us(row.expires_us), "models": [] if "*" in t.models else list(t.models),
        "aliases": {}, "config": {}, "user_id": t.user, "team_id": row.team, "permissions": {},
        "max_parallel_requests": t.max_sessions, "metadata": metadata, "blocked": None, "tpm_limit": None,
        "rpm_limit": t.max_sessions_per_minute, "max_budget": t.max_budget_usd, "soft_budget": t.soft_budget_usd,
        "budget_duration": _litellm_period(t.budget_period), "budget_reset_at": _budget_reset_at(row, now),
        "allowed_cache_controls": [], "model_spend": {}, "model_max_budget": {}, "budget_id": None,
        "created_at": iso_us(row.created_us), "updated_at": iso_us(row.updated_us), "created_by": None,
        "updated_by": None, "litellm_budget_table": None,
    }
    if with_token:
        out = {"token": row.sha256, **out}
    return out


def _litellm_period(period: str | None) -> str | None:
    return {"monthly": "1mo"}.get(period or "", period)


def generate_response(row: KeyRow, secret: str, now: float, *, regenerated: bool = False,
                      spend_usd: float = 0.0) -> dict[str, Any]:
    """``/key/generate`` (and ``/key/regenerate``: ``token`` null, the new hash in ``token_id``)."""
    return {**key_object(row, spend_usd, now), "key": secret, "token": None if regenerated else row.sha256,
            "token_id": row.sha256, "duration": None, "tags": None}


def list_response(rows: list[tuple[KeyRow, float]], total: int, page: int, size: int, *, full: bool,
                  now: float) -> dict[str, Any]:
    keys: list[Any] = [key_object(r, spend, now) for r, spend in rows] if full else [r.sha256 for r, _ in rows]
    return {"keys": keys, "total_count": total, "current_page": page,
            "total_pages": 0 if total == 0 else math.ceil(total / size)}


def page_args(args: Mapping[str, str]) -> tuple[int, int, bool]:
    """``page``, ``size`` and ``return_full_object`` of /key/list. Raises InvalidInput."""
    try:
        page = int(args.get("page", "1"))
        size = int(args.get("size", "10"))
    except ValueError:
        raise InvalidInput("page", "page and size are whole numbers") from None
    if page < 1 or not 1 <= size <= MAX_LIST_SIZE:
        raise InvalidInput("size", f"page at least 1, size 1 to {MAX_LIST_SIZE}")
    return page, size, str(args.get("return_full_object", "false")).lower() == "true"


def references(body: Mapping[str, Any], field: str) -> list[str]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(field, "a list of strings")
    return list(value)
