"""The GPT-Live collector, sans-IO: frames in, records out, costs by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from rtproxy.config import ModelConfig, PriceConfig
from rtproxy.protocols.live.collector import LiveCollector
from rtproxy.spend.pricing import price_for
from rtproxy.spend.records import SessionEnd, SessionMeta

VOICE = price_for(ModelConfig("x", "openai", "gpt-live-1.1", price=PriceConfig(audio_per_hour=3.0,
                                                                                standby_audio_per_hour=1.2)))
LUNA = price_for(ModelConfig("gpt-5.6-luna", "openai"))


def meta(**kw: Any) -> SessionMeta:
    base = SessionMeta(session_id="sess_1", key_name="k", key_hash="h", model="gpt-live-1", provider="openai",
                       upstream_model="gpt-live-1", api_base="wss://x/v1/live/sessions", store_prompts=True,
                       price=VOICE, call_type="live", model_price=lambda name: LUNA if name == "gpt-5.6-luna" else None)
    return attrs.evolve(base, **kw)


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(milliseconds=100)
        return self.t


def feed(c: LiveCollector, direction: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    return c.feed(direction, json.dumps(event).encode())  # type: ignore[arg-type]


def usage_event(seconds: int, **extra: int) -> dict[str, Any]:
    return {"type": "session.usage.updated", "event_id": f"u{seconds}", "usage": {"seconds": seconds, **extra}}


def test_cumulative_seconds_are_never_summed_and_each_rise_is_billed_once() -> None:
    c = LiveCollector(meta(), now=Clock())
    feed(c, "server", {"type": "session.started", "event_id": "e", "session": {"id": "live_1"}})
    assert c.in_flight == 1 and c.settle_frames() == ['{"type": "session.close", "event_id": "event_rtp_settle_close"}']
    assert c.settle_frames() == []  # asked once
    (first,) = feed(c, "server", usage_event(15))
    assert feed(c, "server", usage_event(15)) == [] and feed(c, "server", usage_event(9)) == []
    (second,) = feed(c, "server", usage_event(40))
    assert (first["seconds"], first["seconds_added"], second["seconds_added"]) == (15, 15, 25)
    assert first["cost_usd"] + second["cost_usd"] == pytest.approx(40 * 3.0 / 3600)
    (final,) = feed(c, "server", {"type": "session.closed", "event_id": "x", "reason": "expired",
                                  "session": {"id": "live_1"}, "usage": {"seconds": 42}})
    assert final["source"] == "session.closed" and final["seconds_added"] == 2 and c.in_flight == 0
    s = c.finish(SessionEnd("upstream", 1000))
    assert (s["seconds"], s["seconds_source"], s["closed_reason"]) == (42, "session.closed", "expired")
    assert s["voice_cost_usd"] == pytest.approx(42 * 3.0 / 3600) == s["cost_usd"]


def test_paused_seconds_are_billed_at_the_standby_rate() -> None:
    c = LiveCollector(meta(), now=Clock())
    (r,) = feed(c, "server", usage_event(100, active_seconds=60, paused_seconds=40))
    assert r["cost_breakdown"] == {"active_seconds": pytest.approx(60 * 3.0 / 3600),
                                   "paused_seconds": pytest.approx(40 * 1.2 / 3600)}
    (r,) = feed(c, "server", usage_event(110, active_seconds=70, paused_seconds=40))
    assert r["cost_usd"] == pytest.approx(10 * 3.0 / 3600)


def delegated(c: LiveCollector, rid: str, usage: dict[str, Any], *, text: str = "", call: bool = False,
              model: str = "gpt-5.6-luna") -> list[dict[str, Any]]:
    wrap = lambda inner: {"type": "response.event", "event_id": f"e{rid}{inner['type']}", "delegation_id": "d1",
                          "event": inner}
    feed(c, "server", wrap({"type": "response.created", "response": {"id": rid}}))
    if text:
        feed(c, "server", wrap({"type": "response.output_text.delta", "delta": text}))
    if call:
        feed(c, "server", wrap({"type": "response.output_item.done", "item": {
            "type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}}))
    return feed(c, "server", wrap({"type": "response.completed", "response": {
        "id": rid, "model": model, "status": "completed", "usage": usage}}))


def test_each_delegated_response_is_billed_once_at_its_own_models_rates() -> None:
    c = LiveCollector(meta(), now=Clock())
    feed(c, "client", {"type": "session.start", "session": {"model": "gpt-live-1", "delegation": {
        "type": "responses", "responses": {"model": "gpt-5.6-luna", "tools": [
            {"type": "function", "name": "get_weather"},
            {"type": "mcp", "server_label": "d", "server_url": "https://m/x?t=1", "authorization": "Bearer s"}]}}}})
    feed(c, "client", {"type": "response.item.create", "item": {"type": "message", "role": "user",
                                                                "content": [{"type": "input_text", "text": "Weather?"}]}})
    usage = {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 400}, "output_tokens": 50}
    (r,) = delegated(c, "resp_1", usage, call=True)
    assert r["cost_usd"] == pytest.approx(600 * 0.2e-6 + 400 * 0.02e-6 + 50 * 1.2e-6)
    assert r["response"]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    assert r["messages"] == [{"role": "user", "content": "Weather?", "source": "text"}]
    assert "authorization" not in json.dumps(r["proxy_server_request"]["tools"])
    assert delegated(c, "resp_1", usage) == []  # the same id again: billed once
    (unpriced,) = delegated(c, "resp_2", usage, model="gpt-unknown", text="hi")
    assert unpriced["cost_usd"] is None and unpriced["response"]["output_text"] == "hi"
    assert c.finish(SessionEnd("client", 1000))["cost_usd"] is None  # unknown, never understated


def test_appends_typed_text_and_tool_outputs_are_recorded_with_their_source_unless_prompts_are_off() -> None:
    c = LiveCollector(meta(), now=Clock())
    feed(c, "client", {"type": "session.instructions.append", "delegation_id": None, "content": "Speak slowly."})
    feed(c, "client", {"type": "session.thinking.append", "delegation_id": None, "content": "The user is in Paris."})
    feed(c, "client", {"type": "session.commentary.append", "delegation_id": None, "content": "   "})
    feed(c, "client", {"type": "response.item.create", "item": {"type": "function_call_output", "call_id": "c1",
                                                                "output": "18"}})
    (r,) = feed(c, "server", usage_event(3))
    assert r["messages"] == [{"role": "system", "content": "Speak slowly.", "source": "instructions"},
                             {"role": "system", "content": "The user is in Paris.", "source": "thinking"},
                             {"role": "tool", "tool_call_id": "c1", "content": "18"}]
    quiet = LiveCollector(meta(store_prompts=False), now=Clock())
    feed(quiet, "client", {"type": "session.instructions.append", "delegation_id": None, "content": "secret"})
    (r,) = feed(quiet, "server", usage_event(3))
    s = quiet.finish(SessionEnd("client", 1000))
    assert r["messages"] is None and s["messages"] is None and "secret" not in json.dumps([r, s])


def test_odd_frames_are_counted_never_raised_on() -> None:
    c = LiveCollector(meta(), now=Clock())
    assert c.feed("server", b"{not json") == []
    assert feed(c, "server", {"type": "session.brand_new"}) == []
    assert feed(c, "server", {"type": "session.usage.updated", "usage": {"seconds": "many"}}) == []
    assert feed(c, "server", {"type": "response.event", "event": "odd"}) == []
    s = c.finish(SessionEnd("client", 1000))
    assert s["malformed_frames"] == 1 and s["unknown_event_types"] == {"session.brand_new": 1}
    assert s["seconds"] == 0 and s["seconds_source"] is None


def test_live_upstreams_name_no_model_in_the_url_and_carry_the_providers_credential() -> None:
    from rtproxy.providers import LocalEndpoint, live_target

    nowhere = LocalEndpoint(url=None, secret="s")
    openai = live_target(ModelConfig("gpt-live-1", "openai", api_key="sk-x", api="live"), nowhere)
    assert openai.url == "wss://api.openai.com/v1/live/sessions"
    assert dict(openai.headers) == {"Authorization": "Bearer sk-x"}
    azure = live_target(ModelConfig("gpt-live-1", "azure", api_base="https://res.openai.azure.com",
                                    api_key="az-x", api_version="v1", api="live"),
                        nowhere, op="attach", live_id="live_1", graceful_close=True)
    assert azure.url == "wss://res.openai.azure.com/openai/v1/live/sessions/live_1/attach?graceful_close=true"
    assert dict(azure.headers) == {"api-key": "az-x"} and azure.api_base.endswith("/live_1/attach")
    local = live_target(ModelConfig("gpt-live-1", "local", api="live"),
                        LocalEndpoint(url="ws://127.0.0.1:9", secret="s3cret"), op="fork", live_id="live_2")
    assert local.url == "ws://127.0.0.1:9/v1/live/sessions/live_2/fork"
    assert dict(local.headers) == {"Authorization": "Bearer s3cret"}


def test_typed_items_of_every_shape_are_recorded_and_the_pending_list_is_bounded() -> None:
    from rtproxy.protocols.live import collector as live_collector

    c = LiveCollector(meta(), now=Clock())
    feed(c, "client", {"type": "response.item.create", "item": {"type": "message", "content": "plain string"}})
    feed(c, "client", {"type": "response.item.create", "item": {"type": "message", "role": "assistant",
                                                                "content": [{"type": "output_text", "text": "said"}]}})
    feed(c, "client", {"type": "response.item.create", "item": {"type": "function_call_output", "call_id": "c",
                                                                "output": {"t": 1}}})
    feed(c, "client", {"type": "response.item.create", "item": {"type": "reasoning", "content": "hidden"}})
    feed(c, "client", {"type": "response.item.create", "item": {"type": "message", "content": [{"text": "  "}]}})
    feed(c, "server", {"type": "session.updated", "session": {"instructions": "New rules."}})
    (r,) = feed(c, "server", usage_event(1))
    assert r["messages"] == [{"role": "user", "content": "plain string", "source": "text"},
                             {"role": "assistant", "content": "said", "source": "text"},
                             {"role": "tool", "tool_call_id": "c", "content": '{"t": 1}'},
                             {"role": "system", "content": "New rules.", "source": "instructions"}]
    for i in range(live_collector.MAX_PENDING_MESSAGES + 3):
        feed(c, "client", {"type": "session.thinking.append", "delegation_id": None, "content": f"n{i}"})
    (r,) = feed(c, "server", usage_event(2))
    assert len(r["messages"]) == live_collector.MAX_PENDING_MESSAGES and r["messages"][0]["content"] == "n3"
    assert c.finish(SessionEnd("client", 1000))["messages_dropped"] == 3


def test_decisions_settings_merge_and_delegations_and_open_responses_are_bounded() -> None:
    from rtproxy.protocols.live import collector as live_collector

    c = LiveCollector(meta(), now=Clock())
    feed(c, "client", {"type": "session.start", "session": {"model": "m", "delegation": {
        "type": "decisions", "decisions": {"model": "gpt-5.6-luna", "questions": []}}}})
    feed(c, "server", {"type": "session.started", "session": {"id": "live_1"}})
    feed(c, "client", {"type": "session.update", "session": {"delegation": {"decisions": {"questions": [1]}}}})
    feed(c, "server", {"type": "session.updated", "session": {"id": "live_1"}})
    assert c.delegation == {"type": "decisions", "decisions": {"model": "gpt-5.6-luna", "questions": [1]}}
    for i in range(live_collector.MAX_DELEGATIONS + 2):
        feed(c, "server", {"type": "session.delegation.created", "offset_ms": i,
                           "delegation": {"id": f"d{i}", "target": "client"}})
    assert len(c.delegations) == live_collector.MAX_DELEGATIONS
    for i in range(live_collector.MAX_OPEN_RESPONSES + 2):
        feed(c, "server", {"type": "response.event", "event": {"type": "response.created", "response": {"id": f"r{i}"}}})
    assert len(c._open) == live_collector.MAX_OPEN_RESPONSES
    s = c.finish(SessionEnd("client", 1000))
    assert s["responses_in_flight"] == live_collector.MAX_OPEN_RESPONSES and s["delegation_type"] == "decisions"
