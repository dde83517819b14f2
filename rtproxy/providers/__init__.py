"""Providers as modules: each owns its upstream URLs, credentials, wire protocol and prices
(:mod:`rtproxy.providers.base` says what one is). The gateway looks a model's provider up here;
nothing else in the relay names one.

| provider | module | realtime upstream speaks |
|---|---|---|
| ``openai`` | :mod:`.openai` | OpenAI Realtime |
| ``azure`` | :mod:`.azure` | OpenAI Realtime |
| ``gemini`` | :mod:`.gemini` | Gemini Live (AI Studio, API key) |
| ``vertex`` | :mod:`.vertex` | Gemini Live (Vertex AI, OAuth via google-auth) |
| ``local`` | :mod:`.local` | OpenAI Realtime, or Gemini Live with ``dialect = "gemini"`` |
"""

from __future__ import annotations

from ..config import ModelConfig
from . import azure, gemini, local, openai, vertex
from .base import CallUpstream, LocalEndpoint, Provider, RealtimeRequest, Unsupported, UpstreamApi

PROVIDERS: dict[str, Provider] = {p.name: p for p in (openai.PROVIDER, azure.PROVIDER, gemini.PROVIDER,
                                                       vertex.PROVIDER, local.PROVIDER)}


def provider_for(model: ModelConfig) -> Provider:
    return PROVIDERS[model.provider]


__all__ = ["PROVIDERS", "CallUpstream", "LocalEndpoint", "Provider", "RealtimeRequest", "Unsupported", "UpstreamApi",
           "provider_for"]
