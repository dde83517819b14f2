"""OpenAI: ``wss://api.openai.com/v1/realtime?model=M`` with ``Authorization: Bearer <key>``
(``OpenAI-Beta: realtime=v1`` for beta sessions), GPT-Live under ``/v1/live/sessions``, WebRTC
calls under ``/v1/realtime/calls``. ``api_base`` points a model at another endpoint (a test fake,
a corporate proxy): scheme, host and path prefix, ``/realtime`` appended."""

from __future__ import annotations

from urllib.parse import urlencode

import attrs

from ..config import ModelConfig
from ..protocols.seam import UpstreamTarget
from .base import (
    CallUpstream,
    LocalEndpoint,
    RealtimeRequest,
    UpstreamApi,
    calls_under,
    http_base,
    no_setup_model,
    no_translation,
    ws_base,
)

DEFAULT_BASE = "wss://api.openai.com/v1"


def realtime_url(base: str, model: ModelConfig, request: RealtimeRequest) -> tuple[str, str]:
    """(URL, the URL without query) of ``base/realtime`` for this model and session."""
    path = base + "/realtime"
    query = [] if request.transcription else [("model", model.target_model)]
    query.extend(request.forward_query)
    return f"{path}?{urlencode(query)}", path


def beta_header(request: RealtimeRequest) -> tuple[tuple[str, str], ...]:
    return (("OpenAI-Beta", "realtime=v1"),) if request.dialect == "beta" else ()


@attrs.frozen
class OpenAIProvider:
    name: str = "openai"

    def price_provider(self, model: ModelConfig) -> str:
        return "openai"

    def upstream_api(self, model: ModelConfig) -> UpstreamApi:
        return "realtime"

    def _auth(self, model: ModelConfig) -> tuple[tuple[str, str], ...]:
        return (("Authorization", f"Bearer {model.api_key}"),)

    def realtime_target(self, model: ModelConfig, request: RealtimeRequest, local: LocalEndpoint) -> UpstreamTarget:
        url, path = realtime_url(ws_base(model.api_base or DEFAULT_BASE), model, request)
        return UpstreamTarget(url=url, headers=self._auth(model) + beta_header(request), provider=self.name,
                              api_base=path)

    def live_target(self, model: ModelConfig, path: str, query: str, local: LocalEndpoint) -> UpstreamTarget:
        base = ws_base(model.api_base or DEFAULT_BASE) + "/live/sessions" + path
        return UpstreamTarget(url=base + (f"?{query}" if query else ""), headers=self._auth(model),
                              provider=self.name, api_base=base)

    def calls(self, model: ModelConfig, local: LocalEndpoint, *, live: bool) -> CallUpstream:
        return calls_under(http_base(model.api_base or DEFAULT_BASE), self._auth(model), self.name, live=live)

    setup_model = staticmethod(no_setup_model)
    translation = no_translation

    async def prepare(self, model: ModelConfig) -> None:
        """Nothing to fetch: the key is in the config."""

    async def maintain(self, model: ModelConfig) -> None:
        """Nothing to keep fresh."""


PROVIDER = OpenAIProvider()
