"""Every path of the offline model, event for event: each scenario below drives one part of the
protocol (its refusals included) and its whole event stream is compared with a reviewed golden
copy (`tests/golden/offline_model_paths_{ga,beta}.json`), normalised as in
`test_offline_model_golden` (ids of the session, times, long audio payloads). Every event also
validates against the official SDK's models (the Driver). Regenerate with RTPROXY_GOLDEN=write and
read the diff before committing it.

Found loosely pinned by the mutation run of 2026-12-02: response parameters, item truncation and
retrieval, MCP servers, manual turn detection, each refusal's code, message and parameter."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rtproxy.offline import model as offline_model

from .audio_fixtures import append_events, silence, tone, utterance
from .test_offline_model import TOOLS, Driver, user_message
from .test_offline_model_golden import normalised

GOLDEN = Path(__file__).parent / "golden"
Scenario = Callable[[Driver], None]
SCENARIOS: dict[str, Scenario] = {}
#: Scenarios with MCP tools: the beta API has none (its SDK types have no MCP events or tools).
GA_ONLY: set[str] = set()


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def ga_only(fn: Scenario) -> Scenario:
    GA_ONLY.add(fn.__name__)
    return scenario(fn)


def session(d: Driver, **fields: Any) -> dict[str, Any]:
    """A session.update in the driver's dialect (GA needs its type)."""
    s = dict(fields) if d.model.beta else {"type": "transcription" if d.model.transcribing else "realtime", **fields}
    return {"type": "session.update", "session": s}


def manual(d: Driver) -> None:
    """Turn detection off (push to talk)."""
    d.send(session(d, turn_detection=None) if d.model.beta else
           session(d, audio={"input": {"turn_detection": None}}))


def append(d: Driver, pcm: bytes) -> None:
    d.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


def text_only(d: Driver) -> None:
    d.send(session(d, modalities=["text"]) if d.model.beta else session(d, output_modalities=["text"]))


def transcription(d: Driver, config: dict[str, Any]) -> None:
    d.send(session(d, input_audio_transcription=config) if d.model.beta else
           session(d, audio={"input": {"transcription": config}}))


@scenario
def malformed_frames_and_unknown_types(d: Driver) -> None:
    for raw in ("{not json", "[1, 2]", "[" * 100_000):
        d._take(d.model.receive(raw))
    d.send({"event_id": "e1"})  # no type
    d.send({"type": 7, "event_id": 9})  # a type and an id that are not strings
    d.send({"type": ["session.update"]})  # nor hashable
    d.send({"type": "x" * 200, "event_id": "e2"})  # the type is quoted cut to 80 characters


@scenario
def items_created_retrieved_truncated_and_deleted(d: Driver) -> None:
    d.send(user_message("First"))
    d.send({"type": "conversation.item.create", "event_id": "c2", "item": {
        "id": "mine", "type": "message", "role": "assistant", "status": "incomplete",
        "content": [{"type": "text" if d.model.beta else "output_text", "text": "An earlier reply"}]}})
    d.send({"type": "conversation.item.create", "item": {"type": "message", "role": "system",
                                                         "content": [{"type": "input_text", "text": "Be kind."}]}})
    d.send({"type": "conversation.item.retrieve", "event_id": "r1", "item_id": "mine"})
    d.send({"type": "conversation.item.retrieve", "event_id": "r2", "item_id": "missing" * 20})
    d.send({"type": "conversation.item.truncate", "event_id": "t1", "item_id": "mine", "content_index": 0,
            "audio_end_ms": 1500})
    d.send({"type": "conversation.item.truncate", "item_id": "mine", "content_index": "first", "audio_end_ms": 0})
    d.send({"type": "conversation.item.truncate", "item_id": "mine", "audio_end_ms": 10})  # index defaults to 0
    d.send({"type": "conversation.item.truncate", "item_id": "mine", "content_index": 1, "audio_end_ms": 10})
    d.send({"type": "conversation.item.truncate", "event_id": "t2", "item_id": "mine", "audio_end_ms": -1})
    d.send({"type": "conversation.item.truncate", "event_id": "t3", "item_id": "mine", "audio_end_ms": "10"})
    d.send({"type": "conversation.item.truncate", "event_id": "t4", "item_id": "nope", "audio_end_ms": 10})
    d.send({"type": "conversation.item.delete", "event_id": "d1", "item_id": "mine"})
    d.send({"type": "conversation.item.delete", "event_id": "d2", "item_id": "mine"})  # gone now
    d.send({"type": "conversation.item.retrieve", "event_id": "r3", "item_id": "mine"})
    d.send({"type": "response.create"})  # the conversation without it
    d.drain()
    d.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Hello  there"}, {"type": "input_text", "text": "my\nfriend"}]}})
    d.send({"type": "response.create"})  # the parts joined by a space; the reply's words split at spaces only
    d.drain()


@scenario
def refused_items(d: Driver) -> None:
    for i, item in enumerate([
        "text", {"type": "message", "role": "robot", "content": []},
        {"type": "message", "role": "user", "content": "text"},
        {"type": "message", "role": "user", "content": ["text"]},
        {"type": "function_call_output", "call_id": 1, "output": "x"},
        {"type": "function_call_output", "call_id": "c", "output": {"not": "text"}},
        {"type": "function_call", "name": "f"}, {"type": "function_call", "call_id": "c", "name": 3},
        {"type": "mcp_approval_response", "approval_request_id": "r", "approve": "yes"},
        {"type": "mcp_approval_response", "approve": True},
        {"type": "picture"}, {"type": "z" * 100},
    ]):
        d.send({"type": "conversation.item.create", "event_id": f"i{i}", "item": item})
    d.send({"type": "conversation.item.create", "item": {"type": "function_call", "call_id": "c9",
                                                         "name": "get_weather", "arguments": "{}"}})
    d.send({"type": "conversation.item.create", "event_id": "i12", "item": {"type": "function_call", "call_id": "c8",
                                                                            "name": "f"}})  # no arguments


@scenario
def response_parameters(d: Driver) -> None:
    d.send(user_message("Tell me a joke"))
    # a response's own modalities, instructions and metadata; the session's stay
    d.send({"type": "response.create", "response": {
        "modalities" if d.model.beta else "output_modalities": ["text"], "instructions": "Answer in one line.",
        "metadata": {"k" * 64: "v" * 512, **{f"k{i}": "v" for i in range(15)}}}})
    d.drain()
    d.send({"type": "response.create", "response": {"modalities" if d.model.beta else "output_modalities": "text",
                                                    "instructions": 42}})  # not a list, not a string: the session's
    d.drain()
    d.send({"type": "response.create", "event_id": "m1", "response": {"metadata": {f"k{i}": "v" for i in range(17)}}})
    d.send({"type": "response.create", "event_id": "m2", "response": {"metadata": {"k" * 65: "v"}}})
    d.send({"type": "response.create", "event_id": "m3", "response": {"metadata": {"k": "v" * 513}}})
    d.send({"type": "response.create", "event_id": "m4", "response": {"metadata": {"k": 1}}})
    d.send({"type": "response.create", "event_id": "m5", "response": {"metadata": ["k", "v"]}})
    d.send({"type": "response.create", "event_id": "p1", "response": "text"})
    d.send({"type": "response.create", "event_id": "p2", "response": {"tools": "all"}})
    d.send({"type": "response.create", "response": None})  # no parameters
    d.send({"type": "response.create", "event_id": "busy"})  # one is already streaming
    d.drain()


@scenario
def tool_choice_by_session_and_by_response(d: Driver) -> None:
    text_only(d)
    lookup = {"type": "function", "name": "lookupOrderStatus", "parameters": {"type": "object", "properties": {
        "order": {"type": "integer"}, "express": {"type": "boolean"}, "when": {"type": "string",
                                                                                "enum": ["today", "later"]}}}}
    d.send(session(d, tools=[*TOOLS, lookup], tool_choice="none"))
    d.send(user_message("What is the weather in Paris? use get_weather"))
    d.send({"type": "response.create"})  # the session says none: a message
    d.drain()
    d.send({"type": "response.create", "response": {"tool_choice": "auto"}})  # the topic names get_weather
    d.drain()
    d.send(user_message("Where is order 1234 Acme"))
    d.send({"type": "response.create", "response": {"tool_choice": "auto"}})  # "order": lookupOrderStatus
    d.drain()
    d.send(user_message("Hello"))
    d.send({"type": "response.create", "response": {"tool_choice": "required"}})  # the first tool
    d.drain()
    d.send({"type": "response.create", "response": {"tool_choice": {"type": "function", "name": "lookupOrderStatus"}}})
    d.drain()
    d.send({"type": "response.create", "response": {"tool_choice": {"type": "function", "name": "unknown"}}})
    d.drain()
    d.send({"type": "response.create", "response": {"tools": [], "tool_choice": "required"}})  # none to call
    d.drain()
    d.send({"type": "response.create", "response": {"tools": [{"name": "get_time"}], "tool_choice": "required"}})
    d.drain()


@scenario
def function_call_outputs_are_answered(d: Driver) -> None:
    text_only(d)
    d.send(session(d, tools=TOOLS))
    d.send(user_message("What is the weather in Paris? use get weather"))
    d.send({"type": "response.create"})
    d.drain()
    call = d.sent[-1]["response"]["output"][0]
    d.send({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": call["call_id"],
                                                         "output": "{\"temp_c\": 18}"}})
    d.send({"type": "response.create"})
    d.drain()
    d.send({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "unknown",
                                                         "output": "42"}})
    d.send({"type": "response.create"})
    d.drain()
    d.send(user_message(""))
    d.send({"type": "response.create"})  # nothing said: "I heard you."
    d.drain()


@scenario
def the_first_response_of_an_empty_conversation_greets(d: Driver) -> None:
    d.send({"type": "response.create"})
    d.drain()


@scenario
def refused_tools(d: Driver) -> None:
    for i, tools in enumerate([
        {"name": "f"}, ["f"], [{"type": "retrieval"}], [{"name": "bad name"}], [{"name": "x" * 65}],
        [{"name": "f", "parameters": "none"}], [{"type": "mcp", "server_url": "https://m"}],
        [{"type": "mcp", "server_label": "bad label", "server_url": "https://m"}],
        [{"type": "mcp", "server_label": "docs"}], [{"type": "mcp", "server_label": "docs", "server_url": 1}],
        [{"type": "mcp", "server_label": "docs", "server_url": "https://m"}, {"name": "bad name"}],
    ]):
        d.send({**session(d, tools=tools), "event_id": f"s{i}"})
    d.send({**session(d, tools=[{"name": "f"}]), "event_id": "ok"})


@ga_only
def mcp_servers_by_connector_or_tunnel(d: Driver) -> None:
    d.send({**session(d, tools=[{"name": "f"}, {"type": "mcp", "server_label": "d", "connector_id": "connector_gmail"},
                                {"type": "mcp", "server_label": "t", "tunnel_id": "t"}]), "event_id": "ok"})


@ga_only
def mcp_servers_list_ask_call_and_answer(d: Driver) -> None:
    text_only(d)
    d.send(user_message("Hello"))
    d.send(session(d, tools=[
        {"type": "mcp", "server_label": "asks", "server_url": "https://a.example/mcp"},
        {"type": "mcp", "server_label": "free", "server_url": "https://f.example/mcp", "require_approval": "never",
         "allowed_tools": ["add"]},
        {"type": "mcp", "server_label": "some", "server_url": "https://s.example/mcp",
         "require_approval": {"never": {"tool_names": ["echo"]}}, "allowed_tools": {"tool_names": ["echo"]}},
    ]))
    d.send(session(d, tools=[{"type": "mcp", "server_label": "asks", "server_url": "https://a.example/mcp"},
                             {"type": "mcp", "server_label": "late", "server_url": "https://l.example/mcp"}]))
    d.send(user_message("Please echo hello there"))  # "asks" is first and allows echo: it asks
    d.send({"type": "response.create"})
    d.drain()
    request = d.sent[-1]["response"]["output"][0]
    d.send({"type": "conversation.item.create", "item": {"type": "mcp_approval_response", "approve": True,
                                                         "approval_request_id": request["id"]}})
    d.send({"type": "response.create"})
    d.drain()
    d.send(session(d, tools=[
        {"type": "mcp", "server_label": "free", "server_url": "https://f.example/mcp", "require_approval": "never",
         "allowed_tools": ["add"]},
        {"type": "mcp", "server_label": "some", "server_url": "https://s.example/mcp",
         "require_approval": {"never": {"tool_names": ["echo"]}}, "allowed_tools": {"tool_names": ["echo"]}}]))
    d.send(user_message("add 2.5 and 3"))  # free: called at once
    d.send({"type": "response.create"})
    d.drain()
    d.send(user_message("echo"))  # some: echo needs no approval there; nothing after the name: the text
    d.send({"type": "response.create"})
    d.drain()
    d.send(user_message("add 2 and 3"))
    d.send({"type": "response.create", "response": {"tool_choice": "none"}})  # told not to
    d.drain()
    d.send({"type": "conversation.item.create", "item": {"type": "mcp_approval_response", "approve": True,
                                                         "approval_request_id": "never-asked"}})
    d.send({"type": "response.create"})
    d.drain()
    d.send(session(d, tools=[{"type": "mcp", "server_label": "free", "server_url": "https://f.example/mcp"}, *TOOLS]))
    d.send(user_message("What is the weather in Rome?"))  # names no MCP tool: the function tool
    d.send({"type": "response.create"})
    d.drain()


@ga_only
def an_mcp_call_refused_by_its_user(d: Driver) -> None:
    text_only(d)
    d.send(session(d, tools=[{"type": "mcp", "server_label": "asks", "server_url": "https://a.example/mcp",
                              "require_approval": {"never": {"tool_names": ["add"]}}}]))
    d.send(user_message("echo this"))
    d.send({"type": "response.create"})
    d.drain()
    request = d.sent[-1]["response"]["output"][0]
    d.send({"type": "conversation.item.create", "item": {"type": "mcp_approval_response", "approve": False,
                                                         "approval_request_id": request["id"], "reason": "no"}})
    d.send({"type": "response.create"})
    d.drain()


@scenario
def push_to_talk(d: Driver) -> None:
    manual(d)
    transcription(d, {"model": "gpt-4o-mini-transcribe", "prompt": "Names: Ada"})
    append(d, tone(50) + b"\x00" * 24)
    d.send({"type": "input_audio_buffer.commit", "event_id": "short"})  # 50.5 ms: too short
    append(d, tone(50)[24:])
    d.send({"type": "input_audio_buffer.commit"})  # 100 ms: enough
    append(d, tone(110))
    d.send({"type": "input_audio_buffer.commit"})
    d.send({"type": "input_audio_buffer.commit", "event_id": "empty"})
    append(d, tone(200))
    d.send({"type": "input_audio_buffer.clear"})
    d.send({"type": "input_audio_buffer.commit", "event_id": "cleared"})
    d.send({"type": "input_audio_buffer.append", "event_id": "a1", "audio": 5})
    d.send({"type": "input_audio_buffer.append", "event_id": "a2", "audio": "not base64!"})
    transcription(d, {"model": "whisper-1"})
    append(d, tone(1234))
    d.send({"type": "input_audio_buffer.commit"})
    append(d, tone(1050) + b"\x00" * 47)
    d.send({"type": "input_audio_buffer.commit"})  # 1,050 ms and a part: "1.1 seconds", billed 1.05
    transcription(d, {"model": "gpt-4o-transcribe", "prompt": ""})
    append(d, tone(300))
    d.send({"type": "input_audio_buffer.commit"})
    transcription(d, None)
    append(d, tone(300))
    d.send({"type": "input_audio_buffer.commit"})  # no transcription events
    d.send({"type": "response.create"})
    d.drain()  # three audio items of input: billed as audio tokens, their transcripts not as text


@scenario
def voice_turns_follow_the_turn_detection_settings(d: Driver) -> None:
    td = {"type": "server_vad", "create_response": False, "silence_duration_ms": 300, "threshold": 0.6,
          "prefix_padding_ms": 0}
    d.send(session(d, turn_detection=td) if d.model.beta else session(d, audio={"input": {"turn_detection": td}}))
    for event in append_events(silence(300) + utterance() + silence(500)):
        d.send(event)  # a turn, and no response: create_response is off
    d.send({"type": "response.create"})
    d.drain()
    td = {"type": "semantic_vad", "interrupt_response": False}
    d.send(session(d, turn_detection=td) if d.model.beta else session(d, audio={"input": {"turn_detection": td}}))
    d.send(user_message("Tell me a joke"))
    d.send({"type": "response.create"})
    d.model.next_chunk()
    for event in append_events(silence(300) + utterance() + silence(800)):
        d.send(event)  # speech while it answers: not interrupted
    d.drain()
    for event in append_events(silence(100) + utterance(lead_ms=0, tail_ms=0)):
        d.send(event)  # speech started (an automatic response answers the turn before), then cleared before it stopped
    d.send({"type": "input_audio_buffer.clear"})
    d.send({"type": "output_audio_buffer.clear"})  # nothing playing: no response id
    d.send(user_message("Tell me a joke"))
    d.send({"type": "response.create"})
    d.send({"type": "output_audio_buffer.clear"})
    d.send({"type": "response.cancel"})


@scenario
def a_response_cancelled_inside_a_function_call_closes_it_incomplete(d: Driver) -> None:
    text_only(d)
    d.send(session(d, tools=TOOLS))
    for cancel_after in ("response.output_item.added", "response.function_call_arguments.done"):
        d.send(user_message("What is the weather in Paris? use get_weather"))
        d.send({"type": "response.create"})
        while not any(e["type"] == cancel_after for e in d._take(d.model.next_chunk())):
            pass
        d.send({"type": "response.cancel"})  # mid-call, then between the closed call and the end


@ga_only
def a_response_cancelled_inside_an_mcp_call_closes_it_incomplete(d: Driver) -> None:
    text_only(d)
    d.send(session(d, tools=[{"type": "mcp", "server_label": "free", "server_url": "https://f.example/mcp",
                              "require_approval": "never"}]))
    d.send(user_message("echo this"))
    d.send({"type": "response.create"})
    d._take(d.model.next_chunk())
    d.send({"type": "response.cancel"})


@scenario
def a_shorter_context_caches_no_more_than_it_holds(d: Driver) -> None:
    text_only(d)
    manual(d)
    append(d, tone(3000))
    d.send({"type": "input_audio_buffer.commit"})
    audio_item = d.model.items[-1]["id"]
    d.send(user_message("A long question about the weather, " * 20))
    long_item = d.model.items[-1]["id"]
    d.send({"type": "response.create"})
    d.drain()
    for item_id in (long_item, d.model.items[-1]["id"]):  # the question and its reply
        d.send({"type": "conversation.item.delete", "item_id": item_id})
    d.send({"type": "response.create"})  # less text than before: the cache holds at most what is left
    d.drain()
    d.send({"type": "conversation.item.delete", "item_id": audio_item})
    d.send({"type": "response.create"})  # the deleted audio is no longer input
    d.drain()


@scenario
def a_tool_is_chosen_by_its_name_written_either_way(d: Driver) -> None:
    text_only(d)
    d.send(session(d, tools=[{"type": "function", "name": "lookup_info"}]))  # no topic words: all action
    for words in ("Please call lookup_info now", "Please lookup info now", "Hello"):
        d.send(user_message(words))
        d.send({"type": "response.create"})
        d.drain()


@scenario
def refused_session_updates(d: Driver) -> None:
    bad_td = {"type": "server_vad", "threshold": "high"}
    for i, update in enumerate([
        session(d, turn_detection={"type": "push"}) if d.model.beta else
        session(d, audio={"input": {"turn_detection": {"type": "push"}}}),
        session(d, turn_detection=bad_td) if d.model.beta else session(d, audio={"input": {"turn_detection": bad_td}}),
        session(d, input_audio_transcription="whisper-1") if d.model.beta else
        session(d, audio={"input": {"transcription": "whisper-1"}}),
        session(d, input_audio_transcription={"prompt": 5}) if d.model.beta else
        session(d, audio={"input": {"transcription": {"prompt": 5}}}),
        session(d, voice=7) if d.model.beta else session(d, audio={"output": {"voice": 7}}),
        session(d, modalities=["audio"]) if d.model.beta else session(d, output_modalities=["text", "audio"]),
        session(d, modalities=["text", "text"]) if d.model.beta else session(d, output_modalities=["text", "text"]),
        session(d, instructions=["Be brief."]),
        {"type": "transcription_session.update", "session": {}},
    ]):
        d.send({**update, "event_id": f"u{i}"})
    d.send({"type": "session.update", "event_id": "u9", "session": []})


@scenario
def several_responses_read_a_cached_prefix(d: Driver) -> None:
    text_only(d)
    d.send(session(d, instructions="You are a careful assistant who answers every question in full. " * 4))
    for words in ("What is the weather in Paris?", "And in London?", "And in Tokyo?"):
        d.send(user_message(words))
        d.send({"type": "response.create"})
        d.drain()


@ga_only
def image_parts_count_as_image_tokens(d: Driver) -> None:  # the beta API takes no images
    text_only(d)
    d.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
        {"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": "https://x/y.png"}]}})
    d.send({"type": "response.create"})
    d.drain()


def _run(name: str, dialect: str, intent: str = "conversation") -> list[dict[str, Any]]:
    d = Driver(dialect, intent)
    SCENARIOS[name](d)
    return normalised(d.sent, d)


def _golden(dialect: str) -> dict[str, Any]:
    path = GOLDEN / f"offline_model_paths_{dialect}.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.mark.parametrize("name, dialect", [(name, dialect) for name in SCENARIOS for dialect in ("ga", "beta")
                                           if dialect == "ga" or name not in GA_ONLY])
def test_each_path_gives_exactly_the_golden_events(name: str, dialect: str) -> None:
    got = _run(name, dialect)
    if os.environ.get("RTPROXY_GOLDEN") == "write":
        path = GOLDEN / f"offline_model_paths_{dialect}.json"
        path.write_text(json.dumps({**_golden(dialect), name: got}, indent=1, sort_keys=True) + "\n")
    assert got == _golden(dialect)[name]


def test_the_golden_files_hold_the_scenarios_and_nothing_else() -> None:
    assert sorted(_golden("ga")) == sorted(SCENARIOS)
    assert sorted(_golden("beta")) == sorted(set(SCENARIOS) - GA_ONLY)


def test_the_oldest_items_and_input_audio_are_dropped_over_their_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline_model, "MAX_ITEMS", 3)
    monkeypatch.setattr(offline_model, "MAX_INPUT_BUFFER_BYTES", 48 * 150)  # 150 ms
    d = Driver()
    for i in range(5):
        d.send(user_message(f"m{i}"))
    assert [i["content"][0]["text"] for i in d.model.items] == ["m2", "m3", "m4"]
    manual(d)
    append(d, tone(100, freq=100.0) + tone(100, freq=300.0))
    assert bytes(d.model._input) == (tone(100, freq=100.0) + tone(100, freq=300.0))[-48 * 150:]
