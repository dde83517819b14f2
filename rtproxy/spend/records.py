"""The values every spend record is built from: who and where a session is (fixed when it
opens) and how it ended. Record shapes are DESIGN.md §Spend log."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Literal

import attrs

from .pricing import Price

Record = dict[str, Any]
#: The record kinds that carry a cost charged to the key: one model response, one input
#: transcription, the seconds a GPT-Live session added since its previous usage record.
BILLED_RECORDS = frozenset({"response", "transcription", "usage"})


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_record_id() -> str:
    return "rec_" + uuid.uuid4().hex


@attrs.frozen
class SessionMeta:
    """What a session's records say about who and where; fixed when the session opens."""

    session_id: str
    key_name: str
    key_hash: str
    model: str
    provider: str
    upstream_model: str
    api_base: str
    store_prompts: bool
    price: Price | None
    end_user: str | None = None
    tags: tuple[str, ...] = ()
    client_ip: str = ""
    user_agent: str = ""
    dialect: str = "ga"
    #: "key" or "ephemeral_token" (an ephemeral token is billed to its parent key, ``key_name``).
    credential: str = "key"
    #: ``"realtime"`` (a conversation) or ``"transcription"`` (``intent=transcription``).
    call_type: str = "realtime"
    #: ``"websocket"``, or ``"webrtc"`` for a WebRTC call the gateway watches through its
    #: sideband (its records carry ``"transport": "webrtc"``; a WebSocket session's carry none).
    transport: str = "websocket"
    #: The price of another model the session bills, by the name the session gives it: an
    #: input-transcription model, a GPT-Live delegated backend model.
    model_price: Callable[[str], Price | None] = attrs.field(default=lambda name: None, eq=False, repr=False)


@attrs.frozen
class SessionEnd:
    """How a session ended: who closed it, with which code, and whether it failed."""

    by: Literal["client", "upstream", "proxy"]
    code: int | None
    reason: str = ""
    failed: bool = False
    error: dict[str, Any] | None = None
