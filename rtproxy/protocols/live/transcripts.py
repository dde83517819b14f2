"""Live transcript fragments in, finished turns out: the SDK's grouping policy
(:mod:`.grouping`) behind the SDK's ``TranscriptState`` rules, without its clock. No I/O.

The fragments (``session.input_transcript.delta`` for the user, ``session.output_transcript.delta``
for the assistant) carry ``[start_ms, end_ms)`` and no turn id. As the SDK does: a fragment seen
before (same ``event_id``) is skipped; fragments of both speakers over the same interval are
grouped together; a ``start_ms`` going backwards closes every open turn (``timestamp_reset``); the
session's end closes the rest. The SDK also closes a turn when a timer fires; here that turn closes
when the next fragment shows the time has passed, or at the end: the turns are the same, and a
turn is only ever recorded once it is closed.
"""

from __future__ import annotations

from typing import Any, Literal, TypeGuard

from .grouping import (
    GroupingUpdate,
    TranscriptFragment,
    TranscriptGrouperOptions,
    TranscriptGrouping,
    TranscriptSegmentClosedEvent,
)

#: Fragment event ids remembered to skip repeats; the oldest are forgotten beyond this.
MAX_SEEN_EVENT_IDS = 4096
#: Longest text kept per turn; longer text is cut and marked.
MAX_TURN_CHARS = 64 * 1024
_MAX_SAFE_INTEGER = 9_007_199_254_740_991


def _valid_ms(value: Any) -> TypeGuard[int | float]:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= _MAX_SAFE_INTEGER \
        and int(value) == value


class TranscriptTurns:
    def __init__(self) -> None:
        self._grouping = TranscriptGrouping(TranscriptGrouperOptions(), "turn")
        self._seen: dict[str, None] = {}
        self._pending: list[TranscriptFragment] = []
        self._anchor_ms = 0
        self._last_start_ms: int | None = None
        self.closed = False
        #: Fragments that were not a valid timed interval (skipped, never raised on).
        self.invalid = 0

    def push(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """One transcript delta event; the turns it closes, as record messages."""
        if self.closed:
            return []
        speaker: Literal["user", "assistant"] = (
            "user" if event.get("type") == "session.input_transcript.delta" else "assistant")
        event_id, text = event.get("event_id"), event.get("delta")
        start_ms, end_ms = event.get("start_ms"), event.get("end_ms")
        if not isinstance(event_id, str) or not event_id or not isinstance(text, str) \
                or not _valid_ms(start_ms) or not _valid_ms(end_ms) or end_ms < start_ms:
            self.invalid += 1
            return []
        if event_id in self._seen:
            return []
        self._seen[event_id] = None
        if len(self._seen) > MAX_SEEN_EVENT_IDS:
            del self._seen[next(iter(self._seen))]
        if not text:
            return []
        fragment = TranscriptFragment(speaker, text, int(start_ms), int(end_ms))
        updates: list[GroupingUpdate] = []
        pending = self._pending[0] if self._pending else None
        if pending is not None and (pending.start_ms, pending.end_ms) == (fragment.start_ms, fragment.end_ms):
            self._pending.append(fragment)
            if any(part.speaker != speaker for part in self._pending):
                updates += self._flush()
        else:
            updates += self._flush()
            if self._grouping.speaker == speaker:
                updates += self._commit([fragment])
            else:
                self._pending.append(fragment)
        return _closed(updates)

    def finish(self) -> list[dict[str, Any]]:
        """The session ended: every open turn, closed."""
        if self.closed:
            return []
        self.closed = True
        updates = self._flush()
        updates += self._grouping.close(self._anchor_ms, "session_closed")
        return _closed(updates)

    def _flush(self) -> list[GroupingUpdate]:
        pending, self._pending = self._pending, []
        return self._commit(pending)

    def _commit(self, fragments: list[TranscriptFragment]) -> list[GroupingUpdate]:
        if not fragments:
            return []
        updates: list[GroupingUpdate] = []
        first = fragments[0]
        if self._last_start_ms is not None and first.start_ms < self._last_start_ms:
            updates += self._grouping.close(self._anchor_ms, "timestamp_reset")
            self._anchor_ms = 0
        self._last_start_ms = first.start_ms
        self._anchor_ms = max(self._anchor_ms, *(f.end_ms for f in fragments))
        updates += self._grouping.process(fragments)
        return updates


def _closed(updates: list[GroupingUpdate]) -> list[dict[str, Any]]:
    turns = []
    for update in updates:
        if isinstance(update, TranscriptSegmentClosedEvent) and update.segment.text.strip():
            s = update.segment
            text = s.text if len(s.text) <= MAX_TURN_CHARS else s.text[:MAX_TURN_CHARS] + "…[truncated]"
            turns.append({"role": s.speaker, "content": text, "source": "transcript",
                          "start_ms": s.start_ms, "end_ms": s.end_ms})
    return turns
