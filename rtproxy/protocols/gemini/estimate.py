"""Usage estimated from what was relayed, for a Gemini turn whose ``usageMetadata`` never came
(the client left, the upstream went away, or Google sent none for it): the provider bills it all
the same (protocol/gemini-live.md §8.2, "estimate it, and mark the estimate as such").

The same rules as the Realtime estimate (:mod:`rtproxy.spend.estimate`), at Gemini's rates:

- audio: :data:`AUDIO_IN_TOKENS_PER_S` in (Google's tokenisation of audio it hears, Gemini
  tokens docs), :data:`AUDIO_OUT_TOKENS_PER_S` out (what Live models bill per second spoken; the
  offline model bills the same rates); input is PCM16 at 16 kHz (what the SDKs send), output
  PCM16 at 24 kHz (all Gemini speaks); the byte counts are base64 frames, JSON envelope included
  (a few percent high). With no output audio relayed, the output transcript's characters at the
  Realtime estimate's speaking rate;
- text: :data:`~rtproxy.spend.estimate.CHARS_PER_TOKEN`;
- the conversation so far, billed again with every turn: the previous reported usage's input
  and output, as uncached input.
"""

from __future__ import annotations

import math
from typing import Any

from ...spend.estimate import CHARS_PER_TOKEN, TRANSCRIPT_CHARS_PER_S

#: Tokens per second of audio heard, and of audio spoken.
AUDIO_IN_TOKENS_PER_S = 32
AUDIO_OUT_TOKENS_PER_S = 25
#: PCM16 mono at 16 kHz, the input rate the SDKs send and the models hear natively.
INPUT_PCM_BYTES_PER_S = 32_000
#: PCM16 mono at 24 kHz, Gemini's only output format.
OUTPUT_PCM_BYTES_PER_S = 48_000


def _text_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN) if chars > 0 else 0


def _audio_tokens(b64_bytes: int, pcm_bytes_per_s: int, tokens_per_s: int) -> int:
    return math.ceil(b64_bytes * 3 / 4 / pcm_bytes_per_s * tokens_per_s) if b64_bytes > 0 else 0


def _int(d: Any, key: str) -> int:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def estimate_turn_usage(*, output_text_chars: int = 0, output_transcript_chars: int = 0,
                        output_audio_b64_bytes: int = 0, input_text_chars: int = 0, input_audio_b64_bytes: int = 0,
                        previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """A record ``usage`` object (the shape :func:`~.usage.openai_usage` gives) for one turn."""
    out_text = _text_tokens(output_text_chars)
    if output_audio_b64_bytes > 0:
        out_audio = _audio_tokens(output_audio_b64_bytes, OUTPUT_PCM_BYTES_PER_S, AUDIO_OUT_TOKENS_PER_S)
    else:
        out_audio = math.ceil(output_transcript_chars / TRANSCRIPT_CHARS_PER_S * AUDIO_OUT_TOKENS_PER_S)
    prev = previous or {}
    prev_in, prev_out = prev.get("input_token_details"), prev.get("output_token_details")
    in_text = _text_tokens(input_text_chars) + _int(prev_in, "text_tokens") + _int(prev_out, "text_tokens")
    in_audio = (_audio_tokens(input_audio_b64_bytes, INPUT_PCM_BYTES_PER_S, AUDIO_IN_TOKENS_PER_S)
                + _int(prev_in, "audio_tokens")
                + _int(prev_out, "audio_tokens"))
    in_image = _int(prev_in, "image_tokens")
    return {
        "input_tokens": in_text + in_audio + in_image,
        "output_tokens": out_text + out_audio,
        "total_tokens": in_text + in_audio + in_image + out_text + out_audio,
        "input_token_details": {"text_tokens": in_text, "audio_tokens": in_audio, "image_tokens": in_image,
                                "cached_tokens": 0,
                                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }
