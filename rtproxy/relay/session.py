"""The session core: one realtime session from handshake to its last record.

The server plans a session (:class:`~rtproxy.relay.plan.SessionPlan`) and hands it, with the
client's pending handshake and the session's ports, to :class:`Session`; nothing below knows which
listener the client came through, nor which protocol it speaks beyond what the plan's protocol
answers. A session is one nursery with three tasks:

- the client→upstream pump and the upstream→client pump: one task per direction, each reading
  its source leg itself and writing the whole batch it got to the other leg (no queue hop);
- the collector, fed through a bounded channel with only the frames it needs (chosen by the
  protocol's ``classify``: never audio).

A client's frames decide what the provider bills, so they are judged on what the provider will
read: ``classify_client`` answers from the bytes only when they prove the frame's type; any other
client frame is parsed (``normalize_client``) and its re-serialized form is gated, collected and
forwarded in its place. A frame that does not parse but might hold an object (a ``{``) is
answered with an ``invalid_json`` error and not forwarded.

When either side closes, the pumps stop, both legs are closed under a shield (the other side
gets the mapped close code: upstream 1005/1006/1015 become 1011 for the client, a vanished
client becomes 1001 for the upstream), the collector drains, and the session record is written.
A session cancelled from outside (server shutdown, budget cut-off) ends the same way.

Collector channel overflow policy: the channel holds :data:`COLLECT_QUEUE_EVENTS` events. The
collector only does CPU work on the few non-audio events, so it is never behind in practice; if it
ever is, the pump *waits* (backpressure on this one session) rather than drop a billing event.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from ..errors import UpstreamError
from ..protocols.seam import AUDIO, COLLECT, PARSE, SessionCollector
from ..spend.records import SessionEnd
from .handshake import ClientHandshake, ClientLeg, deliver_rejection, error_body, upstream_rejection
from .plan import SessionPlan, SessionPorts
from .translated import TranslatingLeg
from .wsleg import LegClosed, Message, WebSocketLeg, clip_reason, sendable_code

log = logging.getLogger("rtproxy.session")

#: Events buffered between the pumps and the collector (see the overflow policy above).
COLLECT_QUEUE_EVENTS = 256
#: First-audio delays kept between two metrics flushes (one per turn; more are not timed).
MAX_PENDING_SAMPLES = 64
#: How often (s) the collector task looks at the audio relayed with no event to carry it: audio
#: streamed without responses goes on a "usage" record once a minute of it accumulates
#: (protocols/realtime/collector.py, METERED_FLUSH_MS), so limits in audio minutes and metered
#: prices never run more than a minute and this behind.
METER_CHECK_S = 5.0

#: What a client is told of a frame the gateway cannot parse (and so cannot judge).
UNREADABLE_FRAME = ("the gateway forwards only events it can parse as JSON (nested less than about 1000 deep, "
                    "numbers under 4300 digits); this one was not forwarded")

#: What the pumps hand the collector: (direction, frame, audio bytes relayed so far client→upstream,
#: and upstream→client). Direction "barrier" carries a trio.Event the collector sets on reaching it.
CollectItem = tuple[str, Any, int, int]


class Session:
    """One planned session: :meth:`run` relays it until it is over and recorded."""

    # thousands open at once: slots, not a dict each (S4)
    __slots__ = ("_collect_ch", "_failed_leg", "_scope", "_stop_reason", "_turn_started", "_upstream", "audio_bytes",
                 "batches", "collector", "collector_errors", "connect_s", "end", "first_audio_s", "frames", "id",
                 "payload_bytes", "plan", "ports")

    def __init__(self, plan: SessionPlan, ports: SessionPorts) -> None:
        self.plan = plan
        self.ports = ports
        self.id = plan.session_id
        self.end: SessionEnd | None = None
        #: The scope :meth:`stop` cancels: the dial's, then the pumps'.
        self._scope: trio.CancelScope | None = None
        self._stop_reason: tuple[int, str, str] | None = None
        self.collector: SessionCollector = plan.protocol.new_collector(plan.meta)
        #: Message batches relayed either way; the idle watch only compares it over time.
        self.batches = 0
        #: Base64 characters of audio relayed client→upstream and upstream→client (the blobs of
        #: the audio frames: :meth:`ApiProtocol.audio_len`), for the collector's audio meter.
        self.audio_bytes = [0, 0]
        #: For metrics, taken (and reset) by :meth:`take_counts`: frames and payload bytes relayed
        #: each way, the upstream connect time, the delays from a turn's start to its first audio.
        self.frames = [0, 0]
        self.payload_bytes = [0, 0]
        self.connect_s: float | None = None
        self.first_audio_s: list[float] = []
        self._turn_started: float | None = None
        self._failed_leg: tuple[str, LegClosed] | None = None
        self._upstream: ClientLeg | None = None
        #: Frames the collector raised on (never expected; counted, logged once, skipped).
        self.collector_errors = 0
        self._collect_ch: trio.MemorySendChannel[CollectItem] | None = None

    def stop(self, code: int, error_code: str, message: str) -> None:
        """End the session from outside: the client gets an error event and ``code``."""
        if self._stop_reason is None:
            self._stop_reason = (code, error_code, message)
        if self._scope is not None:
            self._scope.cancel()

    def _stoppable_scope(self, scope: trio.CancelScope | None = None) -> trio.CancelScope:
        """``scope`` (default: a new one) as the one :meth:`stop` cancels (already cancelled if
        stop came first)."""
        scope = self._scope = scope if scope is not None else trio.CancelScope()
        if self._stop_reason is not None:
            scope.cancel()
        return scope

    def _ended(self, end: SessionEnd) -> None:
        if self.end is None:
            self.end = end

    async def run(self, hs: ClientHandshake) -> None:
        plan, ports = self.plan, self.ports
        error_event = plan.protocol.error_event
        upstream = None
        try:
            with self._stoppable_scope():
                dial_started = trio.current_time()
                upstream = await ports.dial(plan.target)
                self._upstream = upstream
                # a predialed leg (relay/predial.py) knows how long its own dial took
                self.connect_s = getattr(upstream, "dial_s", None) or trio.current_time() - dial_started
        except UpstreamError as exc:
            rejection = upstream_rejection(exc, plan.browser, plan.subprotocol)
            log.warning("session %s: %s", self.id, exc)
            self._ended(SessionEnd("upstream", getattr(exc, "status", None), rejection.message, failed=True,
                                   error={"type": rejection.error_type, "code": rejection.code,
                                          "message": rejection.message}))
            with trio.CancelScope(shield=True):
                await deliver_rejection(hs, rejection, error_event)
                await ports.write_record(self.collector.finish(self.end))  # type: ignore[arg-type]
            return
        if upstream is None:
            # stopped while connecting (shutdown): nothing was accepted yet
            self._ended(SessionEnd("proxy", None, "the gateway is shutting down"))
            with trio.CancelScope(shield=True):
                await hs.reject(503, error_body("shutting_down", "the gateway is shutting down", "server_error"))
                await ports.write_record(self.collector.finish(self.end))  # type: ignore[arg-type]
            return

        client = await hs.accept(plan.subprotocol)
        log.info("session %s opened: key=%s model=%s provider=%s dialect=%s credential=%s", self.id,
                 plan.key.name, plan.model.name, plan.model.provider, plan.dialect,
                 "ephemeral" if plan.ephemeral else "key")
        send_ch, recv_ch = trio.open_memory_channel[CollectItem](COLLECT_QUEUE_EVENTS)
        self._collect_ch = send_ch
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._collect, recv_ch)
                async with send_ch:
                    try:
                        # One scope for stop(), the maximum duration and a pump's end (it cancels
                        # the other): an open session holds as few as it can (S4: each active
                        # scope is some 650 bytes). A pump that ends has recorded why (self.end),
                        # stop() its reason: a cancel with neither is the deadline.
                        async with trio.open_nursery() as pumps:
                            scope = self._stoppable_scope(pumps.cancel_scope)
                            limit = plan.limits.max_duration_s
                            if limit:
                                scope.deadline = trio.current_time() + limit
                            if await self._send_initial_frames(upstream, send_ch):
                                pumps.start_soon(self._pump, client, upstream, "client", send_ch, scope)
                                pumps.start_soon(self._pump, upstream, client, "upstream", send_ch, scope)
                        if scope.cancelled_caught and self.end is None and self._stop_reason is None:
                            self._stop_reason = (1008, "session_expired",
                                                 f"the session reached its maximum duration of {limit:g} s")
                    finally:
                        with trio.CancelScope(shield=True):
                            await self._close_legs(client, upstream)
        except Exception:
            log.exception("session %s failed", self.id)
            raise
        finally:
            log.info("session %s closed by %s (%s)", self.id, self.end.by if self.end else "?",
                     self.end.code if self.end else "?")

    async def _send_initial_frames(self, upstream: ClientLeg,
                                   collect: trio.MemorySendChannel[CollectItem]) -> bool:
        """The plan's frames before any client frame (e.g. the session config a token was minted
        with); False if the upstream is gone (its end recorded)."""
        for initial in self.plan.initial_frames:
            try:
                await upstream.send_text(initial)
            except LegClosed as exc:
                self._ended(SessionEnd("upstream", exc.code, exc.reason))
                return False
            await collect.send(("client", initial.encode(), 0, 0))
        return True

    async def _pump(self, src: ClientLeg, dst: ClientLeg, side: str,
                    collect: trio.MemorySendChannel[CollectItem], scope: trio.CancelScope) -> None:
        direction = "client" if side == "client" else "server"
        other = "upstream" if side == "client" else "client"
        send_nowait = collect.send_nowait
        protocol = self.plan.protocol
        # a client's frames, binary ones too (a provider may parse those as events), are judged on
        # what the provider will read; the provider's own are trusted
        from_client = side == "client"
        # a provider's binary frames are events where its protocol says so (Gemini Live's are JSON)
        parse_binary = from_client or protocol.binary_events
        classify = protocol.classify_client if from_client else protocol.classify
        gate = self.plan.gate if from_client else None
        # a watched WebRTC call: the session as the provider applied it (its client frames are unseen)
        applied = self.plan.gate if side == "upstream" and self.plan.observer else None
        audio = self.audio_bytes
        audio_len = protocol.audio_len
        at = 0 if side == "client" else 1
        frames, payload_bytes = self.frames, self.payload_bytes
        # a turn's start (realtime: response.created), to time its first audio (metrics)
        is_turn_start = self.plan.protocol.is_turn_start if side == "upstream" else None
        try:
            while True:
                try:
                    messages = await src.receive()
                except LegClosed as exc:
                    self._ended(SessionEnd(side, exc.code, exc.reason))  # type: ignore[arg-type]
                    if not exc.by_peer:
                        self._failed_leg = (side, exc)
                    return
                refused: list[tuple[int, str]] | None = None
                frames[at] += len(messages)
                nbytes = 0
                for i, (is_text, payload) in enumerate(messages):
                    nbytes += len(payload)
                    if is_text or parse_binary:
                        kind = classify(payload)
                        if kind == PARSE:
                            parsed = protocol.normalize_client(payload)
                            if parsed.payload is None:  # what it cannot read, it cannot judge
                                refused = (refused or []) + [(i, protocol.error_event(
                                    "invalid_json", UNREADABLE_FRAME, "invalid_request_error"))]
                                await collect.send((direction, payload, audio[0], audio[1]))  # counted
                                continue
                            payload, kind = parsed.payload, parsed.kind
                            messages[i] = (is_text, payload)  # forwarded as judged
                        if kind == COLLECT:
                            if is_turn_start is not None and is_turn_start(payload):
                                self._turn_started = trio.current_time()
                            if applied is not None:
                                wrong = applied.check_applied(payload)
                                if wrong is not None and self._stop_reason is None:
                                    self.stop(4403, *wrong)
                            if gate is not None:
                                refusal = gate.check(payload)
                                if refusal is not None:  # answered here, never forwarded nor billed
                                    refused = (refused or []) + [(i, refusal)]
                                    ends = gate.close_for(payload)
                                    if ends is not None and self._stop_reason is None:
                                        self.stop(ends[0], "refused", ends[1])  # its clients see only a close
                                    continue
                            item = (direction, payload, audio[0], audio[1])
                            try:
                                send_nowait(item)
                            except trio.WouldBlock:
                                await collect.send(item)
                        elif kind == AUDIO:
                            audio[at] += audio_len(payload)
                            if self._turn_started is not None and is_turn_start is not None:
                                if len(self.first_audio_s) < MAX_PENDING_SAMPLES:
                                    self.first_audio_s.append(trio.current_time() - self._turn_started)
                                self._turn_started = None
                payload_bytes[at] += nbytes
                if refused is not None:
                    dropped = {i for i, _ in refused}
                    messages = [m for i, m in enumerate(messages) if i not in dropped]
                    try:
                        await src.send([(True, text.encode()) for _, text in refused])
                    except LegClosed as exc:
                        self._ended(SessionEnd(side, exc.code, exc.reason))  # type: ignore[arg-type]
                        return
                    if not messages:
                        continue
                try:
                    await dst.send(messages)
                except LegClosed as exc:
                    self._ended(SessionEnd(other, exc.code, exc.reason))  # type: ignore[arg-type]
                    if not exc.by_peer:  # we gave up on it (a client too slow to take its data)
                        self._failed_leg = (other, exc)
                    return
                self.batches += 1
        finally:
            scope.cancel()


    async def _collector_caught_up(self) -> None:
        """Wait until the collector has taken every frame handed to it so far."""
        if self._collect_ch is None:
            return
        reached = trio.Event()
        await self._collect_ch.send(("barrier", reached, 0, 0))
        await reached.wait()

    async def _hand_to_collector(self, messages: list[Message]) -> None:
        """Frames read from the upstream after the client left: recorded, not forwarded."""
        classify = self.plan.protocol.classify
        binary_events = self.plan.protocol.binary_events
        audio_len = self.plan.protocol.audio_len
        audio = self.audio_bytes
        for is_text, payload in messages:
            if not (is_text or binary_events) or self._collect_ch is None:
                continue
            kind = classify(payload)
            if kind == COLLECT:
                await self._collect_ch.send(("server", payload, audio[0], audio[1]))
            elif kind == AUDIO:
                audio[1] += audio_len(payload)

    async def _settle(self, upstream: ClientLeg) -> None:
        """The client is gone with responses in flight: ask the provider to finish them and read
        its reports for up to the settle window (the caller bills what is still open after)."""
        window = self.plan.limits.settle_window_s
        if not window or not isinstance(upstream, WebSocketLeg | TranslatingLeg) or upstream.closed is not None:
            return
        collector = self.collector
        with trio.move_on_after(window):
            await self._collector_caught_up()
            collector.note_audio(*self.audio_bytes)  # a turn seen only through its audio is in flight too
            if not collector.in_flight:
                return
            log.info("session %s: the client left with %d response(s) in flight; settling", self.id,
                     collector.in_flight)
            try:
                while collector.in_flight:
                    # cancels for the responses open now, then for each requested one as it starts
                    frames = collector.settle_frames()
                    if frames:
                        await upstream.send([(True, f.encode()) for f in frames])
                    await self._hand_to_collector(await upstream.receive())
                    await self._collector_caught_up()
            except LegClosed:
                pass

    async def _close_legs(self, client: ClientLeg, upstream: ClientLeg) -> None:
        """Close both legs with the codes the end calls for, concurrently and bounded."""
        end = self.end
        error_event = self.plan.protocol.error_event
        client_events: list[str] = []
        if self._stop_reason is not None and end is None:
            code, error_code, message = self._stop_reason
            end = SessionEnd("proxy", code, message, failed=False)
            client_events.append(error_event(error_code, message, "server_error" if code == 1001 else
                                             "invalid_request_error"))
            client_code, client_reason, up_code, up_reason = code, message, 1001, "client session ended by proxy"
        elif end is None:
            # cancelled from outside without a reason (e.g. the server's handler nursery)
            end = SessionEnd("proxy", 1001, "server shutting down")
            client_events.append(error_event("server_shutdown", "the gateway is shutting down", "server_error"))
            client_code, client_reason, up_code, up_reason = 1001, "server shutting down", 1001, "proxy shutting down"
        elif end.by == "client":
            code = end.code or 1005
            failed_here = self._failed_leg is not None and self._failed_leg[0] == "client"
            up_code = 1001 if code in (1005, 1006) or failed_here else sendable_code(code, 1001)
            up_reason = "client went away" if up_code == 1001 else end.reason
            client_code, client_reason = sendable_code(code, 1000), end.reason
        else:  # upstream ended
            code = end.code or 1005
            if self._failed_leg is not None and self._failed_leg[0] == "upstream":
                client_code, client_reason = 1011, f"upstream sent an invalid message ({end.reason})"
                end = SessionEnd("upstream", code, end.reason, failed=True,
                                 error={"type": "server_error", "code": "upstream_protocol_error", "message": client_reason})
            elif code == 1006:
                client_code, client_reason = 1011, "upstream connection lost"
                client_events.append(error_event("upstream_disconnected", "the upstream connection was lost",
                                                 "server_error"))
                end = SessionEnd("upstream", code, "connection lost", failed=True,
                                 error={"type": "server_error", "code": "upstream_disconnected",
                                        "message": "the upstream connection was lost"})
            else:
                client_code, client_reason = sendable_code(code, 1011), end.reason
            if self.plan.observer and code != 1000 and not end.failed:
                # the gateway's sideband on a WebRTC call: anything but the call's normal end means
                # the gateway lost sight of it (and hangs it up: unwatched is unbilled)
                end = SessionEnd("upstream", code, end.reason, failed=True, error={
                    "type": "server_error", "code": "sideband_lost",
                    "message": f"the provider's sideband closed with {code}; the gateway hung the call up"})
            up_code, up_reason = 1000, ""
        self.end = end

        async def close_client() -> None:
            for text in client_events:
                try:
                    await client.send_text(text)
                except LegClosed:
                    break
            await client.close(client_code, clip_reason(client_reason))

        async def close_upstream() -> None:
            if end.by != "upstream":
                await self._settle(upstream)
            if isinstance(upstream, WebSocketLeg | TranslatingLeg):
                # frames the upstream sent before it saw our close: not forwarded, but recorded
                bill_late = self._hand_to_collector
                await upstream.close(up_code, clip_reason(up_reason), on_messages=bill_late)
            else:
                await upstream.close(up_code, clip_reason(up_reason))

        timeout = self.plan.limits.close_timeout_s + self.plan.limits.settle_window_s + 1
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as n:
                n.start_soon(close_client)
                n.start_soon(close_upstream)

    async def _collect(self, events: trio.MemoryReceiveChannel[CollectItem]) -> None:
        """Feed the collector; write records as they complete; the session record at the end.

        Shielded: it must see every event and write the last record even when the session is
        being cancelled (client disconnect on the main port, shutdown).
        """
        ports = self.ports
        collector = self.collector
        idle_limit = self.plan.limits.idle_timeout_s
        # the idle watch wakes a few times per timeout, and the audio meter every METER_CHECK_S
        check_every = min(max(idle_limit / 4, 0.05), METER_CHECK_S) if idle_limit else METER_CHECK_S
        metered_usage = getattr(collector, "metered_usage", None)
        metered_at = trio.current_time()
        seen_batches, quiet_since = -1, trio.current_time()
        known_upstream_id: str | None = None
        with trio.CancelScope(shield=True):
            async with events:
                while True:
                    with trio.move_on_after(check_every):
                        try:
                            direction, payload, audio_in, audio_out = await events.receive()
                        except trio.EndOfChannel:
                            break
                        if direction == "barrier":
                            payload.set()
                            continue
                        collector.note_audio(audio_in, audio_out)
                        try:
                            records = collector.feed(direction, payload)  # type: ignore[arg-type]
                        except Exception:
                            # a bug must not stop billing: the frame is skipped, the session goes on,
                            # and a response it left open is billed by estimate at the end
                            self.collector_errors += 1
                            if self.collector_errors == 1:
                                log.exception("session %s: the collector failed on a %s frame", self.id, direction)
                            continue
                        for record in records:
                            await ports.write_record(record)
                            over = ports.over_limit()
                            if over is not None and self._stop_reason is None:
                                self.stop(4429, *over)
                        upstream_id = collector.upstream_session_id
                        if upstream_id != known_upstream_id and upstream_id and ports.upstream_session_opened:
                            known_upstream_id = upstream_id
                            await ports.upstream_session_opened(upstream_id)
                        if metered_usage is None or trio.current_time() - metered_at < METER_CHECK_S:
                            continue
                    now = trio.current_time()
                    if metered_usage is not None and now - metered_at >= METER_CHECK_S:
                        # audio relayed with no response to put it on: every METER_CHECK_S, busy
                        # or quiet, and at once when the key's audio minutes are running out
                        metered_at = now
                        collector.note_audio(*self.audio_bytes)
                        left = ports.audio_left_ms()
                        for record in metered_usage() if left is None else metered_usage(threshold_ms=max(left, 0.0)):
                            await ports.write_record(record)
                            over = ports.over_limit()
                            if over is not None and self._stop_reason is None:
                                self.stop(4429, *over)
                    if self.batches != seen_batches:
                        seen_batches, quiet_since = self.batches, now
                    elif now - quiet_since >= idle_limit and self._stop_reason is None:
                        self.stop(1008, "idle_timeout", f"no events either way for {idle_limit:g} s")
            # responses the provider never reported (upstream gone, settle window over): billed
            # with usage estimated from what was relayed
            collector.note_audio(*self.audio_bytes)
            for record in collector.unsettled():
                await ports.write_record(record)
            end = self.end or SessionEnd("proxy", None, "")
            record = collector.finish(end)
            reconnections = getattr(self._upstream, "reconnections", None)
            if reconnections is not None:  # a translated upstream moved to new connections this often
                record["reconnections"] = reconnections
            await ports.write_record(record)

    def take_counts(self) -> tuple[tuple[int, int], tuple[int, int], float | None, list[float]]:
        """(frames, payload bytes, connect seconds, first-audio delays) since the last call."""
        counts = (tuple(self.frames), tuple(self.payload_bytes), self.connect_s, self.first_audio_s)
        # reset in place: the pumps hold these lists (no await here, so nothing runs in between)
        self.frames[:] = [0, 0]
        self.payload_bytes[:] = [0, 0]
        self.connect_s, self.first_audio_s = None, []
        return counts  # type: ignore[return-value]

    def summary(self) -> dict[str, Any]:
        """What an operator sees of a live session (no secrets, no content)."""
        plan = self.plan
        return {"id": self.id, "key_name": plan.key.name, "model": plan.model.name,
                "provider": plan.model.provider, "credential": plan.meta.credential,
                "started": self.collector.started_at.isoformat(timespec="seconds"),
                "responses": self.collector.responses, "client_ip": plan.meta.client_ip}
