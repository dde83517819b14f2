"""Audio for the offline model: deterministic speech-like synthesis and an energy-based VAD.

PCM16 little-endian, mono, 24 kHz — the realtime API's ``audio/pcm`` format.
"""

from __future__ import annotations

import math
import sys
import zlib
from array import array
from functools import lru_cache

import attrs

SAMPLE_RATE = 24000
BYTES_PER_MS = SAMPLE_RATE * 2 // 1000  # 48
#: VAD analysis window.
FRAME_MS = 20
_AMPLITUDE = 0.3
_GAP_MS = 40


def _pcm_from_samples(samples: array) -> bytes:
    if sys.byteorder != "little":
        samples.byteswap()
    return samples.tobytes()


def samples_from_pcm(pcm: bytes) -> array:
    usable = len(pcm) - (len(pcm) % 2)
    samples = array("h", pcm[:usable])
    if sys.byteorder != "little":
        samples.byteswap()
    return samples


@lru_cache(maxsize=2048)
def synthesize_word(word: str) -> bytes:
    """A voiced burst per syllable-ish group, pitch from the word's hash, then a short gap."""
    syllables = max(1, sum(ch in "aeiouy" for ch in word.lower()))
    voiced_ms = min(90 * syllables, 600)
    f0 = 110.0 + zlib.crc32(word.encode("utf-8", "surrogatepass")) % 90
    n = SAMPLE_RATE * voiced_ms // 1000
    ramp = SAMPLE_RATE * 10 // 1000
    out = array("h", bytes(2 * (n + SAMPLE_RATE * _GAP_MS // 1000)))
    w = 2 * math.pi * f0 / SAMPLE_RATE
    for i in range(n):
        env = min(1.0, i / ramp, (n - i) / ramp)
        s = math.sin(w * i) + 0.5 * math.sin(2 * w * i) + 0.25 * math.sin(3 * w * i)
        out[i] = int(32767 * _AMPLITUDE * env * s / 1.75)
    return _pcm_from_samples(out)


def synthesize(text: str) -> bytes:
    return b"".join(synthesize_word(w) for w in text.split())


def rms_level(samples: array, start: int, end: int) -> float:
    """Root mean square of samples[start:end], 0..1 of full scale."""
    if end <= start:
        return 0.0
    chunk = samples[start:end]
    return math.sqrt(sum(s * s for s in chunk) / len(chunk)) / 32768.0


@attrs.frozen
class VadSettings:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    @property
    def level(self) -> float:
        """RMS level (0..1) above which a 20 ms frame counts as speech: -28 dBFS at threshold 1."""
        return max(0.002, self.threshold * 0.04)


@attrs.frozen
class SpeechStarted:
    audio_start_ms: int


@attrs.frozen
class SpeechStopped:
    audio_end_ms: int
    #: The speech, from ``audio_start_ms`` to ``audio_end_ms``.
    pcm: bytes


class Vad:
    """Energy VAD over a stream of PCM16: speech starts at the first loud frame, stops after
    ``silence_duration_ms`` of quiet. Times are ms since the first appended sample.

    ``sample_rate``: of the stream (24 kHz, the realtime API's; Gemini's is 16 kHz), a multiple
    of 50 Hz so that a 20 ms frame is whole samples."""

    #: Audio kept while waiting for speech: enough for the prefix padding.
    _MAX_IDLE_MS = 2000
    #: The longest utterance kept; longer speech is cut (stop is forced) there.
    MAX_SPEECH_MS = 5 * 60 * 1000

    def __init__(self, settings: VadSettings, sample_rate: int = SAMPLE_RATE) -> None:
        if sample_rate <= 0 or sample_rate * FRAME_MS % 1000:
            raise ValueError(f"the VAD needs whole samples in {FRAME_MS} ms, not {sample_rate} Hz")
        self.settings = settings
        self.sample_rate = sample_rate
        self._frame_bytes = 2 * (sample_rate * FRAME_MS // 1000)
        self._pending = b""  # an odd trailing byte, or a partial frame
        self._buffer = bytearray()  # audio since _buffer_start_ms
        self._buffer_start_ms = 0
        self._pos_ms = 0  # ms of audio analysed so far
        self._speaking = False
        self._speech_start_ms = 0
        self._last_voice_end_ms = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    def feed(self, pcm: bytes) -> list[SpeechStarted | SpeechStopped]:
        data = self._pending + pcm
        frame_bytes = self._frame_bytes
        usable = len(data) - len(data) % frame_bytes
        self._pending = data[usable:]
        events: list[SpeechStarted | SpeechStopped] = []
        s = self.settings
        for off in range(0, usable, frame_bytes):
            frame = data[off:off + frame_bytes]
            samples = samples_from_pcm(frame)
            loud = rms_level(samples, 0, len(samples)) > s.level
            frame_start = self._pos_ms
            self._pos_ms += FRAME_MS
            self._buffer += frame
            if not self._speaking:
                if loud:
                    self._speaking = True
                    self._speech_start_ms = max(self._buffer_start_ms, frame_start - s.prefix_padding_ms)
                    self._last_voice_end_ms = self._pos_ms
                    events.append(SpeechStarted(self._speech_start_ms))
                else:
                    self._trim(self._pos_ms - self._MAX_IDLE_MS)
                continue
            if loud:
                self._last_voice_end_ms = self._pos_ms
            too_long = self._pos_ms - self._speech_start_ms >= self.MAX_SPEECH_MS
            if self._pos_ms - self._last_voice_end_ms >= s.silence_duration_ms or too_long:
                end = self._pos_ms if too_long else self._last_voice_end_ms
                events.append(SpeechStopped(end, self._slice(self._speech_start_ms, end)))
                self._speaking = False
                self._trim(end)
        return events

    def flush(self) -> list[SpeechStopped]:
        """The stream ended (the microphone is off): speech in progress stops at its last loud
        frame; a partial frame is dropped."""
        self._pending = b""
        if not self._speaking:
            return []
        end = self._last_voice_end_ms
        self._speaking = False
        stopped = SpeechStopped(end, self._slice(self._speech_start_ms, end))
        self._trim(end)
        return [stopped]

    def _bytes(self, ms: int) -> int:
        return 2 * (ms * self.sample_rate // 1000)

    def _slice(self, start_ms: int, end_ms: int) -> bytes:
        a = self._bytes(start_ms - self._buffer_start_ms)
        b = self._bytes(end_ms - self._buffer_start_ms)
        return bytes(self._buffer[max(0, a):max(0, b)])

    def _trim(self, keep_from_ms: int) -> None:
        if keep_from_ms <= self._buffer_start_ms:
            return
        cut = self._bytes(keep_from_ms - self._buffer_start_ms)
        del self._buffer[:cut]
        self._buffer_start_ms = keep_from_ms
