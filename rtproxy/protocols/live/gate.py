"""The client frames a GPT-Live session refuses instead of forwarding: a ``session.update`` (or a
second ``session.start``, which the provider refuses anyway) naming a delegated backend model the
key may not use (it may change mid-session, and the provider bills its tokens). Decided on the
frame the relay forwards, as the Realtime gate is (see :mod:`..realtime.gate`). Sans-IO."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ..peek import parse_event, top_level_type
from .messages import error_event
from .start import check_delegation

GATED_TYPES = frozenset({b"session.update", b"session.start"})


@attrs.frozen
class DelegationGate:
    allows_delegation: Callable[[str], bool]

    def close_for(self, payload: bytes) -> tuple[int, str] | None:
        """A refusal is an error event; the session goes on."""
        return None

    def check_applied(self, payload: bytes) -> tuple[str, str] | None:
        """GPT-Live fixes its models at session.start (checked before the call is made)."""
        return None

    def check(self, payload: bytes) -> str | None:
        """None to forward the frame; else the ``error`` event to answer it with (see
        :meth:`..realtime.gate.ModelGate.check`)."""
        peeked = top_level_type(payload)
        if peeked is not None and peeked not in GATED_TYPES:
            return None
        event = parse_event(payload)
        if event is None or event["type"].encode("utf-8", "surrogatepass") not in GATED_TYPES:
            return None  # not JSON: the provider answers it (and the collector counts it)
        session = event.get("session")
        refused = check_delegation(session if isinstance(session, dict) else {}, self.allows_delegation)
        if refused is None:
            return None
        return error_event("model_not_allowed", refused[0], "invalid_request_error", param=refused[1],
                           client_event_id=event.get("event_id"))
