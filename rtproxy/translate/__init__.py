"""Sans-IO translators between a client protocol and a provider protocol.

:class:`RealtimeGeminiTranslator` serves an OpenAI Realtime client (GA or beta) from Gemini Live
(:mod:`.realtime_gemini`); :class:`RealtimeXaiNormalizer` serves a GA client from xAI's Grok Voice,
whose events are GA's with quirks (:mod:`.realtime_xai`); :mod:`.audio` holds the Gemini
translator's resampling and G.711, :mod:`.realtime_session` the session ⇄ setup mapping and its
tables, :mod:`.realtime_items` client items and response requests as Gemini content,
:mod:`.gemini_usage` the usage mapping; both answer with an :class:`~.output.Output`. Nothing here does I/O or imports the rest of rtproxy;
numpy is imported on first use of the audio code.
"""

from .output import Output
from .realtime_gemini import MAX_PRE_SETUP_BYTES, MAX_RECONNECT_BACKLOG_BYTES, RealtimeGeminiTranslator
from .realtime_xai import RealtimeXaiNormalizer

__all__ = ["MAX_PRE_SETUP_BYTES", "MAX_RECONNECT_BACKLOG_BYTES", "Output", "RealtimeGeminiTranslator",
           "RealtimeXaiNormalizer"]
