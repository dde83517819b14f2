"""GPT-Live admission from the first frame: the model arrives in ``session.start``, never in the
URL. Sans-IO: the client's first frame and the key's permissions in, the frame to send upstream
(or why not) out.

A primary session's first frame must be ``session.start`` naming a ``session.model`` the gateway
serves as ``api = "live"`` and the key may use; the model is rewritten to the provider's name. A
fork's first frame is ``session.start`` with a fork config (no model: a fork inherits its
source's). In both, a delegated backend model (``delegation.responses.model``,
``delegation.decisions.model``) must be one the key may have billed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from ...config import ModelConfig

#: A ``session.start`` larger than this is refused (instructions ≤16k tokens, ≤128 input items).
MAX_START_FRAME_BYTES = 1024 * 1024


@attrs.frozen
class StartRefused(Exception):
    status: int
    code: str
    message: str
    param: str | None = None
    client_event_id: str | None = None


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def delegated_models(session: dict[str, Any]) -> list[Any]:
    """The backend models a session config (or a session.update's) names."""
    delegation = _d(session.get("delegation"))
    names = [_d(delegation.get("responses")).get("model"), _d(delegation.get("decisions")).get("model")]
    return [n for n in names if n is not None]


def _shown(name: Any) -> str:
    return repr(name[:100]) if isinstance(name, str) else "(not a string)"


def check_delegation(session: dict[str, Any], allows: Callable[[str], bool]) -> tuple[str, str] | None:
    """(message, param) refusing a delegated model the key may not use, or None."""
    for name in delegated_models(session):
        if not isinstance(name, str) or not allows(name):
            return f"this key may not use the delegated model {_shown(name)}", "session.delegation.responses.model"
    return None


@attrs.frozen
class LiveStart:
    """An admitted first frame: the model it opens and the frame to send upstream."""

    model: ModelConfig | None
    frame: str


def parse_start(payload: bytes | str, *, fork: bool, served: Callable[[str], ModelConfig | None],
                allows: Callable[[str], bool], allows_delegation: Callable[[str], bool]) -> LiveStart:
    """Check the first frame; raises :class:`StartRefused`."""
    if len(payload) > MAX_START_FRAME_BYTES:
        raise StartRefused(400, "start_too_large", f"session.start is larger than {MAX_START_FRAME_BYTES} bytes")
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        raise StartRefused(400, "invalid_json", "the first frame is not valid JSON") from None
    if not isinstance(event, dict) or event.get("type") != "session.start":
        shown = event.get("type") if isinstance(event, dict) else None
        raise StartRefused(400, "session_not_started",
                           f"the first frame must be session.start, not {_shown(shown)}", "type")
    event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
    session = event.get("session")
    if not isinstance(session, dict):
        raise StartRefused(400, "invalid_value", "session.start needs a session object", "session", event_id)
    refused = check_delegation(session, allows_delegation)
    if refused is not None:
        raise StartRefused(403, "model_not_allowed", refused[0], refused[1], event_id)
    if fork:
        if "model" in session:
            raise StartRefused(400, "unknown_parameter", "a fork inherits its model: no session.model",
                               "session.model", event_id)
        return LiveStart(None, json.dumps(event))
    name = session.get("model")
    if not isinstance(name, str) or not name:
        raise StartRefused(400, "missing_required_parameter", "session.start needs session.model",
                           "session.model", event_id)
    model = served(name)
    if model is None:
        raise StartRefused(404, "model_not_found", f"model {_shown(name)} is not served by this gateway as a "
                           "GPT-Live model", "session.model", event_id)
    if not allows(model.name):
        raise StartRefused(403, "model_not_allowed", f"this key may not use model {model.name!r}",
                           "session.model", event_id)
    event["session"] = {**session, "model": model.target_model}
    return LiveStart(model, json.dumps(event))
