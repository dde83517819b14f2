"""The offline model's Gemini Live front-end, driven sans-IO: every path of the protocol as a
google-genai client (snake_case and camelCase) would see it; every frame it sends has Google's
shape (one kind per frame, lowerCamel names)."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest

from rtproxy.offline import gemini as gemini_module
from rtproxy.offline.audio import synthesize_word
from rtproxy.offline.brain import JOKE, Brain
from rtproxy.offline.gemini import (
    DEADLINE_EXPIRED,
    INVALID_ARGUMENT,
    SESSION_NOT_FOUND,
    OfflineGeminiModel,
    ResumableSessions,
    SavedSession,
    decode_bytes,
    duration,
    go_away_lead,
)
from rtproxy.offline.live import OfflineLiveModel
from rtproxy.offline.model import OfflineModel
from rtproxy.offline.resample import resample

from .audio_fixtures import silence, tone, utterance

MODEL = "models/gemini-live-2.5-flash"
WEATHER = [{"functionDeclarations": [{"name": "get_weather", "description": "Weather for a city",
                                      "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                                                     "required": ["city"]}}]}]
#: What a server frame may carry: one of these (a proto oneof), and usageMetadata beside it.
ONE_OF = {"setupComplete", "serverContent", "toolCall", "toolCallCancellation", "goAway", "sessionResumptionUpdate"}
SERVER_CONTENT = {"modelTurn", "generationComplete", "turnComplete", "interrupted", "inputTranscription",
                  "outputTranscription"}


def check_frame(frame: dict[str, Any]) -> None:
    """Google's shape: JSON, one kind (usage may ride along), lowerCamel field names."""
    json.dumps(frame)
    kinds = set(frame) - {"usageMetadata"}
    assert len(kinds) == 1 and kinds <= ONE_OF, frame
    if "serverContent" in frame:
        assert set(frame["serverContent"]) <= SERVER_CONTENT, frame

    def names(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                assert "_" not in k or k in ("temp_c", "city_name"), (k, frame)
                names(v)
        elif isinstance(value, list):
            for v in value:
                names(v)

    names({k: v for k, v in frame.items() if k != "toolCall"})  # a call's args are the tool's own names


def pcm16k(pcm24k: bytes) -> bytes:
    return resample(pcm24k, 24000, 16000)


def audio_frames(pcm: bytes, *, chunk_ms: int = 40, rate: int = 16000, snake: bool = True,
                 urlsafe: bool = True) -> list[dict[str, Any]]:
    """``realtimeInput.audio`` frames as a client sends them (the SDK: snake_case, URL-safe base64)."""
    step = rate * 2 * chunk_ms // 1000
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    frames = []
    for i in range(0, len(pcm), step):
        blob = {"data": encode(pcm[i:i + step]).decode(), ("mime_type" if snake else "mimeType"): f"audio/pcm;rate={rate}"}
        frames.append({"realtime_input": {"audio": blob}} if snake else {"realtimeInput": {"audio": blob}})
    return frames


class GeminiDriver:
    """Feeds the front-end client frames and collects (and checks) every frame it sends."""

    def __init__(self, **kwargs: Any) -> None:
        self.model = OfflineGeminiModel(**kwargs)
        self.sent: list[dict[str, Any]] = []

    def take(self, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for frame in frames:
            check_frame(frame)
        self.sent += frames
        return frames

    def send(self, message: Any) -> list[dict[str, Any]]:
        return self.take(self.model.receive(message if isinstance(message, (str, bytes)) else json.dumps(message)))

    def drain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while self.model.responding:
            out += self.take(self.model.next_chunk())
        return out

    def setup(self, **fields: Any) -> list[dict[str, Any]]:
        out = self.send({"setup": {"model": MODEL, **fields}})
        assert out[0] == {"setupComplete": {}}, out
        return out

    def speak(self, pcm: bytes, **kwargs: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for frame in audio_frames(pcm, **kwargs):
            out += self.send(frame)
        return out


def content(frames: list[dict[str, Any]], key: str) -> list[Any]:
    return [f["serverContent"][key] for f in frames if key in f.get("serverContent", {})]


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(p["text"] for turn in content(frames, "modelTurn") for p in turn["parts"] if "text" in p)


def audio_of(frames: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(p["inlineData"]["data"]) for turn in content(frames, "modelTurn")
                    for p in turn["parts"] if "inlineData" in p)


def transcript(frames: list[dict[str, Any]], key: str) -> str:
    return "".join(t["text"] for t in content(frames, key))


def usage_of(frames: list[dict[str, Any]]) -> dict[str, Any]:
    (usage,) = [f["usageMetadata"] for f in frames if "usageMetadata" in f]
    return usage


def kinds(frames: list[dict[str, Any]]) -> list[str]:
    out = []
    for f in frames:
        kind = next(k for k in f if k != "usageMetadata")
        out.append(f"serverContent.{next(iter(f[kind]))}" if kind == "serverContent" else kind)
    return out


# -- setup ---------------------------------------------------------------------------------------


def test_setup_first_is_answered_with_setup_complete() -> None:
    d = GeminiDriver()
    assert d.send({"setup": {"model": MODEL}}) == [{"setupComplete": {}}]
    assert d.model.set_up and d.model.modality == "AUDIO" and d.model.closing is None


@pytest.mark.parametrize("first", [
    {"clientContent": {"turns": [], "turnComplete": True}},
    {"realtime_input": {"text": "hi"}},
    {"tool_response": {"functionResponses": []}},
])
def test_anything_before_setup_closes_1007(first: dict[str, Any]) -> None:
    d = GeminiDriver()
    assert d.send(first) == []
    assert d.model.closing == (1007, INVALID_ARGUMENT) == (1007, "Request contains an invalid argument.")
    assert d.send({"setup": {"model": MODEL}}) == []  # a closing connection answers nothing


def test_a_second_setup_closes_1007() -> None:
    d = GeminiDriver()
    d.setup()
    assert d.send({"setup": {"model": MODEL}}) == []
    assert d.model.closing == (1007, INVALID_ARGUMENT)


@pytest.mark.parametrize("model", ["gemini-live-2.5-flash", "tunedModels/x", "models/", "models/a/b"])
def test_a_model_not_of_the_form_models_id_closes_1008_like_google(model: str) -> None:
    d = GeminiDriver(api_version="v1alpha")
    assert d.send({"setup": {"model": model}}) == []
    reason = f"{model} is not found for API version v1alpha, or is not supported for bidiGenerateContent."
    assert d.model.closing == (1008, reason)


def test_a_long_model_name_is_quoted_cut_and_the_reason_fits_a_close_frame() -> None:
    d = GeminiDriver()
    d.send({"setup": {"model": "x" * 300}})
    code, reason = d.model.closing or (0, "")
    assert code == 1008 and reason.startswith("x" * 48 + " is not found") and len(reason.encode()) <= 123


@pytest.mark.parametrize("message", [
    "{not json", "[1, 2]", "[" * 100_000, json.dumps({"setup": {"model": MODEL}, "clientContent": {}}),
    json.dumps({"made_up": {}}), json.dumps({"setup": []}), json.dumps({"setup": {}}),
    json.dumps({"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["TEXT", "AUDIO"]}}}),
    json.dumps({"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["IMAGE"]}}}),
    json.dumps({"setup": {"model": MODEL, "tools": [{"functionDeclarations": [{"name": "9 lives"}]}]}}),
    json.dumps({"setup": {"model": MODEL, "tools": {"functionDeclarations": []}}}),
    json.dumps({"setup": {"model": MODEL, "realtimeInputConfig": {"activityHandling": "SOMETIMES"}}}),
    json.dumps({"setup": {"model": MODEL, "realtimeInputConfig": {
        "automaticActivityDetection": {"silenceDurationMs": "soon"}}}}),
    json.dumps({"setup": {"model": MODEL, "systemInstruction": {"parts": "Be brief."}}}),
])
def test_malformed_setups_close_1007(message: str) -> None:
    d = GeminiDriver()
    assert d.send(message) == []
    assert d.model.closing == (1007, INVALID_ARGUMENT)


@pytest.mark.parametrize("message", [
    {"realtimeInput": {"audio": {"data": "!!!!", "mimeType": "audio/pcm;rate=16000"}}},
    {"realtimeInput": {"audio": {"data": "AAAAA", "mimeType": "audio/pcm;rate=16000"}}},  # a lone sextet
    {"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/wav"}}},
    {"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/pcm;rate=fast"}}},
    {"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/pcm;rate=96000"}}},
    {"realtimeInput": {"audio": {"data": 7, "mimeType": "audio/pcm"}}},
    {"realtimeInput": {"text": ["hi"]}},
    {"realtimeInput": {"activityStart": {}}},  # activity signals need automatic detection disabled
    {"realtimeInput": {"activityEnd": {}}},
    {"clientContent": {"turns": {"role": "user"}}},
    {"clientContent": {"turns": [{"role": "system", "parts": [{"text": "x"}]}]}},
    {"toolResponse": {"functionResponses": {"id": "x"}}},
    {"realtimeInput": "hello"},
])
def test_malformed_content_closes_1007(message: dict[str, Any]) -> None:
    d = GeminiDriver()
    d.setup()
    assert d.send(message) == [] and d.model.closing == (1007, INVALID_ARGUMENT)


def test_fields_are_read_in_both_spellings() -> None:
    snake = GeminiDriver()
    snake.send({"setup": {"model": MODEL, "generation_config": {"response_modalities": ["TEXT"]},
                          "system_instruction": {"parts": [{"text": "Be brief."}], "role": "user"},
                          "realtime_input_config": {"automatic_activity_detection": {
                              "disabled": True, "silence_duration_ms": 300}, "activity_handling": "NO_INTERRUPTION"},
                          "input_audio_transcription": {}, "output_audio_transcription": {},
                          "session_resumption": {}, "tools": [{"function_declarations": [{"name": "get_weather"}]}]}})
    camel = GeminiDriver()
    camel.send({"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["TEXT"]},
                          "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
                          "realtimeInputConfig": {"automaticActivityDetection": {
                              "disabled": True, "silenceDurationMs": 300}, "activityHandling": "NO_INTERRUPTION"},
                          "inputAudioTranscription": {}, "outputAudioTranscription": {},
                          "sessionResumption": {}, "tools": [{"functionDeclarations": [{"name": "get_weather"}]}]}})
    for d in (snake, camel):
        m = d.model
        assert (m.modality, m.system_instruction, m.manual_activity, m.interrupts, m.input_transcription,
                m.output_transcription, m.resumption, m.functions) == (
            "TEXT", "Be brief.", True, False, True, True, True, [{"name": "get_weather", "parameters": None}])
    for d, frame in ((snake, {"client_content": {"turns": [{"role": "user", "parts": [{"text": "Hello"}]}],
                                                 "turn_complete": True}}),
                     (camel, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "Hello"}]}],
                                                "turnComplete": True}})):
        d.send(frame)
        assert text_of(d.drain()) == "You said: Hello"


def test_a_null_field_is_absent_as_in_proto3_json() -> None:
    d = GeminiDriver()
    d.send({"setup": {"model": MODEL, "sessionResumption": None, "inputAudioTranscription": None,
                      "generationConfig": None}})
    assert (d.model.resumption, d.model.input_transcription, d.model.modality) == (False, False, "AUDIO")


# -- turns -----------------------------------------------------------------------------------------


def test_a_text_turn_writes_the_reply_a_word_a_part_then_completes_with_usage() -> None:
    d = GeminiDriver()
    d.setup(generationConfig={"responseModalities": ["TEXT"]}, systemInstruction={"parts": [{"text": "Be brief."}]})
    assert d.send({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "Hello"}]}],
                                     "turnComplete": False}}) == []
    assert not d.model.responding  # turnComplete false: the server waits for more
    assert d.send({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "model"}]}],
                                     "turnComplete": True}}) == []
    frames = d.drain()
    assert kinds(frames) == ["serverContent.modelTurn"] * 3 + ["serverContent.generationComplete",
                                                               "serverContent.turnComplete"]
    assert content(frames, "modelTurn")[1] == {"parts": [{"text": " said:"}]}
    assert text_of(frames) == "You said: model"  # the latest user words
    # prompt: "Be brief." (3) + "Hello" (2) + "model" (2); response: "You said: model" (15 chars → 4)
    assert frames[-1] == {"serverContent": {"turnComplete": True}, "usageMetadata": {
        "promptTokenCount": 7, "responseTokenCount": 4, "totalTokenCount": 11,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 7}],
        "responseTokensDetails": [{"modality": "TEXT", "tokenCount": 4}]}}
    assert [(t.role, t.text) for t in d.model.turns] == [("user", "Hello"), ("user", "model"),
                                                         ("model", "You said: model")]


def test_a_turn_without_user_words_is_greeted() -> None:
    d = GeminiDriver()
    d.setup(generationConfig={"responseModalities": ["TEXT"]})
    d.send({"clientContent": {"turnComplete": True}})
    assert text_of(d.drain()) == "Hello! I am the rtproxy offline model."


def test_an_audio_turn_speaks_24khz_pcm_in_inline_data_with_its_transcription_when_asked() -> None:
    for transcribed in (False, True):
        d = GeminiDriver()
        d.setup(**({"outputAudioTranscription": {}} if transcribed else {}))
        d.send({"realtimeInput": {"text": "Hello"}})
        frames = d.drain()
        parts = [p for turn in content(frames, "modelTurn") for p in turn["parts"]]
        assert {p["inlineData"]["mimeType"] for p in parts} == {"audio/pcm;rate=24000"}
        assert audio_of(frames) == b"".join(synthesize_word(w) for w in ("You", "said:", "Hello"))
        assert max(len(base64.b64decode(p["inlineData"]["data"])) for p in parts) <= 4800  # 100 ms a part
        assert text_of(frames) == ""
        assert transcript(frames, "outputTranscription") == ("You said: Hello" if transcribed else "")
        assert kinds(frames)[-2:] == ["serverContent.generationComplete", "serverContent.turnComplete"]
        ms = len(audio_of(frames)) // 48
        usage = usage_of(frames)
        assert usage["responseTokensDetails"] == [{"modality": "AUDIO", "tokenCount": math.ceil(ms * 25 / 1000)}]
        assert usage["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": 2}]


def test_an_utterance_is_heard_by_the_vad_transcribed_and_answered() -> None:
    d = GeminiDriver()
    d.setup(inputAudioTranscription={}, generationConfig={"responseModalities": ["TEXT"]})
    out = d.speak(pcm16k(utterance()))
    heard = transcript(out, "inputTranscription")
    assert heard == "(spoken, 1.2 seconds)"  # 300 ms of prefix padding and 900 ms of speech
    assert len(content(out, "inputTranscription")) == 3  # a fragment a word
    frames = d.drain()
    assert text_of(frames) == "You said: (spoken, 1.2 seconds)"
    assert usage_of(frames)["promptTokensDetails"] == [{"modality": "AUDIO", "tokenCount": 39}]  # 1.2 s at 32/s


def test_without_input_transcription_an_utterance_is_answered_silently() -> None:
    d = GeminiDriver()
    d.setup(generationConfig={"responseModalities": ["TEXT"]})
    assert d.speak(pcm16k(utterance())) == []
    assert text_of(d.drain()) == "You said: (spoken, 1.2 seconds)"


def test_audio_stream_end_ends_the_utterance_in_progress() -> None:
    d = GeminiDriver()
    d.setup(inputAudioTranscription={})
    assert d.speak(pcm16k(silence(300) + tone(600))) == []  # still speaking: no end of turn yet
    out = d.send({"realtimeInput": {"audioStreamEnd": True}})
    assert transcript(out, "inputTranscription") == "(spoken, 0.9 seconds)"
    assert d.model.responding
    assert d.send({"realtimeInput": {"audioStreamEnd": True}}) == []  # nothing in progress


def test_manual_activity_frames_the_utterance() -> None:
    d = GeminiDriver()
    d.setup(realtimeInputConfig={"automaticActivityDetection": {"disabled": True}}, inputAudioTranscription={})
    assert d.speak(pcm16k(utterance())) == []  # outside an activity: not listened to
    assert d.send({"realtimeInput": {"audioStreamEnd": True}}) == []  # for automatic detection only
    assert not d.model.responding
    assert d.send({"realtime_input": {"activity_start": {}}}) == []
    assert d.speak(pcm16k(silence(500))) == []  # no VAD: silence does not end the turn
    out = d.send({"realtimeInput": {"activityEnd": {}}})
    assert transcript(out, "inputTranscription") == "(spoken, 0.5 seconds)"
    assert text_of(d.drain()) == "" and d.model.turns[-1].text == "You said: (spoken, 0.5 seconds)"
    assert d.send({"realtimeInput": {"activityEnd": {}}}) == []  # no activity open
    d.send({"realtimeInput": {"activityStart": {}}})
    assert d.send({"realtimeInput": {"activityEnd": {}}}) == [] and not d.model.responding  # no audio: no turn


def test_manual_activity_keeps_its_newest_audio_within_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemini_module, "MAX_ACTIVITY_BYTES", 32 * 100)  # 100 ms
    d = GeminiDriver()
    d.setup(realtimeInputConfig={"automaticActivityDetection": {"disabled": True}}, inputAudioTranscription={})
    d.send({"realtimeInput": {"activityStart": {}}})
    d.speak(pcm16k(silence(1000)))
    out = d.send({"realtimeInput": {"activityEnd": {}}})
    assert transcript(out, "inputTranscription") == "(spoken, 0.1 seconds)"


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 44100, 48000])
def test_a_declared_rate_is_converted_and_keeps_its_duration(rate: int) -> None:
    d = GeminiDriver()
    d.setup(inputAudioTranscription={}, generationConfig={"responseModalities": ["TEXT"]})
    out = d.speak(resample(utterance(), 24000, rate), rate=rate, chunk_ms=30)
    assert transcript(out, "inputTranscription") == "(spoken, 1.2 seconds)"
    assert usage_of(d.drain())["promptTokensDetails"] == [{"modality": "AUDIO", "tokenCount": 39}]


def test_a_mime_type_without_a_rate_is_16khz_and_legacy_media_chunks_are_heard() -> None:
    d = GeminiDriver()
    d.setup(inputAudioTranscription={})
    pcm = pcm16k(utterance())
    out = []
    for i in range(0, len(pcm), 1280):
        blob = {"data": base64.b64encode(pcm[i:i + 1280]).decode(), "mimeType": "audio/pcm"}
        out += d.send({"realtimeInput": {"mediaChunks": [blob, {"data": "", "mimeType": "image/jpeg"}]}})
    assert transcript(out, "inputTranscription") == "(spoken, 1.2 seconds)"


@pytest.mark.parametrize("encode", [
    lambda b: base64.b64encode(b).decode(),  # standard, padded
    lambda b: base64.b64encode(b).decode().rstrip("="),  # standard, unpadded
    lambda b: base64.urlsafe_b64encode(b).decode(),  # URL-safe, padded
    lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),  # URL-safe, unpadded: the Python SDK's
])
def test_bytes_are_read_in_every_base64_alphabet_padded_or_not(encode: Any) -> None:
    data = bytes(range(256)) * 3 + b"\xfb\xff"
    assert decode_bytes(encode(data)) == data


def test_url_safe_audio_is_heard_as_standard_audio() -> None:
    heard = []
    for urlsafe in (True, False):
        d = GeminiDriver()
        d.setup(inputAudioTranscription={})
        heard.append(d.speak(pcm16k(utterance()), urlsafe=urlsafe))
    assert heard[0] == heard[1] and transcript(heard[0], "inputTranscription")


# -- tools -----------------------------------------------------------------------------------------


def test_a_function_named_in_the_words_is_called_and_the_turn_pauses_until_its_response() -> None:
    d = GeminiDriver()
    d.setup(tools=WEATHER, generationConfig={"responseModalities": ["TEXT"]})
    d.send({"realtimeInput": {"text": "What is the weather in Paris?"}})
    frames = d.drain()
    (call_frame,) = frames
    (call,) = call_frame["toolCall"]["functionCalls"]
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris"})  # OpenAPI types read as JSON schema
    assert call["id"].startswith("function-call-") and d.model.pending_call_id == call["id"]
    assert call_frame["usageMetadata"]["responseTokensDetails"] == [{"modality": "TEXT", "tokenCount": 5}]
    assert not content(frames, "turnComplete") and not d.model.responding  # paused
    assert d.send({"tool_response": {"function_responses": [{"id": "other", "name": "get_weather",
                                                             "response": {"temp_c": 1}}]}}) == []
    assert not d.model.responding  # not its id: dropped
    d.send({"toolResponse": {"functionResponses": [{"id": call["id"], "name": "get_weather",
                                                    "response": {"temp_c": 18}}]}})
    answer = d.drain()
    assert text_of(answer) == 'get_weather returned {"temp_c": 18}'
    assert kinds(answer)[-2:] == ["serverContent.generationComplete", "serverContent.turnComplete"]
    assert d.model.pending_call_id is None


def test_an_output_response_is_said_as_it_is_and_a_response_without_an_id_matches_by_name() -> None:
    d = GeminiDriver()
    d.setup(tools=WEATHER, generationConfig={"responseModalities": ["TEXT"]})
    d.send({"clientContent": {"turns": [{"parts": [{"text": "use get_weather for Lisbon"}]}], "turnComplete": True}})
    (frame,) = d.drain()
    assert frame["toolCall"]["functionCalls"][0]["args"] == {"city": "Lisbon"}
    d.send({"toolResponse": {"functionResponses": [{"name": "get_weather", "response": {"output": "sunny"}}]}})
    assert text_of(d.drain()) == "get_weather returned sunny"


def test_new_input_while_a_call_is_pending_cancels_it() -> None:
    for new_input in ({"realtimeInput": {"text": "Never mind."}},
                      {"clientContent": {"turns": [{"parts": [{"text": "Never mind."}]}], "turnComplete": True}}):
        d = GeminiDriver()
        d.setup(tools=WEATHER, generationConfig={"responseModalities": ["TEXT"]})
        d.send({"realtimeInput": {"text": "What is the weather in Paris?"}})
        call_id = d.drain()[0]["toolCall"]["functionCalls"][0]["id"]
        assert d.send(new_input) == [{"toolCallCancellation": {"ids": [call_id]}}]
        assert text_of(d.drain()) == "You said: Never mind."
        assert d.send({"toolResponse": {"functionResponses": [{"id": call_id, "response": {}}]}}) == []
        assert not d.model.responding  # a late answer to a cancelled call is dropped


def test_speech_while_a_call_is_pending_cancels_it() -> None:
    d = GeminiDriver()
    d.setup(tools=WEATHER)
    d.send({"realtimeInput": {"text": "What is the weather in Paris?"}})
    call_id = d.drain()[0]["toolCall"]["functionCalls"][0]["id"]
    out = d.speak(pcm16k(utterance()))
    assert out[0] == {"toolCallCancellation": {"ids": [call_id]}}


def test_google_search_and_code_execution_tools_are_accepted_and_never_called() -> None:
    d = GeminiDriver()
    d.setup(tools=[{"googleSearch": {}}, {"codeExecution": {}}], generationConfig={"responseModalities": ["TEXT"]})
    d.send({"realtimeInput": {"text": "search the weather"}})
    assert text_of(d.drain()) == "You said: search the weather"


# -- barge-in ------------------------------------------------------------------------------------


def test_speech_during_a_model_turn_interrupts_it() -> None:
    d = GeminiDriver()
    d.setup(inputAudioTranscription={}, outputAudioTranscription={})
    d.send({"realtimeInput": {"text": "Tell me a joke"}})
    said = d.take(d.model.next_chunk()) + d.take(d.model.next_chunk())
    out = d.speak(pcm16k(utterance()))
    assert kinds(out)[:2] == ["serverContent.interrupted", "serverContent.turnComplete"]
    assert "serverContent.generationComplete" not in kinds(out)
    assert out[1]["usageMetadata"]["responseTokensDetails"][0]["tokenCount"] == math.ceil(
        len(audio_of(said)) // 48 * 25 / 1000)  # what was said before the interruption
    assert transcript(out, "inputTranscription") == "(spoken, 1.2 seconds)"
    assert d.model.turns[-2].text == transcript(said, "outputTranscription") == JOKE[:len(d.model.turns[-2].text)]
    assert transcript(d.drain(), "outputTranscription") == "You said: (spoken, 1.2 seconds)"


def test_no_interruption_lets_the_turn_finish_and_answers_after_it() -> None:
    d = GeminiDriver()
    d.setup(realtimeInputConfig={"activityHandling": "NO_INTERRUPTION"}, outputAudioTranscription={})
    d.send({"realtimeInput": {"text": "Tell me a joke"}})
    first = d.take(d.model.next_chunk())
    assert d.speak(pcm16k(utterance())) == []
    frames = first + d.drain()
    assert "serverContent.interrupted" not in kinds(frames)
    assert transcript(frames, "outputTranscription") == JOKE + "You said: (spoken, 1.2 seconds)"


def test_words_given_while_a_reply_waits_its_turn_join_it() -> None:
    d = GeminiDriver()
    d.setup(realtimeInputConfig={"activityHandling": "NO_INTERRUPTION"}, generationConfig={
        "responseModalities": ["TEXT"]})
    d.send({"realtimeInput": {"text": "Tell me a joke"}})
    first = d.take(d.model.next_chunk())
    for words in ("One.", "Two.", "Three."):
        assert d.send({"realtimeInput": {"text": words}}) == []
    assert len(d.model._steps) == 2  # the joke, and one reply waiting behind it
    frames = first + d.drain()
    assert text_of(frames) == JOKE + "You said: Three."
    assert kinds(frames).count("serverContent.turnComplete") == 2


def test_client_content_always_interrupts() -> None:
    d = GeminiDriver()
    d.setup(realtimeInputConfig={"activityHandling": "NO_INTERRUPTION"}, generationConfig={
        "responseModalities": ["TEXT"]})
    d.send({"realtimeInput": {"text": "Tell me a joke"}})
    d.take(d.model.next_chunk())
    out = d.send({"clientContent": {"turns": [{"parts": [{"text": "Stop."}]}], "turnComplete": True}})
    assert kinds(out) == ["serverContent.interrupted", "serverContent.turnComplete"]
    assert text_of(d.drain()) == "You said: Stop."


def test_manual_activity_start_interrupts_a_model_turn() -> None:
    d = GeminiDriver()
    d.setup(realtimeInputConfig={"automaticActivityDetection": {"disabled": True}})
    d.send({"realtimeInput": {"text": "Tell me a joke"}})
    d.take(d.model.next_chunk())
    out = d.send({"realtimeInput": {"activityStart": {}}})
    assert kinds(out) == ["serverContent.interrupted", "serverContent.turnComplete"]


# -- hearing -------------------------------------------------------------------------------------


def test_with_ears_the_turn_waits_for_the_words_heard_at_24khz() -> None:
    d = GeminiDriver(hears=True)
    d.setup(inputAudioTranscription={}, tools=WEATHER)
    assert d.speak(pcm16k(utterance())) == [] and not d.model.responding
    ((key, pcm),) = d.model.take_unheard()
    assert d.model.take_unheard() == [] and len(pcm) == 1200 * 48  # 1.2 s at 24 kHz, as the ears take it
    out = d.take(d.model.heard(key, "What is the weather in Paris?"))
    assert transcript(out, "inputTranscription") == "What is the weather in Paris?"
    (call_frame,) = d.drain()
    assert call_frame["toolCall"]["functionCalls"][0]["args"] == {"city": "Paris"}
    assert d.model.heard(key, "again") == []  # heard once


def test_speech_at_16khz_reaches_the_ears_whole_and_is_heard() -> None:
    from rtproxy.offline.ears import Ears

    from .audio_fixtures import said

    d = GeminiDriver(hears=True)
    d.setup(inputAudioTranscription={}, tools=WEATHER)
    d.speak(pcm16k(said("What is the weather in Paris?")))
    ((key, pcm),) = d.model.take_unheard()
    words = Ears().hear(pcm)
    assert words == "What is the weather in Paris?"
    assert transcript(d.take(d.model.heard(key, words)), "inputTranscription") == words
    assert d.drain()[0]["toolCall"]["functionCalls"][0]["args"] == {"city": "Paris"}


def test_words_not_recognized_leave_the_placeholder() -> None:
    d = GeminiDriver(hears=True)
    d.setup(inputAudioTranscription={})
    d.speak(pcm16k(utterance()))
    ((key, _),) = d.model.take_unheard()
    assert transcript(d.model.heard(key, ""), "inputTranscription") == "(spoken, 1.2 seconds)"


# -- the shared brain ------------------------------------------------------------------------------


def test_the_three_front_ends_answer_from_one_brain() -> None:
    """The same words get the same reply and the same call from the Realtime, Gemini and GPT-Live
    (its Responses backend) front-ends: a question about the weather calls get_weather, named or not."""
    words = "What is the weather in Paris?"
    functions = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}}}}]
    realtime = OfflineModel()
    realtime.receive(json.dumps({"type": "session.update", "session": {"type": "realtime", "tools": functions}}))
    realtime.receive(json.dumps({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": words}]}}))
    realtime.receive(json.dumps({"type": "response.create"}))
    done = []
    while realtime.responding:
        done = realtime.next_chunk() or done
    (call,) = done[-1]["response"]["output"]
    d = GeminiDriver()
    d.setup(tools=WEATHER)
    d.send({"realtimeInput": {"text": words}})
    (gemini_call,) = d.drain()[0]["toolCall"]["functionCalls"]
    assert (gemini_call["name"], gemini_call["args"]) == (call["name"], json.loads(call["arguments"]))
    live = OfflineLiveModel()
    live.receive(json.dumps({"type": "session.start", "session": {"model": "gpt-live-1", "delegation": {
        "type": "responses", "responses": {"model": "gpt-5.6-luna", "tools": functions}}}}))
    live.receive(json.dumps({"type": "response.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": words}]}}))
    live.receive(json.dumps({"type": "response.create"}))
    inner = []
    while live.responding:
        inner += [e["event"] for e in live.next_chunk() if e["type"] == "response.event"]
    (live_call,) = [e["item"] for e in inner if e["type"] == "response.output_item.done"]
    assert (live_call["name"], live_call["arguments"]) == (call["name"], call["arguments"])
    for brain in (realtime.brain, d.model.brain, live.brain):
        assert isinstance(brain, Brain)
        assert brain.reply("tell me a joke") == JOKE and brain.reply("hi") == "You said: hi"


# -- resumption and the connection's life ----------------------------------------------------------


def updates(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["sessionResumptionUpdate"] for f in frames if "sessionResumptionUpdate" in f]


def test_resumption_updates_come_only_when_asked_for() -> None:
    d = GeminiDriver()
    d.setup()
    d.send({"realtimeInput": {"text": "Hello"}})
    assert updates(d.sent + d.drain()) == []


def test_a_handle_after_setup_and_each_turn_and_none_while_generating_or_a_call_is_pending() -> None:
    d = GeminiDriver()
    out = d.setup(sessionResumption={}, tools=WEATHER, generationConfig={"responseModalities": ["TEXT"]})
    (first,) = updates(out)
    assert first["resumable"] is True and first["newHandle"]
    d.send({"realtimeInput": {"text": "Hello"}})
    turn = d.drain()
    assert kinds(turn)[0] == "sessionResumptionUpdate" and updates(turn)[0] == {}  # generating: not resumable
    assert kinds(turn)[-2:] == ["serverContent.turnComplete", "sessionResumptionUpdate"]
    second = updates(turn)[-1]
    assert second["resumable"] is True and second["newHandle"] != first["newHandle"]
    assert d.model.sessions.find(first["newHandle"]) is None  # only the newest handle resumes
    d.send({"realtimeInput": {"text": "What is the weather in Paris?"}})
    paused = d.drain()
    assert updates(paused) == [{}] and kinds(paused) == ["sessionResumptionUpdate", "toolCall"]


def test_a_known_handle_resumes_the_conversation_without_replaying_it() -> None:
    sessions = ResumableSessions()
    a = GeminiDriver(sessions=sessions)
    a.setup(sessionResumption={}, generationConfig={"responseModalities": ["TEXT"]})
    a.send({"realtimeInput": {"text": "Remember the number 42."}})
    handle = updates(a.drain())[-1]["newHandle"]
    assert a.take(a.model.go_away()) == [{"goAway": {"timeLeft": "60s"}}]
    a.take(a.model.expire())
    assert a.model.closing == (1011, DEADLINE_EXPIRED) == (1011, "Deadline expired before operation could complete.")
    b = GeminiDriver(sessions=sessions)
    out = b.send({"setup": {"model": MODEL, "sessionResumption": {"handle": handle},
                            "generationConfig": {"responseModalities": ["TEXT"]}}})
    assert out[0] == {"setupComplete": {}} and len(out) == 2  # nothing replayed: a fresh handle only
    assert b.model.resumed and b.model.session_id == a.model.session_id and b.model.turns == a.model.turns
    b.send({"realtimeInput": {"text": "Which number?"}})
    resumed = b.drain()
    fresh = GeminiDriver()
    fresh.setup(generationConfig={"responseModalities": ["TEXT"]})
    fresh.send({"realtimeInput": {"text": "Which number?"}})
    alone = fresh.drain()
    # the resumed turn's prompt holds the earlier turns: "Remember the number 42." and its reply
    assert usage_of(resumed)["promptTokenCount"] - usage_of(alone)["promptTokenCount"] == 6 + 9


def test_resuming_with_another_setup_keeps_the_conversation_but_not_another_model() -> None:
    sessions = ResumableSessions()
    a = GeminiDriver(sessions=sessions)
    handle = updates(a.setup(sessionResumption={}))[0]["newHandle"]
    other = GeminiDriver(sessions=sessions)
    other.send({"setup": {"model": "models/gemini-3.1-flash-live-preview", "sessionResumption": {"handle": handle}}})
    assert other.model.closing == (1007, INVALID_ARGUMENT)
    same = GeminiDriver(sessions=sessions)
    same.send({"setup": {"model": MODEL, "sessionResumption": {"handle": handle},
                         "generationConfig": {"responseModalities": ["TEXT"]}}})
    assert same.model.closing is None and same.model.modality == "TEXT"


def test_an_unknown_handle_closes_1008_session_not_found() -> None:
    d = GeminiDriver()
    d.send({"setup": {"model": MODEL, "sessionResumption": {"handle": "nobody"}}})
    assert d.model.closing == (1008, SESSION_NOT_FOUND) == (1008, "BidiGenerateContent session not found")


def test_the_resumable_sessions_are_bounded_and_forget_the_oldest() -> None:
    sessions = ResumableSessions(max_sessions=2)
    handles = [sessions.save(SavedSession(f"s{i}", MODEL, ())) for i in range(3)]
    assert sessions.find(handles[0]) is None and len(sessions) == 2
    newer = sessions.save(SavedSession("s1", MODEL, ()))  # s1 updated: now the newest
    sessions.save(SavedSession("s3", MODEL, ()))
    assert sessions.find(handles[2]) is None and sessions.find(newer) is not None
    assert sessions.find(handles[1]) is None  # replaced by its newer handle


def test_go_away_leads_the_connection_limit() -> None:
    assert go_away_lead(600) == 60 and go_away_lead(10) == 5
    d = GeminiDriver(connection_limit_s=10)
    d.setup()
    assert d.model.go_away() == [{"goAway": {"timeLeft": "5s"}}]
    assert d.model.go_away(2.5) == [{"goAway": {"timeLeft": "2.500s"}}]
    assert (duration(0), duration(59.9996), duration(0.25)) == ("0s", "60s", "0.250s")
    d.model.expire()
    assert d.model.go_away() == [] and d.model.next_chunk() == [] and d.send({"realtimeInput": {"text": "x"}}) == []
