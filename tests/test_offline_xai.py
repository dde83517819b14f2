"""The offline model playing xAI's Grok Voice (``dialect = "xai"``), sans-IO: xAI's client shape
in, xAI's quirks out (protocol/xai-realtime.md §2, §4), over the offline model's own brain."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from rtproxy.offline.xai import OfflineXaiModel

from .audio_fixtures import utterance

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}}}}


def send(model: OfflineXaiModel, event: dict[str, Any]) -> list[dict[str, Any]]:
    return model.receive(json.dumps(event))


def stream(model: OfflineXaiModel, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = list(events)
    while model.responding:
        out += model.next_chunk()
    return out


def text_turn(model: OfflineXaiModel, text: str) -> list[dict[str, Any]]:
    send(model, {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                              "content": [{"type": "input_text", "text": text}]}})
    return stream(model, send(model, {"type": "response.create"}))


def test_it_opens_with_the_conversation_and_no_session() -> None:
    model = OfflineXaiModel()
    (opening,) = model.start()
    assert opening["type"] == "conversation.created" and opening["conversation"]["id"]
    assert model.ping() == [{"type": "ping"}]


def test_session_update_takes_a_top_level_voice_and_turn_detection_and_answers_in_xais_shape() -> None:
    model = OfflineXaiModel()
    (updated,) = send(model, {"type": "session.update", "session": {
        "voice": "Ara", "turn_detection": None, "instructions": "Be brief.", "output_modalities": ["text"]}})
    session = updated["session"]
    assert updated["type"] == "session.updated" and "type" not in session
    assert (session["voice"], session["turn_detection"], session["instructions"]) == ("Ara", None, "Be brief.")
    assert session["audio"] == {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
                                "output": {"format": {"type": "audio/pcm", "rate": 24000}}}


def test_the_ga_nested_voice_and_turn_detection_are_ignored_as_xai_ignores_them() -> None:
    model = OfflineXaiModel()
    (updated,) = send(model, {"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"turn_detection": None, "transcription": {"model": "whisper-1"}}, "output": {"voice": "ara"}}}})
    assert updated["session"]["voice"] == "eve" and updated["session"]["turn_detection"]["type"] == "server_vad"


@pytest.mark.parametrize("voice", ["marin", "alloy", 3])
def test_a_voice_xai_has_not_is_an_error(voice: Any) -> None:
    (error,) = send(OfflineXaiModel(), {"type": "session.update", "event_id": "c1", "session": {"voice": voice}})
    assert error["type"] == "error" and error["error"]["param"] == "session.voice"


@pytest.mark.parametrize("etype", ["conversation.item.truncate", "conversation.item.delete",
                                   "conversation.item.retrieve", "output_audio_buffer.clear"])
def test_events_xai_has_not_are_unknown_to_it(etype: str) -> None:
    (error,) = send(OfflineXaiModel(), {"type": etype, "item_id": "x"})
    assert error["type"] == "error" and etype in error["error"]["message"]


def test_a_text_turn_carries_xais_quirks() -> None:
    model = OfflineXaiModel()
    send(model, {"type": "session.update", "session": {"output_modalities": ["text"]}})
    events = text_turn(model, "Say hi")
    types = [e["type"] for e in events]
    assert "session.created" not in types and types[-1] == "response.done"
    created, done = events[types.index("response.created")], events[-1]
    assert created["response"]["usage"] == {} and done["response"]["usage"] == {}
    for e in events:
        if e["type"].startswith(("response.output", "response.content_part")):
            assert "output_index" not in e and "content_index" not in e, e["type"]
    (part_done,) = [e for e in events if e["type"] == "response.content_part.done"]
    assert "part" not in part_done
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "You said: Say hi"


def test_a_function_call_item_is_added_with_role_tool() -> None:
    model = OfflineXaiModel()
    send(model, {"type": "session.update", "session": {"output_modalities": ["text"], "tools": [WEATHER]}})
    events = text_turn(model, "What is the weather in Paris?")
    (added,) = [e for e in events if e["type"] == "conversation.item.added" and e["item"]["type"] == "function_call"]
    assert added["item"]["role"] == "tool"
    (output_item,) = [e for e in events if e["type"] == "response.output_item.added"]
    assert "role" not in output_item["item"]  # only conversation.item.added carries it (as xAI's)


def test_spoken_input_is_transcribed_unasked_and_without_usage() -> None:
    model = OfflineXaiModel()  # no transcription configured: xAI transcribes every turn
    events: list[dict[str, Any]] = []
    pcm = utterance()
    for i in range(0, len(pcm), 4800):
        events += send(model, {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i:i + 4800]).decode()})
    events = stream(model, events)
    (transcribed,) = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"]
    assert "usage" not in transcribed and transcribed["transcript"]
    assert any(e["type"] == "response.output_audio.delta" and "output_index" not in e for e in events)
