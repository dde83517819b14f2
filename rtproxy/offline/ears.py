"""The offline model's ears: pocketsphinx (its wheel carries a US-English model), loaded on first use.

The decision between the grammar's sentence and the general model's, the voiced part and the
transcript's writing are :mod:`rtproxy.offline.hearing`'s (pure functions, unit- and
mutation-tested); this is the I/O around them: two decoders, each fed the same utterance.

Decoding costs 0.3–1 s of CPU per utterance here, so the model's server runs :meth:`Ears.hear`
in a worker thread (:mod:`rtproxy.offline.server`), one at a time: a decoder is not thread-safe.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from typing import Any

from .audio import SAMPLE_RATE
from .hearing import MAX_UTTERANCE_MS, RECOGNIZER_HZ, choose, jsgf, transcript, voiced_part
from .resample import resample

log = logging.getLogger("rtproxy.offline")


class Ears:
    """PCM16 24 kHz mono → a transcript, by pocketsphinx."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grammar: Any = None
        self._general: Any = None

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("pocketsphinx") is not None

    def _load(self) -> None:
        import os
        import tempfile

        from pocketsphinx import Decoder  # type: ignore[import-untyped]

        self._general = Decoder(samprate=RECOGNIZER_HZ, cmn="batch", loglevel="FATAL")
        fd, path = tempfile.mkstemp(suffix=".gram")  # pocketsphinx reads a grammar from a file only
        try:
            with os.fdopen(fd, "w") as f:
                f.write(jsgf())
            self._grammar = Decoder(samprate=RECOGNIZER_HZ, cmn="batch", jsgf=path, loglevel="FATAL")
        finally:
            os.unlink(path)
        log.info("offline model hearing: pocketsphinx (grammar + general US-English model)")

    @staticmethod
    def _decode(decoder: Any, pcm16k: bytes) -> tuple[str, float]:
        decoder.start_utt()
        decoder.process_raw(pcm16k, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return (hyp.hypstr, float(hyp.score)) if hyp is not None else ("", 0.0)

    def hear(self, pcm: bytes) -> str:
        """The transcript of one utterance (PCM16 24 kHz); ``""`` when nothing was recognized."""
        pcm = pcm[: MAX_UTTERANCE_MS * SAMPLE_RATE * 2 // 1000]
        with self._lock:
            if self._general is None:
                self._load()
            pcm16k = voiced_part(resample(pcm, SAMPLE_RATE, RECOGNIZER_HZ))
            if not pcm16k:
                return ""
            return transcript(choose(self._decode(self._grammar, pcm16k), self._decode(self._general, pcm16k)))
