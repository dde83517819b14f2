"""Gemini's ``usageMetadata`` in the shape every spend record's ``usage`` has (OpenAI's
``response.done`` usage), so that one pricing function prices every protocol by modality
(protocol/gemini-live.md §4.2, §8.2, §11.1).

- input: ``promptTokenCount`` (cached tokens included) split by ``promptTokensDetails``: TEXT and
  DOCUMENT as text, AUDIO as audio, IMAGE and VIDEO as image; ``toolUsePromptTokenCount`` is folded
  into input text (it is billed as input, and has no OpenAI counterpart);
- cached: ``cachedContentTokenCount`` split by ``cacheTokensDetails``;
- output: ``responseTokenCount`` (Vertex: ``candidatesTokenCount``) split by
  ``responseTokensDetails`` (Vertex: ``candidatesTokensDetails``), plus ``thoughtsTokenCount``
  as output text (Google bills thinking at the output text rate);
- ``total_tokens``: ``totalTokenCount`` as reported, else the sum.

Proto3 JSON drops zero counts, so a missing count is 0; a total larger than its details explain
(details missing or partial) has its remainder put where it most likely is: an input remainder to
text, a cache remainder text first (the cache holds the instructions and history first), an output remainder to
the session's response modality (an AUDIO session's unexplained output is audio: billing it as
text is the under-billing of §11.1). Each count is read under both spellings.
"""

from __future__ import annotations

from typing import Any

from .frames import field

#: Gemini modalities → the record's token buckets.
_INPUT_BUCKET = {"TEXT": "text", "DOCUMENT": "text", "AUDIO": "audio", "IMAGE": "image", "VIDEO": "image"}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _split(details: Any) -> dict[str, int]:
    """``[{modality, tokenCount}]`` → tokens per bucket (an unknown modality counts as text)."""
    out = {"text": 0, "audio": 0, "image": 0}
    for entry in details if isinstance(details, list) else []:
        modality = field(entry, "modality")
        bucket = _INPUT_BUCKET.get(modality, "text") if isinstance(modality, str) else "text"
        out[bucket] += _count(field(entry, "tokenCount"))
    return out


def _with_remainder(split: dict[str, int], total: int, bucket: str) -> tuple[dict[str, int], int]:
    """The split with what ``total`` says beyond it added to ``bucket``; and the total (never less
    than the split's sum)."""
    explained = sum(split.values())
    if total > explained:
        split = {**split, bucket: split[bucket] + total - explained}
    return split, max(total, explained)


def _cached(split: dict[str, int], total: int, inputs: dict[str, int]) -> dict[str, int]:
    """The cached tokens per bucket: each a subset of that bucket's input; what the total says
    beyond the details goes text first, then audio, then image (the order a prompt is cached in:
    instructions and history first), each within the input it is cached from."""
    split = {k: min(v, inputs[k]) for k, v in split.items()}
    rest = min(total, sum(inputs.values())) - sum(split.values())
    for bucket in ("text", "audio", "image"):
        if rest <= 0:
            break
        take = min(rest, inputs[bucket] - split[bucket])
        split[bucket] += take
        rest -= take
    return split


def openai_usage(metadata: dict[str, Any], *, output_modality: str = "TEXT") -> dict[str, Any]:
    """One ``usageMetadata`` as a record's ``usage`` (see the module docstring).
    ``output_modality``: the session's ``responseModalities`` (``"AUDIO"`` or ``"TEXT"``)."""
    inputs, prompt = _with_remainder(_split(field(metadata, "promptTokensDetails")),
                                     _count(field(metadata, "promptTokenCount")), "text")
    tool_use = _count(field(metadata, "toolUsePromptTokenCount"))
    cached_split = _cached(_split(field(metadata, "cacheTokensDetails")),
                           _count(field(metadata, "cachedContentTokenCount")), inputs)
    response_details = field(metadata, "responseTokensDetails")
    if response_details is None:
        response_details = field(metadata, "candidatesTokensDetails")  # Vertex
    response_count = _count(field(metadata, "responseTokenCount")) or _count(field(metadata, "candidatesTokenCount"))
    out_bucket = "audio" if output_modality.upper() == "AUDIO" else "text"
    outputs, response = _with_remainder(_split(response_details), response_count, out_bucket)
    thoughts = _count(field(metadata, "thoughtsTokenCount"))
    input_tokens = prompt + tool_use
    output_tokens = response + thoughts
    total = _count(field(metadata, "totalTokenCount")) or input_tokens + output_tokens
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": total,
        "input_token_details": {
            "text_tokens": inputs["text"] + tool_use,
            "audio_tokens": inputs["audio"],
            "image_tokens": inputs["image"],
            "cached_tokens": sum(cached_split.values()),
            "cached_tokens_details": {"text_tokens": cached_split["text"], "audio_tokens": cached_split["audio"],
                                      "image_tokens": cached_split["image"]},
        },
        # output images (none on Live models today) are billed at the text rate
        "output_token_details": {"text_tokens": outputs["text"] + outputs["image"] + thoughts,
                                 "audio_tokens": outputs["audio"]},
    }
