"""The price database's entries turned into rtproxy's prices, rate by rate, on hand-made entries
(the database itself is looked up once per process and cached, so these call the conversion)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rtproxy.config import ModelConfig, PriceConfig
from rtproxy.spend import pricing
from rtproxy.spend.pricing import (
    Price,
    _rate,
    price_for,
    price_from_config,
    price_from_database,
    price_responses_usage,
    price_seconds,
    price_usage,
    token_split,
)


def entry(**rates: Any) -> SimpleNamespace:
    return SimpleNamespace(**rates)


def test_a_rate_is_the_first_name_given_and_a_tiered_one_its_base() -> None:
    assert _rate(entry(a=None, b=2), "a", "b") == 2.0 and isinstance(_rate(entry(b=2), "a", "b"), float)
    assert _rate(entry(a=SimpleNamespace(base=3.5, tiers=[])), "a") == 3.5
    assert _rate(entry(a=1, b=2), "a", "b") == 1.0
    assert _rate(entry(), "a") is None


@pytest.mark.parametrize("rates, expected", [
    # every rate given
    (dict(input_mtok=4, output_mtok=16, input_audio_mtok=32, output_audio_mtok=64, cache_read_mtok=0.4,
          cache_audio_read_mtok=0.5, input_image_mtok=5, cache_image_read_mtok=0.6),
     Price(4, 32, 0.4, 0.5, 16, 64, input_image=5, cached_image=0.6)),
    # no cache, audio or image rates: each at the nearest rate the entry gives, never less
    (dict(input_mtok=4, output_mtok=16), Price(4, 4, 4, 4, 16, 16, input_image=4, cached_image=4)),
    (dict(input_mtok=4, output_mtok=16, input_audio_mtok=32), Price(4, 32, 4, 32, 16, 16, input_image=4,
                                                                     cached_image=4)),
    (dict(input_mtok=4, input_image_mtok=8), Price(4, 4, 4, 4, 0, 0, input_image=8, cached_image=8)),
    (dict(output_mtok=16), Price(0, 0, 0, 0, 16, 16)),
    (dict(input_audio_mtok=6), Price(0, 6, 0, 6, 0, 0)),
    # an hourly audio rate (whisper-1, a GPT-Live voice model)
    (dict(input_audio_hours=0.36), Price(0, 0, 0, 0, 0, 0, audio_per_hour=0.36)),
    (dict(audio_hours=3.0), Price(0, 0, 0, 0, 0, 0, audio_per_hour=3.0)),
    (dict(input_mtok=2.5, output_mtok=10, input_audio_hours=0.36),
     Price(2.5, 2.5, 2.5, 2.5, 10, 10, input_image=2.5, cached_image=2.5, audio_per_hour=0.36)),
    (dict(), None),
])
def test_a_database_entry_becomes_a_price_rate_by_rate(rates: dict[str, Any], expected: Price | None) -> None:
    assert price_from_database(entry(**rates)) == expected


# -- found by the mutation run (2026-12-02) ---------------------------------------------------------

def test_a_configured_price_keeps_every_rate_it_names() -> None:
    p = PriceConfig(input_text=1, input_audio=2, output_text=3, output_audio=4, cached_text=5, cached_audio=6,
                    input_image=7, cached_image=8, audio_per_hour=9, standby_audio_per_hour=10)
    assert price_from_config(p) == Price(1, 2, 5, 6, 3, 4, input_image=7, cached_image=8, audio_per_hour=9,
                                         standby_per_hour=10)
    # left out: cached at the uncached rate, images at the text rate, no hourly rates
    assert price_from_config(PriceConfig(input_text=1, input_audio=2, output_text=3, output_audio=4)) == \
        Price(1, 2, 1, 2, 3, 4, input_image=1, cached_image=1, audio_per_hour=None, standby_per_hour=None)
    # a cached image rate falls back to the image rate, not the text one
    assert price_from_config(PriceConfig(input_text=1, input_image=7)).cached_image == 7


@pytest.mark.parametrize(("model", "asked"), [
    (ModelConfig(name="alias", provider="openai", upstream_model="gpt-realtime-2025-08-28"),
     [("openai", "gpt-realtime-2025-08-28"), ("openai", "gpt-realtime"), ("openai", "alias")]),
    (ModelConfig(name="gpt-realtime", provider="local"), [("openai", "gpt-realtime")]),  # asked once
    (ModelConfig(name="dep", provider="azure", upstream_model="my-deploy-2025-01-02"),
     [("azure", "my-deploy-2025-01-02"), ("azure", "my-deploy"), ("openai", "my-deploy-2025-01-02"),
      ("openai", "my-deploy"), ("openai", "dep")]),
])
def test_the_database_is_asked_for_each_name_in_order(monkeypatch: pytest.MonkeyPatch, model: ModelConfig,
                                                      asked: list[tuple[str, str]]) -> None:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(pricing, "database_price", lambda provider, name: calls.append((provider, name)))
    assert price_for(model) is None
    assert calls == asked
    found = Price(1, 1, 1, 1, 1, 1)
    monkeypatch.setattr(pricing, "database_price", lambda provider, name: found if name == asked[-1][1] else None)
    assert price_for(model) is found


def test_costs_are_rounded_to_a_ten_billionth_of_a_dollar() -> None:
    price = Price(1.23456789, 0, 0, 0, 0, 0, audio_per_hour=1.23456789)
    usage = {"input_tokens": 1, "input_token_details": {"text_tokens": 1}}
    assert price_usage(usage, price) == (1.2346e-06, {"input_text": 1.2346e-06, "input_audio": 0.0,
                                                      "cached_text": 0.0, "cached_audio": 0.0, "input_image": 0.0,
                                                      "cached_image": 0.0, "output_text": 0.0, "output_audio": 0.0})
    assert price_usage({"type": "duration", "seconds": 1}, price) == (0.0003429355, {"audio_duration": 0.0003429355})
    assert price_seconds(1, 1, price) == (0.000685871, {"active_seconds": 0.0003429355,
                                                        "paused_seconds": 0.0003429355})
    assert price_responses_usage({"input_tokens": 2, "output_tokens": 1,
                                  "input_tokens_details": {"cached_tokens": 1}},
                                 Price(1.23456789, 0, 0.123456789, 0, 1.23456789, 0)) == (
        2.5927e-06, {"input_text": 1.2346e-06, "cached_text": 1.235e-07, "output_text": 1.2346e-06})


def test_one_second_and_one_token_are_counted() -> None:
    assert price_usage({"type": "duration", "seconds": 1}, Price(0, 0, 0, 0, 0, 0, audio_per_hour=3600))[0] == 1.0
    assert price_usage({"type": "duration", "seconds": 0}, Price(0, 0, 0, 0, 0, 0, audio_per_hour=3600))[0] == 0.0
    assert price_responses_usage({"input_tokens": 1}, Price(1e6, 0, 0, 0, 0, 0))[0] == 1.0


def test_a_beta_usage_caches_text_first_and_never_images() -> None:
    usage = {"input_tokens": 15, "input_token_details": {"text_tokens": 2, "audio_tokens": 8, "image_tokens": 5,
                                                        "cached_tokens": 12}}
    split = token_split(usage)
    assert (split["cached_text"], split["cached_audio"], split["cached_image"]) == (2, 8, 0)
    assert (split["input_text"], split["input_audio"], split["input_image"]) == (0, 0, 5)


def test_gpt_live_seconds_need_an_hourly_rate_and_paused_ones_default_to_it() -> None:
    assert price_seconds(10, 5, None) == (None, None)
    assert price_seconds(10, 5, Price(1, 1, 1, 1, 1, 1)) == (None, None)
    assert price_seconds(10, 5, Price(0, 0, 0, 0, 0, 0, audio_per_hour=360)) == (1.5, {"active_seconds": 1.0,
                                                                                       "paused_seconds": 0.5})
    assert price_seconds(10, 5, Price(0, 0, 0, 0, 0, 0, audio_per_hour=360, standby_per_hour=36)) == (
        1.05, {"active_seconds": 1.0, "paused_seconds": 0.05})
