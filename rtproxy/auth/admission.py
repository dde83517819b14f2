"""Who may open which realtime session: a pure function of the handshake request.

``admit(request, keys, config)`` returns an :class:`Admission` or a :class:`Rejection`; it does
no I/O, so both listeners call it the same way and tests feed it plain values.

Credentials are read in this order: ``Authorization: Bearer <key>``, ``api-key: <key>``, the
subprotocol ``openai-insecure-api-key.<key>``, xAI's browser subprotocol
``xai-client-secret.<token>``; each may be a virtual key or an ephemeral ``ek_`` token
(:mod:`rtproxy.tokens`), but ``xai-client-secret.`` carries ephemeral tokens only (as xAI's does:
a key there is refused). A token opens only its own model (one minted without a model, as xAI's
``client_secrets`` body names none, opens the model the URL names among its key's) and only
before it expires. A client that authenticates through subprotocols (a browser: it cannot set
headers, nor read the HTTP status of a refused upgrade) is a *browser client*: its refusals are
delivered as an accepted socket, one ``error`` event and a close with code ``4000 + status``
(4401, 4403, 4404, 4429, 4502). When subprotocols were offered, exactly one is echoed:
``realtime`` if offered, else an offered ``xai-client-secret.ek_…`` (the browser needs its
protocol back, and xAI echoes it: it carries a short-lived token, never a key); never
``openai-insecure-api-key.…``.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal
from urllib.parse import parse_qsl

import attrs

from ..config import Config, ModelConfig
from .keys import KeyStore, VirtualKey
from .tokens import TOKEN_PREFIX, TokenClaims, TokenError, TokenSigner

Dialect = Literal["ga", "beta"]

#: The paths that open a realtime session, on both listeners.
#: The realtime WebSocket paths: OpenAI's, and Azure's (preview ``/openai/realtime``, GA ``/openai/v1/realtime``).
REALTIME_PATHS = frozenset({"/v1/realtime", "/realtime", "/openai/realtime", "/openai/v1/realtime"})
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."
#: xAI's browser subprotocol: an ephemeral token (a gateway-minted ``ek_…`` here), never a key.
XAI_TOKEN_SUBPROTOCOL_PREFIX = "xai-client-secret."
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
ECHO_SUBPROTOCOL = "realtime"
#: Model names are echoed into URLs and records: keep them to a safe alphabet and length.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
#: Query parameters passed on to the provider: only those it documents for the realtime route
#: (``intent=transcription``, a sideband's ``call_id``), spelt exactly. The gateway sets
#: ``model`` / Azure's ``deployment`` and ``api-version`` itself; every other parameter (a
#: ``model `` with a trailing space, an ``api-key``, anything unknown) is dropped.
FORWARDED_QUERY = frozenset({"intent"})
#: A WebRTC call's id, as ``?call_id=`` names it for a sideband.
CALL_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
#: GPT-Live's WebSocket paths (OpenAI's, and Azure's under /openai): the primary session, and an
#: existing session's sideband (``attach``) or fork, named by its ``live_…`` id.
LIVE_PATH = re.compile(r"^/(?:openai/)?v1/live/sessions(?:/(live_[A-Za-z0-9_-]{1,128})/(attach|fork))?$")


#: Google's Gemini Live paths (AI Studio), which google-genai clients pointed at the gateway dial:
#: every API version the SDKs use, and the path its ephemeral tokens take (``…Constrained``).
GEMINI_PATH = re.compile(r"^/ws/google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\.GenerativeService\."
                         r"BidiGenerateContent(Constrained)?$")
#: The form google-genai gives an ephemeral token (it takes the constrained path for such a key);
#: a gateway-minted token travels as ``auth_tokens/ek_…``.
GEMINI_TOKEN_PREFIX = "auth_tokens/"
#: The ``dialect`` claim of a token minted on Google's ``auth_tokens`` route: it opens google-genai
#: sessions only (its ``session`` claim is a Gemini setup lock, which no other API can read).
GEMINI_TOKEN_DIALECT = "gemini"
_SLASHES = re.compile(r"/{2,}")


def gemini_path(path: str) -> re.Match[str] | None:
    """The Gemini Live path ``path`` is (a base URL ending in ``/`` doubles the slash: folded)."""
    return GEMINI_PATH.match(_SLASHES.sub("/", path).rstrip("/"))


def is_session_path(path: str) -> bool:
    """Whether a request path opens a session (Realtime, GPT-Live or Gemini Live), on either listener."""
    path = path.rstrip("/") or "/"
    return path in REALTIME_PATHS or LIVE_PATH.match(path) is not None or gemini_path(path) is not None
#: Attribution headers set by the app (see docs/spend-records.md).
END_USER_HEADER = "x-rtproxy-end-user"
TAGS_HEADER = "x-rtproxy-tags"
_MAX_ATTRIBUTION_CHARS = 256


@attrs.frozen
class HandshakeRequest:
    """What a client sent to open a session, independent of the listener it came through."""

    path: str
    query_string: str
    #: Header names lower-cased, in the order received.
    headers: tuple[tuple[str, str], ...]
    client_ip: str = ""
    #: Which listener it came through: "realtime" (the realtime port), "main" (the main port's
    #: fast path) or "asgi" (a hypercorn launch); for metrics.
    listener: str = "realtime"

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query_string, keep_blank_values=True)

    @property
    def subprotocols(self) -> list[str]:
        offered: list[str] = []
        for k, v in self.headers:
            if k == "sec-websocket-protocol":
                offered.extend(p.strip() for p in v.split(",") if p.strip())
        return offered

    @property
    def user_agent(self) -> str:
        return (self.header("user-agent") or "")[:256]

    def key_name(self, keys: KeyStore, tokens: TokenSigner | None = None) -> str:
        """What a log line names the caller by: :func:`presented_key_name`."""
        return presented_key_name(self, keys, tokens)


@attrs.frozen
class Admission:
    key: VirtualKey
    model: ModelConfig | None
    dialect: Dialect
    browser: bool
    #: The subprotocol to echo in the 101 response (None when none was offered).
    subprotocol: str | None
    #: Query parameters to pass upstream besides the model (``intent``, ``call_id``, ...).
    forward_query: tuple[tuple[str, str], ...] = ()
    end_user: str | None = None
    tags: tuple[str, ...] = ()
    #: Opened with an ephemeral token (billed to ``key``, its parent).
    ephemeral: bool = False
    #: A session config carried by the token, sent upstream as ``session.update`` on open.
    initial_session: dict[str, Any] | None = None
    #: A token's session config kept in the state store (resolved by the gateway before planning).
    session_ref: str | None = None
    #: ``"transcription"`` for a transcription session (``?intent=transcription``): ``model`` is
    #: then the transcription model it is routed by; else ``"conversation"``.
    intent: Literal["conversation", "transcription"] = "conversation"
    #: ``"live"`` for a GPT-Live session: ``model`` is None until its first frame names it (or,
    #: for a sideband or fork, until the gateway looks up who opened ``live_id``).
    api: Literal["realtime", "live", "gemini"] = "realtime"
    live_op: Literal["start", "attach", "fork"] = "start"
    live_id: str | None = None
    #: A sideband asking for the WebSocket close handshake (``?graceful_close=true``).
    graceful_close: bool = False
    #: A WebRTC call's sideband (``/v1/realtime?call_id=…``): ``model`` is None until the gateway
    #: looks up who made the call (only that key may attach).
    call_id: str | None = None
    #: Unix time the session ends, whatever its duration (a Gemini token's ``expireTime``).
    ends_at: float | None = None

    @property
    def transcription(self) -> bool:
        return self.intent == "transcription"


@attrs.frozen
class Rejection:
    status: int
    #: OpenAI-style error code, e.g. ``invalid_api_key``.
    code: str
    message: str
    browser: bool
    subprotocol: str | None = None

    @property
    def close_code(self) -> int:
        """The WebSocket close code for browser clients: 4000 + the HTTP status."""
        return 4000 + self.status

    @property
    def error_type(self) -> str:
        return {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
            self.status, "invalid_request_error" if self.status < 500 else "server_error"
        )


def _xai_token(protocol: str) -> str | None:
    """The ephemeral token an ``xai-client-secret.ek_…`` subprotocol carries (None: not one)."""
    if protocol.startswith(XAI_TOKEN_SUBPROTOCOL_PREFIX + TOKEN_PREFIX):
        return protocol[len(XAI_TOKEN_SUBPROTOCOL_PREFIX):]
    return None


def select_subprotocol(offered: list[str]) -> str | None:
    """Echo ``realtime`` when offered, else an ``xai-client-secret.`` one carrying an ephemeral
    token (xAI's browser clients offer only that), else nothing; a key is never echoed."""
    if ECHO_SUBPROTOCOL in offered:
        return ECHO_SUBPROTOCOL
    return next((p for p in offered if _xai_token(p) is not None), None)


#: A credential from ``xai-client-secret.``: verified as an ephemeral token or refused.
_TOKEN_ONLY = "token-only"


def _credential(request: HandshakeRequest, offered: list[str]) -> tuple[str | None, bool | str]:
    """(the presented key, whether it came from a subprotocol: :data:`_TOKEN_ONLY` for one that
    may carry an ephemeral token only)."""
    auth = request.header("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip(), False
    api_key = request.header("api-key")
    if api_key and api_key.strip():
        return api_key.strip(), False
    for p in offered:
        if p.startswith(KEY_SUBPROTOCOL_PREFIX) and len(p) > len(KEY_SUBPROTOCOL_PREFIX):
            return p[len(KEY_SUBPROTOCOL_PREFIX):], True
    for p in offered:
        if p.startswith(XAI_TOKEN_SUBPROTOCOL_PREFIX) and len(p) > len(XAI_TOKEN_SUBPROTOCOL_PREFIX):
            return p[len(XAI_TOKEN_SUBPROTOCOL_PREFIX):], _TOKEN_ONLY
    return None, False


@attrs.frozen
class _Unverified:
    """Why a presented credential names no key (always a 401)."""

    code: str
    message: str
    status: int = 401


def _verify(token: str | None, keys: KeyStore, tokens: TokenSigner | None, now: float | None,
            token_only: bool = False) -> tuple[VirtualKey, TokenClaims | None] | _Unverified:
    """The key a presented credential identifies (with the token's claims when it is one);
    ``token_only``: an ephemeral token or nothing."""
    if token is None:
        return _Unverified("missing_api_key", "no API key: send 'Authorization: Bearer <key>' or the subprotocol "
                                              "'openai-insecure-api-key.<key>'")
    if token_only and (tokens is None or not token.startswith(TOKEN_PREFIX)):
        return _Unverified("invalid_ephemeral_token", "the xai-client-secret subprotocol carries an ephemeral token "
                           "(ek_…, from POST /v1/realtime/client_secrets), never an API key")
    if token.startswith(TOKEN_PREFIX) and tokens is not None:
        try:
            claims = tokens.verify(token, now=time.time() if now is None else now)
        except TokenError as exc:
            return _Unverified("invalid_ephemeral_token", str(exc))
        parent = keys.by_name(claims.key_name)
        if parent is None:
            return _Unverified("invalid_ephemeral_token", "the key that minted this token no longer exists")
        at = time.time() if now is None else now
        if parent.expired(at) or not keys.accepts_minter(parent, claims.key_digest, at):
            return _Unverified("invalid_ephemeral_token", "the key that minted this token was revoked, rotated "
                                                          "or has expired")
        return parent, claims
    key = keys.lookup(token)
    if key is None:
        return _Unverified("invalid_api_key", "the API key is not valid for this gateway")
    return key, None


def authenticate(request: HandshakeRequest, keys: KeyStore, *, tokens: TokenSigner | None = None,
                 now: float | None = None) -> VirtualKey | Rejection:
    """Only who is asking: the key the request's credential identifies (a virtual key, or the key
    that minted a valid ``ek_`` token), or the 401 :func:`admit` would give. It reads the headers
    alone, so a REST route checks it before reading a body (which an unknown caller may not make
    the gateway parse); :func:`admit` decides the rest."""
    token, from_subprotocol = _credential(request, request.subprotocols)
    verified = _verify(token, keys, tokens, now, token_only=from_subprotocol == _TOKEN_ONLY)
    if isinstance(verified, _Unverified):
        return Rejection(verified.status, verified.code, verified.message, browser=bool(from_subprotocol))
    return verified[0]


def presented_key_name(request: HandshakeRequest, keys: KeyStore, tokens: TokenSigner | None = None) -> str:
    """For a log line: the name of the key the request's credential identifies, or ``-`` when it
    names none (no credential, a wrong key, an invalid token). Never the credential itself."""
    if gemini_path(request.path) is not None:  # google-genai's credentials
        verified = _verify(_gemini_credential(request), keys, tokens, None)
        return "-" if isinstance(verified, _Unverified) else verified[0].name
    found = authenticate(request, keys, tokens=tokens)
    return found.name if isinstance(found, VirtualKey) else "-"


def _dialect(request: HandshakeRequest, offered: list[str]) -> Dialect:
    beta_header = request.header("openai-beta") or ""
    if BETA_SUBPROTOCOL in offered or "realtime=v1" in beta_header.replace(" ", ""):
        return "beta"
    if request.path.rstrip("/") == "/openai/realtime":
        # Azure's preview api-versions speak the beta shape, and its clients (livekit's Azure
        # mode) send no OpenAI-Beta header there; a GA api-version speaks GA
        version = dict(request.query).get("api-version", "")
        if "preview" in version:
            return "beta"
    return "ga"


def _clean_attribution(value: str | None) -> str | None:
    if value is None:
        return None
    value = "".join(ch for ch in value if ch.isprintable()).strip()[:_MAX_ATTRIBUTION_CHARS]
    return value or None


def admit(request: HandshakeRequest, keys: KeyStore, config: Config, *, tokens: TokenSigner | None = None,
          now: float | None = None) -> Admission | Rejection:
    """Decide whether this handshake may open a session, and how. ``now`` is the Unix time a token
    is checked against (None: the clock's; never a fixed default, under which no token expires)."""
    offered = request.subprotocols
    echo = select_subprotocol(offered)
    token, from_subprotocol = _credential(request, offered)
    has_auth_header = bool(request.header("authorization") or request.header("api-key"))
    browser = bool(from_subprotocol) or (bool(offered) and not has_auth_header)

    def reject(status: int, code: str, message: str) -> Rejection:
        return Rejection(status, code, message, browser=browser, subprotocol=echo)

    origin = request.header("origin")
    allowed = config.server.allowed_origins
    if allowed and origin is not None and origin not in allowed:
        # A page on another site must not open sessions with a visitor's credentials: refuse
        # before the upgrade (the page cannot read why, and need not).
        return Rejection(403, "origin_not_allowed", "this Origin may not open realtime sessions", browser=False)

    path = request.path.rstrip("/") or "/"
    if gemini_path(path) is not None:
        return _gemini_admission(request, keys, config, tokens, now)
    live = LIVE_PATH.match(path)
    if path not in REALTIME_PATHS and live is None:
        return reject(404, "not_found", f"no realtime endpoint at {path[:100]!r}; use /v1/realtime?model=...")

    query = request.query
    params = dict(query)
    for name in ("model", "deployment"):
        if len({v for k, v in query if k == name}) > 1:
            return reject(400, "ambiguous_model", f"{name} is given more than once, with different values")
    if path == "/openai/realtime":
        model_name = params.get("deployment") or params.get("model")
    else:
        model_name = params.get("model")

    verified = _verify(token, keys, tokens, now, token_only=from_subprotocol == _TOKEN_ONLY)
    if isinstance(verified, _Unverified):
        return reject(verified.status, verified.code, verified.message)
    key, claims = verified
    if claims is not None and claims.dialect == GEMINI_TOKEN_DIALECT:
        return reject(401, "invalid_ephemeral_token", "this token was minted on the auth_tokens route: it opens "
                      "google-genai (Gemini Live) sessions only")
    if claims is not None and claims.model:  # minted without one: the URL names it, among the key's models
        if model_name and model_name != claims.model:
            return reject(403, "model_not_allowed", f"this ephemeral token opens model {claims.model!r} only")
        model_name = claims.model

    if live is not None:
        return _live_admission(request, key, config, claims, live, browser, echo)
    if "call_id" in params:
        call_id = params["call_id"]
        if len({v for k, v in query if k == "call_id"}) > 1 or not CALL_ID.match(call_id):
            return reject(400, "invalid_call_id", "call_id must be one call id (letters, digits, '_' and '-')")
        if path not in ("/v1/realtime", "/openai/v1/realtime"):
            return reject(400, "invalid_call_id", "a call's sideband is /v1/realtime?call_id=<call_id>")
        return Admission(key=key, model=None, dialect="ga", browser=browser, subprotocol=echo,
                         end_user=_clean_attribution(request.header(END_USER_HEADER)), ephemeral=claims is not None,
                         call_id=call_id)
    transcription = params.get("intent") == "transcription"
    if claims is not None:
        # a token minted for a transcription model opens a transcription session, and only that
        minted = config.model(claims.model)
        transcription = minted is not None and minted.api == "transcription"
    if transcription:
        routed = transcription_route(model_name, key, config)
        if isinstance(routed, tuple):
            return reject(*routed)
        model = routed
    else:
        if not model_name:
            return reject(400, "missing_model", "name a model: /v1/realtime?model=<model>")
        if not _MODEL_NAME.match(model_name):
            return reject(400, "invalid_model", "the model name has characters that are not allowed")
        configured = config.model(model_name)
        if configured is None:
            return reject(404, "model_not_found", f"model {model_name!r} is not served by this gateway")
        model = configured
        if model.api != "realtime":
            return reject(400, "wrong_api", f"model {model.name!r} serves {model.api} sessions, not realtime "
                          f"conversations" + (": add ?intent=transcription" if model.api == "transcription" else ""))
        if not key.allows_model(model.name):
            return reject(403, "model_not_allowed", f"this key may not use model {model.name!r}")

    forward = tuple((k, v) for k, v in query if k in FORWARDED_QUERY and not (k == "intent" and claims is not None))
    if transcription and claims is not None:
        forward += (("intent", "transcription"),)
    tags_raw = _clean_attribution(request.header(TAGS_HEADER))
    tags = tuple(t.strip() for t in tags_raw.split(",") if t.strip())[:32] if tags_raw else ()
    end_user = _clean_attribution(request.header(END_USER_HEADER))
    if claims is not None and claims.end_user:
        end_user = claims.end_user  # minted for this end user: the browser cannot override it
    return Admission(
        key=key,
        model=model,
        dialect=_dialect(request, offered),
        browser=browser,
        subprotocol=echo,
        forward_query=forward,
        end_user=end_user,
        tags=tags,
        ephemeral=claims is not None,
        initial_session=claims.session if claims is not None else None,
        session_ref=claims.session_ref if claims is not None else None,
        intent="transcription" if transcription else "conversation",
    )


def _upstream_of(model: ModelConfig) -> tuple[str, str | None, str | None, str | None]:
    return model.provider, model.api_base, model.api_version, model.api_key


def transcription_route(named: str | None, key: VirtualKey, config: Config) -> ModelConfig | tuple[int, str, str]:
    """The ``api = "transcription"`` model a transcription session is routed by: the one named in
    the URL, else the key's only upstream for transcription. A refusal as (status, code, message)."""
    served = [m for m in config.models if m.api == "transcription"]
    if named:
        if not _MODEL_NAME.match(named):
            return 400, "invalid_model", "the model name has characters that are not allowed"
        model = next((m for m in served if m.name == named), None)
        if model is None:
            return 404, "model_not_found", f"transcription model {named!r} is not served by this gateway"
        if not key.allows_transcription_model(model.name):
            return 403, "model_not_allowed", f"this key may not use transcription model {model.name!r}"
        return model
    allowed = [m for m in served if key.allows_transcription_model(m.name)]
    if not allowed:
        if served:
            return 403, "model_not_allowed", "this key may use none of the gateway's transcription models"
        return 404, "model_not_found", "this gateway serves no transcription models ([[models]] api = \"transcription\")"
    if len({_upstream_of(m) for m in allowed}) > 1:
        # the session's model is named only after the socket opens: the upstream must be known now
        return 400, "missing_model", ("this gateway's transcription models are on several upstreams: name one, "
                                      "/v1/realtime?intent=transcription&model=<model>")
    return allowed[0]



def _opens(claims: TokenClaims) -> str:
    """What a token opens, for a refusal."""
    return f"model {claims.model!r}" if claims.model else "realtime sessions at /v1/realtime?model=…"


def _attribution(request: HandshakeRequest) -> tuple[str | None, tuple[str, ...]]:
    tags_raw = _clean_attribution(request.header(TAGS_HEADER))
    tags = tuple(t.strip() for t in tags_raw.split(",") if t.strip())[:32] if tags_raw else ()
    return _clean_attribution(request.header(END_USER_HEADER)), tags


def _gemini_credential(request: HandshakeRequest) -> str | None:
    """A google-genai client's key: ``x-goog-api-key`` (what the SDK sends), ``Authorization:
    Token|Bearer``, or ``?key=`` / ``?access_token=`` (raw clients, browsers); a gateway-minted
    ephemeral token in the SDK's ``auth_tokens/`` form is unwrapped."""
    found = request.header("x-goog-api-key")
    if not found:
        scheme, _, value = (request.header("authorization") or "").partition(" ")
        found = value.strip() if scheme.lower() in ("token", "bearer") else None
    if not found:
        params = dict(request.query)
        found = params.get("key") or params.get("access_token")
    if not found or not found.strip():
        return None
    found = found.strip()
    return found.removeprefix(GEMINI_TOKEN_PREFIX)


def _gemini_admission(request: HandshakeRequest, keys: KeyStore, config: Config, tokens: TokenSigner | None,
                      now: float | None) -> Admission | Rejection:
    """A google-genai client on Google's own Live path: the key is known, the model is not (it
    comes in the ``setup`` frame). Refusals are closes (google-genai reads no HTTP body): the
    socket is accepted and closed with 1008 and the reason."""

    def reject(status: int, code: str, message: str) -> Rejection:
        return Rejection(status, code, message, browser=True)

    verified = _verify(_gemini_credential(request), keys, tokens, now)
    if isinstance(verified, _Unverified):
        message = verified.message if verified.code != "missing_api_key" else \
            "no API key: send x-goog-api-key (google-genai sends its api_key so) or ?key="
        return reject(verified.status, verified.code, message)
    key, claims = verified
    model = None
    if claims is not None:
        model = config.model(claims.model)
        if model is None or model.api != "realtime":
            return reject(403, "model_not_allowed", f"this ephemeral token opens {_opens(claims)} only")
    end_user, tags = _attribution(request)
    if claims is not None and claims.end_user:
        end_user = claims.end_user
    # a token minted on the auth_tokens route carries its setup lock (inline, or kept in the state store)
    locking = claims if claims is not None and claims.dialect == GEMINI_TOKEN_DIALECT else None
    return Admission(key=key, model=model, dialect="ga", browser=True, subprotocol=None, end_user=end_user, tags=tags,
                     ephemeral=claims is not None, api="gemini",
                     initial_session=locking.session if locking is not None else None,
                     session_ref=locking.session_ref if locking is not None else None)


def gemini_rest_key(request: HandshakeRequest, keys: KeyStore) -> VirtualKey | None:
    """The virtual key a request to one of Google's REST routes (``auth_tokens``) presents, as
    google-genai sends it (:func:`_gemini_credential`); never an ephemeral token, which opens
    sessions only. None when it presents no valid key."""
    found = _gemini_credential(request)
    return keys.lookup(found) if found is not None and not found.startswith(TOKEN_PREFIX) else None


def _live_admission(request: HandshakeRequest, key: VirtualKey, config: Config, claims: Any, live: re.Match[str],
                    browser: bool, echo: str | None) -> Admission | Rejection:
    """A GPT-Live handshake: the key is known, the model is not (it comes in the first frame)."""
    live_id, op = live.group(1), live.group(2) or "start"
    model = None
    if claims is not None:
        # a token opens the one live model it was minted for; its first frame must name it
        model = config.model(claims.model)
        if model is None or model.api != "live":
            return Rejection(403, "model_not_allowed", f"this ephemeral token opens {_opens(claims)} only, "
                             "not GPT-Live sessions", browser=browser, subprotocol=echo)
    end_user, tags = _attribution(request)
    if claims is not None and claims.end_user:
        end_user = claims.end_user
    return Admission(
        key=key, model=model, dialect="ga", browser=browser, subprotocol=echo, end_user=end_user, tags=tags,
        ephemeral=claims is not None, api="live", live_op=op, live_id=live_id,  # type: ignore[arg-type]
        graceful_close=dict(request.query).get("graceful_close") == "true",
    )