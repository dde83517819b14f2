"""Prices of realtime models and the cost of one response's usage.

Rates are USD per one million tokens, per modality: uncached text in, uncached audio in, cached
text in, cached audio in, text out, audio out. ``usage`` is what ``response.done`` reports;
cached tokens are a subset of input tokens, so the uncached part is ``details - cached``.
An unknown model has no price: its cost is ``None`` (and the caller warns once), never $0.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from ..config import ModelConfig, PriceConfig

PER_TOKEN = 1e-6  # table rates are per 1M tokens


@attrs.frozen
class Price:
    input_text: float
    input_audio: float
    cached_text: float
    cached_audio: float
    output_text: float
    output_audio: float

    def to_json(self) -> dict[str, float]:
        """Per-1M-token rates, for the playground's live cost display."""
        return attrs.asdict(self)


# Published list prices (USD / 1M tokens). Azure's realtime deployments are priced like OpenAI's.
_GPT_REALTIME = Price(4.00, 32.00, 0.40, 0.40, 16.00, 64.00)
_GPT_REALTIME_MINI = Price(0.60, 10.00, 0.06, 0.30, 2.40, 20.00)
_GPT_4O_RT = Price(5.00, 40.00, 2.50, 2.50, 20.00, 80.00)
_GPT_4O_RT_2024_10 = Price(5.00, 100.00, 2.50, 20.00, 20.00, 200.00)
_GPT_4O_MINI_RT = Price(0.60, 10.00, 0.30, 0.30, 2.40, 20.00)

PRICES: dict[str, Price] = {
    "gpt-realtime": _GPT_REALTIME,
    "gpt-realtime-2025-08-28": _GPT_REALTIME,
    "gpt-realtime-mini": _GPT_REALTIME_MINI,
    "gpt-realtime-mini-2025-10-06": _GPT_REALTIME_MINI,
    "gpt-4o-realtime-preview": _GPT_4O_RT,
    "gpt-4o-realtime-preview-2025-06-03": _GPT_4O_RT,
    "gpt-4o-realtime-preview-2024-12-17": _GPT_4O_RT,
    "gpt-4o-realtime-preview-2024-10-01": _GPT_4O_RT_2024_10,
    "gpt-4o-mini-realtime-preview": _GPT_4O_MINI_RT,
    "gpt-4o-mini-realtime-preview-2024-12-17": _GPT_4O_MINI_RT,
}
PRICES.update({f"azure/{name}": price for name, price in list(PRICES.items())})

_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def price_from_config(p: PriceConfig) -> Price:
    return Price(
        input_text=p.input_text,
        input_audio=p.input_audio,
        cached_text=p.input_text if p.cached_text is None else p.cached_text,
        cached_audio=p.input_audio if p.cached_audio is None else p.cached_audio,
        output_text=p.output_text,
        output_audio=p.output_audio,
    )


def price_for(model: ModelConfig) -> Price | None:
    """The config override, else the table entry for the provider's model name, else None."""
    if model.price is not None:
        return price_from_config(model.price)
    upstream = model.target_model
    candidates = [upstream, _DATE_SUFFIX.sub("", upstream)]
    if model.provider == "azure":
        candidates = [f"azure/{c}" for c in candidates] + candidates
    candidates.append(model.name)
    for name in candidates:
        if name in PRICES:
            return PRICES[name]
    return None


def _int(d: Any, key: str) -> int:
    if isinstance(d, dict):
        v = d.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return 0


def token_split(usage: dict[str, Any]) -> dict[str, int]:
    """The six billable token counts of one usage object."""
    inp = usage.get("input_token_details") or {}
    out = usage.get("output_token_details") or {}
    text_in, audio_in = _int(inp, "text_tokens"), _int(inp, "audio_tokens")
    cached = _int(inp, "cached_tokens")
    details = inp.get("cached_tokens_details") if isinstance(inp, dict) else None
    if isinstance(details, dict):
        cached_text, cached_audio = _int(details, "text_tokens"), _int(details, "audio_tokens")
    else:
        # Beta usage has only the total: the cached prefix is text first (instructions, history).
        cached_text = min(cached, text_in)
        cached_audio = min(cached - cached_text, audio_in)
    cached_text = min(cached_text, text_in)
    cached_audio = min(cached_audio, audio_in)
    return {
        "input_text": text_in - cached_text,
        "input_audio": audio_in - cached_audio,
        "cached_text": cached_text,
        "cached_audio": cached_audio,
        "output_text": _int(out, "text_tokens"),
        "output_audio": _int(out, "audio_tokens"),
    }


def price_usage(usage: dict[str, Any] | None, price: Price | None) -> tuple[float | None, dict[str, float] | None]:
    """(total cost in USD, cost per modality), or (None, None) when the model has no price."""
    if price is None:
        return None, None
    split = token_split(usage or {})
    breakdown = {name: round(count * getattr(price, name) * PER_TOKEN, 10) for name, count in split.items()}
    return round(sum(breakdown.values()), 10), breakdown
