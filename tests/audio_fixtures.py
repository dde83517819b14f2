"""Audio for tests, PCM16 24 kHz mono: speech-like bursts, silence, and spoken sentences."""

from __future__ import annotations

import base64
import gzip
import math
import os
import re
from array import array
from pathlib import Path

RATE = 24000


def tone(ms: int, freq: float = 180.0, amplitude: float = 0.4) -> bytes:
    n = RATE * ms // 1000
    samples = array("h", (int(32767 * amplitude * math.sin(2 * math.pi * freq * i / RATE)
                              * (0.6 + 0.4 * math.sin(2 * math.pi * 4 * i / RATE))) for i in range(n)))
    return samples.tobytes()


def silence(ms: int) -> bytes:
    return bytes(2 * (RATE * ms // 1000))


def utterance(speech_ms: int = 900, lead_ms: int = 300, tail_ms: int = 800) -> bytes:
    """Silence, a speech-like burst, then enough silence for the VAD to end the turn."""
    return silence(lead_ms) + tone(speech_ms) + silence(tail_ms)


#: Sentences spoken by espeak-ng in the offline model's voice, recorded once (``tests/speech/``):
#: espeak-ng's output varies from one synthesis to the next (same length, other samples), and
#: a test's input must not. ``RTPROXY_SPEECH=write`` records them again.
SPEECH_DIR = Path(__file__).with_name("speech")


def speech(sentence: str) -> bytes:
    """``sentence`` as the offline model's voice says it (PCM16 24 kHz), from its recording."""
    path = SPEECH_DIR / (re.sub(r"[^a-z0-9]+", "-", sentence.lower()).strip("-") + ".pcm.gz")
    if path.exists() and os.environ.get("RTPROXY_SPEECH") != "write":
        return gzip.decompress(path.read_bytes())
    from rtproxy.offline.voice import Voice

    pcm = b"".join(pcm for _, pcm in Voice().speak(sentence))
    SPEECH_DIR.mkdir(exist_ok=True)
    path.write_bytes(gzip.compress(pcm, mtime=0))
    return pcm


def said(sentence: str, lead_ms: int = 300, tail_ms: int = 800) -> bytes:
    """Silence, ``sentence`` (recorded in the offline model's voice), silence."""
    return silence(lead_ms) + speech(sentence) + silence(tail_ms)


def append_events(pcm: bytes, chunk_ms: int = 40) -> list[dict[str, str]]:
    step = RATE * 2 * chunk_ms // 1000
    return [{"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i:i + step]).decode()}
            for i in range(0, len(pcm), step)]
