"""Audio durations from the bytes the gateway relayed. No I/O.

Some providers bill audio by the minute and report no usage (xAI: "per minute of audio sent or
received", protocol/xai-realtime.md §6), and a key may be limited in audio minutes on any
provider, so the gateway measures what it relays: the base64 characters of each audio frame's
blob (:func:`b64_value_len`, counted by the relay without parsing the frame), turned into
milliseconds at the session's audio format in each direction (:class:`AudioMeter`).

Formats (protocol/openai-realtime.md): GA ``{"type": "audio/pcm", "rate": 24000}`` (16-bit
little-endian PCM: 2 bytes a sample; any rate), ``{"type": "audio/pcmu"}`` / ``{"type":
"audio/pcma"}`` (G.711, 8 kHz, 1 byte a sample); beta ``"pcm16"`` (24 kHz), ``"g711_ulaw"``,
``"g711_alaw"``. A session starts at PCM16 24 kHz both ways (OpenAI's and xAI's default) and
follows the formats the provider reports in ``session.created`` / ``session.updated``: audio
relayed before a change is measured at the format it was sent in, to the nearest collected event.

Accuracy: base64 padding is ignored (at most 2 bytes, 0.04 ms at 24 kHz, per frame), so a
session's measure is within a fraction of a 20 ms frame of the bytes relayed.
"""

from __future__ import annotations

from typing import Any

import attrs

#: (encoding, sample rate): ``("pcm16", rate)`` or ``("g711", 8000)``.
AudioFormat = tuple[str, int]
PCM16_24K: AudioFormat = ("pcm16", 24000)
G711: AudioFormat = ("g711", 8000)
#: Sample rates a session may declare for PCM; anything else is read as 24 kHz (the default).
MIN_PCM_RATE, MAX_PCM_RATE = 8000, 48000

_BETA = {"pcm16": PCM16_24K, "g711_ulaw": G711, "g711_alaw": G711}
_GA = {"audio/pcmu": G711, "audio/pcma": G711}


def bytes_per_ms(fmt: AudioFormat) -> float:
    encoding, rate = fmt
    return rate * (2 if encoding == "pcm16" else 1) / 1000


def format_of(value: Any) -> AudioFormat | None:
    """A format as a session object states it (GA object or beta name); None if it states none."""
    if isinstance(value, str):
        return _BETA.get(value)
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind in _GA:
        return _GA[kind]
    if kind == "audio/pcm":
        rate = value.get("rate")
        ok = isinstance(rate, int) and not isinstance(rate, bool) and MIN_PCM_RATE <= rate <= MAX_PCM_RATE
        return ("pcm16", rate if ok else 24000)
    return None


def session_formats(session: dict[str, Any]) -> tuple[AudioFormat | None, AudioFormat | None]:
    """(input, output) formats a ``session.created`` / ``session.updated`` session states."""
    audio = session.get("audio")
    audio = audio if isinstance(audio, dict) else {}
    inp, out = audio.get("input"), audio.get("output")
    fmt_in = format_of(inp.get("format")) if isinstance(inp, dict) else None
    fmt_out = format_of(out.get("format")) if isinstance(out, dict) else None
    return (fmt_in or format_of(session.get("input_audio_format")),
            fmt_out or format_of(session.get("output_audio_format")))


def b64_value_len(payload: bytes, names: tuple[bytes, ...]) -> int:
    """The length of the string value of the last member named one of ``names`` (quoted JSON
    keys, e.g. ``b'"audio"'``) in ``payload``: an audio frame's base64 blob, found with ``find``s,
    never parsed. The last one, as a JSON parser keeps the last of repeated members (what the
    provider decodes); an occurrence is a member only when a colon follows it (``"event_id":
    "audio"`` is a value) and no backslash precedes it (text inside another string). A frame where
    none is found counts 0."""
    found = 0
    for name in names:
        at = payload.find(name)
        while at >= 0:
            colon = at + len(name)
            opening = payload.find(b'"', colon)
            if opening < 0:
                break
            if (at == 0 or payload[at - 1] != 0x5C) and payload[colon:opening].strip(b" \t\r\n") == b":":
                closing = payload.find(b'"', opening + 1)
                if closing < 0:
                    break
                found = closing - opening - 1
                at = payload.find(name, closing + 1)
            else:
                at = payload.find(name, at + 1)
        if found:
            return found
    return found


@attrs.define
class AudioMeter:
    """Milliseconds of audio each way, from running totals of base64 characters relayed."""

    input_format: AudioFormat = PCM16_24K
    output_format: AudioFormat = PCM16_24K
    in_ms: float = 0.0
    out_ms: float = 0.0
    _b64_in: int = 0
    _b64_out: int = 0
    #: The formats the provider last stated (the measure's formats may be provisional).
    _confirmed_in: AudioFormat = PCM16_24K
    _confirmed_out: AudioFormat = PCM16_24K
    #: What :meth:`take` has handed out (put on records) so far.
    _taken_in: float = 0.0
    _taken_out: float = 0.0

    def __attrs_post_init__(self) -> None:
        self._confirmed_in, self._confirmed_out = self.input_format, self.output_format

    def note(self, client_b64: int, server_b64: int) -> None:
        """The relay's running totals of base64 characters (client → provider, provider → client)."""
        if client_b64 > self._b64_in:
            self.in_ms += (client_b64 - self._b64_in) * 0.75 / bytes_per_ms(self.input_format)
            self._b64_in = client_b64
        if server_b64 > self._b64_out:
            self.out_ms += (server_b64 - self._b64_out) * 0.75 / bytes_per_ms(self.output_format)
            self._b64_out = server_b64

    def add_input(self, b64_chars: int) -> None:
        """Audio the client sent inside another event (an ``input_audio`` part of an item)."""
        self.in_ms += b64_chars * 0.75 / bytes_per_ms(self.input_format)

    def formats(self, fmt_in: AudioFormat | None, fmt_out: AudioFormat | None) -> None:
        """The provider states the session's formats (audio relayed so far was measured at the
        old ones); any format a client asked for is settled by it."""
        if fmt_in is not None:
            self._confirmed_in = fmt_in
        if fmt_out is not None:
            self._confirmed_out = fmt_out
        self.input_format, self.output_format = self._confirmed_in, self._confirmed_out

    def requested(self, fmt_in: AudioFormat | None, fmt_out: AudioFormat | None) -> None:
        """A client asked for other formats: the provider applies them in order with the audio
        that follows, before it says so. Until it does (:meth:`formats`) or refuses
        (:meth:`refused`), audio is measured at whichever format gives it more milliseconds, so
        a burst sent right after a change is never measured at the old format's lower length."""
        def longer(current: AudioFormat, asked: AudioFormat | None) -> AudioFormat:
            return current if asked is None or bytes_per_ms(current) <= bytes_per_ms(asked) else asked
        self.input_format = longer(self.input_format, fmt_in)
        self.output_format = longer(self.output_format, fmt_out)

    def refused(self) -> None:
        """The provider refused the client's change: back to the formats it stated."""
        self.input_format, self.output_format = self._confirmed_in, self._confirmed_out

    def pending(self) -> tuple[float, float]:
        """(in, out) ms measured and not yet taken."""
        return self.in_ms - self._taken_in, self.out_ms - self._taken_out

    def take(self) -> tuple[int, int]:
        """(in, out) whole ms measured since the last take: what the next record carries (and is
        priced by, so a record's cost is its own fields times the rates). The fraction of a
        millisecond left over waits for the next take: the records add up to the measure."""
        whole_in, whole_out = (int(ms) for ms in self.pending())
        self._taken_in += whole_in
        self._taken_out += whole_out
        return whole_in, whole_out
