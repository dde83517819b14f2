"""``multipart/form-data`` bodies (RFC 7578) read with fixed bounds, in linear time. No I/O.

A WebRTC offer may come as the SDKs send it: parts ``sdp`` and ``session``. The gateway reads it
before any provider sees it, on the event loop, for clients it has only just authenticated, so
the reader does the least form-data needs and nothing more: no RFC 2047 encoded words, no
RFC 2231 / 5987 extended parameters (``name*=``), no folded header lines, no transfer encodings,
no nested multiparts (a part's bytes are returned as they are). The email package did all of
these, and a crafted part header cost it seconds of CPU.

Bounds, checked as the body is walked (so no step does more than a bounded amount of work):
the body itself is bounded by the caller; at most :data:`MAX_FORM_PARTS` parts; each part's
header block at most :data:`MAX_PART_HEADER_BYTES`. Every header line must be ``name: value``
with a token name; ``Content-Disposition`` must be ``form-data`` with a ``name`` parameter
(a token or a quoted string). Anything else is a :class:`FormError` naming what is wrong.
"""

from __future__ import annotations

import attrs

#: Parts one body may have (an offer has two; a few more, e.g. a client's own fields, are ignored).
MAX_FORM_PARTS = 8
#: Bytes of one part's header block (its ``Content-Disposition`` and ``Content-Type`` lines).
MAX_PART_HEADER_BYTES = 1024
#: RFC 2046: a boundary is 1 to 70 characters of this alphabet (a space only inside).
MAX_BOUNDARY_CHARS = 70
_BCHARS = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ")
#: RFC 9110 token characters (header names, parameter names, unquoted values).
_TCHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OWS = frozenset(b" \t")
#: What a quoted string may hold besides escapes: HTAB, SP, visible ASCII but '"' and '\', obs-text.
_QDTEXT = frozenset({0x09, 0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F), *range(0x80, 0x100)})
#: What a quoted-pair (``\x``) may escape.
_QUOTABLE = _QDTEXT | {0x22, 0x5C}
#: Transfer encodings that leave the bytes as they are (RFC 7578 deprecates the header anyway).
_IDENTITY_ENCODINGS = frozenset({b"7bit", b"8bit", b"binary"})


class FormError(ValueError):
    """The body is not form-data this reader takes: an HTTP status, an error code, a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _malformed(message: str) -> FormError:
    return FormError(400, "invalid_multipart", message)


@attrs.frozen
class FormPart:
    name: str
    #: The part's ``Content-Type`` (lower-cased, without parameters), None when it has none.
    content_type: str | None
    data: bytes = attrs.field(repr=False)


def parse_parameters(text: bytes, what: str) -> tuple[bytes, dict[str, bytes]]:
    """``value *( OWS ";" OWS name "=" ( token / quoted-string ) )`` → (the value, lower-cased
    parameter names → values). One pass over ``text``; raises :class:`FormError`."""
    n = len(text)
    i = 0
    while i < n and text[i] in _OWS:
        i += 1
    start = i
    while i < n and text[i] not in _OWS and text[i] != 0x3B:  # up to ';' or whitespace
        i += 1
    value = text[start:i]
    params: dict[str, bytes] = {}
    while True:
        while i < n and text[i] in _OWS:
            i += 1
        if i == n:
            return value, params
        if text[i] != 0x3B:
            raise _malformed(f"{what}: expected ';' between parameters")
        i += 1
        while i < n and text[i] in _OWS:
            i += 1
        if i == n:  # a trailing ';' is tolerated
            return value, params
        start = i
        while i < n and text[i] in _TCHARS:
            i += 1
        name = text[start:i].decode("ascii").lower()
        if not name or i == n or text[i] != 0x3D:
            raise _malformed(f"{what}: a parameter must be name=value")
        i += 1
        if i < n and text[i] == 0x22:  # quoted-string
            i += 1
            out = bytearray()
            while True:
                if i == n:
                    raise _malformed(f"{what}: a quoted parameter value is not closed")
                c = text[i]
                if c == 0x22:
                    i += 1
                    break
                if c == 0x5C:  # quoted-pair
                    if i + 1 == n or text[i + 1] not in _QUOTABLE:
                        raise _malformed(f"{what}: a bad escape in a quoted parameter value")
                    out.append(text[i + 1])
                    i += 2
                    continue
                if c not in _QDTEXT:
                    raise _malformed(f"{what}: a control character in a quoted parameter value")
                out.append(c)
                i += 1
            raw = bytes(out)
        else:
            start = i
            while i < n and text[i] in _TCHARS:
                i += 1
            raw = text[start:i]
            if not raw:
                raise _malformed(f"{what}: parameter {name[:40]!r} has no value")
        if name in params:
            raise _malformed(f"{what}: parameter {name[:40]!r} is given twice")
        params[name] = raw


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type, checked against RFC 2046."""
    try:
        raw = content_type.encode("latin-1")
    except UnicodeEncodeError:
        raise _malformed("the Content-Type header is not Latin-1") from None
    _, params = parse_parameters(raw, "Content-Type")
    boundary = params.get("boundary")
    if boundary is None:
        raise _malformed("the multipart body has no boundary")
    if not 1 <= len(boundary) <= MAX_BOUNDARY_CHARS or not set(boundary) <= _BCHARS or boundary.endswith(b" "):
        raise _malformed(f"the boundary must be 1 to {MAX_BOUNDARY_CHARS} letters, digits or '()+_,-./:=? "
                         "(RFC 2046)")
    return boundary


def _part_headers(block: bytes) -> tuple[str, str | None]:
    """(the part's name, its content type) from its header block."""
    disposition: bytes | None = None
    content_type: bytes | None = None
    for line in block.split(b"\r\n"):
        if not line or line[0] in _OWS:
            raise _malformed("a part's header lines must be 'Name: value' (no folded lines)")
        name, sep, value = line.partition(b":")
        if not sep or not name or not set(name) <= _TCHARS:
            raise _malformed("a part's header lines must be 'Name: value'")
        lowered = name.lower()
        if lowered == b"content-disposition":
            if disposition is not None:
                raise _malformed("a part has two Content-Disposition headers")
            disposition = value
        elif lowered == b"content-type":
            if content_type is not None:
                raise _malformed("a part has two Content-Type headers")
            content_type = value
        elif lowered == b"content-transfer-encoding" and value.strip().lower() not in _IDENTITY_ENCODINGS:
            raise _malformed("a part's Content-Transfer-Encoding must be 7bit, 8bit or binary")
    if disposition is None:
        raise _malformed("a part has no Content-Disposition header")
    kind, params = parse_parameters(disposition, "Content-Disposition")
    if kind.lower() != b"form-data":
        raise _malformed("a part's Content-Disposition must be form-data")
    raw_name = params.get("name")
    if not raw_name:
        raise _malformed("a part's Content-Disposition has no name (name*= is not read)")
    part_name = raw_name.decode("utf-8", "replace")
    ctype = None
    if content_type is not None:
        ctype = parse_parameters(content_type, "Content-Type")[0].decode("latin-1").lower() or None
    return part_name, ctype


def parse_form_data(content_type: str, body: bytes) -> dict[str, FormPart]:
    """The parts of a ``multipart/form-data`` body by name (a name given twice is refused)."""
    boundary = boundary_of(content_type)
    delimiter = b"\r\n--" + boundary
    # the first boundary line may open the body, or follow a preamble (ignored)
    if body.startswith(delimiter[2:]):
        pos = len(delimiter) - 2
    else:
        found = body.find(delimiter)
        if found < 0:
            raise _malformed("the multipart body has no part (no boundary line)")
        pos = found + len(delimiter)
    parts: dict[str, FormPart] = {}
    count = 0
    while True:
        if body.startswith(b"--", pos):  # the closing boundary: the rest is an epilogue
            return parts
        while pos < len(body) and body[pos] in _OWS:  # transport padding
            pos += 1
        if not body.startswith(b"\r\n", pos):
            raise _malformed("a boundary line must end right after the boundary")
        pos += 2
        end = body.find(delimiter, pos)
        if end < 0:
            raise _malformed("the multipart body has no closing boundary")
        count += 1
        if count > MAX_FORM_PARTS:
            raise FormError(413, "too_many_parts", f"the multipart body has more than {MAX_FORM_PARTS} parts")
        if body.startswith(b"\r\n", pos):
            raise _malformed("a part has no Content-Disposition header")
        headers_end = body.find(b"\r\n\r\n", pos, min(end, pos + MAX_PART_HEADER_BYTES + 4))
        if headers_end < 0:
            if end - pos > MAX_PART_HEADER_BYTES:
                raise FormError(413, "part_header_too_large",
                                f"a part's headers are over {MAX_PART_HEADER_BYTES} bytes")
            raise _malformed("a part's headers do not end with an empty line")
        name, ctype = _part_headers(body[pos:headers_end])
        if name in parts:
            raise _malformed(f"the multipart body has two parts named {name[:40]!r}")
        parts[name] = FormPart(name, ctype, body[headers_end + 4:end])
        pos = end + len(delimiter)
