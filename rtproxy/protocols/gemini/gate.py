"""The client frames a Gemini session refuses instead of forwarding: a later setup
(protocol/gemini-live.md §3.1, §6, §9, §11.4, §11.6).

A session has exactly one setup, its first frame (admitted by :func:`~.start.parse_setup`). Google
closes 1007 on a second one; the gateway refuses it itself and never forwards it, so a second
setup can never switch the model the session bills, whatever Google would do with it. "Setup"
means any frame whose parsed top level holds ``setup`` (or ``config``, see
:data:`~.frames.SETUP_KEYS`) beside anything else: the object as a JSON parser reads it, so a
duplicated key (the last wins) or an escaped one (``"set\\u0075p"``) is caught as what it
spells. The key's model ACL is checked again on each one: a model it may not use is refused
1008, any other second setup 1007, as Google would.

The relay hands the gate the frame it will forward: re-serialized from its parse
(:func:`~.frames.normalize_client`) unless the bytes proved it an audio blob. Sans-IO.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from .frames import SETUP_KEYS
from .start import SetupRefused, invalid, model_id, not_allowed

#: Bytes any setup-shaped frame holds: a key spelled out, or an escape that could spell one.
_SETUP_MARKS = tuple(f'"{k}"'.encode() for k in sorted(SETUP_KEYS)) + (b"\\u",)


def setup_shaped(value: Any) -> list[Any]:
    """The setup bodies a parsed frame holds at its top level (empty: none)."""
    if not isinstance(value, dict):
        return []
    return [value[k] for k in SETUP_KEYS if k in value]


@attrs.frozen
class SetupGate:
    """Refuses every client frame that is setup-shaped (see the module docstring)."""

    #: Whether the key may use a model of this name.
    allows: Callable[[str], bool]
    #: The names the session's own model goes by (the gateway's, the provider's).
    session_models: frozenset[str] = frozenset()

    def refusal(self, payload: bytes) -> SetupRefused | None:
        """None to forward the frame; else why not, with the close code and reason."""
        if not any(mark in payload for mark in _SETUP_MARKS):
            return None  # no key of the frame can spell one
        try:
            value = json.loads(payload)
        except (ValueError, RecursionError):
            return None  # not JSON: what the relay forwards of it, Google refuses
        bodies = setup_shaped(value)
        if not bodies:
            return None
        for body in bodies:
            name = body.get("model") if isinstance(body, dict) else None
            if name is None:
                continue
            ident = model_id(name) if isinstance(name, str) else None
            if ident is None or (ident not in self.session_models and not self.allows(ident)):
                return not_allowed(name)
        return invalid("setup may be sent only once, as the first message")

    def check(self, payload: bytes) -> str | None:
        """The seam's check: None, or the refusal in-band (:meth:`SetupRefused.error_frame`).
        Google closes the session on a second setup; the relay should close too, with
        :meth:`refusal`'s code and reason, which this method's answer cannot carry."""
        refused = self.refusal(payload)
        return None if refused is None else refused.error_frame()

    def close_for(self, payload: bytes) -> tuple[int, str] | None:
        """Google closes the session on a second setup, and google-genai clients see only the
        close: the relay ends the session with the refusal's code and reason."""
        refused = self.refusal(payload)
        return None if refused is None else (refused.close_code, refused.reason)

    def check_applied(self, payload: bytes) -> tuple[str, str] | None:
        """Gemini has no WebRTC calls: nothing is applied unseen."""
        return None
