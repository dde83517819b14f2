"""Audio for tests, PCM16 24 kHz mono: speech-like bursts, silence, and spoken sentences."""

from __future__ import annotations

import base64
import math
from array import array

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


def said(sentence: str, lead_ms: int = 300, tail_ms: int = 800) -> bytes:
    """Silence, ``sentence`` spoken by espeak-ng in the offline model's voice, silence."""
    from rtproxy.offline.voice import Voice

    return silence(lead_ms) + b"".join(pcm for _, pcm in Voice().speak(sentence)) + silence(tail_ms)


def append_events(pcm: bytes, chunk_ms: int = 40) -> list[dict[str, str]]:
    step = RATE * 2 * chunk_ms // 1000
    return [{"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i:i + step]).decode()}
            for i in range(0, len(pcm), step)]
