"""GPT-Live upstreams: a configured ``api = "live"`` model + the session's route → the
provider's URL and headers. The model is never in the URL (it is in ``session.start``).

- ``openai``: ``wss://api.openai.com/v1/live/sessions`` (``…/{id}/attach``, ``…/{id}/fork``),
  ``Authorization: Bearer <key>``.
- ``azure``: ``wss://<resource>.openai.azure.com/openai/v1/live/sessions…``, ``api-key: <key>``.
- ``local``: the offline model's ``/v1/live/sessions…`` on loopback, with the per-process secret.
"""

from __future__ import annotations

from urllib.parse import urlencode

from ...config import ModelConfig
from ..realtime.upstream import OPENAI_DEFAULT_BASE, _ws_base
from ..seam import UpstreamTarget


def build_live_target(model: ModelConfig, *, op: str = "start", live_id: str | None = None,
                      graceful_close: bool = False, local_url: str | None, local_secret: str) -> UpstreamTarget:
    headers: list[tuple[str, str]] = []
    if model.provider == "openai":
        base = _ws_base(model.api_base or OPENAI_DEFAULT_BASE)
        headers.append(("Authorization", f"Bearer {model.api_key}"))
    elif model.provider == "azure":
        assert model.api_base is not None
        base = _ws_base(model.api_base)
        base = base.removesuffix("/openai") + "/openai/v1"
        headers.append(("api-key", model.api_key or ""))
    elif model.provider == "local":
        if local_url is None:
            raise ValueError("the offline model is not running")
        base = _ws_base(local_url) + "/v1"
        headers.append(("Authorization", f"Bearer {local_secret}"))
    else:  # pragma: no cover - config validation rejects other providers
        raise ValueError(f"unknown provider {model.provider!r}")
    path = base + "/live/sessions"
    if op in ("attach", "fork"):
        assert live_id is not None
        path += f"/{live_id}/{op}"
    query = urlencode([("graceful_close", "true")]) if op == "attach" and graceful_close else ""
    return UpstreamTarget(url=path + (f"?{query}" if query else ""), headers=tuple(headers),
                          provider=model.provider, api_base=path)
