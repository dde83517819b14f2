"""The translator's audio (rtproxy/translate/audio.py): the polyphase resamplers keep a stream's
duration exactly, keep a tone's frequency, reject what would alias, and give the same samples
however the stream is cut; G.711 matches the ITU reference values and round-trips."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtproxy.translate.audio import (
    InputConverter,
    OutputConverter,
    Resampler,
    alaw_decode,
    alaw_encode,
    convert_once,
    ulaw_decode,
    ulaw_encode,
)


def tone(hz: float, rate: int, seconds: float, amplitude: float = 0.5) -> bytes:
    n = round(rate * seconds)
    t = np.arange(n) / rate
    return (amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def peak_hz(pcm: bytes, rate: int) -> float:
    x = samples(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


# -- duration -----------------------------------------------------------------------------------


def test_one_and_a_half_seconds_at_24k_become_48000_bytes_at_16k() -> None:
    r = Resampler(24000, 16000)
    out = b"".join(r.process(chunk) for chunk in _chunks(tone(440, 24000, 1.5), 960))
    assert len(out) == 48_000


@pytest.mark.parametrize(("src", "dst"), [(24000, 16000), (8000, 16000), (24000, 8000)])
@given(sizes=st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=40))
@settings(max_examples=40, deadline=None)
def test_output_length_is_always_the_input_length_times_the_ratio_rounded_up(src: int, dst: int,
                                                                             sizes: list[int]) -> None:
    r = Resampler(src, dst)
    total_in = total_out = 0
    for size in sizes:
        out = r.process(bytes(2 * size))
        total_in += size
        total_out += len(out) // 2
        assert total_out == math.ceil(total_in * dst / src)
        assert (r.consumed, r.produced) == (total_in, total_out)


def test_an_odd_byte_waits_for_the_next_chunk() -> None:
    pcm = tone(300, 24000, 0.06)
    r = Resampler(24000, 16000)
    out = r.process(pcm[:101]) + r.process(pcm[101:])
    assert out == Resampler(24000, 16000).process(pcm)


# -- chunking invariance ------------------------------------------------------------------------


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(("src", "dst"), [(24000, 16000), (8000, 16000), (24000, 8000)])
@given(cuts=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=30))
@settings(max_examples=30, deadline=None)
def test_any_chunking_gives_the_samples_of_the_whole_stream(src: int, dst: int, cuts: list[int]) -> None:
    pcm = tone(523.25, src, 0.4) + tone(1200, src, 0.3, 0.2)
    whole = Resampler(src, dst).process(pcm)
    r = Resampler(src, dst)
    out, pos = [], 0
    for cut in cuts:
        out.append(r.process(pcm[pos:pos + cut]))
        pos += cut
    out.append(r.process(pcm[pos:]))
    assert b"".join(out) == whole


# -- frequency response ---------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst", "hz"), [
    (24000, 16000, 440.0), (24000, 16000, 3000.0), (24000, 16000, 6500.0),
    (8000, 16000, 440.0), (8000, 16000, 3000.0), (24000, 8000, 440.0), (24000, 8000, 3000.0),
])
def test_a_tone_keeps_its_frequency_and_level(src: int, dst: int, hz: float) -> None:
    out = Resampler(src, dst).process(tone(hz, src, 1.0))
    assert abs(peak_hz(out, dst) - hz) <= 1.5  # the FFT bin is 1 Hz
    steady = samples(out)[dst // 10:]  # past the filter's start
    assert rms(steady) == pytest.approx(0.5 * 32767 / math.sqrt(2), rel=0.03)


@pytest.mark.parametrize(("src", "dst", "hz"), [
    (24000, 16000, 9000.0),   # would fold to 7 kHz
    (24000, 16000, 11000.0),  # would fold to 5 kHz
    (24000, 8000, 5000.0),    # would fold to 3 kHz
    (24000, 8000, 10000.0),   # would fold to 2 kHz
    (8000, 16000, 3000.0),    # its image at 5 kHz would appear
])
def test_what_would_alias_is_attenuated_by_at_least_50_db(src: int, dst: int, hz: float) -> None:
    out = samples(Resampler(src, dst).process(tone(hz, src, 1.0)))[dst // 10:]
    if src < dst:  # upsampling: the wanted tone stays; its image above the old Nyquist must not
        spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
        freqs = np.fft.rfftfreq(out.size, 1 / dst)
        image = spectrum[np.abs(freqs - (src - hz)) < 20].max()
        wanted = spectrum[np.abs(freqs - hz) < 20].max()
        assert 20 * math.log10(wanted / image) >= 50
    else:
        assert 20 * math.log10(0.5 * 32767 / math.sqrt(2) / max(rms(out), 1e-9)) >= 50


def test_it_is_not_a_naive_sample_drop() -> None:
    # a naive 3:2 drop keeps a 9 kHz tone as a loud 7 kHz one; the filter removes it
    out = Resampler(24000, 16000).process(tone(9000, 24000, 0.5))
    assert rms(samples(out)[1600:]) < 40


def test_reset_forgets_the_history() -> None:
    r = Resampler(24000, 16000)
    first = r.process(tone(440, 24000, 0.1))
    r.process(tone(2000, 24000, 0.1))
    r.reset()
    assert r.process(tone(440, 24000, 0.1)) == first


def test_an_unknown_ratio_is_refused() -> None:
    with pytest.raises(ValueError, match="no filter"):
        Resampler(44100, 16000)


# -- G.711 ------------------------------------------------------------------------------------------


def test_ulaw_decodes_the_reference_values() -> None:
    pcm = struct.unpack("<4h", ulaw_decode(bytes([0x00, 0x80, 0xFF, 0x7F])))
    assert pcm == (-32124, 32124, 0, 0)


def test_alaw_decodes_the_reference_values() -> None:
    pcm = struct.unpack("<4h", alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A])))
    assert pcm == (8, -8, 32256, -32256)


@pytest.mark.parametrize(("decode", "encode"), [(ulaw_decode, ulaw_encode), (alaw_decode, alaw_encode)])
def test_every_g711_byte_round_trips(decode, encode) -> None:  # type: ignore[no-untyped-def]
    codes = bytes(range(256))
    back = encode(decode(codes))
    differ = [c for c, b in zip(codes, back, strict=True) if c != b]
    assert differ in ([], [0x7F])  # μ-law's negative zero comes back as its positive zero


@pytest.mark.parametrize(("decode", "encode"), [(ulaw_decode, ulaw_encode), (alaw_decode, alaw_encode)])
def test_g711_quantisation_error_is_small_relative_to_the_signal(decode, encode) -> None:  # type: ignore[no-untyped-def]
    pcm = tone(440, 8000, 0.5, 0.7)
    x, y = samples(pcm), samples(decode(encode(pcm)))
    assert 20 * math.log10(rms(x) / rms(x - y)) > 30  # G.711 gives about 38 dB SNR


def test_ulaw_encode_clips_the_extremes() -> None:
    assert ulaw_encode(struct.pack("<2h", 32767, -32768)) == bytes([0x80, 0x00])


# -- the session's converters -------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "clip"), [
    ("pcm16", tone(440, 24000, 1.5)),
    ("g711_ulaw", ulaw_encode(tone(440, 8000, 1.5))),
    ("g711_alaw", alaw_encode(tone(440, 8000, 1.5))),
])
def test_client_input_becomes_16k_pcm_of_the_same_duration(fmt: str, clip: bytes) -> None:
    conv = InputConverter(fmt)  # type: ignore[arg-type]
    out = b"".join(conv.convert(c) for c in _chunks(clip, 320))
    assert len(out) == 48_000
    assert abs(peak_hz(out, 16000) - 440) <= 1.5
    assert convert_once(fmt, clip) == out  # type: ignore[arg-type]
    assert InputConverter.input_ms(fmt, len(clip)) == pytest.approx(1500)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fmt", "decode"), [("g711_ulaw", ulaw_decode), ("g711_alaw", alaw_decode)])
def test_gemini_output_becomes_g711_at_8k(fmt: str, decode) -> None:  # type: ignore[no-untyped-def]
    conv = OutputConverter(fmt)  # type: ignore[arg-type]
    assert not conv.passthrough
    out = b"".join(conv.convert(c) for c in _chunks(tone(440, 24000, 1.0), 2400))
    assert len(out) == 8000  # one byte per sample at 8 kHz
    assert abs(peak_hz(decode(out), 8000) - 440) <= 1.5


def test_pcm_output_passes_through() -> None:
    conv = OutputConverter("pcm16")
    assert conv.passthrough and conv.convert(b"\x01\x02") == b"\x01\x02"
