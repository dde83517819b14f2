"""A fast fake realtime upstream for the benchmarks (asyncio + websockets + uvloop).

Speaks just enough of the protocol, cheaply, so the proxy is what gets measured:
- on connect: ``session.created``;
- ``input_audio_buffer.clear`` → ``input_audio_buffer.cleared`` with the same ``event_id`` (S1: a
  small event of a known type, which the proxy only forwards);
- ``input_audio_buffer.append`` → one ``response.output_audio.delta`` with the same audio and
  ``event_id`` (S2, S3: the reply is as large as the request);
- ``response.create`` → ``response.created`` + ``response.done`` with usage, so the proxy's
  collector writes real spend records during the run;
- a ``response.create`` whose ``event_id`` starts with ``s6_stream`` (S6) → ``response.created``,
  then a steady stream of ``response.output_audio.delta`` (40 ms of 24 kHz PCM16 each, one every
  ``response.metadata.s6_period_ms``, ``response.metadata.s6_deltas`` of them), then the same
  ``response.done`` with usage. Each delta's ``event_id`` is ``s6_`` and the sender's
  ``time.monotonic_ns()`` (CLOCK_MONOTONIC, one clock for every process on the machine) in 20
  digits, taken just before it is written, so the client reads the one-way latency off each
  delta without parsing it. The pace is kept against the stream's start (no drift); a delta late
  for its slot goes at once.

GPT-Live (``/v1/live/sessions``): ``session.start`` → ``session.started``; each
``session.input_audio.append`` → one ``session.output_audio.delta`` of the same audio, carrying
the append's ``event_id`` (so the load generator can time it); every 200 appends a cumulative
``session.usage.updated``, so the proxy writes usage records; ``session.close`` →
``session.closed``.

The event_id sits at a fixed place right after the type, so no JSON is parsed here.

    python bench/fake_upstream.py PORT
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time


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


#: S6: what marks a response.create as a stream request, and the stream's defaults and bounds.
S6_MARK = '"s6_stream'
S6_PERIOD_MS = 20
S6_DELTAS = 750
S6_MAX_DELTAS = 100_000
#: 40 ms of PCM16 mono at 24 kHz, base64 (loadgen.AUDIO_40MS): each S6 delta's audio.
S6_AUDIO = base64.b64encode(bytes(range(256)) * 7 + bytes(128)).decode()


def s6_params(msg: str) -> tuple[int, float]:
    """How many deltas an S6 stream request asks for, and how often (seconds)."""
    meta = (json.loads(msg).get("response") or {}).get("metadata") or {}
    count = min(max(int(meta.get("s6_deltas", S6_DELTAS)), 1), S6_MAX_DELTAS)
    return count, max(float(meta.get("s6_period_ms", S6_PERIOD_MS)), 1.0) / 1000


async def s6_stream(ws, count: int, period_s: float) -> None:  # type: ignore[no-untyped-def]
    created, done = response_pair()
    rid = json.loads(created)["response"]["id"]
    mid = '","response_id":"' + rid + '","item_id":"item_s6","output_index":0,"content_index":0,"delta":"'
    tail = mid + S6_AUDIO + '"}'
    await ws.send(created)
    start = time.monotonic()
    for i in range(count):
        # against the start, not after the last send: a slow send does not push every later slot
        delay = start + i * period_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.send(DELTA_HEAD + "s6_%020d" % time.monotonic_ns() + tail)
    await ws.send(done)


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
                if S6_MARK in msg:  # inline: S6's client sends nothing more until response.done
                    await s6_stream(ws, *s6_params(msg))
                    continue
                for event in response_pair():
                    await ws.send(event)
    except Exception:
        pass


if __name__ == "__main__":
    from serve_fake import run

    run(handler, "fake upstream")
