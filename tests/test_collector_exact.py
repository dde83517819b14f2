"""The realtime collector's tool calls and messages to the field: each MCP item kind as it is
recorded, the conversation's items by part type, a WebRTC call's echoed items, and input
transcriptions (found loosely pinned by the mutation run of 2026-12-02)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

from rtproxy.protocols.realtime.collector import MAX_OPEN_RESPONSES, MAX_OPEN_TRANSCRIPTIONS, Collector
from rtproxy.spend.pricing import Price
from rtproxy.spend.records import SessionEnd

from .test_collector import PRICE, Clock, feed, meta


def done(*output: dict[str, Any], rid: str = "resp_1") -> dict[str, Any]:
    return {"type": "response.done", "response": {"id": rid, "status": "completed", "output": list(output),
                                                  "usage": {"input_tokens": 1, "output_tokens": 1}}}


def test_each_mcp_item_kind_is_recorded_field_by_field() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "conversation.item.done", "item": {
        "type": "mcp_list_tools", "id": "l1", "server_label": "docs",
        "tools": [{"name": "search"}, {"name": ""}, "junk", {"name": "fetch"}]}})
    feed(c, "client", {"type": "conversation.item.create", "item": {
        "type": "mcp_approval_response", "id": "a1", "approval_request_id": "q1", "approve": True, "reason": "ok"}})
    feed(c, "client", {"type": "conversation.item.create", "item": {
        "type": "mcp_approval_response", "id": "a2", "approval_request_id": "q2", "approve": "yes"}})
    (r,) = feed(c, "server", done(
        {"type": "mcp_call", "id": "m1", "server_label": "docs", "name": "search", "arguments": '{"q":1}',
         "output": "found", "error": {"type": "x"}, "approval_request_id": "q1"},
        {"type": "mcp_call", "id": "m2", "name": "fetch", "output": {"not": "text"}, "error": "not a dict"},
        {"type": "mcp_approval_request", "id": "q3", "server_label": "docs", "name": "delete", "arguments": "{}"},
        {"type": "function_call", "call_id": "c1", "name": "get_time", "arguments": {"tz": "UTC"}},
        {"type": "something_else", "id": "z"}))
    assert r["response"]["tool_calls"] == [
        {"id": "l1", "type": "mcp_list_tools", "mcp": {"server_label": "docs", "tools": ["search", "fetch"]}},
        {"id": "a1", "type": "mcp_approval_response", "mcp": {"approval_request_id": "q1", "approve": True,
                                                              "reason": "ok"}},
        {"id": "a2", "type": "mcp_approval_response", "mcp": {"approval_request_id": "q2", "approve": None,
                                                              "reason": None}},
        {"id": "m1", "type": "mcp_call", "mcp": {"server_label": "docs", "name": "search", "arguments": '{"q":1}',
                                                 "output": "found", "error": {"type": "x"},
                                                 "approval_request_id": "q1"}},
        {"id": "m2", "type": "mcp_call", "mcp": {"server_label": None, "name": "fetch", "arguments": None,
                                                 "output": None, "error": None, "approval_request_id": None}},
        {"id": "q3", "type": "mcp_approval_request", "mcp": {"server_label": "docs", "name": "delete",
                                                             "arguments": "{}"}},
        {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}},
    ]
    (again,) = feed(c, "server", done(rid="resp_2"))
    assert again["response"]["tool_calls"] == []  # each item once


def test_a_list_of_tools_names_at_most_256_and_a_listing_without_a_list_names_none() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "conversation.item.done", "item": {
        "type": "mcp_list_tools", "id": "l1", "tools": [{"name": f"t{i}"} for i in range(300)]}})
    feed(c, "server", {"type": "conversation.item.done", "item": {"type": "mcp_list_tools", "id": "l2",
                                                                  "tools": "nope"}})
    (r,) = feed(c, "server", done())
    first, second = r["response"]["tool_calls"]
    assert first["mcp"]["tools"] == [f"t{i}" for i in range(256)] and first["mcp"]["server_label"] is None
    assert second["mcp"]["tools"] == []


def test_the_clients_items_are_recorded_by_part_type() -> None:
    c = Collector(meta(), now=Clock())
    for item in (
        {"type": "function_call_output", "call_id": "c1", "output": {"temp": 18}},
        {"type": "function_call_output", "call_id": "c2", "output": "sunny"},
        {"type": "message", "content": [{"type": "input_text", "text": "Hi"}, {"type": "input_text", "text": "  "},
                                        {"type": "text", "text": "there"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Earlier reply"}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64," + "A" * 400},
            {"type": "input_image", "image_url": "data:;base64,AAAA"},
            {"type": "input_image", "image_url": "data:text/plain,hello"},
            {"type": "input_image", "image_url": "https://x/y.png"},
            {"type": "input_audio", "audio": "AAAA", "transcript": "spoken"},
            {"type": "input_audio", "audio": "AAAA", "transcript": "  "},
            {"type": "input_audio", "audio": "AAAA"}]},
        {"type": "message", "content": "not a list"},
        {"type": "function_call", "call_id": "x"},  # not a message: nothing
    ):
        feed(c, "client", {"type": "conversation.item.create", "item": item})
    (r,) = feed(c, "server", done())
    assert r["messages"] == [
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 18}'},
        {"role": "tool", "tool_call_id": "c2", "content": "sunny"},
        {"role": "user", "content": "Hi", "source": "text"},
        {"role": "user", "content": "there", "source": "text"},
        {"role": "assistant", "content": "Earlier reply"},
        {"role": "user", "content": "[image: image/png, about 300 bytes]", "source": "image"},
        {"role": "user", "content": "[image: unknown type, about 3 bytes]", "source": "image"},
        {"role": "user", "content": "[image: text/plain, about 5 bytes]", "source": "image"},
        {"role": "user", "content": "[image: by URL]", "source": "image"},
        {"role": "user", "content": "spoken", "source": "transcript"},
    ]


def test_a_webrtc_calls_items_are_recorded_from_the_providers_echo() -> None:
    c = Collector(attrs.evolve(meta(), transport="webrtc"), now=Clock())
    for item in (
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "typed"},
                                                        {"type": "input_audio", "transcript": "said"}]},
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "be brief"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "not echoed twice"}]},
        {"type": "function_call_output", "call_id": "c1", "output": "18"},
        {"type": "mcp_approval_response", "id": "a1", "approval_request_id": "q1", "approve": False},
        {"type": "function_call", "call_id": "c2"},
    ):
        feed(c, "server", {"type": "conversation.item.done", "item": item})
    (r,) = feed(c, "server", done())
    assert r["messages"] == [{"role": "user", "content": "typed", "source": "text"},
                             {"role": "system", "content": "be brief"},
                             {"role": "tool", "tool_call_id": "c1", "content": "18"}]
    assert r["response"]["tool_calls"] == [{"id": "a1", "type": "mcp_approval_response", "mcp": {
        "approval_request_id": "q1", "approve": False, "reason": None}}]
    # over a WebSocket the client's own frames are recorded, never the echo
    ws = Collector(meta(), now=Clock())
    feed(ws, "server", {"type": "conversation.item.done", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "echo"}]}})
    (r,) = feed(ws, "server", done())
    assert r["messages"] == []


WHISPER = {"type": "tokens", "input_tokens": 20, "output_tokens": 5,
           "input_token_details": {"text_tokens": 0, "audio_tokens": 20}}


def test_an_input_transcription_is_its_own_record_priced_by_its_model() -> None:
    asked: list[str] = []

    def price_of(name: str) -> Any:
        asked.append(name)
        return Price(1e6, 1e6, 0, 0, 1e6, 0)  # a dollar a token, to see every count

    c = Collector(attrs.evolve(meta(), model_price=price_of), now=Clock())
    feed(c, "client", {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "gpt-4o-transcribe"}}}}})
    feed(c, "server", {"type": "session.updated", "session": {}})  # the provider confirms it
    feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": "i1"})
    feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": "i2"})
    (t,) = feed(c, "server", {"type": "conversation.item.input_audio_transcription.completed", "item_id": "i1",
                              "transcript": "hello", "usage": WHISPER})
    assert {k: t[k] for k in ("record", "item_id", "transcription_model", "duration_ms", "usage", "usage_source",
                              "cost_usd", "cost_breakdown", "transcript", "error")} == {
        "record": "transcription", "item_id": "i1", "transcription_model": "gpt-4o-transcribe", "duration_ms": 0,
        "usage": WHISPER, "usage_source": "provider", "cost_usd": 25.0,
        "cost_breakdown": {"input_text": 0.0, "input_audio": 20.0, "cached_text": 0.0, "cached_audio": 0.0,
                           "input_image": 0.0, "cached_image": 0.0, "output_text": 5.0, "output_audio": 0.0},
        "transcript": "hello", "error": None}
    assert t["start_time"] == t["end_time"] and asked == ["gpt-4o-transcribe"]
    (t2,) = feed(c, "server", {"type": "conversation.item.input_audio_transcription.completed", "item_id": "i2",
                               "transcript": "", "usage": WHISPER})
    assert t2["transcript"] is None
    s = c.finish(SessionEnd("client", 1000))
    assert s["transcriptions"] == 2 and s["transcriptions_unreported"] == 0
    assert s["transcription_usage"] == {"input_tokens": 40, "output_tokens": 10,
                                        "input_token_details": {"text_tokens": 0, "audio_tokens": 40}}
    assert s["cost_usd"] == 50.0


def test_settling_cancels_each_open_response_once_in_this_exact_frame() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "response.created", "response": {"id": "r1"}})
    assert c.settle_frames() == ['{"type": "response.cancel", "event_id": "event_rtp_settle_1", "response_id": "r1"}']
    feed(c, "server", {"type": "response.created", "response": {"id": "r2"}})
    assert c.settle_frames() == ['{"type": "response.cancel", "event_id": "event_rtp_settle_2", "response_id": "r2"}']
    assert c.settle_frames() == []
    (r,) = feed(c, "server", done(rid="r1"))
    s = c.finish(SessionEnd("client", 1000))
    assert s["responses_settled"] == 1


def test_an_unreported_response_is_estimated_from_what_was_relayed_since_it_started() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "client", {"type": "conversation.item.create", "item": {"type": "message", "content": [
        {"type": "input_text", "text": "x" * 40}]}})
    c.note_audio(16_000, 8_000)  # base64 bytes so far: 12,000 bytes of PCM in (0.25 s), 6,000 out
    feed(c, "server", {"type": "response.created", "response": {"id": "r1"}})
    feed(c, "server", {"type": "response.output_audio_transcript.delta", "response_id": "r1", "delta": "abcd"})
    feed(c, "server", {"type": "response.output_audio_transcript.delta", "response_id": "r1", "delta": "efgh"})
    feed(c, "server", {"type": "response.output_audio_transcript.delta", "response_id": "other", "delta": "zz"})
    feed(c, "server", {"type": "response.output_text.delta", "response_id": "r1", "delta": "12345678"})
    feed(c, "client", {"type": "response.create"})  # asked, never acknowledged
    feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": "i9"})
    c.note_audio(16_000, 8_000 + 64_000)  # 64,000 more base64 bytes out: 48,000 bytes, 1 s at 24 kHz
    (r,) = c.unsettled()
    usage = r["usage"]
    assert (r["status"], r["usage_source"], r["error"]["code"]) == ("incomplete", "estimated", "response_not_reported")
    assert usage["output_token_details"] == {"text_tokens": 2, "audio_tokens": 20}  # 8 chars; 1 s of audio
    assert usage["input_token_details"]["text_tokens"] == 10  # 40 characters typed before it
    s = c.finish(SessionEnd("client", 1001))
    assert (s["responses_estimated"], s["responses_unestimated"], s["responses_in_flight"]) == (1, 1, 2)


def test_a_beta_session_config_is_recorded_as_the_request() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "client", {"type": "session.update", "session": {
        "instructions": "Be brief.", "tools": "not a list", "tool_choice": "auto", "modalities": ["text"],
        "voice": "alloy", "turn_detection": {"type": "server_vad"},
        "input_audio_transcription": {"model": "whisper-1"}}})
    feed(c, "server", {"type": "session.updated", "session": {}})  # the provider confirms it
    (r,) = feed(c, "server", done())
    assert r["proxy_server_request"] == {
        "model": "gpt-realtime", "instructions": "Be brief.", "tools": [], "tool_choice": "auto",
        "modalities": ["text"], "voice": "alloy", "turn_detection": {"type": "server_vad"},
        "input_audio_transcription": {"model": "whisper-1"}}
    feed(c, "client", {"type": "session.update", "session": {"output_modalities": ["audio"], "modalities": "x"}})
    feed(c, "server", {"type": "session.updated", "session": {}})  # the provider confirms it
    (r,) = feed(c, "server", done(rid="resp_2"))
    assert r["proxy_server_request"]["modalities"] == ["audio"]


def test_a_responses_text_and_transcript_are_its_parts_joined() -> None:
    c = Collector(meta(), now=Clock())
    (r,) = feed(c, "server", {"type": "response.done", "response": {"id": "r1", "usage": {}, "output": [
        {"type": "message", "content": [{"type": "output_text", "text": "Hel"}, {"type": "text", "text": "lo"},
                                        {"type": "output_text", "text": ""}, {"type": "output_audio", "transcript": "Sa"},
                                        {"type": "audio", "transcript": "id"}, {"type": "audio"}]},
        {"type": "message", "content": "not a list"}]}})
    assert (r["response"]["output_text"], r["response"]["output_transcript"]) == ("Hello", "Said")
    assert r["status"] == "completed"  # no status given


def test_an_unreported_voice_response_is_estimated_from_its_transcript_when_no_audio_was_relayed() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "response.created", "response": {"id": "r1"}})
    for delta in ("x" * 15, "y" * 15):
        feed(c, "server", {"type": "response.output_audio_transcript.delta", "response_id": "r1", "delta": delta})
    feed(c, "server", {"type": "response.output_audio_transcript.delta", "response_id": "r1", "delta": 7})
    (r,) = c.unsettled()
    assert r["usage"]["output_token_details"]["audio_tokens"] == 40  # 30 characters ≈ 2 s of speech
    assert c.unsettled() == []  # each once


def test_every_settled_response_is_counted() -> None:
    c = Collector(meta(), now=Clock())
    for rid in ("r1", "r2"):
        feed(c, "server", {"type": "response.created", "response": {"id": rid}})
    c.settle_frames()
    feed(c, "server", done(rid="r1"))
    feed(c, "server", done(rid="r2"))
    assert c.finish(SessionEnd("client", 1000))["responses_settled"] == 2


def test_text_over_the_bound_is_cut_and_marked() -> None:
    from rtproxy.protocols.realtime.collector import MAX_TEXT_CHARS, _clip
    assert _clip("x" * MAX_TEXT_CHARS) == "x" * MAX_TEXT_CHARS
    assert _clip("x" * (MAX_TEXT_CHARS + 1)) == "x" * MAX_TEXT_CHARS + "…[truncated]"


def test_an_image_placeholder_reads_the_first_comma_and_the_first_parameter() -> None:
    from rtproxy.protocols.realtime.collector import _image_placeholder
    assert _image_placeholder("data:text/plain,a,b") == "[image: text/plain, about 3 bytes]"
    assert _image_placeholder("data:image/png;charset=x;base64,AAAA") == "[image: image/png, about 3 bytes]"
    assert _image_placeholder("data:" + "m" * 70 + ",x") == "[image: " + "m" * 64 + ", about 1 bytes]"


def test_an_mcp_url_keeps_scheme_host_port_and_path_only() -> None:
    from rtproxy.protocols.realtime.collector import _redact_url
    assert _redact_url("https://u:p@h.example:8443/mcp?token=s#f") == "https://h.example:8443/mcp?[redacted]"
    assert _redact_url("https://h.example/mcp") == "https://h.example/mcp"
    assert _redact_url("file:///srv/mcp") == "file:///srv/mcp"
    assert _redact_url("http://[::1") == "[unparsable URL]"
    assert _redact_url(None) is None


def test_the_pending_messages_and_tool_items_keep_the_newest_and_count_what_they_drop(monkeypatch: Any) -> None:
    from rtproxy.protocols.realtime import collector as collector_module
    monkeypatch.setattr(collector_module, "MAX_PENDING_MESSAGES", 2)
    monkeypatch.setattr(collector_module, "MAX_PENDING_TOOL_ITEMS", 2)
    c = Collector(meta(), now=Clock())
    for i in range(4):
        feed(c, "client", {"type": "conversation.item.create", "item": {"type": "function_call_output",
                                                                         "call_id": f"c{i}", "output": "x"}})
        feed(c, "client", {"type": "conversation.item.create", "item": {
            "type": "mcp_approval_response", "id": f"a{i}", "approval_request_id": "q", "approve": True}})
    (r,) = feed(c, "server", done())
    assert [m["tool_call_id"] for m in r["messages"]] == ["c2", "c3"]
    assert [t["id"] for t in r["response"]["tool_calls"]] == ["a2", "a3"]
    assert c.finish(SessionEnd("client", 1000))["messages_dropped"] == 4


def test_several_unreported_responses_share_out_what_was_relayed_once() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "client", {"type": "conversation.item.create", "item": {"type": "message", "content": [
        {"type": "input_text", "text": "x" * 40}]}})
    c.note_audio(8_000, 0)
    for rid in ("r1", "r2"):
        feed(c, "server", {"type": "response.created", "response": {"id": rid}})
    feed(c, "client", {"type": "response.create"})
    first, second = c.unsettled()
    assert first["usage"]["input_token_details"]["text_tokens"] == 10
    assert first["usage"]["input_token_details"]["audio_tokens"] > 0
    # the second was sent after the first: the same input is not billed twice
    assert second["usage"]["input_token_details"] == {"text_tokens": 0, "audio_tokens": 0, "cached_tokens": 0,
                                                      "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0}}
    feed(c, "server", {"type": "response.created", "response": {"id": "r3"}})
    feed(c, "client", {"type": "response.create"})
    (third,) = c.unsettled()  # nothing relayed since: nothing in
    assert third["usage"]["input_tokens"] == 0
    s = c.finish(SessionEnd("client", 1001))
    assert (s["responses_estimated"], s["responses_unestimated"], s["responses_in_flight"]) == (3, 2, 5)


def test_nothing_relayed_estimates_no_input_audio() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "response.created", "response": {"id": "r1"}})
    (r,) = c.unsettled()
    assert r["usage"]["total_tokens"] == 0


def test_a_transcription_sessions_own_events_update_its_config_and_settle_its_items() -> None:
    c = Collector(attrs.evolve(meta(), call_type="transcription"), now=Clock())
    c._transcription_session = True
    feed(c, "server", {"type": "transcription_session.updated", "session": {
        "input_audio_transcription": {"model": "whisper-1"}}})
    assert c.config.transcription_model == "whisper-1"
    feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": "i1"})
    assert c.in_flight == 1
    feed(c, "server", {"type": "conversation.item.input_audio_transcription.failed", "item_id": "i1"})
    assert c.in_flight == 0
    s = c.finish(SessionEnd("client", 1000))
    assert s["transcriptions_unreported"] == 0 and s["upstream_session_id"] is None and s["last_error_event"] is None


def test_fields_of_the_wrong_type_read_as_absent_and_never_raise() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "session.created", "session": {"id": 123, "tools": ["junk", {"type": "function",
                                                                                        "name": "f", "headers": 1}]}})
    feed(c, "server", {"type": "conversation.item.done", "item": {"type": "mcp_list_tools", "id": "l1"}})
    feed(c, "client", {"type": "conversation.item.create", "item": {"type": "message", "role": "user"}})
    feed(c, "server", {"type": "conversation.item.input_audio_transcription.failed", "item_id": "never-committed"})
    feed(c, "server", {"type": "response.output_text.delta", "response_id": "unknown", "delta": "x"})
    (r,) = feed(c, "server", done({"type": "message", "content": "not a list"},
                                  {"type": "message", "content": [{"type": "output_text"},
                                                                  {"type": "output_audio", "text": "not text"}]}))
    assert c.upstream_session_id is None
    assert c.config.tools == ["junk", {"type": "function", "name": "f", "headers": 1}]  # function tools as they are
    assert r["response"]["tool_calls"] == [{"id": "l1", "type": "mcp_list_tools", "mcp": {"server_label": None,
                                                                                         "tools": []}}]
    assert r["response"]["output_text"] is None and r["messages"] == []


def test_a_boolean_in_usage_is_skipped_and_the_counts_after_it_still_add_up() -> None:
    c = Collector(meta(), now=Clock())
    for rid in ("r1", "r2"):
        feed(c, "server", {"type": "response.done", "response": {
            "id": rid, "usage": {"flag": True, "input_tokens": 3, "output_tokens": 2}}})
    assert c.usage == {"input_tokens": 6, "output_tokens": 4}


def test_a_responses_tool_overrides_are_recorded_redacted_and_a_non_object_is_no_override() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "client", {"type": "response.create", "response": {"tools": [
        {"type": "mcp", "server_label": "d", "server_url": "https://h/p?token=s", "authorization": "Bearer s"}]}})
    feed(c, "server", {"type": "response.created", "response": {"id": "resp_1"}})  # the provider started it
    (r,) = feed(c, "server", done())
    assert r["proxy_server_request"]["response_overrides"] == {
        "tools": [{"type": "mcp", "server_label": "d", "server_url": "https://h/p?[redacted]"}]}
    for junk in ("junk", {}):
        feed(c, "client", {"type": "response.create", "response": junk})
        feed(c, "server", {"type": "response.created", "response": {"id": "resp_1"}})
        (r,) = feed(c, "server", done())
        assert "response_overrides" not in r["proxy_server_request"]


def test_instructions_are_one_system_message_first_once_per_change() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "client", {"type": "conversation.item.create", "item": {"type": "message", "content": [
        {"type": "input_text", "text": "Hi"}]}})
    feed(c, "client", {"type": "session.update", "session": {"instructions": "Be brief."}})
    feed(c, "server", {"type": "session.updated", "session": {}})  # the provider confirms it
    (r,) = feed(c, "server", done())
    assert [m["role"] for m in r["messages"]] == ["system", "user"]
    feed(c, "server", {"type": "session.updated", "session": {"instructions": "Be brief."}})  # the same: not again
    (r,) = feed(c, "server", done(rid="r2"))
    assert r["messages"] == []
    feed(c, "client", {"type": "session.update", "session": {"instructions": ""}})  # cleared: nothing to record
    feed(c, "server", {"type": "session.updated", "session": {}})  # the provider confirms it
    (r,) = feed(c, "server", done(rid="r3"))
    assert r["messages"] == []


def test_typed_text_and_streamed_deltas_add_up_in_an_estimate() -> None:
    c = Collector(meta(), now=Clock())
    for text in ("x" * 40, "y" * 40):
        feed(c, "client", {"type": "conversation.item.create", "item": {"type": "message", "content": [
            {"type": "input_text", "text": text}]}})
    feed(c, "server", {"type": "response.created", "response": {"id": "r1"}})
    for _ in range(2):
        feed(c, "server", {"type": "response.output_text.delta", "response_id": "r1", "delta": "x" * 8})
    (r,) = c.unsettled()
    assert r["usage"]["input_token_details"]["text_tokens"] == 20  # 80 characters
    assert r["usage"]["output_token_details"]["text_tokens"] == 4  # 16 characters


def test_audio_relayed_before_the_first_count_is_counted_from_zero() -> None:
    # 3,201 base64 bytes out are 2 estimated tokens, 3,200 are 1; 6,401 in are 2, 6,400 are 1
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "response.created", "response": {"id": "r1"}})
    c.note_audio(6_401, 3_201)
    (r,) = c.unsettled()
    assert r["usage"]["output_token_details"]["audio_tokens"] == 2
    assert r["usage"]["input_token_details"]["audio_tokens"] == 2


def test_committed_audio_awaits_a_transcription_only_while_transcription_is_on_and_within_the_bound() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": "i0"})
    feed(c, "server", {"type": "input_audio_buffer.committed"})
    assert c.in_flight == 0
    feed(c, "server", {"type": "session.updated", "session": {"audio": {"input": {"transcription": {
        "model": "gpt-4o-transcribe"}}}}})
    feed(c, "server", {"type": "input_audio_buffer.committed"})  # no item id: nothing to wait for
    assert c.in_flight == 0
    for i in range(MAX_OPEN_TRANSCRIPTIONS + 5):
        feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": f"i{i + 1}"})
    assert c.in_flight == MAX_OPEN_TRANSCRIPTIONS


def test_a_transcription_in_a_conversation_without_a_transcription_model_is_unpriced() -> None:
    asked: list[Any] = []
    c = Collector(attrs.evolve(meta(), model_price=lambda name: asked.append(name) or PRICE), now=Clock())
    (r,) = feed(c, "server", {"type": "conversation.item.input_audio_transcription.completed", "item_id": "i1",
                              "transcript": "hi", "usage": {"type": "tokens", "input_tokens": 5}})
    assert (r["transcription_model"], r["cost_usd"], asked) == (None, None, [])


def test_responses_requested_started_refused_and_untracked_are_each_counted() -> None:
    c = Collector(meta(), now=Clock())
    for _ in range(3):
        feed(c, "client", {"type": "response.create"})
    assert c.in_flight == 3
    feed(c, "server", {"type": "error", "error": {"code": "x"}})  # one refused
    assert c.in_flight == 2
    feed(c, "server", {"type": "response.created", "response": {}})  # no id: not tracked
    feed(c, "server", {"type": "response.created", "response": {"id": ""}})
    assert (c.in_flight, c.untracked_responses) == (0, 2)
    for i in range(MAX_OPEN_RESPONSES + 1):
        feed(c, "server", {"type": "response.created", "response": {"id": f"r{i}"}})
    assert (c.in_flight, c.untracked_responses) == (MAX_OPEN_RESPONSES, 3)


def test_a_webrtc_session_says_its_transport_in_every_record() -> None:
    c = Collector(attrs.evolve(meta(), transport="webrtc"), now=Clock())
    (r,) = feed(c, "server", done())
    assert r["transport"] == "webrtc" and c.finish(SessionEnd("client", 1000))["transport"] == "webrtc"
    assert "transport" not in Collector(meta(), now=Clock()).finish(SessionEnd("client", 1000))


def test_a_response_lasts_from_its_created_to_its_done_to_the_millisecond() -> None:
    clock = Clock()  # it moves 250 ms per reading
    c = Collector(meta(), now=clock)
    feed(c, "server", {"type": "response.created", "response": {"id": "resp_1"}})
    clock.t += timedelta(milliseconds=750)
    (r,) = feed(c, "server", done())
    assert r["duration_ms"] == 1000


def test_a_session_ended_without_settling_counts_what_was_still_open() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "session.updated", "session": {"audio": {"input": {"transcription": {
        "model": "gpt-4o-transcribe"}}}}})
    feed(c, "server", {"type": "response.created", "response": {"id": "r1"}})
    feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": "i1"})
    s = c.finish(SessionEnd("client", 1000))
    assert (s["responses_in_flight"], s["transcriptions_unreported"]) == (1, 1)


def test_transcriptions_never_reported_add_up_over_several_settles() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "session.updated", "session": {"audio": {"input": {"transcription": {
        "model": "gpt-4o-transcribe"}}}}})
    for item_id in ("i1", "i2"):
        feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": item_id})
    c.unsettled()
    feed(c, "server", {"type": "input_audio_buffer.committed", "item_id": "i3"})
    c.unsettled()
    assert c.finish(SessionEnd("client", 1000))["transcriptions_unreported"] == 3


def test_without_stored_prompts_the_session_record_has_no_tools() -> None:
    c = Collector(meta(store_prompts=False), now=Clock())
    feed(c, "client", {"type": "session.update", "session": {"tools": [{"type": "function", "name": "f"}]}})
    assert c.finish(SessionEnd("client", 1000))["tools"] is None


def test_a_response_its_price_cannot_price_leaves_the_session_cost_unknown() -> None:
    c = Collector(meta(), now=Clock())  # priced per token, no hourly rate
    (r,) = feed(c, "server", {"type": "response.done", "response": {"id": "r1", "usage": {"type": "duration",
                                                                                       "seconds": 3}}})
    assert (r["cost_usd"], c.cost_usd) == (None, None)
    feed(c, "server", done(rid="r2"))
    assert c.finish(SessionEnd("client", 1000))["cost_usd"] is None


def test_an_unpriced_session_has_no_cost_even_without_responses() -> None:
    c = Collector(meta(price=None), now=Clock())
    assert c.finish(SessionEnd("client", 1000))["cost_usd"] is None


def test_an_output_message_without_content_is_read_as_empty() -> None:
    c = Collector(meta(), now=Clock())
    (r,) = feed(c, "server", done({"type": "message"}))
    assert r["response"]["output_text"] is None
