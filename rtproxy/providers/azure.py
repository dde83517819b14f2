"""Azure OpenAI: ``wss://<resource>.openai.azure.com/openai/realtime?api-version=V&deployment=D``
with ``api-key: <key>``; ``api_version = "v1"`` is Azure's GA API, ``/openai/v1/realtime?model=D``,
which also serves GPT-Live (``/openai/v1/live/sessions``) and WebRTC calls."""

from __future__ import annotations

from urllib.parse import urlencode

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
    http_base,
    no_setup_model,
    no_translation,
    ws_base,
)
from .openai import beta_header, realtime_url


def _openai_root(base: str) -> str:
    return base if base.endswith("/openai") else base + "/openai"


@attrs.frozen
class AzureProvider:
    name: str = "azure"
    #: Azure lists OpenAI's models under their deployment names (the price lookup falls back to OpenAI's).

    def price_provider(self, model: ModelConfig) -> str:
        return "azure"

    def upstream_api(self, model: ModelConfig) -> UpstreamApi:
        return "realtime"

    def _auth(self, model: ModelConfig) -> tuple[tuple[str, str], ...]:
        return (("api-key", model.api_key or ""),)

    def realtime_target(self, model: ModelConfig, request: RealtimeRequest, local: LocalEndpoint) -> UpstreamTarget:
        assert model.api_base is not None and model.api_version is not None
        root = _openai_root(ws_base(model.api_base))
        if model.api_version == "v1":  # Azure's GA v1 API: /openai/v1/realtime?model=<deployment>
            url, path = realtime_url(root + "/v1", model, request)
        else:
            path = root + "/realtime"
            query = [("api-version", model.api_version)]
            if not request.transcription:
                query.append(("deployment", model.target_model))
            query.extend(request.forward_query)
            url = f"{path}?{urlencode(query)}"
        return UpstreamTarget(url=url, headers=self._auth(model) + beta_header(request), provider=self.name,
                              api_base=path)

    def live_target(self, model: ModelConfig, path: str, query: str, local: LocalEndpoint) -> UpstreamTarget:
        assert model.api_base is not None
        base = ws_base(model.api_base).removesuffix("/openai") + "/openai/v1/live/sessions" + path
        return UpstreamTarget(url=base + (f"?{query}" if query else ""), headers=self._auth(model),
                              provider=self.name, api_base=base)

    def calls(self, model: ModelConfig, local: LocalEndpoint, *, live: bool) -> CallUpstream:
        if model.api_version != "v1" and not live:
            raise Unsupported(f"model {model.name!r} uses Azure API version {model.api_version!r}: WebRTC "
                              "calls are served for Azure's v1 API only (api_version = \"v1\")")
        assert model.api_base is not None
        return calls_under(_openai_root(http_base(model.api_base)) + "/v1", self._auth(model), self.name, live=live)

    setup_model = staticmethod(no_setup_model)
    translation = no_translation

    async def prepare(self, model: ModelConfig) -> None:
        """Nothing to fetch: the key is in the config."""

    async def maintain(self, model: ModelConfig) -> None:
        """Nothing to keep fresh."""


PROVIDER = AzureProvider()
