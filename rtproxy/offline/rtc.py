"""The offline model over WebRTC: a peer of its own (aiortc), in a process of its own.

It answers what OpenAI answers for a WebRTC call:

- ``POST /v1/realtime/calls`` (a raw ``application/sdp`` offer with ``?model=``, or multipart
  ``sdp`` + ``session``): 201, the SDP answer, ``Location: /v1/realtime/calls/{call_id}``;
- ``POST /v1/realtime/calls/{call_id}/hangup`` ends the call (``accept``/``reject``/``refer``
  are SIP's: refused with 400, as for any WebRTC call);
- ``GET /v1/realtime?call_id=…`` (WebSocket): the call's sideband — every server event of the
  call but its audio, and client events from the sideband are the call's too.

Media: Opus both ways (aiortc encodes and decodes); the microphone track feeds the model's VAD
(:meth:`OfflineModel.feed_audio`), the model's audio plays on the answer's track at real-time
pace, and the ``oai-events`` data channel carries the same JSON events as the WebSocket API, less
the audio deltas (which are the track), plus ``output_audio_buffer.started/stopped/cleared``.

**Why a process.** aiortc is asyncio; the gateway is trio. A thread with its own loop or
trio-asyncio would put Opus coding, SRTP and ICE's packet handling on the gateway's own GIL and
make a codec fault (PyAV is C) the gateway's crash; a subprocess keeps all of it off the relay's
CPU, fails alone, and is reached over loopback HTTP and WebSocket exactly as a provider is — the
gateway's call path is the one OpenAI gets. The gateway starts it on the first call to a local
model (:mod:`rtproxy.offline.rtc_process`) with the loopback secret in its environment.

ICE uses loopback only (the peer is for this machine's tests and demos): aioice skips 127.0.0.1
by default, so its host-address lookup is replaced here.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fractions
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from typing import Any

import aioice.ice
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from quart import Quart, Response, request, websocket

from ..protocols.realtime.calls import OfferError, check_sdp, parse_offer
from .audio import BYTES_PER_MS, SAMPLE_RATE
from .ears import Ears
from .live import OfflineLiveModel
from .model import OfflineModel
from .voice import Voice

log = logging.getLogger("rtproxy.offline.rtc")

#: Calls held at once; beyond, a new offer gets 429.
MAX_CALLS = 32
#: A call whose peer connection is not up this long after the answer is dropped.
CONNECT_TIMEOUT_S = 20.0
#: Events not yet sent on a call's data channel (bytes) at most; beyond, the call ends.
MAX_CHANNEL_BUFFER_BYTES = 4 * 1024 * 1024
#: Utterances a call queues for the recognizer; beyond, one gets its placeholder transcript at once
#: (as on the WebSocket server: :data:`rtproxy.offline.server.MAX_QUEUED_UTTERANCES`).
MAX_QUEUED_UTTERANCES = 8
#: Sidebands per call.
MAX_SIDEBANDS = 4
#: Events queued for one sideband; beyond, it is closed (1008): it does not read.
SIDEBAND_QUEUE_EVENTS = 1024
#: Output audio queued for the track at most (ms); the model streams faster than real time, and a
#: longer reply's tail is dropped beyond this.
MAX_QUEUED_AUDIO_MS = 120_000
#: Audio frame length on the track.
FRAME_MS = 20
#: The data channel's name in OpenAI's WebRTC API.
EVENTS_CHANNEL = "oai-events"
#: How often the peer checks that the gateway that started it is still its parent.
PARENT_CHECK_S = 1.0
_FRAME_BYTES = FRAME_MS * BYTES_PER_MS


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


aioice.ice.get_host_addresses = _loopback_only


def _error(status: int, code: str, message: str) -> Response:
    return Response(json.dumps({"error": {"type": "invalid_request_error", "code": code, "message": message}}),
                    status=status, content_type="application/json")


class ModelAudio(MediaStreamTrack):
    """The model's voice as a 24 kHz mono track, one 20 ms frame per 20 ms (silence when quiet)."""

    kind = "audio"

    def __init__(self, on_drained: Any) -> None:
        super().__init__()
        self._queue = bytearray()
        self._on_drained = on_drained
        self._start: float | None = None
        self._pts = 0

    def queue(self, pcm: bytes) -> bool:
        """Add audio; False when the queue is full (the audio is dropped)."""
        if len(self._queue) + len(pcm) > MAX_QUEUED_AUDIO_MS * BYTES_PER_MS:
            return False
        self._queue += pcm
        return True

    def clear(self) -> int:
        """Drop what was not played; how many ms that was."""
        ms = len(self._queue) // BYTES_PER_MS
        self._queue.clear()
        return ms

    @property
    def playing(self) -> bool:
        return bool(self._queue)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        samples = SAMPLE_RATE * FRAME_MS // 1000
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += samples
            await asyncio.sleep(max(0.0, self._start + self._pts / SAMPLE_RATE - time.monotonic()))
        chunk = bytes(self._queue[:_FRAME_BYTES])
        del self._queue[:_FRAME_BYTES]
        if chunk and not self._queue:
            self._on_drained()
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(chunk.ljust(_FRAME_BYTES, b"\0"))
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


class Call:
    """One WebRTC call: the peer connection, its model, its data channel and sidebands. A Realtime
    call (``OfflineModel``) or a GPT-Live session (``OfflineLiveModel``): they differ in the audio
    delta's name, Realtime's ``output_audio_buffer.*`` events, and GPT-Live's billed-seconds ticks."""

    def __init__(self, peer: Peer, model: OfflineModel | OfflineLiveModel, opening: list[dict[str, Any]]) -> None:
        self.peer = peer
        self.live = isinstance(model, OfflineLiveModel)
        self.id = model.session_id if isinstance(model, OfflineLiveModel) else "rtc_" + secrets.token_hex(12)
        #: What the data channel is told when it opens (session.created; GPT-Live: session.started).
        self.opening = opening
        self.model: Any = model
        self.pc = RTCPeerConnection()
        self.channel: Any = None
        self.sidebands: set[asyncio.Queue[str | None]] = set()
        self.ended = asyncio.Event()
        self.out = ModelAudio(self._drained)
        self._wake = asyncio.Event()
        self._playing_response: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._hearing: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=MAX_QUEUED_UTTERANCES)
        self._ending: asyncio.Task[None] | None = None

    # -- events out ---------------------------------------------------------------------------

    def emit(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            etype = event.get("type")
            if etype == "session.output_audio.delta":  # GPT-Live: the voice, on the track
                self.out.queue(base64.b64decode(event["delta"]))
                continue
            if etype == "response.output_audio.delta":
                rid = event.get("response_id")
                if self._playing_response != rid:
                    self._playing_response = rid if isinstance(rid, str) else None
                    self._send({"type": "output_audio_buffer.started", "event_id": self.model._id("event"),
                                "response_id": rid})
                self.out.queue(base64.b64decode(event["delta"]))
                continue
            if etype == "input_audio_buffer.speech_started" and self.out.playing:
                self._clear_output()  # barge-in: what was not played is not heard
            self._send(event)
        if self.model.responding:
            self._wake.set()
        for unheard in self.model.take_unheard():
            try:
                self._hearing.put_nowait(unheard)
            except asyncio.QueueFull:  # overflow policy: not heard, placeholder transcript
                self.emit(self.model.heard(unheard[0], None))

    def _send(self, event: dict[str, Any]) -> None:
        text = json.dumps(event)
        if self.channel is not None and self.channel.readyState == "open":
            if self.channel.bufferedAmount > MAX_CHANNEL_BUFFER_BYTES:
                # overflow policy: a caller that does not read its events loses the call
                log.info("call %s: its data channel is %d bytes behind; ending the call", self.id,
                         self.channel.bufferedAmount)
                if self._ending is None:  # kept referenced until it runs
                    self._ending = asyncio.get_running_loop().create_task(self.end())
                return
            self.channel.send(text)
        for queue in list(self.sidebands):
            if queue.qsize() < SIDEBAND_QUEUE_EVENTS:
                queue.put_nowait(text)
            else:  # overflow policy: a sideband that does not read is closed (the None fits: maxsize + 1)
                self.sidebands.discard(queue)
                queue.put_nowait(None)

    def _drained(self) -> None:
        if not self.live and self._playing_response is not None and not self.model.responding:
            rid, self._playing_response = self._playing_response, None
            self._send({"type": "output_audio_buffer.stopped", "event_id": self.model._id("event"), "response_id": rid})

    def _clear_output(self) -> None:
        self.out.clear()
        rid, self._playing_response = self._playing_response, None
        self._send({"type": "output_audio_buffer.cleared", "event_id": self.model._id("event"), "response_id": rid})

    # -- events in ----------------------------------------------------------------------------

    def receive(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if isinstance(event, dict) and event.get("type") == "output_audio_buffer.clear":
            self._clear_output()
            return
        self.emit(self.model.receive(text))

    # -- tasks ----------------------------------------------------------------------------------

    def start(self, stream_delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._tasks += [loop.create_task(self._stream(stream_delay_s)), loop.create_task(self._hear()),
                        loop.create_task(self._watch())]
        if self.live:
            self._tasks.append(loop.create_task(self._tick()))

    async def _tick(self) -> None:
        """GPT-Live bills seconds: session.usage.updated as they rise (the data channel and sidebands)."""
        while True:
            await asyncio.sleep(self.peer.usage_interval_s)
            self.emit(self.model.usage_tick())

    async def _stream(self, delay_s: float) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.model.responding:
                self.emit(self.model.next_chunk())
                await asyncio.sleep(delay_s)
            if not self.out.playing:
                self._drained()

    async def _hear(self) -> None:
        while True:
            item_id, pcm = await self._hearing.get()
            words: str | None = None
            if self.peer.ears is not None:
                try:
                    async with self.peer.hearing:
                        words = await asyncio.to_thread(self.peer.ears.hear, pcm)
                except (OSError, RuntimeError) as e:
                    log.warning("call %s: could not hear an utterance: %s", self.id, e)
            self.emit(self.model.heard(item_id, words))

    async def _watch(self) -> None:
        try:
            await asyncio.wait_for(self._connected(), CONNECT_TIMEOUT_S)
        except TimeoutError:
            log.info("call %s: not connected within %g s", self.id, CONNECT_TIMEOUT_S)
            await self.end()

    async def _connected(self) -> None:
        while self.pc.connectionState != "connected":
            await asyncio.sleep(0.05)

    async def listen(self, track: MediaStreamTrack) -> None:
        """The caller's microphone: Opus decoded by aiortc, resampled to 24 kHz mono, to the VAD."""
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            while True:
                frame = await track.recv()
                for out in resampler.resample(frame):  # type: ignore[arg-type]
                    self.emit(self.model.feed_audio(bytes(out.planes[0])[: out.samples * 2]))
        except MediaStreamError:
            pass

    async def end(self) -> None:
        if self.ended.is_set():
            return
        self.ended.set()
        for task in self._tasks:
            task.cancel()
        for queue in list(self.sidebands):
            if not queue.full():
                queue.put_nowait(None)
        self.sidebands.clear()
        await self.pc.close()
        self.peer.calls.pop(self.id, None)
        log.info("call %s ended", self.id)


class Peer:
    """The calls this process holds, and what they share (the ears, the voice)."""

    def __init__(self, secret: str | None, stream_delay_s: float, speech: str, usage_interval_s: float = 1.0) -> None:
        self.secret = secret
        self.stream_delay_s = stream_delay_s
        self.usage_interval_s = usage_interval_s
        self.calls: dict[str, Call] = {}
        self.ears = Ears() if speech != "off" and Ears.available() else None
        self.voice = Voice() if speech != "off" and Voice.available() else None
        self.hearing = asyncio.Semaphore(1)

    def authorized(self, headers: Any) -> bool:
        if self.secret is None:
            return True
        return hmac.compare_digest(headers.get("Authorization", "").encode(), f"Bearer {self.secret}".encode())

    async def create(self, sdp: str, model_name: str, session: dict[str, Any] | None) -> Call | Response:
        """A Realtime call (``POST /v1/realtime/calls``)."""
        model = OfflineModel(model=model_name, hears=self.ears is not None,
                             speaker=self.voice.speak if self.voice else None)
        if set(session or {}) - {"type"}:
            answer = model.receive(json.dumps({"type": "session.update", "session": session}))
            errors = [e for e in answer if e.get("type") == "error"]
            if errors:
                return _error(400, errors[0]["error"]["code"], errors[0]["error"]["message"])
        return await self._connect(Call(self, model, model.start()), sdp)

    async def create_live(self, sdp: str, session: dict[str, Any]) -> Call | Response:
        """A GPT-Live session over WebRTC (``POST /v1/live/sessions``): the POST starts it."""
        model = OfflineLiveModel(hears=self.ears is not None, speaker=self.voice.speak if self.voice else None)
        started = model.receive(json.dumps({"type": "session.start", "session": session}))
        errors = [e for e in started if e.get("type") == "error"]
        if errors:
            return _error(400, errors[0]["error"]["code"], errors[0]["error"]["message"])
        return await self._connect(Call(self, model, started), sdp)

    async def _connect(self, call: Call, sdp: str) -> Call | Response:
        if len(self.calls) >= MAX_CALLS:
            await call.pc.close()
            return _error(429, "too_many_calls", f"the offline peer holds {MAX_CALLS} calls already")
        model = call.model

        @call.pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            if channel.label != EVENTS_CHANNEL:
                return
            call.channel = channel

            @channel.on("open")
            def on_open() -> None:
                for event in call.opening:  # session.created (GPT-Live: session.started), as on a WebSocket
                    channel.send(json.dumps(event))

            @channel.on("message")
            def on_message(message: Any) -> None:
                if isinstance(message, str):
                    call.receive(message)

            if channel.readyState == "open":
                on_open()

        @call.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                call._tasks.append(asyncio.get_running_loop().create_task(call.listen(track)))

        @call.pc.on("connectionstatechange")
        async def on_state() -> None:
            if call.pc.connectionState in ("failed", "closed"):
                await call.end()

        try:
            await call.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if not any(t.kind == "audio" for t in call.pc.getTransceivers()):
                raise ValueError("the offer has no audio media section")
            call.pc.addTrack(call.out)  # into the offer's audio transceiver: sendrecv
            await call.pc.setLocalDescription(await call.pc.createAnswer())
        except Exception as e:  # aiortc raises ValueError and others on an offer it cannot answer
            await call.pc.close()
            return _error(400, "invalid_offer", f"the SDP offer cannot be answered: {str(e)[:200]}")
        self.calls[call.id] = call
        call.start(self.stream_delay_s)
        log.info("call %s created (model %s)", call.id, model.model)
        return call


def create_app(peer: Peer) -> Quart:
    app = Quart("rtproxy-offline-rtc")

    @app.before_request
    async def check_secret() -> Response | None:
        if not peer.authorized(request.headers):
            return _error(401, "invalid_api_key", "invalid credentials")
        return None

    @app.post("/v1/realtime/calls")
    async def create_call() -> Response:
        body = await request.get_data(cache=False, as_text=False)
        try:
            raw = body if isinstance(body, bytes) else body.encode()
            offer = parse_offer(request.headers.get("Content-Type", ""), raw, request.args.get("model"))
        except OfferError as exc:
            return _error(exc.status, exc.code, exc.message)
        session = {k: v for k, v in (offer.session or {}).items() if k != "model"}
        created = await peer.create(offer.sdp, offer.model or "gpt-realtime", session)
        if isinstance(created, Response):
            return created
        answer = created.pc.localDescription.sdp
        return Response(answer, status=201, content_type="application/sdp",
                        headers={"Location": f"/v1/realtime/calls/{created.id}"})

    @app.post("/v1/realtime/calls/<call_id>/<op>")
    async def call_op(call_id: str, op: str) -> Response:
        call = peer.calls.get(call_id)
        if call is None:
            return _error(404, "call_not_found", "no such call")
        if op == "hangup":
            await call.end()
            return Response("", status=200)
        if op in ("accept", "reject", "refer"):
            return _error(400, "not_a_sip_call", f"{op} is for SIP calls; this is a WebRTC call")
        return _error(404, "not_found", "no such operation")

    @app.post("/v1/live/sessions")
    async def create_live_session() -> Response:
        body = await request.get_json(force=True, silent=True)
        transport = body.get("transport") if isinstance(body, dict) else None
        session = body.get("session") if isinstance(body, dict) else None
        if not isinstance(transport, dict) or transport.get("type") != "webrtc" or not isinstance(session, dict):
            return _error(400, "invalid_request", "send {session, transport: {type: 'webrtc', sdp}}")
        try:
            sdp = check_sdp(str(transport.get("sdp") or ""))
        except OfferError as exc:
            return _error(exc.status, exc.code, exc.message)
        created = await peer.create_live(sdp, session)
        if isinstance(created, Response):
            return created
        return Response(json.dumps({"session": created.model.resource(),
                                    "transport": {"type": "webrtc", "sdp": created.pc.localDescription.sdp}}),
                        status=200, content_type="application/json")

    @app.post("/v1/live/sessions/<session_id>/hangup")
    async def live_hangup(session_id: str) -> Response:
        call = peer.calls.get(session_id)
        if call is None:
            return _error(404, "session_not_found", "no such session")
        await call.end()
        return Response("", status=200)

    @app.websocket("/v1/live/sessions/<session_id>/attach")
    async def live_sideband(session_id: str) -> None:
        await sideband(session_id)

    @app.websocket("/v1/realtime")
    async def realtime_sideband() -> None:
        await sideband(websocket.args.get("call_id", ""))

    async def sideband(call_id: str) -> None:
        if not peer.authorized(websocket.headers):
            await websocket.close(1008, "invalid credentials")
            return
        call = peer.calls.get(call_id)
        if call is None or call.ended.is_set():
            await websocket.close(4404, "no such call")
            return
        if len(call.sidebands) >= MAX_SIDEBANDS:
            await websocket.close(4429, "too many sidebands")
            return
        await websocket.accept()
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=SIDEBAND_QUEUE_EVENTS + 1)
        if not call.live:  # a Realtime sideband starts with the session as it is now
            queue.put_nowait(json.dumps(call.model._ev("session.created", session=call.model.session_object())))
        call.sidebands.add(queue)

        async def reader() -> None:
            while True:
                message = await websocket.receive()
                if isinstance(message, str):
                    call.receive(message)

        task = asyncio.get_running_loop().create_task(reader())
        try:
            while True:
                text = await queue.get()
                if text is None:
                    break
                await websocket.send(text)
        finally:
            task.cancel()
            call.sidebands.discard(queue)
        await websocket.close(1000, "call ended")

    return app


async def _main(args: argparse.Namespace) -> None:
    peer = Peer(os.environ.get("RTPROXY_LOCAL_SECRET") or None, args.stream_delay_ms / 1000, args.speech,
                args.live_usage_interval_ms / 1000)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.set_inheritable(True)
    sock.listen(128)  # before the port is told: the parent may connect at once
    config = HypercornConfig()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = log
    print(f"port {sock.getsockname()[1]}", flush=True)  # the parent reads this line
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()

    async def orphaned() -> None:  # the gateway died without stopping us (kill -9): stop too
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK_S)
        stop.set()

    watch = loop.create_task(orphaned())
    await serve(create_app(peer), config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    watch.cancel()
    for call in list(peer.calls.values()):
        await call.end()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m rtproxy.offline.rtc", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--stream-delay-ms", type=float, default=5.0)
    p.add_argument("--speech", choices=["auto", "off"], default="auto")
    p.add_argument("--live-usage-interval-ms", type=float, default=1000.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="rtc %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("aioice").setLevel(logging.WARNING)  # a line per ICE check otherwise
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
