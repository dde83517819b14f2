"""The offline model's WebSocket server (trio-websocket), a thin loop around its front-ends:
:class:`OfflineModel` (the Realtime API), :class:`OfflineLiveModel` (GPT-Live),
:class:`OfflineGeminiModel` (Google's Gemini Live API, on Google's own paths
``/ws/google.ai.generativelanguage.{v1,v1beta,v1alpha}.GenerativeService.BidiGenerateContent``) and
:class:`OfflineXaiModel` (xAI's Grok Voice, quirks and all, at ``/xai/v1/realtime``).

Reached over a real loopback WebSocket like any provider, so the proxy path is the same as for
OpenAI. When started with a secret it accepts only ``Authorization: Bearer <secret>`` (the
gateway's per-process secret), or on the Gemini paths ``x-goog-api-key: <secret>`` or
``?key=<secret>`` as Google does (a wrong key is answered as Google answers it: the handshake
succeeds, the first frame gets a close 1008); ``rtproxy simulate`` runs it standalone without one.

Two tasks per connection: one reads client events and answers them at once; the other streams
the active response, one chunk every ``stream_delay_s``, so responses take time (and can be
cancelled or interrupted) like a real model's. With speech on (``[local] speech``), a third hears
committed utterances in a worker thread (:class:`~rtproxy.offline.hearing.Ears`), so the reader
never waits for a recognizer, and replies are spoken by espeak-ng (:class:`~rtproxy.offline.voice.Voice`).
A Gemini connection also has its lifetime: ``goAway`` before the connection limit, then the close
(1011 "Deadline expired before operation could complete.", as Google's has been seen to end);
its sessions stay resumable on a new connection (:class:`~rtproxy.offline.gemini.ResumableSessions`,
shared by the server's connections).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from urllib.parse import parse_qs, urlsplit

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, WebSocketServer

from .ears import Ears
from .gemini import CONNECTION_LIMIT_S, MAX_RESUMABLE_SESSIONS, OfflineGeminiModel, ResumableSessions
from .handshake import HandshakeGuardListener
from .live import OfflineLiveModel
from .model import OfflineModel
from .voice import Voice
from .xai import PING_INTERVAL_S, OfflineXaiModel

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
#: How long a Gemini client with a wrong key gets to send its setup before the close (Google
#: answers the first frame with it; a client that sends nothing is closed at this deadline).
GEMINI_REFUSAL_WAIT_S = 10.0
_LIVE_PATH = re.compile(r"^/v1/live/sessions(?:/(live_[A-Za-z0-9_-]+)/(attach|fork))?$")
#: Google's Gemini Live path (AI Studio), every API version the SDKs use.
_GEMINI_PATH = re.compile(r"^/ws/google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\.GenerativeService"
                          r"\.BidiGenerateContent$")
#: Where the offline model plays xAI's Grok Voice (rtproxy/providers/local.py dials it).
_XAI_PATH = "/xai/v1/realtime"
_BAD_GEMINI_KEY = "API key not valid. Please pass a valid API key."


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


@attrs.frozen
class GeminiSettings:
    """What the server's Gemini connections share: their resumable sessions, and their life."""

    sessions: ResumableSessions = attrs.field(factory=ResumableSessions)
    connection_limit_s: float = CONNECTION_LIMIT_S
    #: ``None``: :func:`rtproxy.offline.gemini.go_away_lead` of the limit.
    go_away_lead_s: float | None = None


async def _handle(request: WebSocketRequest, secret: str | None, stream_delay_s: float,
                  live: LiveSessions, speech: Speech, gemini: GeminiSettings | None = None) -> None:
    path = urlsplit(request.path)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
    # a base URL ending in "/" doubles the SDK's slash (protocol/gemini-live.md §2.4); read the
    # target itself, as urlsplit takes a leading "//" for a host
    target, _, raw_query = request.path.partition("?")
    gemini_path = _GEMINI_PATH.match(re.sub(r"/{2,}", "/", target).rstrip("/"))
    if gemini_path is not None:
        await _handle_gemini(request, gemini_path.group(1), headers, parse_qs(raw_query), secret, stream_delay_s,
                             gemini or GeminiSettings(), speech)
        return
    live_path = _LIVE_PATH.match(path.path.rstrip("/"))
    xai = path.path.rstrip("/") == _XAI_PATH
    if path.path.rstrip("/") not in ("/v1/realtime", "/realtime") and live_path is None and not xai:
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
    if xai:
        ws = await request.accept()
        xai_model = OfflineXaiModel(model=(query.get("model") or ["grok-voice-think-fast-1.0"])[0],
                                    hears=speech.ears is not None, speaker=speech.voice.speak if speech.voice else None)
        await serve_session(ws, xai_model, stream_delay_s, opening=xai_model.start(), speech=speech,
                            ping_interval_s=PING_INTERVAL_S)
        return
    model_name = (query.get("model") or ["gpt-realtime"])[0]
    beta = "realtime=v1" in headers.get("openai-beta", "").replace(" ", "")
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    ws = await request.accept(subprotocol="realtime" if "realtime" in offered else None)
    intent = (query.get("intent") or ["conversation"])[0]
    model = OfflineModel(model=model_name, dialect="beta" if beta else "ga",
                         intent="transcription" if intent == "transcription" else "conversation",
                         hears=speech.ears is not None, speaker=speech.voice.speak if speech.voice else None)
    await serve_session(ws, model, stream_delay_s, opening=model.start(), speech=speech)


async def _handle_gemini(request: WebSocketRequest, version: str, headers: dict[str, str],
                         query: dict[str, list[str]], secret: str | None, stream_delay_s: float,
                         gemini: GeminiSettings, speech: Speech) -> None:
    if secret is not None:
        offered = headers["x-goog-api-key"] if "x-goog-api-key" in headers else (query.get("key") or [""])[0]
        if not hmac.compare_digest(offered.encode(), secret.encode()):
            ws = await request.accept()
            with trio.move_on_after(GEMINI_REFUSAL_WAIT_S):
                await ws.get_message()
            await ws.aclose(1008, _BAD_GEMINI_KEY)
            return
    ws = await request.accept()
    model = OfflineGeminiModel(sessions=gemini.sessions, api_version=version, hears=speech.ears is not None,
                               speaker=speech.voice.speak if speech.voice else None,
                               connection_limit_s=gemini.connection_limit_s, go_away_lead_s=gemini.go_away_lead_s)
    await serve_session(ws, model, stream_delay_s, speech=speech)


async def serve_session(ws: WebSocketConnection,
                        model: OfflineModel | OfflineLiveModel | OfflineGeminiModel | OfflineXaiModel,
                        stream_delay_s: float, *, opening: list[dict[str, object]] | None = None,
                        usage_interval_s: float | None = None, answers_only: bool = False,
                        speech: Speech | None = None, ping_interval_s: float | None = None) -> None:
    """One connection to a model: ``opening`` events first; then a reader answering each client
    event at once, a streamer sending the model's active output at its pace, a hearer recognizing
    committed audio (speech on), (GPT-Live) a ticker sending billed usage, (xAI) a pinger sending
    keepalives every ``ping_interval_s``, and (Gemini) its
    lifetime: ``goAway``, then the close at the connection limit. A sideband (``answers_only``)
    gets the reader's answers only. Gemini frames go as binary messages (UTF-8 JSON, as Google
    sends them); the others as text."""
    gemini = isinstance(model, OfflineGeminiModel)
    wake = trio.Event()
    ears = speech.ears if speech is not None and model.hears and not answers_only else None
    utterances_in, utterances = trio.open_memory_channel[tuple[str, bytes]](MAX_QUEUED_UTTERANCES)

    sending = trio.Lock()

    async def send(events: list[dict[str, object]]) -> None:
        # one batch at a time: the reader, streamer and hearer all send, and a batch (a turn's
        # transcript fragments, say) must not be split by another task's events
        async with sending:
            for event in events:
                text = json.dumps(event)
                await ws.send_message(text.encode("utf-8", "surrogatepass") if gemini else text)

    async def reader() -> None:
        while True:
            await send(model.receive(await ws.get_message()))
            if getattr(model, "closed", False):  # GPT-Live: session.closed is the last word
                await ws.aclose(1000)
                return
            if isinstance(model, OfflineGeminiModel) and model.closing is not None:  # Gemini refused the frame
                await ws.aclose(*model.closing)
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

    async def pinger() -> None:
        assert isinstance(model, OfflineXaiModel) and ping_interval_s is not None
        while True:
            await trio.sleep(ping_interval_s)
            await send(model.ping())

    async def lifetime() -> None:
        assert isinstance(model, OfflineGeminiModel)
        await trio.sleep(max(0.0, model.connection_limit_s - model.go_away_lead_s))
        await send(model.go_away())
        await trio.sleep(min(model.go_away_lead_s, model.connection_limit_s))
        await send(model.expire())
        assert model.closing is not None
        await ws.aclose(*model.closing)

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
        if ping_interval_s is not None and isinstance(model, OfflineXaiModel):
            nursery.start_soon(until_closed, pinger, nursery)
        if gemini:
            nursery.start_soon(until_closed, lifetime, nursery)
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
                              gemini_connection_limit_s: float = CONNECTION_LIMIT_S,
                              gemini_go_away_lead_s: float | None = None,
                              gemini_max_sessions: int = MAX_RESUMABLE_SESSIONS,
                              task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled; reports the bound port through ``task_status``.

    ``gemini_connection_limit_s``: how long a Gemini Live connection lives (``goAway``
    ``gemini_go_away_lead_s`` before, by default :func:`~rtproxy.offline.gemini.go_away_lead`);
    ``gemini_max_sessions``: Gemini sessions kept for resumption, shared by the connections."""
    live = LiveSessions(live_usage_interval_s)
    voices = Speech.from_setting(speech)
    gemini = GeminiSettings(ResumableSessions(gemini_max_sessions), gemini_connection_limit_s, gemini_go_away_lead_s)

    async def handler(request: WebSocketRequest) -> None:
        try:
            await _handle(request, secret, stream_delay_s, live, voices, gemini)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("offline model session failed")

    async with trio.open_nursery() as nursery:
        # a request that is not a WebSocket handshake is answered with a JSON body (handshake.py)
        listeners = [HandshakeGuardListener(listener) for listener in await trio.open_tcp_listeners(port, host=host)]
        server = WebSocketServer(handler, listeners,  # type: ignore[arg-type]  # any trio Listener serves
                                 max_message_size=MAX_MESSAGE_BYTES, message_queue_size=MESSAGE_QUEUE_SIZE)
        await nursery.start(server.run)
        bound = listeners[0].socket.getsockname()[1]
        log.info("offline model on ws://%s:%d/v1/realtime, /v1/live/sessions and Gemini Live's "
                 "/ws/google.ai.generativelanguage.*.GenerativeService.BidiGenerateContent (hearing: %s, voice: %s)",
                 host, bound,
                 "pocketsphinx" if voices.ears else "placeholders", "espeak-ng" if voices.voice else "tones")
        task_status.started(bound)
