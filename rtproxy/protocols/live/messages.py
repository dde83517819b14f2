"""Events the gateway itself sends in GPT-Live: ``error``, in the API's shape
(``{code, message, type, param, client_event_id}``)."""

from __future__ import annotations

import json
import secrets
from typing import Any


def error_event(code: str, message: str, error_type: str = "invalid_request_error", *, param: str | None = None,
                client_event_id: Any = None) -> str:
    return json.dumps({
        "type": "error",
        "event_id": "event_rtp_" + secrets.token_hex(8),
        "error": {"code": code, "message": message, "type": error_type, "param": param,
                  "client_event_id": client_event_id if isinstance(client_event_id, str)
                  and len(client_event_id) <= 128 else None},
    })
