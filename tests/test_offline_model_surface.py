"""The offline model's transcription sessions, simulated MCP server and image input, driven
sans-IO; every event it sends validates against the official SDK's types."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtproxy.offline import mcp

from .audio_fixtures import append_events, utterance
from .test_offline_model import Driver, user_message

MCP_TOOL = {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example/sse?token=s3cret",
            "authorization": "Bearer s3cret", "headers": {"X-Api-Key": "s3cret"}}


def _speak(d: Driver) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for append in append_events(utterance(speech_ms=900)):
        events.extend(d.send(append))
    return events


def test_a_transcription_session_transcribes_each_turn_and_gives_no_responses() -> None:
    d = Driver(intent="transcription")
    created = d.sent[0]
    assert created["type"] == "session.created" and created["session"]["type"] == "transcription"
    (updated,) = d.send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": {"type": "server_vad"}}}}})
    assert updated["session"]["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
    events = _speak(d)
    assert not d.model.responding
    types = d.types(events)
    assert "response.created" not in types and "conversation.item.added" not in types
    (done,) = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"]
    assert done["transcript"].startswith("(spoken, ") and done["usage"]["type"] == "tokens"
    # the realtime shape is refused; responses and conversation items are refused
    (err,) = d.send({"type": "session.update", "session": {"type": "realtime"}})
    assert err["type"] == "error" and err["error"]["param"] == "session.type"
    assert d.send({"type": "response.create"})[0]["type"] == "error"
    assert d.send(user_message("hi"))[0]["type"] == "error"


def test_whisper_transcriptions_are_billed_by_duration() -> None:
    d = Driver(intent="transcription")
    d.send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "transcription": {"model": "whisper-1"}}}}})
    (done,) = [e for e in _speak(d) if e["type"] == "conversation.item.input_audio_transcription.completed"]
    assert done["usage"]["type"] == "duration" and 1.0 < done["usage"]["seconds"] < 1.5


def test_a_beta_transcription_session_answers_transcription_session_update() -> None:
    d = Driver(dialect="beta", intent="transcription")
    (updated,) = d.send({"type": "transcription_session.update", "session": {
        "input_audio_transcription": {"model": "gpt-4o-mini-transcribe"}}})
    assert updated["type"] == "transcription_session.updated"
    assert updated["session"]["input_audio_transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert any(e["type"] == "conversation.item.input_audio_transcription.completed" for e in _speak(d))


def test_an_mcp_tool_is_listed_then_called_after_approval() -> None:
    d = Driver()
    events = d.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"],
                                                           "tools": [MCP_TOOL]}})
    assert d.types(events) == ["session.updated", "mcp_list_tools.in_progress", "conversation.item.added",
                               "mcp_list_tools.completed", "conversation.item.done"]
    assert [t["name"] for t in events[-1]["item"]["tools"]] == ["echo", "add"]
    d.send(user_message("Please echo hello world"))
    d.send({"type": "response.create"})
    first = d.drain()
    (request,) = first[-1]["response"]["output"]
    assert request["type"] == "mcp_approval_request" and request["name"] == "echo"
    assert json.loads(request["arguments"]) == {"text": "hello world"}
    d.send({"type": "conversation.item.create", "item": {"type": "mcp_approval_response",
                                                         "approval_request_id": request["id"], "approve": True}})
    d.send({"type": "response.create"})
    second = d.drain()
    call, message = second[-1]["response"]["output"]
    assert (call["type"], call["output"], call["approval_request_id"]) == ("mcp_call", "hello world", request["id"])
    assert message["content"][0]["text"] == "echo returned hello world"
    assert "response.mcp_call.completed" in d.types(second)


def test_an_mcp_tool_that_needs_no_approval_is_called_at_once_and_a_denial_is_honoured() -> None:
    d = Driver()
    d.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"],
                                                  "tools": [dict(MCP_TOOL, require_approval="never")]}})
    d.send(user_message("add 2 and 3"))
    d.send({"type": "response.create"})
    call, _ = d.drain()[-1]["response"]["output"]
    assert (call["name"], call["output"]) == ("add", "5")
    d2 = Driver()
    d2.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"],
                                                   "tools": [MCP_TOOL]}})
    d2.send(user_message("echo this"))
    d2.send({"type": "response.create"})
    (request,) = d2.drain()[-1]["response"]["output"]
    d2.send({"type": "conversation.item.create", "item": {"type": "mcp_approval_response",
                                                          "approval_request_id": request["id"], "approve": False}})
    d2.send({"type": "response.create"})
    (message,) = d2.drain()[-1]["response"]["output"]
    assert message["type"] == "message" and "not approved" in message["content"][0]["text"]


def test_image_parts_count_as_image_input_tokens() -> None:
    d = Driver()
    d.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    d.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
        {"type": "input_text", "text": "What is this?"}]}})
    d.send({"type": "response.create"})
    usage = d.drain()[-1]["response"]["usage"]
    assert usage["input_token_details"]["image_tokens"] == 256
    assert usage["input_tokens"] == sum(usage["input_token_details"][k] for k in ("text_tokens", "audio_tokens",
                                                                                  "image_tokens"))


@pytest.mark.parametrize("tool, arguments, expected", [
    ("echo", '{"text": "hi"}', ("hi", None)),
    ("add", '{"a": 2, "b": 0.5}', ("2.5", None)),
    ("add", '{"a": 2, "b": 3.0}', ("5", None)),
    ("add", "{not json", (None, {"type": "tool_execution_error", "message": "arguments are not valid JSON"})),
    ("add", "[1, 2]", (None, {"type": "tool_execution_error", "message": "arguments must be an object"})),
    ("add", '{"a": "2", "b": 3}', (None, {"type": "tool_execution_error", "message": "bad arguments for add"})),
    ("echo", '{"text": 1}', (None, {"type": "tool_execution_error", "message": "bad arguments for echo"})),
])
def test_the_simulated_mcp_tools_answer_or_fail_as_an_mcp_call_item_says(tool: str, arguments: str,
                                                                          expected: tuple[Any, Any]) -> None:
    assert mcp.call(tool, arguments) == expected
