"""The offline model's brain: what it hears, what it answers, which tool it calls and how it
speaks, the same behind every protocol it serves. No I/O.

The offline model speaks three protocols, each a thin sans-IO front-end that reads its client's
frames and writes its own events: the OpenAI Realtime API (:mod:`rtproxy.offline.model`), GPT-Live
(:mod:`rtproxy.offline.live`) and Google's Gemini Live API (:mod:`rtproxy.offline.gemini`). What
the model *does* is decided here, once:

- **hearing**: an utterance waits for the caller's recognizer in :class:`Utterances` (bounded:
  beyond :data:`MAX_UNHEARD` one is not heard and gets its :func:`placeholder` words at once);
- **answering**: :meth:`Brain.reply` to the user's words (a joke when asked for one, else the
  words said back), :meth:`Brain.tool_reply` to a tool's output;
- **tools**: :meth:`Brain.choose_tool` picks the declared function the words ask for, and
  :func:`arguments` fills its parameters from them;
- **speaking**: :meth:`Brain.speak` voices a reply a word at a time (the speaker's voice, else
  tones), each :class:`SpokenWord` with its transcript delta and its PCM16 24 kHz audio, cut for
  the wire by :meth:`SpokenWord.chunks`;
- **counting**: :func:`text_tokens`, :func:`audio_tokens` at a provider's rate,
  :func:`cached_prefix`.

A front-end's caller (the server, a test) does the hearing (a recognizer costs real time) and
paces the speech.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import attrs

from .audio import BYTES_PER_MS, synthesize_word

#: Text → each word of ``text.split(" ")`` with its PCM16 24 kHz audio (:class:`rtproxy.offline.voice.Voice`).
Speaker = Callable[[str], list[tuple[str, bytes]]]

#: What the model says when there is nothing to answer (a response nobody asked anything for).
GREETING = "Hello! I am the rtproxy offline model."
#: What it says to an utterance or a message with no words in it.
HEARD_NOTHING = "I heard you."
#: What it answers to "tell me a joke" (long enough to talk over, for barge-in).
JOKE = ("Why did the realtime gateway cross the road? To bill the other side, exactly once, "
        "with the receipt in a JSON line.")
_JOKE_REQUEST = re.compile(r"\btell me a joke\b", re.IGNORECASE)
#: Words of a tool's name that say what it does, not what it is about (``get`` in ``get_weather``).
_ACTION_WORDS = frozenset({"get", "set", "fetch", "find", "lookup", "look", "search", "query", "list", "make",
                           "create", "update", "delete", "remove", "call", "run", "send", "check", "tool", "the",
                           "for", "and", "current", "info", "data"})
#: Utterances waiting to be heard at most; beyond, one gets its placeholder transcript at once.
MAX_UNHEARD = 16
#: Audio carried by one audio delta (or inline-data part) at most.
AUDIO_CHUNK_MS = 100
#: The cached prefix is counted in blocks of this many tokens (small, so short demos show caching).
CACHE_BLOCK_TOKENS = 16

T = TypeVar("T")


# -- counting --------------------------------------------------------------------------------------


def text_tokens(text: str) -> int:
    """Four characters a token, rounded up."""
    return -(-len(text) // 4) if text else 0


def audio_tokens(ms: int, per_second: int) -> int:
    """``ms`` of audio at ``per_second`` tokens a second, rounded up (each provider has its rate)."""
    return -(-ms * per_second // 1000)


def cached_prefix(tokens: int) -> int:
    """The part of a prefix of ``tokens`` the cache holds: whole blocks of :data:`CACHE_BLOCK_TOKENS`."""
    return tokens // CACHE_BLOCK_TOKENS * CACHE_BLOCK_TOKENS


# -- hearing ---------------------------------------------------------------------------------------


def placeholder(ms: int) -> str:
    """The words of an utterance nobody recognized: how long it was."""
    return f"(spoken, {ms / 1000:.1f} seconds)"


class Utterances(Generic[T]):
    """Utterances handed to the caller's recognizer and not heard yet, each with what the
    front-end needs to go on once it is (``T``: its item, its VAD event, its turn)."""

    def __init__(self, hears: bool) -> None:
        self.hears = hears
        self._to_hear: list[tuple[str, bytes]] = []  # not handed out yet
        self._waiting: dict[str, T] = {}  # handed out (or about to be), not heard yet

    @property
    def ready(self) -> bool:
        """Hearing, with room for one more (:data:`MAX_UNHEARD` wait at most)."""
        return self.hears and len(self._waiting) < MAX_UNHEARD

    def listen(self, key: str, pcm: bytes, context: T) -> bool:
        """Queue ``pcm`` for the recognizer; ``False`` when not :attr:`ready`: the caller
        uses the :func:`placeholder` now."""
        if not self.ready:
            return False
        self._to_hear.append((key, pcm))
        self._waiting[key] = context
        return True

    def take(self) -> list[tuple[str, bytes]]:
        """The utterances to recognize, ``(key, pcm)``, each handed out once."""
        taken, self._to_hear = self._to_hear, []
        return taken

    def heard(self, key: str) -> T | None:
        """What ``key`` was queued with, once (``None``: unknown, or already heard)."""
        return self._waiting.pop(key, None)

    @property
    def waiting(self) -> bool:
        return bool(self._waiting)


# -- tools -----------------------------------------------------------------------------------------


def topic_words(tool_name: str) -> frozenset[str]:
    """``get_weather`` → {"weather"}; ``lookupOrderStatus`` → {"order", "status"}."""
    parts = re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", tool_name).lower())
    return frozenset(p for p in parts if len(p) >= 3 and p not in _ACTION_WORDS)


def arguments(words: str, parameters: Any) -> dict[str, Any]:
    """A JSON schema's properties filled from the words: names for strings, numbers for numbers,
    an enum's first value, ``true`` for booleans (lower-case JSON schema types)."""
    props = (parameters or {}).get("properties") or {}
    found = re.findall(r"[A-Za-z][\w'-]*", words)
    names = [w for i, w in enumerate(found) if w[0].isupper() and i > 0 and "_" not in w]
    numbers = re.findall(r"-?\d+(?:\.\d+)?", words)
    args: dict[str, Any] = {}
    for key, schema in props.items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        if isinstance(schema, dict) and isinstance(schema.get("enum"), list) and schema["enum"]:
            args[key] = schema["enum"][0]
        elif kind in ("number", "integer"):
            value = float(numbers.pop(0)) if numbers else 1
            args[key] = int(value) if kind == "integer" else value
        elif kind == "boolean":
            args[key] = True
        elif kind == "string" or kind is None:
            args[key] = names.pop() if names else "example"
    return args


def fill_arguments(words: str, tool: dict[str, Any]) -> str:
    """:func:`arguments` for a tool with JSON schema ``parameters``, as a JSON string."""
    return json.dumps(arguments(words, tool.get("parameters")))


# -- speaking --------------------------------------------------------------------------------------


def fragments(text: str, *, lead: str = "") -> list[str]:
    """``text`` as streamed, a word at a time (``text.split(" ")``): the first starts with
    ``lead``, each other with its space, so the fragments join to ``lead + text``."""
    return [(lead if i == 0 else " ") + word for i, word in enumerate(text.split(" "))]


@attrs.frozen
class SpokenWord:
    """One word of a reply: its transcript delta (with its leading space) and its audio."""

    delta: str
    #: PCM16 24 kHz mono; empty when the reply is not voiced.
    pcm: bytes

    @property
    def ms(self) -> int:
        """Its audio's length in whole milliseconds."""
        return len(self.pcm) // BYTES_PER_MS

    def chunks(self) -> list[str]:
        """Its audio in base64 pieces of :data:`AUDIO_CHUNK_MS` at most, as the wire carries it."""
        step = AUDIO_CHUNK_MS * BYTES_PER_MS
        return [base64.b64encode(self.pcm[off:off + step]).decode() for off in range(0, len(self.pcm), step)]


# -- the brain -------------------------------------------------------------------------------------


class Brain:
    """What the offline model answers, which tool it calls, and its voice.

    ``speaker``: the voice of spoken replies (``None``: tones).
    """

    def __init__(self, speaker: Speaker | None = None) -> None:
        self.speaker = speaker

    def reply(self, words: str | None) -> str:
        """The answer to the user's words (``None``: nobody said anything)."""
        if words is None:
            return GREETING
        if _JOKE_REQUEST.search(words):
            return JOKE
        return f"You said: {words}" if words else HEARD_NOTHING

    @staticmethod
    def tool_reply(name: str, output: str) -> str:
        """The answer once a tool has given its output."""
        return f"{name} returned {output}"

    def choose_tool(self, words: str, tools: list[dict[str, Any]], choice: Any = "auto") -> dict[str, Any] | None:
        """The function (``{"name", "parameters", …}``) the words ask for, if any: one named in
        them (``get_weather``, "get weather"), else one whose topic they mention ("the weather" →
        ``get_weather``). ``choice`` as OpenAI's ``tool_choice``: ``"auto"``, ``"none"``,
        ``"required"`` (then the first tool when none is asked for), or ``{"name": …}``."""
        if not tools or choice == "none":
            return None
        if isinstance(choice, dict) and choice.get("name"):
            return next((t for t in tools if t["name"] == choice["name"]), None)
        low = words.lower()
        for tool in tools:
            name = tool["name"].lower()
            if name in low or name.replace("_", " ") in low:
                return tool
        said = set(re.findall(r"[a-z0-9]+", low))
        for tool in tools:
            if said & topic_words(tool["name"]):
                return tool
        return tools[0] if choice == "required" else None

    def speak(self, text: str, *, lead: str = "", voiced: bool = True) -> Iterator[SpokenWord]:
        """``text`` a word at a time (:func:`fragments`), voiced by the speaker when it gives a
        word count that matches, else in tones; a speaker that fails (``OSError``) is dropped for
        tones from then on. ``voiced=False``: the deltas only (a text reply), the speaker not asked."""
        deltas = fragments(text, lead=lead)
        spoken = self._voiced(text, len(deltas)) if voiced else None
        for i, (word, delta) in enumerate(zip(text.split(" "), deltas)):
            if not voiced:
                pcm = b""
            elif spoken is not None:
                pcm = spoken[i]
            else:
                pcm = synthesize_word(word)
            yield SpokenWord(delta, pcm)

    def _voiced(self, text: str, n_words: int) -> list[bytes] | None:
        if self.speaker is None:
            return None
        try:
            said = self.speaker(text)
        except OSError:  # the voice's library failed to load or speak: tones, not silence
            self.speaker = None
            return None
        return [pcm for _, pcm in said] if len(said) == n_words else None
