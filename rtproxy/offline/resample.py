"""Band-limited resampling of PCM16 mono (numpy's FFT), for the offline model's speech.

The recognizer wants 16 kHz, espeak-ng speaks at 22.05 kHz and the realtime API carries 24 kHz.
Linear interpolation aliases the 8–11 kHz band into the speech band, and pocketsphinx hears that
as noise (measured: "what is the weather in every" for "… in Paris"); cutting the spectrum does not.
"""

from __future__ import annotations

import math

import numpy as np


def _smooth_at_least(n: int) -> int:
    """The least 5-smooth number (2^a 3^b 5^c) at least ``n``."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def resample(pcm: bytes, src_hz: int, dst_hz: int) -> bytes:
    """PCM16 little-endian mono at ``src_hz`` → the same sound at ``dst_hz``.

    The signal is padded with silence to a length whose transforms both ways are fast (a
    multiple of ``src/gcd`` by a 5-smooth factor: the FFT of an arbitrary length can take seconds
    for a long reply; this takes milliseconds), and the result cut back to its exact length."""
    x = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    if src_hz == dst_hz or x.size == 0:
        return x.astype("<i2").tobytes()
    n = round(x.size * dst_hz / src_hz)
    g = math.gcd(src_hz, dst_hz)
    step_in, step_out = src_hz // g, dst_hz // g
    k = _smooth_at_least(-(-x.size // step_in))
    padded_in, padded_out = k * step_in, k * step_out
    spectrum = np.fft.rfft(x, padded_in)
    kept = np.zeros(padded_out // 2 + 1, dtype=complex)
    m = min(kept.size, spectrum.size)
    kept[:m] = spectrum[:m]
    y = np.fft.irfft(kept, padded_out)[:n] * (padded_out / padded_in)
    return np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()
