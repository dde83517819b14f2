"""Any server that speaks OpenAI's Realtime API (vLLM, a self-hosted model, another gateway):
``<api_base>/realtime?model=<upstream_model>`` (``api_base`` is required, up to ``/v1``: e.g.
``http://127.0.0.1:8000/v1``), with the operator's ``api_key`` in the model's ``auth_header``
(``Authorization: Bearer <key>`` by default; any other header carries the bare key; no key, no
header). A client's own key is never passed on.

``dialect`` is the upstream's Realtime dialect, ``"ga"`` (the default) or ``"beta"`` (its
sessions get ``OpenAI-Beta: realtime=v1``); clients must speak the same one: the other is
refused at the handshake (400 ``unsupported_dialect``), for the gateway does not translate
between them. Sessions pass through unchanged (events the gateway does not know are forwarded and
counted in the session record's ``unknown_event_types``). No GPT-Live, no WebRTC calls.

Price: the model's ``[models.price]`` only. No price database knows what a self-hosted server
costs: its provider id (:data:`PRICE_PROVIDER`) is one no price list has (``price_for`` then looks
nowhere else)."""

from __future__ import annotations

import attrs

from ..config import ModelConfig
from ..protocols.seam import UpstreamTarget
from ..spend.pricing import UNPRICED
from .base import (
    LocalEndpoint,
    RealtimeRequest,
    UpstreamApi,
    no_setup_model,
    no_translation,
    refuse_dialect,
    unsupported,
    ws_base,
)
from .openai import beta_header, realtime_url

#: A genai-prices provider id that names no provider (nor matches one: the database matches ids
#: loosely, and "openai-compatible" would find OpenAI's): it prices nothing under it.
PRICE_PROVIDER = UNPRICED
DEFAULT_AUTH_HEADER = "Authorization"


def auth_headers(model: ModelConfig) -> tuple[tuple[str, str], ...]:
    """The operator's credential in the model's ``auth_header`` (none without an ``api_key``)."""
    if not model.api_key:
        return ()
    name = model.auth_header or DEFAULT_AUTH_HEADER
    value = f"Bearer {model.api_key}" if name.lower() == "authorization" else model.api_key
    return ((name, value),)


@attrs.frozen
class OpenAICompatibleProvider:
    name: str = "openai-compatible"

    def price_provider(self, model: ModelConfig) -> str:
        return PRICE_PROVIDER

    def upstream_api(self, model: ModelConfig) -> UpstreamApi:
        return "realtime"

    def realtime_target(self, model: ModelConfig, request: RealtimeRequest, local: LocalEndpoint) -> UpstreamTarget:
        refuse_dialect(model, request, model.dialect or "ga")
        assert model.api_base is not None  # the config requires it
        url, path = realtime_url(ws_base(model.api_base), model, request)
        return UpstreamTarget(url=url, headers=auth_headers(model) + beta_header(request), provider=self.name,
                              api_base=path)

    live_target = unsupported("GPT-Live sessions")
    calls = unsupported("WebRTC calls")
    setup_model = staticmethod(no_setup_model)
    translation = no_translation

    async def prepare(self, model: ModelConfig) -> None:
        """Nothing to fetch: the key is in the config."""

    async def maintain(self, model: ModelConfig) -> None:
        """Nothing to keep fresh."""


PROVIDER = OpenAICompatibleProvider()
