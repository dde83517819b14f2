"""Events the gateway itself sends in the Realtime protocol: ``error``, and the
``session.update`` that applies an ephemeral token's session config when its session opens."""

from __future__ import annotations

import json
import secrets
from typing import Any


def error_event(code: str, message: str, error_type: str = "invalid_request_error") -> str:
    return json.dumps({
        "type": "error",
        "event_id": "event_rtp_" + secrets.token_hex(8),
        "error": {"type": error_type, "code": code, "message": message, "param": None, "event_id": None},
    })


def token_session_update(config: dict[str, Any] | None, dialect: str, *, transcription: bool = False) -> str | None:
    """The ``session.update`` an ephemeral token carries, in the session's dialect (or None); for
    a transcription session GA's ``session.type = "transcription"``, beta's
    ``transcription_session.update``."""
    if not config:
        return None
    session = {k: v for k, v in config.items() if k not in ("model", "client_secret", "expires_after")}
    if dialect == "ga":
        session["type"] = "transcription" if transcription else "realtime"
    else:
        session.pop("type", None)
    etype = "transcription_session.update" if transcription and dialect != "ga" else "session.update"
    return json.dumps({"type": etype, "event_id": "event_rtp_token_config", "session": session})
