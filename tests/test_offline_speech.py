"""The offline model hears (pocketsphinx) and speaks (espeak-ng): the recognizer's choices, the
transcript's form, the model waiting for the words before it answers, and the voice's wiring."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from rtproxy.offline import hearing
from rtproxy.offline.ears import Ears
from rtproxy.offline.hearing import choose, transcript
from rtproxy.offline.live import OfflineLiveModel
from rtproxy.offline.model import JOKE, MAX_UNHEARD, OfflineModel, _topic_words
from rtproxy.offline.resample import resample
from rtproxy.offline.voice import Voice

from .audio_fixtures import append_events, said, utterance
from .test_offline_model import GA, TOOLS

WEATHER = "What is the weather in Paris?"


class Hearing:
    """A model that leaves hearing to its caller, driven like the offline server drives it."""

    def __init__(self, **kwargs: Any) -> None:
        self.model = OfflineModel(hears=True, **kwargs)
        self.sent: list[dict[str, Any]] = list(self.model.start())

    def send(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        out = self.model.receive(json.dumps(event))
        for e in out:
            GA.validate_python(e)
        self.sent.extend(out)
        return out

    def heard(self, item_id: str, words: str | None) -> list[dict[str, Any]]:
        out = self.model.heard(item_id, words)
        for e in out:
            GA.validate_python(e)
        self.sent.extend(out)
        return out

    def drain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while self.model.responding:
            out.extend(self.model.next_chunk())
        self.sent.extend(out)
        return out

    def speak(self, pcm: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for append in append_events(pcm):
            out.extend(self.send(append))
        return out


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def setup_session(h: Hearing, **session: Any) -> None:
    h.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"], "audio": {
        "input": {"transcription": {"model": "gpt-4o-transcribe"}}}, **session}})


# -- the recognizer's decisions (no audio) ------------------------------------------------------


@pytest.mark.parametrize("words, accepted", [
    ("what is the weather in paris", True),
    ("hi what is the weather like in new york today please", True),
    ("add two and three", True),
    ("what time is it in london", True),
    ("what is the weather in atlantis", False),  # not one of its places
    ("the weather in paris", False),  # half a sentence
    ("", False),
])
def test_the_grammar_accepts_its_sentences_whole_and_nothing_else(words: str, accepted: bool) -> None:
    assert bool(hearing._ACCEPTS.match(words + " ")) is accepted


def test_the_jsgf_text_names_every_rule_once_and_only_utt_is_public() -> None:
    text = hearing.jsgf()
    for name in hearing.RULES:
        assert text.count(f"<{name}> = ") == 1
    assert text.count("public ") == 1 and "public <utt> = " in text


@pytest.mark.parametrize("grammar, general, expected", [
    # a clear win for the grammar: kept even with no word in common
    (("tell me a joke", 1.4), ("do me a job", 1.0), "tell me a joke"),
    (("tell me a joke", 1.39), ("you know", 1.0), "you know"),
    (("tell me a joke", 1.4), ("you know", 1.0), "tell me a joke"),  # at the ratio, uncorroborated
    # a narrower win needs half its words corroborated
    (("hello how are you", 1.2), ("oh are you", 1.0), "hello how are you"),
    (("hello how are you", 1.19), ("oh are you", 1.0), "oh are you"),
    (("what time is it in london", 1.25), ("what might be london", 1.0), "what time is it in london"),  # 2 of 6
    (("okay add six and three please", 1.3), ("oh and the clouds", 1.0), "oh and the clouds"),  # 1 of 6
    (("hi add two plus two please", 1.3), ("can you look at like that", 1.0), "can you look at like that"),
    # the grammar's answer must parse whole
    (("what is the weather in", 9.0), ("what is the weather in every", 1.0), "what is the weather in every"),
    (("", 0.0), ("my name is john", 1.0), "my name is john"),
    # the general model heard nothing: the grammar's parse stands
    (("goodbye", 0.8), ("", 0.0), "goodbye"),
])
def test_the_grammars_sentence_is_kept_only_when_it_scores_well_or_is_corroborated(
        grammar: tuple[str, float], general: tuple[str, float], expected: str) -> None:
    assert choose(grammar, general) == expected


@pytest.mark.parametrize("words, expected", [
    ("what is the weather in paris", "What is the weather in Paris?"),
    ("hi what is the weather like in new york", "Hi what is the weather like in New York?"),
    ("add two and three", "Add 2 and 3."),
    ("what is twenty plus one one", "What is 20 plus 1 1?"),
    ("my name is john", "My name is john."),
    ("   ", ""),
])
def test_recognized_words_are_written_with_digits_places_and_punctuation(words: str, expected: str) -> None:
    assert transcript(words) == expected


def test_a_tools_topic_words_leave_out_what_it_does() -> None:
    assert _topic_words("get_weather") == {"weather"}
    assert _topic_words("lookupOrderStatus") == {"order", "status"}
    assert _topic_words("get") == frozenset()
    assert _topic_words("get_map") == {"map"}  # three letters are a word


# -- the model waits for its words ----------------------------------------------------------------


def test_committed_audio_is_handed_out_once_and_the_reply_waits_for_the_words() -> None:
    h = Hearing()
    setup_session(h, tools=TOOLS)
    out = h.speak(utterance())
    assert types(out)[-3:] == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    assert not h.model.responding  # no response before the words are known
    (item_id, pcm), = h.model.take_unheard()
    assert h.model.take_unheard() == [] and len(pcm) > 0
    done = h.heard(item_id, WEATHER)
    assert types(done) == ["conversation.item.input_audio_transcription.delta",
                           "conversation.item.input_audio_transcription.completed", "response.created"]
    assert done[1]["transcript"] == WEATHER and done[1]["usage"]["output_tokens"] == 8
    reply = h.drain()
    call = next(e["item"] for e in reply if e["type"] == "response.output_item.done")
    assert (call["type"], call["name"], json.loads(call["arguments"])) == ("function_call", "get_weather",
                                                                           {"city": "Paris"})
    assert h.model.heard(item_id, "again") == []  # heard once


def test_a_response_create_before_the_words_waits_and_a_second_one_is_refused() -> None:
    h = Hearing()
    h.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"],
                                                  "audio": {"input": {"turn_detection": None}}}})
    h.speak(utterance())
    h.send({"type": "input_audio_buffer.commit"})
    assert h.send({"type": "response.create"}) == []
    (refused,) = h.send({"type": "response.create", "event_id": "second"})
    assert refused["error"] == {"type": "invalid_request_error", "code": "conversation_already_has_active_response",
                                "message": "Conversation already has a response waiting for its input audio to be "
                                           "heard.", "param": None, "event_id": "second"}
    (item_id, _), = h.model.take_unheard()
    assert types(h.heard(item_id, "Tell me a joke.")) == ["response.created"]
    reply = h.drain()
    assert reply[-1]["response"]["output"][0]["content"][0]["text"] == JOKE


def test_a_cancel_before_the_words_drops_the_waiting_response() -> None:
    h = Hearing()
    h.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}})
    h.speak(utterance())
    h.send({"type": "input_audio_buffer.commit"})
    h.send({"type": "response.create"})
    assert h.send({"type": "response.cancel"}) == []
    (item_id, _), = h.model.take_unheard()
    assert h.heard(item_id, "hello") == [] and not h.model.responding


def test_words_not_recognized_leave_the_placeholder_transcript() -> None:
    h = Hearing()
    setup_session(h)
    h.speak(utterance(speech_ms=1600))
    (item_id, pcm), = h.model.take_unheard()
    done = h.heard(item_id, None)
    assert done[1]["transcript"] == f"(spoken, {len(pcm) // 48 / 1000:.1f} seconds)" != "(spoken, 0.0 seconds)"


def test_an_item_deleted_before_its_words_are_heard_gets_a_placeholder_without_a_length() -> None:
    h = Hearing()
    setup_session(h)
    h.speak(utterance())
    (item_id, _), = h.model.take_unheard()
    h.send({"type": "conversation.item.delete", "item_id": item_id})
    assert h.heard(item_id, None)[1]["transcript"] == "(spoken, 0.0 seconds)"


def test_beyond_the_unheard_bound_an_utterance_gets_its_placeholder_at_once() -> None:
    h = Hearing()
    h.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": None}}}})
    for _ in range(MAX_UNHEARD):
        h.speak(utterance())
        h.send({"type": "input_audio_buffer.commit"})
    assert len(h.model.take_unheard()) == MAX_UNHEARD
    h.speak(utterance())
    out = h.send({"type": "input_audio_buffer.commit"})
    assert out[-1]["type"] == "conversation.item.input_audio_transcription.completed"
    assert out[-1]["transcript"].startswith("(spoken, ") and h.model.take_unheard() == []


def test_a_model_that_does_not_hear_writes_its_placeholder_at_once() -> None:
    model = OfflineModel()
    model.receive(json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"transcription": {"model": "gpt-4o-transcribe"}}}}}))
    out = [e for a in append_events(utterance()) for e in model.receive(json.dumps(a))]
    assert "conversation.item.input_audio_transcription.completed" in types(out) and model.take_unheard() == []


def test_a_gpt_live_turn_waits_for_its_words_and_says_them() -> None:
    model = OfflineLiveModel(hears=True)
    model.receive(json.dumps({"type": "session.start", "session": {"model": "gpt-live-1", "delegation": {
        "type": "client"}}}))
    for append in append_events(utterance()):
        out = model.receive(json.dumps({"type": "session.input_audio.append", "audio": append["audio"]}))
        assert "session.input_transcript.delta" not in types(out)
    (turn_id, _), = model.take_unheard()
    out = model.heard(turn_id, WEATHER)
    assert "".join(e["delta"] for e in out if e["type"] == "session.input_transcript.delta") == WEATHER
    assert types(out)[-1] == "session.delegation.created"


# -- the voice -------------------------------------------------------------------------------------


def test_replies_are_voiced_by_the_speaker_word_by_word() -> None:
    voiced = {"You": b"\x01\x00" * 2400, "said:": b"\x02\x00" * 4800, "hello": b"\x03\x00" * 7200}
    model = OfflineModel(speaker=lambda text: [(w, voiced[w]) for w in text.split(" ")])
    model.receive(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
    model.receive(json.dumps({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}}))
    model.receive(json.dumps({"type": "response.create"}))
    out: list[dict[str, Any]] = []
    while model.responding:
        out.extend(model.next_chunk())
    audio = b"".join(base64.b64decode(e["delta"]) for e in out if e["type"] == "response.output_audio.delta")
    assert audio == b"".join(voiced.values())
    usage = out[-1]["response"]["usage"]
    assert usage["output_token_details"]["audio_tokens"] == 12  # 0.6 s at 20 tokens a second


def test_a_speaker_speaks_audio_replies_only_and_a_word_count_it_misses_gets_tones() -> None:
    spoken: list[str] = []

    def speaker(text: str) -> list[tuple[str, bytes]]:
        spoken.append(text)
        return [(w, b"\x01\x00" * 1201) for w in text.split(" ")[:-1]]  # one word short

    for modalities, expected in ((["text"], []), (["audio"], ["You said: hello"])):
        model = OfflineModel(speaker=speaker)
        model.receive(json.dumps({"type": "session.update", "session": {"type": "realtime",
                                                                        "output_modalities": modalities}}))
        model.receive(json.dumps({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}}))
        model.receive(json.dumps({"type": "response.create"}))
        while model.responding:
            out = model.next_chunk()
        assert spoken == expected
    audio = out[-1]["response"]["output"][0]
    assert audio["content"][0]["transcript"] == "You said: hello"  # in tones, every word


def test_audio_of_part_milliseconds_is_billed_by_whole_milliseconds() -> None:
    # 50 ms and one sample per word: 50 ms (1 token at 20 a second) each, not 50.04 (2 tokens)
    model = OfflineModel(speaker=lambda text: [(w, b"\x01\x00" * 1201) for w in text.split(" ")])
    model.receive(json.dumps({"type": "response.create"}))
    while model.responding:
        out = model.next_chunk()
    assert out[-1]["response"]["usage"]["output_token_details"]["audio_tokens"] == 7  # "Hello! I am … model.": 7 words


def test_a_speaker_that_fails_falls_back_to_tones() -> None:
    def broken(text: str) -> list[tuple[str, bytes]]:
        raise OSError("no espeak-ng here")

    model = OfflineModel(speaker=broken)
    model.receive(json.dumps({"type": "response.create"}))
    out: list[dict[str, Any]] = []
    while model.responding:
        out.extend(model.next_chunk())
    assert any(e["type"] == "response.output_audio.delta" for e in out) and model.speaker is None


# -- real speech: espeak-ng's voice, pocketsphinx's ears ------------------------------------------


@pytest.fixture(scope="module")
def ears() -> Ears:
    return Ears()


def test_the_voice_cuts_its_speech_at_each_word() -> None:
    words = Voice().speak("What is the weather in Paris?")
    assert [w for w, _ in words] == ["What", "is", "the", "weather", "in", "Paris?"]
    assert all(len(pcm) > 0 and len(pcm) % 2 == 0 for _, pcm in words)
    total_ms = sum(len(pcm) for _, pcm in words) // 48
    assert 1000 < total_ms < 3500  # a spoken sentence, not a burst or a drone


@pytest.mark.parametrize("sentence, expected", [
    (WEATHER, WEATHER),
    ("What is the weather like in Tokyo today?", "What is the weather like in Tokyo today?"),
    ("Add two and three", "Add 2 and 3."),
    ("What time is it in London?", "What time is it in London?"),
])
def test_what_the_voice_says_the_ears_hear(ears: Ears, sentence: str, expected: str) -> None:
    assert ears.hear(said(sentence)) == expected


def test_speech_outside_the_grammar_is_heard_by_the_general_model(ears: Ears) -> None:
    heard = ears.hear(said("I would like to order a pizza"))
    assert "pizza" in heard and "plus" not in heard  # not forced into one of the grammar's sentences


def test_silence_is_heard_as_nothing(ears: Ears) -> None:
    assert ears.hear(bytes(48000)) == ""
    assert ears.hear(b"") == ""


def test_only_the_voiced_part_of_an_utterance_is_decoded() -> None:
    frame = b"\x00\x00" * 160  # 10 ms at 16 kHz
    loud = b"\x10\x27" * 160  # 10000
    quiet = b"\x40\x00" * 160  # 64: under the floor
    pcm = frame * 100 + loud * 30 + quiet * 5 + loud * 10 + frame * 100
    part = hearing.voiced_part(pcm)
    margin = hearing.MARGIN_MS // 10
    assert part == frame * margin + loud * 30 + quiet * 5 + loud * 10 + frame * margin
    assert hearing.voiced_part(quiet * 50) == b""


def test_the_voiced_part_at_its_edges() -> None:
    frame, loud = b"\x00\x00" * 160, b"\x10\x27" * 160  # 10 ms at 16 kHz: silent, RMS 10000
    at_floor = (100).to_bytes(2, "little", signed=True) * 160  # RMS exactly VOICED_FLOOR: not voiced
    assert hearing.voiced_part(loud * 3 + frame * 100) == loud * 3 + frame * (hearing.MARGIN_MS // 10)
    assert hearing.voiced_part(at_floor * 20 + (1000).to_bytes(2, "little") * 160) == \
        at_floor * 15 + (1000).to_bytes(2, "little") * 160
    assert hearing.voiced_part(loud + b"\x10") == loud  # an odd byte is not a sample
    assert hearing.voiced_part(loud[:300]) == b""  # less than one frame


def test_a_recursive_grammar_is_refused_and_a_deep_one_is_not() -> None:
    with pytest.raises(ValueError, match="^recursive grammar$"):
        hearing.grammar_regex({"utt": "a <utt>"})
    chain = {"utt": "<r1>", **{f"r{i}": f"<r{i + 1}>" for i in range(1, 11)}, "r11": "end"}
    assert hearing.grammar_regex(chain).match("end ")


def test_resampling_keeps_a_tones_pitch_and_length() -> None:
    import numpy as np

    t = np.arange(24000) / 24000
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype("<i2").tobytes()
    out = np.frombuffer(resample(tone, 24000, 16000), dtype="<i2")
    assert out.size == 16000
    peak = np.argmax(np.abs(np.fft.rfft(out)))  # 1 Hz per bin over one second
    assert peak == 440


# -- the grammar, rule by rule (literal lists: a test must not read the lists it checks) -----------

GRAMMAR_PLACES = ["paris", "london", "tokyo", "berlin", "madrid", "rome", "new york", "boston", "chicago", "seattle",
                  "sydney", "amsterdam", "lisbon", "dublin"]
GRAMMAR_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                   "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                   "twenty"]


@pytest.mark.parametrize("sentence", [
    *(f"what is the weather in {p}" for p in GRAMMAR_PLACES),
    *(f"add {n} and {n}" for n in GRAMMAR_NUMBERS),
    *(f"{o} tell me a joke" for o in ["hello", "hi", "hey", "okay", "so", "please"]),
    "what's the weather for london tomorrow", "how is the weather now", "what is the weather like",
    "what time is it in tokyo now", "what time is it", "what is the time in rome", "what is the time",
    "what is two plus three", "how are you today", "good morning", "good afternoon", "good evening", "hello",
    "thank you", "thanks", "goodbye", "bye", "tell me a joke please", "tell me a joke thank you",
])
def test_every_alternative_of_every_rule_is_a_sentence_of_the_grammar(sentence: str) -> None:
    assert hearing._ACCEPTS.match(sentence + " ")
    assert hearing.grammar_regex().match(sentence + " ")


@pytest.mark.parametrize("sentence", ["please", "what is the weather in", "add two", "good night", "tell me a",
                                      "what time is it in", "the weather", "hi hi tell me a joke"])
def test_half_sentences_are_not(sentence: str) -> None:
    assert not hearing._ACCEPTS.match(sentence + " ")


def test_the_jsgf_text_is_the_rules_in_order() -> None:
    text = hearing.jsgf({"utt": "<a> [b]", "a": "x | y"})
    assert text == "#JSGF V1.0;\ngrammar offline;\npublic <utt> = <a> [b];\n<a> = x | y;\n"
    assert hearing.grammar_regex({"utt": "<a> [b] (c | d)", "a": "x | y"}).pattern == \
        "^(?:(?:x |y )(?:b )?(?:c |d ))$"
    with pytest.raises(ValueError, match="recursive grammar"):
        hearing.grammar_regex({"utt": "<utt>"})


@pytest.mark.parametrize("words, expected", [
    ("what is the weather in new york", "What is the weather in New York?"),
    ("please what is the weather in lisbon", "Please what is the weather in Lisbon?"),
    ("hi how are you", "Hi how are you?"),
    ("so is it raining", "So is it raining?"),
    ("add zero and twenty", "Add 0 and 20."),
    ("one one one", "1 1 1."),
    ("paris", "Paris."),
    ("where is it", "Where is it?"),
    ("tell me", "Tell me."),
])
def test_transcripts_are_written_as_a_transcriber_would(words: str, expected: str) -> None:
    assert transcript(words) == expected


def test_resampling_an_awkward_length_is_exact_in_length_and_gives_the_same_sound() -> None:
    import numpy as np

    tones = (300.0, 1200.0, 3100.0)  # the speech band

    def at(rate: int, n: int) -> np.ndarray:
        t = np.arange(n) / rate
        return sum(3000 * np.sin(2 * np.pi * hz * t) for hz in tones)

    x = at(22_050, 22_051).astype("<i2")  # 22,051 = 3 × 7,350 + 1: no fast transform of that length
    out = np.frombuffer(resample(x.tobytes(), 22_050, 24_000), dtype="<i2").astype(float)
    assert out.size == round(x.size * 24_000 / 22_050)
    ideal = at(24_000, out.size)
    middle = slice(500, out.size - 500)  # the ends meet the padding's silence
    assert np.sqrt(np.mean((out[middle] - ideal[middle]) ** 2)) < 2.0  # within rounding of 16-bit samples


def test_a_reply_too_long_to_voice_on_the_loop_is_left_to_tones() -> None:
    from rtproxy.offline.voice import MAX_TEXT_CHARS

    assert Voice().speak("a" * (MAX_TEXT_CHARS + 1)) == []
