"""Band-limited resampling of PCM16 mono (numpy's FFT), for the offline model's speech.

The recognizer wants 16 kHz, espeak-ng speaks at 22.05 kHz and the realtime API carries 24 kHz.
Linear interpolation aliases the 8–11 kHz band into the speech band, and pocketsphinx hears that
as noise (measured: "what is the weather in every" for "… in Paris"); cutting the spectrum does not.
"""

from __future__ import annotations

import numpy as np


def resample(pcm: bytes, src_hz: int, dst_hz: int) -> bytes:
    """PCM16 little-endian mono at ``src_hz`` → the same sound at ``dst_hz``."""
    x = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    if src_hz == dst_hz or x.size == 0:
        return x.astype("<i2").tobytes()
    n = round(x.size * dst_hz / src_hz)
    spectrum = np.fft.rfft(x)
    kept = np.zeros(n // 2 + 1, dtype=complex)
    k = min(kept.size, spectrum.size)
    kept[:k] = spectrum[:k]
    y = np.fft.irfft(kept, n) * (n / x.size)
    return np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()
