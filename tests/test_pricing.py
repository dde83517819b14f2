"""Prices from the genai-prices database (and the config override), and the cost of every kind
of usage a provider reports: a response's tokens (text, audio, image, cached), an input
transcription's tokens, and an input transcription's duration. Costs are computed by hand."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from rtproxy.config import ConfigError, ModelConfig, PriceConfig, parse_config
from rtproxy.server.gateway import Gateway
from rtproxy.spend.pricing import Price, database_price, price_for, price_usage, token_split

from .conftest import make_config

ROOT = Path(__file__).resolve().parent.parent

#: The models the issue named as missing from the hand-kept table; each must be priced now.
CURRENT_MODELS = ("gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini", "gpt-realtime-1.5",
                  "gpt-realtime", "gpt-realtime-mini", "gpt-4o-transcribe", "gpt-4o-mini-transcribe",
                  "whisper-1", "gpt-live-1")


@pytest.mark.parametrize("name", CURRENT_MODELS)
def test_every_current_model_has_a_price(name: str) -> None:
    price = price_for(ModelConfig(name, "openai"))
    assert price is not None
    assert price.input_audio > 0 or (price.audio_per_hour or 0) > 0


def test_gpt_realtime_is_priced_at_its_published_rates() -> None:
    assert database_price("openai", "gpt-realtime") == Price(
        input_text=4.0, input_audio=32.0, cached_text=0.4, cached_audio=0.4, output_text=16.0, output_audio=64.0,
        input_image=5.0, cached_image=0.5)


def test_dated_and_azure_names_find_the_model_they_are_a_version_of() -> None:
    base = database_price("openai", "gpt-realtime")
    assert price_for(ModelConfig("x", "openai", "gpt-realtime-2025-08-28")) == base
    # an Azure deployment named after the model is priced as OpenAI's
    assert price_for(ModelConfig("x", "azure", "gpt-realtime", api_base="https://r", api_version="v1")) is not None
    # the offline model is priced as the model it stands in for
    assert price_for(ModelConfig("gpt-realtime", "local")) == base


def test_an_unknown_model_has_no_price_and_costs_null_never_zero() -> None:
    assert price_for(ModelConfig("x", "openai", "my-custom-model")) is None
    assert price_usage({"input_tokens": 10}, None) == (None, None)


def test_the_config_override_wins_and_fills_cached_and_image_rates_from_input() -> None:
    p = price_for(ModelConfig("x", "openai", "gpt-realtime", price=PriceConfig(1, 2, 3, 4)))
    assert p == Price(input_text=1, input_audio=2, cached_text=1, cached_audio=2, output_text=3, output_audio=4,
                      input_image=1, cached_image=1, audio_per_hour=None)


def test_image_tokens_cached_and_uncached_are_priced_at_the_image_rates() -> None:
    usage = {"input_token_details": {"text_tokens": 10, "image_tokens": 1000, "cached_tokens": 400,
                                     "cached_tokens_details": {"text_tokens": 0, "image_tokens": 400}},
             "output_token_details": {"text_tokens": 0, "audio_tokens": 0}}
    cost, breakdown = price_usage(usage, database_price("openai", "gpt-realtime"))
    assert breakdown is not None
    assert breakdown["input_image"] == pytest.approx(600 * 5e-6)
    assert breakdown["cached_image"] == pytest.approx(400 * 0.5e-6)
    assert cost == pytest.approx(10 * 4e-6 + 600 * 5e-6 + 400 * 0.5e-6)


def test_a_token_transcription_is_priced_at_the_transcription_models_rates() -> None:
    # gpt-4o-transcribe: $2.50 text in, $6 audio in, $10 text out per 1M tokens
    usage = {"type": "tokens", "input_tokens": 120, "output_tokens": 9, "total_tokens": 129,
             "input_token_details": {"text_tokens": 20, "audio_tokens": 100}}
    assert token_split(usage)["output_text"] == 9
    cost, breakdown = price_usage(usage, database_price("openai", "gpt-4o-transcribe"))
    assert breakdown is not None and breakdown["input_audio"] == pytest.approx(100 * 6e-6)
    assert cost == pytest.approx(20 * 2.5e-6 + 100 * 6e-6 + 9 * 10e-6)


def test_a_duration_transcription_is_priced_by_the_second() -> None:
    # whisper-1: $0.36 per hour of audio
    cost, breakdown = price_usage({"type": "duration", "seconds": 90}, database_price("openai", "whisper-1"))
    assert cost == pytest.approx(90 * 0.36 / 3600)
    assert breakdown == {"audio_duration": cost}
    # a duration without an hourly rate is unpriced, never $0
    assert price_usage({"type": "duration", "seconds": 90}, database_price("openai", "gpt-realtime")) == (None, None)
    # odd seconds cost nothing rather than raise
    assert price_usage({"type": "duration", "seconds": "90"}, database_price("openai", "whisper-1"))[0] == 0


@pytest.mark.parametrize("price, problem", [
    ({}, "gives no rate"),
    ({"input_text": -1.0, "input_audio": 1.0}, "must not be negative"),
])
def test_a_price_override_with_no_rate_or_a_negative_one_is_a_config_error(price: dict, problem: str) -> None:
    doc = {"models": [{"name": "m", "provider": "local", "price": price}]}
    with pytest.raises(ConfigError, match=problem):
        parse_config(doc)


def _commented_models(text: str) -> list[dict]:
    """The ``[[models]]`` tables in config.toml, those in comments included (uncommented)."""
    lines = [re.sub(r"^# ?", "", line) if re.match(r"^# ?(\[\[models\]\]|[a-z_]+ = )", line) else line
             for line in text.splitlines()]
    body = "\n".join(line for line in lines if not line.startswith("#"))
    return tomllib.loads(body).get("models", [])


def test_every_model_config_toml_and_the_docs_name_has_a_price() -> None:
    config_text = (ROOT / "config.toml").read_text()
    models = _commented_models(config_text)
    assert len(models) >= 4, "config.toml lost its model examples"
    aliases = set()
    for m in models:
        price = PriceConfig(**m["price"]) if "price" in m else None
        model = ModelConfig(m["name"], m["provider"], m.get("upstream_model"), api_base=m.get("api_base"),
                            api_version=m.get("api_version"), api=m.get("api", "realtime"), price=price,
                            dialect=m.get("dialect"), project=m.get("project"), location=m.get("location"))
        from rtproxy.providers import provider_for

        assert price_for(model, provider_for(model).price_provider(model)) is not None, f"config.toml's model {m['name']!r} has no price"
        if m.get("upstream_model") or "price" in m:  # a gateway name, or a model priced in the config itself
            aliases.add(m["name"])
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # file names and link targets left out
    named = set(re.findall(r"\b(gpt-[a-z0-9][a-z0-9.-]*[a-z0-9]|whisper-1)\b",
                           config_text + "".join(re.sub(r"[\w./-]+\.md\b|\]\([^)]*\)", "", p.read_text()) for p in docs)))
    # gateway names for a provider's model; the docs' example of an unknown one (docs/configuration.md)
    named -= aliases | {"gpt-x"}
    unpriced = sorted(n for n in named if price_for(ModelConfig(n, "openai")) is None)
    assert not unpriced, f"models named in config.toml, the README or docs/ without a price: {unpriced}"


def test_a_model_a_session_names_is_priced_under_the_session_models_provider_and_dialect(
        tmp_path: Path) -> None:
    """An input transcription is billed at the rates of the model it names: the offline model
    speaking Gemini names its own Gemini model (Gemini transcribes with it), priced as Google's,
    like its responses; a null there would make the whole session's cost null."""
    upstream = "gemini-live-2.5-flash"
    config = make_config(tmp_path, models=[
        {"name": "gpt-realtime", "provider": "local"},
        {"name": "gemini-live", "provider": "local", "dialect": "gemini", "upstream_model": upstream}])
    realtime, gemini = config.models
    gateway = Gateway(config)
    assert gateway.named_model_price(gemini, upstream) == database_price("google", upstream) is not None
    assert gateway.named_model_price(realtime, "gpt-4o-transcribe") == database_price("openai", "gpt-4o-transcribe")
