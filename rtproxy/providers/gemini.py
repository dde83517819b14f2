"""Google's Gemini API (AI Studio): Gemini Live at
``wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent``
with ``x-goog-api-key: <key>`` — a header, never ``?key=`` in the URL, where access logs would
keep it. ``api_base`` replaces ``https://generativelanguage.googleapis.com`` (scheme and host, and
an optional path prefix; ``ws://`` and ``http://`` for loopback fakes), and the Live path is
appended; ``api_version`` picks ``v1beta`` (the default, as Google's docs), ``v1`` or ``v1alpha``.
The model goes in the ``setup`` frame as ``models/<upstream_model>``, never in the URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ..config import ModelConfig
from ..protocols.seam import UpstreamTarget
from .base import LocalEndpoint, RealtimeRequest, UpstreamApi, gemini_translation, unsupported, ws_base

DEFAULT_BASE = "https://generativelanguage.googleapis.com"
DEFAULT_VERSION = "v1beta"
VERSIONS = ("v1", "v1beta", "v1alpha")


def ai_studio_path(version: str | None) -> str:
    return f"/ws/google.ai.generativelanguage.{version or DEFAULT_VERSION}.GenerativeService.BidiGenerateContent"


@attrs.frozen
class GeminiProvider:
    name: str = "gemini"

    def price_provider(self, model: ModelConfig) -> str:
        return "google"

    def upstream_api(self, model: ModelConfig) -> UpstreamApi:
        return "gemini"

    def realtime_target(self, model: ModelConfig, request: RealtimeRequest, local: LocalEndpoint) -> UpstreamTarget:
        path = ws_base(model.api_base or DEFAULT_BASE) + ai_studio_path(model.api_version)
        return UpstreamTarget(url=path, headers=(("x-goog-api-key", model.api_key or ""),), provider=self.name,
                              api_base=path)

    live_target = unsupported("GPT-Live sessions")
    calls = unsupported("WebRTC calls")

    def setup_model(self, model: ModelConfig) -> str:
        return "models/" + model.target_model

    def translation(self, model: ModelConfig, dialect: str) -> Callable[[], Any] | None:
        return gemini_translation(model, dialect, self.setup_model(model), vertex=False)

    async def prepare(self, model: ModelConfig) -> None:
        """Nothing to fetch: the key is in the config."""

    async def maintain(self, model: ModelConfig) -> None:
        """Nothing to keep fresh."""


PROVIDER = GeminiProvider()
