"""The harness the translator's tests share (no tests here): a RealtimeGeminiTranslator driven from a
script, every input and every output recorded, every event for the client validated against the
official openai SDK's types (GA or beta), ids deterministic."""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import struct
from typing import Annotated, Any, Union, get_args

from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime import RealtimeServerEvent
from pydantic import Field, TypeAdapter

from rtproxy.translate import Output, RealtimeGeminiTranslator


def _strict(union: Any) -> TypeAdapter[Any]:
    """The SDK's union as a real discriminated union: one clear error, and fast."""
    members = get_args(get_args(union)[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])  # type: ignore[valid-type,arg-type]  # noqa: UP007


VALIDATORS: dict[str, TypeAdapter[Any]] = {"ga": _strict(RealtimeServerEvent), "beta": _strict(BetaServerEvent)}
#: The plain SDK unions, as the issue names them.
PLAIN: dict[str, TypeAdapter[Any]] = {"ga": TypeAdapter(RealtimeServerEvent), "beta": TypeAdapter(BetaServerEvent)}


def counter_ids() -> Any:
    n = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(n):03d}"


def translator(dialect: str = "ga", **kwargs: Any) -> RealtimeGeminiTranslator:
    kwargs.setdefault("model", "gpt-realtime")
    kwargs.setdefault("upstream_model", "gemini-live-2.5-flash")
    return RealtimeGeminiTranslator(dialect=dialect, new_id=counter_ids(),  # type: ignore[arg-type]
                                    clock=lambda: 1_700_000_000.0, **kwargs)


def tone(ms: int, rate: int = 24000, hz: float = 440.0) -> bytes:
    n = rate * ms // 1000
    return struct.pack(f"<{n}h", *(int(6000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(n)))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def append(ms: int = 20, hz: float = 440.0) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": b64(tone(ms, hz=hz))}


def gemini_audio(ms: int = 40, hz: float = 220.0) -> dict[str, Any]:
    return {"serverContent": {"modelTurn": {"parts": [
        {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": b64(tone(ms, hz=hz))}}]}}}


def user_text(text: str, item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    if item_id:
        item["id"] = item_id
    return {"type": "conversation.item.create", "item": item}


def usage(prompt_text: int = 0, prompt_audio: int = 0, out_text: int = 0, out_audio: int = 0, *,
          vertex: bool = False, thoughts: int = 0, cached: int = 0) -> dict[str, Any]:
    """A Gemini usageMetadata (AI Studio names, or Vertex's ``candidates*``)."""
    prompt = [{"modality": m, "tokenCount": n} for m, n in (("TEXT", prompt_text), ("AUDIO", prompt_audio)) if n]
    out = [{"modality": m, "tokenCount": n} for m, n in (("TEXT", out_text), ("AUDIO", out_audio)) if n]
    name = "candidates" if vertex else "response"
    meta: dict[str, Any] = {"promptTokenCount": prompt_text + prompt_audio, f"{name}TokenCount": out_text + out_audio,
                            "totalTokenCount": prompt_text + prompt_audio + out_text + out_audio + thoughts,
                            "promptTokensDetails": prompt, f"{name}TokensDetails": out}
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if cached:
        meta["cachedContentTokenCount"] = cached
    return meta


def _short(value: Any) -> Any:
    """Long base64 payloads as their length and digest (the golden files stay readable)."""
    if isinstance(value, str) and len(value) > 100 and " " not in value:
        return f"<{len(value)} chars sha256:{hashlib.sha256(value.encode()).hexdigest()[:12]}>"
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


class Script:
    """A translator and the record of a conversation with it."""

    def __init__(self, dialect: str = "ga", **kwargs: Any) -> None:
        self.t = translator(dialect, **kwargs)
        self.dialect = dialect
        self.steps: list[dict[str, Any]] = []
        #: Every event the client got, and every frame that went upstream, in order.
        self.client_events: list[dict[str, Any]] = []
        self.upstream_frames: list[dict[str, Any]] = []
        #: What the client sent (for the collector), in order with what it got.
        self.wire: list[tuple[str, dict[str, Any]]] = []

    def _record(self, given: dict[str, Any], out: Output) -> Output:
        for event in out.to_client:
            VALIDATORS[self.dialect].validate_python(event)
            PLAIN[self.dialect].validate_python(event)
            self.wire.append(("server", event))
        self.client_events.extend(out.to_client)
        self.upstream_frames.extend(out.to_upstream)
        step: dict[str, Any] = {"in": given, "to_client": out.to_client, "to_upstream": out.to_upstream}
        if out.reconnect:
            step["reconnect"] = True
            frame = self.t.setup_frame()
            step["setup_frame"] = frame
            self.upstream_frames.append(frame)
        if out.close is not None:
            step["close"] = list(out.close)
        self.steps.append(step)
        return out

    def start(self) -> Output:
        return self._record({"start": True}, self.t.start())

    def client(self, event: dict[str, Any]) -> Output:
        self.wire.append(("client", event))
        return self._record({"client": event}, self.t.from_client(event))

    def upstream(self, frame: dict[str, Any]) -> Output:
        return self._record({"upstream": frame}, self.t.from_upstream(frame))

    def closed(self, code: int, reason: str) -> Output:
        return self._record({"upstream_closed": [code, reason]}, self.t.upstream_closed(code, reason))

    def finish(self) -> Output:
        return self._record({"finish": True}, self.t.finish())

    def golden(self) -> Any:
        return _short(self.steps)

    # -- reading the record

    def types(self) -> list[str]:
        return [e["type"] for e in self.client_events]

    def of_type(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.client_events if e["type"] == etype]

    def dones(self) -> list[dict[str, Any]]:
        return [e["response"] for e in self.of_type("response.done")]

    def billed(self, key: str = "total_tokens") -> int:
        """A usage field summed over every response.done (what the collector bills)."""
        total = 0
        for r in self.dones():
            u = r.get("usage") or {}
            value: Any = u
            for part in key.split("."):
                value = value.get(part, 0) if isinstance(value, dict) else 0
            total += value or 0
        return total
