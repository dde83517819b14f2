"""WebRTC calls through the gateway: the browser talks to the provider, the gateway authorizes,
bills and records the call.

``POST /v1/realtime/calls`` (a virtual key or an ``ek_`` token): the credential is checked before
the body is read (:meth:`CallBroker.authenticate`), then the offer
(:mod:`rtproxy.protocols.realtime.calls`), and the key admitted like a WebSocket session (model,
budget, per-key caps, rate, the session config's models), and the offer posted on with the
provider's credentials. The provider's SDP answer goes back (201) with a gateway-relative
``Location``, the call's owner is kept in the state store, and the gateway attaches its own
sideband (``/v1/realtime?call_id=…``) and runs the session core on it with a silent client leg
(:mod:`rtproxy.relay.observer`): the same response and session records as a WebSocket session,
marked ``"transport": "webrtc"``, budgets and the cut-offs applied.

The observer fails closed: a call the gateway can no longer watch is a call it can no longer
bill, so when the sideband cannot attach, drops, or is cut off (budget, maximum duration,
shutdown), the gateway hangs the call up. Only the provider closing the sideband normally (the
call ended) leaves it be.

``POST /v1/realtime/calls/{call_id}/{hangup|accept|reject|refer}`` is passed on for the key that
made the call only (any instance sharing the state store knows it).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

import attrs
import trio

from ..auth.admission import Admission, HandshakeRequest, Rejection, admit, authenticate
from ..errors import UpstreamError
from ..protocols.live import StartRefused, parse_start
from ..protocols.realtime.calls import (
    CALL_ID,
    CALL_OPS,
    MAX_OFFER_BODY_BYTES,
    OfferError,
    call_id_of,
    check_sdp,
    parse_offer,
    provider_body,
)
from ..providers import CallUpstream, LocalEndpoint, Unsupported, call_upstream
from ..relay.observer import ObserverHandshake
from ..relay.plan import SessionPlan, SessionPorts, new_session_id
from ..relay.session import Session
from .lazy_import import import_off_loop

if TYPE_CHECKING:  # httpx (and the CLI it imports, some 60 ms) loads with the first call made
    import httpx

log = logging.getLogger("rtproxy.calls")

#: How long the provider may take to answer an offer or an operation on a call.
PROVIDER_TIMEOUT_S = 30.0
#: How long the gateway remembers who made a call beyond the longest a session may last.
CALL_OWNER_SLACK_S = 600.0
#: A call kept in the state store this long when sessions have no maximum duration.
CALL_OWNER_TTL_S = 24 * 3600.0
#: Of a provider's error message, this much reaches the client (after redaction).
MAX_PROVIDER_MESSAGE_CHARS = 300
#: Headers of the request that admission reads (credentials, origin, attribution).
_ADMISSION_HEADERS = ("authorization", "api-key", "origin", "x-rtproxy-end-user", "x-rtproxy-tags", "user-agent")
#: The headers that carry a credential.
_CREDENTIAL_HEADERS = ("authorization", "api-key")
LIVE_ID = re.compile(r"^live_[A-Za-z0-9_-]{1,128}$")
_SECRET_LIKE = re.compile(r"(sk-[A-Za-z0-9_*-]{4,}|ek_[A-Za-z0-9_.-]{8,}|Bearer\s+\S+)")


@attrs.frozen
class Answer:
    """What the REST route answers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _error(status: int, code: str, message: str, error_type: str = "invalid_request_error") -> Answer:
    return Answer(status, json.dumps({"error": {"type": error_type, "code": code, "message": message}}).encode())


def _refusal(rejection: Rejection) -> Answer:
    error_type = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        rejection.status, "server_error" if rejection.status >= 500 else "invalid_request_error")
    return _error(rejection.status, rejection.code, rejection.message, error_type)


def _provider_message(response: httpx.Response) -> str:
    """The provider's error message, clipped, with anything key-like cut out."""
    try:
        message = str(response.json().get("error", {}).get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    return _SECRET_LIKE.sub("[redacted]", message)[:MAX_PROVIDER_MESSAGE_CHARS]


def _from_provider(response: httpx.Response, what: str) -> Answer:
    """A provider's refusal as the client is told it (never its body as is: it may echo secrets)."""
    status = response.status_code
    if status in (401, 403):
        return _error(502, "upstream_auth_failed",
                      f"the provider refused the gateway's credentials for {what} (HTTP {status})", "server_error")
    if status == 429:
        return _error(429, "upstream_rate_limited", "the provider is rate limiting; retry later", "rate_limit_error")
    if 400 <= status < 500:
        detail = _provider_message(response)
        return _error(status if status in (400, 404, 409, 422) else 400, "upstream_refused",
                      f"the provider refused {what} (HTTP {status})" + (f": {detail}" if detail else ""))
    return _error(502, "upstream_failed", f"the provider failed {what} (HTTP {status})", "server_error")


class CallGateway(Protocol):
    """What the broker needs of the gateway (:class:`rtproxy.server.gateway.Gateway`)."""

    keys: Any
    tokens: Any
    config: Any
    limits: Any
    local_secret: str

    @property
    def upstream_ssl(self) -> Any: ...
    async def rtc_url(self) -> str: ...
    def local_endpoint(self, rtc_url: str | None = None) -> LocalEndpoint: ...
    async def check_admission(self, admission: Admission, session_id: str) -> Admission | Rejection: ...
    def plan(self, admission: Admission, client_ip: str = "", user_agent: str = "", *,
             session_id: str | None = None) -> SessionPlan: ...
    def spawn(self, fn: Any, *args: Any) -> None: ...
    async def dial(self, target: Any) -> Any: ...
    async def write_record(self, record: dict[str, Any]) -> None: ...
    def session_opened(self, session: Session) -> None: ...
    async def session_closed(self, session: Session) -> None: ...


class CallBroker:
    """The gateway's WebRTC calls: offers in, observers out."""

    def __init__(self, gateway: CallGateway) -> None:
        self.gateway = gateway
        #: Observers running in this process, by call id.
        self.observers: dict[str, Session] = {}

    def authenticate(self, headers: dict[str, str]) -> Answer | None:
        """The 401 for a request whose credential names no key (a virtual key, or a valid ``ek_``
        token), None when it names one. The REST routes ask it before reading a body: the offer
        is parsed only for a caller the gateway knows. :meth:`create` admits the rest."""
        if not (headers.get("authorization") or headers.get("api-key")):
            return _error(401, "missing_api_key", "no API key: send 'Authorization: Bearer <key or ek_ token>'",
                          "authentication_error")
        request = HandshakeRequest(path="/v1/realtime", query_string="",
                                   headers=tuple((k, v) for k, v in headers.items() if k in _CREDENTIAL_HEADERS))
        found = authenticate(request, self.gateway.keys, tokens=self.gateway.tokens, now=time.time())
        return _refusal(found) if isinstance(found, Rejection) else None

    # -- POST /v1/realtime/calls -----------------------------------------------------------------

    async def create(self, headers: dict[str, str], content_type: str, body: bytes, query_model: str | None,
                     client_ip: str) -> Answer:
        gw = self.gateway
        unknown = self.authenticate(headers)
        if unknown is not None:
            return unknown
        try:
            offer = parse_offer(content_type, body, query_model)
        except OfferError as exc:
            return _error(exc.status, exc.code, exc.message)
        request = HandshakeRequest(
            path="/v1/realtime", query_string=urlencode({"model": offer.model}) if offer.model else "",
            headers=tuple((k, v) for k, v in headers.items() if k in _ADMISSION_HEADERS), client_ip=client_ip,
            listener="webrtc")
        decision = admit(request, gw.keys, gw.config, tokens=gw.tokens, now=time.time())
        if isinstance(decision, Rejection):
            return _refusal(decision)
        if decision.transcription or decision.call_id is not None or decision.api != "realtime":
            return _error(400, "wrong_api", "a WebRTC call is a realtime conversation: name a realtime model")
        model = decision.model
        assert model is not None
        try:
            upstream = call_upstream(model, gw.local_endpoint(await gw.rtc_url() if model.provider == "local" else None))
        except Unsupported as exc:
            return _error(400, "webrtc_unsupported", str(exc))
        except UpstreamError as exc:  # the offline model's WebRTC peer did not start
            return _error(502, "upstream_unreachable", str(exc), "server_error")
        session_id = new_session_id()
        admitted = await gw.check_admission(decision, session_id)
        if isinstance(admitted, Rejection):
            return _refusal(admitted)
        return await self._holding_lease(session_id, 201, self._offer(admitted, offer, upstream, session_id, request))

    async def _holding_lease(self, session_id: str, started: int, answering: Awaitable[Answer]) -> Answer:
        """``answering``'s answer; unless it is ``started`` (the call or session is on), the
        admission's lease goes back at once: refused, or failed on the way (an exception too)."""
        answer: Answer | None = None
        try:
            answer = await answering
        finally:
            if answer is None or answer.status != started:
                with trio.CancelScope(shield=True):
                    await self.gateway.limits.release(session_id)
        return answer

    async def _offer(self, admission: Admission, offer: Any, upstream: CallUpstream, session_id: str,
                     request: HandshakeRequest) -> Answer:
        gw = self.gateway
        model = admission.model
        assert model is not None
        await gw.prices_known.wait()  # as a session's plan (gateway._run_session)
        plan = gw.plan(admission, request.client_ip, request.header("user-agent") or "", session_id=session_id)
        if offer.session and plan.gate is not None:
            refusal = plan.gate.check(json.dumps({"type": "session.update", "session": offer.session}).encode())
            if refusal is not None:
                error = json.loads(refusal).get("error", {})
                return _error(403, str(error.get("code", "model_not_allowed")), str(error.get("message", "")),
                              "permission_error")
        content_type, body = provider_body(offer, model.target_model, admission.initial_session)
        httpx = await import_off_loop("httpx")
        try:
            async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT_S, verify=gw.upstream_ssl) as http:
                response = await http.post(upstream.calls_url, content=body, headers={
                    **dict(upstream.headers), "Content-Type": content_type, "Accept": "application/sdp"})
        except httpx.HTTPError as exc:
            log.warning("call offer for %s: the provider is unreachable: %s", model.name, type(exc).__name__)
            return _error(502, "upstream_unreachable", f"the provider is unreachable ({type(exc).__name__})",
                          "server_error")
        if response.status_code not in (200, 201):
            log.info("call offer for %s refused by the provider: HTTP %d", model.name, response.status_code)
            return _from_provider(response, "the call")
        call_id = call_id_of(response.headers.get("location"))
        answer_sdp = response.content
        if call_id is None or not answer_sdp.startswith(b"v=0"):
            return _error(502, "upstream_bad_answer", "the provider answered the offer without a call id or SDP",
                          "server_error")
        ttl = (gw.config.server.max_session_duration_s + CALL_OWNER_SLACK_S
               if gw.config.server.max_session_duration_s else CALL_OWNER_TTL_S)
        owner = json.dumps({"key": admission.key.name, "model": model.name,
                            "rtc": await gw.rtc_url() if model.provider == "local" else None})
        if not await gw.limits.keep_call(call_id, owner, ttl):
            log.warning("call %s: the state store is unavailable; its hang-up and sidebands will be refused", call_id)
        observed = attrs.evolve(
            plan, target=upstream.sideband(call_id), listener="webrtc", browser=False, subprotocol=None, observer=True,
            initial_frames=(), meta=attrs.evolve(plan.meta, transport="webrtc", api_base=upstream.calls_url),
            limits=attrs.evolve(plan.limits, idle_timeout_s=0.0, settle_window_s=0.0))
        gw.spawn(self._observe, observed, call_id, upstream)
        log.info("call %s created: key=%s model=%s session=%s", call_id, admission.key.name, model.name, session_id)
        return Answer(201, answer_sdp, "application/sdp", (("Location", f"/v1/realtime/calls/{call_id}"),))

    async def _observe(self, plan: SessionPlan, call_id: str, upstream: CallUpstream) -> None:
        gw = self.gateway
        key = plan.key
        session = Session(plan, SessionPorts(dial=gw.dial, write_record=functools.partial(gw.write_record, key=key),
                                             over_limit=lambda: gw.limits.stop_reason(key),
                                             audio_left_ms=lambda: gw.limits.audio_left_ms(key)))
        hs = ObserverHandshake(HandshakeRequest(path="/v1/realtime", query_string=f"call_id={call_id}", headers=(),
                                                client_ip=plan.meta.client_ip, listener="webrtc"))
        if upstream.live:
            # GPT-Live's sideband never sees session.started: the id came with the POST's answer
            session.collector.upstream_session_id = call_id  # type: ignore[misc]
        self.observers[call_id] = session
        gw.session_opened(session)
        try:
            await session.run(hs)
        finally:
            self.observers.pop(call_id, None)
            with trio.CancelScope(shield=True):
                with trio.move_on_after(gw.config.state.timeout_s + 1):
                    await gw.session_closed(session)
                end = session.end
                if end is None or end.by != "upstream" or end.code != 1000:
                    # unwatched is unbilled: a call the gateway stopped watching is hung up
                    log.info("call %s: the observer ended (%s %s); hanging the call up", call_id,
                             end.by if end else "?", end.code if end else "?")
                    await self._provider_op(upstream, call_id, "hangup")

    async def _provider_op(self, upstream: CallUpstream, call_id: str, op: str, body: bytes = b"",
                           content_type: str = "application/json") -> httpx.Response | None:
        httpx = await import_off_loop("httpx")
        try:
            async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT_S, verify=self.gateway.upstream_ssl) as http:
                return await http.post(upstream.op_url(call_id, op), content=body,
                                       headers={**dict(upstream.headers), "Content-Type": content_type})
        except httpx.HTTPError as exc:
            log.warning("call %s: %s could not reach the provider (%s)", call_id, op, type(exc).__name__)
            return None

    # -- POST /v1/live/sessions (GPT-Live over WebRTC) ------------------------------------------------

    async def create_live(self, headers: dict[str, str], body: bytes, client_ip: str) -> Answer:
        """``{session, transport: {type: "webrtc", sdp}}``: the POST starts the session (there is
        no session.start on the data channel); the gateway watches it through ``…/{id}/attach``."""
        gw = self.gateway
        unknown = self.authenticate(headers)
        if unknown is not None:
            return unknown
        if len(body) > MAX_OFFER_BODY_BYTES:
            return _error(413, "offer_too_large", f"the body is over {MAX_OFFER_BODY_BYTES // 1024} KiB")
        try:
            request_body = json.loads(body)
        except (ValueError, RecursionError):
            return _error(400, "invalid_json", "the body must be JSON: {session, transport: {type, sdp}}")
        transport = request_body.get("transport") if isinstance(request_body, dict) else None
        session = request_body.get("session") if isinstance(request_body, dict) else None
        if not isinstance(transport, dict) or transport.get("type") != "webrtc":
            return _error(400, "unsupported_transport", "the gateway serves GPT-Live's WebRTC transport here "
                          "(transport.type 'webrtc'); WebSocket sessions open on /v1/live/sessions directly")
        if not isinstance(session, dict):
            return _error(400, "invalid_value", "session must be an object")
        try:
            sdp = check_sdp(str(transport.get("sdp") or ""))
        except OfferError as exc:
            return _error(exc.status, exc.code, exc.message)
        request = HandshakeRequest(path="/v1/live/sessions", query_string="",
                                   headers=tuple((k, v) for k, v in headers.items() if k in _ADMISSION_HEADERS),
                                   client_ip=client_ip, listener="webrtc")
        decision = admit(request, gw.keys, gw.config, tokens=gw.tokens, now=time.time())
        if isinstance(decision, Rejection):
            return _refusal(decision)
        key, fixed = decision.key, decision.model

        def served(name: str) -> Any:
            found = gw.config.model(name)
            if fixed is not None:  # an ek_ token's model
                return fixed if found is fixed or name in (fixed.name, fixed.target_model) else None
            return found if found is not None and found.api == "live" else None

        try:
            start = parse_start(json.dumps({"type": "session.start", "session": session}), fork=False, served=served,
                                allows=key.allows_model, allows_delegation=key.allows_delegation_model)
        except StartRefused as refused:
            return _error(refused.status, refused.code, refused.message,
                          "permission_error" if refused.status == 403 else "invalid_request_error")
        model = start.model
        assert model is not None
        try:
            upstream = call_upstream(model, gw.local_endpoint(await gw.rtc_url() if model.provider == "local" else None),
                                     live=True)
        except Unsupported as exc:
            return _error(400, "webrtc_unsupported", str(exc))
        except UpstreamError as exc:
            return _error(502, "upstream_unreachable", str(exc), "server_error")
        session_id = new_session_id()
        admitted = await gw.check_admission(attrs.evolve(decision, model=model), session_id)
        if isinstance(admitted, Rejection):
            return _refusal(admitted)
        forwarded = {"session": json.loads(start.frame)["session"], "transport": {"type": "webrtc", "sdp": sdp}}
        return await self._holding_lease(session_id, 200,
                                         self._start_live(admitted, forwarded, upstream, session_id, request))

    async def _start_live(self, admission: Admission, forwarded: dict[str, Any], upstream: CallUpstream,
                          session_id: str, request: HandshakeRequest) -> Answer:
        gw = self.gateway
        model = admission.model
        assert model is not None
        httpx = await import_off_loop("httpx")
        try:
            async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT_S, verify=gw.upstream_ssl) as http:
                response = await http.post(upstream.calls_url, json=forwarded, headers=dict(upstream.headers))
        except httpx.HTTPError as exc:
            return _error(502, "upstream_unreachable", f"the provider is unreachable ({type(exc).__name__})",
                          "server_error")
        if response.status_code not in (200, 201):
            return _from_provider(response, "the GPT-Live session")
        try:
            answered = response.json()
            live_id = answered["session"]["id"]
            answer_sdp = answered["transport"]["sdp"]
        except (ValueError, KeyError, TypeError):
            live_id = answer_sdp = None
        if not isinstance(live_id, str) or not LIVE_ID.match(live_id) or not isinstance(answer_sdp, str):
            return _error(502, "upstream_bad_answer", "the provider answered without a session id or SDP",
                          "server_error")
        owner = json.dumps({"key": admission.key.name, "model": model.name,
                            "rtc": await gw.rtc_url() if model.provider == "local" else None})
        if not await gw.limits.keep_live_session(live_id, owner, CALL_OWNER_TTL_S):
            log.warning("GPT-Live session %s: the state store is unavailable; its sidebands will be refused", live_id)
        await gw.prices_known.wait()  # as a session's plan (gateway._run_session)
        plan = gw.plan(admission, request.client_ip, request.header("user-agent") or "", session_id=session_id)
        observed = attrs.evolve(
            plan, target=upstream.sideband(live_id), listener="webrtc", browser=False, subprotocol=None, observer=True,
            initial_frames=(), meta=attrs.evolve(plan.meta, transport="webrtc", api_base=upstream.calls_url),
            limits=attrs.evolve(plan.limits, idle_timeout_s=0.0, settle_window_s=0.0))
        gw.spawn(self._observe, observed, live_id, upstream)
        log.info("GPT-Live session %s started over WebRTC: key=%s model=%s", live_id, admission.key.name, model.name)
        return Answer(200, json.dumps({"session": answered["session"],
                                       "transport": {"type": "webrtc", "sdp": answer_sdp}}).encode())

    # -- POST /v1/realtime/calls/{call_id}/{op} ------------------------------------------------------

    async def operate(self, call_id: str, op: str, headers: dict[str, str], body: bytes, content_type: str,
                      client_ip: str, *, live: bool = False) -> Answer:
        gw = self.gateway
        if op not in CALL_OPS:
            return _error(404, "not_found", f"calls have no {op[:40]!r} operation")
        if not (LIVE_ID if live else CALL_ID).match(call_id):
            return _error(400, "invalid_call_id", "not a call id" if not live else "not a GPT-Live session id")
        owner, answer = await self.owner(call_id, headers, client_ip, live=live)
        if answer is not None:
            return answer
        assert owner is not None
        model = gw.config.model(str(owner.get("model")))
        if model is None:
            return _error(404, "call_not_found", "the model of this call is no longer served")
        rtc = owner.get("rtc")
        try:
            upstream = call_upstream(model, gw.local_endpoint(rtc if isinstance(rtc, str) else None), live=live)
        except Unsupported as exc:
            return _error(400, "webrtc_unsupported", str(exc))
        response = await self._provider_op(upstream, call_id, op, body, content_type or "application/json")
        if response is None:
            return _error(502, "upstream_unreachable", "the provider is unreachable", "server_error")
        if response.status_code >= 300:
            return _from_provider(response, f"{op} of the call")
        log.info("call %s: %s by key %s", call_id, op, owner.get("key"))
        return Answer(200, b"", "application/json")

    async def owner(self, call_id: str, headers: dict[str, str], client_ip: str, *, live: bool = False
                    ) -> tuple[dict[str, Any] | None, Answer | None]:
        """Who made ``call_id``, if the presented credential is that key; else the refusal."""
        gw = self.gateway
        path, query = (f"/v1/live/sessions/{call_id}/attach", "") if live else \
            ("/v1/realtime", urlencode({"call_id": call_id}))
        request = HandshakeRequest(path=path, query_string=query,
                                   headers=tuple((k, v) for k, v in headers.items() if k in _ADMISSION_HEADERS),
                                   client_ip=client_ip, listener="webrtc")
        decision = admit(request, gw.keys, gw.config, tokens=gw.tokens, now=time.time())
        if isinstance(decision, Rejection):
            return None, _refusal(decision)
        stored = await (gw.limits.live_session if live else gw.limits.call)(call_id)
        try:
            owner = json.loads(stored) if stored else None
        except ValueError:
            owner = None
        if not isinstance(owner, dict):
            return None, _error(404, "call_not_found", f"no call {call_id!r} was made through this gateway")
        if owner.get("key") != decision.key.name:
            return None, _error(403, "call_not_owned", "this call was made with another key", "permission_error")
        return owner, None
