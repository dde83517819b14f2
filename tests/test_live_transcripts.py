"""Live transcript turns as the official SDK's TranscriptGrouper makes them: the same random
fragment streams through both (the SDK's clock frozen, so only fragments and the end close
turns) must give the same closed turns."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.live._transcript_state import TranscriptState
from openai.lib.live._types import TranscriptGrouperOptions, TranscriptSegmentClosedEvent
from openai.types.live import SessionClosedEvent
from openai.types.live.input_transcript_delta_event import InputTranscriptDeltaEvent
from openai.types.live.output_transcript_delta_event import OutputTranscriptDeltaEvent

from rtproxy.protocols.live.transcripts import TranscriptTurns

from .helpers import examples

WORDS = ["Hello", " there", "yeah", " mm", "ok", " What", " is", " the weather", "?", " in Paris", "", " right"]


@st.composite
def fragment_streams(draw: Any) -> list[dict[str, Any]]:
    events, t = [], 0
    for i in range(draw(st.integers(1, 25))):
        t = max(0, t + draw(st.sampled_from([-3000, 0, 0, 100, 200, 400, 600, 1500, 2500])))
        duration = draw(st.sampled_from([0, 100, 200, 300, 900]))
        events.append({"type": draw(st.sampled_from(["session.input_transcript.delta",
                                                     "session.output_transcript.delta"])),
                       "event_id": f"e{draw(st.integers(0, i + 2))}", "delta": draw(st.sampled_from(WORDS)),
                       "start_ms": t, "end_ms": t + duration})
    return events


def sdk_turns(events: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    state = TranscriptState(TranscriptGrouperOptions(), lambda: 0.0)
    updates = []
    for e in events:
        cls = InputTranscriptDeltaEvent if e["type"] == "session.input_transcript.delta" else OutputTranscriptDeltaEvent
        updates += state.push(cls.construct(**e)) or []
    updates += state.push(SessionClosedEvent.construct(type="session.closed")) or []
    return [(u.segment.speaker, u.segment.text, u.segment.start_ms, u.segment.end_ms) for u in updates
            if isinstance(u, TranscriptSegmentClosedEvent) and u.segment.text.strip()]


def our_turns(events: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    turns = TranscriptTurns()
    out = []
    for e in events:
        out += turns.push(e)
    out += turns.finish()
    return [(t["role"], t["content"], t["start_ms"], t["end_ms"]) for t in out]


@settings(max_examples=examples(300), deadline=None)
@given(fragment_streams())
def test_turns_match_the_sdks_transcript_grouper(events: list[dict[str, Any]]) -> None:
    assert our_turns(events) == sdk_turns(events)


def test_a_pause_of_half_a_second_starts_a_new_turn_and_repeats_are_skipped() -> None:
    user = "session.input_transcript.delta"
    events = [{"type": user, "event_id": "a", "delta": "Hello", "start_ms": 0, "end_ms": 300},
              {"type": user, "event_id": "a", "delta": "Hello", "start_ms": 0, "end_ms": 300},
              {"type": user, "event_id": "b", "delta": " there", "start_ms": 300, "end_ms": 500},
              {"type": "session.output_transcript.delta", "event_id": "c", "delta": "Hi!", "start_ms": 1200,
               "end_ms": 1500}]
    assert our_turns(events) == [("user", "Hello there", 0, 500), ("assistant", "Hi!", 1200, 1500)]


def test_invalid_fragments_are_counted_and_skipped() -> None:
    turns = TranscriptTurns()
    assert turns.push({"type": "session.input_transcript.delta", "event_id": "x", "delta": "a",
                       "start_ms": 5, "end_ms": 1}) == []
    assert turns.push({"type": "session.input_transcript.delta", "event_id": "y", "delta": 3,
                       "start_ms": 0, "end_ms": 1}) == []
    assert turns.invalid == 2 and turns.finish() == []


@pytest.mark.parametrize("start, end", [(True, 5), (-1, 5), (0.5, 5), (0, "5"), (5, 4), (0, 2**53)])
def test_a_fragment_without_a_whole_nonnegative_interval_is_skipped(start: Any, end: Any) -> None:
    turns = TranscriptTurns()
    assert turns.push({"type": "session.input_transcript.delta", "event_id": "e", "delta": "hi",
                       "start_ms": start, "end_ms": end}) == []
    assert turns.invalid == 1 and turns.finish() == []


def test_the_largest_safe_time_is_still_a_time_and_an_empty_id_is_not() -> None:
    turns = TranscriptTurns()
    big = 2**53 - 1
    turns.push({"type": "session.input_transcript.delta", "event_id": "", "delta": "no", "start_ms": 0, "end_ms": 1})
    turns.push({"type": "session.input_transcript.delta", "event_id": "e", "delta": "yes", "start_ms": big,
                "end_ms": big})
    assert turns.invalid == 1
    assert [t["content"] for t in turns.finish()] == ["yes"]


def test_fragments_of_both_speakers_over_one_interval_are_grouped_and_the_end_closes_once() -> None:
    turns = TranscriptTurns()
    out = []
    for eid, kind, text in (("a", "output", "Hi"), ("b", "input", "Hey"), ("c", "input", " there")):
        out += turns.push({"type": f"session.{kind}_transcript.delta", "event_id": eid, "delta": text,
                           "start_ms": 0 if eid != "c" else 300, "end_ms": 300 if eid != "c" else 600})
    out += turns.finish()
    assert sorted((t["role"], t["content"]) for t in out) == [("assistant", "Hi"), ("user", "Hey there")]
    assert turns.finish() == [] and turns.closed
    assert turns.push({"type": "session.input_transcript.delta", "event_id": "z", "delta": "late",
                       "start_ms": 900, "end_ms": 950}) == []


def test_repeats_are_remembered_up_to_the_bound_and_the_oldest_forgotten() -> None:
    from rtproxy.protocols.live import transcripts

    turns = TranscriptTurns()
    first = {"type": "session.input_transcript.delta", "event_id": "e0", "delta": "a", "start_ms": 0, "end_ms": 1}
    turns.push(first)
    for i in range(1, transcripts.MAX_SEEN_EVENT_IDS + 1):
        turns.push({**first, "event_id": f"e{i}", "start_ms": i, "end_ms": i + 1})
    assert len(turns._seen) == transcripts.MAX_SEEN_EVENT_IDS and "e0" not in turns._seen
    assert "e1" in turns._seen


def _random_stream(rng: random.Random) -> list[dict[str, Any]]:
    """The same distribution as fragment_streams, drawn from a seeded generator."""
    events, t = [], 0
    for i in range(rng.randint(1, 25)):
        t = max(0, t + rng.choice([-3000, 0, 0, 100, 200, 400, 600, 1500, 2500]))
        duration = rng.choice([0, 100, 200, 300, 900])
        events.append({"type": rng.choice(["session.input_transcript.delta", "session.output_transcript.delta"]),
                       "event_id": f"e{rng.randint(0, i + 2)}", "delta": rng.choice(WORDS),
                       "start_ms": t, "end_ms": t + duration})
    return events


def test_four_hundred_fixed_streams_give_the_sdks_turns() -> None:
    # the property test above draws new streams each run (and only a few under `make mutation`);
    # these are the same every run, so a change that breaks any of them always fails here
    rng = random.Random(20261202)
    for _ in range(400):
        events = _random_stream(rng)
        assert our_turns(events) == sdk_turns(events), events


def test_same_interval_fragments_of_one_speaker_wait_for_the_other() -> None:
    user, assistant = "session.input_transcript.delta", "session.output_transcript.delta"
    events = [{"type": user, "event_id": "a", "delta": "Hey", "start_ms": 0, "end_ms": 300},
              {"type": user, "event_id": "b", "delta": " you", "start_ms": 0, "end_ms": 300},
              {"type": assistant, "event_id": "c", "delta": "Hi", "start_ms": 0, "end_ms": 300},
              {"type": user, "event_id": "d", "delta": "So", "start_ms": 2000, "end_ms": 2300},
              {"type": user, "event_id": "e", "delta": "Again", "start_ms": 100, "end_ms": 200}]  # time went back
    assert our_turns(events) == sdk_turns(events)
    assert [(role, text) for role, text, _, _ in our_turns(events)] == [
        ("user", "Hey you"), ("assistant", "Hi"), ("user", "So"), ("user", "Again")]


def test_a_turn_is_kept_up_to_its_bound_and_cut_and_marked_beyond() -> None:
    from rtproxy.protocols.live.transcripts import MAX_TURN_CHARS

    for size, expected in ((MAX_TURN_CHARS, "x" * MAX_TURN_CHARS),
                           (MAX_TURN_CHARS + 1, "x" * MAX_TURN_CHARS + "…[truncated]")):
        turns = TranscriptTurns()
        turns.push({"type": "session.input_transcript.delta", "event_id": "a", "delta": "x" * size,
                    "start_ms": 0, "end_ms": 10})
        (turn,) = turns.finish()
        assert turn["content"] == expected
