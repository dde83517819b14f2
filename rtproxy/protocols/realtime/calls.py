"""WebRTC calls (``POST /v1/realtime/calls``) as values. No I/O.

A browser (or an SDK) posts an SDP offer; the gateway checks it, posts it on with the
provider's credentials, hands the SDP answer back, and watches the call through the provider's
sideband (``/v1/realtime?call_id=…``). This module reads the client's offer (:func:`parse_offer`),
writes the provider's request (:func:`provider_body`), reads the provider's answer
(:func:`call_id_of`); where a model's calls and sidebands go is its provider's (rtproxy/providers/).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import attrs

from ..formdata import FormError, parse_form_data

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


