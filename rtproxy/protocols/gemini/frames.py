"""What a Gemini Live frame is, from its bytes (protocol/gemini-live.md, ground rules, §3, §4).

Gemini frames have no ``type``: a frame is one JSON object, and what it is follows from which
top-level key it holds. A client frame holds one of ``setup``, ``clientContent``,
``realtimeInput``, ``toolResponse``; a server frame one of ``setupComplete``, ``serverContent``,
``toolCall``, ``toolCallCancellation``, ``goAway``, ``sessionResumptionUpdate``, and perhaps
``usageMetadata`` beside it (or alone). Google's proto3 JSON parsers read lowerCamel **and** the
proto's snake_case names, and the Python SDK writes a mix of both, so everything here reads both
(:func:`field`).

Nearly every byte is base64 audio, in two shapes that are told from their first bytes and never
parsed (:data:`AUDIO`):

- client: ``{"realtime_input": {"audio": {"data": "<b64>", "mime_type": "audio/pcm;rate=16000"}}}``
  (google-genai 3.6.1, byte for byte), ``{"realtimeInput":{"audio":{"data":"…","mimeType":"…"}}}``
  (browsers, ``JSON.stringify``), either key order, any JSON whitespace;
- server: ``{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType":
  "audio/pcm;rate=24000", "data": "<b64>"}}]}}}``, as Google writes it (pretty-printed, two-space
  indent) or compact.

A client's frame decides what the provider bills, so it is :data:`AUDIO` only when its bytes prove
the whole frame is that one audio blob (the head up to the data's opening quote, one ``find`` for
its closing quote, then the closing braces); anything else is :data:`PARSE`d
(:func:`normalize_client`): the relay forwards the frame re-serialized from its parse, so the gate,
the collector and Google read the same object (no duplicate key, no escaped key). The provider's
own frames are trusted: an audio frame is :data:`AUDIO` when its head and tail are the audio shape
(a frame that also carries a transcript, another part or usage goes to the collector, which counts
its audio), everything else :data:`COLLECT`. Server frames arrive as binary WebSocket frames
(UTF-8 JSON); both functions take bytes, whatever the frame's opcode.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

from ..peek import _GROWTH_SLACK_BYTES, MAX_CANONICAL_GROWTH, _dumps
from ..seam import AUDIO, COLLECT, FORWARD, PARSE, ClientFrame

#: The top-level keys of a client frame, by their camelCase name (the snake_case one is read too).
CLIENT_MESSAGES = ("setup", "clientContent", "realtimeInput", "toolResponse")
#: The top-level keys of a server frame.
SERVER_MESSAGES = ("setupComplete", "serverContent", "toolCall", "toolCallCancellation", "goAway",
                   "sessionResumptionUpdate", "usageMetadata", "voiceActivity", "voiceActivityDetectionSignal")
#: What a later client frame may never hold at its top level (:mod:`.gate`): ``setup``, and
#: ``config``, which some localized copies of Google's guide show as the first message's name
#: (protocol/gemini-live.md §12): unconfirmed, so refused rather than trusted not to switch models.
SETUP_KEYS = frozenset({"setup", "config"})
#: ``realtimeInput`` members that carry media only (counted, never needed by the collector).
MEDIA_MEMBERS = frozenset({"audio", "video", "mediaChunks", "media_chunks"})

_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


@functools.lru_cache(maxsize=256)  # called with the module's own constant names only
def snake(name: str) -> str:
    """``clientContent`` → ``client_content``."""
    return _CAMEL_HUMP.sub(r"_\1", name).lower()


def field(obj: Any, name: str) -> Any:
    """``obj[name]`` read as a proto3 JSON parser reads it: by its lowerCamel ``name`` or its
    snake_case one; when both are present, the later one (as a parser meeting a field twice keeps
    the last). None when absent or when ``obj`` is not an object."""
    if not isinstance(obj, dict):
        return None
    other = snake(name)
    if other == name or other not in obj:
        return obj.get(name)
    if name not in obj:
        return obj[other]
    keys = list(obj)
    return obj[name] if keys.index(name) > keys.index(other) else obj[other]


def has_field(obj: dict[str, Any], name: str) -> bool:
    return name in obj or snake(name) in obj


_WS = rb"[ \t\n\r]*"
_COLON = _WS + b":" + _WS
_COMMA = _WS + b"," + _WS


def _key(*names: bytes) -> bytes:
    return b'"(?:' + b"|".join(re.escape(n) for n in names) + b')"' + _COLON


#: A string value with no escape (a mime type as every writer writes it).
_PLAIN = rb'"[^"\\]*"'

# -- client audio -----------------------------------------------------------------------------

_CLIENT_MIME = _key(b"mime_type", b"mimeType") + b"(" + _PLAIN + b")"
#: ``{"realtime_input": {"audio": {`` [mime member ``,``] ``"data": "`` (the value's opening quote).
_CLIENT_AUDIO_HEAD = re.compile(
    _WS + rb"\{" + _WS + _key(b"realtime_input", b"realtimeInput") + rb"\{" + _WS + _key(b"audio") + rb"\{" + _WS
    + b"(?:" + _CLIENT_MIME + _COMMA + b")?" + _key(b"data") + b'"')
#: From the data's closing quote: [``,`` mime member] and the three closing braces, nothing else.
_CLIENT_AUDIO_TAIL = re.compile(
    b'"' + _WS + b"(?:," + _WS + _CLIENT_MIME + _WS + b")?" + rb"\}" + _WS + rb"\}" + _WS + rb"\}" + _WS)
#: How the SDKs and browsers begin an audio frame (the head, without a regex).
CLIENT_AUDIO_PREFIXES = (
    b'{"realtime_input": {"audio": {"data": "',  # google-genai (json.dumps), protocol/gemini-live.md §2.8
    b'{"realtimeInput":{"audio":{"data":"',  # browsers and @google/genai (JSON.stringify)
    b'{"realtimeInput": {"audio": {"data": "',  # Google's WebSocket guide (json.dumps of camelCase)
)


def _audio_body_end(data: bytes, start: int) -> int:
    """The closing quote of the base64 string opening at ``start``; -1 when it may be escaped
    (a backslash before it: the value goes on, as the parser reads it)."""
    close = data.find(b'"', start)
    if close < 0 or data[close - 1] == 0x5C:  # '\\'
        return -1
    return close


def is_client_audio(data: bytes) -> bool:
    """Whether the bytes prove the frame is one ``realtimeInput.audio`` blob and nothing else:
    one known head, one ``find`` over the base64, the closing braces; a duplicate member, an
    escaped key or any other member makes it unproven (then it is parsed)."""
    for prefix in CLIENT_AUDIO_PREFIXES:
        if data.startswith(prefix):
            start, head_mime = len(prefix), False
            break
    else:
        head = _CLIENT_AUDIO_HEAD.match(data)
        if head is None:
            return False
        start, head_mime = head.end(), head.group(1) is not None
    close = _audio_body_end(data, start)
    if close < 0:
        return False
    tail = _CLIENT_AUDIO_TAIL.fullmatch(data, close)
    return tail is not None and not (head_mime and tail.group(1) is not None)  # one mime member at most


# -- server audio -----------------------------------------------------------------------------

_SERVER_MIME = _key(b"mimeType", b"mime_type") + b'"(audio/[^"\\\\]*)"'
_ROLE = _key(b"role") + b'"model"'
#: ``{"serverContent": {"modelTurn": {`` [role ``,``] ``"parts": [{"inlineData": {`` [mime ``,``] ``"data": "``.
_SERVER_AUDIO_HEAD = re.compile(
    _WS + rb"\{" + _WS + _key(b"serverContent", b"server_content") + rb"\{" + _WS + _key(b"modelTurn", b"model_turn")
    + rb"\{" + _WS + b"(?:" + _ROLE + _COMMA + b")?" + _key(b"parts") + rb"\[" + _WS + rb"\{" + _WS
    + _key(b"inlineData", b"inline_data") + rb"\{" + _WS + b"(?:" + _SERVER_MIME + _COMMA + b")?" + _key(b"data") + b'"')
#: From the data's closing quote: [mime], the blob's, part's and list's ends, [role], three braces.
_SERVER_AUDIO_TAIL = re.compile(
    b'"' + _WS + b"(?:," + _WS + _SERVER_MIME + _WS + b")?" + rb"\}" + _WS + rb"\}" + _WS + rb"\]" + _WS
    + b"(?:," + _WS + _ROLE + _WS + b")?" + rb"\}" + _WS + rb"\}" + _WS + rb"\}" + _WS)
#: How Google (pretty-printed JSON, two-space indent: what its Live servers send) and Python
#: servers (json.dumps, compact) begin an audio frame.
SERVER_AUDIO_PREFIXES = (
    (b'{\n  "serverContent": {\n    "modelTurn": {\n      "parts": [\n        {\n          "inlineData": {\n'
     b'            "mimeType": "audio/pcm;rate=24000",\n            "data": "'),
    b'{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "',
    b'{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm;rate=24000","data":"',
)


def is_server_audio(data: bytes) -> bool:
    """Whether a provider's frame is one audio part of a model turn and nothing else (no other
    part, no transcript, no turn end, no usage riding on it): head, one ``find``, tail."""
    for prefix in SERVER_AUDIO_PREFIXES:
        if data.startswith(prefix):
            start, head_mime = len(prefix), True
            break
    else:
        head = _SERVER_AUDIO_HEAD.match(data)
        if head is None:
            return False
        start, head_mime = head.end(), head.group(1) is not None
    close = _audio_body_end(data, start)
    if close < 0:
        return False
    tail = _SERVER_AUDIO_TAIL.fullmatch(data, close)
    if tail is None:
        return False
    return head_mime != (tail.group(1) is not None)  # an audio mime type, given once


def classify(data: bytes) -> int:
    """What the relay does with a provider's frame besides forwarding it (text or binary):
    AUDIO (count its bytes) or COLLECT (everything else: the collector needs nearly all of it,
    and counts what it does not know)."""
    return AUDIO if is_server_audio(data) else COLLECT


def classify_client(data: bytes) -> int:
    """AUDIO for an audio frame the bytes prove (see :func:`is_client_audio`); PARSE otherwise."""
    return AUDIO if is_client_audio(data) else PARSE


def client_kind(value: Any) -> int:
    """What a parsed client frame is: AUDIO (only ``realtimeInput`` media, audio among it),
    FORWARD (only ``realtimeInput`` video), COLLECT (anything else: what the collector records,
    a setup-shaped frame for the gate, what is not a Gemini message, which the collector counts)."""
    if not isinstance(value, dict) or len(value) != 1:
        return COLLECT
    (key, body), = value.items()
    if key not in ("realtimeInput", "realtime_input") or not isinstance(body, dict) or not body \
            or not MEDIA_MEMBERS.issuperset(body):
        return COLLECT
    return AUDIO if ("audio" in body or _has_audio_chunk(field(body, "mediaChunks"))) else FORWARD


def _has_audio_chunk(chunks: Any) -> bool:
    if not isinstance(chunks, list):
        return False
    for chunk in chunks:
        mime = field(chunk, "mimeType")
        if isinstance(mime, str) and mime.startswith("audio/"):
            return True
    return False


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _finite(text: str) -> float:
    """A JSON number as a float; one too large for a float (``1e400``) is refused rather than
    written back as ``Infinity``, which is not JSON."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def normalize_client(data: bytes) -> ClientFrame:
    """A client frame :func:`classify_client` could not vouch for, as parsed: re-serialized
    (duplicate keys resolved as parsers resolve them, the last wins; escapes decoded; compact;
    ``NaN``, ``Infinity`` and numbers beyond a double refused, as JSON has none), with its kind. The frame unchanged when it does not parse and holds no ``{`` (Google refuses
    it too); None when it cannot be judged (see :class:`~..seam.ClientFrame`)."""
    try:
        value = json.loads(data, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError):
        return ClientFrame(None if b"{" in data else bytes(data), COLLECT)
    frame = _dumps(value)
    if frame is None or len(frame) > MAX_CANONICAL_GROWTH * len(data) + _GROWTH_SLACK_BYTES:
        return ClientFrame(None, COLLECT)
    return ClientFrame(frame, client_kind(value))
