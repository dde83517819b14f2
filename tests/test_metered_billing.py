"""Billing by what the gateway measures (issue #28): audio minutes each way from the bytes relayed,
at the session's format; text items; per-minute and per-item prices (xAI's, from genai-prices, or
a [models.price]); the fields every record gains (billing_unit, usage_source, audio_in_ms,
audio_out_ms, text_items); audio sent with no response put on a "usage" record. Sans-IO."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from rtproxy.config import PriceConfig
from rtproxy.protocols.realtime import REALTIME
from rtproxy.protocols.realtime.collector import METERED_FLUSH_MS, Collector
from rtproxy.spend.audio_meter import AudioMeter, b64_value_len, format_of, session_formats
from rtproxy.spend.budgets import audio_account, record_charges
from rtproxy.spend.pricing import (
    Price,
    billing_unit,
    database_price,
    price_from_config,
    price_metered,
)
from rtproxy.spend.records import SessionEnd, SessionMeta

from .test_collector import Clock

XAI = price_from_config(PriceConfig(audio_in_per_minute=0.05, audio_out_per_minute=0.05, per_text_item=0.004))


def meta(price: Price | None) -> SessionMeta:
    return SessionMeta(session_id="sess_1", key_name="alice", key_hash="abc123", model="grok",
                       provider="xai", upstream_model="grok-voice-think-fast-1.0", api_base="wss://x/v1/realtime",
                       store_prompts=True, price=price, end_user=None, tags=(), client_ip="127.0.0.1", user_agent="ua")


def feed(c: Collector, direction: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    return c.feed(direction, json.dumps(event).encode())  # type: ignore[arg-type]


def b64_chars(ms: float, bytes_per_ms: float = 48.0) -> int:
    """Base64 characters of ``ms`` of audio (PCM16 24 kHz: 48 bytes a millisecond), as encoded."""
    return len(base64.b64encode(bytes(round(ms * bytes_per_ms))))


# -- prices -------------------------------------------------------------------------------------


def test_xais_database_prices_become_per_minute_and_per_item_rates() -> None:
    fast = database_price("x-ai", "grok-voice-think-fast-1.0")
    assert fast is not None
    assert fast.audio_in_per_minute == fast.audio_out_per_minute == pytest.approx(3 / 60)   # $3 an hour
    assert fast.per_text_item == pytest.approx(0.004)
    assert not fast.has_token_rates and fast.metered
    latest = database_price("x-ai", "grok-voice-latest")  # $4.80 an hour since 2026-08-05
    assert latest is not None and latest.audio_in_per_minute == pytest.approx(4.8 / 60)


def test_other_providers_hourly_rates_stay_reported_durations() -> None:
    whisper = database_price("openai", "whisper-1")
    assert whisper is not None and whisper.audio_per_hour == pytest.approx(0.36) and not whisper.metered
    live = database_price("openai", "gpt-live-1")
    assert live is not None and live.audio_per_hour == pytest.approx(3.0) and not live.metered


def test_a_metered_cost_is_minutes_times_rates_plus_items() -> None:
    cost, parts = price_metered(90_000, 30_000, 3, XAI)
    assert parts == {"audio_in_minutes": pytest.approx(0.075), "audio_out_minutes": pytest.approx(0.025),
                     "text_items": pytest.approx(0.012)}
    assert cost == pytest.approx(0.112)
    assert price_metered(90_000, 30_000, 3, database_price("openai", "gpt-realtime")) == (0.0, {})


def test_the_billing_unit_names_what_the_price_counts() -> None:
    assert billing_unit(XAI) == "audio_seconds+items"
    assert billing_unit(database_price("openai", "gpt-realtime")) == "tokens"
    assert billing_unit(database_price("openai", "whisper-1"), duration=True) == "audio_seconds"
    assert billing_unit(price_from_config(PriceConfig(audio_in_per_minute=0.01))) == "audio_seconds"
    assert billing_unit(None) is None


# -- measuring ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("frame", "length"), [
    (b'{"type":"input_audio_buffer.append","audio":"AAAABBBB"}', 8),
    (b'{"type": "input_audio_buffer.append", "audio": "AAAA", "event_id": "e1"}', 4),
    (b'{"type":"response.output_audio.delta","response_id":"r","delta":"QUJD"}', 4),
    (b'{"type":"input_audio_buffer.append","audio":null,"x":"AAAA"}', 0),
    (b'{"type":"input_audio_buffer.append"}', 0),
])
def test_an_audio_frames_blob_is_measured_without_parsing_it(frame: bytes, length: int) -> None:
    assert REALTIME.audio_len(frame) == length


def test_b64_value_len_reads_the_first_key_that_holds_a_string() -> None:
    assert b64_value_len(b'{"delta":"AB","audio":"ABCD"}', (b'"audio"', b'"delta"')) == 4
    assert b64_value_len(b'{"inlineData": {"data": "ABCDEF"}}', (b'"data"',)) == 6


@pytest.mark.parametrize(("stated", "fmt"), [
    ({"type": "audio/pcm", "rate": 24000}, ("pcm16", 24000)),
    ({"type": "audio/pcm", "rate": 16000}, ("pcm16", 16000)),
    ({"type": "audio/pcm", "rate": 3}, ("pcm16", 24000)),
    ({"type": "audio/pcmu"}, ("g711", 8000)),
    ("g711_alaw", ("g711", 8000)),
    ("pcm16", ("pcm16", 24000)),
    ({"type": "audio/flac"}, None),
    (None, None),
])
def test_formats_are_read_from_both_dialects(stated: Any, fmt: Any) -> None:
    assert format_of(stated) == fmt


def test_a_session_states_its_formats_in_either_dialect() -> None:
    ga = {"audio": {"input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcm",
                                                                                       "rate": 24000}}}}
    assert session_formats(ga) == (("g711", 8000), ("pcm16", 24000))
    assert session_formats({"input_audio_format": "g711_ulaw", "output_audio_format": "pcm16"}) == (
        ("g711", 8000), ("pcm16", 24000))


def test_audio_is_measured_at_the_format_it_was_sent_in() -> None:
    meter = AudioMeter()
    meter.note(64_000, 0)  # 48,000 bytes of PCM16 24 kHz: one second
    meter.formats(("g711", 8000), None)
    meter.note(64_000 + 16_000, 32_000)  # then 12,000 bytes of G.711: 1.5 s; 24,000 bytes out: 0.5 s
    assert (meter.in_ms, meter.out_ms) == (pytest.approx(2500), pytest.approx(500))
    meter.note(10, 10)  # running totals never go back
    assert meter.in_ms == pytest.approx(2500)


# -- records ------------------------------------------------------------------------------------


def xai_turn(c: Collector, *, in_ms: float, out_ms: float, text: bool = True) -> list[dict[str, Any]]:
    """A turn as the gateway relays it from xAI: the client's audio (and a typed item), a response
    whose usage is the normalizer's zeros."""
    sent, heard = c.meter._b64_in, c.meter._b64_out
    c.note_audio(sent + b64_chars(in_ms), heard)
    if text:
        feed(c, "client", {"type": "conversation.item.create",
                           "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}})
    feed(c, "client", {"type": "conversation.item.create",
                       "item": {"type": "function_call_output", "call_id": "c1", "output": "{}"}})
    feed(c, "server", {"type": "response.created", "response": {"id": "resp_1"}})
    c.note_audio(sent + b64_chars(in_ms), heard + b64_chars(out_ms))
    zeros = {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0,
             "input_token_details": {"text_tokens": 0, "audio_tokens": 0, "cached_tokens": 0},
             "output_token_details": {"text_tokens": 0, "audio_tokens": 0}}
    return feed(c, "server", {"type": "response.done", "response": {"id": "resp_1", "status": "completed",
                                                                    "output": [], "usage": zeros}})


def test_an_xai_response_is_billed_from_the_minutes_measured_and_its_text_items() -> None:
    c = Collector(meta(XAI), now=Clock())
    feed(c, "server", {"type": "session.created", "session": {"id": "s1", "audio": {
        "input": {"format": {"type": "audio/pcm", "rate": 24000}}}}})
    (record,) = xai_turn(c, in_ms=2000, out_ms=3000)
    assert record["usage_source"] == "metered" and record["billing_unit"] == "audio_seconds+items"
    assert (record["audio_in_ms"], record["audio_out_ms"], record["text_items"]) == (2000, 3000, 1)
    assert record["cost_usd"] == pytest.approx(0.05 * 5 / 60 + 0.004)
    assert record["cost_breakdown"]["text_items"] == pytest.approx(0.004)
    (second,) = xai_turn(c, in_ms=1000, out_ms=500, text=False)  # only what came since
    assert (second["audio_in_ms"], second["audio_out_ms"], second["text_items"]) == (1000, 500, 0)
    session = c.finish(SessionEnd("client", 1000, ""))
    assert (session["audio_in_ms"], session["audio_out_ms"], session["text_items"]) == (3000, 3500, 1)
    assert session["cost_usd"] == pytest.approx(record["cost_usd"] + second["cost_usd"])


def test_a_token_priced_response_carries_the_measure_and_is_billed_by_tokens_only() -> None:
    price = database_price("openai", "gpt-realtime")
    c = Collector(meta(price), now=Clock())
    (record,) = xai_turn(c, in_ms=1000, out_ms=1000)
    assert record["usage_source"] == "provider" and record["billing_unit"] == "tokens"
    assert (record["audio_in_ms"], record["audio_out_ms"]) == (1000, 1000)
    assert record["cost_usd"] == 0.0 and "audio_in_minutes" not in record["cost_breakdown"]


def test_g711_audio_is_measured_at_eight_bytes_a_millisecond() -> None:
    c = Collector(meta(XAI), now=Clock())
    feed(c, "server", {"type": "session.updated", "session": {"input_audio_format": "g711_ulaw",
                                                              "output_audio_format": "g711_ulaw"}})
    c.note_audio(b64_chars(4000, 8.0), 0)
    assert c.meter.in_ms == pytest.approx(4000, abs=0.25)  # padding: at most 2 bytes


def test_audio_with_no_response_goes_on_a_usage_record_once_a_minute_of_it_accrues() -> None:
    c = Collector(meta(XAI), now=Clock())
    c.note_audio(b64_chars(METERED_FLUSH_MS - 100), 0)
    assert c.metered_usage() == []
    c.note_audio(b64_chars(METERED_FLUSH_MS + 500), 0)
    (usage,) = c.metered_usage()
    assert usage["record"] == "usage" and usage["source"] == "audio_without_response"
    assert usage["audio_in_ms"] == METERED_FLUSH_MS + 500
    assert usage["cost_usd"] == pytest.approx(0.05 * (METERED_FLUSH_MS + 500) / 60_000)
    assert c.metered_usage() == []  # on a record now: never twice


def test_what_is_on_no_record_when_the_session_ends_is_billed_then() -> None:
    c = Collector(meta(XAI), now=Clock())
    feed(c, "client", {"type": "conversation.item.create",
                       "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "x"}]}})
    c.note_audio(b64_chars(1500), 0)
    (usage,) = c.unsettled()
    assert usage["source"] == "session_end" and (usage["audio_in_ms"], usage["text_items"]) == (1500, 1)
    assert usage["cost_usd"] == pytest.approx(0.05 * 1.5 / 60 + 0.004)
    assert c.finish(SessionEnd("client", 1000, ""))["cost_usd"] == pytest.approx(usage["cost_usd"])
    quiet = Collector(meta(XAI), now=Clock())
    assert quiet.unsettled() == []  # nothing measured, no record


def test_a_client_that_leaves_mid_response_is_billed_the_audio_relayed() -> None:
    c = Collector(meta(XAI), now=Clock())
    feed(c, "server", {"type": "response.created", "response": {"id": "resp_1"}})
    c.note_audio(0, b64_chars(2500))
    (estimated,) = c.unsettled()
    assert estimated["record"] == "response" and estimated["usage_source"] == "metered"
    assert estimated["audio_out_ms"] == 2500
    assert estimated["cost_usd"] == pytest.approx(0.05 * 2.5 / 60)


def test_a_billed_record_charges_its_cost_and_its_audio_to_two_accounts() -> None:
    record = {"record": "response", "id": "rec_1", "key_name": "alice", "cost_usd": 0.01,
              "audio_in_ms": 1200, "audio_out_ms": 800}
    assert record_charges(record) == [("rec_1", "alice", 0.01), ("rec_1/audio", audio_account("alice"), 2000.0)]
    assert record_charges({**record, "record": "session"}) == []
    assert record_charges({**record, "cost_usd": 0, "audio_in_ms": 0, "audio_out_ms": 0}) == []
    assert audio_account("alice") != "alice" and "\x1f" in audio_account("alice")


# -- what a client cannot do to the measure (the review of #28) ------------------------------------


@pytest.mark.parametrize("frame", [
    b'{"type":"input_audio_buffer.append","event_id":"audio","audio":"AAAABBBB"}',
    b'{"event_id":"audio","type":"input_audio_buffer.append","audio":"AAAABBBB"}',
    b'{"type":"input_audio_buffer.append","audio":"","audio":"AAAABBBB"}',
    b'{"type":"input_audio_buffer.append","x":"\\"audio\\":\\"\\"","audio":"AAAABBBB"}',
])
def test_a_decoy_audio_member_does_not_hide_the_blob_the_provider_decodes(frame: bytes) -> None:
    # a JSON parser keeps the last of repeated members; a value or escaped text is no member
    assert REALTIME.audio_len(frame) == 8


def test_audio_inside_a_created_item_is_measured_and_an_item_with_text_is_a_text_item() -> None:
    c = Collector(meta(XAI), now=Clock())
    one_second = base64.b64encode(bytes(48_000)).decode()
    feed(c, "client", {"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_audio", "audio": one_second}]}})
    assert c.meter.in_ms == pytest.approx(1000) and c.text_items == 0
    feed(c, "client", {"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_audio", "audio": ""},
                                                        {"type": "input_text", "text": "x" * 5000}]}})
    feed(c, "client", {"type": "conversation.item.create", "item": {
        "type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}})
    feed(c, "client", {"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "c", "output": "{}"}})
    assert c.text_items == 2  # the message with text, the call; never a tool's output


def test_audio_after_a_requested_format_change_is_measured_at_the_longer_format_until_confirmed() -> None:
    c = Collector(meta(XAI), now=Clock())
    feed(c, "server", {"type": "session.created", "session": {"audio": {"input": {"format": {"type": "audio/pcm",
                                                                                            "rate": 24000}}}}})
    feed(c, "client", {"type": "session.update", "event_id": "u1", "session": {
        "type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}})
    c.note_audio(b64_chars(1000, 8.0), 0)  # 8,000 bytes of G.711 before the provider confirms
    assert c.meter.in_ms == pytest.approx(1000, abs=1)
    feed(c, "server", {"type": "session.updated", "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}})
    # a request the provider refuses goes back to the stated format
    feed(c, "client", {"type": "session.update", "event_id": "u2", "session": {
        "type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}}})
    feed(c, "server", {"type": "error", "error": {"type": "invalid_request_error", "event_id": "u2"}})
    assert c.meter.input_format == ("g711", 8000)
    # a client cannot claim a denser format to shrink the measure
    feed(c, "client", {"type": "session.update", "event_id": "u3", "session": {
        "type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 48000}}}}})
    assert c.meter.input_format == ("g711", 8000)
