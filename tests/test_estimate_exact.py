"""The estimate of an unreported response, figure by figure (worked by hand, not by the code)."""

from __future__ import annotations

from typing import Any

import pytest

from rtproxy.spend.estimate import estimate_usage


def usage(in_text: int, in_audio: int, out_text: int, out_audio: int) -> dict[str, Any]:
    return {"total_tokens": in_text + in_audio + out_text + out_audio, "input_tokens": in_text + in_audio,
            "output_tokens": out_text + out_audio,
            "input_token_details": {"text_tokens": in_text, "audio_tokens": in_audio, "cached_tokens": 0,
                                    "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0}},
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio}}


@pytest.mark.parametrize("kwargs, expected", [
    ({}, usage(0, 0, 0, 0)),
    ({"output_text_chars": 1}, usage(0, 0, 1, 0)),  # a started token is a token
    ({"output_text_chars": 4}, usage(0, 0, 1, 0)),
    ({"output_text_chars": 5}, usage(0, 0, 2, 0)),
    ({"output_text_chars": -3}, usage(0, 0, 0, 0)),
    # 64 000 base64 bytes → 48 000 PCM bytes → 1 s → 20 tokens
    ({"output_audio_b64_bytes": 64_000}, usage(0, 0, 0, 20)),
    ({"output_audio_b64_bytes": 64_001}, usage(0, 0, 0, 21)),
    ({"output_audio_b64_bytes": 3_200}, usage(0, 0, 0, 1)),  # 0.05 s → exactly 1 token
    # audio relayed wins over the transcript; without it, 15 characters a second
    ({"output_audio_b64_bytes": 64_000, "output_transcript_chars": 150}, usage(0, 0, 0, 20)),
    ({"output_transcript_chars": 15}, usage(0, 0, 0, 20)),
    ({"output_transcript_chars": 16}, usage(0, 0, 0, 22)),  # 16/15 s × 20 = 21.3 → 22
    ({"output_transcript_chars": 1}, usage(0, 0, 0, 2)),
    # input: typed text, appended audio (10 tokens a second)
    ({"input_text_chars": 9}, usage(3, 0, 0, 0)),
    ({"input_audio_b64_bytes": 64_000}, usage(0, 10, 0, 0)),
    ({"input_audio_b64_bytes": 6_400}, usage(0, 1, 0, 0)),
    ({"input_audio_b64_bytes": 6_401}, usage(0, 2, 0, 0)),
])
def test_each_figure_of_the_estimate(kwargs: dict[str, int], expected: dict[str, Any]) -> None:
    assert estimate_usage(**kwargs) == expected


def test_the_conversation_so_far_is_input_again_from_the_previous_report() -> None:
    previous = {"input_token_details": {"text_tokens": 100, "audio_tokens": 30},
                "output_token_details": {"text_tokens": 7, "audio_tokens": 40}}
    assert estimate_usage(input_text_chars=8, input_audio_b64_bytes=64_000, output_text_chars=4,
                          previous=previous) == usage(100 + 7 + 2, 30 + 40 + 10, 1, 0)


@pytest.mark.parametrize("bad", [None, "x", -5, True, 1.5])
def test_a_previous_report_with_odd_counts_adds_nothing(bad: Any) -> None:
    previous = {"input_token_details": {"text_tokens": bad, "audio_tokens": bad},
                "output_token_details": {"text_tokens": bad, "audio_tokens": 3}}
    assert estimate_usage(previous=previous) == usage(0, 3, 0, 0)
    assert estimate_usage(previous={"input_token_details": "x", "output_token_details": None}) == usage(0, 0, 0, 0)
    assert estimate_usage(previous={}) == usage(0, 0, 0, 0)


def test_the_smallest_amounts_still_count() -> None:
    # found by the mutation run: one base64 byte of audio is a token, and one token reported
    # earlier in the session carries over
    assert estimate_usage(output_audio_b64_bytes=1)["output_token_details"]["audio_tokens"] == 1
    carried = estimate_usage(previous={"input_token_details": {"text_tokens": 1, "audio_tokens": 1},
                                       "output_token_details": {"text_tokens": 1, "audio_tokens": 1}})
    assert carried["input_token_details"]["text_tokens"] == 2 and carried["input_token_details"]["audio_tokens"] == 2
