"""xAI's Grok Voice (Voice Agent API): ``wss://api.x.ai/v1/realtime?model=<upstream_model>`` with
``Authorization: Bearer <key>`` (the operator's key, never a client's; no ``OpenAI-Beta`` header).
``api_base`` replaces ``https://api.x.ai`` (scheme, host and an optional path prefix; ``ws://`` and
``http://`` for loopback fakes) and ``/v1/realtime`` is appended.

xAI's events are OpenAI Realtime GA events with quirks a strict GA client trips on (keepalive
``ping``\\ s, ``usage: {}``, missing indices and parts, ``role: "tool"``, a nested voice it
ignores): GA clients are served through a sans-IO normalizer
(:mod:`rtproxy.translate.realtime_xai`). Beta clients are refused at the handshake (400
``unsupported_dialect``): xAI speaks GA only. No GPT-Live, no WebRTC calls, no transcription
sessions (xAI has none); sessions are priced under genai-prices' ``x-ai`` provider
(``grok-voice-*``: per minute of audio and per text item)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import attrs

from ..config import ModelConfig
from ..protocols.seam import UpstreamTarget
from .base import (
    LocalEndpoint,
    RealtimeRequest,
    Unsupported,
    UpstreamApi,
    no_setup_model,
    refuse_dialect,
    unsupported,
    ws_base,
    xai_translation,
)

DEFAULT_BASE = "https://api.x.ai"
#: genai-prices' provider id for xAI.
PRICE_PROVIDER = "x-ai"


def xai_realtime_url(base: str, model: ModelConfig) -> tuple[str, str]:
    """(URL, the URL without query) of ``base/v1/realtime`` for this model."""
    path = base + "/v1/realtime"
    return f"{path}?{urlencode([('model', model.target_model)])}", path


def refuse_unserved(model: ModelConfig, request: RealtimeRequest) -> None:
    """What an xAI upstream (xAI's own, or the offline model playing it) cannot serve: beta
    clients, transcription sessions."""
    refuse_dialect(model, request, "ga")
    if request.transcription:
        raise Unsupported(f"model {model.name!r} speaks xAI's Grok Voice, which has no transcription sessions",
                          status=400, code="unsupported_intent")


@attrs.frozen
class XaiProvider:
    name: str = "xai"

    def price_provider(self, model: ModelConfig) -> str:
        return PRICE_PROVIDER

    def upstream_api(self, model: ModelConfig) -> UpstreamApi:
        return "realtime"

    def realtime_target(self, model: ModelConfig, request: RealtimeRequest, local: LocalEndpoint) -> UpstreamTarget:
        refuse_unserved(model, request)
        url, path = xai_realtime_url(ws_base(model.api_base or DEFAULT_BASE), model)
        return UpstreamTarget(url=url, headers=(("Authorization", f"Bearer {model.api_key}"),), provider=self.name,
                              api_base=path)

    live_target = unsupported("GPT-Live sessions")
    calls = unsupported("WebRTC calls")
    setup_model = staticmethod(no_setup_model)

    def translation(self, model: ModelConfig, dialect: str) -> Callable[[], Any] | None:
        return xai_translation(model, dialect)

    async def prepare(self, model: ModelConfig) -> None:
        """Nothing to fetch: the key is in the config."""

    async def maintain(self, model: ModelConfig) -> None:
        """Nothing to keep fresh."""


PROVIDER = XaiProvider()
