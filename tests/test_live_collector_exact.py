"""GPT-Live's delegated responses, attributed exactly: which open response a text delta or a tool
call belongs to (by its response id, else the one open under its delegation), the model a
response is priced by, its status, its start, and the billed-once memory at its bound (found
loosely pinned by the mutation run of 2026-12-02)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rtproxy.protocols.live import collector as collector_module
from rtproxy.protocols.live.collector import LiveCollector
from rtproxy.spend.records import SessionEnd

from .test_live_collector import Clock, meta


def send(c: LiveCollector, inner: dict[str, Any], delegation: str | None = "d1") -> list[dict[str, Any]]:
    event = {"type": "response.event", "event_id": f"e{id(inner)}", "delegation_id": delegation, "event": inner}
    return c.feed("server", json.dumps(event).encode())  # type: ignore[arg-type]


def created(rid: str) -> dict[str, Any]:
    return {"type": "response.created", "response": {"id": rid}}


def done(rid: str | None, kind: str = "response.completed", **resp: Any) -> dict[str, Any]:
    return {"type": kind, "response": {**({"id": rid} if rid else {}), "usage": {"input_tokens": 10}, **resp}}


def call(name: str, **where: Any) -> dict[str, Any]:
    return {"type": "response.output_item.done", **where,
            "item": {"type": "function_call", "call_id": f"c_{name}", "name": name, "arguments": {"x": 1}}}


def start(c: LiveCollector, model: str = "gpt-5.6-luna") -> None:
    c.feed("client", json.dumps({"type": "session.start", "session": {  # type: ignore[arg-type]
        "model": "gpt-live-1", "delegation": {"type": "responses", "responses": {"model": model}}}}).encode())
    # the provider confirms it (the records carry a client's config only then)
    c.feed("server", json.dumps({"type": "session.started", "session": {"id": "live_1"}}).encode())  # type: ignore[arg-type]


def test_deltas_and_calls_go_to_the_response_they_name_else_to_the_one_open_under_their_delegation() -> None:
    c = LiveCollector(meta(), now=Clock())
    start(c)
    send(c, created("r1"), "d1")
    send(c, created("r2"), "d2")
    send(c, {"type": "response.output_text.delta", "response_id": "r1", "delta": "one"}, "d2")  # named: r1
    send(c, {"type": "response.output_text.delta", "response": {"id": "r2"}, "delta": "two"}, "d1")  # named: r2
    send(c, {"type": "response.output_text.delta", "delta": "+1"}, "d1")  # unnamed: d1's open response
    send(c, {"type": "response.output_text.delta", "response_id": "gone", "delta": "+2"}, "d2")  # unknown: d2's
    send(c, call("a"), "d2")
    send(c, call("b", response_id="r1"), "d2")
    send(c, {"type": "response.output_text.delta", "delta": "lost"}, "d3")  # nothing open under d3
    (r1,) = send(c, done("r1"), "d1")
    (r2,) = send(c, done("r2"), "d2")
    assert r1["response"]["output_text"] == "one+1" and r2["response"]["output_text"] == "two+2"
    assert [t["function"]["name"] for t in r1["response"]["tool_calls"]] == ["b"]
    assert [t["function"]["name"] for t in r2["response"]["tool_calls"]] == ["a"]
    assert r1["response"]["tool_calls"][0]["function"]["arguments"] == '{"x": 1}'
    assert (r1["delegation_id"], r2["delegation_id"]) == ("d1", "d2")


class Manual:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t


def test_a_response_is_timed_from_its_creation_and_priced_by_its_model_or_the_delegations() -> None:
    clock = Manual()
    c = LiveCollector(meta(), now=clock)
    start(c)
    send(c, created("r1"))
    clock.t += timedelta(seconds=5)
    (r,) = send(c, done("r1"))  # no model in the response: the session's delegation model
    assert r["response_model"] == "gpt-5.6-luna" and r["cost_usd"] is not None
    assert r["duration_ms"] == 5000
    (own,) = send(c, done("r2", model="gpt-unknown"))
    assert own["response_model"] == "gpt-unknown" and own["cost_usd"] is None
    bare = LiveCollector(meta(), now=Clock())  # no delegation model configured either
    (r,) = send(bare, done("r3"))
    assert r["response_model"] is None and r["cost_usd"] is None


@pytest.mark.parametrize(("kind", "resp", "status"), [
    ("response.failed", {}, "failed"), ("response.incomplete", {}, "incomplete"),
    ("response.completed", {"status": "cancelled"}, "cancelled"), ("response.completed", {}, "completed"),
])
def test_the_status_is_the_responses_own_else_its_terminal_events(kind: str, resp: dict[str, Any],
                                                                  status: str) -> None:
    c = LiveCollector(meta(), now=Clock())
    (r,) = send(c, done("r1", kind, **resp))
    assert r["status"] == status


def test_a_response_without_an_id_is_billed_each_time_and_one_with_an_id_once(monkeypatch: pytest.MonkeyPatch
                                                                            ) -> None:
    c = LiveCollector(meta(), now=Clock())
    assert len(send(c, done(None))) == 1 and len(send(c, done(None))) == 1
    monkeypatch.setattr(collector_module, "MAX_BILLED_IDS", 3)
    for rid in ("a", "b", "c"):
        assert len(send(c, done(rid))) == 1
    assert send(c, done("a")) == []  # three remembered: still billed once
    assert len(send(c, done("d"))) == 1  # the fourth makes "a" the one forgotten
    assert len(send(c, done("a"))) == 1 and send(c, done("c")) == []


def feed(c: LiveCollector, direction: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    return c.feed(direction, json.dumps(event).encode())  # type: ignore[arg-type]


def test_a_delta_text_is_kept_up_to_64_kib_and_a_call_with_object_arguments_is_serialised() -> None:
    c = LiveCollector(meta(), now=Clock())
    send(c, created("r1"))
    send(c, {"type": "response.output_text.delta", "response_id": "r1", "delta": "x" * 65535})
    send(c, {"type": "response.output_text.delta", "response_id": "r1", "delta": "y"})  # under the cap: kept
    send(c, {"type": "response.output_text.delta", "response_id": "r1", "delta": "z"})  # at the cap: dropped
    send(c, {"type": "response.output_text.delta", "response_id": "r1", "delta": 5})  # not text
    send(c, call("late"), "d9")  # no response open under d9: nowhere to put it, and no crash
    (r,) = send(c, done("r1"))
    assert r["response"]["output_text"] == "x" * 65535 + "y"


def test_a_decision_is_billed_to_its_delegation() -> None:
    c = LiveCollector(meta(), now=Clock())
    (r,) = feed(c, "server", {"type": "decision.event", "delegation_id": "d7", "event": {"decision": {
        "model": "gpt-5.6-luna", "usage": {"input_tokens": 5}, "answers": ["yes"]}}})
    assert (r["delegation"], r["delegation_id"], r["response_model"]) == ("decisions", "d7", "gpt-5.6-luna")
    assert feed(c, "server", {"type": "decision.event", "event": {"decision": {"usage": {}}}}) == []


def test_seconds_without_a_split_are_active_and_a_rise_of_paused_only_bills_standby() -> None:
    c = LiveCollector(meta(), now=Clock())
    (r,) = feed(c, "server", {"type": "session.usage.updated", "usage": {"seconds": 10, "active_seconds": 10}})
    assert (r["active_seconds"], r["paused_seconds"], r["seconds_added"]) == (10, 0, 10)  # paused missing
    (r,) = feed(c, "server", {"type": "session.usage.updated", "usage": {
        "seconds": 20, "active_seconds": 10, "paused_seconds": 10}})
    assert r["cost_breakdown"]["active_seconds"] == 0.0 and r["seconds_added"] == 10
    assert r["cost_usd"] == pytest.approx(10 * 1.2 / 3600)  # the standby rate only


def test_without_a_voice_price_the_voice_cost_stays_unknown() -> None:
    c = LiveCollector(meta(price=None), now=Clock())
    (r,) = feed(c, "server", {"type": "session.usage.updated", "usage": {"seconds": 10}})
    assert r["cost_usd"] is None and r["voice_cost_usd"] is None
    s = c.finish(SessionEnd("client", 1000))
    assert s["voice_cost_usd"] is None and s["cost_usd"] is None


def test_a_closed_event_is_the_final_word_on_seconds_even_when_it_adds_none() -> None:
    c = LiveCollector(meta(), now=Clock())
    feed(c, "server", {"type": "session.usage.updated", "usage": {"seconds": 30}})
    assert feed(c, "server", {"type": "session.closed", "usage": {"seconds": 30}, "reason": "client"}) == []
    s = c.finish(SessionEnd("upstream", 1000))
    assert (s["seconds"], s["seconds_source"], s["closed_reason"]) == (30, "session.closed", "client")
    without = LiveCollector(meta(), now=Clock())
    feed(without, "server", {"type": "session.usage.updated", "usage": {"seconds": 30}})
    feed(without, "server", {"type": "session.closed", "reason": "expired"})  # no usage: nothing final said
    assert without.finish(SessionEnd("upstream", 1000))["seconds_source"] == "session.usage.updated"


def test_with_prompts_off_a_usage_record_carries_no_messages_and_keeps_none_for_later() -> None:
    c = LiveCollector(meta(store_prompts=False), now=Clock())
    feed(c, "client", {"type": "response.item.create", "item": {"type": "message", "content": "secret"}})
    (r,) = feed(c, "server", {"type": "session.usage.updated", "usage": {"seconds": 3}})
    assert r["messages"] is None and c._pending == []
    shown = LiveCollector(meta(), now=Clock())
    feed(shown, "client", {"type": "response.item.create", "item": {"type": "message", "content": "plain"}})
    (r,) = feed(shown, "server", {"type": "session.usage.updated", "usage": {"seconds": 3}})
    assert r["messages"] == [{"role": "user", "content": "plain", "source": "text"}]  # a string content


@pytest.mark.parametrize(("end", "status", "error"), [
    (SessionEnd("upstream", 1011, "x", failed=True), "failure", {"type": "server_error", "code": "boom", "message": "m"}),
    (SessionEnd("upstream", 1011, "x", failed=True, error={"code": "own"}), "failure", {"code": "own"}),
    (SessionEnd("client", 1000), "success", None),  # an error event earlier is not the session's failure
])
def test_the_session_record_says_how_it_ended(end: SessionEnd, status: str, error: Any) -> None:
    c = LiveCollector(meta(), now=Clock())
    feed(c, "server", {"type": "error", "error": {"type": "server_error", "code": "boom", "message": "m"}})
    s = c.finish(end)
    assert (s["status"], s["error"]) == (status, error)
    assert s["last_error_event"] == {"type": "server_error", "code": "boom", "message": "m"}


def test_the_delegation_type_is_the_sessions_or_client_once_started() -> None:
    never = LiveCollector(meta(), now=Clock())
    assert never.finish(SessionEnd("client", 1000))["delegation_type"] is None
    started = LiveCollector(meta(), now=Clock())
    feed(started, "server", {"type": "session.started", "session": {"id": "live_1"}})
    assert started.finish(SessionEnd("client", 1000))["delegation_type"] == "client"
    delegated = LiveCollector(meta(), now=Clock())
    start(delegated)
    assert delegated.finish(SessionEnd("client", 1000))["delegation_type"] == "responses"


def test_a_webrtc_sessions_records_say_so_and_a_websockets_do_not() -> None:
    rtc = LiveCollector(meta(transport="webrtc"), now=Clock())
    (u,) = feed(rtc, "server", {"type": "session.usage.updated", "usage": {"seconds": 3}})
    assert u["transport"] == "webrtc" and rtc.finish(SessionEnd("client", 1000))["transport"] == "webrtc"
    ws = LiveCollector(meta(), now=Clock())
    (u,) = feed(ws, "server", {"type": "session.usage.updated", "usage": {"seconds": 3}})
    assert "transport" not in u and "transport" not in ws.finish(SessionEnd("client", 1000))


def test_a_session_record_before_anything_happened_says_none_not_empty() -> None:
    s = LiveCollector(meta(), now=Clock()).finish(SessionEnd("client", 1000))
    assert (s["upstream_session_id"], s["paused_seconds"], s["closed_reason"], s["tools"], s["last_error_event"]) == \
        (None, None, None, None, None)


def test_instructions_repeated_unchanged_are_recorded_once() -> None:
    c = LiveCollector(meta(), now=Clock())
    feed(c, "client", {"type": "session.start", "session": {"model": "gpt-live-1", "instructions": "Be brief."}})
    feed(c, "server", {"type": "session.started", "session": {"id": "live_1"}})
    feed(c, "client", {"type": "session.update", "session": {"instructions": "Be brief."}})
    feed(c, "client", {"type": "session.update", "session": {"instructions": "Be briefer."}})
    for _ in range(2):  # each confirmed in turn
        feed(c, "server", {"type": "session.updated", "session": {"id": "live_1"}})
    (r,) = feed(c, "server", {"type": "session.usage.updated", "usage": {"seconds": 1}})
    assert [m["content"] for m in r["messages"]] == ["Be brief.", "Be briefer."]


def test_a_failed_delegated_response_carries_its_error_and_one_never_opened_has_no_text() -> None:
    c = LiveCollector(meta(), now=Clock())
    (r,) = send(c, done("r1", "response.failed", error={"code": "server_error", "message": "oops"}))
    assert r["error"] == {"type": None, "code": "server_error", "message": "oops"}
    assert r["response"]["output_text"] is None and r["response"]["tool_calls"] == []
    (ok,) = send(c, done("r2"))
    assert ok["error"] is None


def test_a_response_with_no_model_anywhere_is_not_priced_by_asking_for_none() -> None:
    asked: list[Any] = []
    c = LiveCollector(meta(model_price=lambda name: asked.append(name)), now=Clock())
    (r,) = send(c, done("r1"))
    assert r["cost_usd"] is None and asked == []


def test_with_prompts_off_messages_after_a_billed_response_are_dropped_quietly() -> None:
    c = LiveCollector(meta(store_prompts=False), now=Clock())
    start(c)
    send(c, done("r1"))
    feed(c, "client", {"type": "response.item.create", "item": {"type": "message", "content": "later"}})
    (u,) = feed(c, "server", {"type": "session.usage.updated", "usage": {"seconds": 2}})
    assert u["messages"] is None
    feed(c, "client", {"type": "session.update", "session": {"delegation": {"responses": {"tools": [
        {"type": "function", "name": "f"}]}}}})
    assert c.finish(SessionEnd("client", 1000))["tools"] is None  # tool definitions are prompts too


def test_a_zero_split_is_a_split_and_a_non_string_id_is_no_id() -> None:
    c = LiveCollector(meta(), now=Clock())
    (r,) = feed(c, "server", {"type": "session.usage.updated", "usage": {
        "seconds": 10, "active_seconds": 0, "paused_seconds": 10}})
    assert (r["active_seconds"], r["paused_seconds"]) == (0, 10)
    assert r["cost_usd"] == pytest.approx(10 * 1.2 / 3600)  # all standby
    (a,) = send(c, done(None, id=5))
    (b,) = send(c, done(None, id=5))
    assert a["response_id"] is None and b["response_id"] is None  # not an id: billed each time
