"""The ASGI application: the Quart-Trio app for pages and REST, and the realtime route.

``create_app()`` returns an ASGI callable that hypercorn's trio worker serves:

    hypercorn -k trio 'rtproxy.app:create_app()'      # config from $RTPROXY_CONFIG or ./config.toml

WebSocket requests to a realtime path go straight to the session core (no Quart on the data
path); everything else (lifespan included) goes to the Quart-Trio app. When the app starts
serving, it starts the gateway's services (realtime listener, offline model) in its nursery;
when it stops, open sessions are closed with 1001 and their records written.

Every REST answer that is not a success is rtproxy's JSON error (``{"error": {type, code,
message}}``): Quart's own refusals (404, 405, 408, 413) included, and a bug is a 500
``internal_error`` whose traceback goes to the log only. Refusals (:data:`LOGGED_REFUSALS`) are
logged at INFO with their code, route and the key's name, never the key. A body is read only
once the caller is known where that matters (a WebRTC offer), at most so many bytes and within
``http_body_timeout_s``; spend-log scans run in child processes, bounded (rtproxy/spend/scans.py).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio
from quart import Response, g, jsonify, request, send_from_directory
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ..auth.admission import (
    END_USER_HEADER,
    GEMINI_TOKEN_DIALECT,
    REALTIME_PATHS,
    HandshakeRequest,
    gemini_rest_key,
    is_session_path,
    presented_key_name,
    transcription_route,
)
from ..auth.keys import VirtualKey
from ..auth.tokens import MAX_TTL_S, TokenClaims, TokenError
from ..config import Config, ModelConfig, load_config
from ..errors import StartupFailed
from ..protocols.gemini import TokenRefused, model_id, parse_token_request, token_response
from ..protocols.gemini.start import shown_model
from ..protocols.realtime.calls import MAX_OFFER_BODY_BYTES
from ..providers import provider_for
from ..spend.query import SpendFilter, parse_time
from ..spend.scan_worker import ScanRequest
from ..spend.scans import ScanFailed, ScanRefused
from . import admin_api
from .ledger_reads import MAX_LEDGER_PAGE, LedgerReads
from ..ledger.query import LEDGER_FILE_ID
from .asgi_leg import AsgiHandshake
from .calls import Answer as CallAnswer
from .gateway import Gateway, TokenQuotaExceeded, TokenStoreUnavailable
from .metrics import CONTENT_TYPE_LATEST
from .startup import banner, startup_failure

log = logging.getLogger("rtproxy.http")

#: Largest request body the REST endpoints read (a token's session config is at most 256 KiB).
MAX_REQUEST_BODY_BYTES = 1024 * 1024
#: REST answers logged (INFO) as refusals: the route, the error code, the key's name, never the key.
LOGGED_REFUSALS = frozenset({401, 403, 404, 408, 413, 429, 503})
#: Characters of a request path a log line shows (the rest is cut; unprintables become "?").
MAX_LOGGED_PATH_CHARS = 100
#: Quart's own errors (a route that does not exist, a wrong method, a body too large or too slow)
#: in rtproxy's JSON error shape: status -> (code, message).
HTTP_ERRORS = {
    400: ("invalid_request", "the request is malformed"),
    404: ("not_found", "there is nothing at this path"),
    405: ("method_not_allowed", "this path does not take that method"),
    408: ("body_timeout", "the request body did not arrive in time"),
    413: ("body_too_large", f"the request body is over {MAX_REQUEST_BODY_BYTES // 1024 // 1024} MiB"),
}
WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
DEFAULT_CONFIG = "config.toml"

#: Pages and API answers forbid framing and foreign scripts; the pages need only their origin
#: (and ws:/wss: to it, which 'self' does not cover in every browser).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def _may_use(key: VirtualKey, model: ModelConfig) -> bool:
    if model.api == "transcription":
        return key.allows_transcription_model(model.name)
    return key.allows_model(model.name)


#: Hex digits of the minting key's sha256 a token carries (rtproxy/auth/tokens.py key_digest).
TOKEN_DIGEST_CHARS = 16
#: An operation on a call (hangup, accept, reject, refer) carries a small JSON body at most.
MAX_CALL_OP_BODY_BYTES = 64 * 1024


def _json_error(status: int, code: str, message: str, error_type: str = "invalid_request_error") -> Response:
    response = jsonify({"error": {"type": error_type, "code": code, "message": message}})
    response.status_code = status
    return response


def _loggable(path: str) -> str:
    """A request path as a log line may hold it: clipped, one line (Quart has decoded %0A), and
    never a key: LiteLLM's ``/key/<key>/regenerate`` names one in its path."""
    if path.startswith("/key/") and path not in ("/key/generate", "/key/info", "/key/update", "/key/delete",
                                                 "/key/list", "/key/regenerate"):
        path = "/key/…" + ("/regenerate" if path.endswith("/regenerate") else "")
    return "".join(c if c.isprintable() else "?" for c in path[:MAX_LOGGED_PATH_CHARS])


async def _error_code(response: Response) -> str:
    """The ``error.code`` of one of rtproxy's JSON error answers, or the ``error.status`` of a
    Google-shaped one (``-`` for any other body)."""
    if response.mimetype != "application/json":
        return "-"
    try:
        error = json.loads(await response.get_data()).get("error", {})
        code = error.get("code")
        if not isinstance(code, str):
            code = error.get("status")
    except (ValueError, AttributeError):
        return "-"
    return code if isinstance(code, str) else "-"


def _google_error(refused: TokenRefused) -> Response:
    """A refusal on one of Google's REST routes, in Google's shape (google-genai raises
    ``ClientError`` / ``ServerError`` with its code, status and message)."""
    response = jsonify(refused.body())
    response.status_code = refused.status
    return response


class RtproxyApp:
    """ASGI entry point: realtime WebSockets to the session core, the rest to Quart."""

    def __init__(self, gateway: Gateway, quart: QuartTrio) -> None:
        self.gateway = gateway
        self.quart = quart

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and is_session_path(scope.get("path", "")):
            server = self.gateway.config.server
            hs = AsgiHandshake(scope, receive, send, send_timeout_s=server.client_send_timeout_s,
                               spawn=self.gateway.spawn)
            if await hs.start():
                try:
                    await self.gateway.run_session(hs)
                finally:
                    with trio.CancelScope(shield=True):
                        await hs.finish(server.close_timeout_s)
            return
        await self.quart(scope, receive, send)


def _presented_key(gateway: Gateway) -> VirtualKey | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return gateway.keys.lookup(token.strip())
    api_key = request.headers.get("api-key", "").strip()
    return gateway.keys.lookup(api_key) if api_key else None


async def _stop_on_signal(gateway: Gateway) -> None:
    """The hypercorn launch runs in one process (rtproxy/hypercorn_conf.py says why), where
    hypercorn itself has no graceful stop: on SIGTERM or SIGINT, close every session (1001, its
    records written; each spend-log line is in the kernel once written) and end the process."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:  # logrotate's postrotate, as for `rtproxy serve`
                gateway.reopen_spend_log()
                continue
            break
    await gateway.shutdown()
    with trio.move_on_after(gateway.config.state.timeout_s + 1):
        await gateway.stopped.wait()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class _Quart(QuartTrio):
    def log_exception(self, exc_info: Any) -> None:
        # a start-up failure is told in one line (startup.py), not as a traceback
        if not isinstance(exc_info[1], StartupFailed):
            super().log_exception(exc_info)


def build_quart(gateway: Gateway, *, standalone: bool = False, owns_services: bool = True) -> QuartTrio:
    """The pages and REST endpoints. ``standalone``: launched by hypercorn, not ``rtproxy serve``
    (the app then prints the banner, and exits 2 on a start-up failure). ``owns_services``: the
    app's lifespan starts and stops the gateway's services; ``rtproxy serve`` runs them itself,
    before the app is loaded (by the first HTTP request: front.py)."""
    quart = _Quart("rtproxy", static_folder=None)
    quart.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = gateway.config.server.shutdown_grace_s
    quart.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BODY_BYTES
    body_timeout_s = gateway.config.server.http_body_timeout_s
    # the routes read bodies with read_body() below; any read through Quart has the same deadline
    quart.config["BODY_TIMEOUT"] = body_timeout_s
    scans = gateway.scans

    @quart.before_serving
    async def start_services() -> None:
        if not owns_services:
            return
        try:
            await quart.nursery.start(gateway.run)
        except BaseException as exc:
            message = startup_failure(exc)
            if message is None or os.environ.get("RTPROXY_DEBUG") == "1":
                raise
            if standalone:
                # launched by hypercorn: say why in one line and end this worker with status 2,
                # which hypercorn's parent returns (it would go on serving without the gateway
                # if the failure only ended the app's lifespan: hypercorn swallows that, even
                # SystemExit). Nothing has started yet that would need closing.
                print(f"rtproxy: {message}", file=sys.stderr, flush=True)
                os._exit(2)
            raise StartupFailed(message) from None
        if standalone:
            print(banner(gateway.config, gateway), flush=True)
            quart.nursery.start_soon(_stop_on_signal, gateway)

    @quart.after_serving
    async def stop_services() -> None:
        if not owns_services:
            return
        await gateway.shutdown()
        await scans.aclose()

    def caller_name() -> str:
        """The name of the key the request's credential identifies, ``-`` when none (for logs)."""
        if g.get("key_name"):  # a route that authenticated its caller its own way (Google's)
            return str(g.key_name)
        credentials = tuple((k.lower(), v) for k, v in request.headers.items() if k.lower() in ("authorization", "api-key"))
        return presented_key_name(HandshakeRequest(request.path, "", credentials), gateway.keys, gateway.tokens)

    @quart.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        """Quart's own refusals (no route, a wrong method, a body too large or too slow) as JSON."""
        status = exc.code or 500
        code, message = HTTP_ERRORS.get(status) or ((exc.name or "error").lower().replace(" ", "_"), exc.name or "error")
        response = _json_error(status, code, message, "server_error" if status >= 500 else "invalid_request_error")
        for name, value in exc.get_headers():
            if name.lower() != "content-type":  # e.g. a 405's Allow
                response.headers[name] = value
        return response

    @quart.errorhandler(Exception)
    async def unexpected_error(exc: Exception) -> Response:
        """A bug answers rtproxy's JSON 500; the traceback goes to the log, never to the client."""
        log.error("%s %s failed", request.method, _loggable(request.path), exc_info=exc)
        return _json_error(500, "internal_error", "the gateway failed to answer this request (the error is logged)",
                           "server_error")

    @quart.after_request
    async def close_unread(response: Response) -> Response:
        # answered before its body was read whole (a 401 first, a 413, a 408): hypercorn closes
        # the connection (the rest is never read), so the answer says so, lest a client send its
        # next request on it
        has_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if has_body and not g.get("body_read", False):
            response.headers["Connection"] = "close"
        return response

    @quart.after_request
    async def log_refusal(response: Response) -> Response:
        # the SDKs show only "HTTP 401"; the operator's log says why, for which key (by name)
        if response.status_code in LOGGED_REFUSALS:
            log.info("refused %s %s: %s (%d) key=%s ip=%s", request.method, _loggable(request.path),
                     await _error_code(response), response.status_code, caller_name(), request.remote_addr or "-")
        return response

    @quart.after_request
    async def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        # Pages and their modules revalidate (an upgrade is seen at once); API answers are not kept.
        static = request.path in ("/", "/logs", "/keys", "/usage") or request.path.startswith(("/js/", "/css/"))
        response.headers["Cache-Control"] = "no-cache" if static else "no-store"
        return response

    def require_key() -> VirtualKey | Response:
        key = _presented_key(gateway)
        if key is None:
            has = bool(request.headers.get("Authorization") or request.headers.get("api-key"))
            if has:
                return _json_error(401, "invalid_api_key", "the API key is not valid for this gateway",
                                   "authentication_error")
            return _json_error(401, "missing_api_key", "no API key: send 'Authorization: Bearer <key>'",
                               "authentication_error")
        return key

    @quart.get("/")
    async def playground_page() -> Any:
        return await send_from_directory(WEB_DIR, "index.html")

    @quart.get("/logs")
    async def logs_page() -> Any:
        return await send_from_directory(WEB_DIR, "logs.html")

    @quart.get("/usage")
    async def usage_page() -> Any:
        return await send_from_directory(WEB_DIR, "usage.html")

    @quart.get("/keys")
    async def keys_page() -> Any:
        return await send_from_directory(WEB_DIR, "keys.html")

    @quart.get("/js/<path:path>")
    async def web_js(path: str) -> Any:
        return await send_from_directory(WEB_DIR / "js", path)  # safe_join: no way out of web/js

    @quart.get("/css/<path:path>")
    async def web_css(path: str) -> Any:
        return await send_from_directory(WEB_DIR / "css", path)

    @quart.get("/health")
    async def health() -> Any:
        return jsonify(gateway.health())

    @quart.get("/v1/models")
    async def models() -> Any:
        key = require_key()
        if isinstance(key, Response):
            return key
        data = [{"id": m.name, "object": "model", "created": 0, "owned_by": f"rtproxy:{m.provider}", "api": m.api}
                for m in gateway.config.models if _may_use(key, m)]
        return jsonify({"object": "list", "data": data})

    @quart.get("/v1/realtime/endpoints")
    async def endpoints() -> Any:
        try:  # the Host header is the client's: a bad one ("[::1", "a:x") names the defaults
            parts = urlsplit("//" + (request.host or "127.0.0.1"))
            host, main_port = parts.hostname or "127.0.0.1", parts.port
        except ValueError:
            host, main_port = "127.0.0.1", None
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if request.scheme in ("https", "wss") else "ws"
        listeners = []
        if gateway.realtime_port is not None:
            listeners.append({"name": "realtime listener", "port": gateway.realtime_port,
                              "url": f"{scheme}://{host}:{gateway.realtime_port}/v1/realtime"})
        main = f"{host}:{main_port}" if main_port else host
        listeners.append({"name": "main port", "port": main_port,
                          "url": f"{scheme}://{main}/v1/realtime"})
        out: dict[str, Any] = {
            "listeners": listeners,
            "paths": sorted(REALTIME_PATHS),
            "subprotocols": ["realtime", "openai-insecure-api-key.<key>", "openai-beta.realtime-v1",
                             "xai-client-secret.<ek_token>"],
        }
        key = _presented_key(gateway)
        if key is not None:
            models_out = []
            await gateway.prices_known.wait()  # the price table, loaded just after start-up
            for m in gateway.config.models:
                if _may_use(key, m):
                    price = gateway.price_of(m)
                    # upstream_api: what the upstream speaks ("realtime", or "gemini": translated
                    # for Realtime clients), for the playground's labels and transports
                    models_out.append({"id": m.name, "provider": m.provider, "api": m.api,
                                       "upstream_api": provider_for(m).upstream_api(m),
                                       "price_per_million_tokens": price.to_json() if price else None})
            out["models"] = models_out
        return jsonify(out)

    def minted_model(session: dict[str, Any], transcription: bool, key: VirtualKey) -> Any:
        """The model a token opens (a Response refusing it instead): ``session.model`` for a
        conversation; for a transcription session, the route its transcription model names."""
        if not transcription:
            model_name = session.get("model")
            if not isinstance(model_name, str) or not model_name:
                return _json_error(400, "missing_model", "name the model: session.model")
            model = gateway.config.model(model_name)
            if model is None or model.api == "transcription":
                return _json_error(404, "model_not_found", f"model {model_name[:100]!r} is not served by this gateway")
            if not key.allows_model(model.name):
                return _json_error(403, "model_not_allowed", f"this key may not use model {model.name!r}",
                                   "permission_error")
            return model
        audio_in = ((session.get("audio") or {}).get("input") or {}) if isinstance(session.get("audio"), dict) else {}
        named = ((audio_in.get("transcription") if isinstance(audio_in, dict) else None)
                 or session.get("input_audio_transcription") or {})
        name = named.get("model") if isinstance(named, dict) else None
        if name is not None and (not isinstance(name, str) or not key.allows_transcription_model(name)):
            return _json_error(403, "model_not_allowed", "this key may not use that transcription model",
                               "permission_error")
        served = any(m.name == name and m.api == "transcription" for m in gateway.config.models)
        routed = transcription_route(name if served else None, key, gateway.config)
        if isinstance(routed, tuple):
            status, code, message = routed
            return _json_error(status, code, message, "permission_error" if status == 403 else "invalid_request_error")
        return routed

    async def mint(shape: str, *, transcription_endpoint: bool = False) -> Any:
        key = require_key()
        if isinstance(key, Response):
            return key
        raw = await read_body(MAX_REQUEST_BODY_BYTES, "body_too_large",
                              f"the body is over {MAX_REQUEST_BODY_BYTES // 1024 // 1024} MiB")
        if isinstance(raw, Response):
            return raw
        try:
            body = json.loads(raw) if raw else {}
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            return _json_error(400, "invalid_json", "the body must be a JSON object")
        if shape == "ga":
            session = body.get("session") or {}
            expires = body.get("expires_after") or {}
        else:
            session = {k: v for k, v in body.items() if k != "client_secret"}
            secret = body.get("client_secret") or {}
            expires = (secret.get("expires_after") if isinstance(secret, dict) else None) or {}
        if not isinstance(session, dict) or not isinstance(expires, dict):
            return _json_error(400, "invalid_request", "session and expires_after must be objects")
        ttl = expires.get("seconds", gateway.config.server.token_ttl_s)
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not 10 <= ttl <= MAX_TTL_S:
            return _json_error(400, "invalid_expires_after", f"expires_after.seconds must be 10 to {MAX_TTL_S}")
        if expires.get("anchor", "created_at") != "created_at":
            return _json_error(400, "invalid_expires_after", "expires_after.anchor must be 'created_at'")
        transcription = transcription_endpoint or session.get("type") == "transcription"
        # xAI's body has no session (its client_secrets takes none): the token opens the realtime
        # model the session's URL names, among its key's (rtproxy/auth/admission.py)
        unbound = shape == "ga" and "session" not in body
        model = None if unbound else minted_model(session, transcription, key)
        if isinstance(model, Response):
            return model
        refusal = await gateway.limits.budget_refusal(key)
        if refusal is not None:
            return _json_error(429, refusal.code, refusal.message, "rate_limit_error")
        now = int(time.time())
        expires_at = now + int(ttl)
        config = {k: v for k, v in session.items() if k not in ("model", "type")}
        if model is not None and model.api == "live" and config:
            # a GPT-Live client sets its session in its own session.start; the token opens the model only
            return _json_error(400, "unknown_parameter", "a GPT-Live token carries no session config: "
                               "send it in session.start", )
        end_user = request.headers.get(END_USER_HEADER)
        try:
            token = await gateway.mint_token(TokenClaims(
                key_name=key.name, model=model.name if model is not None else "", expires_at=expires_at, issued_at=now,
                dialect=shape, end_user=end_user[:256] if end_user else None, session=config or None,
                key_digest=key.sha256[:TOKEN_DIGEST_CHARS]))
        except TokenStoreUnavailable as exc:
            return _json_error(503, "state_store_unavailable", str(exc), "server_error")
        except TokenQuotaExceeded as exc:
            return _json_error(429, "token_quota_exceeded", str(exc), "rate_limit_error")
        except TokenError as exc:
            return _json_error(413, "session_too_large", str(exc))
        described = {"id": "sess_rtp_" + secrets.token_hex(10), "object": "realtime.session",
                     **({"model": model.name} if model is not None else {}), "expires_at": expires_at, **config}
        if transcription:
            described["object"] = "realtime.transcription_session"
        if shape == "ga":
            kind = "transcription" if transcription else "live" if model is not None and model.api == "live" \
                else "realtime"
            response = jsonify({"value": token, "expires_at": expires_at, "session": {"type": kind, **described}})
        else:
            response = jsonify({**described, "client_secret": {"value": token, "expires_at": expires_at}})
        return response

    async def mint_gemini() -> Response:
        """google-genai's ``auth_tokens.create``: a gateway ``ek_`` token for the Gemini Live model
        ``bidiGenerateContentSetup.model`` names, answered in Google's shape (``name``:
        ``auth_tokens/ek_…``), with the setup it locks (rtproxy/protocols/gemini/tokens.py)."""
        headers = tuple((k.lower(), v) for k, v in request.headers.items())
        key = gemini_rest_key(HandshakeRequest(request.path, request.query_string.decode("latin-1"), headers),
                              gateway.keys)
        if key is None:
            return _google_error(TokenRefused(401, "UNAUTHENTICATED", "API key not valid for this gateway: send "
                                              "x-goog-api-key (google-genai sends its api_key so)"))
        g.key_name = key.name
        raw = await read_body(MAX_REQUEST_BODY_BYTES, "body_too_large",
                              f"the body is over {MAX_REQUEST_BODY_BYTES // 1024 // 1024} MiB")
        if isinstance(raw, Response):
            return raw
        try:
            body = json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError):
            return _google_error(TokenRefused(400, "INVALID_ARGUMENT", "the body is not JSON"))
        now = int(time.time())
        try:
            asked = parse_token_request(body, now=now, default_ttl_s=gateway.config.server.token_ttl_s,
                                        max_ttl_s=MAX_TTL_S)
        except TokenRefused as refused:
            return _google_error(refused)
        ident = model_id(asked.model)
        model = gateway.served_gemini(ident) if ident is not None else None
        if model is None:
            return _google_error(TokenRefused(404, "NOT_FOUND", f"{shown_model(asked.model)} is not served as a "
                                              "Gemini Live model by this gateway"))
        if not key.allows_model(model.name):
            return _google_error(TokenRefused(403, "PERMISSION_DENIED",
                                              f"this key may not use {shown_model(asked.model)}"))
        refusal = await gateway.limits.budget_refusal(key)
        if refusal is not None:
            return _google_error(TokenRefused(429, "RESOURCE_EXHAUSTED", refusal.message))
        end_user = request.headers.get(END_USER_HEADER)
        try:
            token = await gateway.mint_token(TokenClaims(
                key_name=key.name, model=model.name, expires_at=asked.new_session_expires_at, issued_at=now,
                dialect=GEMINI_TOKEN_DIALECT, end_user=end_user[:256] if end_user else None,
                session=asked.lock.claims(), key_digest=key.sha256[:TOKEN_DIGEST_CHARS]))
        except TokenStoreUnavailable as exc:
            return _google_error(TokenRefused(503, "UNAVAILABLE", str(exc)))
        except TokenQuotaExceeded as exc:
            return _google_error(TokenRefused(429, "RESOURCE_EXHAUSTED", str(exc)))
        except TokenError as exc:
            return _google_error(TokenRefused(400, "INVALID_ARGUMENT", str(exc)))
        return jsonify(token_response(token, asked))

    def answer(out: CallAnswer) -> Response:
        response = Response(out.body, status=out.status, content_type=out.content_type)
        for name, value in out.headers:
            response.headers[name] = value
        return response

    async def read_body(limit: int, code: str, message: str) -> bytes | Response:
        """The request body, whole: at most ``limit`` bytes (413 ``code`` beyond; at once when the
        Content-Length says so) within ``http_body_timeout_s`` of starting to read it (408 beyond).
        A body left unread closes its connection once answered (hypercorn): it holds no slot."""
        if (request.content_length or 0) > limit:
            return _json_error(413, code, message)
        data = bytearray()
        with trio.move_on_after(body_timeout_s):
            async for chunk in request.body:
                data += chunk
                if len(data) > limit:
                    return _json_error(413, code, message)
            g.body_read = True
            return bytes(data)
        return _json_error(408, "body_timeout", f"the request body did not arrive within {body_timeout_s:g} s")

    def request_headers() -> dict[str, str]:
        return {k.lower(): v for k, v in request.headers.items()}

    async def authenticated_body(headers: dict[str, str], limit: int, code: str, what: str) -> bytes | Response:
        """The key first (a virtual key or an ``ek_`` token: 401 before a byte of the body is
        read, so an unknown caller never makes the gateway read or parse one), then the body."""
        refused = gateway.calls.authenticate(headers)
        if refused is not None:
            return answer(refused)
        return await read_body(limit, code, f"{what} is over {limit // 1024} KiB")

    @quart.post("/v1/realtime/calls")
    @quart.post("/openai/v1/realtime/calls")
    async def create_call() -> Any:
        headers = request_headers()
        body = await authenticated_body(headers, MAX_OFFER_BODY_BYTES, "offer_too_large", "the offer")
        if isinstance(body, Response):
            return body
        return answer(await gateway.calls.create(headers, request.headers.get("Content-Type", ""),
                                                 body, request.args.get("model"), request.remote_addr or ""))

    @quart.post("/v1/live/sessions")
    @quart.post("/openai/v1/live/sessions")
    async def create_live_session() -> Any:
        headers = request_headers()
        body = await authenticated_body(headers, MAX_OFFER_BODY_BYTES, "offer_too_large", "the body")
        if isinstance(body, Response):
            return body
        return answer(await gateway.calls.create_live(headers, body, request.remote_addr or ""))

    async def operation(call_id: str, op: str, *, live: bool) -> Any:
        headers = request_headers()
        body = await authenticated_body(headers, MAX_CALL_OP_BODY_BYTES, "body_too_large", "the body")
        if isinstance(body, Response):
            return body
        return answer(await gateway.calls.operate(call_id, op, headers, body, request.headers.get("Content-Type", ""),
                                                  request.remote_addr or "", live=live))

    @quart.post("/v1/live/sessions/<session_id>/<op>")
    @quart.post("/openai/v1/live/sessions/<session_id>/<op>")
    async def live_session_operation(session_id: str, op: str) -> Any:
        return await operation(session_id, op, live=True)

    @quart.post("/v1/realtime/calls/<call_id>/<op>")
    @quart.post("/openai/v1/realtime/calls/<call_id>/<op>")
    async def call_operation(call_id: str, op: str) -> Any:
        return await operation(call_id, op, live=False)

    @quart.post("/v1/realtime/client_secrets")
    async def client_secrets() -> Any:
        return await mint("ga")

    @quart.post("/v1/realtime/sessions")
    async def beta_sessions() -> Any:
        return await mint("beta")

    @quart.post("/v1/realtime/transcription_sessions")
    async def beta_transcription_sessions() -> Any:
        return await mint("beta", transcription_endpoint=True)

    @quart.post("/v1/auth_tokens")
    @quart.post("/v1beta/auth_tokens")
    @quart.post("/v1alpha/auth_tokens")
    async def gemini_auth_tokens() -> Any:
        """google-genai's ``client.auth_tokens.create`` (``{base_url}/{api_version}/auth_tokens``)."""
        return await mint_gemini()

    ledger_reads = LedgerReads(gateway, _json_error)

    def require_admin() -> VirtualKey | Response:
        key = require_key()
        if isinstance(key, Response) or key.is_admin:
            return key
        return _json_error(403, "admin_only", "this route needs an admin key", "permission_error")

    @quart.get("/metrics")
    async def metrics() -> Any:
        """Prometheus text format, for admin keys (scrapers without a key: ``[server] metrics_port``)."""
        key = require_admin()
        if isinstance(key, Response):
            return key
        for session in list(gateway.sessions):  # what open sessions relayed since the last tick
            gateway.flush_metrics(session)
        return Response(gateway.metrics.exposition(), content_type=CONTENT_TYPE_LATEST)

    async def scanned(key: VirtualKey, scan: ScanRequest) -> Response:
        """A spend-log scan's JSON answer: read and encoded in a scan process, bounded per
        process and per key (rtproxy/spend/scans.py); a refusal says which bound, with Retry-After."""
        try:
            body = await scans.run(key.name, scan)
        except ScanFailed as exc:
            log.error("spend-log scan for key %s failed: %s", key.name, exc)
            return _json_error(503, "scan_failed", "the spend-log scan failed; retry later", "server_error")
        except ScanRefused as refused:
            response = _json_error(refused.status, refused.code, refused.message,
                                   "rate_limit_error" if refused.status == 429 else "server_error")
            response.headers["Retry-After"] = str(refused.retry_after_s)
            return response
        return Response(body, content_type="application/json")

    @quart.get("/spend/summary")
    async def spend_summary() -> Any:
        """The dashboard's figures: ``bucket`` (hour, day) × key × model (× provider with
        ``split=provider``), with the same key rules as ``/spend/logs`` (a user key sees its own)
        and its filters (``provider`` among them)."""
        key = require_key()
        if isinstance(key, Response):
            return key
        args = request.args
        bucket = args.get("bucket", "hour")
        if bucket not in ("hour", "day"):
            return _json_error(400, "invalid_bucket", "bucket is hour or day")
        key_prefix = args.get("key_prefix") or None
        if not key.is_admin and not key.name.casefold().startswith((key_prefix or "").casefold()):
            return _json_error(403, "forbidden", "a user key sees only its own records", "permission_error")
        since, until = parse_time(args.get("since")), parse_time(args.get("until"))
        if (args.get("since") and since is None) or (args.get("until") and until is None):
            return _json_error(400, "invalid_time", "since and until are ISO 8601 times, e.g. 2026-01-01T00:00:00Z")
        split = args.get("split", "")
        if split not in ("", "provider"):
            return _json_error(400, "invalid_split", "split is provider (rows split by provider too), or absent")
        flt = SpendFilter(key_name=None if key.is_admin else key.name, since=since, until=until,
                          key_prefix=key_prefix, model_prefix=args.get("model_prefix") or None,
                          provider=args.get("provider") or None)
        source = args.get("source", "ledger")
        if source not in ("ledger", "log"):
            return _json_error(400, "invalid_source", "source is ledger (every server's records, the default) "
                                                      "or log (this server's spend log, scanned)")
        if source == "ledger":
            answered = await ledger_reads.summary(flt, bucket, by_provider=split == "provider")
            if answered is not None:
                return answered
        return await scanned(key, ScanRequest("summary", str(gateway.spend.path), flt, bucket=bucket,
                                              by_provider=split == "provider"))

    @quart.get("/spend/totals")
    async def spend_totals() -> Any:
        """The Usage page's figures: totals over a period (``since``, ``until``; whole hours) and the
        top keys, teams, models or providers (``by``) by spend, from the ledger's rollups. A user key
        sees its own."""
        key = require_key()
        if isinstance(key, Response):
            return key
        args = request.args
        by = args.get("by", "key_name")
        if by not in ("key_name", "team", "model", "provider"):
            return _json_error(400, "invalid_by", "by is key_name, team, model or provider")
        since, until = parse_time(args.get("since")), parse_time(args.get("until"))
        if (args.get("since") and since is None) or (args.get("until") and until is None):
            return _json_error(400, "invalid_time", "since and until are ISO 8601 times, e.g. 2026-01-01T00:00:00Z")
        try:
            top = min(max(int(args.get("top", "10")), 1), 1000)
        except ValueError:
            return _json_error(400, "invalid_number", "top is a whole number")
        flt = SpendFilter(key_name=None if key.is_admin else key.name, since=since, until=until,
                          provider=args.get("provider") or None)
        answered = await ledger_reads.totals(flt, by, top=top)
        if answered is None:
            return _json_error(503, "ledger_unavailable", "the spend ledger cannot be reached; retry later",
                               "server_error")
        return answered

    @quart.get("/admin/sessions")
    async def admin_sessions() -> Any:
        key = require_admin()
        if isinstance(key, Response):
            return key
        return jsonify({"object": "list", "data": [s.summary() for s in gateway.sessions]})

    @quart.get("/spend/logs")
    async def spend_logs() -> Any:
        key = require_key()
        if isinstance(key, Response):
            return key
        args = request.args
        key_name = args.get("key_name")
        if not key.is_admin:
            key_prefix = args.get("key_prefix") or ""
            if key_name not in (None, key.name) or not key.name.casefold().startswith(key_prefix.casefold()):
                return _json_error(403, "forbidden", "a user key sees only its own records", "permission_error")
            key_name = key.name
        since, until = parse_time(args.get("since")), parse_time(args.get("until"))
        for name, raw, parsed in (("since", args.get("since"), since), ("until", args.get("until"), until)):
            if raw and parsed is None:
                return _json_error(400, "invalid_time", f"{name} must be an ISO-8601 time")
        source = args.get("source", "ledger")
        if source not in ("ledger", "log"):
            return _json_error(400, "invalid_source", "source is ledger (every server's records, the default) "
                                                      "or log (this server's spend log, scanned)")
        flt = SpendFilter(session_id=args.get("session_id"), key_name=key_name, model=args.get("model"),
                          record=args.get("record"), status=args.get("status"), since=since, until=until,
                          key_prefix=args.get("key_prefix") or None, model_prefix=args.get("model_prefix") or None,
                          provider=args.get("provider") or None)
        if source == "ledger" and args.get("file_id") in (None, LEDGER_FILE_ID):
            try:
                limit = int(args.get("limit", "100"))
                after = int(args["after"]) if "after" in args else None
            except ValueError:
                return _json_error(400, "invalid_number", "limit and after are whole numbers")
            cursor_text = args.get("cursor")
            if limit < 1 or (after is not None and not 0 <= after < 2 ** 62):
                return _json_error(400, "invalid_number", "limit must be at least 1, after a previous answer's "
                                                          "end_offset")
            answered = await ledger_reads.logs(flt, limit=min(limit, MAX_LEDGER_PAGE), cursor=cursor_text,
                                               after=after)
            if answered is not None:
                return answered
            if cursor_text is not None or after is not None:  # a ledger position means nothing in the log
                return _json_error(503, "ledger_unavailable", "the spend ledger cannot be reached: page again "
                                   "from the start (the log is read meanwhile)", "server_error")
        try:
            limit = int(args.get("limit", "100"))
            cursor = int(args["cursor"]) if "cursor" in args else None
            after = int(args["after"]) if "after" in args else None
        except ValueError:
            return _json_error(400, "invalid_number", "limit, cursor and after are whole numbers (source=log: "
                                                      "byte offsets in the log)")
        if limit < 1:
            return _json_error(400, "invalid_number", "limit must be at least 1")
        if (cursor is not None and cursor < 0) or (after is not None and after < 0):
            return _json_error(400, "invalid_number", "cursor and after are byte offsets in the log: 0 or more")
        return await scanned(key, ScanRequest("logs", str(gateway.spend.path), flt, limit=limit, cursor=cursor,
                                              after=after, file_id=args.get("file_id")))

    admin_api.register(quart, gateway, require_admin=require_admin, read_body=read_body, json_error=_json_error)
    return quart


def create_app(config: Config | None = None, *, gateway: Gateway | None = None,
               owns_services: bool = True) -> RtproxyApp:
    """The ASGI app for hypercorn. The config path comes from ``$RTPROXY_CONFIG`` when not given.
    ``owns_services``: as for :func:`build_quart` (with a ``gateway`` given)."""
    if gateway is None:
        if config is None:
            config = load_config(os.environ.get("RTPROXY_CONFIG", DEFAULT_CONFIG))
        standalone = Gateway(config)  # launched by hypercorn: the app prints the banner and exits 2 on failure
        return RtproxyApp(standalone, build_quart(standalone, standalone=True))
    return RtproxyApp(gateway, build_quart(gateway, owns_services=owns_services))
