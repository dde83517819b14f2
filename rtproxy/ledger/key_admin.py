"""What an operator sends to change keys and teams, checked (sans-IO), and what is shown back.

The admin API (rtproxy/server/admin_api.py), LiteLLM's key routes (:mod:`.litellm_keys`) and the
CLI (:mod:`.key_commands`) all go through here, so a key made one way reads the same every way.
A body field that is present changes that term; an absent one leaves it as it was; ``null``
clears an optional term (no budget, no expiry).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Collection, Mapping
from typing import Any

import attrs

from ..auth.keys import MIN_KEY_CHARS, VirtualKey, hash_key
from ..periods import parse_period
from .keys import KeyRow, KeyTerms, TeamRow, TeamTermsData, now_us

#: Key and team names: what records, metrics labels and URLs carry (no spaces, no control characters).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,99}$")
#: A key's or a team's metadata, as JSON, at most (it is carried in memory by every server).
MAX_METADATA_BYTES = 8 * 1024
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_USER_CHARS = 200
#: The largest number a limit takes (budgets, minutes, counts).
MAX_NUMBER = 1e12
#: A rotated key's old secret stays valid at most this long.
MAX_GRACE_S = 30 * 86_400.0
#: What a generated secret starts with (the rest: 32 random bytes, base64url).
SECRET_PREFIX = "sk-rtp-"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w|mo)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400, "mo": 30 * 86_400}


class InvalidInput(ValueError):
    """A field the operator sent is not acceptable: ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidInput(field, "1 to 100 characters: letters, digits and . _ : @ + - (starting with a letter "
                                  "or digit)")
    return value


#: The longest duration (an expiry, a grace period) taken: 100 years.
MAX_DURATION_S = 100 * 365 * 86_400.0


def parse_duration_s(value: object, field: str) -> float:
    """``"30d"``, ``"12h"``, ``"15m"``, ``"45s"``, ``"1mo"`` (30 days), or a number of seconds
    (also as text: ``"0"``)."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and len(value) < 40:
        text = value.strip().lower()
        m = _DURATION.fullmatch(text)
        if m:
            seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
        elif text.isdigit():
            seconds = float(text)
    if seconds is None or seconds != seconds:
        raise InvalidInput(field, 'a duration such as "30d", "12h", "15m", "45s", or seconds')
    if seconds < 0 or seconds > MAX_DURATION_S:
        raise InvalidInput(field, "from 0 to 100 years")
    return seconds


def parse_expiry(value: object, field: str = "expires", *, now: float | None = None) -> int | None:
    """When a key expires (µs since the epoch): an ISO 8601 time, a duration from now, or null."""
    if value is None:
        return None
    at = now_us() / 1e6 if now is None else now
    if isinstance(value, str) and ("T" in value or value[:4].isdigit() and "-" in value):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(field, "an ISO 8601 time (2027-01-01T00:00:00Z) or a duration (30d)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        if when.timestamp() <= at:
            raise InvalidInput(field, "is in the past: a key that expired already is no key (revoke it instead)")
        if when.timestamp() > at + MAX_DURATION_S:
            raise InvalidInput(field, "at most 100 years from now")
        return int(when.timestamp() * 1_000_000)
    seconds = parse_duration_s(value, field)
    if seconds <= 0:
        raise InvalidInput(field, "a duration longer than 0")
    return int((at + seconds) * 1_000_000)


def _number(body: Mapping[str, Any], field: str, *, minimum: float = 0.0) -> float | None:
    value = body[field]
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value or value in (
            float("inf"), float("-inf")) or abs(value) > MAX_NUMBER:
        raise InvalidInput(field, f"a number (at most {MAX_NUMBER:g}) or null")
    if value < minimum:
        raise InvalidInput(field, f"must be at least {minimum:g}")
    if field == "soft_budget_usd" and value <= 0:
        raise InvalidInput(field, "more than 0 (or null: none)")
    return float(value)


def _count(body: Mapping[str, Any], field: str) -> int | None:
    value = body[field]
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_NUMBER:
        raise InvalidInput(field, "a whole number, at least 1, or null")
    return value


def _names(body: Mapping[str, Any], field: str, known_models: Collection[str], *, nullable: bool
           ) -> tuple[str, ...] | None:
    value = body[field]
    if value is None and nullable:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 1000:
        raise InvalidInput(field, "a list of model names (\"*\": any)" + (", or null" if nullable else ""))
    if field == "models":
        if not value:
            raise InvalidInput(field, 'at least one model ("*": any)')
        for v in value:
            if v != "*" and v not in known_models:
                raise InvalidInput(field, f"model {v[:80]!r} is not one this gateway serves")
    return tuple(value)


def _metadata(value: object, field: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(field, "an object")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise InvalidInput(field, "must be JSON UTF-8 can carry (no lone surrogates, no NaN)") from None
    if len(text.encode("utf-8")) > MAX_METADATA_BYTES:
        raise InvalidInput(field, f"at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


def _text(value: object, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise InvalidInput(field, f"printable text of 1 to {limit} characters, or null")
    return value


KEY_TERM_FIELDS = ("models", "transcription_models", "delegation_models", "role", "max_budget_usd",
                   "budget_period", "soft_budget_usd", "max_audio_minutes", "max_sessions",
                   "max_sessions_per_minute", "store_prompts", "user", "tags", "metadata")


def parse_key_terms(body: Mapping[str, Any], known_models: Collection[str], base: KeyTerms | None = None) -> KeyTerms:
    """``base`` (a new key's defaults when None) with the terms ``body`` gives. Raises InvalidInput."""
    terms = base or KeyTerms()
    changes: dict[str, Any] = {}
    for field in KEY_TERM_FIELDS:
        if field not in body:
            continue
        value = body[field]
        if field == "models":
            changes[field] = _names(body, field, known_models, nullable=False)
        elif field in ("transcription_models", "delegation_models"):
            changes[field] = _names(body, field, known_models, nullable=True)
        elif field == "role":
            if value not in ("user", "admin"):
                raise InvalidInput(field, "user or admin")
            changes[field] = value
        elif field in ("max_budget_usd", "soft_budget_usd", "max_audio_minutes"):
            changes[field] = _number(body, field)
        elif field in ("max_sessions", "max_sessions_per_minute"):
            changes[field] = _count(body, field)
        elif field == "budget_period":
            try:
                changes[field] = parse_period(value)
            except ValueError as exc:
                raise InvalidInput(field, str(exc).removeprefix("budget_period ")) from None
        elif field == "store_prompts":
            if value is not None and not isinstance(value, bool):
                raise InvalidInput(field, "true, false or null")
            changes[field] = value
        elif field == "user":
            changes[field] = _text(value, field, MAX_USER_CHARS)
        elif field == "tags":
            if value is None:
                value = []
            if not isinstance(value, list) or len(value) > MAX_TAGS:
                raise InvalidInput(field, f"a list of at most {MAX_TAGS} tags")
            tags = tuple(_text(v, field, MAX_TAG_CHARS) for v in value)
            if None in tags:
                raise InvalidInput(field, "tags are text, not null")
            changes[field] = tags
        elif field == "metadata":
            changes[field] = _metadata(value)
    return attrs.evolve(terms, **changes)


def parse_team_terms(body: Mapping[str, Any], base: TeamTermsData | None = None) -> TeamTermsData:
    terms = base or TeamTermsData()
    changes: dict[str, Any] = {}
    for field in ("max_budget_usd", "soft_budget_usd"):
        if field in body:
            changes[field] = _number(body, field)
    if "budget_period" in body:
        try:
            changes["budget_period"] = parse_period(body["budget_period"])
        except ValueError as exc:
            raise InvalidInput("budget_period", str(exc).removeprefix("budget_period ")) from None
    if "metadata" in body:
        changes["metadata"] = _metadata(body["metadata"])
    return attrs.evolve(terms, **changes)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def check_secret(value: object, field: str = "key") -> str:
    """An operator's own secret for a key (LiteLLM lets one be given): long enough, printable, and
    not shaped as an ephemeral token (``ek_``: it could never authenticate)."""
    if not isinstance(value, str) or len(value) < MIN_KEY_CHARS or len(value) > 256 or not value.isprintable() \
            or " " in value:
        raise InvalidInput(field, f"a key of {MIN_KEY_CHARS} to 256 printable characters without spaces")
    if value.startswith("ek_"):
        raise InvalidInput(field, "ek_ starts an ephemeral token, never a key")
    return value


def secret_hint(secret: str) -> str:
    """How a key is shown once its secret is gone: its last 4 characters (``sk-...wXyZ`` for an
    ``sk-`` key, as LiteLLM shows it; ``...wXyZ`` for another: nothing of its start)."""
    return f"{'sk-' if secret.startswith('sk-') else ''}...{secret[-4:]}"


def new_key_row(name: str, secret: str, *, team: str | None, terms: KeyTerms, expires_us: int | None) -> KeyRow:
    at = now_us()
    return KeyRow(name=name, sha256=hash_key(secret), hint=secret_hint(secret), team=team, terms=terms,
                  created_us=at, updated_us=at, anchor_us=at, expires_us=expires_us)


def iso_us(us: int | None) -> str | None:
    if us is None:
        return None
    return dt.datetime.fromtimestamp(us / 1e6, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def key_json(row: KeyRow, spend: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ledger key as the admin API shows it (never its secret or digest)."""
    t = row.terms
    out: dict[str, Any] = {
        "object": "key", "name": row.name, "source": "ledger", "read_only": False, "hint": row.hint,
        "team": row.team, "models": list(t.models),
        "transcription_models": None if t.transcription_models is None else list(t.transcription_models),
        "delegation_models": None if t.delegation_models is None else list(t.delegation_models),
        "role": t.role, "max_budget_usd": t.max_budget_usd, "budget_period": t.budget_period,
        "soft_budget_usd": t.soft_budget_usd, "max_audio_minutes": t.max_audio_minutes,
        "max_sessions": t.max_sessions, "max_sessions_per_minute": t.max_sessions_per_minute,
        "store_prompts": t.store_prompts, "user": t.user, "tags": list(t.tags), "metadata": dict(t.metadata),
        "created_at": iso_us(row.created_us), "updated_at": iso_us(row.updated_us),
        "expires_at": iso_us(row.expires_us), "revoked_at": iso_us(row.revoked_us),
        "previous_secret_valid_until": iso_us(row.previous_until_us),
    }
    if spend is not None:
        out["spend"] = dict(spend)
    return out


def config_key_json(key: VirtualKey, spend: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``[[keys]]`` key, shown read-only (it changes by editing config.toml)."""
    out: dict[str, Any] = {
        "object": "key", "name": key.name, "source": "config", "read_only": True, "hint": None, "team": None,
        "models": list(key.models), "transcription_models": list(key.transcription_models),
        "delegation_models": list(key.delegation_models), "role": key.role, "max_budget_usd": key.max_budget_usd,
        "budget_period": key.budget_period, "soft_budget_usd": None, "max_audio_minutes": key.max_audio_minutes,
        "max_sessions": key.max_sessions, "max_sessions_per_minute": key.max_sessions_per_minute,
        "store_prompts": key.store_prompts, "user": None, "tags": [], "metadata": {}, "created_at": None,
        "updated_at": None, "expires_at": None, "revoked_at": None, "previous_secret_valid_until": None,
    }
    if spend is not None:
        out["spend"] = dict(spend)
    return out


def team_json(row: TeamRow, spend: Mapping[str, Any] | None = None, keys: int | None = None) -> dict[str, Any]:
    t = row.terms
    out: dict[str, Any] = {"object": "team", "name": row.name, "max_budget_usd": t.max_budget_usd,
                           "budget_period": t.budget_period, "soft_budget_usd": t.soft_budget_usd,
                           "metadata": dict(t.metadata), "created_at": iso_us(row.created_us),
                           "updated_at": iso_us(row.updated_us)}
    if keys is not None:
        out["keys"] = keys
    if spend is not None:
        out["spend"] = dict(spend)
    return out
