"""Usage estimated from what was relayed, for a response the provider never reported.

When a client leaves with a response in flight and the provider sends no ``response.done``
within the settle window (upstream gone, window over), the provider still bills that response.
The gateway then bills an estimate, built here from what it relayed, in the shape of a
``response.done`` usage object so the same prices apply:

- output text: characters of the text deltas relayed, at :data:`CHARS_PER_TOKEN`;
- output audio: the base64 audio deltas relayed (their frames' bytes, JSON envelope included: a
  few percent high) → PCM16 24 kHz bytes → seconds → :data:`AUDIO_OUT_TOKENS_PER_S`; with no audio
  relayed, the audio transcript's characters at :data:`TRANSCRIPT_CHARS_PER_S`;
- input: what the client sent since the previous response (typed text at
  :data:`CHARS_PER_TOKEN`, appended audio at :data:`AUDIO_IN_TOKENS_PER_S`) plus the conversation
  so far, which every response is billed again: the previous response's input and output tokens
  (as the provider reported them), as uncached input.

The ratios are the provider's published rules of thumb for its realtime models (about a token per
four characters of English text, 10 tokens per second of input audio, 20 per second of output).
"""

from __future__ import annotations

import math
from typing import Any

CHARS_PER_TOKEN = 4
AUDIO_IN_TOKENS_PER_S = 10
AUDIO_OUT_TOKENS_PER_S = 20
#: PCM16 mono at 24 kHz, the Realtime API's default audio format.
PCM_BYTES_PER_S = 48_000
#: Speaking rate used when only the transcript of the audio is known.
TRANSCRIPT_CHARS_PER_S = 15


def _text_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN) if chars > 0 else 0


def _b64_seconds(b64_bytes: int) -> float:
    return (b64_bytes * 3 / 4) / PCM_BYTES_PER_S


def _int(d: Any, key: str) -> int:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def estimate_usage(*, output_text_chars: int = 0, output_transcript_chars: int = 0, output_audio_b64_bytes: int = 0,
                   input_text_chars: int = 0, input_audio_b64_bytes: int = 0,
                   previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """A usage object (``response.done`` shape) for one unreported response."""
    out_text = _text_tokens(output_text_chars)
    if output_audio_b64_bytes > 0:
        out_audio = math.ceil(_b64_seconds(output_audio_b64_bytes) * AUDIO_OUT_TOKENS_PER_S)
    elif output_transcript_chars > 0:
        out_audio = math.ceil(output_transcript_chars / TRANSCRIPT_CHARS_PER_S * AUDIO_OUT_TOKENS_PER_S)
    else:
        out_audio = 0
    prev = previous or {}
    prev_in, prev_out = prev.get("input_token_details"), prev.get("output_token_details")
    in_text = (_text_tokens(input_text_chars) + _int(prev_in, "text_tokens") + _int(prev_out, "text_tokens"))
    in_audio = (math.ceil(_b64_seconds(input_audio_b64_bytes) * AUDIO_IN_TOKENS_PER_S)
                + _int(prev_in, "audio_tokens") + _int(prev_out, "audio_tokens"))
    return {
        "total_tokens": in_text + in_audio + out_text + out_audio,
        "input_tokens": in_text + in_audio,
        "output_tokens": out_text + out_audio,
        "input_token_details": {"text_tokens": in_text, "audio_tokens": in_audio, "cached_tokens": 0,
                                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0}},
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }
