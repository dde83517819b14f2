"""The multipart/form-data reader the WebRTC offer goes through, as values (no sockets): what it
takes, what it refuses and with which code, and that its bounds hold at their edges."""

from __future__ import annotations

import pytest

from rtproxy.protocols.formdata import (
    MAX_BOUNDARY_CHARS,
    MAX_FORM_PARTS,
    MAX_PART_HEADER_BYTES,
    FormError,
    FormPart,
    parse_form_data,
    parse_parameters,
)

CTYPE = "multipart/form-data; boundary=XyZ"


def body(*parts: bytes, boundary: bytes = b"XyZ", preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    """Parts given as their header block + CRLF CRLF + data, framed by ``boundary``."""
    return preamble + b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary + b"--" \
        + epilogue


def part(name: bytes, data: bytes = b"x", extra: bytes = b"") -> bytes:
    return b"Content-Disposition: form-data; name=" + name + extra + b"\r\n\r\n" + data


def refused(content_type: str, raw: bytes) -> tuple[int, str]:
    with pytest.raises(FormError) as info:
        parse_form_data(content_type, raw)
    return info.value.status, info.value.code


def test_the_sdks_form_is_read_part_by_part_as_bytes() -> None:
    raw = body(b'Content-Disposition: form-data; name="sdp"\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n',
               b'content-disposition: form-data; name=session; filename="blob"\r\n'
               b"Content-Type: Application/JSON; charset=utf-8\r\n\r\n{}",
               preamble=b"ignored preamble\r\n", epilogue=b"\r\nignored epilogue")
    parts = parse_form_data('multipart/form-data; boundary="XyZ"', raw)
    assert parts == {"sdp": FormPart("sdp", "application/sdp", b"v=0\r\n"),
                     "session": FormPart("session", "application/json", b"{}")}


def test_a_quoted_name_may_escape_and_a_part_may_be_empty() -> None:
    parts = parse_form_data(CTYPE, body(part(b'"s\\"d\\\\p"', b"")))
    assert parts == {'s"d\\p': FormPart('s"d\\p', None, b"")}


def test_data_that_holds_the_boundary_without_its_line_break_is_data() -> None:
    parts = parse_form_data(CTYPE, body(part(b"a", b"a --XyZ in the middle\r\n-XyZ\n--XyZ")))
    assert parts["a"].data == b"a --XyZ in the middle\r\n-XyZ\n--XyZ"


@pytest.mark.parametrize("header", [
    b"Content-Disposition: form-data; name*",                       # an extended parameter with no value
    b"Content-Disposition: form-data; name=sdp" + b"(" * 500,       # a comment where a token must end
    b"Content-Disposition: form-data; name*=UTF-8''sdp",             # RFC 5987: not read, so no name
    b"Content-Disposition: form-data; name=",                        # no value
    b'Content-Disposition: form-data; name="sdp',                    # an open quote
    b'Content-Disposition: form-data; name="s\x01dp"',               # a control character
    b"Content-Disposition: form-data; name=sdp; name=session",       # a parameter twice
    b"Content-Disposition: form-data name=sdp",                      # no ';'
    b"Content-Disposition: attachment; name=sdp",                    # not form-data
    b"Content-Disposition: form-data; =sdp",                         # no parameter name
    b"Content-Type: application/sdp",                               # no Content-Disposition
    b"Content-Disposition: form-data; name=sdp\r\n folded",          # a folded line
    b"Content-Disposition: form-data; name=sdp\r\nno colon here",
    b"Content-Disposition: form-data; name=sdp\r\nBad Name: x",      # a space in a header name
    b"Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b",
    b"Content-Disposition: form-data; name=sdp\r\nContent-Transfer-Encoding: base64",
    b"Content-Disposition: form-data; name=sdp\r\nContent-Type: a\r\nContent-Type: b",
    b"Content-Disposition: form-data; name=\"=?utf-8?q?sdp?=\" =?utf-8?q?x?=",
])
def test_a_part_header_the_reader_does_not_take_is_a_400(header: bytes) -> None:
    assert refused(CTYPE, body(header + b"\r\n\r\nv=0")) == (400, "invalid_multipart")


@pytest.mark.parametrize("content_type, raw", [
    ("multipart/form-data", body(part(b"a"))),                                  # no boundary
    ("multipart/form-data; boundary=", body(part(b"a"))),                       # an empty one
    ('multipart/form-data; boundary="XyZ', body(part(b"a"))),                   # an open quote
    ("multipart/form-data; boundary=" + "b" * (MAX_BOUNDARY_CHARS + 1), body(part(b"a"), boundary=b"b" * 71)),
    ("multipart/form-data; boundary=a; boundary=b", body(part(b"a"), boundary=b"a")),
    ('multipart/form-data; boundary="a<b"', body(part(b"a"), boundary=b"a<b")),  # not a boundary character
    ("multipart/form-data; boundary=\u00e9", body(part(b"a"), boundary="\u00e9".encode("latin-1"))),
    ("multipart/form-data; boundary=\u4e00", b""),                              # not even Latin-1
    (CTYPE, b""),                                                               # no part at all
    (CTYPE, b"--XyZ\r\n" + part(b"a")),                                         # no closing boundary
    (CTYPE, b"--XyZjunk\r\n" + part(b"a") + b"\r\n--XyZ--"),                    # junk after a boundary
    (CTYPE, b"--XyZ\r\nContent-Disposition: form-data; name=a"),                # headers never end
    (CTYPE, b"--XyZ\r\n\r\nx\r\n--XyZ--"),                                      # a part with no headers
    (CTYPE, body(part(b"a"), part(b"a"))),                                      # one name twice
])
def test_a_body_the_reader_does_not_take_is_a_400(content_type: str, raw: bytes) -> None:
    assert refused(content_type, raw) == (400, "invalid_multipart")


def test_parts_are_bounded_in_number_at_their_edge() -> None:
    parts = [part(b"p%d" % i) for i in range(MAX_FORM_PARTS)]
    assert len(parse_form_data(CTYPE, body(*parts))) == MAX_FORM_PARTS
    assert refused(CTYPE, body(*parts, part(b"one_more"))) == (413, "too_many_parts")


def test_a_parts_headers_are_bounded_in_size_at_their_edge() -> None:
    head = b"Content-Disposition: form-data; name=a\r\nX-Pad: "
    fits = head + b"p" * (MAX_PART_HEADER_BYTES - len(head))
    assert parse_form_data(CTYPE, body(fits + b"\r\n\r\nv=0"))["a"].data == b"v=0"
    assert refused(CTYPE, body(fits + b"p\r\n\r\nv=0")) == (413, "part_header_too_large")
    # encoded words are bytes like any others: a 190 KiB header of them is refused unread
    words = b"X-A: " + b"=?utf-8?q?=41?= " * (190 * 1024 // 16)
    assert refused(CTYPE, body(b"Content-Disposition: form-data; name=sdp\r\n" + words + b"\r\n\r\nv=0")) == \
        (413, "part_header_too_large")


def test_parameters_are_read_in_one_pass() -> None:
    assert parse_parameters(b' form-data ;name="a b";  filename=x.txt ;', "h") == \
        (b"form-data", {"name": b"a b", "filename": b"x.txt"})
    assert parse_parameters(b"form-data", "h") == (b"form-data", {})
    with pytest.raises(FormError, match=r"^h: a bad escape in a quoted parameter value$"):
        parse_parameters(b'x; a="\\', "h")
