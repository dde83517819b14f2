"""The seam between the relay and a protocol: the few things the session core asks of one.

A protocol is a value with these abilities (:class:`ApiProtocol`):

- ``classify(payload)``: what the relay does with a provider's text frame besides forwarding it,
  decided from its first bytes without parsing it (it runs on every frame: it must be cheap):
  :data:`COLLECT` (hand it to the collector), :data:`AUDIO` (count its bytes: what an unreported
  response is estimated from) or :data:`FORWARD` (nothing more);
- ``classify_client(payload)``: the same for a client's frame (text or binary), which decides what
  the provider bills, so it answers only for a type the bytes prove the provider's parser reads
  (the frame's only top-level ``type``, unescaped: ``peek.top_level_type``); otherwise
  :data:`PARSE`. Audio appends as clients write them stay one prefix test and one ``find``;
- ``normalize_client(payload)``: a :data:`PARSE` frame as parsed (:class:`ClientFrame`): the relay
  forwards the re-serialized frame in its place and decides on it, so the gate, the collector
  and the provider all read the same event (no duplicate key, no escape in the type);
- ``new_collector(meta)``: a :class:`SessionCollector` for one session: frames in, spend records
  out, then the session record at the end;
- ``settle_frames`` / ``in_flight`` / ``unsettled`` on the collector: when the client leaves with
  responses in flight, the frames that ask the provider to finish them (``response.cancel``),
  whether any is still open, and estimated records for those the provider never reported;
- ``error_event(code, message, error_type)``: the protocol's own ``error`` event, for what the
  gateway tells a client before closing it;
- ``new_gate(policy)``: a :class:`FrameGate` that refuses client frames which would have the
  provider bill a model the key may not use (:class:`ModelPolicy`; answered, never forwarded).

Everything else a protocol knows (its paths, upstream URLs, initial frames) is used by the server
while it plans a session, before the relay sees it.
"""

from __future__ import annotations

from collections.abc import Callable

from datetime import datetime
from typing import Any, Literal, Protocol

import attrs

from ..spend.records import Record, SessionEnd, SessionMeta

#: Who sent a frame: the client, or the upstream provider ("server", as the API names its events).
Direction = Literal["client", "server"]

#: What :meth:`ApiProtocol.classify` answers.
FORWARD = 0
COLLECT = 1
AUDIO = 2
#: :meth:`ApiProtocol.classify_client` only: the bytes do not prove the type; parse the frame.
PARSE = 3


@attrs.frozen
class ClientFrame:
    """A client frame the strict peek could not vouch for, as the gateway parsed it
    (:meth:`ApiProtocol.normalize_client`)."""

    #: What to forward in its place: the frame re-serialized from its parse (``type`` first,
    #: duplicate keys resolved as parsers resolve them: the last wins, escapes decoded); the frame
    #: unchanged when it does not parse and holds no ``{`` (the provider refuses it too); else None
    #: (JSON nested too deep, a number too long, or text a lenient parser might read an object
    #: from): answered with an ``invalid_json`` error and never forwarded, for what the gateway
    #: cannot judge it cannot pass.
    payload: bytes | None
    #: FORWARD, COLLECT or AUDIO, from the parsed type (COLLECT for what is not an event: the
    #: collector counts it).
    kind: int


@attrs.frozen
class UpstreamTarget:
    """Where a session's upstream leg goes: URL and headers (the provider's secret among them)."""

    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    provider: str = ""
    #: The URL without query, for records (``api_base``).
    api_base: str = ""
    #: A new translator per session when the upstream speaks another protocol than the client
    #: (OpenAI Realtime clients on Gemini Live); None: frames pass through unchanged.
    translation: Callable[[], Any] | None = attrs.field(default=None, eq=False, repr=False)
    #: This target built afresh (credentials that expire), for a session that reconnects.
    refresh: Callable[[], UpstreamTarget] | None = attrs.field(default=None, eq=False, repr=False)


class SessionCollector(Protocol):
    """One session's frames in, spend records out. No I/O."""

    @property
    def started_at(self) -> datetime: ...

    @property
    def responses(self) -> int: ...

    @property
    def upstream_session_id(self) -> str | None:
        """The provider's id for the session, once it said it."""

    def note_audio(self, client_bytes: int, server_bytes: int) -> None:
        """The audio frames' bytes relayed so far each way (called before each :meth:`feed`)."""

    def feed(self, direction: Direction, payload: bytes) -> list[Record]:
        """Take one text frame the relay was told to collect; return the records it completes."""

    @property
    def in_flight(self) -> int:
        """Responses started and not yet reported, and responses requested and not yet started."""

    def settle_frames(self) -> list[str]:
        """Frames to send upstream so the responses in flight finish (and get reported); each
        response is asked once, so the relay calls this again as requested responses start."""

    def unsettled(self) -> list[Record]:
        """Response records, with estimated usage, for the responses still in flight."""

    def finish(self, end: SessionEnd) -> Record:
        """The session record; called once, when the session is over."""


@attrs.frozen
class ModelPolicy:
    """Which models a session's key may have the provider bill."""

    #: The names the session's own model goes by (the gateway's, the provider's).
    session_models: frozenset[str]
    #: A realtime (or live) model of this name.
    allows: Callable[[str], bool]
    #: An input-transcription model of this name.
    allows_transcription: Callable[[str], bool]
    #: A GPT-Live delegated backend model of this name.
    allows_delegation: Callable[[str], bool]


class ApiProtocol(Protocol):
    """What the relay's session core asks of a protocol (see the module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def binary_events(self) -> bool:
        """Whether the provider's binary frames are events too (JSON), classified and collected
        like text ones (Gemini Live sends every event as a binary frame)."""

    def classify(self, payload: bytes) -> int: ...

    def classify_client(self, payload: bytes) -> int: ...

    def normalize_client(self, payload: bytes) -> ClientFrame: ...

    def is_turn_start(self, payload: bytes) -> bool:
        """Whether this collected server frame starts a turn, whose first audio is timed (metrics)."""

    def audio_len(self, payload: bytes) -> int:
        """The base64 characters of an :data:`AUDIO` frame's audio (never parsed: its blob's
        length, :func:`~rtproxy.spend.audio_meter.b64_value_len`)."""

    def new_collector(self, meta: SessionMeta) -> SessionCollector: ...

    def error_event(self, code: str, message: str, error_type: str) -> str: ...

    def new_gate(self, policy: ModelPolicy) -> FrameGate | None:
        """What refuses client frames that would have the provider bill what the key may not use."""


class FrameGate(Protocol):
    """Checked on each client frame the relay collects, before it is forwarded: the frame as the
    provider will read it (vouched for by ``classify_client``, or re-serialized by
    ``normalize_client``)."""

    def check(self, payload: bytes) -> str | None:
        """None: forward it; else the protocol's error event to answer it with (not forwarded).
        Decided on the parsed event unless the strict peek proves the type is not one it gates."""

    def close_for(self, payload: bytes) -> tuple[int, str] | None:
        """After :meth:`check` refused ``payload``: the close (code, reason) that must end the
        session, for protocols whose clients cannot be told in-band; None: the session goes on."""

    def check_applied(self, payload: bytes) -> tuple[str, str] | None:
        """For a watched WebRTC call, whose client frames the gateway never sees: a collected server
        frame reporting the session as it now is. None, or (error code, message) when it bills a
        model the key may not use (the gateway then ends the call)."""
