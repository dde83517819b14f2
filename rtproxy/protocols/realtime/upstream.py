"""Realtime upstreams: a configured model + a session's dialect → the provider's URL and headers.

- ``openai``: ``wss://api.openai.com/v1/realtime?model=M``, ``Authorization: Bearer <key>``,
  ``OpenAI-Beta: realtime=v1`` for the beta dialect.
- ``azure``: ``wss://<resource>.openai.azure.com/openai/realtime?api-version=V&deployment=D``
  (``api_version = "v1"``: Azure's GA ``/openai/v1/realtime?model=D``),
  ``api-key: <key>`` (plus ``OpenAI-Beta`` for beta sessions).
- ``local``: the built-in offline model on a loopback port, reached exactly like a provider,
  with a per-process secret so nothing else on the machine can use it through rtproxy's name.

A transcription session (``intent=transcription``, passed on in ``forward_query``) names no
model in the URL: the provider takes its transcription model from the session config.

Nothing the client sent for authentication is forwarded: only the headers built here go up.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from ...config import ModelConfig
from ..seam import UpstreamTarget

OPENAI_DEFAULT_BASE = "wss://api.openai.com/v1"


def _ws_base(base: str) -> str:
    """http(s) → ws(s); ws(s) stays; trailing slashes go."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"api_base must be an http(s) or ws(s) URL, not {base!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def build_target(model: ModelConfig, *, dialect: str, forward_query: tuple[tuple[str, str], ...] = (),
                 local_url: str | None, local_secret: str, transcription: bool = False) -> UpstreamTarget:
    beta = dialect == "beta"
    headers: list[tuple[str, str]] = []
    query: list[tuple[str, str]]
    if model.provider == "openai":
        base = _ws_base(model.api_base or OPENAI_DEFAULT_BASE)
        url_path = base + "/realtime"
        query = [("model", model.target_model)]
        headers.append(("Authorization", f"Bearer {model.api_key}"))
    elif model.provider == "azure":
        assert model.api_base is not None and model.api_version is not None
        base = _ws_base(model.api_base)
        if not base.endswith("/openai"):
            base += "/openai"
        if model.api_version == "v1":  # Azure's GA v1 API: /openai/v1/realtime?model=<deployment>
            url_path = base + "/v1/realtime"
            query = [("model", model.target_model)]
        else:
            url_path = base + "/realtime"
            query = [("api-version", model.api_version), ("deployment", model.target_model)]
        headers.append(("api-key", model.api_key or ""))
    elif model.provider == "local":
        if local_url is None:
            raise ValueError("the offline model is not running")
        url_path = _ws_base(local_url) + "/v1/realtime"
        query = [("model", model.target_model)]
        headers.append(("Authorization", f"Bearer {local_secret}"))
    else:  # pragma: no cover - config validation rejects other providers
        raise ValueError(f"unknown provider {model.provider!r}")
    if beta:
        headers.append(("OpenAI-Beta", "realtime=v1"))
    if transcription:
        query = [(k, v) for k, v in query if k not in ("model", "deployment")]
    query.extend(forward_query)
    return UpstreamTarget(
        url=f"{url_path}?{urlencode(query)}",
        headers=tuple(headers),
        provider=model.provider,
        api_base=url_path,
    )
