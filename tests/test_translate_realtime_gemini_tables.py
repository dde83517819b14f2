"""The translator's mapping tables, one by one: voices, VAD thresholds and modes, modalities and
formats, tools and their schemas, the setup, and Gemini usage → OpenAI usage."""

from __future__ import annotations

from typing import Any

import pytest

from rtproxy.translate.gemini_usage import add_usage, openai_usage, usage_difference
from rtproxy.translate.realtime_items import function_response, image_blob, message_turn, response_metadata
from rtproxy.translate.realtime_session import (
    GEMINI_VOICES,
    OPENAI_TO_GEMINI_VOICE,
    ClientError,
    apply_update,
    build_setup,
    default_config,
    function_declaration,
    gemini_schema,
    gemini_voice,
    realtime_input_config,
    session_object,
    vad_sensitivity,
)

from .test_translate_realtime_gemini_harness import VALIDATORS

GA = default_config("ga")
BETA = default_config("beta")


def ga_update(session: dict[str, Any], current: Any = GA) -> Any:
    return apply_update(current, {"type": "realtime", **session}, dialect="ga", model="gpt-realtime")


def beta_update(session: dict[str, Any]) -> Any:
    return apply_update(BETA, session, dialect="beta", model="gpt-realtime")


def setup(cfg: Any, **kwargs: Any) -> dict[str, Any]:
    return build_setup(cfg, setup_model="models/m", **kwargs)


# -- voices -------------------------------------------------------------------------------------


def test_every_openai_voice_has_a_gemini_voice() -> None:
    assert OPENAI_TO_GEMINI_VOICE == {
        "alloy": "Zephyr", "ash": "Charon", "ballad": "Fenrir", "coral": "Aoede", "echo": "Puck",
        "sage": "Kore", "shimmer": "Leda", "verse": "Orus", "marin": "Aoede", "cedar": "Charon"}
    assert set(OPENAI_TO_GEMINI_VOICE.values()) <= set(GEMINI_VOICES)


@pytest.mark.parametrize(("given", "sent"), [("marin", "Aoede"), ("Kore", "Kore"), ("puck", "Puck"),
                                             ("SULAFAT", "Sulafat")])
def test_a_voice_becomes_the_prebuilt_voice_of_the_setup(given: str, sent: str) -> None:
    cfg = ga_update({"audio": {"output": {"voice": given}}})
    assert gemini_voice(given) == sent
    assert setup(cfg)["generationConfig"]["speechConfig"] == {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": sent}}}
    assert cfg.voice == given  # the session reports the name the client chose


def test_an_unknown_voice_is_refused_with_the_choices() -> None:
    with pytest.raises(ClientError) as err:
        ga_update({"audio": {"output": {"voice": "nobody"}}})
    assert err.value.param == "session.audio.output.voice" and "marin" in err.value.message


# -- turn detection -----------------------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "expected"), [
    (0.0, ("START_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW")),
    (0.39, ("START_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW")),
    (0.4, None), (0.5, None), (0.6, None),
    (0.61, ("START_SENSITIVITY_LOW", "END_SENSITIVITY_HIGH")),
    (1.0, ("START_SENSITIVITY_LOW", "END_SENSITIVITY_HIGH")),
])
def test_vad_threshold_cut_offs(threshold: float, expected: tuple[str, str] | None) -> None:
    got = vad_sensitivity(threshold)
    assert got == ({} if expected is None else {"startOfSpeechSensitivity": expected[0],
                                                "endOfSpeechSensitivity": expected[1]})


def test_server_vad_becomes_automatic_activity_detection() -> None:
    cfg = ga_update({"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.8,
                                                            "prefix_padding_ms": 200, "silence_duration_ms": 700}}}})
    assert setup(cfg)["realtimeInputConfig"] == {"automaticActivityDetection": {
        "disabled": False, "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
        "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH", "prefixPaddingMs": 200, "silenceDurationMs": 700}}


def test_semantic_vad_leaves_realtime_input_config_out_and_null_disables_it() -> None:
    semantic = ga_update({"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "low"}}}})
    assert "realtimeInputConfig" not in setup(semantic)
    manual = ga_update({"audio": {"input": {"turn_detection": None}}})
    assert setup(manual)["realtimeInputConfig"] == {"automaticActivityDetection": {"disabled": True}}
    assert manual.manual_turns


def test_interrupt_response_false_is_no_interruption() -> None:
    assert realtime_input_config({"type": "semantic_vad", "interrupt_response": False}) == {
        "activityHandling": "NO_INTERRUPTION"}


def test_settings_gemini_cannot_honour_are_reported_as_they_take_effect() -> None:
    cfg = ga_update({"audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": False,
                                                            "idle_timeout_ms": 5000},
                                         "noise_reduction": {"type": "near_field"}},
                               "output": {"speed": 1.5}}})
    session = session_object(cfg, dialect="ga", session_id="s", model="m", expires_at=0, transcription_model="g")
    td = session["audio"]["input"]["turn_detection"]
    assert td["create_response"] is True and td["idle_timeout_ms"] is None
    assert session["audio"]["input"]["noise_reduction"] is None and session["audio"]["output"]["speed"] == 1.0


@pytest.mark.parametrize("bad", [{"type": "vad"}, {"type": "server_vad", "threshold": 2},
                                 {"type": "server_vad", "silence_duration_ms": "long"},
                                 {"type": "semantic_vad", "eagerness": "eager"}])
def test_bad_turn_detection_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ClientError):
        ga_update({"audio": {"input": {"turn_detection": bad}}})


# -- modalities, formats, transcription -----------------------------------------------------------


def test_audio_output_is_audio_with_its_transcript_and_text_is_text() -> None:
    audio = setup(GA)
    assert audio["generationConfig"]["responseModalities"] == ["AUDIO"] and audio["outputAudioTranscription"] == {}
    text = setup(ga_update({"output_modalities": ["text"]}))
    assert text["generationConfig"] == {"responseModalities": ["TEXT"]}
    assert "outputAudioTranscription" not in text


def test_an_audio_only_model_serves_text_sessions_with_audio_and_its_transcript() -> None:
    got = setup(ga_update({"output_modalities": ["text"]}), audio_only_model=True)
    assert got["generationConfig"] == {"responseModalities": ["AUDIO"]} and got["outputAudioTranscription"] == {}


@pytest.mark.parametrize(("mods", "output"), [(["text"], "text"), (["text", "audio"], "audio"),
                                              (["audio", "text"], "audio"), (["audio"], "audio")])
def test_beta_modalities(mods: list[str], output: str) -> None:
    assert beta_update({"modalities": mods}).output == output


@pytest.mark.parametrize("mods", [["text", "audio"], ["video"], [], "audio"])
def test_ga_needs_exactly_one_modality(mods: Any) -> None:
    with pytest.raises(ClientError, match="output_modalities"):
        ga_update({"output_modalities": mods})


@pytest.mark.parametrize(("fmt", "name"), [({"type": "audio/pcm", "rate": 24000}, "pcm16"),
                                           ({"type": "audio/pcmu"}, "g711_ulaw"), ({"type": "audio/pcma"}, "g711_alaw")])
def test_ga_formats(fmt: dict[str, Any], name: str) -> None:
    cfg = ga_update({"audio": {"input": {"format": fmt}, "output": {"format": fmt}}})
    assert (cfg.input_format, cfg.output_format) == (name, name)


def test_pcm_at_another_rate_is_refused() -> None:
    with pytest.raises(ClientError, match="24000"):
        ga_update({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}})


def test_beta_formats_and_transcription() -> None:
    cfg = beta_update({"input_audio_format": "g711_alaw", "output_audio_format": "g711_ulaw",
                       "input_audio_transcription": {"model": "whisper-1"}})
    assert (cfg.input_format, cfg.output_format) == ("g711_alaw", "g711_ulaw")
    assert setup(cfg)["inputAudioTranscription"] == {}
    with pytest.raises(ClientError):
        beta_update({"input_audio_format": "mp3"})


@pytest.mark.parametrize("model", ["gpt-realtime", "gemini-live"])
def test_session_objects_validate_in_both_dialects(model: str) -> None:
    for dialect, cfg in (("ga", GA), ("beta", BETA)):
        session = session_object(cfg, dialect=dialect, session_id="sess_1", model=model, expires_at=1,  # type: ignore[arg-type]
                                 transcription_model="g")
        VALIDATORS[dialect].validate_python({"type": "session.created", "event_id": "e", "session": session})
        # the beta SDK types the model as OpenAI's names only: another is left out there
        assert session.get("model") == (None if dialect == "beta" and model == "gemini-live" else model)


# -- instructions, tools, limits --------------------------------------------------------------------


def test_instructions_tokens_and_temperature_reach_the_setup() -> None:
    got = setup(ga_update({"instructions": "Be brief.", "max_output_tokens": 300}))
    assert got["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert got["generationConfig"]["maxOutputTokens"] == 300
    assert "systemInstruction" not in setup(GA)
    assert setup(beta_update({"temperature": 0.6}))["generationConfig"]["temperature"] == 0.6
    assert "temperature" not in setup(BETA)["generationConfig"]  # Gemini's default, reported as 0.8


def test_a_function_tool_becomes_a_function_declaration() -> None:
    tool = {"type": "function", "name": "get_weather", "description": "Weather.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                           "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#"}}
    cfg = ga_update({"tools": [tool]})
    assert setup(cfg)["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}]
    assert function_declaration(tool, "json_schema")["parametersJsonSchema"] == tool["parameters"]
    assert function_declaration({"name": "ping"}) == {"name": "ping"}
    assert "tools" not in setup(ga_update({"tools": [tool], "tool_choice": "none"}))


def test_json_schema_is_reduced_to_geminis_subset() -> None:
    schema = {
        "type": "object", "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
        "properties": {
            "unit": {"$ref": "#/$defs/Unit", "description": "The unit."},
            "days": {"type": ["integer", "null"], "minimum": 1, "default": 3},
            "mode": {"const": "fast"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
            "when": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
            "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
            "level": {"type": "integer", "enum": [1, 2]},
        },
        "required": ["unit", "missing"],
    }
    assert gemini_schema(schema) == {
        "type": "object",
        "properties": {
            "unit": {"type": "string", "enum": ["c", "f"], "description": "The unit."},
            "days": {"type": "integer", "nullable": True, "minimum": 1},
            "mode": {"type": "string", "enum": ["fast"]},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
            "when": {"type": "string", "format": "date-time", "nullable": True},
            "either": {"anyOf": [{"type": "string"}, {"type": "number"}]},
            "level": {"type": "integer"},
        },
        "required": ["unit"],
    }


def test_a_recursive_schema_ends_as_a_bare_object() -> None:
    schema = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    got = gemini_schema(schema)
    depth = 0
    while "properties" in got:
        got = got["properties"]["next"]
        depth += 1
    assert got == {"type": "object"} and depth <= 17


@pytest.mark.parametrize(("session", "code"), [
    ({"tools": [{"type": "mcp", "server_label": "x"}]}, "unsupported_tool"),
    ({"tools": [{"type": "function", "name": "bad name"}]}, "invalid_value"),
    ({"tool_choice": "required"}, "unsupported_tool_choice"),
    ({"tool_choice": {"type": "function", "name": "f"}}, "unsupported_tool_choice"),
    ({"prompt": {"id": "pmpt_1"}}, "unsupported_parameter"),
    ({"model": "other"}, "model_cannot_change"),
    ({"max_output_tokens": 0}, "invalid_value"),
])
def test_what_cannot_be_mapped_is_refused_by_name(session: dict[str, Any], code: str) -> None:
    with pytest.raises(ClientError) as err:
        ga_update(session)
    assert err.value.code == code


def test_ga_updates_need_their_type() -> None:
    with pytest.raises(ClientError) as err:
        apply_update(GA, {"instructions": "x"}, dialect="ga", model="m")
    assert err.value.code == "missing_required_parameter"


def test_operator_fields_go_under_the_clients() -> None:
    extra = {"contextWindowCompression": {"slidingWindow": {}},
             "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}, "responseModalities": ["TEXT"]}}
    got = setup(GA, extra=extra)
    assert got["contextWindowCompression"] == {"slidingWindow": {}}
    assert got["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    assert got["generationConfig"]["responseModalities"] == ["AUDIO"]  # the client's setting wins


# -- items and response requests ---------------------------------------------------------------------


@pytest.mark.parametrize(("output", "response"), [
    ('{"temp_c": 18}', {"temp_c": 18}), ("18", {"output": 18}), ('"sunny"', {"output": "sunny"}),
    ("[1, 2]", {"output": [1, 2]}), ("not json", {"output": "not json"}), ("", {"output": ""}),
])
def test_a_function_output_becomes_a_response_object(output: str, response: dict[str, Any]) -> None:
    assert function_response(output) == response


def test_messages_become_turns() -> None:
    user = {"role": "user", "content": [{"type": "input_text", "text": "hi"},
                                        {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]}
    assert message_turn(user, user, input_format="pcm16") == {"role": "user", "parts": [
        {"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]}
    assistant = {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]}
    assert message_turn(assistant, assistant, input_format="pcm16") == {"role": "model", "parts": [{"text": "ok"}]}
    assert message_turn(user | {"content": [{"type": "input_text", "text": "a"}]}, user, input_format="pcm16",
                        realtime_text=True) == {"realtime_text": "a"}
    with pytest.raises(ClientError):
        image_blob("data:text/plain;base64,eA==", "x")


@pytest.mark.parametrize("params", [{"output_modalities": ["text"]}, {"tools": [{"name": "f"}]}, {"tool_choice": "none"},
                                    {"audio": {"output": {"voice": "cedar"}}}, {"input": []},
                                    {"conversation": "none"}, {"metadata": {"k": 1}}, "x"])
def test_response_overrides_that_differ_from_the_session_are_refused(params: Any) -> None:
    session = session_object(GA, dialect="ga", session_id="s", model="m", expires_at=0, transcription_model="g")
    with pytest.raises(ClientError):
        response_metadata(params, session, "ga")


def test_beta_response_overrides() -> None:
    session = session_object(BETA, dialect="beta", session_id="s", model="m", expires_at=0, transcription_model="g")
    assert response_metadata({"modalities": ["audio", "text"], "voice": "alloy", "metadata": {"a": "b"}},
                             session, "beta") == {"a": "b"}
    with pytest.raises(ClientError, match="temperature"):
        response_metadata({"temperature": 1.1}, session, "beta")


# -- usage ------------------------------------------------------------------------------------------


def test_ai_studio_usage_by_modality() -> None:
    got = openai_usage({
        "promptTokenCount": 120, "cachedContentTokenCount": 40, "responseTokenCount": 50, "thoughtsTokenCount": 7,
        "toolUsePromptTokenCount": 6, "totalTokenCount": 183,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 70}, {"modality": "AUDIO", "tokenCount": 40},
                                {"modality": "IMAGE", "tokenCount": 8}, {"modality": "VIDEO", "tokenCount": 2}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 30}, {"modality": "AUDIO", "tokenCount": 10}],
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 45}, {"modality": "TEXT", "tokenCount": 5}],
    })
    assert got == {
        "total_tokens": 183, "input_tokens": 126, "output_tokens": 57,
        "input_token_details": {"text_tokens": 76, "audio_tokens": 40, "image_tokens": 10, "cached_tokens": 40,
                                "cached_tokens_details": {"text_tokens": 30, "audio_tokens": 10, "image_tokens": 0}},
        "output_token_details": {"text_tokens": 12, "audio_tokens": 45},
    }


def test_vertex_names_and_snake_case_read_the_same() -> None:
    studio = openai_usage({"promptTokenCount": 10, "responseTokenCount": 20,
                           "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 20}]})
    vertex = openai_usage({"promptTokenCount": 10, "candidatesTokenCount": 20,
                           "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 20}]})
    snake = openai_usage({"prompt_token_count": 10, "candidates_token_count": 20,
                          "candidates_tokens_details": [{"modality": "AUDIO", "token_count": 20}]})
    assert studio == vertex == snake
    assert studio["output_token_details"] == {"text_tokens": 0, "audio_tokens": 20}


def test_output_without_details_bills_as_what_the_response_produced() -> None:
    meta = {"promptTokenCount": 10, "responseTokenCount": 30}
    assert openai_usage(meta, remainder_output="audio")["output_token_details"] == {"text_tokens": 0, "audio_tokens": 30}
    assert openai_usage(meta)["output_token_details"] == {"text_tokens": 30, "audio_tokens": 0}
    assert openai_usage(meta)["input_token_details"]["text_tokens"] == 10  # undetailed prompt: text


def test_odd_counts_read_as_zero() -> None:
    got = openai_usage({"promptTokenCount": "12", "responseTokenCount": -3, "thoughtsTokenCount": True,
                        "promptTokensDetails": [{"modality": "AUDIO"}, "junk", {"tokenCount": 4}]})
    assert got["total_tokens"] == 4 and got["input_token_details"]["text_tokens"] == 4


def test_the_difference_of_two_snapshots_and_the_sum() -> None:
    first = openai_usage({"promptTokenCount": 10, "responseTokenCount": 5})
    later = openai_usage({"promptTokenCount": 12, "responseTokenCount": 9, "cachedContentTokenCount": 4})
    extra = usage_difference(later, first)
    assert extra is not None
    assert (extra["input_tokens"], extra["output_tokens"], extra["total_tokens"]) == (2, 4, 6)
    assert extra["input_token_details"]["cached_tokens"] == 4
    assert add_usage(first, extra)["total_tokens"] == later["total_tokens"]
    assert usage_difference(first, later) is None  # a smaller snapshot adds nothing
