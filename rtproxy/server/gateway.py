"""The gateway: what one server process shares between its sessions.

A :class:`Gateway` owns the configuration, the key store, the spend-log writer, the shared limits
(:class:`~rtproxy.server.limits.Limits`: the state store) and the set of open sessions, and runs the background services (the realtime listener and the
offline model) in a nursery of its own. Both the Quart app and ``rtproxy serve`` create one;
tests create one directly.

A client's handshake goes through :meth:`Gateway.run_session`: admission (a pure function of the
request), the gateway-wide limits, then :meth:`Gateway.plan`, which resolves everything the
session needs into one :class:`~rtproxy.relay.plan.SessionPlan`; the relay's
:class:`~rtproxy.relay.session.Session` runs it with the ports built here.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from ..auth.admission import LIVE_PATH, Admission, HandshakeRequest, Rejection, admit, gemini_path
from ..auth.keys import KeyStore, VirtualKey
from ..auth.tokens import MAX_INLINE_TOKEN_CHARS, TokenClaims, TokenError, TokenSigner
from ..config import Config, ModelConfig
from ..errors import StartupFailed, UpstreamError
from ..protocols.gemini import GEMINI, SetupLock, SetupRefused, parse_setup
from ..protocols.live import LIVE, StartRefused, parse_start
from ..protocols.live.messages import error_event as live_error_event
from ..protocols.realtime import REALTIME, token_session_update
from ..protocols.seam import ApiProtocol, ModelPolicy, UpstreamTarget
from ..providers import (
    LocalEndpoint,
    RealtimeRequest,
    Unsupported,
    call_upstream,
    live_target,
    provider_for,
    realtime_target,
)
from ..relay.dial import default_ssl_context, dial_upstream
from ..relay.handshake import AcceptedHandshake, ClientHandshake, PrefetchedLeg, deliver_rejection
from ..relay.plan import SessionLimits, SessionPlan, SessionPorts, new_session_id
from ..relay.predial import Predial
from ..relay.session import Session
from ..relay.translated import TranslatingLeg
from ..relay.wsleg import LegClosed, WebSocketLeg, clip_reason
from ..ledger import shipper_for
from ..ledger.shipper import FINAL_FLUSH_S
from ..ledger.registry import KeyRegistry
from ..spend.log import SpendLogWriter
from ..spend.pricing import UNPRICED, Price, price_for, table_price
from ..spend.budgets import period_account, record_audio_ms, team_account
from ..spend.records import BILLED_RECORDS, SessionMeta
from ..spend.scans import ScanSlots
from .calls import CallBroker
from .connections import ConnectionSlots, descriptor_cap
from .limits import TICK_S, Limits, book_of, key_terms, team_terms
from .listener import serve_realtime_listener
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .metrics_http import serve_metrics

log = logging.getLogger("rtproxy")

DialFn = Callable[..., Awaitable[WebSocketLeg]]

#: Set by ``rtproxy serve --workers N`` so its workers share one generated token secret.
WORKER_TOKEN_SECRET_ENV = "RTPROXY_WORKER_TOKEN_SECRET"
#: Largest session config a token may carry by reference (instructions and tools included).
MAX_TOKEN_SESSION_BYTES = 256 * 1024
#: Model names whose price lookup is remembered (as database_price's cache: sessions name
#: transcription models of their own; past it, the least recent is looked up again).
MAX_PRICED_NAMES = 256
#: The close a refused google-genai client gets (Google's policy-violation code), and the one a
#: gateway-side failure gets (internal error).
GEMINI_POLICY_CLOSE = 1008
GEMINI_INTERNAL_CLOSE = 1011
#: How long a refused google-genai client is given to send its setup before the close: the SDK
#: sends it right after the upgrade, and a close that overtakes it surfaces as a failed send
#: rather than as ``APIError(code, reason)``.
GEMINI_REFUSAL_WAIT_S = 2.0
#: How long the gateway remembers which key opened a GPT-Live session (its sideband and forks).
LIVE_OWNER_TTL_S = 24 * 3600.0
#: A stored token session config outlives its token by this much (clocks of several servers).
TOKEN_SESSION_SLACK_S = 30.0


class TokenStoreUnavailable(TokenError):
    """The state store could not keep a token's session config (``fail_closed``)."""


class TokenQuotaExceeded(TokenError):
    """The key has as many (or as large) stored token session configs as it may (429)."""


async def _refuse_live(leg: Any, refused: StartRefused) -> None:
    """A GPT-Live refusal after the upgrade: the API's error event, then a 4000 + status close."""
    try:
        await leg.send_text(live_error_event(refused.code, refused.message, "invalid_request_error",
                                             param=refused.param, client_event_id=refused.client_event_id))
    except LegClosed:
        pass
    await leg.close(4000 + refused.status, refused.message[:120])


def _any_model(name: str) -> bool:
    """A translated session's transcription model: the translator drops the name (Gemini and xAI
    transcribe with their own model, billed with the session), so no key is refused for it."""
    return True


def _records_view(request: HandshakeRequest) -> HandshakeRequest:
    """The upgrade request as a session opened after its first frame needs it: the listener frees
    the headers once the upgrade is accepted (:mod:`.listener`), and the records show the
    user agent."""
    return attrs.evolve(request, headers=tuple((k, v) for k, v in request.headers if k == "user-agent"))


def _json_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _gemini_close(status: int) -> int:
    """Google's close code for a refusal with this HTTP-style status."""
    return GEMINI_INTERNAL_CLOSE if status >= 500 else GEMINI_POLICY_CLOSE


class _GeminiOpened:
    """A google-genai client whose setup the gateway has read, presented to the session core as a
    pending handshake. A refusal from here on (the upstream unreachable, the gateway stopping)
    is a close with Google's code and the reason, and no frame before it: ``connect()`` takes
    any first frame as its setup's answer, and raises ``APIError(code, reason)`` only on a close."""

    def __init__(self, request: HandshakeRequest, leg: PrefetchedLeg) -> None:
        self.request = request
        self._leg = leg

    async def accept(self, subprotocol: str | None) -> PrefetchedLeg:
        return self._leg

    async def reject(self, status: int, body: bytes) -> None:
        error = (_json_object(body.decode("utf-8", "replace")) or {}).get("error")
        message = error.get("message", "") if isinstance(error, dict) else ""
        await self._leg.close(_gemini_close(status), clip_reason(str(message)))


async def _unbilled(record: dict[str, Any]) -> None:
    """A client's own sideband on a WebRTC call writes no records: the gateway's observer of the
    same call bills and records it (the same events, once)."""


#: How often the spend of keys and teams with a soft budget is read into /metrics.
SOFT_BUDGET_CHECK_S = 15.0


def _rtc_peer(secret: str, config: Config) -> Any:
    """The offline model's WebRTC peer process (not started yet), when a local model is configured."""
    if not any(m.provider == "local" for m in config.models):
        return None
    from ..offline.rtc_process import RtcPeerProcess

    return RtcPeerProcess(secret, config.local.stream_delay_ms / 1000.0, config.local.speech)

class Gateway:
    def __init__(self, config: Config, *, dial: DialFn = dial_upstream,
                 upstream_ssl_context: ssl.SSLContext | None = None, reuse_port: bool = False) -> None:
        self.config = config
        #: Bind the realtime port with SO_REUSEPORT (``--workers N``).
        self.reuse_port = reuse_port
        self.keys = KeyStore.from_config(config)
        self._dial = dial
        ca_file = config.server.upstream_ca_file
        # A CA file of the operator's is read now (a wrong path fails the start); the system's
        # CA bundle (some 30 ms to load) once the ports are open (_run_services), or by the first
        # TLS dial if that comes first.
        self._upstream_ssl: ssl.SSLContext | None = upstream_ssl_context or (
            default_ssl_context(str(config.resolve_path(ca_file))) if ca_file else None)
        secret = config.server.token_secret or os.environ.get(WORKER_TOKEN_SECRET_ENV)
        self.tokens = TokenSigner(secret.encode()) if secret else TokenSigner.generate()
        #: The offline model's secret: only this process can open sessions on it.
        self.local_secret = secrets.token_urlsafe(24)
        self.local_url: str | None = None
        self.realtime_port: int | None = None
        self.spend = SpendLogWriter(config.resolve_path(config.spend_log.path))
        self.limits = Limits(config)
        self.metrics = Metrics()
        self.metrics_port: int | None = None
        self.limits.on_error = self.metrics.state_store_errors.inc
        #: Client connections open in this process, both ports (see connections.py).
        self.connections = ConnectionSlots(descriptor_cap(config.server.max_connections))
        self.sessions: set[Session] = set()
        self._no_sessions = trio.Event()
        self._no_sessions.set()
        self._services: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._shutting_down = False
        self._warned_unpriced: set[str] = set()
        self.started = trio.Event()
        #: Set once every configured model's price is looked up (_look_up_prices).
        self.prices_known = trio.Event()
        #: Where prices are looked up: the exported table once loaded (_look_up_prices), else the database.
        self._database: Callable[[str, str], Price | None] | None = None
        #: Set when the services have stopped (the state store closed).
        self.stopped = trio.Event()
        #: The offline model's WebRTC peer (a child process started by the first local call).
        self.rtc_peer = _rtc_peer(self.local_secret, config)
        self.calls = CallBroker(self)
        #: Spend-log scans (/spend/logs, /spend/summary) and the processes that run them.
        self.scans = ScanSlots()
        #: Ships the spend log to the ledger (rtproxy/ledger; one process per log ships).
        self.shipper = shipper_for(config)
        #: Keeps the ledger's keys in self.keys (rtproxy/ledger/registry.py).
        self.registry = KeyRegistry(self.shipper.ledger, self.keys)
        self.limits.book = lambda: book_of(self.keys)
        self.limits.ledger = self.shipper.ledger  # the store's totals are rebuilt from it

    @property
    def upstream_ssl(self) -> ssl.SSLContext:
        if self._upstream_ssl is None:
            self._upstream_ssl = default_ssl_context()
        return self._upstream_ssl

    async def _load_upstream_ssl(self) -> None:
        if self._upstream_ssl is None:
            context = await trio.to_thread.run_sync(default_ssl_context)
            if self._upstream_ssl is None:
                self._upstream_ssl = context

    async def rtc_url(self) -> str:
        """The offline WebRTC peer's base URL (started now if need be). Raises UpstreamError."""
        if self.rtc_peer is None:
            raise UpstreamError("no local model is configured")
        return await self.rtc_peer.url()

    # -- services ------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the offline model (if any model uses it) and the realtime listener until shutdown."""
        cfg = self.config
        with trio.CancelScope() as scope:
            self._services = scope
            try:
                await self._run_services(cfg, task_status)
            finally:
                self.stopped.set()

    async def _run_services(self, cfg: Config, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.registry.prime()
            nursery.start_soon(self.registry.run)
            await self.limits.seed(self.spend.path)
            for model in cfg.models:
                # credentials a provider fetches (Vertex AI's OAuth token): before any session needs them
                provider = provider_for(model)
                try:
                    await provider.prepare(model)
                except Unsupported as exc:
                    raise StartupFailed(str(exc)) from None
                nursery.start_soon(provider.maintain, model)
            nursery.start_soon(self._housekeeping)
            nursery.start_soon(self.shipper.run)
            if any(m.provider == "local" for m in cfg.models):
                # imported here: a gateway of remote providers only never loads the offline model
                from ..offline.server import serve_offline_model

                port = await nursery.start(functools.partial(
                    serve_offline_model, "127.0.0.1", cfg.local.port, self.local_secret,
                    cfg.local.stream_delay_ms / 1000.0,
                    live_usage_interval_s=cfg.local.live_usage_interval_ms / 1000.0, speech=cfg.local.speech,
                    gemini_connection_limit_s=cfg.local.gemini_connection_limit_s,
                    gemini_go_away_lead_s=cfg.local.gemini_go_away_lead_s,
                    gemini_max_sessions=cfg.local.gemini_max_sessions))
                self.local_url = f"ws://127.0.0.1:{port}"
            if self.rtc_peer is not None:
                nursery.start_soon(self.rtc_peer.serve)
            if cfg.server.realtime_port >= 0:
                self.realtime_port = await nursery.start(functools.partial(
                    serve_realtime_listener, cfg.server, self.run_session, self.connections, cfg.server.host,
                    cfg.server.realtime_port,
                    reuse_port=self.reuse_port, ssl_context=self.server_ssl_context()))
            if cfg.server.metrics_port >= 0:
                self.metrics_port = await nursery.start(functools.partial(
                    serve_metrics, cfg.server.metrics_host, cfg.server.metrics_port, self._scrape,
                    CONTENT_TYPE_LATEST, reuse_port=self.reuse_port))
            # every model's price, looked up once the ports are open (the price database, some
            # 0.1 s and 20 MiB, loads in a thread): an unpriced model is still warned about at
            # start-up, and a session admitted meanwhile waits for it (_run_session)
            nursery.start_soon(self._look_up_prices)
            nursery.start_soon(self._load_upstream_ssl)
            self.started.set()
            task_status.started()

    async def _look_up_prices(self) -> None:
        """The price table (rtproxy/spend/price_table.py: the database's rows for the providers
        configured, exported by a child process, so the database never loads here), then every
        model's price from it. No table (the child failed): the database, in this process."""
        # every configured model's provider, priced by a table or not: the other models a session
        # names (transcription, delegation) are looked up under it
        providers = {"openai"} | {provider_for(m).price_provider(m) for m in self.config.models}
        providers.discard(UNPRICED)

        def look_up() -> None:
            from ..spend import price_table

            try:
                table = price_table.load(sorted(providers))
            except Exception:  # noqa: BLE001 - a bug or an odd host: priced as before, never down
                log.exception("the price table could not be loaded; the price database loads in-process")
                table = None
            if table is not None:
                self._database = functools.lru_cache(maxsize=MAX_PRICED_NAMES)(
                    functools.partial(table_price, table))
            for m in self.config.models:
                self.price_of(m)

        try:
            # a shutdown does not wait for a child still exporting (bounded by EXPORT_TIMEOUT_S)
            await trio.to_thread.run_sync(look_up, abandon_on_cancel=True)
        finally:
            self.prices_known.set()

    def _scrape(self) -> bytes:
        self.metrics.ledger(self.shipper.status())
        for session in list(self.sessions):
            self.flush_metrics(session)
        return self.metrics.exposition()

    async def _housekeeping(self) -> None:
        """Every TICK_S: notice a rotated spend log, renew leases, enforce budgets spent elsewhere,
        end the sessions of keys revoked or expired; soft budgets into the metrics."""
        soft_checked = 0.0
        try:
            while True:
                await trio.sleep(TICK_S)
                self.spend.check()
                for session in list(self.sessions):
                    self.flush_metrics(session)
                now = time.time()
                budget_keys = {a for s in self.sessions for a in self.limits.limited_accounts(
                    self.keys.by_name(s.plan.key.name) or s.plan.key)}
                lost = {lease.session_id: lease for lease in await self.limits.tick(budget_keys)}
                if now - soft_checked >= SOFT_BUDGET_CHECK_S:
                    soft_checked = now
                    await self.check_soft_budgets()
                for session in list(self.sessions):
                    gone = self.key_gone(session.plan.key, now)
                    if gone is not None:
                        session.stop(4401, *gone)
                for session in list(self.sessions):
                    lease = lost.get(session.id)
                    if lease is not None:
                        log.warning("session %s: its lease expired while this server stalled and key %r's "
                                    "limits are taken elsewhere now (%s); ending it", session.id, lease.key,
                                    lease.refusal.code)
                        session.stop(4429, "session_lease_lost", "this server could not renew the session's hold "
                                     f"on its key's limits in time, and they are taken now: {lease.refusal.message}")
                for session in list(self.sessions):
                    over = self.limits.over_limit(self.keys.by_name(session.plan.key.name) or session.plan.key)
                    if over is not None:
                        session.stop(4429, over.code, over.message)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self.config.state.timeout_s):
                await self.limits.aclose()
                await self.scans.aclose()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(FINAL_FLUSH_S + 1):
                    await self.shipper.stopped.wait()  # its last batch stored
                await self.shipper.ledger.aclose()

    async def check_soft_budgets(self) -> None:
        """The spend in their current period of every key and team with a soft budget, into
        ``/metrics`` (one store read for all of them, every :data:`SOFT_BUDGET_CHECK_S`)."""
        now = self.limits.clock()
        holders: dict[tuple[str, str], tuple[str, float]] = {}
        for key in self.keys:
            if key.soft_budget_usd is not None:
                holders[("key", key.name)] = (period_account(key.name, key_terms(key), now), key.soft_budget_usd)
            team = key.team
            if team is not None and team.soft_budget_usd is not None:
                holders[("team", team.name)] = (period_account(team_account(team.name), team_terms(key), now),
                                                team.soft_budget_usd)
        if not holders:
            return
        await self.limits.refresh(sorted({a for a, _ in holders.values()}))
        for (holder, name), (account, soft) in holders.items():
            spent = self.limits.spent.get(account, 0.0)
            self.metrics.budget_spend.labels(holder, name).set(spent)
            self.metrics.soft_budget_exceeded.labels(holder, name).set(1 if spent >= soft else 0)

    def key_gone(self, key: VirtualKey, now: float) -> tuple[str, str] | None:
        """Why a session of ``key`` may not go on (the error code and message it ends with): the
        key was revoked (or deleted) or has expired since the session began; None: it stands."""
        current = self.keys.by_name(key.name)
        if current is None or (current.source == "ledger" and current.sha256 != key.sha256
                               and not self.keys.accepts_digest(key.sha256, now)):
            return "key_revoked", f"key {key.name!r} was revoked: its sessions end"
        if current.expired(now):
            return "key_expired", f"key {key.name!r} has expired: its sessions end"
        return None

    def reopen_spend_log(self) -> None:
        """SIGHUP: look for a rotated spend log now."""
        self.spend.reopen()
        self.spend.check()

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``fn`` in the gateway's own nursery (main-port client writers; see asgi_leg)."""
        if self._nursery is None:
            raise RuntimeError("the gateway is not running")
        self._nursery.start_soon(fn, *args)

    def server_ssl_context(self) -> ssl.SSLContext | None:
        """TLS for a listener, from ``[server] tls_certfile`` / ``tls_keyfile`` (a new context each)."""
        s = self.config.server
        if s.tls_certfile is None or s.tls_keyfile is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.config.resolve_path(s.tls_certfile)), str(self.config.resolve_path(s.tls_keyfile)))
        return ctx

    @property
    def tls(self) -> bool:
        return self.config.server.tls_certfile is not None

    async def shutdown(self) -> None:
        """Close every open session (error event + 1001, records written), then stop services."""
        await self.drain()
        if self._services is not None:
            self._services.cancel()

    async def drain(self, message: str = "the gateway is shutting down") -> None:
        self._shutting_down = True
        for session in list(self.sessions):
            session.stop(1001, "server_shutdown", message)
        with trio.move_on_after(self.config.server.shutdown_grace_s):
            await self._no_sessions.wait()
        if self.sessions:
            log.warning("%d session(s) did not finish within the shutdown grace period", len(self.sessions))

    # -- sessions ------------------------------------------------------------------------------

    async def run_session(self, hs: ClientHandshake) -> None:
        """Admit, plan, relay and record one session; returns when it is over and recorded."""
        decision = admit(hs.request, self.keys, self.config, tokens=self.tokens, now=time.time())
        if not isinstance(decision, Admission) or not self._may_predial(decision):
            await self._run_session(hs, decision, None)
            return
        try:
            target = self.target_for(decision)
        except Unsupported:  # not dialed: refused when the session is planned, saying why
            await self._run_session(hs, decision, None)
            return
        # the upstream's handshake overlaps the state store's checks (relay/predial.py), in the
        # gateway's nursery: a nursery of its own would stay open, and cost some 1.2 KiB, for
        # as long as the session (S4)
        predial = Predial(self.dial, target)
        try:
            self.spawn(self._predial, predial)
        except RuntimeError:  # the services are stopping: dialed in turn, as without a predial
            await self._run_session(hs, decision, None)
            return
        try:
            await self._run_session(hs, decision, predial)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self.config.server.close_timeout_s + 1):
                await predial.discard()

    @staticmethod
    async def _predial(predial: Predial) -> None:
        try:
            await predial.run()
        except Exception:  # a bug in a dial must end its session, never the gateway's services
            log.exception("the upstream dial to %s failed", predial.target.api_base or predial.target.provider)

    def _may_predial(self, admission: Admission) -> bool:
        """A plain realtime session (GPT-Live reads its first frame, a WebRTC sideband asks its
        call, before they know their upstream), on a gateway with room, for a key expected in."""
        return (admission.api == "realtime" and admission.call_id is None and not self._shutting_down
                and self.translation_for(admission) is None
                and len(self.sessions) < self.config.server.max_concurrent_sessions
                and self.limits.expects_admission(admission.key))

    async def _run_session(self, hs: ClientHandshake, decision: Admission | Rejection, predial: Predial | None) -> None:
        session_id = new_session_id()
        if isinstance(decision, Admission):
            # a client's own sideband on its WebRTC call is not a session of its own: the call holds
            # the key's lease (through the gateway's observer), whatever watches it
            decision = await self.check_admission(decision, session_id, lease=decision.call_id is None)
        if isinstance(decision, Rejection):
            log.info("refused GET %s: %s (%d) key=%s ip=%s", hs.request.path[:80], decision.code, decision.status,
                     hs.request.key_name(self.keys, self.tokens), hs.request.client_ip or "-")
            await self._refuse(hs, decision)
            return
        initial: tuple[str, ...] = ()
        target: UpstreamTarget | None = None
        if decision.call_id is not None:
            sideband = await self._open_call_sideband(hs, decision)
            if sideband is None:
                await self.limits.release(session_id)
                return
            decision, target = sideband
        if decision.api == "live":
            opened = await self._open_live(hs, decision, session_id)
            if opened is None:
                await self.limits.release(session_id)
                return
            hs, decision, initial = opened
        if decision.api == "gemini":
            opened = await self._open_gemini(hs, decision)
            if opened is None:
                await self.limits.release(session_id)
                return
            hs, decision, initial = opened
        await self.prices_known.wait()  # set within a moment of start-up, before most sessions arrive
        try:
            planned = self.plan(decision, hs.request.client_ip, hs.request.user_agent, session_id=session_id,
                                initial_frames=initial)
        except Unsupported as exc:  # the provider cannot serve it now (no Vertex AI token yet), or not in this dialect
            await self.limits.release(session_id)
            await self._refuse(hs, Rejection(exc.status, exc.code, str(exc), decision.browser,
                                             decision.subprotocol))
            return
        plan = attrs.evolve(planned, listener=hs.request.listener)
        if target is not None:  # a client's sideband on a WebRTC call: billed by the gateway's own observer
            plan = attrs.evolve(plan, target=target, meta=attrs.evolve(plan.meta, transport="webrtc"))
        key = plan.key
        session = Session(plan, SessionPorts(
            dial=self.dial if predial is None else predial.take,
            write_record=functools.partial(self.write_record, key=key) if target is None else _unbilled,
            over_limit=lambda: self.limits.stop_reason(self.keys.by_name(key.name) or key),
            audio_left_ms=lambda: self.limits.audio_left_ms(self.keys.by_name(key.name) or key),
            upstream_session_opened=functools.partial(self._live_opened, key.name, plan.model.name)
            if decision.api == "live" and decision.live_op != "attach" else None))
        self.session_opened(session)
        try:
            await session.run(hs)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(self.config.state.timeout_s + 1):
                await self.session_closed(session)

    async def _open_live(self, hs: ClientHandshake, admission: Admission, session_id: str
                         ) -> tuple[ClientHandshake, Admission, tuple[str, ...]] | None:
        """A GPT-Live session's admission past the handshake: for a sideband or fork, who opened
        the session it names; for a primary session or fork, its first frame (the model, the
        delegated models), read before dialing. None when refused (the client was told why)."""
        key, browser, echo = admission.key, admission.browser, admission.subprotocol
        model = admission.model
        if admission.live_op != "start":
            owner = _json_object(await self.limits.live_session(admission.live_id or ""))
            owned = owner is not None and owner.get("key") == key.name
            model = self.config.model(str(owner.get("model"))) if owner and owned else None
            if model is None or model.api != "live":
                refusal = Rejection(404 if owner is None else 403, "session_not_found" if owner is None
                                    else "session_not_owned", f"no GPT-Live session {admission.live_id!r} was "
                                    "opened through this gateway with this key", browser, echo)
                log.info("refused GET %s: %s (%d) key=%s ip=%s", hs.request.path[:80], refusal.code, refusal.status,
                         key.name, hs.request.client_ip or "-")
                await deliver_rejection(hs, refusal, LIVE.error_event)
                return None
            if admission.live_op == "attach":  # a sideband sends no session.start
                return hs, attrs.evolve(admission, model=model), ()
        # the listener frees the upgrade's headers once it is accepted: keep what the records show
        request = _records_view(hs.request)
        leg = await hs.accept(echo)
        timeout = self.config.server.live_start_timeout_s
        with trio.move_on_after(timeout):
            try:
                batch = await leg.receive()
            except LegClosed:
                return None
            is_text, first = batch[0]
            try:
                if not is_text:
                    raise StartRefused(400, "invalid_frame", "the first frame must be a text frame (session.start)")
                fixed = model

                def served(name: str) -> ModelConfig | None:
                    found = self.config.model(name)
                    if fixed is not None:  # a token's model, or a fork's source's
                        return fixed if found is fixed or name in (fixed.name, fixed.target_model) else None
                    return found if found is not None and found.api == "live" else None

                start = parse_start(first, fork=admission.live_op == "fork", served=served,
                                    allows=key.allows_model, allows_delegation=key.allows_delegation_model)
            except StartRefused as refused:
                log.info("refused GET %s: %s (%d) key=%s ip=%s", hs.request.path[:80], refused.code, refused.status,
                         key.name, hs.request.client_ip or "-")
                await _refuse_live(leg, refused)
                return None
            resolved = start.model or model
            assert resolved is not None
            accepted = AcceptedHandshake(request, PrefetchedLeg(leg, batch[1:]), LIVE.error_event)
            return accepted, attrs.evolve(admission, model=resolved), (start.frame,)
        await _refuse_live(leg, StartRefused(408, "session_start_timeout",
                                             f"no session.start within {timeout:g} s of connecting"))
        return None

    async def _refuse(self, hs: ClientHandshake, rejection: Rejection) -> None:
        """Tell a client why it was refused, as its protocol can read it."""
        path = hs.request.path
        if gemini_path(path) is not None:
            await self._refuse_gemini(hs, rejection)
            return
        await deliver_rejection(hs, rejection, (LIVE if LIVE_PATH.match(path.rstrip("/")) else REALTIME).error_event)

    async def _refuse_gemini(self, hs: ClientHandshake, rejection: Rejection) -> None:
        """google-genai reads only the close (``connect()`` raises ``APIError(code, reason)``):
        the upgrade is accepted, the client's setup awaited (bounded), then the socket closed
        with 1008 (1011 for the gateway's own failures) and the reason, as Google refuses."""
        leg = await hs.accept(None)
        if not isinstance(hs, _GeminiOpened):  # its setup has not been read yet
            with trio.move_on_after(GEMINI_REFUSAL_WAIT_S):
                try:
                    await leg.receive()
                except LegClosed:
                    return
        await leg.close(_gemini_close(rejection.status), clip_reason(rejection.message))

    def served_gemini(self, name: str) -> ModelConfig | None:
        """Which configured model a google-genai client's model id names: a realtime model whose
        provider speaks Gemini Live, by the gateway's name or the provider's."""
        for m in self.config.models:
            if m.api == "realtime" and name in (m.name, m.target_model) and provider_for(m).upstream_api(m) == "gemini":
                return m
        return None

    async def _open_gemini(self, hs: ClientHandshake, admission: Admission
                           ) -> tuple[ClientHandshake, Admission, tuple[str, ...]] | None:
        """A google-genai client's session: its ``setup`` names the model; checked (the key's
        models, a Gemini upstream), rewritten to the provider's name, and sent first. None when
        refused (closed with Google's code and reason).

        A session opened with an ephemeral token opens the token's model only, with the setup the
        token locks (:class:`~rtproxy.protocols.gemini.SetupLock`; one minted on the auth_tokens
        route), and ends at the token's ``expireTime``."""
        # the listener frees the upgrade's headers once it is accepted: keep what the records show
        request = _records_view(hs.request)
        key, fixed = admission.key, admission.model
        lock = SetupLock.from_claims(admission.initial_session)
        leg = await hs.accept(None)
        timeout = self.config.server.live_start_timeout_s
        with trio.move_on_after(timeout):
            try:
                batch = await leg.receive()
            except LegClosed:
                return None
            first = batch[0][1]

            def allows(name: str) -> bool:  # a token opens its own model only
                return key.allows_model(name) and (fixed is None or name == fixed.name)

            try:
                start = parse_setup(first, served=self.served_gemini, allows=allows,
                                    upstream_model=lambda m: provider_for(m).setup_model(m), lock=lock,
                                    credential="key" if fixed is None else "ephemeral token")
            except SetupRefused as refused:
                log.info("refused GET %s: %s (%d) key=%s ip=%s", request.path[:80], refused.reason[:80],
                         refused.close_code, key.name, request.client_ip or "-")
                await leg.close(refused.close_code, clip_reason(refused.reason))
                return None
            opened = _GeminiOpened(request, PrefetchedLeg(leg, batch[1:]))
            # from here a refusal goes through the handshake's reject (a close, no frame): not a browser's
            return opened, attrs.evolve(admission, model=start.model, browser=False, initial_session=None,
                                        ends_at=lock.session_ends_at if lock is not None else None), (start.frame,)
        await leg.close(1007, f"no setup within {timeout:g} s of connecting")
        return None

    async def _open_call_sideband(self, hs: ClientHandshake, admission: Admission
                                  ) -> tuple[Admission, UpstreamTarget] | None:
        """A client's sideband on a WebRTC call: only the key that made the call may attach. None
        when refused (the client was told why)."""
        assert admission.call_id is not None
        owner = _json_object(await self.limits.call(admission.call_id))
        model = self.config.model(str(owner.get("model"))) if owner else None
        refusal = None
        if owner is None or model is None:
            refusal = Rejection(404, "call_not_found", f"no call {admission.call_id!r} was made through this gateway",
                                admission.browser, admission.subprotocol)
        elif owner.get("key") != admission.key.name:
            refusal = Rejection(403, "call_not_owned", "this call was made with another key", admission.browser,
                                admission.subprotocol)
        if refusal is not None:
            log.info("refused GET %s: %s (%d) key=%s ip=%s", hs.request.path[:80], refusal.code, refusal.status,
                     admission.key.name, hs.request.client_ip or "-")
            await deliver_rejection(hs, refusal, REALTIME.error_event)
            return None
        assert model is not None and owner is not None
        rtc = owner.get("rtc")
        try:
            upstream = call_upstream(model, self.local_endpoint(rtc if isinstance(rtc, str) else None))
        except Unsupported as exc:
            await deliver_rejection(hs, Rejection(400, "webrtc_unsupported", str(exc), admission.browser,
                                                  admission.subprotocol), REALTIME.error_event)
            return None
        return attrs.evolve(admission, model=model), upstream.sideband(admission.call_id)

    async def _live_opened(self, key_name: str, model_name: str, live_id: str) -> None:
        """Remember who opened this GPT-Live session: its sideband and forks are that key's only."""
        owner = json.dumps({"key": key_name, "model": model_name})
        if not await self.limits.keep_live_session(live_id, owner, LIVE_OWNER_TTL_S):
            log.warning("GPT-Live session %s: the state store is unavailable; its sideband and forks will be refused",
                        live_id)

    def plan(self, admission: Admission, client_ip: str = "", user_agent: str = "", *,
             session_id: str | None = None, initial_frames: tuple[str, ...] = ()) -> SessionPlan:
        """Resolve everything an admitted session needs into one frozen value."""
        model = admission.model
        assert model is not None, "a session is planned once its model is known"
        key = admission.key
        live = admission.api == "live"
        protocol: ApiProtocol = LIVE if live else GEMINI if admission.api == "gemini" else REALTIME
        target = self.live_target_for(admission) if live else self.target_for(admission)
        s = self.config.server
        session_id = session_id or new_session_id()
        meta = SessionMeta(
            session_id=session_id,
            key_name=admission.key.name,
            key_hash=admission.key.hash_prefix,
            model=model.name,
            provider=model.provider,
            upstream_model=model.target_model,
            api_base=target.api_base,
            store_prompts=self.store_prompts_for(admission.key),
            price=self.price_of(model),
            end_user=admission.end_user,
            tags=admission.tags,
            client_ip=client_ip,
            user_agent=user_agent,
            dialect=admission.dialect,
            credential="ephemeral_token" if admission.ephemeral else "key",
            call_type="live" if live else "gemini" if admission.api == "gemini" else
            "transcription" if admission.transcription else "realtime",
            model_price=functools.partial(self.named_model_price, model),
        )
        initial = token_session_update(admission.initial_session, admission.dialect,
                                       transcription=admission.transcription)
        frames = initial_frames + ((initial,) if initial is not None else ())
        return SessionPlan(
            session_id=session_id,
            key=admission.key,
            model=model,
            protocol=protocol,
            target=target,
            meta=meta,
            limits=SessionLimits(max_duration_s=self._max_duration_s(admission), idle_timeout_s=s.idle_timeout_s,
                                 close_timeout_s=s.close_timeout_s, settle_window_s=s.settle_window_s),
            dialect=admission.dialect,
            browser=admission.browser,
            subprotocol=admission.subprotocol,
            ephemeral=admission.ephemeral,
            initial_frames=frames,
            gate=protocol.new_gate(ModelPolicy(frozenset({model.name, model.target_model}), key.allows_model,
                                               _any_model if target.translation is not None
                                               else key.allows_transcription_model, key.allows_delegation_model)),
        )

    def _max_duration_s(self, admission: Admission) -> float:
        """The server's maximum session duration, or less when the session must end earlier
        (``ends_at``: a Gemini token's ``expireTime``)."""
        limit = self.config.server.max_session_duration_s
        if admission.ends_at is None:
            return limit
        left = max(admission.ends_at - time.time(), 0.001)  # 0 would mean no limit at all
        return min(limit, left) if limit else left

    async def check_admission(self, admission: Admission, session_id: str, *, lease: bool = True
                              ) -> Admission | Rejection:
        """Gateway-wide limits on top of :func:`admit`: shutdown, this process's capacity, then
        (with ``lease``) the shared ones (budget, per-key cap, total cap, rate), which also register
        the session's lease."""
        browser, echo = admission.browser, admission.subprotocol
        if self._shutting_down:
            return Rejection(503, "shutting_down", "the gateway is shutting down", browser, echo)
        if len(self.sessions) >= self.config.server.max_concurrent_sessions:
            return Rejection(503, "server_at_capacity", "the gateway is at its session limit; retry later",
                             browser, echo)
        if admission.session_ref is not None:
            stored = await self.limits.token_session(admission.session_ref)
            config = _json_object(stored)
            if config is None:
                return Rejection(401, "invalid_ephemeral_token",
                                 "this token's session config is not in the gateway's state store: it expired, or "
                                 "another gateway minted the token without sharing a state store with this one",
                                 browser, echo)
            admission = attrs.evolve(admission, initial_session=config, session_ref=None)
        if not lease:
            return admission
        refusal = await self.limits.admit(session_id, admission.key)
        if refusal is not None:
            status = 503 if refusal.code in ("server_at_capacity", "state_store_unavailable") else 429
            return Rejection(status, refusal.code, refusal.message, browser, echo)
        return admission

    async def mint_token(self, claims: TokenClaims) -> str:
        """An ``ek_`` token short enough for any listener: its session config inline when small,
        else kept in the state store until the token expires. Raises TokenError."""
        token = self.tokens.encode(claims)
        if len(token) <= MAX_INLINE_TOKEN_CHARS or not claims.session:
            return self.tokens.mint(claims)
        config = json.dumps(claims.session, separators=(",", ":"))
        if len(config.encode()) > MAX_TOKEN_SESSION_BYTES:
            raise TokenError(f"the session config is over {MAX_TOKEN_SESSION_BYTES // 1024} KiB; "
                             "send the rest with session.update once connected")
        ref = secrets.token_urlsafe(18)
        kept = await self.limits.keep_token_session(ref, config, claims.expires_at - time.time() + TOKEN_SESSION_SLACK_S,
                                                    claims.key_name)
        if kept is None:
            raise TokenStoreUnavailable("the gateway cannot reach its state store to keep this token's session "
                                        "config; retry later")
        if not kept:
            st = self.config.state
            raise TokenQuotaExceeded(
                f"key {claims.key_name!r} already has {st.max_token_sessions_per_key} token session config(s) or "
                f"{st.max_token_session_bytes_per_key // 1024} KiB of them stored; wait for tokens to expire, or "
                "mint with a smaller session and send the rest with session.update")
        return self.tokens.mint(attrs.evolve(claims, session=None, session_ref=ref))

    def _labels(self, session: Session) -> tuple[str, str, str]:
        plan = session.plan
        return plan.listener, plan.protocol.name, plan.model.name

    def flush_metrics(self, session: Session) -> None:
        """Add what the session relayed since the last flush (each tick, and at its end)."""
        frames, payload_bytes, connect_s, first_audio = session.take_counts()
        m = self.metrics
        m.relayed(frames, payload_bytes)
        if connect_s is not None:
            m.connect.labels(session.plan.model.provider).observe(connect_s)
        for delay in first_audio:
            m.first_audio.labels(session.plan.model.name).observe(delay)

    def session_opened(self, session: Session) -> None:
        self.metrics.sessions_open.labels(*self._labels(session)).inc()
        self.sessions.add(session)
        if self._no_sessions.is_set():
            self._no_sessions = trio.Event()

    async def session_closed(self, session: Session) -> None:
        self.metrics.sessions_open.labels(*self._labels(session)).dec()
        self.flush_metrics(session)
        self.sessions.discard(session)
        if not self.sessions:
            self._no_sessions.set()
        await self.limits.release(session.id)

    def local_endpoint(self, rtc_url: str | None = None) -> LocalEndpoint:
        """The offline model as its provider module sees it (``rtc_url``: its WebRTC peer, for calls)."""
        return LocalEndpoint(url=self.local_url, secret=self.local_secret, rtc_url=rtc_url)

    def live_target_for(self, admission: Admission) -> UpstreamTarget:
        assert admission.model is not None
        return live_target(admission.model, self.local_endpoint(), op=admission.live_op, live_id=admission.live_id,
                           graceful_close=admission.graceful_close)

    def target_for(self, admission: Admission) -> UpstreamTarget:
        """Where an admitted realtime (or native Gemini) session goes, with the translator an
        OpenAI client needs when the upstream speaks Gemini Live. Raises Unsupported."""
        assert admission.model is not None
        target = realtime_target(admission.model, RealtimeRequest(
            dialect=admission.dialect, forward_query=admission.forward_query, transcription=admission.transcription),
            self.local_endpoint())
        translation = self.translation_for(admission)
        if translation is None:
            return target
        return attrs.evolve(target, translation=translation, refresh=functools.partial(self.target_for, admission))

    def translation_for(self, admission: Admission) -> Callable[[], Any] | None:
        """The translator factory an OpenAI Realtime client's session needs on its model's upstream."""
        model = admission.model
        if admission.api != "realtime" or model is None or admission.call_id is not None:
            return None
        return provider_for(model).translation(model, admission.dialect)

    async def dial(self, target: UpstreamTarget) -> WebSocketLeg | TranslatingLeg:
        """The upstream leg of a session: dialed, and seen through a translator when its protocol
        is not the client's (reconnections dial the target built afresh)."""
        leg = await self._dial_once(target)
        if target.translation is None:
            return leg

        async def redial() -> WebSocketLeg:
            return await self._dial_once(target.refresh() if target.refresh is not None else target)
        return TranslatingLeg(leg, target.translation(), redial)

    async def _dial_once(self, target: UpstreamTarget) -> WebSocketLeg:
        s = self.config.server
        return await self._dial(target, max_message_bytes=s.max_message_bytes,
                                connect_timeout_s=s.upstream_connect_timeout_s,
                                close_timeout_s=s.close_timeout_s, ssl_context=self.upstream_ssl)

    # -- spend ---------------------------------------------------------------------------------

    def store_prompts_for(self, key: VirtualKey) -> bool:
        return self.config.spend_log.store_prompts if key.store_prompts is None else key.store_prompts

    def price_of(self, model: ModelConfig) -> Price | None:
        # the lookup is cached per model name
        price = price_for(model, provider_for(model).price_provider(model), self._database)
        if price is None and model.name not in self._warned_unpriced:
            self._warned_unpriced.add(model.name)
            log.warning("model %r (%s) has no price: its records get cost_usd null; add [models.price]",
                        model.name, model.target_model)
        return price

    def named_model_price(self, session_model: ModelConfig, name: str) -> Price | None:
        """The price of another model a session names (an input-transcription model, a delegated
        backend model): its ``[[models]]`` entry's, else the price database's for the session
        model's provider and dialect (the offline model speaking Gemini: Google's)."""
        configured = next((m for m in self.config.models if m.api != "realtime" and m.name == name), None)
        model = configured or ModelConfig(name=name, provider=session_model.provider,
                                          dialect=session_model.dialect)
        return self.price_of(model)

    def record_key(self, name: object, session_key: VirtualKey | None) -> VirtualKey | None:
        """The key a record is stamped and charged by: the key of that name as it stands now, or
        the session's own when the name no longer stands for it (revoked, rotated past its grace,
        or given to a new key): its last records still reach its team's and period's totals."""
        current = self.keys.by_name(name) if isinstance(name, str) else None
        if session_key is not None and (current is None or (
                current.sha256 != session_key.sha256 and not self.keys.accepts_digest(session_key.sha256, time.time()))):
            return session_key
        return current

    async def write_record(self, record: dict[str, Any], key: VirtualKey | None = None) -> None:
        """Append to the spend log, then add a billed record's cost to its key's shared total.

        Charging never depends on the write: a record the log cannot take (disk full, or one that
        cannot be serialised at all) is still charged, and counted in ``/health`` and ``/metrics``."""
        unwritable = self.spend.unwritable
        key = self.record_key(record.get("key_name"), key)
        if key is not None and (key.team is not None or key.user is not None or key.tags):
            fields = key.record_fields()
            if "tags" in fields and isinstance(record.get("tags"), list):  # the request's tags too
                fields["tags"] = list(dict.fromkeys([*fields["tags"], *record["tags"]]))  # type: ignore[misc]
            record.update(fields)
        if not self.spend.write(record):
            if self.spend.unwritable != unwritable:
                self.metrics.spend_log_unwritable.inc()
            else:
                self.metrics.spend_log_failures.inc()
        try:
            self.metrics.record(record)
        except Exception:  # a metric is not worth a charge: count what can be, bill regardless
            log.exception("metrics: could not count a %s record", str(record.get("record"))[:20])
        terms = key
        cost, key = record.get("cost_usd"), record.get("key_name")
        if record.get("record") in BILLED_RECORDS and isinstance(key, str):
            rid = record.get("id")
            cost = float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else 0.0
            team = record.get("team")
            await self.limits.charge(key, cost, rid if isinstance(rid, str) else None,
                                     audio_ms=record_audio_ms(record), terms=terms,
                                     team=team if isinstance(team, str) else None)

    def health(self) -> dict[str, Any]:
        spend_ok = self.spend.healthy
        return {
            "status": "ok" if spend_ok and self.limits.healthy and self.shipper.healthy and self.registry.healthy
            else "degraded",
            "sessions": len(self.sessions),
            "connections": self.connections.stats(),
            "realtime_port": self.realtime_port,
            "spend_log": {"ok": spend_ok, "written": self.spend.written, "failures": self.spend.failures,
                          "queued": self.spend.queued, "lost": self.spend.lost, "reopened": self.spend.reopened,
                          "unwritable": self.spend.unwritable,
                          "error": self.spend.last_error},
            "state": self.limits.health(),
            "ledger": self.shipper.status(),
            "keys": self.registry.status(),
        }
