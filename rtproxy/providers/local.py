"""The built-in offline model (``provider = "local"``) on a loopback port, reached exactly like a
provider, with a per-process secret so nothing else on the machine can use it through rtproxy's
name. ``dialect`` picks the protocol it speaks: ``"realtime"`` (OpenAI's Realtime API, the
default), ``"gemini"`` (Google's Gemini Live: OpenAI clients are translated, google-genai
clients relayed) or ``"xai"`` (xAI's Grok Voice, quirks and all, under ``/xai/v1/realtime``:
OpenAI GA clients are normalized as for ``provider = "xai"``, and billed at xAI's prices)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ..config import ModelConfig
from ..protocols.seam import UpstreamTarget
from .base import (
    CallUpstream,
    LocalEndpoint,
    RealtimeRequest,
    Unsupported,
    UpstreamApi,
    calls_under,
    gemini_translation,
    http_base,
    ws_base,
    xai_translation,
)
from .gemini import ai_studio_path
from .openai import beta_header, realtime_url
from .xai import PRICE_PROVIDER as XAI_PRICE_PROVIDER
from .xai import refuse_unserved, xai_realtime_url

#: Where the offline model plays xAI (rtproxy/offline/server.py serves ``/xai/v1/realtime``).
XAI_PREFIX = "/xai"


def _base(local: LocalEndpoint) -> str:
    if local.url is None:
        raise Unsupported("the offline model is not running")
    return ws_base(local.url)


@attrs.frozen
class LocalProvider:
    name: str = "local"

    def price_provider(self, model: ModelConfig) -> str:
        """The offline model bills like the models it imitates: OpenAI's, Google's when it speaks
        Gemini, xAI's when it plays xAI."""
        if model.dialect == "xai":
            return XAI_PRICE_PROVIDER
        return "google" if self.upstream_api(model) == "gemini" else "openai"

    def upstream_api(self, model: ModelConfig) -> UpstreamApi:
        return "gemini" if model.dialect == "gemini" else "realtime"

    def _auth(self, model: ModelConfig, local: LocalEndpoint) -> tuple[tuple[str, str], ...]:
        if self.upstream_api(model) == "gemini":
            return (("x-goog-api-key", local.secret),)
        return (("Authorization", f"Bearer {local.secret}"),)

    def realtime_target(self, model: ModelConfig, request: RealtimeRequest, local: LocalEndpoint) -> UpstreamTarget:
        base = _base(local)
        if self.upstream_api(model) == "gemini":
            path = base + ai_studio_path(model.api_version)
            return UpstreamTarget(url=path, headers=self._auth(model, local), provider=self.name, api_base=path)
        if model.dialect == "xai":
            refuse_unserved(model, request)
            url, path = xai_realtime_url(base + XAI_PREFIX, model)
            return UpstreamTarget(url=url, headers=self._auth(model, local), provider=self.name, api_base=path)
        url, path = realtime_url(base + "/v1", model, request)
        return UpstreamTarget(url=url, headers=self._auth(model, local) + beta_header(request), provider=self.name,
                              api_base=path)

    def live_target(self, model: ModelConfig, path: str, query: str, local: LocalEndpoint) -> UpstreamTarget:
        if model.dialect == "xai":
            raise Unsupported(f"model {model.name!r} plays xAI, which serves no GPT-Live sessions")
        base = _base(local) + "/v1/live/sessions" + path
        return UpstreamTarget(url=base + (f"?{query}" if query else ""), headers=self._auth(model, local),
                              provider=self.name, api_base=base)

    def calls(self, model: ModelConfig, local: LocalEndpoint, *, live: bool) -> CallUpstream:
        if local.rtc_url is None:
            raise Unsupported("the offline model's WebRTC peer is not running")
        if self.upstream_api(model) != "realtime" or model.dialect == "xai":
            raise Unsupported(f"model {model.name!r} speaks {'xAI' if model.dialect == 'xai' else 'Gemini Live'}: "
                              "WebRTC calls are OpenAI's")
        return calls_under(http_base(local.rtc_url) + "/v1", self._auth(model, local), self.name, live=live)

    def setup_model(self, model: ModelConfig) -> str:
        return "models/" + model.target_model

    def translation(self, model: ModelConfig, dialect: str) -> Callable[[], Any] | None:
        if model.dialect == "xai":
            return xai_translation(model, dialect)
        if self.upstream_api(model) != "gemini":
            return None
        return gemini_translation(model, dialect, self.setup_model(model), vertex=False)

    async def prepare(self, model: ModelConfig) -> None:
        """Nothing to fetch: the key is in the config."""

    async def maintain(self, model: ModelConfig) -> None:
        """Nothing to keep fresh."""


PROVIDER = LocalProvider()
