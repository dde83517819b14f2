"""What a provider module is: the one place that knows a provider's URLs, authentication, wire
protocol and price list.

The gateway asks a model's provider (:func:`rtproxy.providers.provider_for`) for everything that
differs between providers; the relay, the session core and the collectors never name one. Adding
a provider is a module with a :class:`Provider` value, registered in ``providers/__init__.py``,
and its name in the config's ``Provider`` list with the fields its models need (config.py
checks them when the file is read, before any provider module is imported).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import attrs

from ..config import DEFAULT_GEMINI_SETUP, ModelConfig
from ..protocols.seam import UpstreamTarget

#: The wire protocols a provider's realtime upstream can speak: OpenAI's Realtime API (passed
#: through, or normalized), or Google's Gemini Live (``BidiGenerateContent``, translated for
#: OpenAI clients and relayed for Google's own).
UpstreamApi = Literal["realtime", "gemini"]


class Unsupported(ValueError):
    """The model's provider does not serve this kind of session (GPT-Live, WebRTC calls, …).

    ``status`` and ``code`` are what the client is told: by default the provider cannot serve it
    now (502 ``upstream_unavailable``); a session the client asked for wrongly (a dialect the
    upstream does not speak) is a 400 with its own code."""

    def __init__(self, message: str, *, status: int = 502, code: str = "upstream_unavailable") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@attrs.frozen
class LocalEndpoint:
    """Where the offline model listens in this process, and its per-process secret."""

    url: str | None
    secret: str
    #: The offline model's WebRTC peer (started on first use), for calls.
    rtc_url: str | None = None


@attrs.frozen
class CallUpstream:
    """Where one model's WebRTC calls go: the offers' URL, the provider's credentials, the sideband."""

    calls_url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    sideband_base: str
    provider: str
    #: GPT-Live (``/v1/live/sessions``: the sideband is ``…/{id}/attach``), else Realtime
    #: (``/v1/realtime/calls``: the sideband is ``/v1/realtime?call_id=…``).
    live: bool = False

    def op_url(self, call_id: str, op: str) -> str:
        return f"{self.calls_url}/{call_id}/{op}"

    def sideband(self, call_id: str) -> UpstreamTarget:
        from urllib.parse import urlencode

        url = f"{self.sideband_base}/{call_id}/attach" if self.live else \
            f"{self.sideband_base}?{urlencode({'call_id': call_id})}"
        return UpstreamTarget(url=url, headers=self.headers, provider=self.provider, api_base=self.sideband_base)


@attrs.frozen
class RealtimeRequest:
    """What a realtime session asks of its upstream."""

    dialect: str = "ga"
    #: Documented query parameters passed on (``intent``, ``call_id``).
    forward_query: tuple[tuple[str, str], ...] = ()
    #: A transcription session: the URL names no model.
    transcription: bool = False


class Provider(Protocol):
    """One provider: URLs, credentials, wire protocol, prices. Every method is pure (no I/O)
    but :meth:`prepare`, which may fetch credentials once at start-up."""

    #: The name ``[[models]] provider`` gives.
    name: str

    def price_provider(self, model: ModelConfig) -> str:
        """The genai-prices provider id the model is priced under."""

    def upstream_api(self, model: ModelConfig) -> UpstreamApi:
        """The wire protocol the model's realtime upstream speaks."""

    def realtime_target(self, model: ModelConfig, request: RealtimeRequest, local: LocalEndpoint) -> UpstreamTarget:
        """Where a realtime session on this model goes. Raises :class:`Unsupported`."""

    def live_target(self, model: ModelConfig, path: str, query: str, local: LocalEndpoint) -> UpstreamTarget:
        """Where a GPT-Live session goes (``path`` below ``/live/sessions``). Raises :class:`Unsupported`."""

    def calls(self, model: ModelConfig, local: LocalEndpoint, *, live: bool) -> CallUpstream:
        """Where WebRTC calls go. Raises :class:`Unsupported`."""

    def setup_model(self, model: ModelConfig) -> str:
        """The model's name in a Gemini ``setup`` frame (Gemini upstreams only)."""

    def translation(self, model: ModelConfig, dialect: str) -> Callable[[], Any] | None:
        """A factory of the translator an OpenAI Realtime client's session on this model needs
        (a new one per session), or None when the upstream speaks OpenAI Realtime itself."""

    async def prepare(self, model: ModelConfig) -> None:
        """Before the gateway serves the model: fetch what sessions will need (credentials).
        Raises Unsupported with a message that names no secret."""

    async def maintain(self, model: ModelConfig) -> None:
        """For the gateway's life: keep credentials fresh (returns at once when there are none)."""


def ws_base(base: str) -> str:
    """http(s) → ws(s); ws(s) stays; trailing slashes go."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"api_base must be an http(s) or ws(s) URL, not {base!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def http_base(base: str) -> str:
    """ws(s) → http(s); http(s) stays; trailing slashes go."""
    parts = urlsplit(base)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https"):
        raise ValueError(f"api_base must be an http(s) or ws(s) URL, not {base!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def calls_under(base: str, headers: tuple[tuple[str, str], ...], provider: str, *, live: bool) -> CallUpstream:
    """OpenAI's calls API under an http(s) base ending in ``/v1``."""
    parts = urlsplit(base)
    ws_scheme = "wss" if parts.scheme == "https" else "ws"
    if live:  # GPT-Live: POST /v1/live/sessions, sideband /v1/live/sessions/{id}/attach
        return CallUpstream(calls_url=base + "/live/sessions", headers=headers, provider=provider,
                            sideband_base=urlunsplit((ws_scheme, parts.netloc, parts.path + "/live/sessions", "", "")),
                            live=True)
    return CallUpstream(calls_url=base + "/realtime/calls", headers=headers, provider=provider,
                        sideband_base=urlunsplit((ws_scheme, parts.netloc, parts.path + "/realtime", "", "")))


def no_translation(self: object, model: ModelConfig, dialect: str) -> None:
    """The upstream speaks OpenAI Realtime: sessions pass through."""
    return None


def gemini_translation(model: ModelConfig, dialect: str, setup_model: str, *, vertex: bool) -> Callable[[], Any]:
    """A factory of OpenAI Realtime ⇄ Gemini Live translators for one model."""
    from ..translate.realtime_gemini import RealtimeGeminiTranslator

    extra = DEFAULT_GEMINI_SETUP if model.gemini_setup is None else model.gemini_setup

    def new() -> Any:
        return RealtimeGeminiTranslator(model=model.name, upstream_model=setup_model, dialect=dialect,  # type: ignore[arg-type]
                                        vertex=vertex, extra_setup=extra)
    return new


def xai_translation(model: ModelConfig, dialect: str) -> Callable[[], Any]:
    """A factory of OpenAI Realtime (GA) ⇄ xAI Grok Voice normalizers for one model."""
    from ..translate.realtime_xai import RealtimeXaiNormalizer

    def new() -> Any:
        return RealtimeXaiNormalizer(model=model.name, upstream_model=model.target_model)
    return new


def refuse_dialect(model: ModelConfig, request: RealtimeRequest, speaks: str) -> None:
    """Refuse (400) a session in another dialect than the upstream's ``speaks`` (``"ga"`` or ``"beta"``)."""
    if request.dialect == speaks:
        return
    how = ("connect without the OpenAI-Beta header and the openai-beta.realtime-v1 subprotocol" if speaks == "ga"
           else "connect with 'OpenAI-Beta: realtime=v1' (or the openai-beta.realtime-v1 subprotocol)")
    named = {"ga": "GA", "beta": "beta"}
    raise Unsupported(f"model {model.name!r} ({model.provider}) speaks the {named[speaks]} Realtime dialect only, not "
                      f"{named.get(request.dialect, request.dialect)}: {how}", status=400, code="unsupported_dialect")


def no_setup_model(model: ModelConfig) -> str:
    raise Unsupported(f"model {model.name!r} does not speak Gemini Live")


#: A provider's method that says it does not serve a kind of session.
def unsupported(what: str) -> Callable[..., object]:
    def refuse(self: object, model: ModelConfig, *args: object, **kwargs: object) -> object:
        raise Unsupported(f"model {model.name!r} ({model.provider}) does not serve {what}")
    return refuse
