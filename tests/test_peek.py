"""The cheap first look at a frame (protocols/peek): the type from the head, the event parse and
the collectors' triage, at their boundaries."""

from __future__ import annotations

import pytest

from rtproxy.protocols import peek
from rtproxy.protocols.peek import EventTriage, count_unknown, parse_event, peek_type


@pytest.mark.parametrize(("frame", "expected"), [
    (b'{"type":"a.b"}', b"a.b"),
    (b'{"type"\t:\r\n"a.b"}', b"a.b"),  # whitespace either side of the colon
    (b'{"type" "a.b"}', None),  # no colon
    (b'{"type":', None),  # ends after the colon
    (b'{"type": ', None),
    (b'{"type":a}', None),  # not a string
    (b'{"type":"' + b"t" * 96 + b'"}', b"t" * 96),  # the longest type
    (b'{"type":"' + b"t" * 97 + b'"}', None),  # one more: not a type
    (b" " * (peek.PEEK_BYTES - 6) + b'"type":"x"', b"x"),  # the key starts at the last place looked
    (b" " * (peek.PEEK_BYTES - 5) + b'"type":"x"', None),  # one further: not found
])
def test_the_type_is_found_only_where_and_as_it_is_promised(frame: bytes, expected: bytes | None) -> None:
    assert peek_type(frame) == expected


@pytest.mark.parametrize(("payload", "ok"), [
    (b'{"type": "x", "n": 1}', True),
    ('{"type": "x"}', True),
    (b'{"type": 1}', False),
    (b'{"kind": "x"}', False),
    (b'["type"]', False),
    (b"{bad", False),
    (b"[" * 100_000, False),  # too deep: refused, never raised
])
def test_an_event_is_a_json_object_with_a_string_type(payload: bytes | str, ok: bool) -> None:
    assert (parse_event(payload) is not None) == ok


def test_unknown_types_are_counted_by_name_up_to_the_bound_then_together() -> None:
    counts: dict[str, int] = {}
    for i in range(peek.MAX_UNKNOWN_TYPE_NAMES):
        count_unknown(counts, f"t{i}")
    count_unknown(counts, "t0")  # a known name keeps counting under its name
    count_unknown(counts, "new")
    count_unknown(counts, "newer")
    assert counts["t0"] == 2 and counts["(other)"] == 2 and len(counts) == peek.MAX_UNKNOWN_TYPE_NAMES + 1
    long: dict[str, int] = {}
    count_unknown(long, "x" * 200)
    assert list(long) == ["x" * 80]


def test_the_triage_counts_audio_skips_the_unneeded_and_parses_the_rest() -> None:
    t = EventTriage(audio=frozenset({b"au"}), known=frozenset({b"au", b"need", b"skip"}),
                    collected=frozenset({b"need"}))
    assert t.event(b'{"type":"au","audio":"AAAA"}') is None and t.audio_frames == 1
    assert t.event(b'{"type":"skip"}') is None and t.malformed == 0
    assert t.event(b'{"type":"need","x":1}') == {"type": "need", "x": 1}
    assert t.event(b'{"type":"brand.new"}') is None and t.unknown_types == {"brand.new": 1}
    assert t.event(b"{nope") is None and t.malformed == 1
    # a type past the head is parsed, and decided by the parsed event
    late = b'{"pad":"' + b"p" * 200 + b'","type":"need"}'
    assert t.event(late) == {"pad": "p" * 200, "type": "need"}
    assert (t.audio_frames, t.malformed) == (1, 1)


@pytest.mark.parametrize(("frame", "expected"), [
    # found by the mutation run (2026-12-02)
    (b'{"type":"a","item":{"type":"b"}}', b"a"),  # the first "type", not the last
    (b'"type":"a"', b"a"),  # found at the very start
    (b'{"type"X:"a"}', None),  # only whitespace may stand around the colon
    (b'{"type":X"a"}', None),
    (b'{"type":"","x":"y"}', b""),  # an empty type is empty, not the next string
    (b'{"type"x"a"}', None),  # no colon at all
    (b'{"type"', None),  # the frame ends right after the key
    (b'{"type"  ', None),
])
def test_the_peek_takes_the_first_type_and_only_whitespace_around_its_colon(frame: bytes,
                                                                            expected: bytes | None) -> None:
    assert peek_type(frame) == expected


def test_every_malformed_frame_is_counted() -> None:
    triage = EventTriage(audio=frozenset(), known=frozenset(), collected=frozenset())
    assert triage.event(b"not json") is None and triage.event(b"[1]") is None
    assert triage.malformed == 2
