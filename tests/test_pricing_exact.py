"""The price database's entries turned into rtproxy's prices, rate by rate, on hand-made entries
(the database itself is looked up once per process and cached, so these call the conversion)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rtproxy.spend.pricing import Price, _rate, price_from_database


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
