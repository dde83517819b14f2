"""WebRTC calls as values (sans-IO): the client's offer read and checked, the provider's request
written, its answer read, each provider's calls and sideband URLs, and a sideband's admission."""

from __future__ import annotations

import email.parser
import email.policy
import json
from pathlib import Path

import pytest

from rtproxy.auth.admission import Admission, HandshakeRequest, Rejection, admit
from rtproxy.auth.keys import KeyStore
from rtproxy.config import ModelConfig
from rtproxy.protocols.realtime.calls import (
    MAX_SDP_BYTES,
    CallsUnsupported,
    Offer,
    OfferError,
    call_id_of,
    call_upstream,
    check_sdp,
    parse_offer,
    provider_body,
)

from .conftest import USER_KEY, make_config

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def multipart(*parts: tuple[str, str, bytes], boundary: str = "XyZ") -> tuple[str, bytes]:
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\nContent-Type: {ctype}\r\n\r\n'
                    .encode() + data + b"\r\n" for name, ctype, data in parts) + f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def test_a_raw_offer_takes_its_model_from_the_query() -> None:
    assert parse_offer("application/sdp; charset=utf-8", SDP.encode(), "gpt-realtime") == Offer(SDP, None, "gpt-realtime")


def test_a_multipart_offer_carries_its_session_and_model() -> None:
    session = {"type": "realtime", "model": "gpt-realtime", "instructions": "Hi"}
    ctype, body = multipart(("sdp", "application/sdp", SDP.encode()),
                            ("session", "application/json", json.dumps(session).encode()))
    offer = parse_offer(ctype, body, None)
    assert offer == Offer(SDP, session, "gpt-realtime")


@pytest.mark.parametrize("ctype, body, query, code", [
    ("application/sdp", "v=1\r\nm=audio 9 x\r\n".encode(), "m", "invalid_sdp"),
    ("application/sdp", b"v=0\r\nm=audio 9 x\r\nbad line\r\n", "m", "invalid_sdp"),
    ("application/sdp", b"v=0\r\nm=video 9 x\r\n", "m", "invalid_sdp"),
    ("application/sdp", b"v=0\r\nm=audio 9 \xff\r\n", "m", "invalid_sdp"),
    ("application/json", b"{}", "m", "unsupported_media_type"),
    ("multipart/form-data", b"", None, "invalid_multipart"),
    (*multipart(("session", "application/json", b"{}")), None, "missing_sdp"),
    (*multipart(("sdp", "application/sdp", SDP.encode()), ("session", "application/json", b"[1]")), None,
     "invalid_session"),
    (*multipart(("sdp", "application/sdp", SDP.encode()), ("session", "application/json", b"{nope")), None,
     "invalid_session"),
    (*multipart(("sdp", "application/sdp", SDP.encode()),
                ("session", "application/json", b'{"type": "transcription"}')), None, "invalid_session"),
    (*multipart(("sdp", "application/sdp", SDP.encode()),
                ("session", "application/json", b'{"model": "a"}')), "b", "ambiguous_model"),
])
def test_a_bad_offer_is_refused_with_its_reason(ctype: str, body: bytes, query: str | None, code: str) -> None:
    with pytest.raises(OfferError) as refused:
        parse_offer(ctype, body, query)
    assert refused.value.code == code and refused.value.status in (400, 415)


def test_an_sdp_at_its_size_bound_is_taken_and_one_byte_more_is_not() -> None:
    head = "v=0\r\nm=audio 9 x\r\na="
    fits = head + "x" * (MAX_SDP_BYTES - len(head))
    assert check_sdp(fits) == fits
    with pytest.raises(OfferError) as refused:
        check_sdp(fits + "x")
    assert refused.value.status == 413


def test_the_provider_gets_the_configured_model_under_the_clients_session_over_the_tokens() -> None:
    offer = Offer(SDP, {"type": "realtime", "model": "alias", "instructions": "client"}, "alias")
    ctype, body = provider_body(offer, "gpt-realtime-2025", {"instructions": "token", "voice": "marin"})
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
    parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True) for p in message.iter_parts()}
    assert parts["sdp"] == SDP.encode()
    assert json.loads(parts["session"]) == {"type": "realtime", "model": "gpt-realtime-2025", "instructions": "client",
                                            "voice": "marin"}


@pytest.mark.parametrize("location, expected", [
    ("/v1/realtime/calls/rtc_abc123", "rtc_abc123"),
    ("https://api.openai.com/v1/realtime/calls/rtc_X-y_z/", "rtc_X-y_z"),
    ("/v1/realtime/calls/rtc_a%2F..", None),
    ("", None),
    (None, None),
])
def test_the_call_id_is_read_from_the_providers_location(location: str | None, expected: str | None) -> None:
    assert call_id_of(location) == expected


def test_each_provider_has_its_calls_url_and_sideband() -> None:
    openai = call_upstream(ModelConfig("m", "openai", api_key="sk-1"), local_rtc_url=None, local_secret="s")
    assert openai.calls_url == "https://api.openai.com/v1/realtime/calls"
    assert openai.sideband("rtc_1").url == "wss://api.openai.com/v1/realtime?call_id=rtc_1"
    assert openai.op_url("rtc_1", "hangup") == "https://api.openai.com/v1/realtime/calls/rtc_1/hangup"
    assert dict(openai.headers) == {"Authorization": "Bearer sk-1"} and "sk-1" not in repr(openai)
    azure = call_upstream(ModelConfig("m", "azure", api_base="https://r.openai.azure.com", api_key="k",
                                      api_version="v1"), local_rtc_url=None, local_secret="s")
    assert azure.calls_url == "https://r.openai.azure.com/openai/v1/realtime/calls"
    assert azure.sideband("rtc_1").url == "wss://r.openai.azure.com/openai/v1/realtime?call_id=rtc_1"
    assert dict(azure.headers) == {"api-key": "k"}
    local = call_upstream(ModelConfig("m", "local"), local_rtc_url="http://127.0.0.1:5000", local_secret="s")
    assert local.calls_url == "http://127.0.0.1:5000/v1/realtime/calls"
    assert local.sideband("rtc_1").url == "ws://127.0.0.1:5000/v1/realtime?call_id=rtc_1"
    with pytest.raises(CallsUnsupported):
        call_upstream(ModelConfig("m", "azure", api_base="https://r.openai.azure.com", api_key="k",
                                  api_version="2025-04-01-preview"), local_rtc_url=None, local_secret="s")
    with pytest.raises(CallsUnsupported):
        call_upstream(ModelConfig("m", "local"), local_rtc_url=None, local_secret="s")


def sideband_admission(tmp_path: Path, query: str, path: str = "/v1/realtime") -> Admission | Rejection:
    config = make_config(tmp_path)
    request = HandshakeRequest(path=path, query_string=query, headers=(("authorization", f"Bearer {USER_KEY}"),))
    return admit(request, KeyStore.from_config(config), config)


def test_a_sideband_is_admitted_by_its_call_id_alone_and_never_forwards_it_with_a_model(tmp_path: Path) -> None:
    admitted = sideband_admission(tmp_path, "call_id=rtc_1")
    assert isinstance(admitted, Admission) and admitted.call_id == "rtc_1" and admitted.model is None
    with_model = sideband_admission(tmp_path, "model=gpt-realtime&call_id=rtc_1")
    assert isinstance(with_model, Admission) and with_model.call_id == "rtc_1" and with_model.forward_query == ()


@pytest.mark.parametrize("query, path", [
    ("call_id=rtc/1", "/v1/realtime"),
    ("call_id=a&call_id=b", "/v1/realtime"),
    ("call_id=", "/v1/realtime"),
    ("call_id=rtc_1", "/openai/realtime"),
])
def test_a_bad_call_id_is_a_400(tmp_path: Path, query: str, path: str) -> None:
    refused = sideband_admission(tmp_path, query, path)
    assert isinstance(refused, Rejection) and (refused.status, refused.code) == (400, "invalid_call_id")
