"""The offline model speaking Google's Gemini Live API (``BidiGenerateContent``,
protocol/gemini-live.md): client frames in, server frames out. No I/O.

A thin front-end on the offline model's :class:`~rtproxy.offline.brain.Brain` (the same answers,
tool choices and voice as the Realtime and GPT-Live front-ends). Frames are proto3 JSON: every
field is read in lowerCamel and in snake_case (the google-genai SDK sends a mix), bytes in
standard or URL-safe base64, padded or not; frames are written in lowerCamel, default values
left out as Google's JSON does (an empty ``sessionResumptionUpdate`` is "not resumable now",
a usage count of 0 is absent).

- ``setup`` first and once → ``setupComplete``: ``model`` must be ``models/<id>`` (else close
  1008 "… is not found for API version …"), ``generationConfig.responseModalities`` ``["AUDIO"]``
  (the default) or ``["TEXT"]``, ``systemInstruction``, ``tools[].functionDeclarations``,
  ``realtimeInputConfig`` (``automaticActivityDetection``: the energy VAD, or ``disabled`` for
  ``activityStart``/``activityEnd``; ``activityHandling``), ``inputAudioTranscription`` and
  ``outputAudioTranscription`` (present: on), ``sessionResumption`` (present: handles;
  ``{handle}``: resume). Any other malformed frame, a second ``setup``, content before it:
  close 1007 "Request contains an invalid argument.". Fields the offline model has no use for
  (``speechConfig``, ``contextWindowCompression``, …) are accepted and ignored.
- ``realtimeInput``: ``audio`` (PCM16 ``audio/pcm;rate=N``, 16 kHz when no rate is given; other
  rates converted to 16 kHz, their duration kept exactly), ``text``, ``activityStart`` /
  ``activityEnd`` (manual activity detection only), ``audioStreamEnd`` (the utterance in progress
  ends). An utterance gives ``inputTranscription`` fragments (the words heard, or a placeholder)
  and a model turn. ``clientContent`` turns join the conversation; ``turnComplete`` answers them.
- A model turn: ``modelTurn`` parts a word at a time, ``inlineData`` PCM16 24 kHz (AUDIO; with
  ``outputTranscription`` fragments when on) or ``text`` (TEXT); ``generationComplete``; then
  ``turnComplete`` with ``usageMetadata`` for that generation (prompt: the whole conversation,
  text at four characters a token, user audio at 32 tokens a second; response: audio at 25
  tokens a second, or text).
- A declared function the user's words ask for → ``toolCall`` (with the usage of that
  generation) and a pause: no ``turnComplete`` until the ``toolResponse``, then the model speaks
  the answer. New user input while the call is pending → ``toolCallCancellation``.
- Barge-in: user activity (speech starting, ``activityStart``, text; any ``clientContent``)
  during a model turn → ``interrupted``, then ``turnComplete`` (with the usage of what was said),
  unless ``activityHandling`` is ``NO_INTERRUPTION`` (then the next turn waits its turn).
- Resumption: with ``sessionResumption``, a ``sessionResumptionUpdate`` ``{newHandle, resumable:
  true}`` after ``setupComplete`` and after each turn, ``{}`` when a generation starts (not
  resumable while it runs, nor while a tool call is pending). :meth:`OfflineGeminiModel.go_away`
  and :meth:`~OfflineGeminiModel.expire` are the connection limit's warning and cut (the server
  times them). A setup with a known handle resumes that conversation (nothing is replayed);
  an unknown one closes 1008 "BidiGenerateContent session not found"; another model, 1007.

The server (:mod:`rtproxy.offline.server`) sends each frame as a binary WebSocket message
(UTF-8 JSON, as Google does), calls :meth:`~OfflineGeminiModel.next_chunk` at its pace while
:attr:`~OfflineGeminiModel.responding`, and closes the socket with :attr:`~OfflineGeminiModel.closing`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Iterator
from functools import lru_cache
from math import gcd
from typing import Any

import attrs

from .audio import SAMPLE_RATE, SpeechStarted, Vad, VadSettings
from .brain import Brain, Speaker, Utterances, arguments, audio_tokens, fragments, placeholder, text_tokens
from .resample import resample

Frame = dict[str, Any]

#: Gemini's input audio rate: what its SDKs send (``audio/pcm;rate=16000``), and the VAD's.
INPUT_RATE = 16000
INPUT_BYTES_PER_MS = INPUT_RATE * 2 // 1000
#: Declared input rates accepted (others close 1007).
MIN_INPUT_RATE, MAX_INPUT_RATE = 8000, 48000
#: The output audio's type (always 24 kHz PCM16, as Google's).
OUTPUT_MIME_TYPE = "audio/pcm;rate=24000"
#: Google's audio token rates, tokens a second: input audio (its audio understanding), output audio.
AUDIO_IN_TOKENS_PER_S = 32
AUDIO_OUT_TOKENS_PER_S = 25
#: How long a connection lives (Google's: about 10 minutes); ``goAway`` comes before the cut.
CONNECTION_LIMIT_S = 600.0
#: ``goAway`` comes this long before the cut, or half the limit when that is shorter.
GO_AWAY_LEAD_S = 60.0
#: Sessions kept for resumption, each by its newest handle; beyond, the least recently updated is forgotten.
MAX_RESUMABLE_SESSIONS = 256
#: Turns of a conversation kept; the oldest are forgotten beyond this.
MAX_TURNS = 1000
#: Audio of one manual activity (``activityStart`` … ``activityEnd``) kept at most; older audio is dropped.
MAX_ACTIVITY_BYTES = Vad.MAX_SPEECH_MS * INPUT_BYTES_PER_MS
#: A WebSocket close reason carries 123 bytes at most.
MAX_CLOSE_REASON_BYTES = 123

INVALID_ARGUMENT = "Request contains an invalid argument."
SESSION_NOT_FOUND = "BidiGenerateContent session not found"
#: How Google's connection limit has been seen to end a connection (close 1011).
DEADLINE_EXPIRED = "Deadline expired before operation could complete."

_MODEL = re.compile(r"models/[A-Za-z0-9][A-Za-z0-9._-]*")
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
_ACTIVITY_HANDLING = frozenset({"START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION", "ACTIVITY_HANDLING_UNSPECIFIED"})
#: The client message's kinds (a proto oneof), by both spellings.
_KINDS = {"setup": "setup", "clientContent": "clientContent", "client_content": "clientContent",
          "realtimeInput": "realtimeInput", "realtime_input": "realtimeInput",
          "toolResponse": "toolResponse", "tool_response": "toolResponse"}


def go_away_lead(connection_limit_s: float) -> float:
    """How long before the cut ``goAway`` comes: :data:`GO_AWAY_LEAD_S`, or half a shorter limit."""
    return min(GO_AWAY_LEAD_S, connection_limit_s / 2)


def duration(seconds: float) -> str:
    """A protobuf Duration in JSON: ``"30s"``, ``"2.500s"``."""
    whole = round(seconds)
    return f"{whole}s" if abs(seconds - whole) < 5e-4 else f"{seconds:.3f}s"


class Refusal(Exception):
    """A client frame Google would close the connection for: the close's code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _invalid() -> Refusal:
    return Refusal(1007, INVALID_ARGUMENT)


# -- proto3 JSON, as clients write it ------------------------------------------------------------


@lru_cache(maxsize=256)
def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", camel).lower()


def field(message: Any, camel: str) -> Any:
    """``message[camel]`` or its snake_case spelling (``None``: absent, or not a message)."""
    if not isinstance(message, dict):
        return None
    if camel in message:
        return message[camel]
    return message.get(_snake(camel))


def has(message: Any, camel: str) -> bool:
    """Whether ``message`` has the field, in either spelling (``null`` is absent, as in proto3 JSON)."""
    return field(message, camel) is not None


def _object(value: Any) -> dict[str, Any]:
    """A message field: absent is empty, anything but an object is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid()
    return value


def decode_bytes(data: Any) -> bytes:
    """A proto3 JSON ``bytes`` value: standard or URL-safe base64, padded or not."""
    if not isinstance(data, str):
        raise _invalid()
    text = data.strip().replace("-", "+").replace("_", "/").rstrip("=")
    if len(text) % 4 == 1:
        raise _invalid()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid() from None


def pcm_rate(mime_type: Any) -> int:
    """The sample rate of a PCM16 ``audio/pcm;rate=N`` (``audio/l16`` too); 16 kHz when not given."""
    if not isinstance(mime_type, str):
        raise _invalid()
    kind, *params = [p.strip().lower() for p in mime_type.split(";")]
    if kind not in ("audio/pcm", "audio/l16"):
        raise _invalid()
    rate = INPUT_RATE
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "rate":
            if not value.strip().isdigit():
                raise _invalid()
            rate = int(value)
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise _invalid()
    return rate


def _lower_types(schema: Any) -> Any:
    """An OpenAPI-subset schema (``"type": "STRING"``) as JSON schema (``"string"``)."""
    if isinstance(schema, dict):
        return {k: v.lower() if k == "type" and isinstance(v, str) else _lower_types(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def _functions(tools: Any) -> list[dict[str, Any]]:
    """The declared functions as the brain takes them: ``{"name", "parameters"}`` (JSON schema)."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _invalid()
    out: list[dict[str, Any]] = []
    for tool in tools:
        declarations = field(_object(tool), "functionDeclarations")
        if declarations is None:  # googleSearch, codeExecution, …: not simulated
            continue
        if not isinstance(declarations, list):
            raise _invalid()
        for declaration in declarations:
            name = field(_object(declaration), "name")
            if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
                raise _invalid()
            schema = field(declaration, "parametersJsonSchema") or field(declaration, "parameters")
            out.append({"name": name, "parameters": _lower_types(schema) if isinstance(schema, dict) else None})
    return out


def _text_of(content: Any) -> str:
    """The text parts of a ``Content`` (a bare string too, as SDKs accept), joined."""
    if isinstance(content, str):
        return content
    parts = field(_object(content), "parts")
    if parts is None:
        return ""
    if not isinstance(parts, list):
        raise _invalid()
    return " ".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)).strip()


def _int(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise _invalid()
    return int(value)


# -- the conversation and its resumption ----------------------------------------------------------


@attrs.frozen
class Turn:
    """One entry of the conversation: who (``user``, ``model``, or ``tool`` for a function's
    response), what (words, a function call, a response), and how much of it was user audio
    (billed as audio, not as the words heard in it)."""

    role: str
    text: str
    audio_ms: int = 0


@attrs.frozen
class SavedSession:
    """A conversation as its newest resumption handle left it."""

    #: The session's own id, kept through its resumptions.
    key: str
    model: str
    turns: tuple[Turn, ...]


class ResumableSessions:
    """Conversations that can be resumed, each by its newest handle (an older one is forgotten
    when a newer is issued), shared by the server's connections. Bounded: beyond
    ``max_sessions`` the least recently updated session is forgotten and its handle no longer
    resumes."""

    def __init__(self, max_sessions: int = MAX_RESUMABLE_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self._by_handle: dict[str, SavedSession] = {}
        self._handle_of: dict[str, str] = {}  # session key → its newest handle

    def save(self, saved: SavedSession) -> str:
        """Remember ``saved``; its new handle."""
        old = self._handle_of.pop(saved.key, None)
        if old is not None:
            del self._by_handle[old]
        handle = secrets.token_urlsafe(24)
        self._by_handle[handle] = saved
        self._handle_of[saved.key] = handle
        while len(self._by_handle) > self.max_sessions:
            forgotten = self._by_handle.pop(next(iter(self._by_handle)))
            del self._handle_of[forgotten.key]
        return handle

    def find(self, handle: str) -> SavedSession | None:
        return self._by_handle.get(handle)

    def __len__(self) -> int:
        return len(self._by_handle)


# -- the front-end ---------------------------------------------------------------------------------


@attrs.frozen
class _Call:
    id: str
    name: str


@attrs.define
class _Generation:
    """A model turn being generated: its prompt and what it has produced so far."""

    prompt_text: int
    prompt_audio: int
    #: What the model has said (its words, spoken or written).
    said: str = ""
    #: What it has written: a text reply, a function call's arguments (billed as text).
    written: str = ""
    audio_ms: int = 0


class _ToInputRate:
    """Audio at a declared rate → 16 kHz with its duration kept exactly: converted in whole
    blocks (``rate/g`` samples in, ``16000/g`` out, ``g`` their gcd), the rest carried over."""

    def __init__(self) -> None:
        self.rate = INPUT_RATE
        self._carry = b""

    def convert(self, pcm: bytes, rate: int) -> bytes:
        if rate != self.rate:  # a new rate: the old one's remainder is dropped
            self.rate, self._carry = rate, b""
        if rate == INPUT_RATE:
            return pcm
        data = self._carry + pcm
        block = 2 * (rate // gcd(rate, INPUT_RATE))
        usable = len(data) - len(data) % block
        self._carry = data[usable:]
        return resample(data[:usable], rate, INPUT_RATE) if usable else b""

    def reset(self) -> None:
        self._carry = b""


def _content(**fields: Any) -> Frame:
    return {"serverContent": fields}


def _usage_metadata(prompt: dict[str, int], response: dict[str, int]) -> dict[str, Any]:
    """Google's ``usageMetadata``: counts and per-modality details, zeros left out."""
    total_in, total_out = sum(prompt.values()), sum(response.values())
    usage: dict[str, Any] = {}
    for name, count in (("promptTokenCount", total_in), ("responseTokenCount", total_out),
                        ("totalTokenCount", total_in + total_out)):
        if count:
            usage[name] = count
    for name, counts in (("promptTokensDetails", prompt), ("responseTokensDetails", response)):
        details = [{"modality": m, "tokenCount": n} for m, n in counts.items() if n]
        if details:
            usage[name] = details
    return usage


class OfflineGeminiModel:
    """One Gemini Live connection to the offline model (see the module's doc).

    ``sessions``: the resumable sessions shared by the server's connections (default: this
    connection's own). ``api_version``: of the URL (``v1beta``…), quoted in refusals.
    ``hears``/``speaker``: as for :class:`~rtproxy.offline.model.OfflineModel` (the caller
    recognizes utterances, :meth:`take_unheard` then :meth:`heard`; the speaker voices replies).
    ``connection_limit_s``/``go_away_lead_s``: the connection's life and its warning, for the
    server's timer (:meth:`go_away`, :meth:`expire`; the lead defaults to :func:`go_away_lead`)."""

    def __init__(self, *, sessions: ResumableSessions | None = None, api_version: str = "v1beta",
                 hears: bool = False, speaker: Speaker | None = None,
                 connection_limit_s: float = CONNECTION_LIMIT_S, go_away_lead_s: float | None = None) -> None:
        self.sessions = sessions if sessions is not None else ResumableSessions()
        self.api_version = api_version
        self.brain = Brain(speaker)
        self.connection_limit_s = connection_limit_s
        self.go_away_lead_s = go_away_lead(connection_limit_s) if go_away_lead_s is None else go_away_lead_s
        self.session_id = "gemini_" + secrets.token_hex(8)
        #: Why the connection must close now, ``(code, reason)``; nothing more is sent once set.
        self.closing: tuple[int, str] | None = None
        self.set_up = False
        self.resumed = False
        self.model = ""
        self.modality = "AUDIO"
        self.system_instruction = ""
        self.functions: list[dict[str, Any]] = []
        self.manual_activity = False
        self.interrupts = True
        self.input_transcription = False
        self.output_transcription = False
        self.resumption = False
        self.turns: list[Turn] = []
        self._counter = 0
        self._vad = Vad(VadSettings(), INPUT_RATE)
        self._to_input_rate = _ToInputRate()
        self._activity: bytearray | None = None  # manual activity: its audio, while open
        self._unheard: Utterances[int] = Utterances(hears)  # utterance → its length (ms)
        #: Model turns to stream, the one streaming first (three at most: one streaming, a reply
        #: queued behind it, an answer to a function's response).
        self._steps: list[Iterator[list[Frame]]] = []
        self._reply_queued = False  # a reply to the user's words waits in _steps, not started
        self._generation: _Generation | None = None
        self._pending_call: _Call | None = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def responding(self) -> bool:
        return bool(self._steps) and self.closing is None

    @property
    def hears(self) -> bool:
        return self._unheard.hears

    @property
    def speaker(self) -> Speaker | None:
        return self.brain.speaker

    @property
    def pending_call_id(self) -> str | None:
        """The id of the function call the model waits for, if any."""
        return self._pending_call.id if self._pending_call is not None else None

    def _id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self.session_id[7:15]}{self._counter:05d}"

    def _close(self, code: int, reason: str) -> list[Frame]:
        cut = reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
        self.closing = (code, cut)
        self._steps.clear()
        self._reply_queued = False
        return []

    # -- client frames -------------------------------------------------------------------------

    def receive(self, raw: str | bytes) -> list[Frame]:
        """Handle one client frame; the server frames it causes at once (``[]`` and
        :attr:`closing` set when it closes the connection)."""
        if self.closing is not None:
            return []
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):
            return self._close(1007, INVALID_ARGUMENT)
        if not isinstance(message, dict) or len(message) != 1:
            return self._close(1007, INVALID_ARGUMENT)
        ((key, body),) = message.items()
        kind = _KINDS.get(key)
        if kind is None or (kind == "setup") == self.set_up:  # setup first, and only first
            return self._close(1007, INVALID_ARGUMENT)
        handler = {"setup": self._setup, "clientContent": self._client_content,
                   "realtimeInput": self._realtime_input, "toolResponse": self._tool_response}[kind]
        try:
            return handler(_object(body))
        except Refusal as refusal:
            return self._close(refusal.code, refusal.reason)

    def _setup(self, setup: dict[str, Any]) -> list[Frame]:
        model = field(setup, "model")
        if not isinstance(model, str) or not model:
            raise _invalid()
        if not _MODEL.fullmatch(model):
            raise Refusal(1008, f"{model[:48]} is not found for API version {self.api_version}, or is not "
                                "supported for bidiGenerateContent.")
        generation = _object(field(setup, "generationConfig"))
        modalities = field(generation, "responseModalities") or ["AUDIO"]
        if not isinstance(modalities, list) or len(modalities) != 1 or not isinstance(modalities[0], str) \
                or modalities[0].upper() not in ("AUDIO", "TEXT"):
            raise _invalid()  # one modality per session
        realtime = _object(field(setup, "realtimeInputConfig"))
        detection = _object(field(realtime, "automaticActivityDetection"))
        handling = field(realtime, "activityHandling")
        if handling is not None and handling not in _ACTIVITY_HANDLING:
            raise _invalid()
        vad = VadSettings(prefix_padding_ms=_int(field(detection, "prefixPaddingMs"), 300),
                          silence_duration_ms=_int(field(detection, "silenceDurationMs"), 500) or 500)
        system = _text_of(field(setup, "systemInstruction"))
        functions = _functions(field(setup, "tools"))
        resumption = field(setup, "sessionResumption")
        handle = field(_object(resumption), "handle")
        saved = None
        if handle:
            saved = self.sessions.find(handle) if isinstance(handle, str) else None
            if saved is None:
                raise Refusal(1008, SESSION_NOT_FOUND)
            if saved.model != model:  # resuming may change anything but the model
                raise _invalid()
        # all checked: apply at once
        self.model, self.modality = model, modalities[0].upper()
        self.system_instruction, self.functions = system, functions
        self.manual_activity = field(detection, "disabled") is True
        self.interrupts = handling != "NO_INTERRUPTION"
        self._vad = Vad(vad, INPUT_RATE)
        self.input_transcription = has(setup, "inputAudioTranscription")
        self.output_transcription = has(setup, "outputAudioTranscription")
        self.resumption = has(setup, "sessionResumption")
        if saved is not None:
            self.session_id, self.turns, self.resumed = saved.key, list(saved.turns), True
        self.set_up = True
        return [{"setupComplete": {}}, *self._resumable()]

    def _client_content(self, content: dict[str, Any]) -> list[Frame]:
        turns = field(content, "turns") or []
        if not isinstance(turns, list):
            raise _invalid()
        parsed = []
        for turn in turns:
            role = field(_object(turn), "role") or "user"
            if role not in ("user", "model"):
                raise _invalid()
            parsed.append(Turn(role, _text_of(turn)))
        complete = field(content, "turnComplete") is True
        # client content is appended unconditionally and interrupts any generation
        out = self._user_activity(always=True) if parsed or complete else []
        for turn in parsed:
            self._add_turn(turn)
        if complete:
            self._answer_user()
        return out

    def _realtime_input(self, realtime: dict[str, Any]) -> list[Frame]:
        out: list[Frame] = []
        if has(realtime, "activityStart"):
            out += self._activity_start()
        audio = field(realtime, "audio")
        chunks = field(realtime, "mediaChunks")  # deprecated: all but the first are ignored
        if audio is None and isinstance(chunks, list) and chunks and isinstance(chunks[0], dict) \
                and str(field(chunks[0], "mimeType")).startswith("audio/"):
            audio = chunks[0]
        if audio is not None:
            blob = _object(audio)
            out += self.feed_audio(self._to_input_rate.convert(decode_bytes(field(blob, "data")),
                                                               pcm_rate(field(blob, "mimeType"))))
        text = field(realtime, "text")
        if text:
            if not isinstance(text, str):
                raise _invalid()
            out += self._user_activity()
            self._add_turn(Turn("user", text))
            self._answer_user()
        if field(realtime, "audioStreamEnd") is True and not self.manual_activity:
            self._to_input_rate.reset()
            for stopped in self._vad.flush():
                out += self._utterance(stopped.pcm)
        if has(realtime, "activityEnd"):
            out += self._activity_end()
        return out

    def feed_audio(self, pcm: bytes) -> list[Frame]:
        """Input audio, PCM16 16 kHz mono: the VAD's, or the open manual activity's."""
        if self.manual_activity:
            if self._activity is not None:  # outside an activity, audio is not listened to
                self._activity += pcm
                del self._activity[:-MAX_ACTIVITY_BYTES]
            return []
        out: list[Frame] = []
        for event in self._vad.feed(pcm):
            if isinstance(event, SpeechStarted):
                out += self._user_activity()  # barge-in
            else:
                out += self._utterance(event.pcm)
        return out

    def _activity_start(self) -> list[Frame]:
        if not self.manual_activity:
            raise _invalid()  # activity signals are for disabled automatic detection only
        out = self._user_activity()
        self._activity = bytearray()
        return out

    def _activity_end(self) -> list[Frame]:
        if not self.manual_activity:
            raise _invalid()
        pcm, self._activity = self._activity, None
        return self._utterance(bytes(pcm)) if pcm else []

    def _tool_response(self, response: dict[str, Any]) -> list[Frame]:
        answers = field(response, "functionResponses")
        if not isinstance(answers, list):
            raise _invalid()
        for answer in answers:
            answer = _object(answer)
            call = self._pending_call
            call_id, name = field(answer, "id"), field(answer, "name")
            # matched by id (by name when there is none, as Vertex clients send); a late answer
            # to a cancelled call is dropped
            if call is None or (call_id != call.id if call_id else name != call.name):
                continue
            output = _object(field(answer, "response"))
            self._pending_call = None
            self._add_turn(Turn("tool", json.dumps({"name": call.name, "response": output})))
            said = output["output"] if isinstance(output.get("output"), str) else json.dumps(output)
            self._steps.append(self._respond(self.brain.tool_reply(call.name, said)))
        return []

    # -- hearing -------------------------------------------------------------------------------

    def take_unheard(self) -> list[tuple[str, bytes]]:
        """The utterances to recognize, ``(key, PCM16 24 kHz)`` as the ears take them, each once."""
        return [(key, resample(pcm, INPUT_RATE, SAMPLE_RATE)) for key, pcm in self._unheard.take()]

    def heard(self, key: str, words: str | None) -> list[Frame]:
        """What was recognized in an utterance (``None`` or ``""``: nothing): its turn goes on."""
        ms = self._unheard.heard(key)
        if ms is None or self.closing is not None:
            return []
        return self._heard(ms, words or None)

    def _utterance(self, pcm: bytes) -> list[Frame]:
        ms = len(pcm) // INPUT_BYTES_PER_MS
        if self._unheard.ready:
            self._unheard.listen(self._id("utterance"), pcm, ms)
            return []
        return self._heard(ms, None)

    def _heard(self, ms: int, words: str | None) -> list[Frame]:
        said = words or placeholder(ms)
        out = self._user_activity()
        if self.input_transcription:
            out += [_content(inputTranscription={"text": fragment}) for fragment in fragments(said)]
        self._add_turn(Turn("user", said, audio_ms=ms))
        self._answer_user()
        return out

    # -- turns ---------------------------------------------------------------------------------

    def _add_turn(self, turn: Turn) -> None:
        self.turns.append(turn)
        del self.turns[:-MAX_TURNS]

    def _user_activity(self, *, always: bool = False) -> list[Frame]:
        """New user input: a pending call is cancelled, a generation interrupted (unless
        activity does not interrupt; ``always`` for client content, which always does)."""
        out: list[Frame] = []
        if self._pending_call is not None:
            out.append({"toolCallCancellation": {"ids": [self._pending_call.id]}})
            self._pending_call = None
        if self._steps and (always or self.interrupts):
            self._steps.clear()  # turns queued and not started are dropped with it
            self._reply_queued = False
            g, self._generation = self._generation, None
            if g is not None:
                self._add_turn(Turn("model", g.said))
                out += [_content(interrupted=True),
                        {**_content(turnComplete=True), "usageMetadata": self._usage(g)}, *self._resumable()]
        return out

    def _resumable(self) -> list[Frame]:
        if not self.resumption:
            return []
        handle = self.sessions.save(SavedSession(self.session_id, self.model, tuple(self.turns)))
        return [{"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}}]

    def _not_resumable(self) -> list[Frame]:
        return [{"sessionResumptionUpdate": {}}] if self.resumption else []

    def _answer_user(self) -> None:
        """Queue a turn answering the user's latest words: words given while one waits (the
        turn before it not interrupted) join it, as one turn."""
        if not self._reply_queued:
            self._reply_queued = True
            self._steps.append(self._respond())

    def _last_user_words(self) -> str | None:
        return next((t.text for t in reversed(self.turns) if t.role == "user"), None)

    def _respond(self, answer: str | None = None) -> Iterator[list[Frame]]:
        """A model turn: the words of ``answer``, or (``None``) the brain's reply to the user's
        last words, or the function call they ask for."""
        g = _Generation(
            prompt_text=text_tokens(self.system_instruction) + sum(text_tokens(t.text) for t in self.turns
                                                                   if not t.audio_ms),
            prompt_audio=sum(audio_tokens(t.audio_ms, AUDIO_IN_TOKENS_PER_S) for t in self.turns))
        self._generation = g
        first = self._not_resumable()
        if answer is None:
            self._reply_queued = False
            words = self._last_user_words()
            tool = self.brain.choose_tool(words, self.functions) if words is not None else None
            if tool is not None:
                assert words is not None
                args = arguments(words, tool["parameters"])
                call = _Call(self._id("function-call"), tool["name"])
                g.written = json.dumps(args)
                self._add_turn(Turn("model", json.dumps({"name": call.name, "args": args})))
                self._generation, self._pending_call = None, call
                yield [*first, {"toolCall": {"functionCalls": [{"id": call.id, "name": call.name, "args": args}]},
                                "usageMetadata": self._usage(g)}]
                return
            answer = self.brain.reply(words)
        audio = self.modality == "AUDIO"
        for word in self.brain.speak(answer, voiced=audio):
            batch, first = first, []
            g.said += word.delta
            if audio:
                if self.output_transcription:
                    batch.append(_content(outputTranscription={"text": word.delta}))
                batch += [_content(modelTurn={"parts": [{"inlineData": {"mimeType": OUTPUT_MIME_TYPE, "data": chunk}}]})
                          for chunk in word.chunks()]
                g.audio_ms += word.ms
            else:
                g.written += word.delta
                batch.append(_content(modelTurn={"parts": [{"text": word.delta}]}))
            yield batch
        self._add_turn(Turn("model", g.said))
        self._generation = None
        yield [_content(generationComplete=True), {**_content(turnComplete=True), "usageMetadata": self._usage(g)},
               *self._resumable()]

    def _usage(self, g: _Generation) -> dict[str, Any]:
        response = {"TEXT": text_tokens(g.written), "AUDIO": audio_tokens(g.audio_ms, AUDIO_OUT_TOKENS_PER_S)}
        return _usage_metadata({"TEXT": g.prompt_text, "AUDIO": g.prompt_audio}, response)

    # -- the server's pacing and timers --------------------------------------------------------

    def next_chunk(self) -> list[Frame]:
        """The next batch of the model turn being streamed (``[]`` when none is)."""
        while self._steps and self.closing is None:
            try:
                return next(self._steps[0])
            except StopIteration:
                self._steps.pop(0)
        return []

    def go_away(self, time_left_s: float | None = None) -> list[Frame]:
        """The warning that the connection ends in ``time_left_s`` (default: the lead time)."""
        if self.closing is not None:
            return []
        return [{"goAway": {"timeLeft": duration(self.go_away_lead_s if time_left_s is None else time_left_s)}}]

    def expire(self) -> list[Frame]:
        """The connection limit is reached: the connection closes (1011, as Google's has been seen
        to). The session stays resumable from its last handle."""
        return self._close(1011, DEADLINE_EXPIRED)
