"""WebRTC calls (``POST /v1/realtime/calls``) as values. No I/O.

A browser (or an SDK) posts an SDP offer; the gateway checks it, posts it on with the
provider's credentials, hands the SDP answer back, and watches the call through the provider's
sideband (``/v1/realtime?call_id=…``). This module reads the client's offer (:func:`parse_offer`),
writes the provider's request (:func:`provider_body`), reads the provider's answer
(:func:`call_id_of`) and says where a model's calls and sidebands are (:func:`call_upstream`).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import attrs

from ...config import ModelConfig
from ..formdata import FormError, parse_form_data
from ..seam import UpstreamTarget

#: An SDP offer is a few KiB (one audio section, a data channel, ICE candidates); beyond this it is refused.
MAX_SDP_BYTES = 64 * 1024
#: The session JSON of a multipart offer at most (instructions and tools included).
MAX_SESSION_BYTES = 128 * 1024
#: The whole offer body at most (413 beyond).
MAX_OFFER_BODY_BYTES = MAX_SDP_BYTES + MAX_SESSION_BYTES + 8 * 1024
#: A provider's call id as it may appear in our routes and the state store.
CALL_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
#: Operations on a call the gateway passes on (hangup for any call; the others are SIP's).
CALL_OPS = frozenset({"hangup", "accept", "reject", "refer"})
_SDP_LINE = re.compile(r"^[a-z]=[\x20-\x7e]*$")


class OfferError(Exception):
    """The client's offer is refused: an HTTP status, an error code and a message for it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@attrs.frozen
class Offer:
    sdp: str
    #: The multipart ``session`` part (a GA session config), if any.
    session: dict[str, Any] | None
    #: The model the client asked for: ``?model=``, else ``session.model``.
    model: str | None


def check_sdp(sdp: str) -> str:
    """The offer if it looks like one SDP session description with an audio section."""
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise OfferError(413, "sdp_too_large", f"the SDP offer is over {MAX_SDP_BYTES // 1024} KiB")
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0] != "v=0":
        raise OfferError(400, "invalid_sdp", "the body is not an SDP offer (it must start with v=0)")
    bad = next((i for i, line in enumerate(lines) if not _SDP_LINE.match(line)), None)
    if bad is not None:
        raise OfferError(400, "invalid_sdp", f"SDP line {bad + 1} is not '<letter>=<value>'")
    if not any(line.startswith("m=audio ") for line in lines):
        raise OfferError(400, "invalid_sdp", "the SDP offer has no audio section (m=audio)")
    return sdp


def parse_offer(content_type: str, body: bytes, query_model: str | None) -> Offer:
    """The raw ``application/sdp`` body of the WebRTC guide, or the SDKs' multipart ``sdp`` + ``session``."""
    if len(body) > MAX_OFFER_BODY_BYTES:
        raise OfferError(413, "offer_too_large", f"the offer is over {MAX_OFFER_BODY_BYTES // 1024} KiB")
    ctype = content_type.split(";")[0].strip().lower()
    session: dict[str, Any] | None = None
    if ctype == "application/sdp":
        sdp = _text(body, "the SDP offer")
    elif ctype == "multipart/form-data":
        # a reader of our own, bounded in parts and header bytes (rtproxy/protocols/formdata.py)
        try:
            parts = {name: part.data for name, part in parse_form_data(content_type, body).items()}
        except FormError as exc:
            raise OfferError(exc.status, exc.code, exc.message) from None
        if "sdp" not in parts:
            raise OfferError(400, "missing_sdp", "the multipart body has no 'sdp' part")
        sdp = _text(parts["sdp"], "the sdp part")
        if "session" in parts:
            raw = parts["session"]
            if len(raw) > MAX_SESSION_BYTES:
                raise OfferError(413, "session_too_large", f"the session part is over {MAX_SESSION_BYTES // 1024} KiB")
            try:
                loaded = json.loads(raw)
            except (ValueError, RecursionError):
                raise OfferError(400, "invalid_session", "the session part is not JSON") from None
            if not isinstance(loaded, dict):
                raise OfferError(400, "invalid_session", "the session part must be a JSON object")
            if loaded.get("type", "realtime") != "realtime":
                raise OfferError(400, "invalid_session", "a call's session must be of type 'realtime'")
            session = loaded
    else:
        raise OfferError(415, "unsupported_media_type",
                         "send the offer as application/sdp, or as multipart/form-data with an 'sdp' part")
    named = session.get("model") if session else None
    if named is not None and not isinstance(named, str):
        raise OfferError(400, "invalid_session", "session.model must be a string")
    if query_model and named and query_model != named:
        raise OfferError(400, "ambiguous_model", "?model= and session.model name different models")
    return Offer(check_sdp(sdp), session, query_model or named or None)


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OfferError(400, "invalid_sdp", f"{what} is not UTF-8") from None


def provider_body(offer: Offer, upstream_model: str, initial: dict[str, Any] | None) -> tuple[str, bytes]:
    """The provider's request: multipart ``sdp`` + ``session`` (the token's config under the
    client's, the model always the configured upstream model). (content type, body)."""
    session = {**(initial or {}), **(offer.session or {}), "type": "realtime", "model": upstream_model}
    boundary = "rtproxy-" + secrets.token_hex(12)
    parts = [("sdp", "application/sdp", offer.sdp.encode()),
             ("session", "application/json", json.dumps(session).encode())]
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
        + data + b"\r\n" for name, ctype, data in parts) + f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def call_id_of(location: str | None) -> str | None:
    """The call id in a provider's ``Location: /v1/realtime/calls/{call_id}``."""
    if not location:
        return None
    last = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
    return last if CALL_ID.match(last) else None


@attrs.frozen
class CallUpstream:
    """Where one model's calls go: the offers' URL, the provider's credentials, the sideband."""

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
        url = f"{self.sideband_base}/{call_id}/attach" if self.live else \
            f"{self.sideband_base}?{urlencode({'call_id': call_id})}"
        return UpstreamTarget(url=url, headers=self.headers, provider=self.provider, api_base=self.sideband_base)


class CallsUnsupported(ValueError):
    """The model's provider has no WebRTC calls API the gateway can reach."""


def call_upstream(model: ModelConfig, *, local_rtc_url: str | None, local_secret: str, live: bool = False
                  ) -> CallUpstream:
    """OpenAI: ``https://api.openai.com/v1/realtime/calls`` and ``wss://…/v1/realtime``; Azure's
    GA v1 API (``api_version = "v1"``): the same under ``/openai/v1``; local: the offline model's
    WebRTC peer on loopback. Raises :class:`CallsUnsupported` for Azure's preview API versions."""
    if model.provider == "openai":
        http_base = _http_base(model.api_base or "https://api.openai.com/v1")
        headers: tuple[tuple[str, str], ...] = (("Authorization", f"Bearer {model.api_key}"),)
    elif model.provider == "azure":
        if model.api_version != "v1" and not live:
            raise CallsUnsupported(f"model {model.name!r} uses Azure API version {model.api_version!r}: WebRTC "
                                   "calls are served for Azure's v1 API only (api_version = \"v1\")")
        assert model.api_base is not None
        http_base = _http_base(model.api_base)
        http_base = (http_base if http_base.endswith("/openai") else http_base + "/openai") + "/v1"
        headers = (("api-key", model.api_key or ""),)
    elif model.provider == "local":
        if local_rtc_url is None:
            raise CallsUnsupported("the offline model's WebRTC peer is not running")
        http_base = _http_base(local_rtc_url) + "/v1"
        headers = (("Authorization", f"Bearer {local_secret}"),)
    else:  # pragma: no cover - config validation rejects other providers
        raise CallsUnsupported(f"unknown provider {model.provider!r}")
    parts = urlsplit(http_base)
    ws_scheme = "wss" if parts.scheme == "https" else "ws"
    if live:  # GPT-Live: POST /v1/live/sessions, sideband /v1/live/sessions/{id}/attach
        return CallUpstream(calls_url=http_base + "/live/sessions", headers=headers, provider=model.provider,
                            sideband_base=urlunsplit((ws_scheme, parts.netloc, parts.path + "/live/sessions", "", "")),
                            live=True)
    return CallUpstream(calls_url=http_base + "/realtime/calls", headers=headers,
                        sideband_base=urlunsplit((ws_scheme, parts.netloc, parts.path + "/realtime", "", "")),
                        provider=model.provider)


def _http_base(base: str) -> str:
    parts = urlsplit(base)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https"):
        raise ValueError(f"api_base must be an http(s) or ws(s) URL, not {base!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
