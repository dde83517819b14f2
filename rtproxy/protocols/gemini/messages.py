"""What the gateway itself tells a Gemini client (protocol/gemini-live.md §1.1, §2.6, §2.7, §6).

Gemini has no error event: Google ends a session with a WebSocket close whose code (1007 invalid
argument, 1008 policy, 1011 internal) and reason say why, and google-genai raises
``APIError(code, reason)`` from that close. That is the main channel here too: every refusal
carries a close code and a reason (:func:`close_reason`), and the relay closes with them.

Before closing, the gateway may also send one in-band frame (:func:`error_frame`): an object
google-genai maps to no known message, which makes ``session.receive()`` raise ``APIError`` with
its ``code`` (google-genai 3.6.1, ``live.py`` ``_receive``: ``APIError.raise_error(response.get(
'code'), response)``). Google's REST error body is ``{"error": {"code", "message", "status"}}``;
the frame repeats its ``code`` at the top level because the SDK reads only the top-level one
(checked against 3.6.1: with ``{"error": {…}}`` alone it raises ``TypeError`` comparing None with
400, not an ``APIError``). With the code given it raises ``ClientError`` (4xx) or ``ServerError``
(5xx), whose ``message`` and ``status`` come from the nested error.

One exception: while google-genai's ``connect()`` waits for the answer to its setup it reads one
frame and accepts any (only ``setupComplete`` is looked at), so a refused *setup* must be closed
without a frame before the close: only then does ``connect()`` raise.
"""

from __future__ import annotations

import json

#: WebSocket close codes, as Google uses them (1011, internal, is the relay's own).
CLOSE_INVALID_ARGUMENT = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
#: A close frame's reason fits in 123 bytes of UTF-8 (RFC 6455 §5.5).
MAX_CLOSE_REASON_BYTES = 123

#: The gateway's error codes as Google's HTTP-style code and status (google.rpc.Code names).
_GOOGLE_STATUS: dict[str, tuple[int, str]] = {
    "model_not_allowed": (403, "PERMISSION_DENIED"),
    "origin_not_allowed": (403, "PERMISSION_DENIED"),
    "model_not_found": (404, "NOT_FOUND"),
    "upstream_model_not_found": (404, "NOT_FOUND"),
    "session_not_found": (404, "NOT_FOUND"),
    "invalid_api_key": (401, "UNAUTHENTICATED"),
    "invalid_ephemeral_token": (401, "UNAUTHENTICATED"),
    "budget_exceeded": (429, "RESOURCE_EXHAUSTED"),
    "audio_minutes_exceeded": (429, "RESOURCE_EXHAUSTED"),
    "rate_limited": (429, "RESOURCE_EXHAUSTED"),
    "upstream_rate_limited": (429, "RESOURCE_EXHAUSTED"),
    "server_at_capacity": (429, "RESOURCE_EXHAUSTED"),
    "session_lease_lost": (429, "RESOURCE_EXHAUSTED"),
    "session_expired": (504, "DEADLINE_EXCEEDED"),
    "idle_timeout": (504, "DEADLINE_EXCEEDED"),
    "server_shutdown": (503, "UNAVAILABLE"),
    "shutting_down": (503, "UNAVAILABLE"),
    "upstream_disconnected": (503, "UNAVAILABLE"),
    "upstream_unreachable": (503, "UNAVAILABLE"),
}
_BY_TYPE = {"invalid_request_error": (400, "INVALID_ARGUMENT"), "server_error": (503, "UNAVAILABLE")}


def google_status(code: str, error_type: str) -> tuple[int, str]:
    """(HTTP-style code, status) for one of the gateway's error codes."""
    return _GOOGLE_STATUS.get(code) or _BY_TYPE.get(error_type) or (500, "INTERNAL")


def error_frame(http_code: int, status: str, message: str) -> str:
    """The in-band error google-genai raises on (see the module docstring)."""
    return json.dumps({"code": http_code, "error": {"code": http_code, "message": message, "status": status}})


def error_event(code: str, message: str, error_type: str = "invalid_request_error") -> str:
    """The protocol's ``error_event`` (the seam's): :func:`error_frame` for a gateway error code.
    The relay closes the session after it; the close reason carries the same message
    (:func:`close_reason`)."""
    http_code, status = google_status(code, error_type)
    return error_frame(http_code, status, message)


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame can carry (whole characters, ``…`` when cut)."""
    raw = text.encode()
    if len(raw) <= MAX_CLOSE_REASON_BYTES:
        return text
    return raw[:MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "…"
