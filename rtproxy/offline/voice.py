"""The offline model's voice: espeak-ng (the library and data shipped in ``espeakng-loader``).

Loaded on first use. espeak-ng keeps global state, so one process-wide :class:`Voice` guards it
with a lock. It synthesizes a whole reply at once (prosody across words) and cuts it at the word
boundaries espeak-ng reports, so each transcript delta travels with its own audio. Synthesis
costs about 3 ms per second of speech on the 2-core test machine, cheap enough to run in the
model's streaming step; without the package the model keeps its tone synthesis
(:func:`rtproxy.offline.audio.synthesize_word`).
"""

from __future__ import annotations

import bisect
import ctypes
import importlib.util
import logging
import threading
from functools import lru_cache
from typing import Any

from .audio import SAMPLE_RATE
from .resample import resample

log = logging.getLogger("rtproxy.offline")

#: espeak-ng's voice for the offline model (and for the tests' "users"): recognized best by
#: pocketsphinx of the variants measured (en-us, +m3, +m7, +f2 at 150 and 175 words a minute).
VOICE_NAME = "en-us+f2"
#: Words per minute.
WORDS_PER_MINUTE = 165
#: Longest reply spoken by espeak-ng (characters, about 25 s of speech); a longer one is spoken
#: in tones. Synthesis runs in the model's streaming step, on the event loop (about 0.15 s for
#: this much here), so the echo of a huge message must not be voiced.
MAX_TEXT_CHARS = 400
#: Replies remembered with their audio (the offline model repeats itself).
CACHE_REPLIES = 256

_OUTPUT_SYNCHRONOUS = 2
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_void_p)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class Voice:
    """Text → PCM16 24 kHz mono per word, by espeak-ng."""

    def __init__(self, voice: str = VOICE_NAME, words_per_minute: int = WORDS_PER_MINUTE) -> None:
        self._voice, self._wpm = voice, words_per_minute
        self._lock = threading.Lock()
        self._lib: Any = None
        self._rate = 0
        self._samples: list[bytes] = []
        self._words: list[tuple[int, int]] = []  # (text position, 1-based; sample offset)
        self._callback = _CALLBACK(self._collect)  # kept referenced: espeak-ng holds the pointer

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("espeakng_loader") is not None

    def _load(self) -> None:
        import espeakng_loader  # type: ignore[import-untyped]

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise OSError(f"espeak-ng did not start (espeak_Initialize returned {rate})")
        lib.espeak_SetSynthCallback(self._callback)
        lib.espeak_SetVoiceByName(self._voice.encode())
        lib.espeak_SetParameter(_PARAM_RATE, self._wpm, 0)
        self._lib, self._rate = lib, rate
        log.info("offline model voice: espeak-ng %s at %d Hz", self._voice, rate)

    def _collect(self, wav: Any, n: int, events: Any) -> int:
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
                self._words.append((events[i].text_position, events[i].audio_position * self._rate // 1000))
            i += 1
        if n > 0:
            self._samples.append(ctypes.string_at(wav, 2 * n))
        return 0

    def speak(self, text: str) -> list[tuple[str, bytes]]:
        """``text.split(" ")`` with each word's audio (a word espeak-ng did not voice gets none);
        nothing for a text longer than :data:`MAX_TEXT_CHARS` (the caller speaks it in tones)."""
        if len(text) > MAX_TEXT_CHARS:
            return []
        return list(_spoken(self, text))

    def _synthesize(self, text: str) -> tuple[bytes, list[tuple[int, int]]]:
        with self._lock:
            if self._lib is None:
                self._load()
            self._samples, self._words = [], []
            data = text.encode("utf-8", "replace") + b"\0"  # a lone surrogate a client typed is spoken as "?"
            self._lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            return b"".join(self._samples), list(self._words)


@lru_cache(maxsize=CACHE_REPLIES)
def _spoken(voice: Voice, text: str) -> tuple[tuple[str, bytes], ...]:
    raw, marks = voice._synthesize(text)
    pcm = resample(raw, voice._rate, SAMPLE_RATE)
    words = text.split(" ")
    starts, pos = [], 1  # each word's first character, 1-based as espeak-ng counts
    for word in words:
        starts.append(pos)
        pos += len(word) + 1
    # the sample each word starts at: the first WORD mark inside it (none: it was not voiced);
    # the word a mark falls in is found by bisection (a long reply has hundreds of each)
    cut: list[int | None] = [None] * len(words)
    for text_pos, sample in marks:
        i = bisect.bisect_right(starts, text_pos) - 1
        if i >= 0 and cut[i] is None:
            cut[i] = sample * SAMPLE_RATE // voice._rate
    out, total = [], len(pcm) // 2
    voiced = [i for i, c in enumerate(cut) if c is not None]
    for n, i in enumerate(voiced):
        start = 0 if n == 0 else cut[i] or 0
        end = cut[voiced[n + 1]] or 0 if n + 1 < len(voiced) else total
        out.append((i, pcm[2 * start: 2 * end]))
    audio = dict(out)
    return tuple((word, audio.get(i, b"")) for i, word in enumerate(words))
