"""Vertex AI: Gemini Live at
``wss://{location}-aiplatform.googleapis.com/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent``
(``location = "global"``: ``wss://aiplatform.googleapis.com/…``) with ``Authorization: Bearer
<OAuth access token>``, the model named in ``setup`` as
``projects/{project}/locations/{location}/publishers/google/models/{upstream_model}``.

Credentials come from the maintained ``google-auth`` library: a service-account key file
(``credentials_file``) or Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
``gcloud auth application-default login``, the metadata server on Google Cloud). Tokens last about
an hour. The gateway fetches one at start-up (:meth:`VertexProvider.prepare`: google-auth's
transport blocks, so in a worker thread, within :data:`TOKEN_TIMEOUT_S`) and
:meth:`VertexProvider.maintain` refreshes it :data:`REFRESH_AHEAD_S` before it expires, so building
a session's target never waits on Google. A refresh that fails is logged and retried while the
old token serves until it expires. Models with the same credentials share one token.

Like Google's own SDK, ``x-goog-user-project`` is sent only when the credentials have a quota
project (``GOOGLE_CLOUD_QUOTA_PROJECT``, or the ``quota_project_id`` of ADC's user credentials):
a service account bills its own project, and naming the model's project there would need the
``serviceusage.services.use`` permission the Vertex AI User role lacks.

No secret (the private key, a signed assertion, an access token) reaches a log line, an error
message or a record: failures are described from the exception's own message, scrubbed.

``google-auth`` is imported only when a Vertex model is configured. ``api_base`` replaces the
regional host (a test fake, a private endpoint).
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import re
import time
from typing import Any

import attrs
import trio

from ..config import ModelConfig
from ..protocols.seam import UpstreamTarget
from .base import (
    LocalEndpoint,
    RealtimeRequest,
    Unsupported,
    UpstreamApi,
    gemini_translation,
    unsupported,
    ws_base,
)

log = logging.getLogger("rtproxy.providers")

LIVE_PATH = "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: A token is refreshed this long before it expires (half its lifetime, for a short-lived one).
REFRESH_AHEAD_S = 300.0
#: One whole token fetch (loading the credentials, google-auth's own retries) must finish within this.
TOKEN_TIMEOUT_S = 30.0
#: Each HTTP request of a fetch (google-auth's default is 120 s).
HTTP_TIMEOUT_S = 10.0
#: After a failed refresh, the next try waits this long, doubling up to :data:`RETRY_MAX_S`.
RETRY_AFTER_S = 10.0
RETRY_MAX_S = 60.0
#: :meth:`VertexProvider.maintain` looks at the wall clock at least this often (a suspended host,
#: a stepped clock: the expiry is a wall-clock instant, trio's clock is monotonic).
WAKE_EVERY_S = 60.0
#: A token this close to its expiry is no longer given to a new session.
EXPIRY_MARGIN_S = 10.0
#: The lifetime assumed for a token whose expiry google-auth does not know.
DEFAULT_LIFETIME_S = 3600.0

#: What a secret looks like, should one appear in an exception's text: a PEM block (a private
#: key), a Google OAuth access or refresh token, a JWT (a signed assertion, an id token).
_SECRETS = re.compile(
    r"-----BEGIN[A-Z ]*-----.*?(?:-----END[A-Z ]*-----|$)"
    r"|\bya29\.[\w.~+/=-]+"
    r"|\b1//[\w.~+/=-]{10,}"
    r"|\beyJ[\w-]*\.[\w-]+\.?[\w-]*",
    re.DOTALL)


def _now() -> float:
    """Wall-clock seconds (the tests replace it): Google's expiry is a wall-clock instant."""
    return time.time()


def default_base(location: str) -> str:
    return "https://aiplatform.googleapis.com" if location == "global" else \
        f"https://{location}-aiplatform.googleapis.com"


def expiry_timestamp(expiry: datetime.datetime | None, now: float) -> float:
    """google-auth's ``Credentials.expiry`` (a *naive* datetime in UTC, or None: unknown) as epoch
    seconds. ``.timestamp()`` on the naive datetime would read it as local time."""
    if expiry is None:
        return now + DEFAULT_LIFETIME_S
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=datetime.UTC)
    return expiry.timestamp()


def scrub(text: str, *known: str) -> str:
    """``text`` on one line with anything secret-looking (and every ``known`` secret) replaced."""
    for secret in known:
        if secret:
            text = text.replace(secret, "[redacted]")
    return " ".join(_SECRETS.sub("[redacted]", text).split())


def describe(exc: BaseException, *known: str) -> str:
    """One line saying why a fetch failed, from the exception's own message, with no secret."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in ("google", "requests"):
        text = "google-auth is not installed (pip install 'google-auth[requests]')"
    elif isinstance(exc, OSError) and exc.filename:  # a missing or unreadable credentials file
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        # google-auth's errors carry the response data after the message: the message alone
        first = exc.args[0] if len(exc.args) > 1 and isinstance(exc.args[0], str) else str(exc)
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    text = scrub(text, *known)
    return text if len(text) <= 300 else text[:299] + "…"


@functools.cache
def _request_type() -> type:
    """google-auth's requests transport with every request bounded by :data:`HTTP_TIMEOUT_S`."""
    import google.auth.transport.requests

    class TimedRequest(google.auth.transport.requests.Request):  # type: ignore[misc]
        def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                     timeout: Any = None, **kwargs: Any) -> Any:
            if not isinstance(timeout, int | float) or timeout > HTTP_TIMEOUT_S:
                timeout = HTTP_TIMEOUT_S
            return super().__call__(url, method, body, headers, timeout, **kwargs)

    return TimedRequest


def _load(credentials_file: str | None) -> Any:
    import google.auth
    from google.oauth2 import service_account

    if credentials_file:
        credentials = service_account.Credentials.from_service_account_file(credentials_file, scopes=SCOPES)
        # the quota project ADC would take (google.auth.default applies it itself)
        return credentials.with_quota_project_from_environment()
    credentials, _project = google.auth.default(scopes=SCOPES)
    return credentials


def _fetch(credentials: Any, credentials_file: str | None) -> tuple[Any, str, datetime.datetime | None, str | None]:
    """In a worker thread: load the credentials (when not yet loaded) and refresh their token.
    Returns the credentials, the token, its expiry (naive UTC) and the credentials' quota project."""
    import requests

    if credentials is None:
        credentials = _load(credentials_file)
    with requests.Session() as session:
        credentials.refresh(_request_type()(session))
    token = credentials.token
    if not token or not isinstance(token, str):
        raise ValueError("google-auth returned no access token")
    return credentials, token, credentials.expiry, getattr(credentials, "quota_project_id", None) or None


@attrs.define
class _Token:
    """One credential source's current token (models with the same credentials share it)."""

    value: str = attrs.field(default="", repr=False)
    #: Wall-clock seconds: when the token expires, and when it is to be refreshed.
    expires_at: float = 0.0
    refresh_at: float = 0.0
    quota_project: str | None = None
    credentials: Any = attrs.field(default=None, repr=False)
    #: One fetch at a time.
    lock: trio.Lock = attrs.field(factory=trio.Lock, repr=False)
    #: The last failed fetch: when, and the error (shared with a caller that waited for it).
    failed_at: float = float("-inf")
    failure: str = ""

    def fresh(self, now: float) -> bool:
        return bool(self.value) and now < self.refresh_at


class _Joined(Unsupported):
    """The fetch another model's caller made for the same credentials failed while this one waited."""


class VertexProvider:
    name = "vertex"

    def price_provider(self, model: ModelConfig) -> str:
        return "google-vertex"

    def __init__(self) -> None:
        #: credential source -> its credentials and current token
        self._tokens: dict[str, _Token] = {}

    def upstream_api(self, model: ModelConfig) -> UpstreamApi:
        return "gemini"

    @staticmethod
    def _key(model: ModelConfig) -> str:
        if model.credentials_file:
            return f"file:{model.credentials_file}"
        return f"adc:{os.environ.get('GOOGLE_APPLICATION_CREDENTIALS', '')}"

    def _held(self, model: ModelConfig) -> _Token:
        return self._tokens.setdefault(self._key(model), _Token())

    @staticmethod
    def _source(model: ModelConfig) -> str:
        return f"service account file {model.credentials_file}" if model.credentials_file else \
            "Application Default Credentials"

    async def prepare(self, model: ModelConfig) -> None:
        """Fetch a token now unless a fresh one is held. Raises Unsupported (the credentials
        cannot be had: one line naming the model and the cause, with no secret)."""
        held = self._held(model)
        if not held.fresh(_now()):
            await self._refresh(model, held)

    async def _refresh(self, model: ModelConfig, held: _Token) -> bool:
        """Fetch a new token (False: another model with these credentials just did). Raises
        Unsupported, or :class:`_Joined` when a fetch for another model failed while this one waited."""
        asked = _now()
        async with held.lock:
            if held.fresh(_now()):
                return False
            if held.failed_at >= asked:
                raise _Joined(held.failure)
            try:
                with trio.fail_after(TOKEN_TIMEOUT_S):
                    credentials, token, expiry, quota = await trio.to_thread.run_sync(
                        _fetch, held.credentials, model.credentials_file, abandon_on_cancel=True)
            except trio.TooSlowError:
                held.credentials = None  # its abandoned thread may still be using them
                cause = f"no answer within {TOKEN_TIMEOUT_S:g} s"
            except Exception as exc:  # noqa: BLE001 (whatever google-auth raises: described, not kept)
                cause = describe(exc, held.value)
            else:
                now = _now()
                held.credentials, held.value, held.quota_project = credentials, token, quota
                held.expires_at = expiry_timestamp(expiry, now)
                lifetime = held.expires_at - now
                held.refresh_at = now + max(lifetime - REFRESH_AHEAD_S, lifetime / 2, RETRY_AFTER_S)
                return True
            held.failed_at = _now()
            held.failure = (f"cannot get a Vertex AI access token for model {model.name!r} "
                            f"({self._source(model)}): {cause}")
        raise Unsupported(held.failure)

    async def maintain(self, model: ModelConfig) -> None:
        """Run for the gateway's life: refresh the token ahead of its expiry. A failure is logged
        and retried (backing off) while the old token serves until it expires."""
        held = self._held(model)
        delay = RETRY_AFTER_S
        while True:
            due = held.refresh_at - _now()
            if due > 0:
                await trio.sleep(min(due, WAKE_EVERY_S))
                continue
            try:
                refreshed = await self._refresh(model, held)
            except _Joined:  # another model's loop tried these credentials just now, and said why
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            except Unsupported as exc:
                left = held.expires_at - _now() if held.value else 0.0
                if left > EXPIRY_MARGIN_S:
                    log.warning("%s; retrying in %g s (the current token expires in %.0f s)", exc, delay, left)
                else:
                    log.error("%s; retrying in %g s (sessions on model %r are refused meanwhile)",
                              exc, delay, model.name)
                await trio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            else:
                delay = RETRY_AFTER_S
                if refreshed:
                    log.info("refreshed the Vertex AI access token for model %r: it expires in %.0f s",
                             model.name, held.expires_at - _now())

    def realtime_target(self, model: ModelConfig, request: RealtimeRequest, local: LocalEndpoint) -> UpstreamTarget:
        held = self._tokens.get(self._key(model))
        if held is None or not held.value:
            raise Unsupported(f"no Vertex AI access token for model {model.name!r} yet")
        if held.expires_at - _now() <= EXPIRY_MARGIN_S:
            raise Unsupported(f"the Vertex AI access token for model {model.name!r} has expired and "
                              "could not be refreshed (the gateway's log says why)")
        assert model.location is not None
        path = ws_base(model.api_base or default_base(model.location)) + LIVE_PATH
        headers = [("Authorization", f"Bearer {held.value}")]
        if held.quota_project:
            headers.append(("x-goog-user-project", held.quota_project))
        return UpstreamTarget(url=path, headers=tuple(headers), provider=self.name, api_base=path)

    live_target = unsupported("GPT-Live sessions")
    calls = unsupported("WebRTC calls")

    def translation(self, model: ModelConfig, dialect: str) -> Any:
        # Vertex refuses an id on function responses: the translator leaves it out
        return gemini_translation(model, dialect, self.setup_model(model), vertex=True)

    def setup_model(self, model: ModelConfig) -> str:
        return f"projects/{model.project}/locations/{model.location}/publishers/google/models/{model.target_model}"


PROVIDER = VertexProvider()
