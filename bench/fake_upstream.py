"""A fast fake realtime upstream for the benchmarks (asyncio + websockets + uvloop).

Speaks just enough of the protocol, cheaply, so the proxy is what gets measured:
- on connect: ``session.created``;
- ``input_audio_buffer.clear`` → ``input_audio_buffer.cleared`` with the same ``event_id`` (S1: a
  small event of a known type, which the proxy only forwards);
- ``input_audio_buffer.append`` → one ``response.output_audio.delta`` with the same audio and
  ``event_id`` (S2, S3: the reply is as large as the request);
- ``response.create`` → ``response.created`` + ``response.done`` with usage, so the proxy's
  collector writes real spend records during the run.

GPT-Live (``/v1/live/sessions``): ``session.start`` → ``session.started``; each
``session.input_audio.append`` → one ``session.output_audio.delta`` of the same audio, carrying
the append's ``event_id`` (so the load generator can time it); every 200 appends a cumulative
``session.usage.updated``, so the proxy writes usage records; ``session.close`` →
``session.closed``.

The event_id sits at a fixed place right after the type, so no JSON is parsed here.

    python bench/fake_upstream.py PORT
"""

from __future__ import annotations

import itertools
import json


SESSION_CREATED = json.dumps({"type": "session.created", "event_id": "event_0",
                              "session": {"id": "sess_bench", "type": "realtime", "object": "realtime.session",
                                          "model": "gpt-realtime", "instructions": "bench", "tools": []}})
APPEND = '{"type":"input_audio_buffer.append","event_id":"'
PING = '{"type":"input_audio_buffer.clear","event_id":"'
DELTA_HEAD = '{"type":"response.output_audio.delta","event_id":"'
DELTA_MID = '","response_id":"resp_b","item_id":"item_b","output_index":0,"content_index":0,"delta":"'
USAGE = {"total_tokens": 120, "input_tokens": 100, "output_tokens": 20,
         "input_token_details": {"text_tokens": 20, "audio_tokens": 80, "cached_tokens": 64,
                                 "cached_tokens_details": {"text_tokens": 16, "audio_tokens": 48}},
         "output_token_details": {"text_tokens": 5, "audio_tokens": 15}}
_ids = itertools.count()


def response_pair() -> tuple[str, str]:
    rid = f"resp_{next(_ids)}"
    created = json.dumps({"type": "response.created", "event_id": f"e{rid}", "response": {"id": rid, "status": "in_progress"}})
    done = json.dumps({"type": "response.done", "event_id": f"d{rid}", "response": {
        "id": rid, "status": "completed", "usage": USAGE,
        "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_audio", "transcript": "ok"}]}]}})
    return created, done


LIVE_APPEND = '{"type":"session.input_audio.append","event_id":"'
LIVE_DELTA_HEAD = '{"type":"session.output_audio.delta","event_id":"'
LIVE_STARTED = json.dumps({"type": "session.started", "event_id": "event_0", "session": {
    "id": "live_bench", "expires_at": 2000000000, "model": "gpt-live-1", "status": "active"}})
#: 50 ms of PCM16 at 24 kHz per append: this many appends make one billed second.
LIVE_APPENDS_PER_S = 20


async def live_handler(ws) -> None:  # type: ignore[no-untyped-def]
    appends = 0
    try:
        async for msg in ws:
            if msg.startswith(LIVE_APPEND):
                end = msg.index('"', len(LIVE_APPEND))
                audio_at = msg.index('"audio":"', end) + 9
                await ws.send(LIVE_DELTA_HEAD + msg[len(LIVE_APPEND):end] + '","delta":"' + msg[audio_at:])
                appends += 1
                if appends % 200 == 0:
                    await ws.send(json.dumps({"type": "session.usage.updated", "event_id": f"u{appends}",
                                              "usage": {"seconds": appends // LIVE_APPENDS_PER_S}}))
            elif '"session.start"' in msg[:40]:
                await ws.send(LIVE_STARTED)
            elif '"session.close"' in msg[:40]:
                await ws.send(json.dumps({"type": "session.closed", "event_id": "c", "reason": "close_requested",
                                          "session": json.loads(LIVE_STARTED)["session"],
                                          "usage": {"seconds": appends // LIVE_APPENDS_PER_S}}))
                return
    except Exception:
        pass


async def handler(ws) -> None:  # type: ignore[no-untyped-def]
    if ws.request.path.startswith("/v1/live/"):
        return await live_handler(ws)
    await ws.send(SESSION_CREATED)
    try:
        async for msg in ws:
            if isinstance(msg, bytes):
                await ws.send(msg)
            elif msg.startswith(APPEND):
                end = msg.index('"', len(APPEND))
                event_id = msg[len(APPEND):end]
                audio_at = msg.index('"audio":"', end) + 9
                await ws.send(DELTA_HEAD + event_id + DELTA_MID + msg[audio_at:])
            elif msg.startswith(PING):
                await ws.send('{"type":"input_audio_buffer.cleared"' + msg[len('{"type":"input_audio_buffer.clear"'):])
            elif '"response.create"' in msg[:40]:
                for event in response_pair():
                    await ws.send(event)
    except Exception:
        pass


if __name__ == "__main__":
    from serve_fake import run

    run(handler, "fake upstream")
