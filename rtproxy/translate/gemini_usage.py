"""Gemini Live's ``usageMetadata`` → an OpenAI Realtime ``response.done`` usage object. No I/O.

The mapping (protocol/gemini-live.md §4.2, §8.2):

=====================================================  ==========================================
OpenAI ``usage``                                       Gemini ``usageMetadata``
=====================================================  ==========================================
``input_token_details.text_tokens``                    ``promptTokensDetails`` TEXT (+ DOCUMENT),
                                                       the prompt count no detail accounts for,
                                                       and ``toolUsePromptTokenCount`` (by its
                                                       details' modality, else text)
``input_token_details.audio_tokens``                   ``promptTokensDetails`` AUDIO
``input_token_details.image_tokens``                   ``promptTokensDetails`` IMAGE + VIDEO
``input_token_details.cached_tokens``                  ``cachedContentTokenCount``
``input_token_details.cached_tokens_details``          ``cacheTokensDetails`` by modality (the rest
                                                       of the cached count: text)
``output_token_details.text_tokens``                   ``responseTokensDetails`` TEXT, and
                                                       ``thoughtsTokenCount`` (billed as text out)
``output_token_details.audio_tokens``                  ``responseTokensDetails`` AUDIO
``input_tokens`` / ``output_tokens``                   the sums of the details above
``total_tokens``                                       ``input_tokens + output_tokens``
=====================================================  ==========================================

Vertex AI names the output ``candidatesTokenCount`` / ``candidatesTokensDetails``; both spellings
are read (a usage with both takes the AI Studio ones), in lowerCamel and snake_case.

Output the details do not account for (``responseTokenCount`` above the sum of its details, or a
report with no details) goes to ``remainder_output``: the modality the response actually produced
(audio for an audio response), so native-audio output is never billed at the text rate when a
report leaves its details out (pitfall §11.1).

Every count is an int ≥ 0; anything else reads as 0 (proto3 JSON leaves zeros out).
"""

from __future__ import annotations

from typing import Any, Literal

Usage = dict[str, Any]

_IN_MODALITY = {"TEXT": "text", "DOCUMENT": "text", "AUDIO": "audio", "IMAGE": "image", "VIDEO": "image"}
_OUT_MODALITY = {"TEXT": "text", "AUDIO": "audio"}


def _get(meta: dict[str, Any], camel: str) -> Any:
    if camel in meta:
        return meta[camel]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return meta.get(snake)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _details(value: Any, names: dict[str, str], default: str) -> dict[str, int]:
    """``[{modality, tokenCount}]`` → counts by our modality names (an unknown modality: ``default``)."""
    out: dict[str, int] = {}
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, dict):
            continue
        modality = entry.get("modality")
        name = names.get(modality, default) if isinstance(modality, str) else default
        out[name] = out.get(name, 0) + _count(_get(entry, "tokenCount"))
    return out


def is_usage(meta: Any) -> bool:
    """Whether a frame's ``usageMetadata`` says anything (an empty object does not)."""
    return isinstance(meta, dict) and bool(meta)


def openai_usage(meta: dict[str, Any], *, remainder_output: Literal["text", "audio"] = "text",
                 beta: bool = False) -> Usage:
    """One Gemini usage report as OpenAI's ``response.usage`` (GA shape; ``beta`` keeps the same
    fields: the beta SDK model takes the extra ones, and the collector prices them)."""
    prompt = _count(_get(meta, "promptTokenCount"))
    inputs = _details(_get(meta, "promptTokensDetails"), _IN_MODALITY, "text")
    inputs["text"] = inputs.get("text", 0) + max(prompt - sum(inputs.values()), 0)
    tool_use = _count(_get(meta, "toolUsePromptTokenCount"))
    tool_details = _details(_get(meta, "toolUsePromptTokensDetails"), _IN_MODALITY, "text")
    tool_details["text"] = tool_details.get("text", 0) + max(tool_use - sum(tool_details.values()), 0)
    for name, n in tool_details.items():
        inputs[name] = inputs.get(name, 0) + n

    cached_total = _count(_get(meta, "cachedContentTokenCount"))
    cached = _details(_get(meta, "cacheTokensDetails"), _IN_MODALITY, "text")
    cached["text"] = cached.get("text", 0) + max(cached_total - sum(cached.values()), 0)

    if _get(meta, "responseTokenCount") is not None or _get(meta, "responseTokensDetails") is not None:
        response, response_details = _get(meta, "responseTokenCount"), _get(meta, "responseTokensDetails")
    else:  # Vertex AI
        response, response_details = _get(meta, "candidatesTokenCount"), _get(meta, "candidatesTokensDetails")
    outputs = _details(response_details, _OUT_MODALITY, "text")
    remainder = max(_count(response) - sum(outputs.values()), 0)
    outputs[remainder_output] = outputs.get(remainder_output, 0) + remainder
    outputs["text"] = outputs.get("text", 0) + _count(_get(meta, "thoughtsTokenCount"))

    text_in, audio_in, image_in = inputs.get("text", 0), inputs.get("audio", 0), inputs.get("image", 0)
    text_out, audio_out = outputs.get("text", 0), outputs.get("audio", 0)
    cached_text, cached_audio, cached_image = cached.get("text", 0), cached.get("audio", 0), cached.get("image", 0)
    input_tokens = text_in + audio_in + image_in
    output_tokens = text_out + audio_out
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {
            "text_tokens": text_in,
            "audio_tokens": audio_in,
            "image_tokens": image_in,
            "cached_tokens": cached_text + cached_audio + cached_image,
            "cached_tokens_details": {"text_tokens": cached_text, "audio_tokens": cached_audio,
                                      "image_tokens": cached_image},
        },
        "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
    }


def usage_difference(later: Usage, billed: Usage) -> Usage | None:
    """What ``later`` (a response's newer report) adds to what was ``billed`` for it already,
    field by field and never negative, with the totals recomputed; None when it adds nothing.
    A response's reports are snapshots (the last one is its usage), so billing the difference
    makes the response's billed total its last report."""
    def diff(a: Any, b: Any) -> Any:
        if isinstance(a, dict):
            return {k: diff(v, b.get(k) if isinstance(b, dict) else None) for k, v in a.items()}
        return max(_count(a) - _count(b), 0)

    out: Usage = diff(later, billed)
    ind, outd = out["input_token_details"], out["output_token_details"]
    out["input_tokens"] = ind["text_tokens"] + ind["audio_tokens"] + ind["image_tokens"]
    out["output_tokens"] = outd["text_tokens"] + outd["audio_tokens"]
    out["total_tokens"] = out["input_tokens"] + out["output_tokens"]
    details = ind["cached_tokens_details"]
    ind["cached_tokens"] = details["text_tokens"] + details["audio_tokens"] + details["image_tokens"]
    if not out["total_tokens"] and not ind["cached_tokens"]:
        return None
    return out


def add_usage(a: Usage, b: Usage) -> Usage:
    """Two usage objects of this module's shape, summed field by field."""
    def add(x: Any, y: Any) -> Any:
        if isinstance(x, dict):
            return {k: add(v, y.get(k) if isinstance(y, dict) else None) for k, v in x.items()}
        return _count(x) + _count(y)

    total: Usage = add(a, b)
    return total
