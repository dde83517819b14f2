"""The collector never raises on any event stream, and every response.done yields one record."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rtproxy.protocols.realtime.collector import Collector
from rtproxy.spend.records import SessionEnd, SessionMeta
from rtproxy.spend.pricing import PRICES

META = SessionMeta(session_id="s", key_name="k", key_hash="h", model="m", provider="local", upstream_model="m",
                   api_base="ws://x", store_prompts=True, price=PRICES["gpt-realtime"])

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
        "text": st.text(max_size=10) | junk, "transcript": st.text(max_size=10) | junk}), max_size=3) | junk}),
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
    "session": junk | st.fixed_dictionaries({}, optional={"tools": junk, "instructions": junk, "audio": junk}),
    "item": junk | st.fixed_dictionaries({"type": st.sampled_from(["message", "function_call_output"])}, optional={
        "role": junk, "content": junk, "call_id": junk, "output": junk}),
    "response": junk, "transcript": junk, "error": junk, "delta": junk, "audio": junk})


def encode(event: Any, cut: int | None) -> bytes:
    raw = json.dumps(event).encode()
    return raw[:cut] if cut is not None else raw  # a truncated frame is not valid JSON any more


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["client", "server"]), st.one_of(response_done, other, junk),
                          st.none() | st.integers(0, 60)), max_size=40))
def test_collector_never_raises_and_counts_every_response_done(stream: list[tuple[str, Any, int | None]]) -> None:
    c = Collector(META)
    records = []
    expected = 0
    for direction, event, cut in stream:
        frame = encode(event, cut)
        whole = frame == encode(event, None)
        if direction == "server" and whole and isinstance(event, dict) and event.get("type") == "response.done":
            expected += 1
        records.extend(c.feed(direction, frame))  # type: ignore[arg-type]
    assert len(records) == expected
    assert all(r["record"] == "response" for r in records)
    session = c.finish(SessionEnd("client", 1000))
    assert session["responses"] == expected
    json.dumps(records + [session])  # everything written is serialisable
