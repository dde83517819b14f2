"""Keys and teams as data in the ledger (schema migration 2): their rows, and the SQL that reads
and changes them. Every function takes a :class:`~.db.Conn` and runs in a worker thread
(:meth:`~.db.Ledger.run`); each change is one transaction that also moves ``registry_version``,
which every server polls (:mod:`.registry`) to read the keys again.

A key's secret is never stored: its sha256 is (the gateway's lookup hashes what a client presents
the same way). Rotation keeps the previous digest beside the new one until its grace period ends.
Revocation keeps the row (``revoked_us``): a revoked key's name stays in the spend records it
wrote, and the audit of who revoked what is the server log's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import attrs

from ..auth.keys import LiveKey, TeamTerms, VirtualKey
from ..periods import Period
from .db import Conn


@attrs.frozen
class KeyTerms:
    """What an operator sets on a key (all of it optional but the models)."""

    models: tuple[str, ...] = ("*",)
    transcription_models: tuple[str, ...] | None = None
    delegation_models: tuple[str, ...] | None = None
    role: str = "user"
    max_budget_usd: float | None = None
    budget_period: Period | None = None
    soft_budget_usd: float | None = None
    max_audio_minutes: float | None = None
    max_sessions: int | None = None
    max_sessions_per_minute: int | None = None
    store_prompts: bool | None = None
    user: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def to_json(self) -> str:
        return _terms_json(self)

    @classmethod
    def from_json(cls, text: str) -> KeyTerms:
        return _terms_from_json(cls, text)


@attrs.frozen
class TeamTermsData:
    max_budget_usd: float | None = None
    budget_period: Period | None = None
    soft_budget_usd: float | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def to_json(self) -> str:
        return _terms_json(self)

    @classmethod
    def from_json(cls, text: str) -> TeamTermsData:
        return _terms_from_json(cls, text)


T = TypeVar("T")


def _terms_json(terms: Any) -> str:
    """Terms as the JSON the row holds: tuples as lists, the metadata as a plain object."""
    d = {k: list(v) if isinstance(v, tuple) else dict(v) if k == "metadata" else v
         for k, v in attrs.asdict(terms, recurse=False).items()}
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def _terms_from_json(cls: type[T], text: str) -> T:
    """A row's JSON as terms; a newer server's extra terms are ignored, lists become tuples."""
    known = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(text).items() if k in known}
    return cls(**d)


@attrs.frozen
class KeyRow:
    name: str
    sha256: str = attrs.field(repr=False)
    hint: str
    team: str | None
    terms: KeyTerms
    created_us: int
    updated_us: int
    anchor_us: int
    expires_us: int | None = None
    revoked_us: int | None = None
    previous_sha256: str | None = attrs.field(default=None, repr=False)
    previous_until_us: int | None = None


@attrs.frozen
class TeamRow:
    name: str
    terms: TeamTermsData
    created_us: int
    updated_us: int
    anchor_us: int


class RegistryConflict(Exception):
    """A name taken, or a secret already used by another key."""


class RegistryNotFound(Exception):
    """No such key or team (or the key was revoked)."""


def now_us() -> int:
    return int(time.time() * 1_000_000)


_KEY_COLUMNS = ("name, sha256, hint, team, terms, created_us, updated_us, anchor_us, expires_us, revoked_us, "
                "previous_sha256, previous_until_us")


def _key_row(r: Sequence[Any]) -> KeyRow:
    return KeyRow(r[0], r[1], r[2], r[3], KeyTerms.from_json(r[4]), int(r[5]), int(r[6]), int(r[7]),
                  None if r[8] is None else int(r[8]), None if r[9] is None else int(r[9]), r[10],
                  None if r[11] is None else int(r[11]))


def _team_row(r: Sequence[Any]) -> TeamRow:
    return TeamRow(r[0], TeamTermsData.from_json(r[1]), int(r[2]), int(r[3]), int(r[4]))


def registry_version(conn: Conn) -> int:
    rows = conn.execute("SELECT version FROM registry_version WHERE id = 1")
    return int(rows[0][0]) if rows else 0


def _bump(conn: Conn) -> None:
    conn.execute("UPDATE registry_version SET version = version + 1 WHERE id = 1")


def load_registry(conn: Conn) -> tuple[int, list[KeyRow], list[TeamRow]]:
    """The version, every key not revoked, and every team: one consistent read (a transaction)."""
    with conn.transaction() if conn.dialect == "postgres" else _nothing():
        version = registry_version(conn)
        keys = [_key_row(r) for r in conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE revoked_us IS NULL")]
        teams = [_team_row(r) for r in conn.execute(
            "SELECT name, terms, created_us, updated_us, anchor_us FROM teams")]
    return version, keys, teams


class _nothing:
    """SQLite reads one snapshot per statement; three statements in a row may see a change land
    between them, which the next poll (the version moved) reads again."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def get_key(conn: Conn, name: str, *, include_revoked: bool = False) -> KeyRow | None:
    rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE name = ?", (name,))
    if not rows:
        return None
    row = _key_row(rows[0])
    return row if include_revoked or row.revoked_us is None else None


def get_key_by_digest(conn: Conn, sha256: str) -> KeyRow | None:
    rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE sha256 = ? AND revoked_us IS NULL", (sha256,))
    return _key_row(rows[0]) if rows else None


def list_keys(conn: Conn, *, team: str | None = None, include_revoked: bool = False, limit: int = 100,
              offset: int = 0) -> tuple[list[KeyRow], int]:
    """One page of keys by name, and how many there are in all."""
    where, params = [], []
    if not include_revoked:
        where.append("revoked_us IS NULL")
    if team is not None:
        where.append("team = ?")
        params.append(team)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = int(conn.execute(f"SELECT COUNT(*) FROM api_keys{clause}", params)[0][0])
    rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys{clause} ORDER BY name LIMIT ? OFFSET ?",
                        (*params, limit, offset))
    return [_key_row(r) for r in rows], total


def insert_key(conn: Conn, row: KeyRow) -> KeyRow:
    """Add ``row``. Raises RegistryConflict: a key of that name exists, or existed — a revoked key's
    name is not given again (its spend totals and records are under that name; a new key would
    inherit them), and its row stays for the audit."""
    with conn.transaction():
        existing = conn.execute("SELECT revoked_us FROM api_keys WHERE name = ?", (row.name,))
        if existing and existing[0][0] is None:
            raise RegistryConflict(f"a key named {row.name!r} exists")
        if existing:
            raise RegistryConflict(f"a key named {row.name!r} was revoked: a name is not reused (its spend and "
                                   "records stay under it); choose another")
        if conn.execute("SELECT 1 FROM api_keys WHERE sha256 = ? OR previous_sha256 = ?", (row.sha256, row.sha256)):
            raise RegistryConflict("that secret is already some key's")
        if row.team is not None and not conn.execute("SELECT 1 FROM teams WHERE name = ?", (row.team,)):
            raise RegistryNotFound(f"no team named {row.team!r}")
        conn.execute(f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (row.name, row.sha256, row.hint, row.team, row.terms.to_json(), row.created_us,
                      row.updated_us, row.anchor_us, row.expires_us, row.revoked_us, row.previous_sha256,
                      row.previous_until_us))
        _bump(conn)
    return row


_UNSET: Any = object()


def update_key(conn: Conn, name: str, *, terms: KeyTerms | None = None, team: str | None = _UNSET,
               expires_us: int | None = _UNSET) -> KeyRow:
    """Change a key's terms, team or expiry (what is not given stays). A key given a budget period
    it did not have counts its periods from now. Raises RegistryNotFound."""
    with conn.transaction():
        row = get_key(conn, name)
        if row is None:
            raise RegistryNotFound(f"no key named {name!r}")
        if team is not _UNSET and team is not None and not conn.execute("SELECT 1 FROM teams WHERE name = ?", (team,)):
            raise RegistryNotFound(f"no team named {team!r}")
        at = now_us()
        new_terms = terms if terms is not None else row.terms
        anchor = at if new_terms.budget_period != row.terms.budget_period else row.anchor_us
        updated = attrs.evolve(row, terms=new_terms, team=row.team if team is _UNSET else team,
                               expires_us=row.expires_us if expires_us is _UNSET else expires_us,
                               updated_us=at, anchor_us=anchor)
        conn.execute("UPDATE api_keys SET terms = ?, team = ?, expires_us = ?, updated_us = ?, anchor_us = ? "
                     "WHERE name = ?", (updated.terms.to_json(), updated.team, updated.expires_us, at, anchor, name))
        _bump(conn)
    return updated


def rotate_key(conn: Conn, name: str, sha256: str, hint: str, grace_s: float) -> KeyRow:
    """Give a key a new secret; the old one stays valid for ``grace_s`` (0: not at all)."""
    with conn.transaction():
        row = get_key(conn, name)
        if row is None:
            raise RegistryNotFound(f"no key named {name!r}")
        if conn.execute("SELECT 1 FROM api_keys WHERE sha256 = ? OR previous_sha256 = ?", (sha256, sha256)):
            raise RegistryConflict("that secret is already some key's")
        at = now_us()
        until = at + int(grace_s * 1_000_000) if grace_s > 0 else None
        conn.execute("UPDATE api_keys SET sha256 = ?, hint = ?, previous_sha256 = ?, previous_until_us = ?, "
                     "updated_us = ? WHERE name = ?",
                     (sha256, hint, row.sha256 if until else None, until, at, name))
        _bump(conn)
    return attrs.evolve(row, sha256=sha256, hint=hint, previous_sha256=row.sha256 if until else None,
                        previous_until_us=until, updated_us=at)


def revoke_key(conn: Conn, name: str) -> KeyRow:
    with conn.transaction():
        row = get_key(conn, name)
        if row is None:
            raise RegistryNotFound(f"no key named {name!r}")
        at = now_us()
        conn.execute("UPDATE api_keys SET revoked_us = ?, updated_us = ?, previous_sha256 = NULL, "
                     "previous_until_us = NULL WHERE name = ?", (at, at, name))
        _bump(conn)
    return attrs.evolve(row, revoked_us=at, updated_us=at)


def get_team(conn: Conn, name: str) -> TeamRow | None:
    rows = conn.execute("SELECT name, terms, created_us, updated_us, anchor_us FROM teams WHERE name = ?", (name,))
    return _team_row(rows[0]) if rows else None


def list_teams(conn: Conn) -> list[TeamRow]:
    return [_team_row(r) for r in conn.execute(
        "SELECT name, terms, created_us, updated_us, anchor_us FROM teams ORDER BY name")]


def upsert_team(conn: Conn, name: str, terms: TeamTermsData, *, create: bool) -> TeamRow:
    """Create a team (``create``: RegistryConflict if it exists) or change one (RegistryNotFound)."""
    with conn.transaction():
        row = get_team(conn, name)
        at = now_us()
        if create:
            if row is not None:
                raise RegistryConflict(f"a team named {name!r} exists")
            conn.execute("INSERT INTO teams (name, terms, created_us, updated_us, anchor_us) VALUES (?, ?, ?, ?, ?)",
                         (name, terms.to_json(), at, at, at))
            new = TeamRow(name, terms, at, at, at)
        else:
            if row is None:
                raise RegistryNotFound(f"no team named {name!r}")
            anchor = at if terms.budget_period != row.terms.budget_period else row.anchor_us
            conn.execute("UPDATE teams SET terms = ?, updated_us = ?, anchor_us = ? WHERE name = ?",
                         (terms.to_json(), at, anchor, name))
            new = TeamRow(name, terms, row.created_us, at, anchor)
        _bump(conn)
    return new


def delete_team(conn: Conn, name: str) -> None:
    """Remove a team that has no keys left (revoked ones aside). Raises RegistryNotFound, RegistryConflict."""
    with conn.transaction():
        if get_team(conn, name) is None:
            raise RegistryNotFound(f"no team named {name!r}")
        members = conn.execute("SELECT COUNT(*) FROM api_keys WHERE team = ? AND revoked_us IS NULL", (name,))
        if int(members[0][0]):
            raise RegistryConflict(f"team {name!r} still has {int(members[0][0])} key(s): move or revoke them first")
        conn.execute("DELETE FROM teams WHERE name = ?", (name,))
        _bump(conn)


def team_terms(team: TeamRow) -> TeamTerms:
    t = team.terms
    return TeamTerms(team.name, t.max_budget_usd, t.budget_period, team.anchor_us / 1e6, t.soft_budget_usd)


def live_key(row: KeyRow, teams: Mapping[str, TeamRow]) -> LiveKey:
    """A ledger key as the gateway's key store holds it."""
    t = row.terms
    team = teams.get(row.team) if row.team else None
    key = VirtualKey(
        name=row.name, sha256=row.sha256, models=t.models, role=t.role, max_budget_usd=t.max_budget_usd,
        max_sessions=t.max_sessions, max_sessions_per_minute=t.max_sessions_per_minute,
        store_prompts=t.store_prompts,
        transcription_models=t.models if t.transcription_models is None else t.transcription_models,
        delegation_models=t.models if t.delegation_models is None else t.delegation_models,
        max_audio_minutes=t.max_audio_minutes, budget_period=t.budget_period, budget_anchor_s=row.anchor_us / 1e6,
        soft_budget_usd=t.soft_budget_usd, team=team_terms(team) if team is not None else None,
        expires_at=None if row.expires_us is None else row.expires_us / 1e6, user=t.user, tags=t.tags,
        metadata_json=json.dumps(dict(t.metadata), separators=(",", ":")), source="ledger")
    until = None if row.previous_until_us is None else row.previous_until_us / 1e6
    return LiveKey(key, row.previous_sha256, until)
