"""Providers as modules: each owns its upstream URLs, credentials, wire protocol and prices
(:mod:`rtproxy.providers.base` says what one is). The gateway looks a model's provider up here;
nothing else in the relay names one.

| provider | module | realtime upstream speaks |
|---|---|---|
| ``openai`` | :mod:`.openai` | OpenAI Realtime |
| ``azure`` | :mod:`.azure` | OpenAI Realtime |
| ``gemini`` | :mod:`.gemini` | Gemini Live (AI Studio, API key) |
| ``vertex`` | :mod:`.vertex` | Gemini Live (Vertex AI, OAuth via google-auth) |
| ``local`` | :mod:`.local` | OpenAI Realtime, Gemini Live with ``dialect = "gemini"``, xAI's Grok Voice with ``dialect = "xai"`` |
| ``xai`` | :mod:`.xai` | xAI's Grok Voice (OpenAI Realtime GA with quirks: normalized) |
| ``openai-compatible`` | :mod:`.openai_compatible` | OpenAI Realtime (GA or beta), any server at ``api_base`` |
"""

from __future__ import annotations

from urllib.parse import urlencode

from ..config import ModelConfig
from ..protocols.seam import UpstreamTarget
from . import azure, gemini, local, openai, openai_compatible, vertex, xai
from .base import CallUpstream, LocalEndpoint, Provider, RealtimeRequest, Unsupported, UpstreamApi

PROVIDERS: dict[str, Provider] = {p.name: p for p in (openai.PROVIDER, azure.PROVIDER, gemini.PROVIDER,
                                                       vertex.PROVIDER, local.PROVIDER, xai.PROVIDER,
                                                       openai_compatible.PROVIDER)}


def provider_for(model: ModelConfig) -> Provider:
    return PROVIDERS[model.provider]


__all__ = ["PROVIDERS", "CallUpstream", "LocalEndpoint", "Provider", "RealtimeRequest", "Unsupported", "UpstreamApi",
           "call_upstream", "live_target", "provider_for", "realtime_target"]


def realtime_target(model: ModelConfig, request: RealtimeRequest, local: LocalEndpoint) -> UpstreamTarget:
    """Where a realtime session on ``model`` goes (its provider decides). Raises Unsupported."""
    return provider_for(model).realtime_target(model, request, local)


def live_target(model: ModelConfig, local: LocalEndpoint, *, op: str = "start", live_id: str | None = None,
                graceful_close: bool = False) -> UpstreamTarget:
    """Where a GPT-Live session goes: ``/live/sessions``, or ``…/{id}/attach`` / ``…/{id}/fork``.
    The model is never in the URL (it is in ``session.start``). Raises Unsupported."""
    path = ""
    if op in ("attach", "fork"):
        assert live_id is not None
        path = f"/{live_id}/{op}"
    query = urlencode([("graceful_close", "true")]) if op == "attach" and graceful_close else ""
    return provider_for(model).live_target(model, path, query, local)


def call_upstream(model: ModelConfig, local: LocalEndpoint, *, live: bool = False) -> CallUpstream:
    """Where ``model``'s WebRTC calls (or GPT-Live WebRTC sessions) go. Raises Unsupported."""
    return provider_for(model).calls(model, local, live=live)
