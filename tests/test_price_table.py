"""The exported price table answers as the price database does, and is cached for the day."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from genai_prices import data_snapshot

from rtproxy.spend import price_table
from rtproxy.spend.price_table import PriceTable, export
from rtproxy.spend.pricing import database_price, table_price

#: The providers rtproxy prices under (rtproxy/providers/), and one the database names by a
#: provider_match rule only ("xai" → x-ai).
PROVIDERS = ["openai", "azure", "google", "google-vertex", "x-ai", "xai"]


def _clause_names(match: Any) -> list[str]:
    names = []
    for attr in ("or_", "and_"):
        for sub in getattr(match, attr, None) or ():
            names += _clause_names(sub)
    for attr in ("equals", "starts_with", "ends_with", "contains"):
        value = getattr(match, attr, None)
        if value:
            names += [value, value + "-2025-08-28", value.upper()]
    return names


def _names_to_try() -> list[tuple[str, str]]:
    providers = {p.id: p for p in data_snapshot.get_snapshot().providers}
    pairs = []
    for asked in PROVIDERS:
        provider = providers.get(asked) or providers["x-ai"]
        for model in provider.models:
            for name in [model.id, model.id + "-20250828", model.id + "-2025-08-28", *_clause_names(model.match)]:
                pairs.append((asked, name))
        pairs += [(asked, "no-such-model"), (asked, "gpt-realtime"), (asked, "whisper-1"),
                  (asked, "gemini-live-2.5-flash"), (asked, "grok-voice")]
    return pairs


def test_the_table_prices_every_name_of_every_priced_provider_as_the_database_does() -> None:
    table = PriceTable(json.loads(json.dumps(export(PROVIDERS, dt.datetime.now(dt.UTC)))))
    pairs = _names_to_try()
    assert len(pairs) > 1000
    wrong = [(p, n, table_price(table, p, n), database_price(p, n)) for p, n in pairs
             if table_price(table, p, n) != database_price(p, n)]
    assert wrong == []
    assert table_price(table, "openai", "gpt-realtime") is not None  # not all None by accident


def test_a_provider_the_table_was_not_exported_for_is_asked_of_the_database() -> None:
    table = PriceTable(export(["google"], dt.datetime.now(dt.UTC)))
    assert not table.knows("openai")
    assert table_price(table, "openai", "gpt-realtime") == database_price("openai", "gpt-realtime")


def test_load_exports_in_a_child_once_a_day_and_reads_the_cache_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    stale = tmp_path / "rtproxy" / "price-table-2020-01-01-0000000000000000.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    table = price_table.load(["openai", "x-ai"])
    assert table is not None
    assert table_price(table, "openai", "gpt-realtime") == database_price("openai", "gpt-realtime")
    cached = list((tmp_path / "rtproxy").glob("price-table-*.json"))
    assert [p.name[12:22] for p in cached] == [dt.datetime.now(dt.UTC).date().isoformat()]  # the stale one pruned

    def no_child(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("exported again")

    monkeypatch.setattr(subprocess, "run", no_child)
    again = price_table.load(["x-ai", "openai"])  # the same providers, another order
    assert again is not None and again.rates("x-ai", "grok-voice") == table.rates("x-ai", "grok-voice")


def test_a_child_that_fails_means_no_table_and_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def failing(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(args, 1, b"", b"Traceback ...\nImportError: no genai_prices\n")

    monkeypatch.setattr(subprocess, "run", failing)
    assert price_table.load(["openai"]) is None
    assert "could not be exported" in caplog.text and "ImportError" in caplog.text
    assert not list(tmp_path.rglob("price-table-*"))
