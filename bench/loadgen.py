"""Load generator for the benchmarks (asyncio + websockets + uvloop). One scenario per run:

    python bench/loadgen.py s1|s2|s3|s4|s5|s6|l2|l3|g3|gd3|o3 URL [--key K] [--sessions N] [--seconds S] [--rss-pid PID]

(s6: streamed deltas, one-way latency: the fake upstream streams audio deltas stamped with its
clock, the client times each on arrival; see :func:`s6`.)

(l2, l3: GPT-Live: pipelined 50 ms appends, and N sessions of 50 ms appends at real-time pace.
g3: S3's OpenAI Realtime voice client on a model rtproxy translates to Gemini Live, against
bench/fake_gemini.py: each append is timed to the audio delta that answers it, found by the frame
count the fake writes into the audio (no event id survives a translation). gd3: the same pattern
spoken natively to bench/fake_gemini.py (16 kHz ``realtimeInput`` audio, no proxy): the fake's own
round trip. o3: S3's client on an offline model (provider "local"), which answers no append: no
round trip, only the events sent and the audio deltas heard.)

prints one JSON object with the scenario's figures. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from websockets.asyncio.client import connect

#: 40 ms of PCM16 mono at 24 kHz, base64: the size of a typical realtime audio event.
AUDIO_40MS = base64.b64encode(bytes(range(256)) * 7 + bytes(128)).decode()
assert len(base64.b64decode(AUDIO_40MS)) == 1920
LATE_MS = 100.0
#: Where the event_id sits in the fake upstream's audio delta (fixed layout, so nothing is parsed).
_DELTA_ID = slice(len('{"type":"response.output_audio.delta","event_id":"'),
                  len('{"type":"response.output_audio.delta","event_id":"') + 11)
#: In S2 and S3 a response.create is sent every so often, so the proxy writes spend records.
S2_RESPONSE_EVERY = 500
S3_RESPONSE_EVERY_S = 5.0


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3)


def append(event_id: str) -> str:
    return '{"type":"input_audio_buffer.append","event_id":"' + event_id + '","audio":"' + AUDIO_40MS + '"}'


async def open_ws(url: str, key: str | None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    ws = await connect(url, additional_headers=headers, max_size=None, compression=None, ping_interval=None,
                       open_timeout=30, close_timeout=5)
    first = await ws.recv()
    assert '"session.created"' in first, first[:200]
    return ws


async def s1(url: str, key: str | None, events: int = 3000) -> dict[str, Any]:
    """Sequential round trips of small events."""
    ws = await open_ws(url, key)
    rtts = []
    for i in range(events):
        t0 = time.perf_counter()
        await ws.send('{"type":"input_audio_buffer.clear","event_id":"p%08d"}' % i)
        while True:
            msg = await ws.recv()
            if msg.startswith('{"type":"input_audio_buffer.cleared"'):
                break
        rtts.append((time.perf_counter() - t0) * 1000)
    await ws.close()
    return {"events": events, "p50_ms": pct(rtts, 50), "p90_ms": pct(rtts, 90), "p99_ms": pct(rtts, 99)}


class Wire(NamedTuple):
    """What a scenario says and hears, per API: the audio frame it sends, the reply that answers it
    (and where the echoed id sits in it), how a session opens and closes."""

    open: Callable[[str, str | None], Awaitable[Any]]
    frame: Callable[[str], str]
    reply: str
    #: Where the answer's key sits in the reply (a slice), or how to find it.
    reply_id: slice | Callable[[str], str]
    period_s: float
    #: Sent every so often, so the proxy writes spend records (None: the upstream bills by itself).
    response_create: str | None
    #: The key an answer carries: the frame's event id, or (True) the upstream's count of audio
    #: frames on the connection (``fake_gemini.seq_key``), where no event id survives.
    counted: bool = False
    #: False: nothing answers an append one for one (the offline model): count replies, time nothing.
    timed: bool = True


def reply_key(wire: Wire, msg: str) -> str:
    where = wire.reply_id
    return msg[where] if isinstance(where, slice) else where(msg)


def realtime_wire() -> Wire:
    return Wire(open_ws, append, '{"type":"response.output_audio.delta"', _DELTA_ID, 0.040, '{"type":"response.create"}')


async def s2(url: str, key: str | None, events: int = 20000, in_flight: int = 64,
             max_seconds: float = 30.0, wire: Wire | None = None) -> dict[str, Any]:
    """Pipelined audio-sized events, ``in_flight`` outstanding."""
    wire = wire or realtime_wire()
    ws = await wire.open(url, key)
    sent = received = 0
    size = len(wire.frame("b%010d" % 0))
    sent_at: dict[str, float] = {}
    rtts: list[float] = []
    done = asyncio.Event()
    credit = asyncio.Semaphore(in_flight)

    async def reader() -> None:
        nonlocal received
        async for msg in ws:
            if msg.startswith(wire.reply):
                eid = reply_key(wire, msg)
                rtts.append((time.perf_counter() - sent_at.pop(eid, time.perf_counter())) * 1000)
                received += 1
                credit.release()
                if received >= events:
                    done.set()
                    return

    t0 = time.perf_counter()
    task = asyncio.create_task(reader())
    deadline = t0 + max_seconds
    while sent < events and time.perf_counter() < deadline:
        await credit.acquire()
        eid = "b%010d" % sent
        sent_at[eid] = time.perf_counter()
        await ws.send(wire.frame(eid))
        sent += 1
        if wire.response_create and sent % S2_RESPONSE_EVERY == 0:
            await ws.send(wire.response_create)
    try:
        await asyncio.wait_for(done.wait(), timeout=max(1.0, deadline - time.perf_counter() + 5))
    except asyncio.TimeoutError:
        pass
    elapsed = time.perf_counter() - t0
    task.cancel()
    await wire_close(wire, ws)
    return {"events": received, "seconds": round(elapsed, 3), "events_per_s": round(received / elapsed, 1),
            "mb_per_s": round(2 * received * size / elapsed / 1e6, 2), "p99_ms": pct(rtts, 99)}


async def s3(url: str, key: str | None, sessions: int, seconds: float = 15.0, ramp_s: float = 5.0,
             wire: Wire | None = None) -> dict[str, Any]:
    """``sessions`` voice sessions at real-time rate: one audio append per period each way."""
    wire = wire or realtime_wire()
    rtts: list[float] = []
    late = lost = errors = sent_total = replies = 0
    start_measure = asyncio.Event()

    async def session(idx: int) -> None:
        nonlocal lost, errors, sent_total
        try:
            ws = await wire.open(url, key)
        except Exception:
            errors += 1
            return
        sent_at: dict[str, float] = {}

        async def reader() -> None:
            nonlocal late, replies
            async for msg in ws:
                if msg.startswith(wire.reply):
                    replies += 1
                    if not wire.timed:
                        continue
                    t = sent_at.pop(reply_key(wire, msg), None)
                    if t is not None:
                        rtt = (time.perf_counter() - t) * 1000
                        rtts.append(rtt)
                        if rtt > LATE_MS:
                            late += 1

        task = asyncio.create_task(reader())
        await start_measure.wait()
        await asyncio.sleep(wire.period_s * idx / sessions)  # spread the sessions over one period
        t0 = time.perf_counter()
        seq = 0
        next_response = t0 + S3_RESPONSE_EVERY_S
        try:
            while True:
                now = time.perf_counter()
                if now - t0 >= seconds:
                    break
                eid = "%04d%07d" % (idx, seq)
                if wire.timed:
                    sent_at[gemini_key(seq) if wire.counted else eid] = time.perf_counter()
                await ws.send(wire.frame(eid))
                sent_total += 1
                seq += 1
                if wire.response_create and now >= next_response:
                    next_response += S3_RESPONSE_EVERY_S
                    await ws.send(wire.response_create)
                await asyncio.sleep(max(0.0, t0 + seq * wire.period_s - time.perf_counter()))
            await asyncio.sleep(0.5)  # let the last replies arrive
        except Exception:
            errors += 1
        lost += len(sent_at)
        task.cancel()
        try:
            await wire_close(wire, ws)
        except Exception:
            pass

    tasks = []
    for i in range(sessions):
        tasks.append(asyncio.create_task(session(i)))
        await asyncio.sleep(ramp_s / sessions)
    await asyncio.sleep(0.5)
    start_measure.set()
    await asyncio.gather(*tasks)
    total = len(rtts) + lost
    if not wire.timed:
        return {"sessions": sessions, "seconds": seconds, "events": sent_total, "replies": replies, "errors": errors}
    return {"sessions": sessions, "seconds": seconds, "events": sent_total, "p50_ms": pct(rtts, 50),
            "p99_ms": pct(rtts, 99), "late_fraction": round((late + lost) / total, 4) if total else None,
            "lost": lost, "errors": errors, "replies": replies}


def rss_kib(pid: int) -> int:
    total = 0
    for p in [pid, *children(pid)]:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid: int) -> list[int]:
    try:
        kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except FileNotFoundError:
        return []
    out = [int(k) for k in kids]
    for k in list(out):
        out.extend(children(k))
    return out


async def s4(url: str, key: str | None, sessions: int, rss_pid: int) -> dict[str, Any]:
    """RSS at rest, with ``sessions`` idle sessions open, and after they close."""
    await asyncio.sleep(1.0)
    rest = rss_kib(rss_pid)
    conns = []
    for _ in range(sessions):
        conns.append(await open_ws(url, key))
    await asyncio.sleep(1.0)
    loaded = rss_kib(rss_pid)
    await asyncio.gather(*(c.close() for c in conns))
    await asyncio.sleep(1.5)
    after = rss_kib(rss_pid)
    return {"sessions": sessions, "rss_rest_mib": round(rest / 1024, 1), "rss_loaded_mib": round(loaded / 1024, 1),
            "kib_per_session": round((loaded - rest) / sessions, 1), "rss_kept_after_close_mib": round((after - rest) / 1024, 1)}


async def s5(url: str, key: str | None, connects: int = 200) -> dict[str, Any]:
    """Time from opening the socket to session.created."""
    times = []
    for _ in range(connects):
        t0 = time.perf_counter()
        ws = await open_ws(url, key)
        times.append((time.perf_counter() - t0) * 1000)
        await ws.close()
    return {"connects": connects, "p50_ms": pct(times, 50), "p99_ms": pct(times, 99),
            "mean_ms": round(statistics.fmean(times), 3)}


#: S6: one 40 ms audio delta every 20 ms (twice real time: a model streams its answer faster
#: than it is played), and one session unless told.
S6_PERIOD_MS = 20
S6_SESSIONS = 1
#: S6: how long after its last delta is due a stream may still finish (its response.done).
S6_GRACE_S = 5.0
#: Where the sender's CLOCK_MONOTONIC (ns, 20 digits) sits in an S6 delta: the fake upstream's
#: event_id ``s6_<ns>``, read by slicing (no JSON parse on the client's clock).
_S6_HEAD = '{"type":"response.output_audio.delta","event_id":"s6_'
_S6_SENT = slice(len(_S6_HEAD), len(_S6_HEAD) + 20)


def s6_request(deltas: int) -> str:
    """The response.create that asks bench/fake_upstream.py for an S6 stream (its event_id marks it)."""
    return json.dumps({"type": "response.create", "event_id": "s6_stream", "response": {
        "metadata": {"s6_deltas": str(deltas), "s6_period_ms": str(S6_PERIOD_MS)}}}, separators=(",", ":"))


async def s6(url: str, key: str | None, sessions: int = S6_SESSIONS, seconds: float = 15.0,
             deltas: int = 0) -> dict[str, Any]:
    """Streamed deltas, one-way latency. Each of ``sessions`` sessions sends one response.create
    that bench/fake_upstream.py answers with response.created, a steady stream of
    response.output_audio.delta (40 ms of audio every S6_PERIOD_MS, for ``seconds``, or ``deltas``
    of them) and response.done with usage (so a gateway bills it). Each delta carries the fake's
    CLOCK_MONOTONIC as it was written, and the client reads its own on arrival: the difference is
    the one-way latency upstream → (gateway →) client, the path a model's answer takes, with
    nothing flowing the other way. One session (the default) measures the per-event delay alone,
    including each process's wake-up from idle between deltas (what a lone conversation sees);
    more sessions (``sessions``, their streams spread over one period) keep the processes busy
    and add load. On the 2-core bench box, 15 s of one session (750 deltas) gave a direct p50
    within ±10 % run to run, and a p99 (the 8th worst delta) that varied up to 2.5×; ten sessions
    were no steadier, so one is the default. Figures over every delta: p50, p99, max; ``lost``:
    asked for and not heard by response.done or the deadline."""
    count = deltas or max(1, round(seconds * 1000 / S6_PERIOD_MS))
    latencies: list[float] = []
    heard = lost = errors = done = 0
    start = asyncio.Event()

    async def session(idx: int) -> None:
        nonlocal heard, lost, errors, done
        got = 0
        try:
            ws = await open_ws(url, key)
        except Exception:
            errors += 1
            lost += count
            return
        try:
            await start.wait()
            await asyncio.sleep(S6_PERIOD_MS / 1000 * idx / sessions)  # spread the streams over one period
            await ws.send(s6_request(count))
            async with asyncio.timeout(count * S6_PERIOD_MS / 1000 + S6_GRACE_S):
                async for msg in ws:
                    now = time.monotonic_ns()
                    if msg.startswith(_S6_HEAD):
                        latencies.append((now - int(msg[_S6_SENT])) / 1e6)
                        got += 1
                    elif '"response.done"' in msg[:40]:
                        done += 1
                        break
        except Exception:
            errors += 1
        heard += got
        lost += count - got
        try:
            await ws.close()
        except Exception:
            pass

    tasks = [asyncio.create_task(session(i)) for i in range(sessions)]
    await asyncio.sleep(0.5)  # every session open (or failed) before the streams start
    start.set()
    await asyncio.gather(*tasks)
    return {"sessions": sessions, "deltas_per_session": count, "period_ms": S6_PERIOD_MS, "events": heard,
            "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99),
            "max_ms": round(max(latencies), 3) if latencies else None, "lost": lost, "done": done,
            "errors": errors}


#: 50 ms of PCM16 mono at 24 kHz, base64 (3,200 characters): GPT-Live's usual append.
AUDIO_50MS = base64.b64encode(bytes(range(256)) * 9 + bytes(96)).decode()
assert len(base64.b64decode(AUDIO_50MS)) == 2400
_LIVE_DELTA_ID = slice(len('{"type":"session.output_audio.delta","event_id":"'),
                       len('{"type":"session.output_audio.delta","event_id":"') + 11)


def live_append(event_id: str) -> str:
    return '{"type":"session.input_audio.append","event_id":"' + event_id + '","audio":"' + AUDIO_50MS + '"}'


async def open_live(url: str, key: str | None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    ws = await connect(url, additional_headers=headers, max_size=None, compression=None, ping_interval=None,
                       open_timeout=30, close_timeout=5)
    await ws.send(json.dumps({"type": "session.start", "session": {"model": "gpt-live-1"}}))
    first = await ws.recv()
    assert '"session.started"' in first, first[:200]
    return ws


async def close_live(ws) -> None:  # type: ignore[no-untyped-def]
    """GPT-Live ends with session.close (the upstream answers with the final seconds)."""
    try:
        await ws.send('{"type":"session.close"}')
        async for _ in ws:
            pass
    except Exception:
        pass


def live_wire() -> Wire:
    return Wire(open_live, live_append, '{"type":"session.output_audio.delta"', _LIVE_DELTA_ID, 0.050, None)


async def wire_close(wire: Wire, ws: Any) -> None:
    await (close_live(ws) if wire.open is open_live else ws.close())


# -- Gemini Live: translated (an OpenAI client, a Gemini upstream), native, offline ---------------

#: The session.update a translated client opens with (what OpenAI's SDK examples send): rtproxy
#: sets the Gemini session up then, before the first append.
SESSION_UPDATE = json.dumps({"type": "session.update", "session": {
    "type": "realtime", "output_modalities": ["audio"],
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
              "output": {"format": {"type": "audio/pcm", "rate": 24000}}}}})


def gemini_key(n: int) -> str:
    """The first 12 base64 characters of the audio that answers frame ``n`` (bench/fake_gemini.py)."""
    return base64.b64encode(b"%09d" % n).decode()


async def open_updated(url: str, key: str | None):  # type: ignore[no-untyped-def]
    """An OpenAI Realtime session, set up with a session.update (answered once the upstream is)."""
    ws = await open_ws(url, key)
    await ws.send(SESSION_UPDATE)
    while True:
        msg = await ws.recv()
        if '"session.updated"' in msg[:40]:
            return ws
        assert '"error"' not in msg[:40], msg[:300]


def _delta_key(msg: str) -> str:
    at = msg.find('"delta":"', 100) + 9
    return msg[at:at + 12]


def translated_wire() -> Wire:
    return Wire(open_updated, append, '{"type":"response.output_audio.delta"', _delta_key, 0.040, None, counted=True)


def offline_wire() -> Wire:
    return Wire(open_updated, append, '{"type":"response.output_audio.delta"', _DELTA_ID, 0.040, None, timed=False)


#: 40 ms of PCM16 at 16 kHz, base64: what a native Gemini client sends (rtproxy's translation of AUDIO_40MS).
AUDIO_16K_40MS = base64.b64encode((bytes(range(256)) * 5)).decode()
assert len(base64.b64decode(AUDIO_16K_40MS)) == 1280
_GEMINI_REPLY = '{"serverContent":{"modelTurn":{"role":"model","parts":[{"inlineData":{"mimeType":"audio/pcm;rate=24000","data":"'
_GEMINI_KEY = slice(len(_GEMINI_REPLY), len(_GEMINI_REPLY) + 12)
GEMINI_SETUP = json.dumps({"setup": {"model": "models/gemini-live-2.5-flash",
                                     "generationConfig": {"responseModalities": ["AUDIO"]}}}, separators=(",", ":"))


def gemini_audio(event_id: str) -> str:
    return '{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"' + AUDIO_16K_40MS + '"}}}'


async def open_gemini(url: str, key: str | None):  # type: ignore[no-untyped-def]
    headers = {"x-goog-api-key": key} if key else {}
    ws = await connect(url, additional_headers=headers, max_size=None, compression=None, ping_interval=None,
                       open_timeout=30, close_timeout=5)
    await ws.send(GEMINI_SETUP)
    first = await ws.recv()
    first = first.decode() if isinstance(first, bytes) else first
    assert '"setupComplete"' in first, first[:200]
    return ws


def gemini_wire() -> Wire:
    return Wire(open_gemini, gemini_audio, _GEMINI_REPLY, _GEMINI_KEY, 0.040, None, counted=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["s1", "s2", "s3", "s4", "s5", "s6", "l2", "l3", "g3", "gd3", "o3"])
    ap.add_argument("url")
    ap.add_argument("--key")
    ap.add_argument("--sessions", type=int, default=None, help=f"default 200 (s6: {S6_SESSIONS})")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--events", type=int, default=0)
    ap.add_argument("--rss-pid", type=int, default=0)
    ap.add_argument("--ramp-seconds", type=float, default=5.0, help="s3, l3, g3, gd3, o3: how long sessions take to open")
    a = ap.parse_args()
    if a.scenario == "s6":
        a.sessions = S6_SESSIONS if a.sessions is None else a.sessions
    elif a.sessions is None:
        a.sessions = 200
    if a.scenario == "s1":
        coro = s1(a.url, a.key, a.events or 3000)
    elif a.scenario == "s2":
        coro = s2(a.url, a.key, a.events or 20000)
    elif a.scenario == "s3":
        coro = s3(a.url, a.key, a.sessions, a.seconds, a.ramp_seconds)
    elif a.scenario == "l2":
        coro = s2(a.url, a.key, a.events or 20000, wire=live_wire())
    elif a.scenario == "l3":
        coro = s3(a.url, a.key, a.sessions, a.seconds, a.ramp_seconds, wire=live_wire())
    elif a.scenario == "g3":
        coro = s3(a.url, a.key, a.sessions, a.seconds, a.ramp_seconds, wire=translated_wire())
    elif a.scenario == "gd3":
        coro = s3(a.url, a.key, a.sessions, a.seconds, a.ramp_seconds, wire=gemini_wire())
    elif a.scenario == "o3":
        coro = s3(a.url, a.key, a.sessions, a.seconds, a.ramp_seconds, wire=offline_wire())
    elif a.scenario == "s4":
        coro = s4(a.url, a.key, a.sessions, a.rss_pid)
    elif a.scenario == "s6":
        coro = s6(a.url, a.key, a.sessions, a.seconds, a.events)
    else:
        coro = s5(a.url, a.key, a.events or 200)
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
