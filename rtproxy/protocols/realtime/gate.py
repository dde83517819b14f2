"""The client frames the gateway refuses instead of forwarding: those that would have the
provider bill a model the key may not use.

A ``session.update`` (or beta ``transcription_session.update``) may name the session's realtime
``model`` (which can never change: the provider bills the session's own model, and the gateway
prices it) and an input-transcription model (``session.audio.input.transcription.model``, beta
``session.input_audio_transcription.model``), which the provider bills on its own. A frame naming
a model the key may not use, or another realtime model, is answered with an ``error`` event and
never reaches the provider. Sans-IO: bytes in, a refusal (or None) out.

The gate reads the frame the relay forwards: one whose type the strict peek vouches for, or the
re-serialized parse of one it could not (``normalize_client``), so what is judged here is what
the provider reads (no nested ``type`` mistaken for the event's, no escaped or duplicated key).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from ..peek import parse_event, peek_type, top_level_type
from .messages import error_event

#: Client event types that can name a model.
GATED_TYPES = frozenset({b"session.update", b"transcription_session.update"})
#: Server event types that report the session as applied (and name its models).
APPLIED_TYPES = frozenset({b"session.created", b"session.updated"})


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def named_models(event: dict[str, Any]) -> tuple[Any, list[Any]]:
    """(the realtime ``model`` a session update names, or None; the transcription models it names)."""
    session = _d(event.get("session"))
    transcription = [
        _d(_d(_d(session.get("audio")).get("input")).get("transcription")).get("model"),  # GA
        _d(session.get("input_audio_transcription")).get("model"),                         # beta
    ]
    return session.get("model"), [m for m in transcription if m is not None]


@attrs.frozen
class ModelGate:
    """Refuses session updates naming a model this session's key may not have billed."""

    #: The names the session's own model goes by (the gateway's, the provider's).
    session_models: frozenset[str]
    #: Whether the key may use a realtime model of this name.
    allows: Callable[[str], bool]
    #: Whether the key may use an input-transcription model of this name.
    allows_transcription: Callable[[str], bool]

    def check(self, payload: bytes) -> str | None:
        """None to forward the frame; else the ``error`` event to answer it with. Decided on the
        parsed event (a parser keeps the last of duplicated keys, decodes escapes) unless the
        bytes prove the frame's one top-level type is not a gated one."""
        peeked = top_level_type(payload)
        if peeked is not None and peeked not in GATED_TYPES:
            return None
        event = parse_event(payload)
        if event is None or event["type"].encode("utf-8", "surrogatepass") not in GATED_TYPES:
            return None  # not JSON: the provider answers it (and the collector counts it)
        model, transcription = named_models(event)
        if model is not None and model not in self.session_models:
            if not isinstance(model, str) or not self.allows(model):
                return self._refuse(event, "model_not_allowed", f"this key may not use model {_shown(model)}",
                                    "session.model")
            return self._refuse(event, "model_cannot_change",
                                "a session's model is fixed when it opens; open a new session for another model",
                                "session.model")
        for name in transcription:
            if not isinstance(name, str) or not self.allows_transcription(name):
                return self._refuse(event, "model_not_allowed",
                                    f"this key may not use transcription model {_shown(name)}",
                                    "session.audio.input.transcription.model")
        return None

    def close_for(self, payload: bytes) -> tuple[int, str] | None:
        """A refusal is an error event; the session goes on."""
        return None

    def check_applied(self, payload: bytes) -> tuple[str, str] | None:
        """A ``session.created``/``session.updated`` naming another realtime model or a transcription
        model the key may not use: set over a WebRTC call's data channel, where :meth:`check` could
        not refuse it. (code, message), or None."""
        if peek_type(payload) not in APPLIED_TYPES:
            return None
        event = parse_event(payload)
        if event is None:
            return None
        model, transcription = named_models(event)
        if model is not None and model not in self.session_models:
            return "model_not_allowed", f"the call's session was switched to model {_shown(model)}"
        for name in transcription:
            if not isinstance(name, str) or not self.allows_transcription(name):
                return "model_not_allowed", f"the call's session was set to transcription model {_shown(name)}"
        return None

    @staticmethod
    def _refuse(event: dict[str, Any], code: str, message: str, param: str) -> str:
        refusal = json.loads(error_event(code, message))
        refusal["error"]["param"] = param
        event_id = event.get("event_id")
        refusal["error"]["event_id"] = event_id if isinstance(event_id, str) and len(event_id) <= 128 else None
        return json.dumps(refusal)


def _shown(name: Any) -> str:
    return repr(name[:100]) if isinstance(name, str) else "(not a string)"
