"""The Gemini collector, sans-IO: frames in, records out, each behaviour pinned with numbers by
hand. Frames go through :class:`Relay`, which does what the relay does with them (classify,
parse a client frame it cannot vouch for, gate, count audio, hand over the rest), so what is
tested is what a session would record."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from rtproxy.config import ModelConfig
from rtproxy.protocols.gemini import GEMINI, GeminiCollector, parse_setup
from rtproxy.protocols.gemini import collector as collector_module
from rtproxy.protocols.realtime.collector import MAX_PENDING_MESSAGES, MAX_TEXT_CHARS
from rtproxy.protocols.seam import AUDIO, COLLECT, PARSE, ModelPolicy
from rtproxy.spend.pricing import Price
from rtproxy.spend.records import SessionEnd, SessionMeta

#: gemini-live-2.5-flash (protocol/gemini-live.md §7): $0.50 / $3.00 in, $2.00 / $12.00 out.
PRICE = Price(input_text=0.5, input_audio=3.0, cached_text=0.125, cached_audio=0.75, output_text=2.0,
              output_audio=12.0)
MODEL = ModelConfig("gemini-live", "local", "gemini-live-2.5-flash-preview")


def meta(**kw: Any) -> SessionMeta:
    base = SessionMeta(session_id="sess_g", key_name="k", key_hash="h", model="gemini-live", provider="local",
                       upstream_model="gemini-live-2.5-flash-preview",
                       api_base="ws://127.0.0.1:9/ws/google.ai.generativelanguage.v1beta.GenerativeService."
                                "BidiGenerateContent", store_prompts=True, price=PRICE, call_type="gemini")
    return attrs.evolve(base, **kw)


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(milliseconds=100)
        return self.t


def pcm_b64(seconds: float, rate: int) -> str:
    return base64.b64encode(b"\x01\x00" * int(seconds * rate)).decode()


def usage(prompt: int = 0, response: int = 0, *, audio_in: int = 0, audio_out: int = 0, vertex: bool = False,
          **extra: Any) -> dict[str, Any]:
    """A usageMetadata: ``prompt`` text and ``audio_in`` audio tokens in, ``response`` text and
    ``audio_out`` audio tokens out."""
    out_name = "candidates" if vertex else "response"
    meta: dict[str, Any] = {"promptTokenCount": prompt + audio_in, f"{out_name}TokenCount": response + audio_out,
                            "totalTokenCount": prompt + audio_in + response + audio_out}
    meta["promptTokensDetails"] = [{"modality": m, "tokenCount": n} for m, n in (("TEXT", prompt), ("AUDIO", audio_in))
                                   if n]
    meta[f"{out_name}TokensDetails"] = [{"modality": m, "tokenCount": n}
                                        for m, n in (("TEXT", response), ("AUDIO", audio_out)) if n]
    return {**meta, **extra}


SETUP = {"setup": {"model": "models/gemini-live", "generationConfig": {"responseModalities": ["AUDIO"]},
                   "systemInstruction": {"parts": [{"text": "Be brief."}]},
                   "inputAudioTranscription": {}, "outputAudioTranscription": {}}}


class Relay:
    """The relay's part, sans-IO: the admitted setup as the first frame, then each frame judged
    as :class:`rtproxy.relay.session.Session` judges it."""

    def __init__(self, setup: dict[str, Any] | None = None, *, ids: bool = False, **meta_kw: Any) -> None:
        counter = iter(range(10_000))
        self.c = GeminiCollector(meta(**meta_kw), now=Clock(),
                                 **({"new_id": lambda: f"rec_{next(counter)}"} if ids else {}))
        self.gate = GEMINI.new_gate(ModelPolicy(frozenset({"gemini-live"}), lambda n: n == "gemini-live",
                                                lambda n: False, lambda n: False))
        self.audio = [0, 0]
        self.records: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.kinds: list[int] = []
        start = parse_setup(json.dumps(setup or SETUP), served=lambda n: MODEL if n == "gemini-live" else None,
                            allows=lambda n: True)
        self.records += self.c.feed("client", start.frame.encode())  # plan.initial_frames, fed at (0, 0)

    def client(self, frame: dict[str, Any] | bytes) -> list[dict[str, Any]]:
        payload = frame if isinstance(frame, bytes) else json.dumps(frame).encode()  # as google-genai writes
        kind = GEMINI.classify_client(payload)
        if kind == PARSE:
            parsed = GEMINI.normalize_client(payload)
            assert parsed.payload is not None
            payload, kind = parsed.payload, parsed.kind
        self.kinds.append(kind)
        if kind == COLLECT:
            refusal = self.gate.check(payload)
            if refusal is not None:
                self.refused.append(refusal)
                return []
            return self._feed("client", payload)
        if kind == AUDIO:
            self.audio[0] += len(payload)
        return []

    def server(self, frame: dict[str, Any]) -> list[dict[str, Any]]:
        payload = (json.dumps(frame, indent=2) + "\n").encode()  # as Google writes it (binary frames)
        kind = GEMINI.classify(payload)
        self.kinds.append(kind)
        if kind == AUDIO:
            self.audio[1] += len(payload)
            return []
        return self._feed("server", payload)

    def _feed(self, direction: str, payload: bytes) -> list[dict[str, Any]]:
        self.c.note_audio(*self.audio)
        got = self.c.feed(direction, payload)  # type: ignore[arg-type]
        self.records += got
        return got

    def audio_out(self, seconds: float = 0.5) -> None:
        self.server({"serverContent": {"modelTurn": {"parts": [{"inlineData": {
            "mimeType": "audio/pcm;rate=24000", "data": pcm_b64(seconds, 24000)}}]}}})

    def audio_in(self, seconds: float = 0.5) -> None:
        self.client({"realtime_input": {"audio": {"data": pcm_b64(seconds, 16000), "mime_type": "audio/pcm;rate=16000"}}})

    def end(self, by: str = "client") -> dict[str, Any]:
        """The relay's end of a session: audio counts noted, what is in flight billed, the session record."""
        self.c.note_audio(*self.audio)
        self.records += self.c.unsettled()
        session = self.c.finish(SessionEnd(by, 1000, ""))  # type: ignore[arg-type]
        self.records.append(session)
        return session


def text(s: str) -> dict[str, Any]:
    return {"serverContent": {"modelTurn": {"parts": [{"text": s}]}}}


def said(s: str) -> dict[str, Any]:
    return {"serverContent": {"outputTranscription": {"text": s}}}


def turn_complete(u: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"serverContent": {"turnComplete": True}, **({"usageMetadata": u} if u else {})}


def tool_call(*calls: tuple[str, str, dict[str, Any]], u: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"toolCall": {"functionCalls": [{"id": i, "name": n, "args": a} for i, n, a in calls]},
            **({"usageMetadata": u} if u else {})}


def ask(r: Relay, s: str) -> None:
    r.client({"client_content": {"turns": [{"role": "user", "parts": [{"text": s}]}], "turnComplete": True}})


# -- turns and their usage ------------------------------------------------------------------------

def test_a_text_turn_is_one_record_priced_per_modality() -> None:
    r = Relay()
    ask(r, "Hi there")
    assert r.c.in_flight == 1  # asked: the model will answer
    r.server(text("Hel"))
    r.server(text("lo."))
    (rec,) = r.server(turn_complete(usage(prompt=100, response=10)))
    assert rec["status"] == "completed" and rec["usage_source"] == "provider" and rec["turn"] == 1
    assert rec["cost_usd"] == pytest.approx(100 * 0.5e-6 + 10 * 2e-6)
    assert rec["response"]["output_text"] == "Hello."
    assert rec["messages"] == [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Hi there", "source": "text"}]
    assert rec["response"]["results"] == [usage(prompt=100, response=10)]
    assert r.c.in_flight == 0


def test_the_last_usage_seen_in_a_turn_is_its_usage() -> None:
    r = Relay()
    r.server({**text("a"), "usageMetadata": usage(prompt=10, response=1)})
    (rec,) = r.server(turn_complete(usage(prompt=10, response=5)))
    assert rec["usage"]["output_tokens"] == 5 and r.c.responses == 1


def test_an_audio_turn_is_seen_from_the_audio_relayed_and_billed_at_audio_rates() -> None:
    r = Relay()
    r.audio_in(1.0)
    r.audio_out()
    assert r.kinds[-2:] == [AUDIO, AUDIO]
    r.audio_out()
    r.server({"serverContent": {"generationComplete": True}})
    assert r.c.in_flight == 1
    (rec,) = r.server(turn_complete(usage(prompt=20, audio_in=32, audio_out=40)))
    assert rec["usage"]["output_token_details"] == {"text_tokens": 0, "audio_tokens": 40}
    assert rec["cost_breakdown"]["output_audio"] == pytest.approx(40 * 12e-6)
    assert rec["cost_breakdown"]["input_audio"] == pytest.approx(32 * 3e-6)


def test_a_turn_closed_without_usage_takes_the_usage_that_comes_alone_next() -> None:
    r = Relay()
    r.server(said("Sure."))
    assert r.server(turn_complete()) == []  # held: its usage may still come
    assert r.c.in_flight == 1
    (rec,) = r.server({"usageMetadata": usage(prompt=50, audio_out=25)})
    assert rec["usage_source"] == "provider" and rec["response"]["output_transcript"] == "Sure."
    assert rec["usage"]["output_token_details"]["audio_tokens"] == 25
    assert r.c.in_flight == 0


def test_a_held_turn_whose_usage_never_comes_is_estimated_when_the_next_turn_starts() -> None:
    r = Relay()
    r.audio_in(2.0)
    r.audio_out(1.5)
    r.server(said("x" * 30))
    r.server(turn_complete())
    r.audio_out(0.5)  # the next turn speaks
    (held,) = r.server(said("next"))
    assert held["usage_source"] == "estimated" and held["turn"] == 1 and held["error"]["code"] == "usage_not_reported"
    # 1.5 s of 24 kHz audio (its frames' bytes, envelope included) at 25 tokens a second; 2 s in at
    # 16 kHz at 32
    assert held["usage"]["output_token_details"]["audio_tokens"] == 38
    assert held["usage"]["input_token_details"]["audio_tokens"] == 65
    assert held["status"] == "completed"
    assert r.c.estimated_responses == 1


def test_usage_that_belongs_to_no_turn_is_billed_on_a_record_of_its_own() -> None:
    r = Relay()
    r.server(text("a"))
    r.server(turn_complete(usage(prompt=5, response=1)))
    (extra,) = r.server({"usageMetadata": usage(prompt=7)})
    assert extra["turn"] is None and extra["response"]["status_details"]["reason"] == "usage_without_turn"
    assert extra["usage"]["input_tokens"] == 7 and extra["messages"] == []
    session = r.end()
    assert session["responses"] == 2 and session["responses_usage_only"] == 1


def test_an_interrupted_turn_is_cancelled() -> None:
    r = Relay()
    r.audio_out()
    r.server({"serverContent": {"interrupted": True}})
    (rec,) = r.server(turn_complete(usage(prompt=10, audio_out=8)))
    assert rec["status"] == "cancelled"
    assert rec["response"]["status_details"] == {"type": "cancelled", "reason": "interrupted"}


# -- tool turns -----------------------------------------------------------------------------------

def test_a_paused_tool_turn_is_billed_at_the_tool_call_once_its_usage_came() -> None:
    r = Relay()
    ask(r, "Weather in Paris?")
    (rec,) = r.server(tool_call(("fc1", "get_weather", {"city": "Paris"}), u=usage(prompt=60, response=12)))
    assert rec["response"]["tool_calls"] == [{"id": "fc1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert rec["response"]["status_details"] == {"type": "completed", "reason": "tool_call"}
    r.client({"tool_response": {"functionResponses": [{"id": "fc1", "name": "get_weather", "response": {"t": 18}}]}})
    r.server(text("18 degrees."))
    (after,) = r.server(turn_complete(usage(prompt=80, response=4)))
    assert after["turn"] == 2 and after["messages"] == [
        {"role": "tool", "tool_call_id": "fc1", "name": "get_weather", "content": '{"t": 18}'}]
    assert r.server(turn_complete()) == []  # a bare turnComplete after it: nothing open, nothing billed


def test_a_paused_tool_turns_usage_may_come_after_the_call() -> None:
    r = Relay()
    assert r.server(tool_call(("fc1", "f", {}))) == []
    assert r.c.in_flight == 1
    (rec,) = r.server({"usageMetadata": usage(prompt=30, response=3)})
    assert rec["response"]["tool_calls"][0]["id"] == "fc1" and rec["usage"]["input_tokens"] == 30


def test_a_tool_turn_that_goes_on_to_its_turn_complete_is_one_record() -> None:
    r = Relay()
    r.audio_out()
    r.server(said("Let me check."))
    assert r.server(tool_call(("fc1", "f", {"a": 1}))) == []
    r.server({"serverContent": {"outputTranscription": {"text": "", "finished": True}}})
    r.audio_out(0.1)  # the trailing audio frame
    r.server({"serverContent": {"generationComplete": True}})
    (rec,) = r.server(turn_complete(usage(prompt=40, audio_out=30)))
    assert rec["response"]["output_transcript"] == "Let me check."
    assert [c["id"] for c in rec["response"]["tool_calls"]] == ["fc1"]
    assert r.c.responses == 1


def test_a_turns_tool_calls_are_bounded_and_those_left_out_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector_module, "MAX_TURN_TOOL_CALLS", 2)
    r = Relay()
    (rec,) = r.server(tool_call(*[(f"c{i}", "f", {}) for i in range(5)], u=usage(prompt=1)))
    assert [c["id"] for c in rec["response"]["tool_calls"]] == ["c0", "c1"]
    assert r.end()["tool_calls_dropped"] == 3


def test_a_cancelled_tool_call_is_counted() -> None:
    r = Relay()
    r.server({"toolCallCancellation": {"ids": ["a", "b"]}})
    assert r.end()["tool_call_cancellations"] == 2


# -- what a record says ----------------------------------------------------------------------------

def test_the_users_voice_is_recorded_from_its_transcription() -> None:
    r = Relay()
    r.audio_in()
    r.server({"serverContent": {"inputTranscription": {"text": "What's the "}}})
    r.server({"serverContent": {"inputTranscription": {"text": "time?", "finished": True}}})
    r.audio_out()
    (rec,) = r.server(turn_complete(usage(audio_in=16, audio_out=10)))
    assert rec["messages"][-1] == {"role": "user", "content": "What's the time?", "source": "transcript"}


def test_history_media_and_typed_realtime_text_are_recorded_never_the_media() -> None:
    r = Relay()
    r.client({"clientContent": {"turns": [
        {"role": "user", "parts": [{"text": "Look:"}, {"inlineData": {"mimeType": "image/png", "data": "A" * 400}},
                                   {"fileData": {"fileUri": "gs://b/secret", "mimeType": "video/mp4"}}]},
        {"role": "model", "parts": [{"text": "A cat."}, {"text": "   "}]}], "turnComplete": False}})
    r.client({"realtimeInput": {"text": "and now?"}})
    (rec,) = (r.server(text("ok")), r.server(turn_complete(usage(prompt=9, response=1))))[1]
    assert rec["messages"][1:] == [
        {"role": "user", "content": "Look:", "source": "text"},
        {"role": "user", "content": "[image: image/png, about 300 bytes]", "source": "image"},
        {"role": "user", "content": "[file: by URI]", "source": "file"},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "and now?", "source": "text"},
    ]
    assert "gs://" not in json.dumps(rec)


def test_the_setup_as_a_record_carries_it_both_spellings_read() -> None:
    r = Relay({"setup": {
        "model": "models/gemini-live",
        "generation_config": {"response_modalities": ["TEXT"], "speech_config": {
            "voice_config": {"prebuilt_voice_config": {"voice_name": "Puck"}}}},
        "system_instruction": "Plain instructions.",
        "tools": [{"function_declarations": [{"name": "f", "type": "x", "parameters": {"type": "OBJECT"}}]},
                  {"googleSearch": {}}],
        "realtime_input_config": {"automatic_activity_detection": {"disabled": True}},
        "session_resumption": {"handle": "h-secret"}}})
    r.server(text("ok"))
    (rec,) = r.server(turn_complete(usage(prompt=3, response=1)))
    assert rec["proxy_server_request"] == {
        "model": "gemini-live", "instructions": "Plain instructions.",
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "OBJECT"}}, {"type": "googleSearch"}],
        "tool_choice": None, "modalities": ["TEXT"], "voice": "Puck",
        "turn_detection": {"automatic_activity_detection": {"disabled": True}},
        "input_audio_transcription": None, "output_audio_transcription": None}
    session = r.end()
    assert session["resumed"] is True and "h-secret" not in json.dumps(r.records)
    assert session["tools"] == rec["proxy_server_request"]["tools"]


def test_without_stored_prompts_usage_and_cost_are_written_and_nothing_said() -> None:
    r = Relay(store_prompts=False)
    ask(r, "secret words")
    r.server(text("secret answer"))
    (rec,) = r.server(turn_complete(usage(prompt=10, response=2)))
    assert rec["messages"] is None and rec["proxy_server_request"] is None and rec["response"] is None
    assert rec["cost_usd"] == pytest.approx(10 * 0.5e-6 + 2 * 2e-6)
    assert "secret" not in json.dumps(r.end())


def test_record_text_and_messages_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Relay()
    for _ in range(MAX_PENDING_MESSAGES + 5):
        r.client({"realtimeInput": {"text": "x"}})
    r.server(text("y" * (MAX_TEXT_CHARS + 10)))
    r.server(text("more"))
    (rec,) = r.server(turn_complete(usage(prompt=1)))
    assert len(rec["messages"]) == MAX_PENDING_MESSAGES
    assert rec["response"]["output_text"].endswith("…[truncated]")
    assert len(rec["response"]["output_text"]) == MAX_TEXT_CHARS + len("…[truncated]")
    assert r.end()["messages_dropped"] == 6  # the system message and 5 typed


# -- the session, the end --------------------------------------------------------------------------

def test_the_session_record_counts_what_only_gemini_says() -> None:
    r = Relay()
    r.server({"setupComplete": {"sessionId": "vtx-1"}})
    r.server({"sessionResumptionUpdate": {"newHandle": "h1", "resumable": True}})
    r.server({"sessionResumptionUpdate": {"resumable": False}})
    r.server({"goAway": {"timeLeft": "9.5s"}})
    r.server({"voiceActivity": {"type": "ACTIVITY_START"}})
    r.server({"madeUp": 1, "serverContent": {}})
    r.c.feed("server", b"{not json")
    r.c.feed("client", b"[1]")
    session = r.end("upstream")
    assert (session["upstream_session_id"], session["setup_complete"], session["go_aways"],
            session["go_away_time_left"], session["resumption_updates"], session["resumable_updates"]) == (
        "vtx-1", True, 1, "9.5s", 2, 1)
    assert session["unknown_event_types"] == {"madeUp": 1} and session["malformed_frames"] == 2
    assert session["api"] == "gemini" and session["call_type"] == "gemini" and session["responses"] == 0
    assert "h1" not in json.dumps(session)


def test_a_second_setup_is_refused_by_the_gate_and_never_reaches_the_collector() -> None:
    r = Relay()
    r.client({"setup": {"model": "models/gemini-pro"}})
    r.client(b'{"set\\u0075p": {"model": "models/gemini-live"}}')
    assert [json.loads(x)["error"]["status"] for x in r.refused] == ["PERMISSION_DENIED", "INVALID_ARGUMENT"]
    assert r.c.request is not None and r.c.request["model"] == "gemini-live"
    assert r.end()["setups_ignored"] == 0
    c = GeminiCollector(meta(), now=Clock())  # without a gate: the first setup is the session's
    c.feed("client", json.dumps(SETUP).encode())
    c.feed("client", json.dumps({"setup": {"model": "models/other", "systemInstruction": "x"}}).encode())
    assert c.request is not None and c.request["instructions"] == "Be brief."
    assert c.finish(SessionEnd("client", 1000))["setups_ignored"] == 1


def test_gemini_has_nothing_to_settle_with_and_an_unfinished_turn_is_estimated() -> None:
    r = Relay()
    ask(r, "Tell me a story")  # 15 characters typed
    r.server(said("Once upon"))
    r.audio_out(1.0)
    assert r.c.in_flight == 1 and r.c.settle_frames() == []
    r.audio_out(1.0)  # relayed while the gateway waited
    session = r.end()
    (rec,) = [x for x in r.records if x["record"] == "response"]
    assert rec["status"] == "incomplete" and rec["usage_source"] == "estimated"
    assert rec["error"]["code"] == "response_not_reported"
    # 2 s of 24 kHz audio in its frames (a few percent over) at 25 tokens a second; 4 typed tokens
    assert rec["usage"]["output_token_details"]["audio_tokens"] == 51
    assert rec["usage"]["input_token_details"]["text_tokens"] == 4
    assert (session["responses_in_flight"], session["responses_estimated"], session["responses_settled"]) == (1, 1, 0)


def test_audio_relayed_without_a_frame_handed_over_is_still_a_turn_in_flight_and_billed() -> None:
    r = Relay()
    r.audio_out(1.0)  # no transcript, nothing collected: only the relay's count shows it
    r.c.note_audio(*r.audio)
    assert r.c.in_flight == 1
    session = r.end()
    assert session["responses_estimated"] == 1 and r.records[-2]["usage"]["output_tokens"] == 26


def test_a_turn_reported_while_settling_is_settled_and_a_request_never_started_is_counted() -> None:
    r = Relay()
    r.server(text("a"))
    r.c.settle_frames()
    r.server(turn_complete(usage(prompt=4, response=1)))
    ask(r, "again")
    assert r.c.in_flight == 1
    session = r.end()
    assert (session["responses_settled"], session["responses_unestimated"], session["responses_in_flight"]) == (
        1, 1, 1)


def test_an_interruption_before_any_output_opens_no_turn_and_its_input_goes_to_the_next_record() -> None:
    r = Relay()
    ask(r, "hello")
    r.server({"serverContent": {"interrupted": True}})
    r.server({"serverContent": {"generationComplete": True}})
    assert r.server(turn_complete()) == []
    r.server(text("new"))
    (rec,) = r.server(turn_complete(usage(prompt=8, response=1)))
    assert rec["turn"] == 1 and rec["messages"][-1] == {"role": "user", "content": "hello", "source": "text"}
    session = r.end()
    assert (session["responses"], session["responses_unestimated"], session["responses_estimated"]) == (1, 0, 0)


def test_a_turn_that_relayed_nothing_and_reported_no_usage_is_counted_not_guessed() -> None:
    r = Relay()
    ask(r, "hello")
    r.server({"serverContent": {"modelTurn": {"parts": [{"executableCode": {"code": "1"}}]}}})
    assert r.server(turn_complete()) == [] and r.c.in_flight == 1  # held: its usage may still come
    r.server(text("new"))
    (rec,) = r.server(turn_complete(usage(prompt=8, response=1)))
    assert rec["turn"] == 2 and rec["messages"][-1] == {"role": "user", "content": "hello", "source": "text"}
    assert r.end()["responses_unestimated"] == 1


def test_thinking_is_never_said_but_is_estimated_as_output() -> None:
    r = Relay()
    r.server({"serverContent": {"modelTurn": {"parts": [{"text": "t" * 40, "thought": True}]}}})
    r.end()
    (rec,) = [x for x in r.records if x["record"] == "response"]
    assert rec["response"]["output_text"] is None and rec["usage"]["output_token_details"]["text_tokens"] == 10


def test_an_unfinished_turn_that_reported_usage_is_billed_with_it() -> None:
    r = Relay()
    r.server({**text("partial"), "usageMetadata": usage(prompt=12, response=3)})
    r.end()
    (rec,) = [x for x in r.records if x["record"] == "response"]
    assert rec["usage_source"] == "provider" and rec["status"] == "incomplete"
    assert rec["usage"]["input_tokens"] == 12 and rec["error"]["code"] == "response_not_reported"


def test_audio_inside_frames_handed_over_counts_toward_an_estimate() -> None:
    r = Relay()
    data = pcm_b64(1.0, 24000)
    r.server({"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000",
                                                                         "data": data}}]},
                                "outputTranscription": {"text": "hi"}}})  # 3.1: audio and transcript at once
    assert r.kinds[-1] == COLLECT
    r.end()
    assert r.records[0]["usage"]["output_token_details"]["audio_tokens"] == 25


def test_an_unpriced_model_has_no_cost_never_zero() -> None:
    r = Relay(price=None)
    r.server(text("a"))
    (rec,) = r.server(turn_complete(usage(prompt=1, response=1)))
    assert rec["cost_usd"] is None and r.end()["cost_usd"] is None
