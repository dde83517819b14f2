"""``rtproxy keys create|list|get|update|rotate|revoke`` and ``rtproxy teams
create|list|get|update|delete``: the admin API's operations, run on the ledger directly (no server
needed; every running server picks the change up within its key poll).

Spend shown here is what the ledger holds (records shipped so far, within a second or so of
being written), for the key's current period (its lifetime without one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..config import Config
from ..periods import window
from ..spend.records import BILLED_RECORDS
from . import open_ledger
from .db import Conn, LedgerError, migrate
from .key_admin import (
    MAX_GRACE_S,
    InvalidInput,
    check_name,
    check_secret,
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
from .keys import (
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
from ..auth.keys import hash_key

_BILLED = tuple(sorted(BILLED_RECORDS))


def ledger_spend(conn: Conn, *, key: str | None = None, team: str | None = None, since_s: float | None = None
                 ) -> float:
    """The cost of the billed records in the ledger of ``key`` (or ``team``) since ``since_s``."""
    column, value = ("key_name", key) if key is not None else ("team", team)
    sql = (f"SELECT COALESCE(SUM(cost_usd), 0) FROM spend_records WHERE {column} = ? "
           f"AND record IN ({', '.join('?' * len(_BILLED))})")
    params: list[Any] = [value, *_BILLED]
    if since_s is not None:
        sql += " AND time_us >= ?"
        params.append(int(since_s * 1_000_000))
    return float(conn.execute(sql, params)[0][0] or 0.0)


def _period_spend(conn: Conn, row: KeyRow | TeamRow, now: float) -> dict[str, Any]:
    period = row.terms.budget_period
    w = window(period, row.anchor_us / 1e6, now) if period else None
    is_key = isinstance(row, KeyRow)
    usd = ledger_spend(conn, key=row.name if is_key else None, team=None if is_key else row.name,
                       since_s=w.start_s if w else None)
    return {"period": period, "period_start": w.name if w else None, "usd": round(usd, 9),
            "budget_left_usd": None if row.terms.max_budget_usd is None else round(row.terms.max_budget_usd - usd, 9),
            "soft_budget_exceeded": row.terms.soft_budget_usd is not None and usd >= row.terms.soft_budget_usd}


def _key_body(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, as an admin API body (absent ones left out)."""
    body: dict[str, Any] = {}

    def listed(value: str) -> list[str]:
        return [] if value == "" else [v.strip() for v in value.split(",") if v.strip()]

    def number(value: str) -> float | None:
        return None if value.lower() in ("none", "null", "") else float(value)

    def count(value: str) -> int | None:
        return None if value.lower() in ("none", "null", "") else int(value)

    for attr, field, conv in (("models", "models", listed), ("transcription_models", "transcription_models", listed),
                              ("delegation_models", "delegation_models", listed), ("role", "role", str),
                              ("budget", "max_budget_usd", number), ("period", "budget_period", str),
                              ("soft_budget", "soft_budget_usd", number), ("audio_minutes", "max_audio_minutes", number),
                              ("max_sessions", "max_sessions", count), ("rate", "max_sessions_per_minute", count),
                              ("user", "user", str), ("team", "team", str), ("expires", "expires", str)):
        value = getattr(args, attr, None)
        if value is not None:
            try:
                body[field] = conv(value)
            except ValueError:
                raise InvalidInput(field, f"not a number: {value!r}") from None
    if getattr(args, "team", None) in ("none", ""):
        body["team"] = None
    if getattr(args, "expires", None) in ("none", "never"):
        body["expires"] = None
    if getattr(args, "tag", None):
        body["tags"] = list(args.tag)
    if getattr(args, "metadata", None) is not None:
        try:
            body["metadata"] = json.loads(args.metadata)
        except ValueError:
            raise InvalidInput("metadata", "not JSON") from None
    return body


def _print_keys(rows: list[tuple[dict[str, Any], str]], as_json: bool) -> None:
    if as_json:
        for view, _ in rows:
            print(json.dumps(view, ensure_ascii=False))
        return
    print(f"{'NAME':<24} {'TEAM':<14} {'MODELS':<22} {'SPENT':>11} {'BUDGET':>11} {'PERIOD':<8} {'SOURCE':<7} STATE")
    for view, state in rows:
        spend = view.get("spend") or {}
        budget = view.get("max_budget_usd")
        print(f"{view['name'][:24]:<24} {(view.get('team') or '-')[:14]:<14} {','.join(view['models'])[:22]:<22} "
              f"{'$%.6f' % spend['usd'] if 'usd' in spend else '-':>11} "
              f"{'-' if budget is None else '$%g' % budget:>11} {view.get('budget_period') or '-':<8} "
              f"{view['source']:<7} {state}")


def keys_command(cfg: Config, args: argparse.Namespace) -> int:
    ledger = open_ledger(cfg)
    models = {m.name for m in cfg.models}
    configured = {k.name for k in cfg.keys}
    try:
        ledger.call(migrate)
        action = args.action
        now = time.time()
        if action == "list":
            rows, _ = ledger.call(lambda c: list_keys(c, team=args.team, include_revoked=args.all, limit=100_000))
            shown = [(key_json(r, ledger.call(lambda c, r=r: _period_spend(c, r, now))), _state(r, now)) for r in rows]
            if not args.team:
                shown = [(_config_view(k), "config") for k in cfg.keys] + shown
            _print_keys(shown, args.json)
            return 0
        name = check_name(args.name)
        if name in configured and action != "get":
            raise InvalidInput("name", f"key {name!r} is defined in {cfg.source}: change it there")
        if action == "create":
            body = _key_body(args)
            terms = parse_key_terms(body, models)
            secret = check_secret(args.key_value) if args.key_value else new_secret()
            team = body.get("team")
            row = new_key_row(name, secret, team=None if team is None else check_name(team, "team"), terms=terms,
                              expires_us=parse_expiry(body.get("expires")))
            ledger.call(lambda c: insert_key(c, row))
            print(json.dumps({**key_json(row), "secret": secret}, ensure_ascii=False) if args.json else
                  f"created key {name}: {secret}\n(the secret is shown this once; it is stored only as a hash)")
            return 0
        if action == "get":
            if name in configured:
                print(json.dumps(_config_view(next(k for k in cfg.keys if k.name == name)), ensure_ascii=False))
                return 0
            row = ledger.call(lambda c: get_key(c, name, include_revoked=True))
            if row is None:
                raise RegistryNotFound(f"no key named {name!r}")
            print(json.dumps(key_json(row, ledger.call(lambda c: _period_spend(c, row, now))), ensure_ascii=False))
            return 0
        if action == "update":
            body = _key_body(args)
            current = ledger.call(lambda c: get_key(c, name))
            if current is None:
                raise RegistryNotFound(f"no key named {name!r}")
            terms = parse_key_terms(body, models, current.terms)
            kwargs: dict[str, Any] = {"terms": terms}
            if "team" in body:
                kwargs["team"] = None if body["team"] is None else check_name(body["team"], "team")
            if "expires" in body:
                kwargs["expires_us"] = parse_expiry(body["expires"])
            row = ledger.call(lambda c: update_key(c, name, **kwargs))
            print(json.dumps(key_json(row), ensure_ascii=False) if args.json else f"updated key {name}")
            return 0
        if action == "rotate":
            grace = parse_duration_s(args.grace, "grace")
            if grace > MAX_GRACE_S:
                raise InvalidInput("grace", f"at most {MAX_GRACE_S / 86_400:g} days")
            secret = new_secret()
            row = ledger.call(lambda c: rotate_key(c, name, hash_key(secret), secret_hint(secret), grace))
            kept = f"; the old secret stays valid for {args.grace}" if grace else "; the old secret no longer works"
            print(json.dumps({**key_json(row), "secret": secret}, ensure_ascii=False) if args.json else
                  f"rotated key {name}: {secret}{kept}")
            return 0
        row = ledger.call(lambda c: revoke_key(c, name))
        print(json.dumps(key_json(row), ensure_ascii=False) if args.json else
              f"revoked key {name}: its open sessions end within a second on every server")
        return 0
    except (InvalidInput, RegistryConflict, RegistryNotFound, LedgerError) as exc:
        print(f"rtproxy: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()


def teams_command(cfg: Config, args: argparse.Namespace) -> int:
    ledger = open_ledger(cfg)
    try:
        ledger.call(migrate)
        now = time.time()
        if args.action == "list":
            for row in ledger.call(list_teams):
                view = team_json(row, ledger.call(lambda c, r=row: _period_spend(c, r, now)))
                print(json.dumps(view, ensure_ascii=False) if args.json else
                      f"{row.name:<24} spent ${view['spend']['usd']:.6f} of "
                      f"{'-' if row.terms.max_budget_usd is None else '$%g' % row.terms.max_budget_usd} "
                      f"({row.terms.budget_period or 'lifetime'})")
            return 0
        name = check_name(args.name)
        if args.action == "delete":
            ledger.call(lambda c: delete_team(c, name))
            print(f"deleted team {name}")
            return 0
        if args.action == "get":
            row = ledger.call(lambda c: get_team(c, name))
            if row is None:
                raise RegistryNotFound(f"no team named {name!r}")
            print(json.dumps(team_json(row, ledger.call(lambda c: _period_spend(c, row, now))), ensure_ascii=False))
            return 0
        body = _key_body(args)
        body.pop("team", None)
        current = None if args.action == "create" else ledger.call(lambda c: get_team(c, name))
        if args.action == "update" and current is None:
            raise RegistryNotFound(f"no team named {name!r}")
        terms = parse_team_terms(body, None if current is None else current.terms)
        row = ledger.call(lambda c: upsert_team(c, name, terms, create=args.action == "create"))
        print(json.dumps(team_json(row), ensure_ascii=False) if args.json else f"{args.action}d team {name}")
        return 0
    except (InvalidInput, RegistryConflict, RegistryNotFound, LedgerError) as exc:
        print(f"rtproxy: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()


def _state(row: KeyRow, now: float) -> str:
    if row.revoked_us is not None:
        return "revoked"
    if row.expires_us is not None and now * 1e6 >= row.expires_us:
        return "expired"
    return "active"


def _config_view(key: Any) -> dict[str, Any]:
    return {"name": key.name, "source": "config", "read_only": True, "team": None, "models": list(key.models),
            "role": key.role, "max_budget_usd": key.max_budget_usd, "budget_period": key.budget_period,
            "spend": {}}


def add_key_options(p: argparse.ArgumentParser, *, team: bool = True) -> None:
    p.add_argument("--budget", metavar="USD", help="max_budget_usd (per period with --period; 'none' clears it)")
    p.add_argument("--period", help="budget_period: 1d, 7d, 30d or monthly ('none': the key's lifetime)")
    p.add_argument("--soft-budget", dest="soft_budget", metavar="USD",
                   help="soft_budget_usd: reported in /metrics and the API when reached; nothing is refused")
    if not team:
        p.add_argument("--metadata", metavar="JSON", help="metadata: a JSON object")
        return
    p.add_argument("--models", help="comma-separated model names ('*': any; default '*')")
    p.add_argument("--transcription-models", dest="transcription_models",
                   help="comma-separated input-transcription models (default: as --models)")
    p.add_argument("--delegation-models", dest="delegation_models",
                   help="comma-separated GPT-Live delegated models (default: as --models)")
    p.add_argument("--role", choices=["user", "admin"])
    p.add_argument("--audio-minutes", dest="audio_minutes", metavar="MIN", help="max_audio_minutes (per period)")
    p.add_argument("--max-sessions", dest="max_sessions", metavar="N", help="sessions open at once")
    p.add_argument("--rate", metavar="N", help="max_sessions_per_minute")
    p.add_argument("--team", help="the team the key belongs to ('none': no team)")
    p.add_argument("--expires", help="an ISO 8601 time, or a duration from now (30d, 12h); 'never' clears it")
    p.add_argument("--user", help="who the key is for (written into its spend records)")
    p.add_argument("--tag", action="append", help="a tag (repeat for more; written into its spend records)")
    p.add_argument("--metadata", metavar="JSON", help="metadata: a JSON object")
