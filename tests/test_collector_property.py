"""The collector never raises on any event stream, every response.done yields one record, and the
records add up: session = sum of its responses, no negative cost, and with store_prompts off no
text of the conversation anywhere. Frames go through the relay's own filter first (the protocol's
``classify``), as in a session: a billing event the filter dropped would be lost."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtproxy.protocols.realtime import REALTIME
from rtproxy.protocols.realtime.collector import Collector
from rtproxy.protocols.seam import AUDIO, COLLECT
from rtproxy.spend.records import SessionEnd, SessionMeta
from rtproxy.spend.pricing import database_price

from .helpers import examples

META = SessionMeta(session_id="s", key_name="k", key_hash="h", model="m", provider="local", upstream_model="m",
                   api_base="ws://x", store_prompts=True, price=database_price("openai", "gpt-realtime"))

#: Conversation text: what store_prompts = false must keep out of every record.
MARK = "PROMPT-TEXT-MARK"
said = st.text(max_size=10) | st.just(MARK) | st.just(f"an {MARK} in a sentence")
junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                    max_size=4), max_leaves=12)
usage = st.fixed_dictionaries({}, optional={
    "total_tokens": st.integers(-5, 10**6) | junk, "input_tokens": st.integers(0, 10**6),
    "input_token_details": st.fixed_dictionaries({}, optional={
        "text_tokens": st.integers(-5, 10**5) | junk, "audio_tokens": st.integers(0, 10**5),
        "cached_tokens": st.integers(0, 10**5), "cached_tokens_details": junk}) | junk,
    "output_token_details": junk | st.fixed_dictionaries({"text_tokens": st.integers(0, 99)})})
output_item = st.one_of(
    st.fixed_dictionaries({"type": st.just("function_call"), "name": st.text(max_size=10) | junk,
                           "call_id": st.text(max_size=10) | junk, "arguments": st.text(max_size=20) | junk}),
    st.fixed_dictionaries({"type": st.just("message"), "content": st.lists(st.fixed_dictionaries({
        "type": st.sampled_from(["output_text", "text", "output_audio", "audio"]),
        "text": said | junk, "transcript": said | junk}), max_size=3) | junk}),
    junk)
response_done = st.fixed_dictionaries({"type": st.just("response.done")}, optional={
    "event_id": st.text(max_size=5),
    "response": st.fixed_dictionaries({}, optional={
        "id": st.text(max_size=8) | junk, "status": st.sampled_from(["completed", "cancelled", "failed"]) | junk,
        "usage": usage | junk, "output": st.lists(output_item, max_size=4) | junk, "status_details": junk}) | junk})
other = st.fixed_dictionaries({"type": st.sampled_from([
    "session.created", "session.updated", "session.update", "conversation.item.create", "response.create",
    "response.created", "error", "conversation.item.input_audio_transcription.completed", "conversation.item.created",
    "conversation.item.added", "response.text.delta", "response.output_text.delta", "response.audio.delta",
    "input_audio_buffer.append", "made.up.type"])}, optional={
    "session": junk | st.fixed_dictionaries({}, optional={"tools": junk, "instructions": said | junk, "audio": junk}),
    "item": junk | st.fixed_dictionaries({"type": st.sampled_from(["message", "function_call_output"])}, optional={
        "role": st.sampled_from(["user", "assistant", "system"]) | junk,
        "content": st.lists(st.fixed_dictionaries({"type": st.sampled_from(["input_text", "text"]), "text": said}),
                            max_size=2) | junk,
        "call_id": junk, "output": said | junk}),
    "response": junk, "transcript": said | junk, "error": junk, "delta": said | junk, "audio": junk})


def encode(event: Any, cut: int | None) -> bytes:
    raw = json.dumps(event).encode()
    return raw[:cut] if cut is not None else raw  # a truncated frame is not valid JSON any more


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["client", "server"]), st.one_of(response_done, other, junk),
                          st.none() | st.integers(0, 60)), max_size=40))
def test_collector_never_raises_and_counts_every_response_done(stream: list[tuple[str, Any, int | None]]) -> None:
    check_stream(stream, store_prompts=True)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["client", "server"]), st.one_of(response_done, other, junk),
                          st.none() | st.integers(0, 60)), max_size=40))
def test_with_store_prompts_off_no_conversation_text_reaches_a_record(stream: list[tuple[str, Any, int | None]]) -> None:
    records = check_stream(stream, store_prompts=False)
    assert MARK not in json.dumps(records)


def check_stream(stream: list[tuple[str, Any, int | None]], *, store_prompts: bool) -> list[dict[str, Any]]:
    c = Collector(attrs.evolve(META, store_prompts=store_prompts))
    records = []
    expected = 0
    audio = [0, 0]
    for direction, event, cut in stream:
        frame = encode(event, cut)
        whole = frame == encode(event, None)
        done = direction == "server" and whole and isinstance(event, dict) and event.get("type") == "response.done"
        kind = REALTIME.classify(frame)  # the relay's filter: only COLLECT frames reach the collector
        if done:
            expected += 1
            assert kind == COLLECT, "the relay's filter would drop a response.done"
        if kind == AUDIO:
            audio[direction == "server"] += len(frame)
            c.note_audio(audio[0], audio[1])
        elif kind == COLLECT:
            records.extend(c.feed(direction, frame))  # type: ignore[arg-type]
    assert len(records) == expected
    assert all(r["record"] == "response" for r in records)
    session = c.finish(SessionEnd("client", 1000))
    assert session["responses"] == expected
    costs = [r["cost_usd"] for r in records]
    assert all(cost is not None and cost >= 0 for cost in costs)
    assert all(v >= 0 for r in records for v in (r["cost_breakdown"] or {}).values())
    assert session["cost_usd"] == pytest.approx(sum(costs), abs=1e-9)
    for name in ("input_tokens", "output_tokens"):
        reported = [r["usage"].get(name) for r in records]
        ints = [v for v in reported if isinstance(v, int) and not isinstance(v, bool)]
        if len(ints) == len(reported) and ints:  # every response reported it as a number: the sum holds
            assert session["usage"][name] == sum(ints)
    json.dumps(records + [session])  # everything written is serialisable
    return records + [session]


def test_the_mark_reaches_the_records_when_prompts_are_kept() -> None:
    """The control for the property above: the same text is recorded when store_prompts is on."""
    stream = [("client", {"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": MARK}]}}, None),
        ("server", {"type": "response.done", "response": {"id": "r", "usage": {}}}, None)]
    assert MARK in json.dumps(check_stream(stream, store_prompts=True))  # type: ignore[arg-type]
    assert MARK not in json.dumps(check_stream(stream, store_prompts=False))  # type: ignore[arg-type]
