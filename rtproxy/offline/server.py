"""The offline model's WebSocket server (trio-websocket), a thin loop around :class:`OfflineModel`.

Reached over a real loopback WebSocket like any provider, so the proxy path is the same as for
OpenAI. When started with a secret it accepts only ``Authorization: Bearer <secret>`` (the
gateway's per-process secret); ``rtproxy simulate`` runs it standalone without one.

Two tasks per connection: one reads client events and answers them at once; the other streams
the active response, one chunk every ``stream_delay_s``, so responses take time (and can be
cancelled or interrupted) like a real model's. With speech on (``[local] speech``), a third hears
committed utterances in a worker thread (:class:`~rtproxy.offline.hearing.Ears`), so the reader
never waits for a recognizer, and replies are spoken by espeak-ng (:class:`~rtproxy.offline.voice.Voice`).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from urllib.parse import parse_qs, urlsplit

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from .ears import Ears
from .live import OfflineLiveModel
from .model import OfflineModel
from .voice import Voice

log = logging.getLogger("rtproxy.offline")
# trio-websocket's DEBUG lines include handshake headers (the gateway's local secret): keep it at INFO.
logging.getLogger("trio-websocket").setLevel(max(logging.getLogger("trio-websocket").level, logging.INFO))

#: The offline model accepts messages up to this size (like the real API's 15 MiB audio events).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Messages trio-websocket queues per connection before the reader waits.
MESSAGE_QUEUE_SIZE = 64
#: GPT-Live sessions kept for their sideband and forks (the oldest are forgotten beyond this).
MAX_LIVE_SESSIONS = 256
#: Utterances one session queues for its recognizer; beyond, one gets its placeholder transcript
#: at once (the client is speaking faster than this machine can hear).
MAX_QUEUED_UTTERANCES = 8
#: Recognizer threads per process: one pocketsphinx decoder pair, which is not thread-safe.
HEARING_THREADS = 1
_LIVE_PATH = re.compile(r"^/v1/live/sessions(?:/(live_[A-Za-z0-9_-]+)/(attach|fork))?$")


@attrs.frozen
class Speech:
    """The offline model's ears and voice, shared by its sessions (``None``: placeholders and tones)."""

    ears: Ears | None = None
    voice: Voice | None = None
    hearing: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(HEARING_THREADS))

    @classmethod
    def from_setting(cls, setting: str) -> Speech:
        """``"auto"``: what is installed (pocketsphinx, espeakng-loader); ``"off"``: neither."""
        if setting == "off":
            return cls()
        return cls(ears=Ears() if Ears.available() else None, voice=Voice() if Voice.available() else None)


async def _handle(request: WebSocketRequest, secret: str | None, stream_delay_s: float,
                  live: LiveSessions, speech: Speech) -> None:
    path = urlsplit(request.path)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
    live_path = _LIVE_PATH.match(path.path.rstrip("/"))
    if path.path.rstrip("/") not in ("/v1/realtime", "/realtime") and live_path is None:
        await request.reject(404, body=b'{"error":{"message":"not found"}}')
        return
    if secret is not None:
        auth = headers.get("authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {secret}".encode()):
            await request.reject(401, body=b'{"error":{"message":"invalid credentials"}}')
            return
    if live_path is not None:
        await _handle_live(request, live_path.group(1), live_path.group(2) or "start", stream_delay_s, live, speech)
        return
    query = parse_qs(path.query)
    model_name = (query.get("model") or ["gpt-realtime"])[0]
    beta = "realtime=v1" in headers.get("openai-beta", "").replace(" ", "")
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    ws = await request.accept(subprotocol="realtime" if "realtime" in offered else None)
    intent = (query.get("intent") or ["conversation"])[0]
    model = OfflineModel(model=model_name, dialect="beta" if beta else "ga",
                         intent="transcription" if intent == "transcription" else "conversation",
                         hears=speech.ears is not None, speaker=speech.voice.speak if speech.voice else None)
    await serve_session(ws, model, stream_delay_s, opening=model.start(), speech=speech)


async def serve_session(ws: WebSocketConnection, model: OfflineModel | OfflineLiveModel, stream_delay_s: float, *,
                        opening: list[dict[str, object]] | None = None, usage_interval_s: float | None = None,
                        answers_only: bool = False, speech: Speech | None = None) -> None:
    """One connection to a model: ``opening`` events first; then a reader answering each client
    event at once, a streamer sending the model's active output at its pace, a hearer recognizing
    committed audio (speech on), and (GPT-Live) a ticker sending billed usage. A sideband
    (``answers_only``) gets the reader's answers only."""
    wake = trio.Event()
    ears = speech.ears if speech is not None and model.hears and not answers_only else None
    utterances_in, utterances = trio.open_memory_channel[tuple[str, bytes]](MAX_QUEUED_UTTERANCES)

    sending = trio.Lock()

    async def send(events: list[dict[str, object]]) -> None:
        # one batch at a time: the reader, streamer and hearer all send, and a batch (a turn's
        # transcript fragments, say) must not be split by another task's events
        async with sending:
            for event in events:
                await ws.send_message(json.dumps(event))

    async def reader() -> None:
        while True:
            await send(model.receive(await ws.get_message()))
            if getattr(model, "closed", False):  # GPT-Live: session.closed is the last word
                await ws.aclose(1000)
                return
            if ears is not None:
                for utterance in model.take_unheard():
                    try:
                        utterances_in.send_nowait(utterance)
                    except trio.WouldBlock:  # overflow policy: not heard, placeholder transcript
                        await send(model.heard(utterance[0], None))
            if model.responding:
                wake.set()

    async def hearer() -> None:
        assert ears is not None and speech is not None
        async for item_id, pcm in utterances:
            try:
                words: str | None = await trio.to_thread.run_sync(ears.hear, pcm, limiter=speech.hearing)
            except (OSError, RuntimeError) as e:  # the recognizer failed: say so once per utterance, go on
                log.warning("offline model could not hear an utterance: %s", e)
                words = None
            await send(model.heard(item_id, words))
            if model.responding:
                wake.set()

    async def streamer() -> None:
        nonlocal wake
        while True:
            await wake.wait()
            wake = trio.Event()
            while model.responding:
                await send(model.next_chunk())
                await trio.sleep(stream_delay_s)

    async def ticker() -> None:
        assert isinstance(model, OfflineLiveModel) and usage_interval_s is not None
        while True:
            await trio.sleep(usage_interval_s)
            await send(model.usage_tick())

    async def until_closed(task, nursery: trio.Nursery) -> None:
        try:
            await task()
        except ConnectionClosed:
            pass
        nursery.cancel_scope.cancel()

    try:
        await send(opening or [])
    except ConnectionClosed:
        return
    async with trio.open_nursery() as nursery:
        nursery.start_soon(until_closed, reader, nursery)
        if not answers_only:
            nursery.start_soon(until_closed, streamer, nursery)
        if usage_interval_s is not None and not answers_only:
            nursery.start_soon(until_closed, ticker, nursery)
        if ears is not None:
            nursery.start_soon(until_closed, hearer, nursery)


class LiveSessions:
    """The GPT-Live sessions this offline server holds, by id (for their sideband and forks)."""

    def __init__(self, usage_interval_s: float) -> None:
        self.usage_interval_s = usage_interval_s
        self.by_id: dict[str, OfflineLiveModel] = {}

    def add(self, model: OfflineLiveModel) -> None:
        self.by_id[model.session_id] = model
        while len(self.by_id) > MAX_LIVE_SESSIONS:
            del self.by_id[next(iter(self.by_id))]


async def _handle_live(request: WebSocketRequest, live_id: str | None, op: str, stream_delay_s: float,
                       live: LiveSessions, speech: Speech) -> None:
    source = live.by_id.get(live_id or "")
    if op != "start" and source is None:
        await request.reject(404, body=b'{"error":{"code":"session_not_found","message":"no such session"}}')
        return
    ws = await request.accept()
    if op == "attach":  # a sideband: controls the session it names; its replies come here
        assert source is not None
        await serve_session(ws, source, stream_delay_s, answers_only=True)
        return
    model = OfflineLiveModel(op=op, source=source, hears=speech.ears is not None,
                             speaker=speech.voice.speak if speech.voice else None)
    live.add(model)
    await serve_session(ws, model, stream_delay_s, usage_interval_s=live.usage_interval_s, speech=speech)


async def serve_offline_model(host: str, port: int, secret: str | None, stream_delay_s: float, *,
                              live_usage_interval_s: float = 1.0, speech: str = "auto",
                              task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled; reports the bound port through ``task_status``."""
    live = LiveSessions(live_usage_interval_s)
    voices = Speech.from_setting(speech)

    async def handler(request: WebSocketRequest) -> None:
        try:
            await _handle(request, secret, stream_delay_s, live, voices)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("offline model session failed")

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve_websocket(handler, host, port, ssl_context=None,
                                                max_message_size=MAX_MESSAGE_BYTES,
                                                message_queue_size=MESSAGE_QUEUE_SIZE, task_status=task_status))
        bound = server.port
        log.info("offline model on ws://%s:%d/v1/realtime (hearing: %s, voice: %s)", host, bound,
                 "pocketsphinx" if voices.ears else "placeholders", "espeak-ng" if voices.voice else "tones")
        task_status.started(bound)
