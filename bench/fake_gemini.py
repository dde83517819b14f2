"""A fast fake Gemini Live upstream for the benchmarks (asyncio + websockets + uvloop), the
``BidiGenerateContent`` twin of bench/fake_upstream.py: it answers the voice scenario's pattern
promptly and cheaply, so the proxy (and its translation) is what gets measured.

- ``setup`` → ``setupComplete`` (any path: AI Studio's and Vertex's look alike here);
- each ``realtimeInput.audio`` → one ``serverContent.modelTurn`` with one ``inlineData`` part of
  40 ms of PCM16 at 24 kHz (1,920 bytes, as large as the client's OpenAI append, so a translated
  session moves the bytes a pass-through session moves). The first 12 base64 characters of its
  ``data`` are this connection's count of audio frames (``"%09d"``, ASCII, base64-encoded), so the
  load generator can time each append to its answer through the translation, where no event id
  survives (bench/loadgen.py ``gemini_key``);
- every :data:`TURN_EVERY` audio frames (5 s of 40 ms frames, as often as the pass-through
  scenario's ``response.create``), ``serverContent.turnComplete`` with ``usageMetadata``, so the
  proxy closes a response and writes a spend record;
- anything else (``clientContent``, ``audioStreamEnd``, ``activityStart``…): ignored.

Frames are recognised by their first characters (rtproxy writes compact JSON with the field
first); nothing is parsed. Frames go out as text, which Gemini clients accept like binary.

    python bench/fake_gemini.py PORT
"""

from __future__ import annotations

import base64
import json


SETUP_COMPLETE = '{"setupComplete":{}}'
AUDIO_IN = '{"realtimeInput":{"audio"'
AUDIO_IN_SNAKE = '{"realtime_input":{"audio"'
SETUP = '{"setup"'
#: The reply's audio: 40 ms of PCM16 at 24 kHz; its first 9 bytes are replaced by the frame count.
AUDIO_24K_40MS = bytes(range(256)) * 7 + bytes(128)
assert len(AUDIO_24K_40MS) == 1920
_TAIL = base64.b64encode(AUDIO_24K_40MS[9:]).decode()
REPLY_HEAD = '{"serverContent":{"modelTurn":{"role":"model","parts":[{"inlineData":{"mimeType":"audio/pcm;rate=24000","data":"'
REPLY_TAIL = _TAIL + '"}}]}}}'
TURN_EVERY = 125
TURN_COMPLETE = json.dumps({"serverContent": {"turnComplete": True}, "usageMetadata": {
    "promptTokenCount": 180, "responseTokenCount": 125, "totalTokenCount": 305,
    "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 160}, {"modality": "TEXT", "tokenCount": 20}],
    "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 125}]}}, separators=(",", ":"))


def seq_key(n: int) -> str:
    """The 12 base64 characters that carry frame count ``n`` (9 ASCII digits: no padding)."""
    return base64.b64encode(b"%09d" % n).decode()


async def handler(ws) -> None:  # type: ignore[no-untyped-def]
    frames = 0
    try:
        async for msg in ws:
            if isinstance(msg, bytes):
                msg = msg.decode("utf-8", "replace")
            if msg.startswith(AUDIO_IN) or msg.startswith(AUDIO_IN_SNAKE):
                await ws.send(REPLY_HEAD + seq_key(frames) + REPLY_TAIL)
                frames += 1
                if frames % TURN_EVERY == 0:
                    await ws.send(TURN_COMPLETE)
            elif msg.startswith(SETUP):
                await ws.send(SETUP_COMPLETE)
    except Exception:
        pass


if __name__ == "__main__":
    from serve_fake import run

    run(handler, "fake Gemini Live upstream")
