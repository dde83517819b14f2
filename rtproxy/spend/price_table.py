"""The price database's rows a gateway can ask for, as a small table in the gateway's process.

genai-prices holds every provider's models (47 providers, some 2,300 models) as Pydantic
objects: 0.25 s to load and some 16 MiB of every gateway process, where a gateway prices a few
providers' models. So a child process (this module, run as ``python -m``) loads the database
and prints, for the providers asked and the providers they fall back to, every model's match
rule and the rates :func:`~rtproxy.spend.pricing.price_from_database` reads, as of now. The
gateway keeps that (a few hundred rows, well under 1 MiB) and looks names up in it by
genai-prices' own rules (``Provider.find_model``): the name lower-cased, the first model whose
rule matches, in the database's order; a compact date (``-20251211``) retried dashed; one step
of fallback providers. ``tests/test_price_table.py`` checks that the table answers as the
database does for every model of the providers rtproxy prices under.

A price is taken as of the export, as :func:`~rtproxy.spend.pricing.database_price` takes it at
its first lookup: the export is cached for the day (UTC) under ``$XDG_CACHE_HOME/rtproxy``, per
genai-prices version and providers asked, so restarts and workers do not each start a child.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("rtproxy.pricing")

#: The ``ModelPrice`` fields price_from_database reads (a tiered rate: its base rate).
RATE_FIELDS = ("input_mtok", "output_mtok", "input_audio_mtok", "input_audio_hours", "audio_hours",
               "input_image_mtok", "cache_read_mtok", "cache_audio_read_mtok", "cache_image_read_mtok",
               "output_audio_mtok", "input_text_messages_kcount")
#: The child's whole run (start Python, load the database, export): beyond it, no table (the
#: gateway then loads the database in-process, as before).
EXPORT_TIMEOUT_S = 60.0
#: The most the child may print; an export of every provider is some 600 KB.
MAX_EXPORT_BYTES = 8 * 2**20
#: Version of this file's export format (part of the cache key).
FORMAT = 1

_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


# -- the child: export --------------------------------------------------------------------------

def _clause(match: Any) -> Any:
    """A genai-prices match clause as JSON: ``{"equals": s}``, ``{"or": [...]}``, …"""
    for attr, key in (("or_", "or"), ("and_", "and")):
        if hasattr(match, attr):
            return {key: [_clause(c) for c in getattr(match, attr)]}
    for key in ("equals", "starts_with", "ends_with", "contains", "regex"):
        if hasattr(match, key):
            return {key: getattr(match, key)}
    raise ValueError(f"unknown match clause {type(match).__name__}")  # a newer database: no table


def _rates(model_price: Any) -> dict[str, float]:
    rates = {}
    for name in RATE_FIELDS:
        value = getattr(model_price, name, None)
        if value is not None:
            rates[name] = float(getattr(value, "base", value))
    return rates


def export(provider_ids: list[str], now: dt.datetime) -> dict[str, Any]:
    """The table for ``provider_ids`` as of ``now`` (imports the database: run in the child)."""
    from genai_prices import data_snapshot
    from genai_prices.data_snapshot import find_provider_by_id

    providers = data_snapshot.get_snapshot().providers
    by_id = {p.id: p for p in providers}
    resolved: dict[str, str | None] = {}
    out: dict[str, Any] = {}

    def add(provider: Any) -> None:
        if provider.id not in out:
            out[provider.id] = {
                "fallbacks": list(provider.fallback_model_providers or ()),
                "models": [{"id": m.id, "match": _clause(m.match), "rates": _rates(m.get_prices(now))}
                           for m in provider.models],
            }

    for pid in provider_ids:
        provider = find_provider_by_id(providers, pid)
        resolved[pid] = provider.id if provider is not None else None
        if provider is not None:
            add(provider)
            for fallback in provider.fallback_model_providers or ():
                if fallback in by_id:
                    add(by_id[fallback])
    return {"format": FORMAT, "resolved": resolved, "providers": out}


# -- the gateway: look up -----------------------------------------------------------------------

def _matches(clause: dict[str, Any], ref: str) -> bool:
    """genai-prices' ``MatchLogic.is_match`` (``ref`` is lower-cased already)."""
    (key, value), = clause.items()
    if key == "equals":
        return ref == value.lower()
    if key == "starts_with":
        return ref.startswith(value.lower())
    if key == "ends_with":
        return ref.endswith(value.lower())
    if key == "contains":
        return value.lower() in ref
    if key == "regex":
        return re.search(value, ref) is not None
    if key == "or":
        return any(_matches(c, ref) for c in value)
    if key == "and":
        return all(_matches(c, ref) for c in value)
    raise ValueError(f"unknown match clause {key!r}")


def _dashed_dates(ref: str) -> str:
    def replace(m: re.Match[str]) -> str:
        year, month, day = (int(m.group(i)) for i in range(2, 5))
        try:
            dt.date(year, month, day)
        except ValueError:
            return m.group(0)
        return f"{m.group(1)}{year:04d}-{month:02d}-{day:02d}"

    return _COMPACT_DATE.sub(replace, ref)


class PriceTable:
    """Lookups in an export: :meth:`rates` answers as ``find_provider_model`` would."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._resolved: dict[str, str | None] = data["resolved"]
        self._providers: dict[str, Any] = data["providers"]

    def knows(self, provider_id: str) -> bool:
        """Whether this table was exported for ``provider_id`` (else: ask the database)."""
        return provider_id in self._resolved

    def rates(self, provider_id: str, model_ref: str) -> dict[str, float] | None:
        """The rates of the model ``model_ref`` names at ``provider_id``, or None (no such model)."""
        pid = self._resolved[provider_id]
        if pid is None:
            return None
        ref = model_ref.lower()
        found = self._find(pid, ref, fallback=True)
        if found is None:
            dashed = _dashed_dates(ref)
            if dashed != ref:
                found = self._find(pid, dashed, fallback=True)
        return None if found is None else found["rates"]

    def _find(self, pid: str, ref: str, *, fallback: bool) -> dict[str, Any] | None:
        provider = self._providers.get(pid)
        if provider is None:
            return None
        for model in provider["models"]:
            if _matches(model["match"], ref):
                return model  # type: ignore[no-any-return]
        if fallback:
            for other in provider["fallbacks"]:
                found = self._find(other, ref, fallback=False)
                if found is not None:
                    return found
        return None


def _cache_path(provider_ids: list[str], today: dt.date) -> Path | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        db_version = version("genai-prices")
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rtproxy"
    except (PackageNotFoundError, RuntimeError, KeyError):  # no version; no home (a uid without a passwd entry)
        return None
    key = hashlib.sha256(json.dumps([FORMAT, db_version, sorted(provider_ids)]).encode()).hexdigest()[:16]
    return root / f"price-table-{today.isoformat()}-{key}.json"


def load(provider_ids: list[str]) -> PriceTable | None:
    """The table for ``provider_ids``: from today's cache, else exported by a child process (and
    cached). None when the child fails (the caller then uses the database in-process). Blocking:
    run it in a thread."""
    provider_ids = sorted(set(provider_ids))
    now = dt.datetime.now(dt.UTC)
    cache = _cache_path(provider_ids, now.date())
    if cache is not None:
        try:
            return PriceTable(json.loads(cache.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none yet, or not one of ours: exported again
    try:
        # -P: the gateway's working directory is not on the child's path (a json.py there)
        out = subprocess.run([sys.executable, "-P", "-m", __name__, *provider_ids], capture_output=True,
                             timeout=EXPORT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("the price table could not be exported (%s); the price database loads in-process", exc)
        return None
    if out.returncode != 0 or len(out.stdout) > MAX_EXPORT_BYTES:
        why = (out.stderr.decode(errors="replace").strip().splitlines() or ["output too large"])[-1][:300]
        log.warning("the price table could not be exported (exit %d: %s); the price database loads in-process",
                    out.returncode, why)
        return None
    try:
        data = json.loads(out.stdout)
        table = PriceTable(data)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("the price table export was unreadable (%s); the price database loads in-process", exc)
        return None
    if cache is not None:
        try:  # written whole or not at all: a reader never sees half a file
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(out.stdout)
            tmp.replace(cache)
            for old in cache.parent.glob("price-table-*.json"):  # earlier days' exports
                if old.name[len("price-table-"):][:10] < cache.name[len("price-table-"):][:10]:
                    old.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only home: no cache, every start exports
    return table


if __name__ == "__main__":
    json.dump(export(sys.argv[1:], dt.datetime.now(dt.UTC)), sys.stdout, separators=(",", ":"))
