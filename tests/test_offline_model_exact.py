"""The offline model's answers to the letter: each refusal of a session.update, an item or a
tool (code, words, param, the client's event id), and the session objects an update produces."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from rtproxy.offline.model import ClientError, OfflineModel, audio_in_tokens, audio_out_tokens, text_tokens

DEFAULT_TD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
              "create_response": True, "interrupt_response": True}


def refusal(model: OfflineModel, event: dict[str, Any]) -> dict[str, Any]:
    (out,) = model.receive(json.dumps({"event_id": "c1", **event}))
    assert out["type"] == "error"
    return out["error"]  # type: ignore[no-any-return]


def err(code: str, message: str, param: str | None) -> dict[str, Any]:
    return {"type": "invalid_request_error", "code": code, "message": message, "param": param, "event_id": "c1"}


GA_REFUSALS = [
    ({"session": 5}, err("invalid_value", "session must be an object", "session")),
    ({"session": {}}, err("missing_required_parameter",
                          "Missing required parameter: 'session.type' (must be 'realtime').", "session.type")),
    ({"session": {"type": "realtime", "instructions": 3}},
     err("invalid_type", "instructions must be a string", "session.instructions")),
    ({"session": {"type": "realtime", "output_modalities": ["text", "audio"]}},
     err("invalid_value", "output_modalities must be one of [['text'], ['audio']]", "session.output_modalities")),
    ({"session": {"type": "realtime", "output_modalities": ["audio", "audio"]}},
     err("invalid_value", "output_modalities must be one of [['text'], ['audio']]", "session.output_modalities")),
    ({"session": {"type": "realtime", "output_modalities": "audio"}},
     err("invalid_value", "output_modalities must be one of [['text'], ['audio']]", "session.output_modalities")),
    ({"session": {"type": "realtime", "audio": []}}, err("invalid_type", "audio must be an object", "session.audio")),
    ({"session": {"type": "realtime", "audio": {"input": 1}}},
     err("invalid_type", "audio.input must be an object", "session.audio.input")),
    ({"session": {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "x"}}}}},
     err("invalid_value", "turn_detection must be null or {type: server_vad|semantic_vad}",
         "session.audio.input.turn_detection")),
    ({"session": {"type": "realtime", "audio": {"input": {"turn_detection": "server_vad"}}}},
     err("invalid_value", "turn_detection must be null or {type: server_vad|semantic_vad}",
         "session.audio.input.turn_detection")),
    *(({"session": {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", k: "x"}}}}},
       err("invalid_type", f"turn_detection.{k} must be a number", f"session.audio.input.turn_detection.{k}"))
      for k in ("threshold", "prefix_padding_ms", "silence_duration_ms")),
    ({"session": {"type": "realtime", "audio": {"input": {"transcription": "whisper-1"}}}},
     err("invalid_type", "transcription must be null or an object", "session.audio.input.transcription")),
    ({"session": {"type": "realtime", "audio": {"output": {"voice": 7}}}},
     err("invalid_type", "voice must be a string", "session.voice")),
    ({"session": {"type": "realtime", "tools": {}}}, err("invalid_type", "tools must be an array", "session.tools")),
    ({"session": {"type": "realtime", "tools": ["x"]}},
     err("invalid_value", "each tool must be {type: 'function', name, parameters}", "session.tools[0]")),
    ({"session": {"type": "realtime", "tools": [{"type": "web", "name": "a"}]}},
     err("invalid_value", "each tool must be {type: 'function', name, parameters}", "session.tools[0]")),
    ({"session": {"type": "realtime", "tools": [{"name": "ok"}, {"name": "has space"}]}},
     err("invalid_value", "a tool name must match ^[A-Za-z0-9_-]{1,64}$", "session.tools[1].name")),
    ({"session": {"type": "realtime", "tools": [{"name": "a" * 65}]}},
     err("invalid_value", "a tool name must match ^[A-Za-z0-9_-]{1,64}$", "session.tools[0].name")),
    ({"session": {"type": "realtime", "tools": [{"name": "a", "parameters": []}]}},
     err("invalid_type", "tool parameters must be a JSON schema object", "session.tools[0].parameters")),
    ({"session": {"type": "realtime", "tools": [{"type": "mcp", "server_label": "bad label", "server_url": "u"}]}},
     err("invalid_value", "an mcp tool needs a server_label matching ^[A-Za-z0-9_-]{1,64}$",
         "session.tools[0].server_label")),
    ({"session": {"type": "realtime", "tools": [{"type": "mcp", "server_label": "docs"}]}},
     err("missing_required_parameter", "an mcp tool needs server_url, connector_id or tunnel_id", "session.tools[0]")),
]


@pytest.mark.parametrize("event, expected", GA_REFUSALS)
def test_each_refused_session_update_says_why_and_changes_nothing(event: dict[str, Any],
                                                                   expected: dict[str, Any]) -> None:
    model = OfflineModel()
    before = model.session_object()
    event = {"type": "session.update", **event}
    if isinstance(event["session"], dict) and event["session"]:
        event["session"] = {"instructions": "changed", **event["session"]}  # valid, and must not apply
    assert refusal(model, event) == expected
    assert model.session_object() == before


@pytest.mark.parametrize("session, expected", [
    ({"type": "realtime"}, err("invalid_value", "modalities must be one of [['text'], ['audio', 'text']]",
                               "session.modalities")),
    ({"voice": 1}, err("invalid_type", "voice must be a string", "session.voice")),
    ({"input_audio_transcription": 1}, err("invalid_type", "transcription must be null or an object",
                                           "session.audio.input.transcription")),
])
def test_beta_refusals_name_the_beta_fields(session: dict[str, Any], expected: dict[str, Any]) -> None:
    model = OfflineModel(dialect="beta")
    if "type" in session:
        session = {**session, "modalities": ["audio"]}
    assert refusal(model, {"type": "session.update", "session": session}) == expected


def test_a_transcription_session_needs_its_own_type() -> None:
    model = OfflineModel(intent="transcription")
    assert refusal(model, {"type": "session.update", "session": {"type": "realtime"}}) == err(
        "missing_required_parameter", "Missing required parameter: 'session.type' (must be 'transcription').",
        "session.type")


def test_an_update_applies_every_field_and_the_session_object_says_so() -> None:
    model = OfflineModel()
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    (updated,) = model.receive(json.dumps({"type": "session.update", "session": {
        "type": "realtime", "instructions": "Be brief.", "output_modalities": ["text"],
        "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.7},
                            "transcription": {"model": "whisper-1"}}, "output": {"voice": "cedar"}},
        "tools": [{"name": "get_weather", "parameters": {"type": "object"}}], "tool_choice": "required"}}))
    session = updated["session"]
    assert updated["type"] == "session.updated" and session["id"] == model.session_id
    assert session["instructions"] == "Be brief." and session["output_modalities"] == ["text"]
    assert session["audio"] == {
        "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "whisper-1"},
                  "noise_reduction": None, "turn_detection": {**DEFAULT_TD, "threshold": 0.7}},
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "cedar", "speed": 1.0}}
    assert session["tools"] == [tool] and session["tool_choice"] == "required"
    assert (session["type"], session["object"], session["model"], session["max_output_tokens"], session["tracing"],
            session["truncation"], session["prompt"]) == ("realtime", "realtime.session", "gpt-realtime", "inf",
                                                          None, "auto", None)
    assert session["expires_at"] == model.created_at + 3600
    (off,) = model.receive(json.dumps({"type": "session.update", "session": {
        "type": "realtime", "audio": {"input": {"turn_detection": None, "transcription": None}}}}))
    assert off["session"]["audio"]["input"]["turn_detection"] is None
    assert off["session"]["audio"]["input"]["transcription"] is None
    assert off["session"]["instructions"] == "Be brief."  # what an update leaves out stays


def test_the_default_sessions_ga_and_beta() -> None:
    ga = OfflineModel().session_object()
    assert (ga["output_modalities"], ga["audio"]["output"]["voice"], ga["audio"]["input"]["turn_detection"],
            ga["tools"], ga["tool_choice"]) == (["audio"], "marin", DEFAULT_TD, [], "auto")
    beta = OfflineModel(dialect="beta").session_object()
    assert beta == {
        "id": beta["id"], "object": "realtime.session", "model": "gpt-realtime", "modalities": ["text", "audio"],
        "instructions": beta["instructions"], "voice": "alloy", "input_audio_format": "pcm16",
        "output_audio_format": "pcm16", "input_audio_transcription": None, "turn_detection": DEFAULT_TD,
        "tools": [], "tool_choice": "auto", "temperature": 0.8, "max_response_output_tokens": "inf",
        "expires_at": beta["expires_at"]}
    tr = OfflineModel(intent="transcription").session_object()
    assert tr == {"type": "transcription", "object": "realtime.transcription_session", "id": tr["id"],
                  "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": None,
                                      "noise_reduction": None, "turn_detection": DEFAULT_TD}},
                  "include": None, "expires_at": tr["expires_at"]}
    beta_tr = OfflineModel(intent="transcription", dialect="beta").session_object()
    assert beta_tr == {"id": beta_tr["id"], "object": "realtime.transcription_session", "modalities": ["text"],
                       "input_audio_format": "pcm16", "input_audio_transcription": None, "turn_detection": DEFAULT_TD,
                       "expires_at": beta_tr["expires_at"],
                       "client_secret": {"value": "", "expires_at": beta_tr["expires_at"]}}


ITEM_REFUSALS = [
    ({"item": 1}, err("invalid_value", "item must be an object", "item")),
    ({"item": {"type": "mcp_approval_response", "approval_request_id": "a"}},
     err("invalid_value", "mcp_approval_response needs approval_request_id and approve", "item")),
    ({"item": {"type": "message", "role": "tool", "content": []}},
     err("invalid_value", "message role must be user, system or assistant", "item.role")),
    ({"item": {"type": "message", "role": "user", "content": "hi"}},
     err("invalid_value", "message content must be an array of parts", "item.content")),
    ({"item": {"type": "message", "role": "user", "content": ["hi"]}},
     err("invalid_value", "message content must be an array of parts", "item.content")),
    ({"item": {"type": "function_call_output", "call_id": "c", "output": 5}},
     err("invalid_value", "function_call_output needs call_id and output strings", "item")),
    ({"item": {"type": "function_call", "name": "f"}},
     err("invalid_value", "function_call needs name, call_id and arguments strings", "item")),
    ({"item": {"type": "image"}}, err("invalid_value", "unsupported item type 'image'", "item.type")),
]


@pytest.mark.parametrize("event, expected", ITEM_REFUSALS)
def test_each_refused_item_says_why_and_adds_nothing(event: dict[str, Any], expected: dict[str, Any]) -> None:
    model = OfflineModel()
    assert refusal(model, {"type": "conversation.item.create", **event}) == expected
    assert model.items == []


def test_a_transcription_session_has_no_conversation_and_gives_no_responses() -> None:
    model = OfflineModel(intent="transcription")
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    assert refusal(model, {"type": "conversation.item.create", "item": item}) == err(
        "invalid_request_error", "a transcription session has no conversation", "type")
    assert refusal(model, {"type": "response.create"}) == err(
        "invalid_request_error", "a transcription session gives no responses", "type")


def test_an_item_is_stored_with_its_defaults_and_echoed_added_then_done() -> None:
    model = OfflineModel()
    added, done = model.receive(json.dumps({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}}))
    stored = model.items[0]
    assert stored == {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}],
                      "id": stored["id"], "object": "realtime.item", "status": "completed"}
    assert (added["type"], done["type"]) == ("conversation.item.added", "conversation.item.done")
    assert added["item"] == done["item"] == stored and added["previous_item_id"] is None
    model.receive(json.dumps({"type": "conversation.item.create", "item": {
        "id": "mine", "type": "function_call_output", "call_id": "c", "output": "{}"}}))
    assert model.items[1]["id"] == "mine" and model.items[1]["status"] == "completed"


@pytest.mark.parametrize("text, properties, expected", [
    ("What is the weather in Paris?", {"city": {"type": "string"}}, {"city": "Paris"}),
    ("Weather in Paris or London", {"city": {"type": "string"}, "other": {"type": "string"}},
     {"city": "London", "other": "Paris"}),  # names taken from the end
    ("Paris is first", {"city": {"type": "string"}}, {"city": "example"}),  # the first word is not a name
    ("call get_weather for Rome", {"city": {"type": "string"}}, {"city": "Rome"}),
    ("in Paris", {"city": {"type": "string"}}, {"city": "Paris"}),  # the second word may be one
    ("Weather for Paris via My_tool", {"city": {"type": "string"}}, {"city": "Paris"}),  # a name has no "_"
    ("add 2 and 3.5", {"a": {"type": "integer"}, "b": {"type": "number"}}, {"a": 2, "b": 3.5}),
    ("add -4 and nothing", {"a": {"type": "integer"}, "b": {"type": "number"}}, {"a": -4, "b": 1}),
    ("hello", {"u": {"type": "string", "enum": ["c", "f"]}, "ok": {"type": "boolean"}, "any": {}},
     {"u": "c", "ok": True, "any": "example"}),
    ("hello", {"odd": "not a schema", "list": {"type": "array"}}, {"odd": "example"}),
])
def test_tool_arguments_are_filled_from_the_words(text: str, properties: dict[str, Any],
                                                  expected: dict[str, Any]) -> None:
    tool = {"name": "t", "parameters": {"type": "object", "properties": properties}}
    assert json.loads(OfflineModel.fill_arguments(text, tool)) == expected
    assert OfflineModel.fill_arguments(text, {"name": "t"}) == "{}"


def test_the_vad_takes_the_sessions_turn_detection_with_its_defaults() -> None:
    model = OfflineModel()
    assert (model._vad_settings().threshold, model._vad_settings().prefix_padding_ms,
            model._vad_settings().silence_duration_ms) == (0.5, 300, 500)
    model.receive(json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "threshold": 0.8, "prefix_padding_ms": 100,
                           "silence_duration_ms": 900}}}}}))
    assert (model._vad_settings().threshold, model._vad_settings().prefix_padding_ms,
            model._vad_settings().silence_duration_ms) == (0.8, 100, 900)
    model.receive(json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "threshold": None, "prefix_padding_ms": 0,
                           "silence_duration_ms": 0}}}}}))
    assert (model._vad_settings().threshold, model._vad_settings().prefix_padding_ms,
            model._vad_settings().silence_duration_ms) == (0.5, 0, 500)


def test_ids_errors_and_token_counts_are_the_apis() -> None:
    model = OfflineModel()
    assert re.fullmatch(r"sess_[0-9a-f]{16}", model.session_id)
    assert re.fullmatch(r"conv_[0-9a-f]{16}", model.conversation_id)
    assert str(ClientError("invalid_value", "the message", "param")) == "the message"
    assert [text_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]
    assert [audio_in_tokens(ms) for ms in (0, 100, 101, 1010)] == [0, 1, 2, 11]
    assert [audio_out_tokens(ms) for ms in (0, 50, 51, 1010)] == [0, 1, 2, 21]


def test_a_session_expires_an_hour_after_it_was_created() -> None:
    for model in (OfflineModel(), OfflineModel(dialect="beta"), OfflineModel(intent="transcription"),
                  OfflineModel(dialect="beta", intent="transcription")):
        assert model.session_object()["expires_at"] == model.created_at + 3600


def test_a_transcription_session_keeps_nothing_per_transcribed_item() -> None:
    model = OfflineModel(intent="transcription")
    model.receive(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": None}}}}))
    for _ in range(3):
        model.receive(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(9600)).decode()}))
        out = model.receive(json.dumps({"type": "input_audio_buffer.commit"}))
        assert out[-1]["type"] == "conversation.item.input_audio_transcription.completed"
    assert model._item_ms == {}  # no conversation holds the items: their lengths are released
