"""A session plan: everything a session needs, resolved before it starts, and the few ports
through which it reaches the world.

The server admits a handshake and turns the admission into one frozen :class:`SessionPlan`
(key, model, upstream target, price and prompt policy in the record metadata, limits, dialect,
subprotocol echo, the protocol). The session core gets that plan and a :class:`SessionPorts`
value, and asks nothing else of the gateway.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import attrs

from ..auth.keys import VirtualKey
from ..config import ModelConfig
from ..protocols.seam import ApiProtocol, FrameGate, UpstreamTarget
from ..spend.pricing import Price
from ..spend.records import Record, SessionMeta
from .wsleg import WebSocketLeg


def new_session_id() -> str:
    """The gateway's own id for a session (``session_id`` in its records)."""
    return "sess_rtp_" + secrets.token_hex(10)


@attrs.frozen
class SessionLimits:
    """The per-session bounds, from ``[server]``; 0 turns a limit off."""

    #: A session is closed (error event + 1008) after this long.
    max_duration_s: float
    #: A session with no frame either way for this long is closed (error event + 1008).
    idle_timeout_s: float
    #: How long closing one leg may wait for the peer's close frame.
    close_timeout_s: float
    #: How long the upstream stays open after the client left, to have responses in flight reported.
    settle_window_s: float = 0.0


@attrs.frozen
class SessionPlan:
    session_id: str
    key: VirtualKey
    model: ModelConfig
    protocol: ApiProtocol
    target: UpstreamTarget
    #: What the records say about the session (price and prompt policy included).
    meta: SessionMeta
    limits: SessionLimits
    dialect: str
    #: A browser client (refusals become an accepted socket, an error event and a 4xxx close).
    browser: bool
    #: The subprotocol echoed in the 101 (None when none was offered); never one carrying a key.
    subprotocol: str | None
    #: Opened with an ephemeral token (billed to ``key``, its parent).
    ephemeral: bool = False
    #: Sent upstream before any client frame (an ephemeral token's session config).
    initial_frames: tuple[str, ...] = ()
    #: Refuses client frames that would bill a model the key may not use (None: forward all).
    gate: FrameGate | None = None
    #: The listener the client came through ("realtime", "main", "asgi", "webrtc"), for metrics.
    listener: str = "realtime"
    #: The gateway's own sideband on a WebRTC call (no client leg): an upstream close other than
    #: 1000 (the call's end) is recorded as a failure.
    observer: bool = False

    @property
    def price(self) -> Price | None:
        return self.meta.price

    @property
    def store_prompts(self) -> bool:
        return self.meta.store_prompts


@attrs.frozen
class SessionPorts:
    """The session core's only ways out: dial the upstream, write a record, ask the budget."""

    dial: Callable[[UpstreamTarget], Awaitable[WebSocketLeg]]
    #: Appends the record to the spend log and, for a response, charges its key.
    write_record: Callable[[Record], Awaitable[None]]
    #: Why the session's key may go on no longer (it used its budget or its audio minutes), as
    #: (error code, message); None while it may (checked after each record is written).
    over_limit: Callable[[], tuple[str, str] | None]
    #: Milliseconds of audio the session's key has left (None: no such limit), so audio streamed
    #: with no response goes on a record, and is charged, before it can run past the limit.
    audio_left_ms: Callable[[], float | None] = attrs.field(default=lambda: None)
    #: Told the provider's id for the session once it is known (a GPT-Live ``live_…`` id, whose
    #: sideband and forks only this key may open).
    upstream_session_opened: Callable[[str], Awaitable[None]] | None = None
