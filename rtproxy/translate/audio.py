"""Audio between an OpenAI Realtime client and Gemini Live: resampling and G.711. No I/O.

OpenAI Realtime clients send PCM16 at 24 kHz (GA ``audio/pcm``, beta ``pcm16``) or G.711 μ-law /
A-law at 8 kHz (``audio/pcmu`` / ``audio/pcma``, ``g711_ulaw`` / ``g711_alaw``). Gemini Live takes
PCM16 at 16 kHz, labelled ``audio/pcm;rate=16000``, and answers PCM16 at 24 kHz
(protocol/gemini-live.md §5). So:

* client → Gemini: 24 kHz → 16 kHz (a 2/3 polyphase resampler), or G.711 decoded, then
  8 kHz → 16 kHz (2/1);
* Gemini → client: 24 kHz passed as is, or 24 kHz → 8 kHz (1/3) and G.711 encoded.

:class:`Resampler` is a causal polyphase FIR (windowed sinc, Kaiser window): the rational
resampler ``up/down`` of textbook DSP, with the zero-stuffed samples never multiplied. It keeps its
history between chunks, so a stream cut into chunks of any size gives exactly the samples the
whole stream gives, and its length is exact: after ``n`` input samples it has produced
``ceil(n * up / down)`` output samples (1.5 s at 24 kHz, 36,000 samples, become 24,000 samples at
16 kHz: 48,000 bytes). The price of causality is a delay of half the filter, about 1.5 ms for
24 → 16 kHz, against a stream that never needs flushing at a commit.

numpy is imported on first use, so importing this module costs nothing to a gateway that never
translates.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

#: The wire formats an OpenAI Realtime session can name (beta names; GA formats map onto them).
AudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]
#: OpenAI's PCM16 rate; Gemini's output rate too.
CLIENT_PCM_RATE = 24000
#: G.711's rate.
G711_RATE = 8000
#: What Gemini Live takes (and the label its audio frames get).
GEMINI_INPUT_RATE = 16000
GEMINI_INPUT_MIME = "audio/pcm;rate=16000"
#: What Gemini Live answers.
GEMINI_OUTPUT_RATE = 24000

#: Filter taps per polyphase branch, by (up, down): enough for a transition band of about 1 kHz
#: and more than 60 dB of stopband (tests/test_translate_realtime_gemini_audio.py measures it).
TAPS_PER_PHASE = {(2, 3): 72, (2, 1): 32, (1, 3): 96}
#: The passband edge as a fraction of the lower Nyquist frequency: 0.9 puts the -6 dB point at
#: 7.2 kHz for 16 kHz output and 3.6 kHz for 8 kHz (G.711 carries 300-3400 Hz).
CUTOFF_FRACTION = 0.9
#: The Kaiser window's beta: about 70 dB of stopband attenuation.
KAISER_BETA = 7.0
#: The filter's coefficients are integers scaled by 2**COEFF_BITS (quantisation noise near
#: -120 dB). With 16-bit samples every product is below 2**37 and every partial sum of at most
#: 96 taps below 2**44, so float64 arithmetic on them is exact in any order: BLAS may block a
#: matrix-vector product differently for different chunk sizes, and the samples must not depend
#: on how the stream was cut (a float32 sum did, by one least significant bit at a .5 boundary).
COEFF_BITS = 20


def _rates(src: int, dst: int) -> tuple[int, int]:
    g = math.gcd(src, dst)
    return dst // g, src // g


@lru_cache(maxsize=8)
def _phases(up: int, down: int, taps_per_phase: int) -> np.ndarray:
    """The filter's polyphase branches, shape ``(up, taps_per_phase)``: branch ``p`` holds
    ``h[p], h[p + up], h[p + 2 up], …`` of a lowpass designed at ``up`` times the input rate,
    with a passband gain of ``up`` (zero-stuffing divides the signal by ``up``), reversed."""
    import numpy as np

    n = taps_per_phase * up
    cutoff = CUTOFF_FRACTION * 0.5 / max(up, down)  # cycles per sample at the upsampled rate
    t = np.arange(n) - (n - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(n, KAISER_BETA)
    h *= up / h.sum()
    h = np.rint(h * (1 << COEFF_BITS))  # integer-valued: see COEFF_BITS
    # branch p, reversed: a window of inputs oldest first meets h[p + up·(taps - 1)] first
    return np.ascontiguousarray(h.reshape(taps_per_phase, up).T[:, ::-1], dtype=np.float64)


#: Consecutive outputs computed as one row of :meth:`Resampler.process`'s matrix product (a
#: multiple of every ``up``): the windows copied for the product overlap less than one per output.
BLOCK_OUTPUTS = 32


@lru_cache(maxsize=16)
def _block_kernel(up: int, down: int, taps_per_phase: int, phase: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """The filter laid out for :data:`BLOCK_OUTPUTS` consecutive outputs, the first with
    ``k mod up == phase``: column ``t`` holds output ``t``'s branch (:func:`_phases`) at row
    ``offsets[t]``, where its window starts within the block's window (zeros elsewhere), scaled
    by ``2**-COEFF_BITS``: a power of two, so every product and partial sum is the integer one
    scaled, exactly, and the output needs no scaling of its own."""
    import numpy as np

    branches = _phases(up, down, taps_per_phase)
    first = phase * down // up
    offsets = tuple((phase + t) * down // up - first for t in range(BLOCK_OUTPUTS))
    kernel = np.zeros((offsets[-1] + taps_per_phase, BLOCK_OUTPUTS), dtype=np.float64)
    for t, at in enumerate(offsets):
        kernel[at:at + taps_per_phase, t] = branches[(phase + t) * down % up]
    kernel *= 1.0 / (1 << COEFF_BITS)
    return kernel, offsets


class Resampler:
    """PCM16 mono at ``src_hz`` → PCM16 mono at ``dst_hz``, chunk by chunk (see the module text).

    Output sample ``k`` sits at input time ``k * down / up`` and is computed from the input
    samples up to that time: ``y[k] = Σ_j h[p + j·up] · x[i - j]`` with ``i = ⌊k·down/up⌋`` and
    ``p = k·down mod up``. A trailing odd byte is kept for the next chunk."""

    def __init__(self, src_hz: int, dst_hz: int) -> None:
        self.up, self.down = _rates(src_hz, dst_hz)
        taps = TAPS_PER_PHASE.get((self.up, self.down))
        if taps is None:
            raise ValueError(f"no filter for {src_hz} Hz → {dst_hz} Hz")
        self.taps = taps
        self.reset()

    def reset(self) -> None:
        import numpy as np

        #: The last ``taps - 1`` input samples (zeros before the stream began).
        self._history = np.zeros(self.taps - 1, dtype=np.float64)
        #: Input samples consumed so far, and output samples produced.
        self._n_in = 0
        self._n_out = 0
        self._odd = b""

    def process(self, pcm: bytes) -> bytes:
        import numpy as np

        if self._odd:
            pcm = self._odd + pcm
        usable = len(pcm) - len(pcm) % 2
        self._odd = pcm[usable:]
        if not usable:
            return b""
        keep = self.taps - 1
        # ext[m + taps - 1] is input sample n_in + m (float64: the history's type)
        ext = np.concatenate((self._history, np.frombuffer(pcm, dtype="<i2", count=usable // 2)))
        n_in = self._n_in + usable // 2
        last = -(-n_in * self.up // self.down)  # ceil: outputs whose input sample has arrived
        count = last - self._n_out
        step = ext.strides[0]
        # Output k's window of inputs, oldest first, is ext[at : at + taps] with
        # at = ⌊k·down/up⌋ - n_in (the x index of its newest sample). BLOCK_OUTPUTS consecutive
        # outputs read one window of `width` inputs, BLOCK_OUTPUTS·down/up further on for each
        # block: each block is one row of a matrix product with the laid-out filter, exact
        # (integers in float64, see COEFF_BITS).
        kernel, offsets = _block_kernel(self.up, self.down, self.taps, self._n_out % self.up)
        at = self._n_out * self.down // self.up - self._n_in
        blocks = count // BLOCK_OUTPUTS
        rest = count - blocks * BLOCK_OUTPUTS
        y: np.ndarray
        if blocks:
            windows = np.ndarray((blocks, kernel.shape[0]), np.float64, buffer=ext, offset=at * step,
                                 strides=(BLOCK_OUTPUTS * self.down // self.up * step, step))
            y = (np.ascontiguousarray(windows) @ kernel).ravel()
        if rest:
            start = at + blocks * BLOCK_OUTPUTS * self.down // self.up
            width = offsets[rest - 1] + self.taps
            tail = ext[start:start + width] @ kernel[:width, :rest]
            y = np.concatenate((y, tail)) if blocks else tail
        self._history = ext[ext.size - keep:]
        self._n_in, self._n_out = n_in, last
        if not count:
            return b""
        np.rint(y, out=y)  # (the kernel is scaled already)
        np.maximum(y, -32768, out=y)
        np.minimum(y, 32767, out=y)
        return y.astype("<i2").tobytes()

    @property
    def consumed(self) -> int:
        """Input samples taken so far."""
        return self._n_in

    @property
    def produced(self) -> int:
        """Output samples given so far: always ``ceil(consumed * up / down)``."""
        return self._n_out


# -- G.711 (ITU-T G.711, the classic Sun g711.c algorithms, vectorised as tables) ----------------

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


@lru_cache(maxsize=1)
def _ulaw_decode_table() -> np.ndarray:
    import numpy as np

    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype("<i2")


@lru_cache(maxsize=1)
def _alaw_decode_table() -> np.ndarray:
    import numpy as np

    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype("<i2")


@lru_cache(maxsize=1)
def _ulaw_encode_table() -> np.ndarray:
    """The μ-law byte of every int16 value, indexed by the value as uint16."""
    import numpy as np

    s = np.arange(65536, dtype=np.int32).astype(np.uint16).astype(np.int16).astype(np.int32)
    sign = np.where(s < 0, 0x80, 0)
    mag = np.minimum(np.abs(s), _ULAW_CLIP) + _ULAW_BIAS
    exponent = np.floor(np.log2(mag >> 7 | 1)).astype(np.int32)  # position of the top bit above 7
    exponent = np.minimum(exponent, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    table: np.ndarray = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)
    return table


@lru_cache(maxsize=1)
def _alaw_encode_table() -> np.ndarray:
    import numpy as np

    s = np.arange(65536, dtype=np.int32).astype(np.uint16).astype(np.int16).astype(np.int32) >> 3
    mask = np.where(s >= 0, 0xD5, 0x55)
    v = np.where(s >= 0, s, -s - 1)
    seg_end = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
    seg = np.searchsorted(seg_end, v)  # first segment whose end is >= v
    shifted = np.where(seg < 2, v >> 1, v >> np.maximum(seg, 1)) & 0x0F
    aval = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | shifted)
    table: np.ndarray = ((aval ^ mask) & 0xFF).astype(np.uint8)
    return table


def ulaw_decode(data: bytes) -> bytes:
    """G.711 μ-law bytes → PCM16 little-endian, one sample per byte."""
    import numpy as np

    return bytes(_ulaw_decode_table()[np.frombuffer(data, dtype=np.uint8)].tobytes())


def alaw_decode(data: bytes) -> bytes:
    import numpy as np

    return bytes(_alaw_decode_table()[np.frombuffer(data, dtype=np.uint8)].tobytes())


def ulaw_encode(pcm: bytes) -> bytes:
    """PCM16 little-endian → G.711 μ-law (a trailing odd byte is ignored)."""
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<u2", count=len(pcm) // 2)
    return bytes(_ulaw_encode_table()[samples].tobytes())


def alaw_encode(pcm: bytes) -> bytes:
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<u2", count=len(pcm) // 2)
    return bytes(_alaw_encode_table()[samples].tobytes())


# -- the two directions of a session --------------------------------------------------------------


class InputConverter:
    """A client's input audio (its session format) → PCM16 16 kHz for Gemini, stateful across
    the appends of a stream. :meth:`reset` when the format changes or the stream restarts."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._resampler = Resampler(CLIENT_PCM_RATE if fmt == "pcm16" else G711_RATE, GEMINI_INPUT_RATE)

    def reset(self) -> None:
        self._resampler.reset()

    def convert(self, data: bytes) -> bytes:
        if self.format == "g711_ulaw":
            data = ulaw_decode(data)
        elif self.format == "g711_alaw":
            data = alaw_decode(data)
        return self._resampler.process(data)

    @staticmethod
    def input_ms(fmt: AudioFormat, nbytes: int) -> float:
        """How long ``nbytes`` of client audio in ``fmt`` lasts, in milliseconds."""
        return nbytes / (CLIENT_PCM_RATE * 2 / 1000) if fmt == "pcm16" else nbytes / (G711_RATE / 1000)


def convert_once(fmt: AudioFormat, data: bytes) -> bytes:
    """A whole clip (an ``input_audio`` content part) → PCM16 16 kHz, with a fresh resampler."""
    return InputConverter(fmt).convert(data)


class OutputConverter:
    """Gemini's PCM16 24 kHz → the client's output format. PCM16 needs nothing (the translator
    passes the base64 through); G.711 is resampled to 8 kHz and encoded, stateful across the
    deltas of one response (:meth:`reset` between responses)."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._resampler = Resampler(GEMINI_OUTPUT_RATE, G711_RATE) if fmt != "pcm16" else None

    @property
    def passthrough(self) -> bool:
        return self._resampler is None

    def reset(self) -> None:
        if self._resampler is not None:
            self._resampler.reset()

    def convert(self, pcm24k: bytes) -> bytes:
        if self._resampler is None:
            return pcm24k
        pcm8k = self._resampler.process(pcm24k)
        return ulaw_encode(pcm8k) if self.format == "g711_ulaw" else alaw_encode(pcm8k)
