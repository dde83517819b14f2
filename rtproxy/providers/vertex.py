"""Vertex AI: Gemini Live at
``wss://{location}-aiplatform.googleapis.com/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent``
(``location = "global"``: ``wss://aiplatform.googleapis.com/…``) with ``Authorization: Bearer
<OAuth access token>``, the model named in ``setup`` as
``projects/{project}/locations/{location}/publishers/google/models/{upstream_model}``.

Credentials come from the maintained ``google-auth`` library: a service-account file
(``credentials_file``) or Application Default Credentials. Tokens last about an hour: the gateway
fetches one at start-up (:meth:`VertexProvider.prepare`, in a worker thread: google-auth's
transport blocks) and refreshes it :data:`REFRESH_AHEAD_S` before it expires, so building a
session's target never waits on Google. ``google-auth`` is imported only when a Vertex model is
configured. ``api_base`` replaces the regional host (a test fake, a private endpoint).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import attrs
import trio

from ..config import ModelConfig
from ..protocols.seam import UpstreamTarget
from .base import LocalEndpoint, RealtimeRequest, Unsupported, UpstreamApi, unsupported, ws_base

log = logging.getLogger("rtproxy.providers")

LIVE_PATH = "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: A token is refreshed this long before it expires (and when asked for, if already that close).
REFRESH_AHEAD_S = 300.0
#: One token fetch (google-auth's HTTP call) must finish within this.
TOKEN_TIMEOUT_S = 30.0
#: After a failed fetch, the next try waits this long (the old token, if any, is used meanwhile).
RETRY_AFTER_S = 10.0


def default_base(location: str) -> str:
    return "https://aiplatform.googleapis.com" if location == "global" else \
        f"https://{location}-aiplatform.googleapis.com"


@attrs.define
class _Token:
    value: str = ""
    expires_at: float = 0.0
    credentials: Any = None


class VertexProvider:
    name = "vertex"
    price_provider = "google-vertex"

    def __init__(self) -> None:
        #: model name -> its credentials and current token
        self._tokens: dict[str, _Token] = {}

    def upstream_api(self, model: ModelConfig) -> UpstreamApi:
        return "gemini"

    def _load(self, model: ModelConfig) -> Any:
        import google.auth
        from google.oauth2 import service_account

        if model.credentials_file:
            return service_account.Credentials.from_service_account_file(model.credentials_file, scopes=SCOPES)
        credentials, _ = google.auth.default(scopes=SCOPES)
        return credentials

    def _fetch(self, model: ModelConfig, held: _Token) -> None:
        """In a worker thread: load the credentials (first time) and refresh the token."""
        import google.auth.transport.requests

        if held.credentials is None:
            held.credentials = self._load(model)
        held.credentials.refresh(google.auth.transport.requests.Request())
        expiry = held.credentials.expiry  # naive UTC datetime, or None
        held.value = held.credentials.token
        held.expires_at = expiry.replace(tzinfo=__import__("datetime").UTC).timestamp() if expiry else \
            time.time() + 3600

    async def prepare(self, model: ModelConfig) -> None:
        """Fetch a token now if there is none, or it expires within :data:`REFRESH_AHEAD_S`.
        Raises Unsupported (the credentials cannot be had: the message says why, with no secret)."""
        held = self._tokens.setdefault(model.name, _Token())
        if held.value and held.expires_at - time.time() > REFRESH_AHEAD_S:
            return
        try:
            with trio.fail_after(TOKEN_TIMEOUT_S):
                await trio.to_thread.run_sync(self._fetch, model, held, abandon_on_cancel=True)
        except Exception as exc:
            raise Unsupported(f"cannot get a Vertex AI access token for model {model.name!r}: "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None

    async def keep_fresh(self, model: ModelConfig) -> None:
        """Run forever: refresh the model's token ahead of its expiry (failures are logged and retried)."""
        while True:
            held = self._tokens.get(model.name)
            wait = max(held.expires_at - time.time() - REFRESH_AHEAD_S, 0.0) if held and held.value else 0.0
            await trio.sleep(wait)
            try:
                await self.prepare(model)
            except Unsupported as exc:
                log.error("%s; retrying in %g s", exc, RETRY_AFTER_S)
                await trio.sleep(RETRY_AFTER_S)

    def realtime_target(self, model: ModelConfig, request: RealtimeRequest, local: LocalEndpoint) -> UpstreamTarget:
        held = self._tokens.get(model.name)
        if held is None or not held.value:
            raise Unsupported(f"no Vertex AI access token for model {model.name!r} yet")
        assert model.location is not None
        path = ws_base(model.api_base or default_base(model.location)) + LIVE_PATH
        headers = [("Authorization", f"Bearer {held.value}")]
        if model.project:
            headers.append(("x-goog-user-project", model.project))
        return UpstreamTarget(url=path, headers=tuple(headers), provider=self.name, api_base=path)

    live_target = unsupported("GPT-Live sessions")
    calls = unsupported("WebRTC calls")

    def setup_model(self, model: ModelConfig) -> str:
        return f"projects/{model.project}/locations/{model.location}/publishers/google/models/{model.target_model}"


PROVIDER = VertexProvider()
