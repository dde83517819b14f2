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

# Migration 3: what the spend queries need beyond migration 1 (rtproxy/ledger/query.py).
# ``status``, ``start_us`` (the record's start_time) and ``duration_ms`` as columns; ``batch_no``:
# the number of the shipping batch that stored the row, from ``ledger_batches``, whose one row
# every batch increments in its own transaction — the row lock orders the batches' commits, so a
# reader following ``batch_no > N`` never misses a batch that commits later with a lower number;
# ``spend_hourly`` and ``spend_hourly_latency``: per hour (of start_time) × key × team × model ×
# provider, the sums a summary shows and the responses' latency as a histogram, added to in the
# same transaction as the records (only for records not stored before), so a month's summary
# reads ~720 hours of rows instead of millions of records. Rows shipped before migration 3 get
# their columns from ``data`` (SQLite's json_extract; Postgres's json operators, skipping the rare
# record whose text holds an escaped NUL) and are added to the rollups by the migration.
_HOURLY = """CREATE TABLE spend_hourly (
     hour_us {big} NOT NULL, key_name TEXT NOT NULL, team TEXT NOT NULL, model TEXT NOT NULL,
     provider TEXT NOT NULL, cost_usd {real} NOT NULL, billed {big} NOT NULL, responses {big} NOT NULL,
     sessions {big} NOT NULL, unpriced {big} NOT NULL, audio_in_ms {big} NOT NULL, audio_out_ms {big} NOT NULL,
     PRIMARY KEY (hour_us, key_name, team, model, provider))"""
_HOURLY_LATENCY = """CREATE TABLE spend_hourly_latency (
     hour_us {big} NOT NULL, key_name TEXT NOT NULL, team TEXT NOT NULL, model TEXT NOT NULL,
     provider TEXT NOT NULL, bin INTEGER NOT NULL, responses {big} NOT NULL,
     PRIMARY KEY (hour_us, key_name, team, model, provider, bin))"""
_QUERY_COLUMNS = (
    "ALTER TABLE spend_records ADD COLUMN status TEXT",
    "ALTER TABLE spend_records ADD COLUMN start_us {big}",
    "ALTER TABLE spend_records ADD COLUMN duration_ms {real}",
    "ALTER TABLE spend_records ADD COLUMN batch_no {big}",
    "CREATE INDEX spend_records_batch ON spend_records (batch_no)",
    "CREATE TABLE ledger_batches (id INTEGER PRIMARY KEY, n {big} NOT NULL)",
    "INSERT INTO ledger_batches (id, n) VALUES (1, 0)",
    _HOURLY,
    _HOURLY_LATENCY,
)
_SQLITE_BACKFILL = (
    """UPDATE spend_records SET status = json_extract(data, '$.status'),
         duration_ms = json_extract(data, '$.duration_ms'), batch_no = 0,
         start_us = CAST(ROUND((julianday(json_extract(data, '$.start_time')) - 2440587.5) * 86400000000) AS INTEGER)
       WHERE json_valid(data)""",
)
_PG_BACKFILL = (
    r"""UPDATE spend_records SET status = (data::json)->>'status', batch_no = 0,
         duration_ms = CASE WHEN json_typeof((data::json)->'duration_ms') = 'number'
                            THEN ((data::json)->>'duration_ms')::double precision END,
         start_us = CASE WHEN (data::json)->>'start_time' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d'
                         THEN (extract(epoch FROM ((data::json)->>'start_time')::timestamptz) * 1000000)::bigint END
       WHERE strpos(data, '\u0000') = 0""",
)


def _rollup_backfill(dialect: str) -> tuple[str, ...]:
    """The rollups of the rows already stored (the same sums as rtproxy.ledger.rollup)."""
    hour = "(COALESCE(start_us, time_us) / 3600000000) * 3600000000"
    billed = "record IN ('response', 'transcription', 'usage')"
    return (
        f"""INSERT INTO spend_hourly SELECT {hour}, COALESCE(key_name, ''), COALESCE(team, ''), COALESCE(model, ''),
              COALESCE(provider, ''),
              SUM(CASE WHEN {billed} THEN COALESCE(cost_usd, 0) ELSE 0 END),
              SUM(CASE WHEN {billed} THEN 1 ELSE 0 END), SUM(CASE WHEN record = 'response' THEN 1 ELSE 0 END),
              SUM(CASE WHEN record = 'session' THEN 1 ELSE 0 END),
              SUM(CASE WHEN {billed} AND cost_usd IS NULL THEN 1 ELSE 0 END),
              SUM(CASE WHEN {billed} THEN COALESCE(audio_in_ms, 0) ELSE 0 END),
              SUM(CASE WHEN {billed} THEN COALESCE(audio_out_ms, 0) ELSE 0 END)
            FROM spend_records WHERE record IN ('response', 'transcription', 'usage', 'session')
            GROUP BY 1, 2, 3, 4, 5""",
    )


MIGRATIONS = (*MIGRATIONS, Migration(
    3, "spend query columns, shipping batches, hourly rollups",
    sqlite=(*(s.format(big="INTEGER", real="REAL") for s in _QUERY_COLUMNS), *_SQLITE_BACKFILL,
            *_rollup_backfill("sqlite")),
    postgres=(*(s.format(big="BIGINT", real="DOUBLE PRECISION") for s in _QUERY_COLUMNS), *_PG_BACKFILL,
              *_rollup_backfill("postgres")),
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
