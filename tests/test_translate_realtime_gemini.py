"""The OpenAI Realtime ⇄ Gemini Live translator's behaviour, one rule at a time: one setup per
socket and nothing before setupComplete, bounded backlogs that refuse loudly, audio resampled
exactly, responses closed at toolCall, usage billed exactly once (through the real spend
collector too), resumption at a resumable point, and a fuzzed session that keeps every invariant."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rtproxy.protocols.realtime.collector import Collector
from rtproxy.spend.pricing import database_price
from rtproxy.spend.records import SessionEnd, SessionMeta
from rtproxy.translate import MAX_PRE_SETUP_BYTES, MAX_RECONNECT_BACKLOG_BYTES, Output
from rtproxy.translate.audio import ulaw_encode

from .test_translate_realtime_gemini_golden import SCENARIOS, WEATHER
from .test_translate_realtime_gemini_harness import Script, append, b64, gemini_audio, tone, usage, user_text


def ready(s: Script, session: dict[str, Any] | None = None, *, handle: str | None = "h-1") -> Script:
    s.start()
    s.client({"type": "session.update", "session": session or {"type": "realtime"}})
    s.upstream({"setupComplete": {}})
    if handle:
        s.upstream({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
    return s


def audio_up(frames: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(f["realtimeInput"]["audio"]["data"]) for f in frames
                    if "audio" in f.get("realtimeInput", {}))


# -- the setup ----------------------------------------------------------------------------------


def test_the_first_event_that_needs_a_session_sends_the_setup_with_defaults() -> None:
    s = Script()
    s.start()
    out = s.client(append())
    assert [list(f) for f in out.to_upstream] == [["setup"]]
    assert out.to_upstream[0]["setup"]["sessionResumption"] == {}
    assert out.to_upstream[0]["setup"]["model"] == "models/gemini-live-2.5-flash"
    assert s.of_type("session.updated") == []  # no update asked for: none answered


def test_nothing_but_the_setup_goes_up_before_setup_complete() -> None:
    s = Script(dialect="ga")
    s.start()
    s.client({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    s.client(append())
    s.client(user_text("hi"))
    s.client({"type": "response.create"})
    assert [list(f) for f in s.upstream_frames] == [["setup"]]
    out = s.upstream({"setupComplete": {}})
    assert [next(iter(f)) for f in out.to_upstream] == ["realtimeInput", "clientContent"]


def test_the_pre_setup_backlog_is_bounded_and_refuses_loudly() -> None:
    s = Script()
    s.start()
    chunk = append(1000)  # 1 s: 32,000 bytes at 16 kHz
    out = Output()
    for _ in range(MAX_PRE_SETUP_BYTES // 32_000 + 2):
        out = s.client(chunk)
        if out.close:
            break
    assert out.close == (1013, "upstream not ready")
    [error] = out.to_client
    assert error["error"]["code"] == "upstream_not_ready" and "MAX_PRE_SETUP_BYTES" in error["error"]["message"]
    assert s.t.state == "closed"
    assert s.client(chunk) == Output() and s.upstream({"setupComplete": {}}) == Output()


def test_the_reconnect_backlog_is_bounded_too() -> None:
    s = ready(Script())
    s.upstream({"goAway": {"timeLeft": "5s"}})
    assert s.steps[-1].get("reconnect")
    out = Output()
    for _ in range(MAX_RECONNECT_BACKLOG_BYTES // 32_000 + 2):
        out = s.client(append(1000))
        if out.close:
            break
    assert out.close == (1013, "upstream not ready")
    assert "MAX_RECONNECT_BACKLOG_BYTES" in out.to_client[0]["error"]["message"]


def test_every_socket_gets_exactly_one_setup_first() -> None:
    for name, scenario in SCENARIOS.items():
        s = scenario()
        sockets: list[list[str]] = [[]]
        for step in s.steps:
            sockets[-1].extend(next(iter(f)) for f in step["to_upstream"])
            if step.get("reconnect"):
                sockets.append(["setup"])
        for frames in sockets:
            if frames:
                assert frames[0] == "setup" and frames.count("setup") == 1, name


def test_a_setup_change_after_content_waits_for_a_resumable_point_and_resumes() -> None:
    s = ready(Script())
    s.client(user_text("hi"))
    s.client({"type": "response.create"})
    out = s.client({"type": "session.update", "session": {"type": "realtime", "instructions": "New."}})
    assert not out.reconnect and out.to_client == []  # answered once the new setup is accepted
    s.upstream(gemini_audio())
    s.upstream({"serverContent": {"turnComplete": True}})
    assert not s.steps[-1].get("reconnect")  # the handle predates the turn
    out = s.upstream({"sessionResumptionUpdate": {"newHandle": "h-2", "resumable": True}})
    assert out.reconnect
    frame = s.t.setup_frame()["setup"]
    assert frame["sessionResumption"] == {"handle": "h-2"} and frame["systemInstruction"]["parts"][0]["text"] == "New."
    out = s.upstream({"setupComplete": {}})
    assert [e["type"] for e in out.to_client] == ["session.updated"]


def test_an_update_changed_back_needs_no_new_connection() -> None:
    s = ready(Script())
    s.client(user_text("hi"))
    s.client({"type": "response.create"})
    s.client({"type": "session.update", "session": {"type": "realtime", "instructions": "New."}})
    out = s.client({"type": "session.update", "session": {"type": "realtime", "instructions": ""}})
    assert [e["type"] for e in out.to_client] == ["session.updated", "session.updated"]
    s.upstream({"serverContent": {"turnComplete": True}})
    assert not s.upstream({"sessionResumptionUpdate": {"newHandle": "h-2", "resumable": True}}).reconnect


def test_go_away_between_turns_moves_at_once() -> None:
    s = ready(Script())
    out = s.upstream({"goAway": {"timeLeft": "30s"}})
    assert out.reconnect and s.t.setup_frame()["setup"]["sessionResumption"] == {"handle": "h-1"}


def test_go_away_waits_while_the_user_is_speaking() -> None:
    s = ready(Script(), {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}})
    s.client(append())
    s.upstream({"serverContent": {"inputTranscription": {"text": "I was"}}})
    assert not s.upstream({"goAway": {"timeLeft": "30s"}}).reconnect


def test_a_refused_setup_or_an_unresumable_close_ends_the_session() -> None:
    s = Script()
    s.start()
    s.client({"type": "session.update", "session": {"type": "realtime"}})
    out = s.closed(1008, "models/gemini-live-2.5-flash is not found for API version v1beta")
    assert out.close == (1011, "upstream closed")
    assert out.to_client[0]["error"]["message"].endswith("gpt-realtime is not found for API version v1beta")
    s2 = ready(Script())
    out = s2.closed(1007, "Request contains an invalid argument.")  # never retried: the same setup would fail again
    assert out.close is not None and not out.reconnect


def test_a_dropped_socket_is_resumed_a_bounded_number_of_times() -> None:
    s = ready(Script())
    for _ in range(3):
        assert s.closed(1006, "").reconnect
        s.upstream({"setupComplete": {}})
    assert s.closed(1006, "").close == (1011, "upstream closed")


def test_a_socket_that_fails_while_being_set_up_is_tried_again_with_the_same_setup() -> None:
    s = ready(Script())
    s.client(user_text("x"))
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"turnComplete": True}})
    s.upstream({"sessionResumptionUpdate": {"newHandle": "h-2", "resumable": True}})
    assert s.closed(1011, "Deadline expired").reconnect
    assert s.closed(1006, "").reconnect  # the new socket could not be opened: again, resuming from h-2
    assert s.t.setup_frame()["setup"]["sessionResumption"] == {"handle": "h-2"}
    assert s.closed(1008, "BidiGenerateContent session not found").close is not None


def test_after_a_resume_only_the_calls_made_since_the_handle_are_forgotten() -> None:
    s = ready(Script(), {"type": "realtime", "tools": [WEATHER]})
    s.client(user_text("x"))
    s.client({"type": "response.create"})
    s.upstream({"toolCall": {"functionCalls": [{"id": "old", "name": "get_weather", "args": {}}]}})
    s.upstream({"serverContent": {"turnComplete": True}})
    s.upstream({"sessionResumptionUpdate": {"newHandle": "h-2", "resumable": True}})
    s.client(user_text("y"))
    s.client({"type": "response.create"})
    s.upstream({"toolCall": {"functionCalls": [{"id": "new", "name": "get_weather", "args": {}}]}})
    old, new = (d["output"][0]["call_id"] for d in s.dones()[:2])
    s.closed(1011, "")
    s.upstream({"setupComplete": {}})
    for call_id, kept in ((old, True), (new, False)):
        out = s.client({"type": "conversation.item.create",
                        "item": {"type": "function_call_output", "call_id": call_id, "output": "1"}})
        assert (out.to_client[0]["type"] != "error") == kept


def test_a_manual_commit_whose_activity_was_lost_expects_no_answer() -> None:
    s = ready(Script(), {"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    s.client(append())
    s.closed(1006, "")  # the activity went with the socket
    s.client({"type": "input_audio_buffer.commit"})
    out = s.upstream({"setupComplete": {}})
    assert out.to_upstream == []  # no activityEnd for an activity the new socket never saw
    assert s.t.stats["commits_without_activity"] == 1
    assert s.upstream({"goAway": {"timeLeft": "1s"}}).reconnect is False  # no fresh handle yet
    assert s.upstream({"sessionResumptionUpdate": {"newHandle": "h-3", "resumable": True}}).reconnect


# -- audio --------------------------------------------------------------------------------------


def test_one_and_a_half_seconds_appended_are_48000_bytes_labelled_16k() -> None:
    s = ready(Script())
    pcm = tone(1500)
    for i in range(0, len(pcm), 960):  # 20 ms appends
        s.client({"type": "input_audio_buffer.append", "audio": b64(pcm[i:i + 960])})
    frames = [f for f in s.upstream_frames if "audio" in f.get("realtimeInput", {})]
    assert {f["realtimeInput"]["audio"]["mimeType"] for f in frames} == {"audio/pcm;rate=16000"}
    assert len(audio_up(frames)) == 48_000


def test_g711_appends_are_decoded_and_upsampled() -> None:
    s = ready(Script(), {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}})
    clip = ulaw_encode(tone(1500, rate=8000))
    for i in range(0, len(clip), 160):
        s.client({"type": "input_audio_buffer.append", "audio": b64(clip[i:i + 160])})
    assert len(audio_up(s.upstream_frames)) == 48_000


def test_url_safe_base64_from_gemini_reaches_the_client_in_the_standard_alphabet() -> None:
    s = ready(Script())
    s.client(append())
    data = base64.urlsafe_b64encode(bytes([251, 255] * 30)).decode().rstrip("=")
    s.upstream({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000",
                                                                          "data": data}}]}}})
    [delta] = s.of_type("response.output_audio.delta")
    assert base64.b64decode(delta["delta"], validate=True) == bytes([251, 255] * 30)


def test_an_input_audio_part_is_resampled_into_the_turn() -> None:
    s = ready(Script())
    s.client({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_audio", "audio": b64(tone(300))}, {"type": "input_text", "text": "and this"}]}})
    assert s.of_type("conversation.item.done")[0]["item"]["content"][0] == {"type": "input_audio", "transcript": None}
    s.client({"type": "response.create"})
    [turn] = s.upstream_frames[-1]["clientContent"]["turns"]
    audio = turn["parts"][0]["inlineData"]
    assert audio["mimeType"] == "audio/pcm;rate=16000" and len(base64.b64decode(audio["data"])) == 9600


def test_clear_answers_and_sends_nothing() -> None:
    s = ready(Script())
    s.client(append())
    out = s.client({"type": "input_audio_buffer.clear"})
    assert [e["type"] for e in out.to_client] == ["input_audio_buffer.cleared"] and out.to_upstream == []


# -- responses ------------------------------------------------------------------------------------


def test_a_response_closes_at_the_tool_call_without_waiting() -> None:
    s = ready(Script(), {"type": "realtime", "tools": [WEATHER]})
    s.client(user_text("Weather?"))
    s.client({"type": "response.create"})
    out = s.upstream({"toolCall": {"functionCalls": [{"id": "a", "name": "get_weather", "args": {"city": "Oslo"}},
                                                     {"id": "b", "name": "get_weather", "args": {"city": "Rome"}}]}})
    assert [e["type"] for e in out.to_client][-1] == "response.done"
    done = out.to_client[-1]["response"]
    assert [(i["type"], i["arguments"]) for i in done["output"]] == [
        ("function_call", '{"city": "Oslo"}'), ("function_call", '{"city": "Rome"}')]


def test_the_answer_being_spoken_can_be_retrieved_and_truncated_before_it_ends() -> None:
    # openai-agents retrieves an item at each input transcript and truncates at barge-in, while
    # the answer may still be streaming
    s = ready(Script())
    s.client(user_text("Hello"))
    s.client({"type": "response.create"})
    s.upstream(gemini_audio())
    (added,) = s.of_type("response.output_item.added")
    item_id = added["item"]["id"]
    s.client({"type": "conversation.item.retrieve", "item_id": item_id})
    s.client({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 20})
    assert not s.of_type("error")
    (retrieved,) = s.of_type("conversation.item.retrieved")
    assert retrieved["item"]["id"] == item_id and retrieved["item"]["status"] == "in_progress"
    assert s.of_type("conversation.item.truncated")[0]["item_id"] == item_id
    s.upstream({"serverContent": {"turnComplete": True}})
    s.client({"type": "conversation.item.retrieve", "item_id": item_id})
    assert s.of_type("conversation.item.retrieved")[-1]["item"]["status"] == "completed"


def test_a_cancelled_tool_call_is_answered_here_and_not_sent() -> None:
    s = ready(Script(), {"type": "realtime", "tools": [WEATHER]})
    s.client(user_text("Weather?"))
    s.client({"type": "response.create"})
    s.upstream({"toolCall": {"functionCalls": [{"id": "a", "name": "get_weather", "args": {}}]}})
    call_id = s.dones()[0]["output"][0]["call_id"]
    s.upstream({"toolCallCancellation": {"ids": ["a"]}})
    out = s.client({"type": "conversation.item.create",
                    "item": {"type": "function_call_output", "call_id": call_id, "output": "{}"}})
    assert [e["type"] for e in out.to_client] == ["conversation.item.added", "conversation.item.done"]
    assert not any("toolResponse" in f for f in s.client({"type": "response.create"}).to_upstream)


def test_a_response_gemini_started_by_itself_takes_a_late_response_create() -> None:
    s = ready(Script())
    s.client(append())
    s.upstream(gemini_audio())
    out = s.client({"type": "response.create", "response": {"metadata": {"k": "v"}}})
    assert out.to_client == [] and out.to_upstream == []
    out = s.client({"type": "response.create"})
    assert out.to_client[0]["error"]["code"] == "conversation_already_has_active_response"
    s.upstream({"serverContent": {"turnComplete": True}})
    assert s.dones()[0]["metadata"] == {"k": "v"}


def test_a_bare_response_create_asks_gemini_to_answer_the_conversation() -> None:
    s = ready(Script())
    out = s.client({"type": "response.create"})
    assert out.to_upstream == [{"clientContent": {"turnComplete": True}}]
    out = s.upstream({"serverContent": {"turnComplete": True}})  # nothing said: an empty response
    assert [e["type"] for e in out.to_client] == ["response.created", "response.done"]


def test_overrides_equal_to_the_session_are_accepted() -> None:
    s = ready(Script(), {"type": "realtime", "instructions": "Be brief.", "tools": [WEATHER]})
    s.client(user_text("x"))
    out = s.client({"type": "response.create", "response": {
        "instructions": "Be brief.", "output_modalities": ["audio"], "tools": [WEATHER], "tool_choice": "auto",
        "audio": {"output": {"voice": "marin"}}, "conversation": "auto"}})
    assert "clientContent" in out.to_upstream[0]


def test_thoughts_are_never_shown() -> None:
    s = ready(Script(), {"type": "realtime", "output_modalities": ["text"]})
    s.client(user_text("x"))
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"modelTurn": {"parts": [{"thought": True, "text": "hmm"}, {"text": "Yes."}]}}})
    assert [e["delta"] for e in s.of_type("response.output_text.delta")] == ["Yes."]


def test_an_audio_only_model_streams_its_transcript_as_the_text_of_a_text_session() -> None:
    s = ready(Script(audio_only_model=True), {"type": "realtime", "output_modalities": ["text"]})
    assert s.upstream_frames[0]["setup"]["generationConfig"]["responseModalities"] == ["AUDIO"]
    s.client(user_text("x"))
    s.client({"type": "response.create"})
    frame = gemini_audio()
    frame["serverContent"]["outputTranscription"] = {"text": "Spoken."}
    s.upstream(frame)
    s.upstream({"serverContent": {"turnComplete": True}, "usageMetadata": {"promptTokenCount": 3,
                                                                           "responseTokenCount": 9}})
    assert [e["delta"] for e in s.of_type("response.output_text.delta")] == ["Spoken."]
    assert s.of_type("response.output_audio.delta") == []
    assert s.dones()[0]["usage"]["output_token_details"] == {"text_tokens": 0, "audio_tokens": 9}


def test_typed_text_can_go_as_realtime_text() -> None:
    s = ready(Script(text_input="realtime_text"))
    s.client(user_text("one"))
    s.client(user_text("two"))
    out = s.client({"type": "response.create"})
    assert out.to_upstream == [{"realtimeInput": {"text": "one\ntwo"}}]
    assert s.client({"type": "conversation.item.create", "item": {
        "type": "message", "role": "assistant", "content": [{"type": "text", "text": "x"}]}}).to_client[0]["type"] == "error"


def test_tool_parameters_can_be_sent_as_json_schema() -> None:
    s = ready(Script(tool_schema="json_schema"), {"type": "realtime", "tools": [WEATHER]})
    [decl] = s.upstream_frames[0]["setup"]["tools"][0]["functionDeclarations"]
    assert decl["parametersJsonSchema"] == WEATHER["parameters"]


def test_operator_setup_fields_are_kept() -> None:
    s = ready(Script(extra_setup={"contextWindowCompression": {"slidingWindow": {}}}))
    assert s.upstream_frames[0]["setup"]["contextWindowCompression"] == {"slidingWindow": {}}


# -- usage --------------------------------------------------------------------------------------


def test_finish_bills_what_is_owed_and_leaves_unreported_responses_open() -> None:
    s = ready(Script(), {"type": "realtime", "output_modalities": ["text"]})
    s.client(user_text("x"))
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"modelTurn": {"parts": [{"text": "a"}]}}, "usageMetadata": usage(4, 0, 1)})
    s.upstream({"serverContent": {"turnComplete": True}})
    s.upstream({"usageMetadata": usage(2)})  # the closed response has a report: kept for the next
    s.client(user_text("y"))
    s.client({"type": "response.create"})
    s.upstream({"serverContent": {"modelTurn": {"parts": [{"text": "b"}]}}})  # open, never reported
    out = s.finish()
    assert [e["type"] for e in out.to_client] == ["response.done"]
    assert out.to_client[0]["response"]["usage"]["total_tokens"] == 2
    assert out.to_client[0]["response"]["metadata"] == {"rtproxy_usage": "supplement"}
    assert s.billed() == 5 + 2


def test_usage_with_no_response_at_all_still_reaches_a_response_done() -> None:
    s = ready(Script())
    s.upstream({"usageMetadata": usage(7)})
    out = s.finish()
    assert [e["type"] for e in out.to_client] == ["response.created", "response.done"]
    assert s.billed() == 7


def _collect(s: Script) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The scenario's frames through the real spend collector: its records."""
    meta = SessionMeta(session_id="sess_t", key_name="k", key_hash="h", model="gpt-realtime", provider="gemini",
                       upstream_model="gemini-live-2.5-flash", api_base="wss://g", store_prompts=True,
                       price=database_price("google", "gemini-live-2.5-flash"),
                       model_price=lambda name: database_price("google", name))
    t = datetime(2026, 1, 1, tzinfo=UTC)

    def now() -> datetime:
        nonlocal t
        t += timedelta(milliseconds=10)
        return t

    c = Collector(meta, now=now)
    records: list[dict[str, Any]] = []
    for direction, event in s.wire:
        records += c.feed(direction, json.dumps(event).encode())  # type: ignore[arg-type]
    return records, c.finish(SessionEnd(by="client", code=1000))


@pytest.mark.parametrize("name", ["text_turn", "audio_turn", "tool_pause", "tool_complete", "barge_in",
                                  "standalone_usage", "vertex_usage", "beta_dialect", "manual_turns"])
def test_the_collector_bills_every_reported_token_once(name: str) -> None:
    s = SCENARIOS[name]()
    records, session = _collect(s)
    responses = [r for r in records if r["record"] == "response"]
    assert sum((r["usage"] or {}).get("total_tokens", 0) for r in responses) == s.billed()
    assert session["usage"].get("total_tokens", 0) == s.billed()
    assert session["cost_usd"] is not None  # priced throughout (transcriptions included: zero tokens)
    audio_out = s.billed("output_token_details.audio_tokens")
    assert sum(r["cost_breakdown"]["output_audio"] for r in responses) == pytest.approx(audio_out * 12e-6)


def test_the_audio_scenario_costs_what_gemini_charges() -> None:
    _, session = _collect(SCENARIOS["audio_turn"]())
    # 20 text in at $0.50, 25 audio in at $3, 5 thought tokens out at $2, 40 audio out at $12 (per 1M)
    assert session["cost_usd"] == pytest.approx((20 * 0.5 + 25 * 3 + 5 * 2 + 40 * 12) / 1e6)


# -- a fuzzed session -----------------------------------------------------------------------------


def _random_client(rng: random.Random, calls: list[str]) -> dict[str, Any]:
    choice = rng.randrange(12)
    if choice < 4:
        return append(rng.choice([10, 20, 40]))
    if choice == 4:
        return {"type": "input_audio_buffer.commit"}
    if choice == 5:
        return user_text(rng.choice(["hi", "weather?"]))
    if choice == 6:
        return {"type": "response.create"}
    if choice == 7:
        return {"type": "response.cancel"}
    if choice == 8 and calls:
        return {"type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": rng.choice(calls), "output": "{}"}}
    if choice == 9:
        return {"type": "session.update", "session": {"type": "realtime", "instructions": rng.choice(["a", "b"]),
                                                      "tools": [WEATHER]}}
    if choice == 10:
        return {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": rng.choice([None, {"type": "server_vad"}]),
            "transcription": rng.choice([None, {"model": "whisper-1"}])}}}}
    return {"type": "input_audio_buffer.clear"}


def _random_upstream(rng: random.Random, n: int) -> dict[str, Any]:
    choice = rng.randrange(13)
    if choice < 3:
        return gemini_audio(20)
    if choice == 3:
        return {"serverContent": {"outputTranscription": {"text": "word "}}}
    if choice == 4:
        return {"serverContent": {"inputTranscription": {"text": "hey", "finished": rng.random() < 0.3}}}
    if choice == 5:
        return {"serverContent": {"generationComplete": True}}
    if choice == 6:
        return {"serverContent": {"turnComplete": True}, "usageMetadata": usage(5, 5, 1, 9)}
    if choice == 7:
        return {"serverContent": {"interrupted": True}}
    if choice == 8:
        return {"toolCall": {"functionCalls": [{"id": f"fc-{n}", "name": "get_weather", "args": {"city": "X"}}]},
                **({"usageMetadata": usage(3, 0, 2)} if rng.random() < 0.5 else {})}
    if choice == 9:
        return {"usageMetadata": usage(1, 1, 1, 1)}
    if choice == 10:
        return {"sessionResumptionUpdate": {"newHandle": f"h-{n}", "resumable": rng.random() < 0.7}}
    if choice == 11:
        return {"goAway": {"timeLeft": "9s"}}
    return {"toolCallCancellation": {"ids": [f"fc-{n - 1}"]}}


def _fuzz(seed: int) -> Script:
    """A random session: client events and Gemini frames interleaved, with the socket modelled
    (setupComplete only after a setup, a close only on a live socket), every invariant checked as
    it goes (see the test)."""
    rng = random.Random(seed)
    s = Script(dialect=rng.choice(["ga", "beta"]))
    s.start()
    socket = "none"  # none → setup_sent → ready; reconnect: setup_sent again
    open_responses: set[str] = set()
    for n in range(400):
        roll = rng.random()
        if roll < 0.45 or socket == "none":
            if s.dialect == "beta" and rng.random() < 0.3:
                out = s.client(append())
            else:
                calls = [i["call_id"] for d in s.dones() for i in d["output"] if i.get("type") == "function_call"]
                out = s.client(_random_client(rng, calls))
        elif socket == "setup_sent" and roll < 0.9:
            out = s.upstream({"setupComplete": {}})
        elif roll < 0.97:
            out = s.upstream(_random_upstream(rng, n))
        else:
            out = s.closed(rng.choice([1006, 1011]), "")
        if "setupComplete" in s.steps[-1]["in"].get("upstream", {}) and socket == "setup_sent":
            socket = "ready"
        for frame in out.to_upstream:
            if "setup" in frame:
                assert socket == "none", "a second setup on one socket"
                socket = "setup_sent"
            else:
                assert socket == "ready", f"{frame} went up before setupComplete"
        if out.reconnect:
            socket = "setup_sent"
        for e in out.to_client:
            if e["type"] == "response.created":
                assert not open_responses, "two responses open at once"
                open_responses.add(e["response"]["id"])
            elif e["type"] == "response.done":
                open_responses.discard(e["response"]["id"])
            elif "response_id" in e and e["type"].startswith("response."):
                assert e["response_id"] in open_responses, e
        if out.close:
            break
    if s.t.state != "closed":
        s.finish()
    return s


@pytest.mark.parametrize("seed", range(30))
def test_a_random_session_keeps_every_invariant(seed: int) -> None:
    """Every event validates (the Script checks), each socket gets one setup first and nothing
    before its setupComplete, one response at a time, deltas only for the open response, every
    response answered by a response.done but the one left open at the end (for the collector to
    estimate), and the translator never raises."""
    s = _fuzz(seed)
    created = {e["response"]["id"] for e in s.of_type("response.created")}
    assert len(created - {d["id"] for d in s.dones()}) <= 1


def test_the_random_sessions_reach_every_path() -> None:
    kinds: set[str] = set()
    for seed in range(30):
        s = _fuzz(seed)
        kinds.update(s.types())
        kinds.update(next(iter(f)) for f in s.upstream_frames)
        kinds.update("reconnect" for step in s.steps if step.get("reconnect"))
        kinds.update(f"status:{d['status']}" for d in s.dones())
        kinds.update("supplement" for d in s.dones() if (d.get("metadata") or {}).get("rtproxy_usage"))
    assert {"reconnect", "supplement", "status:completed", "status:cancelled", "status:failed", "toolResponse",
            "clientContent", "response.function_call_arguments.done", "input_audio_buffer.speech_started",
            "conversation.item.input_audio_transcription.completed", "session.updated"} <= kinds
