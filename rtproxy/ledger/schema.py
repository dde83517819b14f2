"""The ledger's schema, as numbered migrations.

Each migration runs once, in order, in its own transaction, and is recorded in
``ledger_schema`` (its version, name and when it was applied). :func:`rtproxy.ledger.db.Ledger.migrate`
runs those not applied yet, under a lock (SQLite's write lock, a Postgres advisory lock), so
several processes starting at once apply each migration exactly once. Never edit a migration that
has shipped: add the next one.

``spend_records``: one row per spend record, its ``id`` the primary key (shipping the same record
twice inserts it once). Columns: the record's kind (``record``), when it was written
(``time_us``: microseconds since the epoch, UTC: the record's ``end_time``, else ``time``, else
``start_time``), key, team (null until keys have teams), model, provider, session, ``cost_usd``,
audio in and out (ms) and the whole record as written in the JSONL (``data``, text: a record is
stored exactly as the audit log holds it; Postgres users may cast it, ``data::jsonb``).

``ledger_cursors``: where each shipper is in its spend log (the file's identity and the offset
after the last shipped line), written in the same transaction as the records it covers.

Migration 2, keys and teams as data (rtproxy.ledger.keys): ``api_keys`` (one row a key: its
name, the sha256 of its secret — never the secret —, the digest it was rotated from and until
when that one stays valid, a display hint, its team, its terms as JSON, expiry and revocation
times), ``teams`` (name, terms as JSON) and ``registry_version``: one row whose ``version``
every change to either table increments in the same transaction; each server polls it to know
when to read the keys again.
"""

from __future__ import annotations

from typing import Literal

import attrs

Dialect = Literal["sqlite", "postgres"]


@attrs.frozen
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgres


#: The summary columns carried by the time index, so a summary over a time range reads the index only.
_SUMMARY_COLUMNS = "record, key_name, model, provider, cost_usd, audio_in_ms, audio_out_ms"

_INDEXES = (
    "CREATE INDEX spend_records_key_time ON spend_records (key_name, time_us, id)",
    "CREATE INDEX spend_records_model_time ON spend_records (model, time_us)",
    "CREATE INDEX spend_records_provider_time ON spend_records (provider, time_us)",
    "CREATE INDEX spend_records_session ON spend_records (session_id, time_us)",
    "CREATE INDEX spend_records_team_time ON spend_records (team, time_us) WHERE team IS NOT NULL",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "spend records and shipper cursors",
        sqlite=(
            """CREATE TABLE spend_records (
                 id TEXT PRIMARY KEY, record TEXT NOT NULL, time_us INTEGER NOT NULL,
                 key_name TEXT, team TEXT, model TEXT, provider TEXT, session_id TEXT,
                 cost_usd REAL, audio_in_ms INTEGER, audio_out_ms INTEGER, data TEXT NOT NULL)""",
            """CREATE TABLE ledger_cursors (
                 name TEXT PRIMARY KEY, file_id TEXT, head TEXT, file_offset INTEGER NOT NULL,
                 updated_us INTEGER NOT NULL)""",
            *_INDEXES,
            f"CREATE INDEX spend_records_time ON spend_records (time_us, {_SUMMARY_COLUMNS})",
        ),
        postgres=(
            """CREATE TABLE spend_records (
                 id TEXT PRIMARY KEY, record TEXT NOT NULL, time_us BIGINT NOT NULL,
                 key_name TEXT, team TEXT, model TEXT, provider TEXT, session_id TEXT,
                 cost_usd DOUBLE PRECISION, audio_in_ms BIGINT, audio_out_ms BIGINT, data TEXT NOT NULL)""",
            """CREATE TABLE ledger_cursors (
                 name TEXT PRIMARY KEY, file_id TEXT, head TEXT, file_offset BIGINT NOT NULL,
                 updated_us BIGINT NOT NULL)""",
            *_INDEXES,
            f"CREATE INDEX spend_records_time ON spend_records (time_us) INCLUDE ({_SUMMARY_COLUMNS})",
        ),
    ),
)

_KEY_TABLES = (
    """CREATE TABLE api_keys (
         name TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, previous_sha256 TEXT, previous_until_us {big},
         hint TEXT NOT NULL, team TEXT, terms TEXT NOT NULL, expires_us {big}, revoked_us {big},
         created_us {big} NOT NULL, updated_us {big} NOT NULL, anchor_us {big} NOT NULL)""",
    "CREATE INDEX api_keys_team ON api_keys (team)",
    """CREATE TABLE teams (
         name TEXT PRIMARY KEY, terms TEXT NOT NULL, created_us {big} NOT NULL, updated_us {big} NOT NULL,
         anchor_us {big} NOT NULL)""",
    "CREATE TABLE registry_version (id INTEGER PRIMARY KEY, version {big} NOT NULL)",
    "INSERT INTO registry_version (id, version) VALUES (1, 0)",
)

MIGRATIONS = (*MIGRATIONS, Migration(
    2, "keys and teams",
    sqlite=tuple(s.format(big="INTEGER") for s in _KEY_TABLES),
    postgres=tuple(s.format(big="BIGINT") for s in _KEY_TABLES),
))

#: The newest schema this code knows.
SCHEMA_VERSION = MIGRATIONS[-1].version

VERSION_TABLE = {
    "sqlite": "CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
              "applied_us INTEGER NOT NULL)",
    "postgres": "CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_us BIGINT NOT NULL)",
}
#: pg_advisory_xact_lock's key for migrations (any constant; "rtpl" in ASCII).
PG_MIGRATION_LOCK = 0x7274706C
