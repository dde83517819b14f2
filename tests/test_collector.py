"""The sans-IO collector and pricing: events in, records out, costs computed by hand."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import rtproxy.protocols.realtime.collector as collector_module
from rtproxy.protocols.realtime.collector import Collector
from rtproxy.spend.records import SessionEnd, SessionMeta
from rtproxy.config import ModelConfig, PriceConfig
from rtproxy.spend.pricing import database_price, price_for, price_usage

PRICE = database_price("openai", "gpt-realtime")


def meta(store_prompts: bool = True, price: Any = PRICE) -> SessionMeta:
    return SessionMeta(session_id="sess_1", key_name="alice", key_hash="abc123", model="gpt-realtime",
                       provider="openai", upstream_model="gpt-realtime", api_base="wss://x/v1/realtime",
                       store_prompts=store_prompts, price=price, end_user="u1", tags=("t",), client_ip="127.0.0.1",
                       user_agent="ua")


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.t += timedelta(milliseconds=250)
        return self.t


def feed(c: Collector, direction: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    return c.feed(direction, json.dumps(event).encode())  # type: ignore[arg-type]


USAGE = {
    "total_tokens": 1700, "input_tokens": 1200, "output_tokens": 500,
    "input_token_details": {"text_tokens": 1000, "audio_tokens": 200, "cached_tokens": 640,
                            "cached_tokens_details": {"text_tokens": 600, "audio_tokens": 40}},
    "output_token_details": {"text_tokens": 100, "audio_tokens": 400},
}


#: USAGE at gpt-realtime's list prices, worked out by hand (see test_price_usage_by_hand).
USAGE_COST_USD = 0.0016 + 0.00512 + 0.00024 + 0.000016 + 0.0016 + 0.0256


def test_price_usage_by_hand() -> None:
    cost, breakdown = price_usage(USAGE, PRICE)
    # gpt-realtime per 1M: text in 4, audio in 32, cached text 0.4, cached audio 0.4, text out 16, audio out 64
    expected = {
        "input_text": 400 * 4e-6,       # 1000 text - 600 cached
        "input_audio": 160 * 32e-6,     # 200 audio - 40 cached
        "cached_text": 600 * 0.4e-6,
        "cached_audio": 40 * 0.4e-6,
        "output_text": 100 * 16e-6,
        "output_audio": 400 * 64e-6,
        "input_image": 0, "cached_image": 0,
    }
    assert breakdown == pytest.approx(expected)
    assert cost == pytest.approx(USAGE_COST_USD)


def test_beta_usage_without_cached_details_counts_cache_as_text_first() -> None:
    usage = {"input_token_details": {"text_tokens": 100, "audio_tokens": 50, "cached_tokens": 120},
             "output_token_details": {"text_tokens": 0, "audio_tokens": 0}}
    _, breakdown = price_usage(usage, PRICE)
    assert breakdown is not None
    assert breakdown["cached_text"] == pytest.approx(100 * 0.4e-6)
    assert breakdown["cached_audio"] == pytest.approx(20 * 0.4e-6)
    assert breakdown["input_audio"] == pytest.approx(30 * 32e-6)


def test_price_lookup_override_azure_and_unknown() -> None:
    assert price_for(ModelConfig("x", "openai", "gpt-realtime-2025-08-28")) == PRICE
    assert price_for(ModelConfig("x", "azure", "gpt-4o-mini-realtime-preview")) == database_price("openai", "gpt-4o-mini-realtime-preview")
    assert price_for(ModelConfig("x", "openai", "my-custom-model")) is None
    override = ModelConfig("x", "openai", "my-custom-model", price=PriceConfig(1, 2, 3, 4))
    p = price_for(override)
    assert p is not None and (p.input_text, p.input_audio, p.output_text, p.output_audio, p.cached_text) == (1, 2, 3, 4, 1)
    assert price_usage(USAGE, None) == (None, None)


def test_a_text_turn_yields_a_full_response_record() -> None:
    c = Collector(meta(), now=Clock(), new_id=iter(f"rec_{i}" for i in range(100)).__next__)
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    assert feed(c, "server", {"type": "session.created", "session": {"id": "sess_up", "instructions": "Default."}}) == []
    feed(c, "client", {"type": "session.update", "session": {"type": "realtime", "instructions": "Be terse.",
                                                             "tools": tools, "tool_choice": "auto",
                                                             "output_modalities": ["text"]}})
    feed(c, "server", {"type": "session.updated", "session": {}})  # the provider confirms it
    feed(c, "client", {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                                    "content": [{"type": "input_text", "text": "Hi"}]}})
    feed(c, "client", {"type": "response.create"})
    feed(c, "server", {"type": "response.created", "response": {"id": "resp_1"}})
    output = [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
              {"type": "function_call", "name": "get_weather", "call_id": "call_1", "arguments": '{"city":"Paris"}'}]
    done = {"type": "response.done", "response": {"id": "resp_1", "status": "completed", "output": output,
                                                  "usage": USAGE}}
    (record,) = feed(c, "server", done)
    assert record["record"] == "response" and record["id"] == "rec_0"
    assert (record["session_id"], record["upstream_session_id"], record["response_id"]) == ("sess_1", "sess_up", "resp_1")
    assert (record["key_name"], record["key_hash"], record["end_user"], record["tags"]) == ("alice", "abc123", "u1", ["t"])
    assert record["status"] == "completed" and record["call_type"] == "realtime"
    assert record["start_time"] == "2026-01-01T00:00:00.500Z" and record["duration_ms"] == 250
    assert record["usage"] == USAGE and record["cost_usd"] == pytest.approx(USAGE_COST_USD)
    assert record["messages"] == [{"role": "system", "content": "Be terse."},
                                  {"role": "user", "content": "Hi", "source": "text"}]
    assert record["proxy_server_request"]["tools"] == tools
    assert record["proxy_server_request"]["instructions"] == "Be terse."
    assert record["response"]["output_text"] == "Hello!"
    assert record["response"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    assert record["response"]["results"] == [done]
    assert record["error"] is None

    # the tool's answer and a second response: messages hold only what came since
    feed(c, "client", {"type": "conversation.item.create",
                       "item": {"type": "function_call_output", "call_id": "call_1", "output": '{"temp":18}'}})
    (second,) = feed(c, "server", {"type": "response.done", "response": {"id": "resp_2", "usage": USAGE}})
    assert second["messages"] == [{"role": "tool", "tool_call_id": "call_1", "content": '{"temp":18}'}]

    session = c.finish(SessionEnd("client", 1000, "bye"))
    assert session["record"] == "session" and session["responses"] == 2
    assert session["usage"]["input_tokens"] == 2400
    assert session["usage"]["input_token_details"]["cached_tokens_details"]["audio_tokens"] == 80
    assert session["cost_usd"] == pytest.approx(2 * USAGE_COST_USD)
    assert session["close"] == {"by": "client", "code": 1000, "reason": "bye"}
    assert session["status"] == "success" and session["tools"] == tools
    assert session["client"] == {"ip": "127.0.0.1", "user_agent": "ua"}


def test_voice_transcripts_and_beta_names_are_captured() -> None:
    c = Collector(meta())
    feed(c, "client", {"type": "session.update", "session": {"modalities": ["audio", "text"], "voice": "alloy"}})
    feed(c, "server", {"type": "session.updated", "session": {}})  # the provider confirms it
    feed(c, "server", {"type": "conversation.item.input_audio_transcription.completed", "item_id": "item_1",
                       "content_index": 0, "transcript": "What time is it?"})
    (record,) = feed(c, "server", {"type": "response.done", "response": {"id": "r", "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": "turn_detected"},
        "output": [{"type": "message", "content": [{"type": "audio", "transcript": "It is"}]}]}})
    assert record["messages"] == [{"role": "user", "content": "What time is it?", "source": "transcript",
                                   "item_id": "item_1"}]
    assert record["response"]["output_transcript"] == "It is" and record["status"] == "cancelled"
    assert record["proxy_server_request"]["voice"] == "alloy"


def test_store_prompts_off_keeps_usage_cost_and_status_only() -> None:
    c = Collector(meta(store_prompts=False))
    feed(c, "client", {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                                    "content": [{"type": "input_text", "text": "secret"}]}})
    (record,) = feed(c, "server", {"type": "response.done", "response": {"id": "r", "status": "completed",
                                                                         "usage": USAGE}})
    assert record["messages"] is None and record["proxy_server_request"] is None and record["response"] is None
    assert record["usage"] == USAGE and record["cost_usd"] > 0 and record["status"] == "completed"
    assert "secret" not in json.dumps(record)
    assert c.finish(SessionEnd("client", 1000))["tools"] is None


def test_audio_frames_are_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []
    real_loads = json.loads

    def counting_loads(data: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(data)
        return real_loads(data, *args, **kwargs)

    monkeypatch.setattr(collector_module.json, "loads", counting_loads)
    c = Collector(meta())
    # not even valid JSON after the type: if it were parsed, it would count as malformed
    assert c.feed("client", b'{"type":"input_audio_buffer.append","audio":"AAAA' + b"A" * 10_000) == []
    assert c.feed("server", b'{"type":"response.output_audio.delta","delta":"AAAA') == []
    assert c.feed("server", b'{"type":"response.audio.delta","delta":"AAAA') == []
    assert c.feed("server", b'{"type":"response.output_item.added","item":{}}') == []
    assert parsed == [] and c.audio_frames == 3 and c.malformed == 0
    feed(c, "server", {"type": "response.done", "response": {}})
    assert len(parsed) == 1


def test_unpriced_model_costs_null_not_zero() -> None:
    c = Collector(meta(price=None))
    (record,) = feed(c, "server", {"type": "response.done", "response": {"id": "r", "usage": USAGE}})
    assert record["cost_usd"] is None and record["cost_breakdown"] is None
    assert c.finish(SessionEnd("client", 1000))["cost_usd"] is None


def test_failed_response_and_error_events_are_recorded() -> None:
    c = Collector(meta())
    feed(c, "server", {"type": "error", "error": {"type": "invalid_request_error", "code": "bad", "message": "m"}})
    (record,) = feed(c, "server", {"type": "response.done", "response": {"id": "r", "status": "failed",
        "status_details": {"type": "failed", "error": {"type": "server_error", "code": "x", "message": "boom"}}}})
    assert record["status"] == "failed"
    assert record["error"] == {"type": "server_error", "code": "x", "message": "boom"}
    session = c.finish(SessionEnd("upstream", 1011, "gone", failed=True))
    assert session["status"] == "failure" and session["error"]["code"] == "bad"


@pytest.mark.parametrize("odd", [
    b'{"type":"response.done","response":5}',
    b'{"type":"response.done","response":{"output":[1,null,{"type":"function_call","arguments":{"a":1}}],'
    b'"usage":{"input_token_details":"x","output_tokens":-3}}}',
    b'{"type":"response.done"}',
])
def test_odd_response_done_still_yields_exactly_one_record(odd: bytes) -> None:
    c = Collector(meta())
    (record,) = c.feed("server", odd)
    assert record["record"] == "response"
    json.dumps(record)  # serialisable


def test_usage_fields_of_changing_type_are_summed_without_raising() -> None:
    c = Collector(meta())
    feed(c, "server", {"type": "response.done", "response": {"usage": {"input_tokens": 3, "input_token_details": {}}}})
    feed(c, "server", {"type": "response.done", "response": {"usage": {"input_tokens": 4, "input_token_details": 5}}})
    feed(c, "server", {"type": "response.done", "response": {"usage": {"input_tokens": {"x": 1},
                                                                       "input_token_details": {"text_tokens": 2}}}})
    session = c.finish(SessionEnd("client", 1000))
    assert session["usage"] == {"input_tokens": 7, "input_token_details": {"text_tokens": 2}}
    assert session["responses"] == 3


def test_empty_transcripts_and_empty_typed_text_leave_no_message() -> None:
    c = Collector(meta())
    feed(c, "client", {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": ""}, {"type": "input_text", "text": "  \n"},
        {"type": "input_audio", "transcript": " "}, {"type": "input_text", "text": "real"}]}})
    feed(c, "server", {"type": "conversation.item.input_audio_transcription.completed", "item_id": "i1",
                       "transcript": ""})
    feed(c, "server", {"type": "conversation.item.input_audio_transcription.completed", "item_id": "i2",
                       "transcript": "   "})
    feed(c, "server", {"type": "response.created", "response": {"id": "r"}})
    (record,) = feed(c, "server", {"type": "response.done", "response": {"id": "r", "usage": USAGE}})
    assert record["messages"] == [{"role": "user", "content": "real", "source": "text"}]


def test_an_image_is_recorded_as_a_placeholder_never_its_bytes() -> None:
    c = Collector(meta())
    png = "iVBORw0KGgo" + "A" * 4000
    feed(c, "client", {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "What is in this picture?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{png}", "detail": "auto"},
        {"type": "input_image", "image_url": "https://example.com/cat.jpg"}]}})
    feed(c, "server", {"type": "response.created", "response": {"id": "r"}})
    (record,) = feed(c, "server", {"type": "response.done", "response": {"id": "r", "usage": USAGE}})
    assert record["messages"][1:] == [
        {"role": "user", "content": f"[image: image/png, about {len(png) * 3 // 4:,} bytes]", "source": "image"},
        {"role": "user", "content": "[image: by URL]", "source": "image"}]
    assert png not in json.dumps(record) and "example.com" not in json.dumps(record)


# -- input transcriptions, MCP tool calls ------------------------------------------------------

WHISPER = price_for(ModelConfig("whisper-1", "openai"))
TRANSCRIBE = price_for(ModelConfig("gpt-4o-transcribe", "openai"))
TOKEN_USAGE = {"type": "tokens", "input_tokens": 110, "output_tokens": 8, "total_tokens": 118,
               "input_token_details": {"text_tokens": 10, "audio_tokens": 100}}


def _priced(name: str) -> Any:
    return {"whisper-1": WHISPER, "gpt-4o-transcribe": TRANSCRIBE}.get(name)


def test_each_input_transcription_is_billed_at_its_models_rates_in_a_record_of_its_own() -> None:
    import attrs
    c = Collector(attrs.evolve(meta(), model_price=_priced), now=Clock())
    feed(c, "server", {"type": "session.updated", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "gpt-4o-transcribe"}}}}})
    feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": "item_1"})
    assert c.in_flight == 1  # the provider is transcribing it, and will bill it
    (record,) = feed(c, "server", {"type": "conversation.item.input_audio_transcription.completed",
                                   "item_id": "item_1", "content_index": 0, "transcript": "What time is it?",
                                   "usage": TOKEN_USAGE})
    assert c.in_flight == 0
    assert (record["record"], record["item_id"], record["transcription_model"]) == \
        ("transcription", "item_1", "gpt-4o-transcribe")
    assert record["cost_usd"] == pytest.approx(10 * 2.5e-6 + 100 * 6e-6 + 8 * 10e-6)
    assert record["transcript"] == "What time is it?" and record["usage"] == TOKEN_USAGE
    # the transcript still reaches the next response's messages
    feed(c, "server", {"type": "response.created", "response": {"id": "resp_1"}})
    (response,) = feed(c, "server", {"type": "response.done", "response": {"id": "resp_1", "usage": USAGE}})
    assert response["messages"][-1]["content"] == "What time is it?"
    session = c.finish(SessionEnd("client", 1000))
    assert session["transcriptions"] == 1 and session["transcription_usage"]["input_tokens"] == 110
    assert session["cost_usd"] == pytest.approx(record["cost_usd"] + response["cost_usd"])


def test_a_whisper_transcription_is_billed_by_duration_and_an_unpriced_one_makes_the_total_unknown() -> None:
    import attrs
    c = Collector(attrs.evolve(meta(), model_price=_priced), now=Clock())
    feed(c, "client", {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "whisper-1"}}}}})
    feed(c, "server", {"type": "session.updated", "session": {}})  # the provider confirms it
    (record,) = feed(c, "server", {"type": "conversation.item.input_audio_transcription.completed",
                                   "item_id": "i", "transcript": "", "usage": {"type": "duration", "seconds": 60}})
    assert record["cost_usd"] == pytest.approx(0.006) and record["transcript"] is None
    feed(c, "client", {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "some-new-transcriber"}}}}})
    feed(c, "server", {"type": "session.updated", "session": {}})  # the provider confirms it
    (unpriced,) = feed(c, "server", {"type": "conversation.item.input_audio_transcription.completed",
                                     "item_id": "j", "transcript": "x", "usage": {"type": "duration", "seconds": 1}})
    assert unpriced["cost_usd"] is None
    assert c.finish(SessionEnd("client", 1000))["cost_usd"] is None  # unknown, never understated


def test_a_transcription_session_records_transcripts_only_in_transcription_records() -> None:
    import attrs
    m = attrs.evolve(meta(price=TRANSCRIBE), call_type="transcription", model="gpt-4o-transcribe",
                     upstream_model="gpt-4o-transcribe", model_price=_priced)
    c = Collector(m, now=Clock())
    feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": "item_1"})
    (record,) = feed(c, "server", {"type": "conversation.item.input_audio_transcription.completed",
                                   "item_id": "item_1", "transcript": "Hello", "usage": TOKEN_USAGE})
    assert record["call_type"] == "transcription" and record["transcription_model"] == "gpt-4o-transcribe"
    assert c._pending == []
    feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": "item_2"})
    assert c.unsettled() == [] and c.in_flight == 0
    session = c.finish(SessionEnd("client", 1000))
    assert session["call_type"] == "transcription" and session["transcriptions_unreported"] == 1
    assert session["responses"] == 0 and session["cost_usd"] == pytest.approx(record["cost_usd"])


def test_mcp_tool_lists_approvals_and_calls_are_recorded_as_tool_calls_without_credentials() -> None:
    c = Collector(meta(), now=Clock())
    mcp_tool = {"type": "mcp", "server_label": "docs", "server_url": "https://u:p@mcp.example:8443/sse?token=s3cret",
                "authorization": "Bearer s3cret", "headers": {"X-Api-Key": "s3cret"}, "require_approval": "never"}
    feed(c, "client", {"type": "session.update", "session": {"type": "realtime", "tools": [mcp_tool]}})
    feed(c, "server", {"type": "session.updated", "session": {}})  # the provider confirms it
    feed(c, "server", {"type": "conversation.item.done", "item": {
        "id": "mcpl_1", "type": "mcp_list_tools", "server_label": "docs",
        "tools": [{"name": "echo", "input_schema": {}}, {"name": "add", "input_schema": {}}]}})
    feed(c, "client", {"type": "conversation.item.create", "item": {
        "type": "mcp_approval_response", "id": "apr_1", "approval_request_id": "mcpr_0", "approve": True}})
    feed(c, "client", {"type": "response.create", "response": {"tools": [mcp_tool]}})
    feed(c, "server", {"type": "response.created", "response": {"id": "resp_1"}})
    output = [{"id": "mcp_1", "type": "mcp_call", "server_label": "docs", "name": "echo", "arguments": '{"text":"hi"}',
               "output": "hi", "error": None, "approval_request_id": "mcpr_0"},
              {"id": "mcpr_2", "type": "mcp_approval_request", "server_label": "docs", "name": "add",
               "arguments": '{"a":1,"b":2}'}]
    (record,) = feed(c, "server", {"type": "response.done", "response": {"id": "resp_1", "output": output,
                                                                         "usage": USAGE}})
    calls = record["response"]["tool_calls"]
    assert [call["type"] for call in calls] == ["mcp_list_tools", "mcp_approval_response", "mcp_call",
                                                "mcp_approval_request"]
    assert calls[0]["mcp"] == {"server_label": "docs", "tools": ["echo", "add"]}
    assert calls[1]["mcp"] == {"approval_request_id": "mcpr_0", "approve": True, "reason": None}
    assert calls[2]["mcp"] == {"server_label": "docs", "name": "echo", "arguments": '{"text":"hi"}', "output": "hi",
                               "error": None, "approval_request_id": "mcpr_0"}
    (recorded_tool,) = record["proxy_server_request"]["tools"]
    assert recorded_tool == {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example:8443/sse?[redacted]",
                             "require_approval": "never"}
    text = json.dumps(record) + json.dumps(c.finish(SessionEnd("client", 1000)))
    assert "s3cret" not in text and "u:p@" not in text
