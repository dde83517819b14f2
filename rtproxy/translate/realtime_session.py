"""An OpenAI Realtime session's settings, and the Gemini Live ``setup`` they become. No I/O.

:func:`apply_update` checks a client's ``session.update`` (GA or beta shape) against what Gemini
can do and gives the new :class:`SessionConfig`, or raises :class:`ClientError` naming the field
(nothing is applied then, as OpenAI refuses a whole update). :func:`session_object` renders the
effective session for ``session.created`` / ``session.updated``: settings Gemini cannot honour are
reported as they take effect (``noise_reduction: null``, ``speed: 1.0``,
``turn_detection.create_response: true``), never echoed as if applied. :func:`build_setup` makes
the ``setup`` (protocol/gemini-live.md §3.1, §8); the translator compares setups to know when a
change needs a new connection.

Tables (documented choices, pinned by tests):

* :data:`OPENAI_TO_GEMINI_VOICE`: OpenAI's voices → Gemini prebuilt voices (LiteLLM's table, so
  sessions sound the same through either gateway); a Gemini voice name (:data:`GEMINI_VOICES`,
  any case) passes through.
* :func:`vad_sensitivity`: OpenAI's VAD ``threshold`` (0-1, default 0.5; higher needs louder
  speech) → Gemini's start/end-of-speech sensitivities: below :data:`SENSITIVE_BELOW` speech
  starts readily and ends reluctantly (START HIGH, END LOW); above :data:`STRICT_ABOVE` the
  reverse (START LOW, END HIGH); in between Gemini's defaults (omitted).
"""

from __future__ import annotations

import copy
import re
from typing import Any, Literal

import attrs

from .audio import AudioFormat

Dialect = Literal["ga", "beta"]
#: How tool parameters are declared: Gemini's OpenAPI subset (``parameters``, what every Live
#: model takes) or ``parametersJsonSchema`` (the JSON Schema verbatim; newer models only).
ToolSchema = Literal["parameters", "json_schema"]


class ClientError(Exception):
    """A client event the translator refuses: becomes an OpenAI ``error`` event."""

    def __init__(self, code: str, message: str, param: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.kind = kind


#: OpenAI voice → Gemini prebuilt voice.
OPENAI_TO_GEMINI_VOICE = {
    "alloy": "Zephyr", "ash": "Charon", "ballad": "Fenrir", "coral": "Aoede", "echo": "Puck",
    "sage": "Kore", "shimmer": "Leda", "verse": "Orus", "marin": "Aoede", "cedar": "Charon",
}
#: Gemini's prebuilt voices (ai.google.dev speech generation docs), passed through as named.
GEMINI_VOICES = (
    "Zephyr", "Puck", "Charon", "Kore", "Fenrir", "Leda", "Orus", "Aoede", "Callirrhoe", "Autonoe",
    "Enceladus", "Iapetus", "Umbriel", "Algieba", "Despina", "Erinome", "Algenib", "Rasalgethi",
    "Laomedeia", "Achernar", "Alnilam", "Schedar", "Gacrux", "Pulcherrima", "Achird", "Zubenelgenubi",
    "Vindemiatrix", "Sadachbia", "Sadaltager", "Sulafat",
)
_GEMINI_VOICE_BY_LOWER = {v.lower(): v for v in GEMINI_VOICES}

#: VAD threshold cut-offs (see the module text).
SENSITIVE_BELOW = 0.4
STRICT_ABOVE = 0.6

DEFAULT_SERVER_VAD: dict[str, Any] = {
    "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
    "create_response": True, "interrupt_response": True,
}
#: OpenAI's limits on ``max_output_tokens``.
MAX_OUTPUT_TOKENS = 4096
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_GA_FORMATS: dict[str, AudioFormat] = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
_GA_FORMAT_OBJECTS: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000}, "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
_BETA_FORMATS = ("pcm16", "g711_ulaw", "g711_alaw")


@attrs.frozen
class SessionConfig:
    """The session as the client configured it, checked: what the translator works from."""

    #: The one output modality: Gemini allows one per session.
    output: Literal["text", "audio"]
    voice: str
    instructions: str = ""
    input_format: AudioFormat = "pcm16"
    output_format: AudioFormat = "pcm16"
    #: Normalised OpenAI turn detection (all fields filled), or None for manual turns.
    turn_detection: dict[str, Any] | None = attrs.field(factory=lambda: dict(DEFAULT_SERVER_VAD))
    #: The client's input transcription request (its fields are not mapped: Gemini transcribes
    #: with its own model), or None.
    transcription: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: Any = "auto"
    max_output_tokens: int | Literal["inf"] = "inf"
    #: Beta only; None: Gemini's default (reported as OpenAI's 0.8).
    temperature: float | None = None

    @property
    def manual_turns(self) -> bool:
        return self.turn_detection is None


def default_config(dialect: Dialect) -> SessionConfig:
    """OpenAI's defaults: GA answers in audio with ``marin``; beta in text and audio with ``alloy``."""
    turn_detection = dict(DEFAULT_SERVER_VAD, **({} if dialect == "beta" else {"idle_timeout_ms": None}))
    return SessionConfig(output="audio", voice="alloy" if dialect == "beta" else "marin", turn_detection=turn_detection)


# -- session.update -----------------------------------------------------------------------------


def _d(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ClientError("invalid_type", f"{param} must be an object", param)
    return value


def _voice(value: Any, param: str) -> str:
    if not isinstance(value, str) or (value not in OPENAI_TO_GEMINI_VOICE and value.lower() not in _GEMINI_VOICE_BY_LOWER):
        raise ClientError("invalid_value", f"Unsupported voice {str(value)[:40]!r}: use an OpenAI voice "
                          f"({', '.join(OPENAI_TO_GEMINI_VOICE)}) or a Gemini prebuilt voice "
                          f"(Kore, Puck, Charon, …)", param)
    return value


def gemini_voice(voice: str) -> str:
    """The Gemini prebuilt voice an OpenAI or Gemini voice name stands for."""
    return OPENAI_TO_GEMINI_VOICE.get(voice) or _GEMINI_VOICE_BY_LOWER.get(voice.lower(), voice)


def _number(value: Any, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ClientError("invalid_value", f"{param} must be a number from {low:g} to {high:g}", param)
    return value


def _turn_detection(value: Any, param: str, dialect: Dialect) -> dict[str, Any] | None:
    if value is None:
        return None
    td = _d(value, param)
    kind = td.get("type", "server_vad")
    if kind == "server_vad":
        out = dict(DEFAULT_SERVER_VAD)
        if "threshold" in td and td["threshold"] is not None:
            out["threshold"] = _number(td["threshold"], f"{param}.threshold", 0.0, 1.0)
        for key in ("prefix_padding_ms", "silence_duration_ms"):
            if key in td and td[key] is not None:
                v = td[key]
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 10_000:
                    raise ClientError("invalid_value", f"{param}.{key} must be an integer from 0 to 10000",
                                      f"{param}.{key}")
                out[key] = v
        if dialect == "ga":
            out["idle_timeout_ms"] = None  # not mapped: Gemini has no idle timeout
    elif kind == "semantic_vad":
        eagerness = td.get("eagerness", "auto")
        if eagerness not in ("low", "medium", "high", "auto"):
            raise ClientError("invalid_value", f"{param}.eagerness must be low, medium, high or auto",
                              f"{param}.eagerness")
        out = {"type": "semantic_vad", "eagerness": eagerness, "create_response": True, "interrupt_response": True}
    else:
        raise ClientError("invalid_value", f"{param}.type must be server_vad or semantic_vad", f"{param}.type")
    interrupt = td.get("interrupt_response", True)
    if not isinstance(interrupt, bool):
        raise ClientError("invalid_type", f"{param}.interrupt_response must be a boolean", f"{param}.interrupt_response")
    out["interrupt_response"] = interrupt
    # create_response is always true: Gemini answers every turn its VAD detects (reported as such)
    return out


def _transcription(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    return copy.deepcopy(_d(value, param))


def _tools(value: Any, param: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        raise ClientError("invalid_type", f"{param} must be an array", param)
    out = []
    for i, tool in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(tool, dict):
            raise ClientError("invalid_type", f"{where} must be an object", where)
        if tool.get("type", "function") != "function":
            raise ClientError("unsupported_tool", f"{where}: only function tools can be translated to Gemini Live "
                              f"(not {str(tool.get('type'))[:20]!r} tools)", f"{where}.type")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise ClientError("invalid_value", "a tool name must match ^[A-Za-z0-9_-]{1,64}$", f"{where}.name")
        if "parameters" in tool and not isinstance(tool["parameters"], dict):
            raise ClientError("invalid_type", "tool parameters must be a JSON schema object", f"{where}.parameters")
        if "description" in tool and not isinstance(tool["description"], (str, type(None))):
            raise ClientError("invalid_type", "a tool description must be a string", f"{where}.description")
        kept = {"type": "function", "name": name}
        if isinstance(tool.get("description"), str):
            kept["description"] = tool["description"]
        if "parameters" in tool:
            kept["parameters"] = copy.deepcopy(tool["parameters"])
        out.append(kept)
    return tuple(out)


def _tool_choice(value: Any, param: str) -> Any:
    if value in ("auto", "none"):
        return value
    raise ClientError("unsupported_tool_choice", "Gemini Live cannot be made to call a tool: tool_choice must be "
                      "'auto' or 'none'", param)


def _max_tokens(value: Any, param: str) -> int | Literal["inf"]:
    if value == "inf":
        return "inf"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUT_TOKENS:
        raise ClientError("invalid_value", f"{param} must be an integer from 1 to {MAX_OUTPUT_TOKENS} or 'inf'", param)
    return value


def _ga_format(value: Any, param: str) -> AudioFormat:
    fmt = _d(value, param)
    kind = fmt.get("type")
    if kind not in _GA_FORMATS:
        raise ClientError("invalid_value", f"{param}.type must be audio/pcm, audio/pcmu or audio/pcma", f"{param}.type")
    if kind == "audio/pcm" and fmt.get("rate", 24000) != 24000:
        raise ClientError("invalid_value", "audio/pcm must have rate 24000", f"{param}.rate")
    return _GA_FORMATS[kind]


def _beta_format(value: Any, param: str) -> AudioFormat:
    if value not in _BETA_FORMATS:
        raise ClientError("invalid_value", f"{param} must be pcm16, g711_ulaw or g711_alaw", param)
    return value  # type: ignore[no-any-return]


def apply_update(current: SessionConfig, session: Any, *, dialect: Dialect, model: str) -> SessionConfig:
    """The session after the client's ``session.update`` ``session`` object, or ClientError."""
    s = _d(session, "session")
    changes: dict[str, Any] = {}
    if "model" in s and s["model"] != model:
        raise ClientError("model_cannot_change", f"The model of a session cannot be changed: it is {model!r} "
                          f"(the upstream Gemini model is fixed when the session starts)", "session.model")
    if dialect == "ga":
        if s.get("type") != "realtime":
            if s.get("type") == "transcription":
                raise ClientError("unsupported_session_type", "Transcription sessions cannot be translated to "
                                  "Gemini Live", "session.type")
            raise ClientError("missing_required_parameter", "Missing required parameter: 'session.type' "
                              "(must be 'realtime').", "session.type")
        if s.get("prompt") is not None:
            raise ClientError("unsupported_parameter", "Stored prompts cannot be used with Gemini Live",
                              "session.prompt")
        if "output_modalities" in s:
            mods = s["output_modalities"]
            if mods not in (["text"], ["audio"]):
                raise ClientError("invalid_value", "output_modalities must be ['text'] or ['audio']",
                                  "session.output_modalities")
            changes["output"] = mods[0]
        audio = _d(s.get("audio"), "session.audio")
        audio_in = _d(audio.get("input"), "session.audio.input")
        audio_out = _d(audio.get("output"), "session.audio.output")
        if "format" in audio_in:
            changes["input_format"] = _ga_format(audio_in["format"], "session.audio.input.format")
        if "format" in audio_out:
            changes["output_format"] = _ga_format(audio_out["format"], "session.audio.output.format")
        if "turn_detection" in audio_in:
            changes["turn_detection"] = _turn_detection(audio_in["turn_detection"],
                                                        "session.audio.input.turn_detection", dialect)
        if "transcription" in audio_in:
            changes["transcription"] = _transcription(audio_in["transcription"], "session.audio.input.transcription")
        if audio_out.get("voice") is not None:
            changes["voice"] = _voice(audio_out["voice"], "session.audio.output.voice")
        if "max_output_tokens" in s:
            changes["max_output_tokens"] = _max_tokens(s["max_output_tokens"], "session.max_output_tokens")
    else:
        if "modalities" in s:
            mods = s["modalities"]
            if not isinstance(mods, list) or not mods or not set(mods) <= {"text", "audio"} or len(mods) != len(set(mods)):
                raise ClientError("invalid_value", "modalities must be ['text'] or ['text', 'audio']",
                                  "session.modalities")
            changes["output"] = "audio" if "audio" in mods else "text"
        if "input_audio_format" in s:
            changes["input_format"] = _beta_format(s["input_audio_format"], "session.input_audio_format")
        if "output_audio_format" in s:
            changes["output_format"] = _beta_format(s["output_audio_format"], "session.output_audio_format")
        if "turn_detection" in s:
            changes["turn_detection"] = _turn_detection(s["turn_detection"], "session.turn_detection", dialect)
        if "input_audio_transcription" in s:
            changes["transcription"] = _transcription(s["input_audio_transcription"],
                                                      "session.input_audio_transcription")
        if s.get("voice") is not None:
            changes["voice"] = _voice(s["voice"], "session.voice")
        if "max_response_output_tokens" in s:
            changes["max_output_tokens"] = _max_tokens(s["max_response_output_tokens"],
                                                       "session.max_response_output_tokens")
        if "temperature" in s and s["temperature"] is not None:
            changes["temperature"] = _number(s["temperature"], "session.temperature", 0.0, 2.0)
    if "instructions" in s:
        if not isinstance(s["instructions"], str):
            raise ClientError("invalid_type", "instructions must be a string", "session.instructions")
        changes["instructions"] = s["instructions"]
    if "tools" in s:
        changes["tools"] = _tools(s["tools"], "session.tools")
    if "tool_choice" in s:
        changes["tool_choice"] = _tool_choice(s["tool_choice"], "session.tool_choice")
    return attrs.evolve(current, **changes)


# -- the effective session, as OpenAI reports it --------------------------------------------------


def _reported_transcription(cfg: SessionConfig, transcription_model: str) -> dict[str, Any] | None:
    # Gemini transcribes with its own model, whatever the client named: reported as such (and the
    # collector prices its zero-token transcription usage by this name)
    return None if cfg.transcription is None else {"model": transcription_model}


#: The models a beta session object may name (the beta SDK's ``Session.model`` is this literal
#: set): another name (a gateway's own, e.g. ``gemini-live``) is left out of beta sessions.
BETA_SESSION_MODELS = frozenset({
    "gpt-realtime", "gpt-realtime-2025-08-28", "gpt-4o-realtime-preview", "gpt-4o-realtime-preview-2024-10-01",
    "gpt-4o-realtime-preview-2024-12-17", "gpt-4o-realtime-preview-2025-06-03", "gpt-4o-mini-realtime-preview",
    "gpt-4o-mini-realtime-preview-2024-12-17",
})


def audio_format_object(fmt: AudioFormat) -> dict[str, Any]:
    """A format as GA names it: ``{"type": "audio/pcm", "rate": 24000}``, ``{"type": "audio/pcmu"}``, …"""
    return dict(_GA_FORMAT_OBJECTS[fmt])


def session_object(cfg: SessionConfig, *, dialect: Dialect, session_id: str, model: str, expires_at: int,
                   transcription_model: str) -> dict[str, Any]:
    tools = [copy.deepcopy(t) for t in cfg.tools]
    transcription = _reported_transcription(cfg, transcription_model)
    turn_detection = copy.deepcopy(cfg.turn_detection)
    if dialect == "beta":
        return {
            "id": session_id, "object": "realtime.session",
            **({"model": model} if model in BETA_SESSION_MODELS else {}),
            "modalities": ["text", "audio"] if cfg.output == "audio" else ["text"],
            "instructions": cfg.instructions, "voice": cfg.voice,
            "input_audio_format": cfg.input_format, "output_audio_format": cfg.output_format,
            "input_audio_transcription": transcription, "turn_detection": turn_detection,
            "input_audio_noise_reduction": None, "tools": tools, "tool_choice": cfg.tool_choice,
            "temperature": cfg.temperature if cfg.temperature is not None else 0.8,
            "max_response_output_tokens": cfg.max_output_tokens, "expires_at": expires_at,
        }
    return {
        "type": "realtime", "object": "realtime.session", "id": session_id, "model": model,
        "output_modalities": [cfg.output], "instructions": cfg.instructions,
        "audio": {
            "input": {"format": audio_format_object(cfg.input_format), "transcription": transcription,
                      "noise_reduction": None, "turn_detection": turn_detection},
            "output": {"format": audio_format_object(cfg.output_format), "voice": cfg.voice, "speed": 1.0},
        },
        "tools": tools, "tool_choice": cfg.tool_choice, "max_output_tokens": cfg.max_output_tokens,
        "tracing": None, "truncation": "auto", "prompt": None, "expires_at": expires_at,
    }


# -- the Gemini setup ---------------------------------------------------------------------------


def vad_sensitivity(threshold: float) -> dict[str, str]:
    """OpenAI's VAD threshold → Gemini's sensitivities (see the module text)."""
    if threshold < SENSITIVE_BELOW:
        return {"startOfSpeechSensitivity": "START_SENSITIVITY_HIGH", "endOfSpeechSensitivity": "END_SENSITIVITY_LOW"}
    if threshold > STRICT_ABOVE:
        return {"startOfSpeechSensitivity": "START_SENSITIVITY_LOW", "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH"}
    return {}


def realtime_input_config(turn_detection: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI turn detection → ``realtimeInputConfig`` (None: leave it out, Gemini's own VAD)."""
    if turn_detection is None:
        return {"automaticActivityDetection": {"disabled": True}}
    out: dict[str, Any] = {}
    if turn_detection["type"] == "server_vad":
        out["automaticActivityDetection"] = {
            "disabled": False,
            **vad_sensitivity(turn_detection["threshold"]),
            "prefixPaddingMs": turn_detection["prefix_padding_ms"],
            "silenceDurationMs": turn_detection["silence_duration_ms"],
        }
    if not turn_detection.get("interrupt_response", True):
        out["activityHandling"] = "NO_INTERRUPTION"
    return out or None


#: JSON Schema keywords Gemini's ``Schema`` (OpenAPI subset) knows; anything else is dropped
#: (``additionalProperties`` makes the setup fail with 1007).
_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "anyOf",
    "propertyOrdering", "items", "minimum", "maximum",
})
#: $ref resolution depth; deeper (or recursive) references become a bare object.
MAX_SCHEMA_DEPTH = 16


def gemini_schema(schema: Any, *, root: Any = None, depth: int = 0) -> dict[str, Any]:
    """A JSON Schema (OpenAI tool parameters) → Gemini's OpenAPI-subset ``Schema``: local
    ``$ref``s inlined, ``type: [t, "null"]`` → ``nullable``, ``const`` → a one-value enum,
    ``oneOf`` → ``anyOf``, non-string enums and unknown keywords dropped."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
        return {"type": "object"}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target: Any = root
        for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else ["\0"]:
            target = target.get(part) if isinstance(target, dict) else None
        merged = {**(target if isinstance(target, dict) else {"type": "object"}),
                  **{k: v for k, v in schema.items() if k != "$ref"}}
        return gemini_schema(merged, root=root, depth=depth + 1)
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        kind = kinds[0] if kinds else "string"
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind
    for key in ("format", "title", "description", "pattern", "nullable"):
        if key in schema and key not in out:
            out[key] = schema[key]
    for key in ("maxItems", "minItems", "minProperties", "maxProperties", "minLength", "maxLength",
                "minimum", "maximum"):
        if isinstance(schema.get(key), (int, float)) and not isinstance(schema.get(key), bool):
            out[key] = schema[key]
    enum = schema.get("enum")
    if "const" in schema:
        enum = [schema["const"]]
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        out["enum"] = list(enum)
        out.setdefault("type", "string")
    props = schema.get("properties")
    if isinstance(props, dict):
        out["properties"] = {str(k): gemini_schema(v, root=root, depth=depth + 1) for k, v in props.items()}
        required = schema.get("required")
        if isinstance(required, list):
            out["required"] = [r for r in required if isinstance(r, str) and r in props]
    if "items" in schema:
        out["items"] = gemini_schema(schema["items"], root=root, depth=depth + 1)
    alternatives = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(alternatives, list):
        non_null = [a for a in alternatives if not (isinstance(a, dict) and a.get("type") == "null")]
        if len(non_null) < len(alternatives):
            out["nullable"] = True
        if len(non_null) == 1:
            out = {**gemini_schema(non_null[0], root=root, depth=depth + 1), **out}
        elif non_null:
            out["anyOf"] = [gemini_schema(a, root=root, depth=depth + 1) for a in non_null]
    all_of = schema.get("allOf")
    if isinstance(all_of, list):
        for part in all_of:
            out = {**gemini_schema(part, root=root, depth=depth + 1), **out}
    assert set(out) <= _SCHEMA_KEYS
    return out


def function_declaration(tool: dict[str, Any], tool_schema: ToolSchema = "parameters") -> dict[str, Any]:
    """An OpenAI function tool → a Gemini ``functionDeclarations`` entry."""
    out: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        out["description"] = tool["description"]
    params = tool.get("parameters")
    if isinstance(params, dict) and params:
        if tool_schema == "json_schema":
            out["parametersJsonSchema"] = copy.deepcopy(params)
        else:
            out["parameters"] = gemini_schema(params)
    return out


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def build_setup(cfg: SessionConfig, *, setup_model: str, audio_only_model: bool = False,
                tool_schema: ToolSchema = "parameters", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of the ``setup`` frame for ``cfg`` (without ``sessionResumption``, which the
    translator adds). ``extra`` (the operator's fields, e.g. ``contextWindowCompression`` or a
    ``generationConfig.thinkingConfig``) is merged underneath: what the client's settings decide
    wins. ``audio_only_model``: the model answers only in AUDIO, so a text session asks for
    audio and its transcript (the translator streams the transcript as text)."""
    audio_out = cfg.output == "audio" or audio_only_model
    generation: dict[str, Any] = {"responseModalities": ["AUDIO" if audio_out else "TEXT"]}
    if cfg.output == "audio":
        generation["speechConfig"] = {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": gemini_voice(cfg.voice)}}}
    if cfg.max_output_tokens != "inf":
        generation["maxOutputTokens"] = cfg.max_output_tokens
    if cfg.temperature is not None:
        generation["temperature"] = cfg.temperature
    setup: dict[str, Any] = {"model": setup_model, "generationConfig": generation}
    if cfg.instructions:
        setup["systemInstruction"] = {"parts": [{"text": cfg.instructions}]}
    if cfg.tools and cfg.tool_choice != "none":
        setup["tools"] = [{"functionDeclarations": [function_declaration(t, tool_schema) for t in cfg.tools]}]
    ric = realtime_input_config(cfg.turn_detection)
    if ric is not None:
        setup["realtimeInputConfig"] = ric
    if cfg.transcription is not None:
        setup["inputAudioTranscription"] = {}
    if audio_out:
        setup["outputAudioTranscription"] = {}
    return _deep_merge(extra, setup) if extra else setup
