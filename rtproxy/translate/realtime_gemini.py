"""OpenAI Realtime (GA and beta) ⇄ Gemini Live (``BidiGenerateContent``): a sans-IO translator.

A client speaks the OpenAI Realtime API to the gateway; the upstream is Gemini Live. One
:class:`RealtimeGeminiTranslator` per session takes parsed events from both sides and returns an
:class:`Output`: the OpenAI server events for the client, the Gemini frames for the upstream (the
runner JSON-encodes both), and whether to move to a new upstream connection or end the session.
It opens no socket, reads no clock but the one it is given, and never blocks.

**The runner's contract.**

* On client connect: :meth:`~RealtimeGeminiTranslator.start` (``session.created``). The upstream
  socket may be dialed then or on the first ``to_upstream`` frame; the first ``to_upstream`` frame
  of a session is always its ``setup``.
* Each client event → :meth:`~RealtimeGeminiTranslator.from_client`; each upstream frame →
  :meth:`~RealtimeGeminiTranslator.from_upstream`. Per :class:`Output`: send ``to_client`` in
  order, then ``to_upstream`` in order (on the current upstream socket), then act on
  ``reconnect`` (close that socket, open a new one, send
  :meth:`~RealtimeGeminiTranslator.setup_frame` first, and feed only the new socket's frames from
  then on), then on ``close`` (close the client with that code and reason, and the upstream).
* An upstream socket that ends by itself (not one the runner closed for ``reconnect``) →
  :meth:`~RealtimeGeminiTranslator.upstream_closed`: it resumes when it can, else errors and
  closes. When the session ends, :meth:`~RealtimeGeminiTranslator.finish` gives the last billable
  events; feed every ``to_client`` event to the spend collector too, even when the client is gone.

**What it does** (protocol/gemini-live.md §8, and the project's issue #27):

* *One setup per upstream socket.* The first ``session.update``, or the first event that needs a
  session (an append, an item, a response), sends the ``setup`` built from the session
  (:mod:`.realtime_session`); ``session.updated`` answers once Gemini's ``setupComplete`` arrives.
  Nothing else goes upstream before it: input waits in a bounded backlog
  (:data:`MAX_PRE_SETUP_BYTES`; beyond it the client gets an ``error`` and the session closes,
  never a silent loss). A later update that changes the setup moves the session to a new
  connection resumed with the newest resumable handle (:data:`reconnect <Output.reconnect>`), at
  the next point where that loses nothing (between turns, with a handle newer than the last turn);
  a ``goAway`` does the same. Input arriving meanwhile waits in :data:`MAX_RECONNECT_BACKLOG_BYTES`
  and is sent after the new ``setupComplete``: nothing twice, nothing lost.
* *Audio.* Appends are resampled to 16 kHz (:mod:`.audio`) and labelled ``audio/pcm;rate=16000``;
  Gemini's 24 kHz output is passed through, or encoded to G.711 for a G.711 session.
* *Turns.* Manual turns (``turn_detection: null``): ``activityStart`` before a turn's first audio,
  ``activityEnd`` at ``commit``. Automatic: ``commit`` → ``audioStreamEnd``; the user's audio item
  is committed (with synthesised ``speech_started``/``speech_stopped``) when Gemini starts
  answering it. Typed items wait for ``response.create`` and go as one ``clientContent``.
* *Responses* open at the first output of a Gemini turn and close at ``turnComplete``
  (completed), at ``interrupted`` (cancelled, ``turn_detected``), at ``response.cancel``
  (cancelled, ``client_cancelled``) and at ``toolCall`` (completed, without waiting for a
  ``turnComplete`` that may never come: the function calls are the response's output). Frames of
  a turn after its response closed are dropped, and its ``turnComplete`` is swallowed.
* *Usage* (:mod:`.gemini_usage`), the attachment rule: a report belongs to the open response;
  with none open, to the response closed last if its Gemini turn is still running (a tool call's
  trailing ``turnComplete``, a cancelled turn's remainder) or, between turns, if that response has
  no report yet; otherwise it is kept and added to the next response's. Within a response the
  last report wins (reports are snapshots); a report for a response whose ``response.done`` was
  already sent is billed by a *supplementary* ``response.done`` for the same response id (no
  output, ``metadata.rtproxy_usage = "supplement"``) carrying what it adds to what was billed.
  So every reported token is in exactly one ``response.done``. An interrupted response's
  ``response.done`` waits for the ``turnComplete`` that follows ``interrupted`` (it carries the
  usage), so barge-in needs no supplement.

**What cannot be translated, and how the client is told:** an ``error`` event naming the field
for what would otherwise be silently wrong (a different model, non-function tools,
``tool_choice`` required or a named function, stored prompts, per-response overrides that differ
from the session, ``conversation: "none"``, response ``input``, system messages as items, inserting
items anywhere but at the end, deleting items already sent, function-call items created by the
client, images by URL, transcription sessions, WebRTC-only events); the effective value in
``session.updated`` for settings Gemini ignores (``noise_reduction``, ``speed``,
``create_response``, ``idle_timeout_ms``; the transcription model is Gemini's own); nothing for
``input_audio_buffer.clear`` (audio already streamed stays in the user's turn) and
``conversation.item.truncate`` (answered; Gemini keeps the whole reply in its history), whose
limits are documented here only.
"""

from __future__ import annotations

import base64
import binascii
import collections
import copy
import functools
import json
import secrets
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import attrs

from .audio import GEMINI_INPUT_MIME, InputConverter, OutputConverter
from .gemini_usage import Usage, add_usage, is_usage, openai_usage, usage_difference
from .output import Output
from .realtime_items import function_response, message_turn, response_metadata
from .realtime_session import (
    ClientError,
    Dialect,
    SessionConfig,
    ToolSchema,
    apply_update,
    audio_format_object,
    build_setup,
    default_config,
    session_object,
)

Event = dict[str, Any]

#: Input held before the first ``setupComplete`` (JSON bytes of the frames waiting); beyond it the
#: client gets an ``error`` and the session closes (1013): about 60 s of 16 kHz audio.
MAX_PRE_SETUP_BYTES = 2 * 1024 * 1024
#: Input held while moving to a new upstream connection, same bound and the same refusal.
MAX_RECONNECT_BACKLOG_BYTES = 2 * 1024 * 1024
#: Typed items and tool outputs waiting for ``response.create``, in JSON bytes and in items; an
#: item beyond either is refused with an ``error`` (the session goes on).
MAX_PENDING_CONTENT_BYTES = 4 * 1024 * 1024
MAX_PENDING_CONTENT_ITEMS = 256
#: Function calls remembered (call_id → Gemini id and name), oldest forgotten first.
MAX_TRACKED_CALLS = 256
#: Conversation items remembered for ``retrieve`` and ``truncate``, oldest forgotten first.
MAX_KNOWN_ITEMS = 1024
#: Text kept per item for the ``.done`` events and the response's output (the deltas go out
#: whole); a longer text is cut there.
MAX_ITEM_TEXT_CHARS = 256 * 1024
#: ``response.create`` requests waiting for their Gemini turn to start.
MAX_QUEUED_REQUESTS = 16
#: ``session.update`` answers waiting for a ``setupComplete``.
MAX_WAITING_UPDATES = 64
#: Resumptions after unexpected upstream closes with no completed turn between them; one more
#: close ends the session.
MAX_CONSECUTIVE_RESUMES = 3
#: How long a session object says the session lasts (OpenAI's sixty minutes).
SESSION_LIFETIME_S = 3600
#: Close codes for the client.
CLOSE_BACKLOG_FULL = 1013
CLOSE_UPSTREAM_FAILED = 1011
#: The metadata that marks a supplementary response.done (usage that came after the response closed).
SUPPLEMENT_METADATA = {"rtproxy_usage": "supplement"}

_GA_TO_BETA = {
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "conversation.item.added": "conversation.item.created",
}
def _g(obj: Any, camel: str) -> Any:
    """A field of a Gemini object by its lowerCamel name, or its snake_case one."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(_snake(camel))


@functools.lru_cache(maxsize=256)
def _snake(camel: str) -> str:
    """``turnComplete`` → ``turn_complete`` (the names are this module's own: a bounded set)."""
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _b64_strict(data: str) -> bytes:
    """``base64.b64decode(data, validate=True)``, sooner: well-formed base64 (every append's) is
    decoded by binascii's strict mode, which accepts only what ``validate=True`` accepts, with the
    same bytes; anything else gets ``b64decode``'s own verdict."""
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return base64.b64decode(data, validate=True)


def _b64_standard(data: str) -> str:
    """Gemini's base64 in the standard alphabet (proto3 JSON may use the URL-safe one)."""
    if "-" in data or "_" in data:
        data = data.replace("-", "+").replace("_", "/")
    return data + "=" * (-len(data) % 4)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def _default_new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


@attrs.define
class _UserItem:
    """A user audio item: pending (its audio streaming), then committed; its transcript."""

    id: str
    committed: bool = False
    speech_started: bool = False
    text: list[str] = attrs.field(factory=list)
    chars: int = 0
    finished: bool = False
    completed: bool = False


@attrs.define
class _Message:
    """The assistant message being streamed in a response."""

    id: str
    output_index: int
    audio: bool
    previous: str | None
    text: list[str] = attrs.field(factory=list)
    chars: int = 0

    def add(self, piece: str) -> None:
        if self.chars < MAX_ITEM_TEXT_CHARS:
            piece = piece[: MAX_ITEM_TEXT_CHARS - self.chars]
            self.text.append(piece)
            self.chars += len(piece)


@attrs.define
class _Response:
    id: str
    modality: Literal["text", "audio"]
    metadata: dict[str, str] | None = None
    #: Took a response.create (at its start, or one that came while it ran).
    bound: bool = False
    output: list[Event] = attrs.field(factory=list)
    message: _Message | None = None
    status: str = "in_progress"
    details: dict[str, Any] | None = None
    #: The last usage report (OpenAI shape) and its raw form.
    usage: Usage | None = None
    raw_usage: dict[str, Any] | None = None
    #: What its response.done events billed so far (None: nothing yet).
    billed: Usage | None = None
    done_sent: bool = False
    #: Closed at a toolCall (its Gemini turn may still send a tail and a turnComplete).
    tool_turn: bool = False
    #: The committed user audio item it answers.
    user_item: _UserItem | None = None


@attrs.define
class _Pending:
    """A typed item or tool output waiting for response.create."""

    item_id: str
    kind: Literal["turn", "tool"]
    value: dict[str, Any]
    size: int
    #: The item before it in the conversation (the last one again if it is deleted).
    previous: str | None


class RealtimeGeminiTranslator:
    """One OpenAI Realtime client session over Gemini Live (see the module text).

    ``model``: the name the client connected with (reported in sessions; a ``session.update``
    naming another is refused). ``upstream_model``: the Gemini model; a bare id becomes
    ``models/<id>``, a name with a ``/`` (Vertex's ``projects/…/models/<id>``, from the provider) is
    used as is. ``dialect``: ``"ga"`` or ``"beta"`` event shapes. ``vertex``: Vertex AI (function
    responses without ``id``). ``audio_only_model``: the model answers only in audio (native-audio
    models), so a text session gets the audio's transcript as text. ``tool_schema``: how tool
    parameters are declared (:data:`~.realtime_session.ToolSchema`). ``text_input``: how typed
    user text goes up, ``"client_content"`` (a ``clientContent`` turn) or ``"realtime_text"``
    (``realtimeInput.text``, for models that refuse ``clientContent`` mid-session).
    ``extra_setup``: operator fields merged under every setup. ``transcription_model``: the
    transcription model sessions report (default: the upstream model's id; Gemini transcribes with
    it, at no separate charge). ``new_id`` (prefix → id) and ``clock`` (seconds) make tests
    deterministic."""

    def __init__(self, *, model: str, upstream_model: str, dialect: Dialect = "ga", vertex: bool = False,
                 audio_only_model: bool = False, tool_schema: ToolSchema = "parameters",
                 text_input: Literal["client_content", "realtime_text"] = "client_content",
                 extra_setup: dict[str, Any] | None = None, transcription_model: str | None = None,
                 new_id: Callable[[str], str] | None = None, clock: Callable[[], float] = time.time) -> None:
        if dialect not in ("ga", "beta"):
            raise ValueError(f"dialect must be 'ga' or 'beta', not {dialect!r}")
        self.model = model
        self.dialect: Dialect = dialect
        self.beta = dialect == "beta"
        self.vertex = vertex
        self.setup_model = upstream_model if "/" in upstream_model else f"models/{upstream_model}"
        self.audio_only_model = audio_only_model
        self.tool_schema: ToolSchema = tool_schema
        self.text_input = text_input
        self.extra_setup = copy.deepcopy(extra_setup) if extra_setup else None
        self.transcription_model = transcription_model or upstream_model.rsplit("/", 1)[-1]
        self._new_id = new_id or _default_new_id
        self._clock = clock
        self.session_id = self._new_id("sess")
        self.conversation_id = self._new_id("conv")
        self._expires_at = int(clock()) + SESSION_LIFETIME_S
        #: The session as the client configured it.
        self.config: SessionConfig = default_config(dialect)
        #: Counters of what was dropped or could not be mapped, for logs and metrics.
        self.stats: collections.Counter[str] = collections.Counter()
        #: Vertex's ``setupComplete.sessionId``, when given.
        self.upstream_session_id: str | None = None

        # -- the upstream connection
        self._conn: Literal["none", "setting_up", "ready", "reconnecting", "closed"] = "none"
        self._conn_config: SessionConfig | None = None  # what the current connection's setup says
        self._live_setup: dict[str, Any] | None = None  # that setup's body, sessionResumption aside
        self._resume_handle: str | None = None  # the handle the current connection's setup carries
        self._handle: str | None = None  # the newest resumable handle
        self._handle_current = False  # and nothing happened since that it does not cover
        self._want_reconnect: str | None = None  # why a move is due ("session.update", "goAway")
        self._backlog: list[tuple[Any, ...]] = []
        self._backlog_bytes = 0
        self._content_sent = False  # anything went up: a fresh connection would lose it
        self._activity_open = False  # manual turns: activityStart sent, activityEnd not yet
        self._resumes = 0
        self._waiting_updates = 0  # session.updated answers due at the next setupComplete

        # -- input
        self._input = InputConverter(self.config.input_format)
        self._input_ms = 0.0  # client audio appended so far
        self._ms_since_commit = 0.0
        self._pending_user: _UserItem | None = None
        self._transcribing: _UserItem | None = None
        self._commit_unanswered = False  # a committed turn Gemini has not started answering
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        #: call_id → (Gemini's id, name, the number of resumable handles seen when it was made)
        self._calls: collections.OrderedDict[str, tuple[str | None, str, int]] = collections.OrderedDict()
        self._handles_seen = 0
        self._cancelled_calls: set[str] = set()
        self._requests: collections.deque[dict[str, str] | None] = collections.deque()
        self._awaiting_turns = 0  # generations asked of Gemini (clientContent, toolResponse, activityEnd)

        # -- output
        self._output = OutputConverter(self.config.output_format)
        self._open: _Response | None = None
        self._closing: _Response | None = None  # closed, its Gemini turn still running: swallowed
        self._closing_tail = False  # that turn showed a tail after its toolCall
        self._tool_shape: Literal["pause", "complete"] | None = None  # learned from the first tool turn
        self._last_closed: _Response | None = None
        self._carried: tuple[Usage, dict[str, Any]] | None = None
        self._items: collections.OrderedDict[str, Event] = collections.OrderedDict()
        self._last_item_id: str | None = None

        # -- the Output being built
        self._to_client: list[Event] = []
        self._to_upstream: list[Event] = []
        self._reconnect = False
        self._close: tuple[int, str] | None = None

    # == public API ==================================================================================

    @property
    def state(self) -> str:
        """``none`` (no setup yet), ``setting_up``, ``ready``, ``reconnecting`` or ``closed``."""
        return self._conn

    @property
    def resumption_handle(self) -> str | None:
        """The newest resumable handle Gemini gave."""
        return self._handle

    def start(self) -> Output:
        """The client connected: ``session.created`` (and beta's ``conversation.created``)."""
        self._emit("session.created", session=self._session_object())
        if self.beta:
            self._emit("conversation.created", conversation={"id": self.conversation_id,
                                                             "object": "realtime.conversation"})
        return self._flush()

    def setup_frame(self) -> Event:
        """The ``setup`` for the upstream connection being opened (after ``reconnect``), resuming
        with a handle when the session has history."""
        if self._conn == "none":  # the runner sends the setup before any client event asked for it
            self._live_setup = self._build_setup(self.config)
            self._conn_config = self.config
            self._conn = "setting_up"
        assert self._live_setup is not None
        resumption = {"handle": self._resume_handle} if self._resume_handle else {}
        return {"setup": {**copy.deepcopy(self._live_setup), "sessionResumption": resumption}}

    def from_client(self, event: Event) -> Output:
        """One parsed OpenAI client event."""
        if self._conn == "closed":
            return Output()
        self._maybe_reconnect()
        etype = event.get("type") if isinstance(event, dict) else None
        handler = self._client_handlers.get(etype) if isinstance(etype, str) else None
        client_event_id = event.get("event_id") if isinstance(event, dict) else None
        try:
            if handler is None:
                shown = etype if isinstance(etype, str) else None
                raise ClientError("invalid_value", f"Invalid value: {str(shown)[:80]!r}. That is not a supported "
                                  "client event type.", "type")
            handler(self, event)
        except ClientError as err:
            self._error(err, client_event_id)
        return self._flush()

    def from_upstream(self, frame: Event) -> Output:
        """One parsed Gemini server frame."""
        if self._conn == "closed" or not isinstance(frame, dict):
            return Output()
        known = False
        if _g(frame, "setupComplete") is not None:
            known = True
            self._on_setup_complete(_g(frame, "setupComplete"))
        update = _g(frame, "sessionResumptionUpdate")
        if isinstance(update, dict):
            known = True
            self._on_resumption_update(update)
        if _g(frame, "goAway") is not None:
            known = True
            self._want_reconnect = self._want_reconnect or "goAway"
        cancellation = _g(frame, "toolCallCancellation")
        if isinstance(cancellation, dict):
            known = True
            self._on_tool_cancellation(cancellation)
        content = _g(frame, "serverContent")
        content = content if isinstance(content, dict) else None
        tool_call = _g(frame, "toolCall")
        tool_call = tool_call if isinstance(tool_call, dict) else None
        usage = _g(frame, "usageMetadata")
        known = known or content is not None or tool_call is not None or is_usage(usage)
        if not known:
            self.stats["unknown_upstream_frames"] += 1
        # content first (it may open the response the frame's usage belongs to), then the usage,
        # then what closes: so a turnComplete's own usage lands in the response it completes
        if content is not None:
            self._on_content(content)
        if tool_call is not None:
            self._on_tool_call(tool_call)
        if is_usage(usage):
            self._on_usage(usage)
        if tool_call is not None:
            self._close_at_tool_call()
        if content is not None:
            self._on_content_end(content)
        self._maybe_reconnect()
        return self._flush()

    def upstream_closed(self, code: int, reason: str) -> Output:
        """The upstream socket ended by itself (or could not be opened: report it as 1006). The
        session moves to a new socket when it can: a live connection with a resumable handle
        (resumed from it), or one still being set up (the same setup again), unless Gemini refused
        what was sent (1007; 1008 before setupComplete: a bad key, model or handle) or
        :data:`MAX_CONSECUTIVE_RESUMES` moves in a row came to nothing. Else ``error`` and close."""
        if self._conn == "closed":
            return Output()
        if self._conn == "ready":
            again = self._handle is not None and code != 1007
            handle = self._handle
        else:
            again = self._conn != "none" and code not in (1007, 1008)
            handle = self._resume_handle
        if again and self._resumes < MAX_CONSECUTIVE_RESUMES:
            self._resumes += 1
            self._abort_turn("upstream_connection_lost", "the Gemini connection was lost; the session was "
                             "resumed, and this response is lost")
            self._do_reconnect(handle)
        else:
            self._abort_turn("upstream_connection_lost", "the Gemini connection was lost")
            self._fatal(code, reason)
        return self._flush()

    def finish(self) -> Output:
        """The session is over: the billable events still owed (a held response.done with its
        usage, usage kept for a next response that will never come). Responses with no usage
        report stay open, for the collector to estimate."""
        if self._closing is not None and not self._closing.done_sent and self._closing.usage is not None:
            self._send_done(self._closing)
        if self._open is not None and self._open.usage is not None:
            r = self._open
            self._close_message(r, "incomplete")
            r.status = "incomplete"
            self._send_done(r)
            self._open = None
        if self._carried is not None:
            usage, raw = self._carried
            self._carried = None
            target = self._last_closed or self._closing
            if target is not None and target.done_sent:
                self._supplement(target, add_usage(usage, target.billed) if target.billed else usage, raw)
            else:
                self._usage_only_response(usage, raw)
        self._complete_transcript(self._transcribing)
        self._conn = "closed"
        return self._flush()

    # == building the Output ========================================================================

    def _flush(self) -> Output:
        out = Output(self._to_client, self._to_upstream, self._reconnect, self._close)
        self._to_client, self._to_upstream, self._reconnect, self._close = [], [], False, None
        return out

    def _emit(self, etype: str, **fields: Any) -> Event:
        if self.beta:
            etype = _GA_TO_BETA.get(etype, etype)
        event = {"type": etype, "event_id": self._new_id("event"), **fields}
        self._to_client.append(event)
        return event

    def _error(self, err: ClientError, client_event_id: Any = None) -> None:
        self._emit("error", error={"type": err.kind, "code": err.code, "message": err.message, "param": err.param,
                                   "event_id": client_event_id if isinstance(client_event_id, str) else None})

    def _fatal(self, code: int, reason: str) -> None:
        shown = str(reason)[:200].replace(self.setup_model, self.model)
        kind = "invalid_request_error" if code in (1007, 1008) else "server_error"
        self._error(ClientError("upstream_closed", f"Gemini Live closed the connection ({code}): {shown}", None, kind))
        self._close = (CLOSE_UPSTREAM_FAILED, "upstream closed")
        self._conn = "closed"

    def _session_object(self) -> dict[str, Any]:
        return session_object(self.config, dialect=self.dialect, session_id=self.session_id, model=self.model,
                              expires_at=self._expires_at, transcription_model=self.transcription_model)

    # == the upstream connection ====================================================================

    def _build_setup(self, cfg: SessionConfig) -> dict[str, Any]:
        return build_setup(cfg, setup_model=self.setup_model, audio_only_model=self.audio_only_model,
                           tool_schema=self.tool_schema, extra=self.extra_setup)

    @property
    def _manual(self) -> bool:
        """Manual turns on the connection input goes to (the configured session before any)."""
        return (self._conn_config or self.config).manual_turns

    def _ensure_connection(self) -> None:
        """The first event that needs a session: send the setup (nothing else goes before setupComplete)."""
        if self._conn != "none":
            return
        self._live_setup = self._build_setup(self.config)
        self._conn_config = self.config
        self._resume_handle = None
        self._conn = "setting_up"
        self._to_upstream.append(self.setup_frame())

    def _do_reconnect(self, handle: str | None) -> None:
        self._live_setup = self._build_setup(self.config)
        self._conn_config = self.config
        self._resume_handle = handle
        self._conn = "reconnecting"
        self._activity_open = False
        self._handle_current = False
        self._want_reconnect = None
        self._reconnect = True

    def _resumable_point(self) -> bool:
        """Between turns, with a handle that covers everything sent: moving now loses nothing."""
        return (self._conn == "ready" and self._handle is not None and self._handle_current
                and self._open is None and self._closing is None and self._awaiting_turns == 0
                and not self._commit_unanswered and not (self._manual and self._activity_open))

    def _maybe_reconnect(self) -> None:
        if self._want_reconnect is not None and self._resumable_point():
            self._do_reconnect(self._handle)

    def _on_setup_complete(self, body: Any) -> None:
        if self._conn not in ("setting_up", "reconnecting"):
            self.stats["unexpected_setup_complete"] += 1
            return
        session_id = _g(body, "sessionId")
        if isinstance(session_id, str):
            self.upstream_session_id = session_id
        self._conn = "ready"
        if self._want_reconnect != "session.update":
            self._answer_updates()
        backlog, self._backlog, self._backlog_bytes = self._backlog, [], 0
        for intent in backlog:
            self._send_now(intent)

    def _answer_updates(self) -> None:
        for _ in range(self._waiting_updates):
            self._emit("session.updated", session=self._session_object())
        self._waiting_updates = 0

    def _on_resumption_update(self, update: dict[str, Any]) -> None:
        handle = _g(update, "newHandle")
        if _g(update, "resumable") and isinstance(handle, str) and handle:
            self._handle = handle
            self._handle_current = True
            self._handles_seen += 1
        else:
            self._handle_current = False

    # -- input going up

    def _send(self, intent: tuple[Any, ...]) -> None:
        """Send an input now, or hold it until the connection's setupComplete."""
        self._ensure_connection()
        if self._conn == "closed":
            return
        if self._conn == "ready":
            self._send_now(intent)
            return
        size = len(intent[1]) + 64 if intent[0] == "audio" else _json_size(intent[1:]) + 64
        limit, name = ((MAX_PRE_SETUP_BYTES, "MAX_PRE_SETUP_BYTES") if self._conn == "setting_up"
                       else (MAX_RECONNECT_BACKLOG_BYTES, "MAX_RECONNECT_BACKLOG_BYTES"))
        if self._backlog_bytes + size > limit:
            self._error(ClientError("upstream_not_ready", f"Gemini Live has not accepted the session yet and the "
                                    f"input waiting for it passed {limit:,} bytes ({name}); the session is closed "
                                    "rather than losing input", None, "server_error"))
            self._close = (CLOSE_BACKLOG_FULL, "upstream not ready")
            self._conn = "closed"
            return
        self._backlog.append(intent)
        self._backlog_bytes += size

    def _send_now(self, intent: tuple[Any, ...]) -> None:
        kind = intent[0]
        frames: list[Event] = []
        if kind == "audio":
            if self._manual and not self._activity_open:
                frames.append({"realtimeInput": {"activityStart": {}}})
                self._activity_open = True
                self._handle_current = False
            frames.append({"realtimeInput": {"audio": {"mimeType": GEMINI_INPUT_MIME,
                                                       "data": base64.b64encode(intent[1]).decode()}}})
        elif kind == "commit":
            if self._manual:
                if self._activity_open:
                    frames.append({"realtimeInput": {"activityEnd": {}}})
                    self._activity_open = False
                else:  # its activity went with a lost connection: Gemini will not answer it
                    self._awaiting_turns = max(self._awaiting_turns - 1, 0)
                    self._commit_unanswered = False
                    self.stats["commits_without_activity"] += 1
            else:
                frames.append({"realtimeInput": {"audioStreamEnd": True}})
            self._handle_current = False
        elif kind == "content":
            frames.append({"clientContent": {"turns": intent[1], "turnComplete": True}})
        elif kind == "text":
            frames.append({"realtimeInput": {"text": intent[1]}})
        elif kind == "tools":
            responses = [{k: v for k, v in r.items() if not (k == "id" and (self.vertex or v is None))}
                         for r in intent[1]]
            frames.append({"toolResponse": {"functionResponses": responses}})
        elif kind == "generate":
            frames.append({"clientContent": {"turnComplete": True}})
        if kind != "audio":
            self._handle_current = False
        self._content_sent = True
        self._to_upstream.extend(frames)

    # == client events ==============================================================================

    def _on_session_update(self, event: Event) -> None:
        new = apply_update(self.config, event.get("session"), dialect=self.dialect, model=self.model)
        if self._waiting_updates >= MAX_WAITING_UPDATES:
            raise ClientError("too_many_session_updates", f"{MAX_WAITING_UPDATES} session updates are already "
                              "waiting for Gemini to accept the session; wait for session.updated")
        if new.input_format != self.config.input_format:
            self._input = InputConverter(new.input_format)
        if new.output_format != self.config.output_format:
            self._output = OutputConverter(new.output_format)
        self.config = new
        if self._conn == "none":
            self._waiting_updates += 1
            self._ensure_connection()
            return
        changed = self._build_setup(new) != self._live_setup
        if changed and not self._content_sent:
            # nothing went up yet: a fresh connection with the new setup loses nothing
            self._waiting_updates += 1
            self._do_reconnect(None)
        elif changed:
            self._waiting_updates += 1
            self._want_reconnect = "session.update"
        else:
            if self._want_reconnect == "session.update":
                self._want_reconnect = None  # changed back: the current connection is right again
            self._waiting_updates += 1
            if self._conn == "ready":
                self._answer_updates()

    def _on_append(self, event: Event) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise ClientError("invalid_type", "audio must be a base64 string", "audio")
        try:
            data = _b64_strict(audio)
        except (binascii.Error, ValueError):
            raise ClientError("invalid_value", "audio is not valid base64", "audio") from None
        if not data:
            return
        ms = InputConverter.input_ms(self.config.input_format, len(data))
        self._input_ms += ms
        self._ms_since_commit += ms
        if self._pending_user is None:
            self._pending_user = _UserItem(self._new_id("item"))
        pcm16k = self._input.convert(data)
        if pcm16k:
            self._send(("audio", pcm16k))

    def _on_commit(self, event: Event) -> None:
        if self._ms_since_commit <= 0:
            raise ClientError("input_audio_buffer_commit_empty", "Error committing input audio buffer: the buffer "
                              "is empty.")
        if self._manual:
            self._awaiting_turns += 1  # Gemini answers an activityEnd
        self._commit_user_item(speech_events=False)
        self._send(("commit",))

    def _on_clear(self, event: Event) -> None:
        # what was streamed cannot be withdrawn: it stays in the user's turn (documented)
        self._ms_since_commit = 0.0
        self._emit("input_audio_buffer.cleared")

    def _commit_user_item(self, *, speech_events: bool) -> _UserItem:
        item = self._pending_user or _UserItem(self._new_id("item"))
        self._pending_user = None
        if speech_events:
            if not item.speech_started:
                self._emit("input_audio_buffer.speech_started", item_id=item.id,
                           audio_start_ms=int(max(self._input_ms - self._ms_since_commit, 0)))
            self._emit("input_audio_buffer.speech_stopped", item_id=item.id, audio_end_ms=int(self._input_ms))
        item.committed = True
        item.speech_started = True
        self._ms_since_commit = 0.0
        self._commit_unanswered = True
        previous = self._last_item_id
        self._emit("input_audio_buffer.committed", item_id=item.id, previous_item_id=previous)
        stored = {"id": item.id, "object": "realtime.item", "type": "message", "role": "user",
                  "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        self._add_item(stored, previous)
        if (self._conn_config or self.config).transcription is not None:
            self._complete_transcript(self._transcribing)
            self._transcribing = item
            if item.text:
                self._emit("conversation.item.input_audio_transcription.delta", item_id=item.id, content_index=0,
                           delta="".join(item.text))
            if item.finished:
                self._complete_transcript(item)
        return item

    def _add_item(self, item: Event, previous: str | None) -> None:
        """A conversation item the client is told of (added + done; beta: created)."""
        self._remember(item)
        self._last_item_id = item["id"]
        self._emit("conversation.item.added", previous_item_id=previous, item=copy.deepcopy(item))
        if not self.beta:
            self._emit("conversation.item.done", previous_item_id=previous, item=copy.deepcopy(item))

    def _remember(self, item: Event) -> None:
        self._items[item["id"]] = item
        self._items.move_to_end(item["id"])
        while len(self._items) > MAX_KNOWN_ITEMS:
            self._items.popitem(last=False)

    def _on_item_create(self, event: Event) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            raise ClientError("invalid_value", "item must be an object", "item")
        previous = event.get("previous_item_id")
        if previous is not None and previous != self._last_item_id:
            raise ClientError("unsupported_item_position", "Gemini Live only appends to the conversation: "
                              "previous_item_id must be the last item", "previous_item_id")
        given = item.get("id")
        item_id = given if isinstance(given, str) else self._new_id("item")
        if item_id in self._items:
            raise ClientError("duplicate_item_id", f"Item {item_id[:64]!r} already exists.", "item.id")
        itype = item.get("type", "message")
        stored = copy.deepcopy(item)
        pending: tuple[Literal["turn", "tool"], dict[str, Any]] | None
        if itype == "message":
            pending = "turn", message_turn(item, stored, input_format=self.config.input_format,
                                           realtime_text=self.text_input == "realtime_text")
        elif itype == "function_call_output":
            pending = self._tool_output(item)
        elif itype == "function_call":
            raise ClientError("unsupported_item", "function_call items cannot be created over Gemini Live: its "
                              "history holds only the calls it made", "item.type")
        else:
            raise ClientError("invalid_value", f"unsupported item type {str(itype)[:40]!r}", "item.type")
        if pending is not None:
            size = _json_size(pending[1])
            if len(self._pending) >= MAX_PENDING_CONTENT_ITEMS or self._pending_bytes + size > MAX_PENDING_CONTENT_BYTES:
                raise ClientError("too_much_pending_content", f"Items wait for response.create to go to Gemini Live; "
                                  f"at most {MAX_PENDING_CONTENT_ITEMS} items and {MAX_PENDING_CONTENT_BYTES:,} "
                                  "bytes can wait: send response.create", "item")
            self._pending.append(_Pending(item_id, pending[0], pending[1], size, self._last_item_id))
            self._pending_bytes += size
        self._ensure_connection()
        stored.update({"id": item_id, "object": "realtime.item", "type": itype})
        stored.setdefault("status", "completed")
        self._add_item(stored, self._last_item_id)

    def _tool_output(self, item: Event) -> tuple[Literal["tool"], dict[str, Any]] | None:
        call_id = item.get("call_id")
        output = item.get("output")
        if not isinstance(call_id, str) or not isinstance(output, str):
            raise ClientError("invalid_value", "function_call_output needs call_id and output strings", "item")
        known = self._calls.get(call_id)
        if known is None:
            raise ClientError("tool_call_not_found", f"No function call {call_id[:64]!r} is waiting for an output "
                              "(unknown, forgotten, or lost with an upstream connection)", "item.call_id")
        gemini_id, name, _ = known
        if call_id in self._cancelled_calls:
            self.stats["outputs_of_cancelled_calls"] += 1
            return None  # Gemini withdrew the call: answered here, not sent
        return "tool", {"id": gemini_id, "name": name, "response": function_response(output)}

    def _on_item_truncate(self, event: Event) -> None:
        item_id = event.get("item_id")
        item = self._items.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            raise ClientError("item_not_found", f"Item with item_id {str(item_id)[:64]!r} not found.", "item_id")
        end_ms = event.get("audio_end_ms")
        if isinstance(end_ms, bool) or not isinstance(end_ms, int) or end_ms < 0:
            raise ClientError("invalid_value", "audio_end_ms must be a non-negative integer", "audio_end_ms")
        content_index = event.get("content_index", 0)
        self._emit("conversation.item.truncated", item_id=item["id"], audio_end_ms=end_ms,
                   content_index=content_index if isinstance(content_index, int) else 0)

    def _on_item_delete(self, event: Event) -> None:
        item_id = event.get("item_id")
        for i, pending in enumerate(self._pending):
            if pending.item_id == item_id:
                del self._pending[i]
                self._pending_bytes -= pending.size
                self._items.pop(pending.item_id, None)
                if self._last_item_id == pending.item_id:
                    self._last_item_id = pending.previous
                self._emit("conversation.item.deleted", item_id=pending.item_id)
                return
        if isinstance(item_id, str) and item_id in self._items:
            raise ClientError("unsupported_item_delete", "Gemini Live keeps the conversation itself: only items "
                              "not yet sent (waiting for response.create) can be deleted", "item_id")
        raise ClientError("item_not_found", f"Item with item_id {str(item_id)[:64]!r} not found.", "item_id")

    def _on_item_retrieve(self, event: Event) -> None:
        item_id = event.get("item_id")
        item = self._items.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            raise ClientError("item_not_found", f"Item with item_id {str(item_id)[:64]!r} not found.", "item_id")
        self._emit("conversation.item.retrieved", item=copy.deepcopy(item))

    def _on_response_create(self, event: Event) -> None:
        metadata = response_metadata(event.get("response"), self._session_object(), self.dialect)
        self._release_held()
        if self._open is not None and self._open.bound:
            raise ClientError("conversation_already_has_active_response",
                              f"Conversation already has an active response in progress: {self._open.id}.")
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        tools = [p.value for p in pending if p.kind == "tool"]
        turns = [p.value for p in pending if p.kind == "turn"]
        if tools or turns:
            if len(self._requests) >= MAX_QUEUED_REQUESTS:
                raise ClientError("too_many_requests", "too many responses are waiting to start")
            if tools:
                self._send(("tools", tools))
                self._tool_response_sent()
            if turns and self.text_input == "realtime_text":
                self._send(("text", "\n".join(t["realtime_text"] for t in turns)))
            elif turns:
                self._send(("content", turns))
            self._awaiting_turns += 1
            self._requests.append(metadata)
        elif self._open is not None:
            self._open.bound = True  # Gemini started it by itself (its VAD, an activityEnd): it is this one
            self._open.metadata = metadata or self._open.metadata
        elif self._awaiting_turns > len(self._requests) or (self._commit_unanswered and not self._requests):
            self._requests.append(metadata)  # the turn Gemini is about to answer is this response
        elif self._awaiting_turns or self._requests:
            raise ClientError("conversation_already_has_active_response",
                              "Conversation already has a response waiting to start.")
        else:
            self._send(("generate",))  # answer from the conversation as it stands
            self._awaiting_turns += 1
            self._requests.append(metadata)

    def _on_response_cancel(self, event: Event) -> None:
        wanted = event.get("response_id")
        self._release_held()
        r = self._open
        if r is None or (isinstance(wanted, str) and wanted and wanted != r.id):
            raise ClientError("response_cancel_not_active", "Cancellation failed: no active response found")
        # Gemini has no cancel: the rest of its turn is dropped here, its usage billed when it comes
        self._close_message(r, "incomplete")
        r.status, r.details = "cancelled", {"type": "cancelled", "reason": "client_cancelled"}
        self._open = None
        self._send_done(r)
        self._closing, self._closing_tail = r, False

    # == upstream frames ============================================================================

    def _on_tool_cancellation(self, body: dict[str, Any]) -> None:
        ids = _g(body, "ids")
        for gemini_id in ids if isinstance(ids, list) else []:
            for call_id, (gid, _, _) in self._calls.items():
                if gid == gemini_id:
                    self._cancelled_calls.add(call_id)
        self.stats["tool_calls_cancelled"] += len(ids) if isinstance(ids, list) else 0

    def _swallowing(self) -> bool:
        return self._closing is not None

    def _open_response(self) -> _Response | None:
        """The open response, opened now if the frame starts a Gemini turn; None while the rest
        of a closed response's turn is being dropped."""
        if self._open is not None:
            return self._open
        if self._swallowing():
            return None
        if not self._manual and self._awaiting_turns == 0 and self._pending_user is not None \
                and self._ms_since_commit > 0:
            self._commit_user_item(speech_events=True)  # Gemini's VAD ended the user's turn
        user_item = self._transcribing if self._commit_unanswered else None
        self._commit_unanswered = False
        self._awaiting_turns = max(self._awaiting_turns - 1, 0)
        r = _Response(self._new_id("resp"), self.config.output, user_item=user_item)
        if self._requests:
            r.metadata, r.bound = self._requests.popleft(), True
        self._open = r
        self._output.reset()
        self._handle_current = False
        self._emit("response.created", response=self._response_object(r))
        return r

    def _message(self, r: _Response) -> _Message:
        if r.message is not None:
            return r.message
        audio = r.modality == "audio"
        m = _Message(self._new_id("item"), len(r.output), audio, self._last_item_id)
        r.message = m
        item = {"id": m.id, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": "in_progress", "content": []}
        self._emit("response.output_item.added", response_id=r.id, output_index=m.output_index,
                   item=copy.deepcopy(item))
        # known from now on: a client retrieves or truncates the answer it is hearing (openai-agents
        # retrieves at each input transcript, and truncates at barge-in); finished, it is replaced
        self._remember(copy.deepcopy(item))
        self._last_item_id = m.id
        self._emit("conversation.item.added", previous_item_id=m.previous, item=copy.deepcopy(item))
        part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        self._emit("response.content_part.added", **self._ids(r, m), part=part)
        return m

    @staticmethod
    def _ids(r: _Response, m: _Message) -> dict[str, Any]:
        return {"response_id": r.id, "item_id": m.id, "output_index": m.output_index, "content_index": 0}

    def _on_content(self, content: dict[str, Any]) -> None:
        """The frame's content: model parts, transcripts (its flags are read later)."""
        model_turn = _g(content, "modelTurn")
        parts = _g(model_turn, "parts") if isinstance(model_turn, dict) else None
        out_tr = _g(content, "outputTranscription")
        in_tr = _g(content, "inputTranscription")
        has_output = bool(parts) or (isinstance(out_tr, dict) and bool(_g(out_tr, "text")))
        if has_output:
            self._handle_current = False
            r = self._open_response()
            if r is None:
                self.stats["dropped_after_close"] += 1
                if self._closing is not None and self._closing.tool_turn:
                    self._closing_tail = True
            else:
                for part in parts if isinstance(parts, list) else []:
                    self._on_part(r, part)
                text = _g(out_tr, "text") if isinstance(out_tr, dict) else None
                if isinstance(text, str) and text:
                    self._on_output_transcript(r, text)
        elif isinstance(out_tr, dict) and self._closing is not None and self._closing.tool_turn:
            self._closing_tail = True  # outputTranscription{finished} after a toolCall: the complete shape
        if isinstance(in_tr, dict):
            self._on_input_transcript(in_tr)
        # a turn Gemini was asked for that ends with nothing said is still a response (an empty one)
        if _g(content, "turnComplete") and self._open is None and not self._swallowing() \
                and (self._awaiting_turns or self._commit_unanswered):
            self._open_response()

    def _on_part(self, r: _Response, part: Any) -> None:
        if not isinstance(part, dict):
            return
        if part.get("thought"):
            self.stats["thought_parts"] += 1  # billed as output text through usage; never shown
            return
        inline = _g(part, "inlineData")
        text = part.get("text")
        if isinstance(inline, dict):
            mime = _g(inline, "mimeType")
            data = _g(inline, "data")
            if not isinstance(data, str) or not (isinstance(mime, str) and mime.startswith("audio/pcm")):
                self.stats["unmapped_parts"] += 1
                return
            if "rate=" in mime and "rate=24000" not in mime:
                self.stats["output_audio_not_24k"] += 1  # Gemini documents 24 kHz only; passed on as such
            if r.modality != "audio":
                self.stats["audio_in_text_session"] += 1  # an audio-only model's sound; its transcript is the text
                return
            self._on_audio(r, data)
        elif isinstance(text, str):
            if r.modality == "text" and not self.audio_only_model:
                m = self._message(r)
                m.add(text)
                self._emit("response.output_text.delta", **self._ids(r, m), delta=text)
            else:
                self.stats["text_in_audio_session"] += 1
        else:
            self.stats["unmapped_parts"] += 1  # executableCode, codeExecutionResult, …

    def _on_audio(self, r: _Response, data: str) -> None:
        m = self._message(r)
        if self._output.passthrough:
            delta = _b64_standard(data)
        else:
            try:
                pcm = base64.b64decode(_b64_standard(data))
            except (binascii.Error, ValueError):
                self.stats["undecodable_audio"] += 1
                return
            delta = base64.b64encode(self._output.convert(pcm)).decode()
            if not delta:
                return
        self._emit("response.output_audio.delta", **self._ids(r, m), delta=delta)

    def _on_output_transcript(self, r: _Response, text: str) -> None:
        if r.modality == "text":  # an audio-only model serving a text session: its transcript is the text
            if not self.audio_only_model:
                return
            m = self._message(r)
            m.add(text)
            self._emit("response.output_text.delta", **self._ids(r, m), delta=text)
            return
        m = self._message(r)
        m.add(text)
        self._emit("response.output_audio_transcript.delta", **self._ids(r, m), delta=text)

    def _on_input_transcript(self, tr: dict[str, Any]) -> None:
        text = _g(tr, "text")
        finished = bool(_g(tr, "finished"))
        if (self._conn_config or self.config).transcription is None:
            return
        self._handle_current = False  # the user is speaking: not a point to move at
        item = self._transcribing if self._transcribing is not None and not self._transcribing.completed else None
        if item is None:
            if self._pending_user is None:
                self._pending_user = _UserItem(self._new_id("item"))
            item = self._pending_user
            if not self._manual and not item.speech_started:
                item.speech_started = True
                self._emit("input_audio_buffer.speech_started", item_id=item.id,
                           audio_start_ms=int(max(self._input_ms - self._ms_since_commit, 0)))
        if isinstance(text, str) and text and item.chars < MAX_ITEM_TEXT_CHARS:
            piece = text[: MAX_ITEM_TEXT_CHARS - item.chars]
            item.text.append(piece)
            item.chars += len(piece)
            if item.committed:
                self._emit("conversation.item.input_audio_transcription.delta", item_id=item.id, content_index=0,
                           delta=piece)
        if finished:
            item.finished = True
            if item.committed:
                self._complete_transcript(item)

    def _complete_transcript(self, item: _UserItem | None) -> None:
        if item is None or item.completed or not item.committed:
            return
        item.completed = True
        transcript = "".join(item.text)
        stored = self._items.get(item.id)
        if stored is not None:
            stored["content"][0]["transcript"] = transcript
        # Gemini bills transcription inside the session's usage: zero tokens here
        self._emit("conversation.item.input_audio_transcription.completed", item_id=item.id, content_index=0,
                   transcript=transcript, usage={"type": "tokens", "input_tokens": 0, "output_tokens": 0,
                                                 "total_tokens": 0})
        if self._transcribing is item:
            self._transcribing = None

    def _on_tool_call(self, body: dict[str, Any]) -> None:
        calls = _g(body, "functionCalls")
        calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
        self._handle_current = False
        r = self._open_response() if calls else None
        if r is None:
            self.stats["tool_calls_dropped"] += len(calls)
            return
        self._close_message(r, "completed")
        for call in calls:
            name = _g(call, "name")
            name = name if isinstance(name, str) else ""
            gemini_id = _g(call, "id")
            args = _g(call, "args")
            arguments = json.dumps(args if isinstance(args, dict) else {})
            call_id, item_id, index = self._new_id("call"), self._new_id("item"), len(r.output)
            self._calls[call_id] = (gemini_id if isinstance(gemini_id, str) else None, name, self._handles_seen)
            while len(self._calls) > MAX_TRACKED_CALLS:
                forgotten, _ = self._calls.popitem(last=False)
                self._cancelled_calls.discard(forgotten)
            item = {"id": item_id, "object": "realtime.item", "type": "function_call", "status": "in_progress",
                    "name": name, "call_id": call_id, "arguments": ""}
            self._emit("response.output_item.added", response_id=r.id, output_index=index, item=copy.deepcopy(item))
            previous = self._last_item_id
            self._last_item_id = item_id
            self._emit("conversation.item.added", previous_item_id=previous, item=copy.deepcopy(item))
            ids = {"response_id": r.id, "item_id": item_id, "output_index": index, "call_id": call_id}
            self._emit("response.function_call_arguments.delta", **ids, delta=arguments)
            self._emit("response.function_call_arguments.done", **ids, name=name, arguments=arguments)
            item.update(status="completed", arguments=arguments)
            self._finish_item(r, item, previous)
        r.tool_turn = True

    def _close_at_tool_call(self) -> None:
        r = self._open
        if r is None or not r.tool_turn:
            return
        r.status = "completed"
        self._open = None
        self._send_done(r)
        self._closing, self._closing_tail = r, False

    def _tool_response_sent(self) -> None:
        """A toolResponse went up. If the tool turn's response is still being swallowed and the
        model's tool turns end without a turnComplete (the pause shape), the continuation is a new
        response; if they end with one (learned, or its tail seen), that turnComplete still comes."""
        r = self._closing
        if r is None or not r.tool_turn or r.status != "completed":
            return
        if self._closing_tail or self._tool_shape == "complete":
            return
        self._tool_shape = "pause"
        self._closing, self._last_closed = None, r

    def _on_content_end(self, content: dict[str, Any]) -> None:
        """The frame's flags, after its content and usage: generationComplete, interrupted, turnComplete."""
        if _g(content, "generationComplete"):
            if self._open is not None:
                self._close_message(self._open, "completed")
            elif self._closing is not None and self._closing.tool_turn:
                self._closing_tail = True
        if _g(content, "interrupted"):
            self._on_interrupted()
        if _g(content, "turnComplete"):
            self._on_turn_complete()

    def _on_interrupted(self) -> None:
        if not self._manual:
            # barge-in: the user's new speech (OpenAI says so before cancelling the response)
            if self._pending_user is None:
                self._pending_user = _UserItem(self._new_id("item"))
            if not self._pending_user.speech_started:
                self._pending_user.speech_started = True
                self._emit("input_audio_buffer.speech_started", item_id=self._pending_user.id,
                           audio_start_ms=int(max(self._input_ms - self._ms_since_commit, 0)))
        r = self._open
        if r is None:
            return
        self._close_message(r, "incomplete")
        r.status, r.details = "cancelled", {"type": "cancelled", "reason": "turn_detected"}
        self._open = None
        self._complete_transcript(r.user_item)
        # its response.done waits for the turnComplete that follows, which carries the usage
        self._closing, self._closing_tail = r, False

    def _on_turn_complete(self) -> None:
        self._resumes = 0
        r = self._open
        if r is not None:
            self._close_message(r, "completed")
            r.status = "completed"
            self._open = None
            self._send_done(r)
            self._last_closed = r
            self._complete_transcript(r.user_item)
            return
        if self._closing is not None:
            r, self._closing = self._closing, None
            if r.tool_turn and r.status == "completed":
                self._tool_shape = "complete"
            if not r.done_sent:
                self._send_done(r)
            self._last_closed = r
            self._complete_transcript(r.user_item)

    def _release_held(self) -> None:
        """A held response.done (an interrupted response waiting for its turnComplete) goes now:
        the client acts on the conversation."""
        r = self._closing
        if r is not None and not r.done_sent:
            self._send_done(r)

    def _abort_turn(self, code: str, message: str) -> None:
        """The upstream connection is gone: end what was in flight on it."""
        r = self._open
        if r is not None:
            self._close_message(r, "incomplete")
            r.status = "failed"
            r.details = {"type": "failed", "error": {"type": "server_error", "code": code, "message": message}}
            self._open = None
            self._send_done(r)
            self._last_closed = r
        if self._closing is not None:
            if not self._closing.done_sent:
                self._send_done(self._closing)
            self._last_closed, self._closing = self._closing, None
        for _ in range(len(self._requests)):
            self._requests.popleft()
            self._error(ClientError("response_lost", "The Gemini connection was lost before this response started: "
                                    "send response.create again", None, "server_error"))
        self._awaiting_turns = 0
        self._commit_unanswered = False
        self._complete_transcript(self._transcribing)
        # Gemini, resumed from the newest handle, does not know the calls made after it
        for call_id in [c for c, (_, _, seen) in self._calls.items() if seen == self._handles_seen]:
            del self._calls[call_id]
            self._cancelled_calls.discard(call_id)
        self._activity_open = False

    # -- usage

    def _on_usage(self, raw: dict[str, Any]) -> None:
        """The attachment rule (module text)."""
        r = self._open or self._closing
        target = r if r is not None else self._last_closed
        modality = (target.modality if target is not None else self.config.output)
        usage = openai_usage(raw, remainder_output=modality if not self.audio_only_model else "audio",
                             beta=self.beta)
        if r is not None and not r.done_sent:
            r.usage, r.raw_usage = usage, raw
        elif r is not None:
            self._supplement(r, usage, raw)
        elif self._last_closed is not None and self._last_closed.usage is None:
            self._supplement(self._last_closed, usage, raw)
        else:
            self._carried = (add_usage(self._carried[0], usage), raw) if self._carried else (usage, raw)

    def _supplement(self, r: _Response, usage: Usage, raw: dict[str, Any]) -> None:
        """Bill a report that came after the response's response.done."""
        r.usage, r.raw_usage = usage, raw
        extra = usage_difference(usage, r.billed) if r.billed is not None else usage
        if extra is None:
            return
        r.billed = add_usage(r.billed, extra) if r.billed is not None else extra
        obj = self._response_object(r, usage=extra, output=[], raw_usage=raw)
        obj["metadata"] = {**(r.metadata or {}), **SUPPLEMENT_METADATA}
        self._emit("response.done", response=obj)

    def _usage_only_response(self, usage: Usage, raw: dict[str, Any]) -> None:
        """Usage that no response can carry (the session ends with no response to attach it to)."""
        r = _Response(self._new_id("resp"), self.config.output, metadata=dict(SUPPLEMENT_METADATA))
        self._emit("response.created", response=self._response_object(r))
        r.status, r.usage, r.raw_usage = "completed", usage, raw
        self._send_done(r)

    # -- closing items and responses

    def _close_message(self, r: _Response, status: str) -> None:
        m = r.message
        if m is None:
            return
        r.message = None
        text = "".join(m.text)
        ids = self._ids(r, m)
        if m.audio:
            self._emit("response.output_audio.done", **ids)
            self._emit("response.output_audio_transcript.done", **ids, transcript=text)
            part = {"type": "audio", "transcript": text}
            content = {"type": "audio" if self.beta else "output_audio", "transcript": text}
        else:
            self._emit("response.output_text.done", **ids, text=text)
            part = {"type": "text", "text": text}
            content = {"type": "text" if self.beta else "output_text", "text": text}
        self._emit("response.content_part.done", **ids, part=part)
        item = {"id": m.id, "object": "realtime.item", "type": "message", "role": "assistant", "status": status,
                "content": [content]}
        self._finish_item(r, item, m.previous)

    def _finish_item(self, r: _Response, item: Event, previous: str | None) -> None:
        r.output.append(copy.deepcopy(item))
        self._emit("response.output_item.done", response_id=r.id, output_index=len(r.output) - 1,
                   item=copy.deepcopy(item))
        if not self.beta:
            self._emit("conversation.item.done", previous_item_id=previous, item=copy.deepcopy(item))
        self._remember(item)

    def _send_done(self, r: _Response) -> None:
        usage = r.usage
        if self._carried is not None:
            carried, _ = self._carried
            self._carried = None
            usage = add_usage(usage, carried) if usage is not None else carried
        r.billed = r.usage
        r.done_sent = True
        self._emit("response.done", response=self._response_object(r, usage=usage, raw_usage=r.raw_usage))

    def _response_object(self, r: _Response, *, usage: Usage | None = None, output: list[Event] | None = None,
                         raw_usage: dict[str, Any] | None = None) -> dict[str, Any]:
        cfg = self.config
        obj: dict[str, Any] = {
            "object": "realtime.response", "id": r.id, "conversation_id": self.conversation_id, "status": r.status,
            "status_details": copy.deepcopy(r.details), "output": copy.deepcopy(r.output if output is None else output),
            "usage": usage, "metadata": copy.deepcopy(r.metadata),
        }
        if self.beta:
            obj.update({"modalities": ["text", "audio"] if r.modality == "audio" else ["text"], "voice": cfg.voice,
                        "output_audio_format": cfg.output_format,
                        "temperature": cfg.temperature if cfg.temperature is not None else 0.8,
                        "max_output_tokens": cfg.max_output_tokens})
        else:
            fmt = audio_format_object(cfg.output_format)
            obj.update({"output_modalities": [r.modality], "max_output_tokens": cfg.max_output_tokens,
                        "audio": {"output": {"format": fmt, "voice": cfg.voice}}})
        if raw_usage is not None:
            obj["gemini_usage_metadata"] = copy.deepcopy(raw_usage)  # for audit: the record keeps the event
        return obj

    # == dispatch ===================================================================================

    _client_handlers: ClassVar[dict[str, Callable[[RealtimeGeminiTranslator, Event], None]]] = {}


def _refuse(what: str) -> Callable[[RealtimeGeminiTranslator, Event], None]:
    def refuse(self: RealtimeGeminiTranslator, event: Event) -> None:
        raise ClientError("unsupported_event", what, "type")
    return refuse


RealtimeGeminiTranslator._client_handlers = {
    "session.update": RealtimeGeminiTranslator._on_session_update,
    "input_audio_buffer.append": RealtimeGeminiTranslator._on_append,
    "input_audio_buffer.commit": RealtimeGeminiTranslator._on_commit,
    "input_audio_buffer.clear": RealtimeGeminiTranslator._on_clear,
    "conversation.item.create": RealtimeGeminiTranslator._on_item_create,
    "conversation.item.truncate": RealtimeGeminiTranslator._on_item_truncate,
    "conversation.item.delete": RealtimeGeminiTranslator._on_item_delete,
    "conversation.item.retrieve": RealtimeGeminiTranslator._on_item_retrieve,
    "response.create": RealtimeGeminiTranslator._on_response_create,
    "response.cancel": RealtimeGeminiTranslator._on_response_cancel,
    "output_audio_buffer.clear": _refuse("output_audio_buffer.clear is for WebRTC calls; this is a WebSocket "
                                         "session"),
    "transcription_session.update": _refuse("Transcription sessions cannot be translated to Gemini Live"),
}
