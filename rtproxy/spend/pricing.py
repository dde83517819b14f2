"""Prices of realtime and transcription models, and the cost of one usage object.

Where prices come from: a model's ``[models.price]`` in the config when it has one, else the
``genai-prices`` package (Pydantic's maintained price database, looked up by the provider's model
name once per model and converted to a :class:`Price`). Newer prices arrive by upgrading that
package. An unknown model has no price: its cost is ``None`` (and the caller warns once), never $0.

Rates are USD per one million tokens, per modality: uncached text / audio / image in, cached
text / audio / image in, text and audio out; and USD per hour of audio for models billed by
duration (whisper-1, gpt-live-1). ``usage`` is what the provider reports: a ``response.done``'s
``usage``, or an input transcription's (``{"type": "tokens", …}`` or ``{"type": "duration",
"seconds": …}``). Cached tokens are a subset of input tokens, so the uncached part is
``details - cached``. Pricing a usage object is plain arithmetic, with no lookup and no import of
the price database: it runs once per billed response.
"""

from __future__ import annotations

import functools
import logging
import re
import types
from collections.abc import Callable
from datetime import UTC
from typing import TYPE_CHECKING, Any

import attrs

from ..config import ModelConfig, PriceConfig

if TYPE_CHECKING:
    from .price_table import PriceTable

log = logging.getLogger("rtproxy.pricing")

PER_TOKEN = 1e-6  # rates are per 1M tokens
PER_SECOND = 1 / 3600  # duration rates are per hour
#: The token modalities a price has a rate for, in ``cost_breakdown`` order.
TOKEN_MODALITIES = ("input_text", "input_audio", "input_image", "cached_text", "cached_audio", "cached_image",
                    "output_text", "output_audio")


@attrs.frozen
class Price:
    input_text: float
    input_audio: float
    cached_text: float
    cached_audio: float
    output_text: float
    output_audio: float
    input_image: float = 0.0
    cached_image: float = 0.0
    #: USD per hour of audio, for usage reported as a duration (``{"type": "duration"}``) and
    #: a GPT-Live voice model's active seconds.
    audio_per_hour: float | None = None
    #: USD per hour of a GPT-Live session's paused (standby) seconds; None: the active rate.
    standby_per_hour: float | None = None
    #: USD per minute of audio the gateway relayed (measured, not reported): sent by the client,
    #: spoken by the model. For providers that bill audio by duration and report no usage (xAI).
    audio_in_per_minute: float | None = None
    audio_out_per_minute: float | None = None
    #: USD per text item a client creates (xAI's per-message fee).
    per_text_item: float | None = None

    @property
    def metered(self) -> bool:
        """Whether part of the cost is what the gateway itself counts (audio minutes, items)."""
        return (self.audio_in_per_minute is not None or self.audio_out_per_minute is not None
                or self.per_text_item is not None)

    @property
    def has_token_rates(self) -> bool:
        return any(getattr(self, name) for name in TOKEN_MODALITIES)

    def to_json(self) -> dict[str, float | None]:
        """Per-1M-token rates (and the hourly audio rate), for the playground's live cost display."""
        return attrs.asdict(self)


_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")
#: genai-prices' provider ids for rtproxy's providers; the offline model is priced as OpenAI's model.
#: The genai-prices provider a model is looked up under when its caller does not say (the gateway
#: asks the model's provider module: rtproxy/providers/).
_PRICE_PROVIDER = {"openai": "openai", "azure": "azure", "local": "openai", "gemini": "google",
                   "vertex": "google-vertex"}


#: The price provider of models that only a ``[models.price]`` table prices (an OpenAI-compatible
#: server's: its model names may be anyone's).
UNPRICED = "rtproxy-unpriced"


def price_from_config(p: PriceConfig) -> Price:
    input_image = p.input_text if p.input_image is None else p.input_image
    return Price(
        input_text=p.input_text,
        input_audio=p.input_audio,
        cached_text=p.input_text if p.cached_text is None else p.cached_text,
        cached_audio=p.input_audio if p.cached_audio is None else p.cached_audio,
        output_text=p.output_text,
        output_audio=p.output_audio,
        input_image=input_image,
        cached_image=input_image if p.cached_image is None else p.cached_image,
        audio_per_hour=p.audio_per_hour,
        standby_per_hour=p.standby_audio_per_hour,
        audio_in_per_minute=p.audio_in_per_minute,
        audio_out_per_minute=p.audio_out_per_minute,
        per_text_item=p.per_text_item,
    )


def _rate(model_price: Any, *names: str) -> float | None:
    """The first of ``names`` the database gives a rate for (a tiered rate: its base rate)."""
    for name in names:
        value = getattr(model_price, name, None)
        if value is None:
            continue
        value = getattr(value, "base", value)  # TieredPrices: realtime models have no tiers
        return float(value)
    return None


#: genai-prices providers whose ``audio_hours`` is per hour of audio sent or received, metered by
#: the gateway (the provider reports no usage), and whose ``input_text_messages_kcount`` is per
#: thousand text items: xAI's Voice Agent API (protocol/xai-realtime.md §6). Elsewhere
#: ``audio_hours`` is a duration the provider reports (whisper-1, GPT-Live's session seconds).
METERED_PRICE_PROVIDERS = frozenset({"x-ai"})


def price_from_database(model_price: Any, *, metered: bool = False) -> Price | None:
    """A genai-prices ``ModelPrice`` as a :class:`Price`. A modality the database gives no
    separate rate for is charged at the nearest rate it does give, never less: cached audio
    without a cache rate costs as uncached audio, audio output without an audio rate as text.
    ``metered``: the provider is one of :data:`METERED_PRICE_PROVIDERS`."""
    if metered:
        hourly = _rate(model_price, "audio_hours")
        per_k_items = _rate(model_price, "input_text_messages_kcount")
        if hourly is None and per_k_items is None:
            return None
        per_minute = None if hourly is None else hourly / 60
        return Price(0, 0, 0, 0, 0, 0, audio_in_per_minute=per_minute, audio_out_per_minute=per_minute,
                     per_text_item=None if per_k_items is None else per_k_items / 1000)
    text_in = _rate(model_price, "input_mtok")
    text_out = _rate(model_price, "output_mtok")
    audio_in = _rate(model_price, "input_audio_mtok")
    hourly = _rate(model_price, "input_audio_hours", "audio_hours")
    if text_in is None and text_out is None and audio_in is None:
        return None if hourly is None else Price(0, 0, 0, 0, 0, 0, audio_per_hour=hourly)
    text_in = text_in or 0.0
    audio_in = text_in if audio_in is None else audio_in
    image_in = _rate(model_price, "input_image_mtok")
    image_in = text_in if image_in is None else image_in
    cached_text = _rate(model_price, "cache_read_mtok")
    cached_audio = _rate(model_price, "cache_audio_read_mtok")
    cached_image = _rate(model_price, "cache_image_read_mtok")
    text_out = text_out or 0.0
    audio_out = _rate(model_price, "output_audio_mtok")
    return Price(
        input_text=text_in,
        input_audio=audio_in,
        cached_text=text_in if cached_text is None else cached_text,
        cached_audio=audio_in if cached_audio is None else cached_audio,
        output_text=text_out,
        output_audio=text_out if audio_out is None else audio_out,
        input_image=image_in,
        cached_image=image_in if cached_image is None else cached_image,
        audio_per_hour=hourly,
    )


@functools.lru_cache(maxsize=256)
def database_price(provider: str, model_name: str) -> Price | None:
    """The database's current price for one provider model name, or None if it has none.

    genai-prices matches names by its own rules (``gpt-realtime-2025-08-28`` → ``gpt-realtime``,
    ``gpt-realtime-2.1`` → ``gpt-realtime-2``); a name it does not know is unpriced, never guessed."""
    from datetime import datetime

    from genai_prices import data_snapshot  # imported on first use: pydantic and the database load once

    try:
        _, model = data_snapshot.get_snapshot().find_provider_model(model_name, None, provider, None)
    except LookupError:
        return None
    return price_from_database(model.get_prices(datetime.now(UTC)), metered=provider in METERED_PRICE_PROVIDERS)


def table_price(table: PriceTable, provider: str, model_name: str) -> Price | None:
    """:func:`database_price` answered from an exported table (price_table.py): the same price,
    without the database in this process. A provider the table was not exported for: the database."""
    if not table.knows(provider):
        return database_price(provider, model_name)
    rates = table.rates(provider, model_name)
    if rates is None:
        return None
    return price_from_database(types.SimpleNamespace(**rates), metered=provider in METERED_PRICE_PROVIDERS)


def price_for(model: ModelConfig, provider_id: str | None = None,
              database: Callable[[str, str], Price | None] | None = None) -> Price | None:
    """The config override, else the database price for the provider's model name (with and
    without a date suffix), else for the gateway's name for it, else None. ``provider_id``: the
    genai-prices provider to look in (default: by ``model.provider``); ``database``: where to look
    (default :func:`database_price`; a gateway's: its exported table, rtproxy/spend/price_table.py)."""
    if model.price is not None:
        return price_from_config(model.price)
    provider = provider_id or _PRICE_PROVIDER.get(model.provider, "openai")
    if provider == UNPRICED:
        return None  # priced by its [models.price] only: never by another provider's model of the same name
    upstream = model.target_model
    candidates = [(provider, upstream), (provider, _DATE_SUFFIX.sub("", upstream))]
    if provider == "azure":  # a deployment name is the operator's; Azure lists OpenAI's prices
        candidates += [("openai", upstream), ("openai", _DATE_SUFFIX.sub("", upstream))]
    candidates.append(("openai", model.name))
    look_up = database or database_price
    for provider_id, name in dict.fromkeys(candidates):
        price = look_up(provider_id, name)
        if price is not None:
            return price
    return None


def _int(d: Any, key: str) -> int:
    if isinstance(d, dict):
        v = d.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return 0


def token_split(usage: dict[str, Any]) -> dict[str, int]:
    """The eight billable token counts of one usage object (a response's or a transcription's)."""
    inp = usage.get("input_token_details") or {}
    out = usage.get("output_token_details")
    text_in, audio_in, image_in = _int(inp, "text_tokens"), _int(inp, "audio_tokens"), _int(inp, "image_tokens")
    cached = _int(inp, "cached_tokens")
    details = inp.get("cached_tokens_details") if isinstance(inp, dict) else None
    if isinstance(details, dict):
        cached_text, cached_audio = _int(details, "text_tokens"), _int(details, "audio_tokens")
        cached_image = _int(details, "image_tokens")
    else:
        # Beta usage has only the total: the cached prefix is text first (instructions, history).
        cached_text = min(cached, text_in)
        cached_audio = min(cached - cached_text, audio_in)
        cached_image = 0
    cached_text = min(cached_text, text_in)
    cached_audio = min(cached_audio, audio_in)
    cached_image = min(cached_image, image_in)
    if isinstance(out, dict):
        text_out, audio_out = _int(out, "text_tokens"), _int(out, "audio_tokens")
    else:  # a transcription's usage: its output is the transcript's text tokens
        text_out, audio_out = _int(usage, "output_tokens"), 0
    return {
        "input_text": text_in - cached_text,
        "input_audio": audio_in - cached_audio,
        "input_image": image_in - cached_image,
        "cached_text": cached_text,
        "cached_audio": cached_audio,
        "cached_image": cached_image,
        "output_text": text_out,
        "output_audio": audio_out,
    }


def _seconds(usage: dict[str, Any]) -> float:
    v = usage.get("seconds")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else 0.0


def price_usage(usage: dict[str, Any] | None, price: Price | None) -> tuple[float | None, dict[str, float] | None]:
    """(total cost in USD, cost per modality), or (None, None) when the model has no price for
    this kind of usage (no price at all, or a duration and no hourly rate)."""
    if price is None:
        return None, None
    usage = usage or {}
    if usage.get("type") == "duration":
        if price.audio_per_hour is None:
            return None, None
        cost = round(_seconds(usage) * price.audio_per_hour * PER_SECOND, 10)
        return cost, {"audio_duration": cost}
    split = token_split(usage)
    breakdown = {name: round(count * getattr(price, name) * PER_TOKEN, 10) for name, count in split.items()}
    return round(sum(breakdown.values()), 10), breakdown


def price_seconds(active_seconds: float, paused_seconds: float, price: Price | None
                  ) -> tuple[float | None, dict[str, float] | None]:
    """The voice cost of a GPT-Live session's billed seconds: active at the hourly rate, paused
    at the standby rate (the active rate when the model has none: never less than billed)."""
    if price is None or price.audio_per_hour is None:
        return None, None
    standby = price.audio_per_hour if price.standby_per_hour is None else price.standby_per_hour
    breakdown = {"active_seconds": round(active_seconds * price.audio_per_hour * PER_SECOND, 10),
                 "paused_seconds": round(paused_seconds * standby * PER_SECOND, 10)}
    return round(sum(breakdown.values()), 10), breakdown


def price_responses_usage(usage: dict[str, Any] | None, price: Price | None
                          ) -> tuple[float | None, dict[str, float] | None]:
    """The cost of a Responses API usage object (a GPT-Live delegated response): input tokens
    less the cached ones at the text input rate, cached at the cached rate, output (reasoning
    included) at the text output rate."""
    if price is None:
        return None, None
    usage = usage or {}
    total_in, out = _int(usage, "input_tokens"), _int(usage, "output_tokens")
    cached = min(_int(usage.get("input_tokens_details"), "cached_tokens"), total_in)
    breakdown = {"input_text": round((total_in - cached) * price.input_text * PER_TOKEN, 10),
                 "cached_text": round(cached * price.cached_text * PER_TOKEN, 10),
                 "output_text": round(out * price.output_text * PER_TOKEN, 10)}
    return round(sum(breakdown.values()), 10), breakdown


#: The fields a metered cost is made of, in ``cost_breakdown``.
METERED_PARTS = ("audio_in_minutes", "audio_out_minutes", "text_items")


def price_metered(audio_in_ms: float, audio_out_ms: float, text_items: int, price: Price | None
                  ) -> tuple[float, dict[str, float]]:
    """The cost of what the gateway measured (audio minutes each way, text items) at the price's
    metered rates; (0, {}) when it has none."""
    if price is None or not price.metered:
        return 0.0, {}
    breakdown = {}
    if price.audio_in_per_minute is not None:
        breakdown["audio_in_minutes"] = round(audio_in_ms / 60_000 * price.audio_in_per_minute, 10)
    if price.audio_out_per_minute is not None:
        breakdown["audio_out_minutes"] = round(audio_out_ms / 60_000 * price.audio_out_per_minute, 10)
    if price.per_text_item is not None:
        breakdown["text_items"] = round(text_items * price.per_text_item, 10)
    return round(sum(breakdown.values()), 10), breakdown


def billing_unit(price: Price | None, *, duration: bool = False) -> str | None:
    """What a model's cost is counted in: ``tokens``, ``audio_seconds`` (a duration, reported or
    measured), ``items``, or several joined by ``+`` (xAI: ``audio_seconds+items``). None: no price.
    ``duration``: the usage is a reported duration (whisper-1, GPT-Live)."""
    if price is None:
        return None
    units = []
    if price.has_token_rates and not duration:
        units.append("tokens")
    if duration or price.audio_in_per_minute is not None or price.audio_out_per_minute is not None:
        units.append("audio_seconds")
    if price.per_text_item is not None:
        units.append("items")
    return "+".join(units) or "tokens"
