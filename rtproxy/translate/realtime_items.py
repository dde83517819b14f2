"""What an OpenAI Realtime client asks for, as Gemini Live content: items, tool outputs, and the
overrides of a ``response.create``. No I/O; each refusal is a :class:`~.realtime_session.ClientError`
naming the field.

* A user message becomes a ``clientContent`` turn (``role: "user"``): ``input_text`` → a text part,
  ``input_audio`` (in the session's input format) → an ``inlineData`` part of PCM16 16 kHz,
  ``input_image`` (a base64 data URL only: nothing here fetches URLs) → an ``inlineData`` part.
  An assistant message becomes a ``role: "model"`` turn of text. A system message is refused:
  Gemini takes system text only as the setup's ``systemInstruction`` (the session's instructions).
* A ``function_call_output``'s output becomes the ``response`` object of a ``functionResponses``
  entry: a JSON object as it is, anything else as ``{"output": value}`` (the parsed JSON, or the
  string when it is not JSON).
* Gemini fixes instructions, tools, modalities and voice at setup: a ``response.create`` may
  repeat the session's values but not change them, and cannot be out of band or bring its own
  input. Its ``metadata`` is echoed on the response.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .audio import GEMINI_INPUT_MIME, AudioFormat, convert_once
from .realtime_session import ClientError, Dialect

#: What a response.create may carry: each must match the session (or be absent).
RESPONSE_FIELDS: dict[Dialect, tuple[str, ...]] = {
    "ga": ("output_modalities", "instructions", "tools", "tool_choice", "max_output_tokens", "audio"),
    "beta": ("modalities", "instructions", "tools", "tool_choice", "max_response_output_tokens", "voice",
             "output_audio_format", "temperature"),
}


def message_turn(item: dict[str, Any], stored: dict[str, Any], *, input_format: AudioFormat,
                 realtime_text: bool = False) -> dict[str, Any]:
    """A ``message`` item → a Gemini ``Content`` turn (or ``{"realtime_text": …}`` when typed text
    goes as ``realtimeInput.text``). ``stored``, the item as the conversation keeps it, loses its
    audio bytes (OpenAI's items never carry them back)."""
    role = item.get("role")
    content = item.get("content")
    if role == "system":
        raise ClientError("unsupported_item", "Gemini Live takes system text only as the session's "
                          "instructions: use session.update instructions", "item.role")
    if role not in ("user", "assistant"):
        raise ClientError("invalid_value", "message role must be user, system or assistant", "item.role")
    if not isinstance(content, list) or not content or not all(isinstance(p, dict) for p in content):
        raise ClientError("invalid_value", "message content must be a non-empty array of parts", "item.content")
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        ptype = part.get("type")
        where = f"item.content[{i}]"
        if role == "assistant":
            if ptype not in ("output_text", "text") or not isinstance(part.get("text"), str):
                raise ClientError("invalid_value", "assistant messages can hold only text parts", where)
            parts.append({"text": part["text"]})
        elif ptype in ("input_text", "text"):
            if not isinstance(part.get("text"), str):
                raise ClientError("invalid_type", "text must be a string", f"{where}.text")
            parts.append({"text": part["text"]})
        elif ptype == "input_audio":
            parts.append({"inlineData": {"mimeType": GEMINI_INPUT_MIME,
                                         "data": _audio_part(part, where, input_format)}})
            stored["content"][i] = {"type": "input_audio", "transcript": part.get("transcript")}
        elif ptype == "input_image":
            parts.append({"inlineData": image_blob(part.get("image_url"), where)})
        else:
            raise ClientError("invalid_value", f"unsupported content part type {str(ptype)[:40]!r}", f"{where}.type")
    if realtime_text:
        if role != "user" or any("text" not in p for p in parts):
            raise ClientError("unsupported_item", "this Gemini model takes typed input only as user text "
                              "(realtimeInput.text)", "item")
        return {"realtime_text": "".join(p["text"] for p in parts)}
    return {"role": "user" if role == "user" else "model", "parts": parts}


def _audio_part(part: dict[str, Any], where: str, input_format: AudioFormat) -> str:
    audio = part.get("audio")
    if not isinstance(audio, str):
        raise ClientError("invalid_type", "audio must be a base64 string", f"{where}.audio")
    try:
        data = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError("invalid_value", "audio is not valid base64", f"{where}.audio") from None
    return base64.b64encode(convert_once(input_format, data)).decode()


def image_blob(url: Any, where: str) -> dict[str, str]:
    """A base64 data URL → ``{mimeType, data}``."""
    if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
        head, _, data = url.partition(",")
        mime = head[5:].split(";", 1)[0]
        if mime.startswith("image/"):
            return {"mimeType": mime, "data": data}
    raise ClientError("unsupported_image", "Gemini Live takes images inline: image_url must be a base64 "
                      "data URL (data:image/…;base64,…)", f"{where}.image_url")


def function_response(output: str) -> dict[str, Any]:
    """A function_call_output's output → a Gemini function response object."""
    try:
        parsed: Any = json.loads(output)
    except ValueError:
        parsed = output
    return parsed if isinstance(parsed, dict) else {"output": parsed}


def response_metadata(params: Any, session: dict[str, Any], dialect: Dialect) -> dict[str, str] | None:
    """A response.create's ``response`` object, checked against the effective ``session`` object:
    its metadata (to echo), or ClientError for what Gemini cannot do per response."""
    if params is None:
        return None
    if not isinstance(params, dict):
        raise ClientError("invalid_type", "response must be an object", "response")
    if params.get("conversation", "auto") != "auto":
        raise ClientError("unsupported_parameter", "Gemini Live has one conversation: out-of-band responses "
                          "(conversation: 'none') cannot be made", "response.conversation")
    if params.get("input") is not None:
        raise ClientError("unsupported_parameter", "Gemini Live answers from its own conversation: response "
                          "input cannot be given", "response.input")
    for key in RESPONSE_FIELDS[dialect]:
        value = params.get(key)
        if value is None or _same_as_session(key, value, session):
            continue
        raise ClientError("unsupported_parameter", f"Gemini Live fixes {key} for the whole session: a response "
                          "cannot change it (use session.update)", f"response.{key}")
    metadata = params.get("metadata")
    if metadata is not None and not (isinstance(metadata, dict) and len(metadata) <= 16 and all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
            for k, v in metadata.items())):
        raise ClientError("invalid_value", "metadata must be at most 16 string pairs (keys ≤ 64, values ≤ 512 "
                          "characters)", "response.metadata")
    return dict(metadata) if metadata else None


def _same_as_session(key: str, value: Any, session: dict[str, Any]) -> bool:
    if key == "audio":  # GA: only the output format and voice can be asked for
        wanted = value.get("output") if isinstance(value, dict) else None
        have = session["audio"]["output"]
        return isinstance(wanted, dict) and all(have.get(k) == v for k, v in wanted.items()
                                                if k in ("format", "voice") and v is not None)
    if key == "tools":
        def shape(tools: Any) -> Any:
            return [{k: t.get(k) for k in ("name", "description", "parameters")} if isinstance(t, dict) else t
                    for t in tools] if isinstance(tools, list) else tools
        return bool(shape(value) == shape(session["tools"]))
    if key == "modalities":  # beta: ["text"] or ["text", "audio"] (any order)
        return isinstance(value, list) and ("audio" in value) == ("audio" in session["modalities"])
    return bool(value == session.get(key))
