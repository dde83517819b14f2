"""What the offline model's ears hear: the choice between two pocketsphinx decoders' answers.

Two passes over each utterance, one decoder each (:mod:`rtproxy.offline.ears`):

1. a **grammar** of what the offline model understands (:data:`RULES`: weather and time in a
   place, sums, jokes, greetings) — pocketsphinx's general model mishears synthetic speech
   ("what is the weather in every" for "… in Paris"), the grammar does not;
2. the **general** English model, for everything else.

The grammar forces any sound into one of its sentences, so its answer must earn its place: it is
kept when it parses whole and its path score is well above the general model's
(:data:`GRAMMAR_SCORE_RATIO`), or somewhat above it with a third of its words also heard by the
general model (:data:`CORROBORATED_SCORE_RATIO`, :data:`CORROBORATION`); otherwise the general
model's answer stands. Measured with espeak-ng speech: in-grammar sentences score 1.25–2.3× the
general model, out-of-grammar ones 1.1–1.25× (sharing at most one word in six). Either way the words are written as a transcript:
digits for numbers, capitalized places, a question mark for questions.

Each utterance is cut to its voiced part first (silence drags both path scores down, the
grammar's more: "What time is it in London?" after 0.3 s of silence scored 1.58×, alone 1.76×)
and normalized on its own (``cmn = batch``), so what is heard does not depend on what the
session said before. An utterance with no voiced frame is heard as nothing (the general model
"hears" a word in digital silence).

This module is the decision, no I/O; :mod:`rtproxy.offline.ears` runs the two decoders over it.
"""

from __future__ import annotations

import re

import numpy as np

#: The recognizer's sample rate.
RECOGNIZER_HZ = 16000
#: Longest utterance recognized (ms); the rest of a longer one is not heard.
MAX_UTTERANCE_MS = 30_000
#: A 10 ms frame is voiced above this share of the utterance's loudest frame (RMS) …
VOICED_SHARE = 0.05
#: … and above this RMS (PCM16 units; about -50 dBFS).
VOICED_FLOOR = 100
#: Silence kept before and after the voiced part (ms).
MARGIN_MS = 150
#: The grammar's sentence wins outright at this ratio of its path score to the general model's.
GRAMMAR_SCORE_RATIO = 1.4
#: … or at this ratio when at least :data:`CORROBORATION` of its words were heard by both.
CORROBORATED_SCORE_RATIO = 1.2
CORROBORATION = 1 / 3

_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
PLACES = ["paris", "london", "tokyo", "berlin", "madrid", "rome", "new york", "boston", "chicago", "seattle",
          "sydney", "amsterdam", "lisbon", "dublin"]
#: The grammar, in JSGF's rule syntax (``|`` alternatives, ``[…]`` optional, ``(…)`` groups).
RULES = {
    "utt": "[<opener>] <request> [please | thank you]",
    "opener": "hello | hi | hey | okay | so | please",
    "request": "<weather> | <time> | <sum> | <joke> | <greeting> | <thanks> | <bye>",
    "weather": "(what is | what's | how is) the weather [like] [(in | for) <place>] [today | tomorrow | now]",
    "time": "what time is it [in <place>] [now] | what is the time [in <place>]",
    "sum": "(add | what is) <number> (and | plus) <number>",
    "joke": "tell me a joke",
    "greeting": "how are you [today] | good (morning | afternoon | evening) | hello",
    "thanks": "thank you | thanks",
    "bye": "goodbye | bye",
    "place": " | ".join(PLACES),
    "number": " | ".join(_NUMBERS),
}
_OPENERS = {"hello", "hi", "hey", "okay", "so", "please"}
_QUESTION_WORDS = {"what", "what's", "how", "where", "when", "who", "why", "is", "are", "can", "could", "do", "does"}


def jsgf(rules: dict[str, str] = RULES) -> str:
    body = "".join(f"{'public ' if name == 'utt' else ''}<{name}> = {expr};\n" for name, expr in rules.items())
    return "#JSGF V1.0;\ngrammar offline;\n" + body


def grammar_regex(rules: dict[str, str] = RULES) -> re.Pattern[str]:
    """The sentences :func:`jsgf` accepts, as a regex over words each followed by one space."""

    def expand(expr: str, depth: int = 0) -> str:
        if depth > len(rules):
            raise ValueError("recursive grammar")
        out = []
        for token in re.findall(r"<\w+>|[\[\]()|]|[^\s\[\]()|<>]+", expr):
            if token.startswith("<"):
                out.append("(?:" + expand(rules[token[1:-1]], depth + 1) + ")")
            else:
                out.append({"[": "(?:", "]": ")?", "(": "(?:", ")": ")", "|": "|"}.get(token, re.escape(token) + " "))
        return "".join(out)

    return re.compile("^(?:" + expand(rules["utt"]) + ")$")


_ACCEPTS = grammar_regex()


def voiced_part(pcm16k: bytes) -> bytes:
    """The utterance from its first to its last voiced frame (with :data:`MARGIN_MS`), or ``b""``."""
    x = np.frombuffer(pcm16k[: len(pcm16k) - len(pcm16k) % 2], dtype="<i2").astype(np.float64)
    frame = RECOGNIZER_HZ // 100
    n = x.size // frame
    if n == 0:
        return b""
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    voiced = np.flatnonzero(rms > max(VOICED_FLOOR, VOICED_SHARE * rms.max()))
    if voiced.size == 0:
        return b""
    margin = MARGIN_MS // 10
    start, end = max(0, int(voiced[0]) - margin), min(n, int(voiced[-1]) + 1 + margin)
    return pcm16k[2 * start * frame: 2 * end * frame]


def choose(grammar: tuple[str, float], general: tuple[str, float]) -> str:
    """The grammar's sentence when it parses and scores well enough (see the module's doc), else
    the general model's. Each argument: ``(words, path score)``."""
    (grammar_words, grammar_score), (general_words, general_score) = grammar, general
    grammar_words, general_words = grammar_words.strip(), general_words.strip()
    if not grammar_words or not _ACCEPTS.match(grammar_words + " "):
        return general_words
    ratio = grammar_score / general_score if general_score > 0 else float("inf")
    said, heard = grammar_words.split(), set(general_words.split())
    shared = sum(w in heard for w in said) / len(said)
    if ratio >= GRAMMAR_SCORE_RATIO or (ratio >= CORROBORATED_SCORE_RATIO and shared >= CORROBORATION):
        return grammar_words
    return general_words


def transcript(words: str) -> str:
    """Recognized words as a transcript: digits for numbers, capitalized places, punctuation."""
    if not words.strip():
        return ""
    text = " " + " ".join(words.split()) + " "
    for place in PLACES:
        text = text.replace(f" {place} ", " " + place.title() + " ")
    for value, name in enumerate(_NUMBERS):
        text = text.replace(f" {name} ", f" {value} ").replace(f" {name} ", f" {value} ")
    text = text.strip()
    lead = [w for w in text.lower().split() if w not in _OPENERS][:1]
    mark = "?" if lead and lead[0] in _QUESTION_WORDS else "."
    return text[0].upper() + text[1:] + mark
