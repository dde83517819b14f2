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
    Offer,
    OfferError,
    call_id_of,
    check_sdp,
    parse_offer,
    provider_body,
)
from rtproxy.providers import LocalEndpoint
from rtproxy.providers import Unsupported as CallsUnsupported
from rtproxy.providers import call_upstream as _call_upstream


def call_upstream(model: ModelConfig, *, local_rtc_url: str | None, local_secret: str, live: bool = False):  # type: ignore[no-untyped-def]
    """The provider layer's calls upstream, called as the old protocol function was."""
    return _call_upstream(model, LocalEndpoint(url=None, secret=local_secret, rtc_url=local_rtc_url), live=live)

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
    assert (admitted.dialect, admitted.browser, admitted.ephemeral, admitted.end_user) == ("ga", False, False, None)
    azure = sideband_admission(tmp_path, "call_id=rtc_2", "/openai/v1/realtime")
    assert isinstance(azure, Admission) and azure.call_id == "rtc_2"
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
    assert refused.message == ("a call's sideband is /v1/realtime?call_id=<call_id>" if path == "/openai/realtime"
                               else "call_id must be one call id (letters, digits, '_' and '-')")


# -- every refusal exactly: the status, the code and the words the client reads ------------------


@pytest.mark.parametrize("ctype, body, query, expected", [
    ("application/sdp", b"v=0\r\n" + b"a=x\r\n" * 50_000, "m",
     (413, "offer_too_large", "the offer is over 200 KiB")),
    ("application/sdp", b"hello", "m", (400, "invalid_sdp", "the body is not an SDP offer (it must start with v=0)")),
    ("application/sdp", b"", "m", (400, "invalid_sdp", "the body is not an SDP offer (it must start with v=0)")),
    ("application/sdp", b"v=0\r\nm=audio 9 x\r\nbad line\r\n", "m",
     (400, "invalid_sdp", "SDP line 3 is not '<letter>=<value>'")),
    ("application/sdp", b"v=0\nm=video 9 x\n", "m", (400, "invalid_sdp", "the SDP offer has no audio section (m=audio)")),
    ("application/sdp", b"v=0\r\nm=audio 9 \xff\r\n", "m", (400, "invalid_sdp", "the SDP offer is not UTF-8")),
    ("text/plain", b"v=0", "m", (415, "unsupported_media_type",
                                 "send the offer as application/sdp, or as multipart/form-data with an 'sdp' part")),
    ("multipart/form-data", b"", None, (400, "invalid_multipart", "the multipart body has no boundary")),
    (*multipart(("session", "application/json", b"{}")), None,
     (400, "missing_sdp", "the multipart body has no 'sdp' part")),
    (*multipart(("sdp", "application/sdp", b"v=0\r\nm=audio 9 \xff\r\n")), None,
     (400, "invalid_sdp", "the sdp part is not UTF-8")),
    (*multipart(("sdp", "application/sdp", SDP.encode()), ("session", "application/json", b"x" * (128 * 1024 + 1))),
     None, (413, "session_too_large", "the session part is over 128 KiB")),
    (*multipart(("sdp", "application/sdp", SDP.encode()), ("session", "application/json", b"{nope")), None,
     (400, "invalid_session", "the session part is not JSON")),
    (*multipart(("sdp", "application/sdp", SDP.encode()), ("session", "application/json", b"[1]")), None,
     (400, "invalid_session", "the session part must be a JSON object")),
    (*multipart(("sdp", "application/sdp", SDP.encode()), ("session", "application/json", b'{"type": "x"}')), None,
     (400, "invalid_session", "a call's session must be of type 'realtime'")),
    (*multipart(("sdp", "application/sdp", SDP.encode()), ("session", "application/json", b'{"model": 7}')), None,
     (400, "invalid_session", "session.model must be a string")),
    (*multipart(("sdp", "application/sdp", SDP.encode()), ("session", "application/json", b'{"model": "a"}')), "b",
     (400, "ambiguous_model", "?model= and session.model name different models")),
])
def test_each_refused_offer_says_exactly_why(ctype: str, body: bytes, query: str | None,
                                             expected: tuple[int, str, str]) -> None:
    with pytest.raises(OfferError) as refused:
        parse_offer(ctype, body, query)
    assert (refused.value.status, refused.value.code, refused.value.message) == expected
    assert str(refused.value) == expected[2]


def test_an_offer_body_at_its_bound_is_read_and_one_byte_more_is_not() -> None:
    from rtproxy.protocols.realtime.calls import MAX_OFFER_BODY_BYTES

    with pytest.raises(OfferError) as at_bound:  # read (and refused for its SDP size, not the body's)
        parse_offer("application/sdp", b"v=0\r\n" + b"a" * (MAX_OFFER_BODY_BYTES - 5), "m")
    assert at_bound.value.code == "sdp_too_large" and at_bound.value.message == "the SDP offer is over 64 KiB"
    with pytest.raises(OfferError) as over:
        parse_offer("application/sdp", b"v=0\r\n" + b"a" * (MAX_OFFER_BODY_BYTES - 4), "m")
    assert over.value.code == "offer_too_large"


def test_a_session_part_at_its_bound_is_taken() -> None:
    session = json.dumps({"type": "realtime", "instructions": ""}).encode()
    padded = session + b" " * (128 * 1024 - len(session))  # JSON may end in whitespace
    ctype, body = multipart(("sdp", "application/sdp", SDP.encode()), ("session", "application/json", padded))
    assert parse_offer(ctype, body, None).session == {"type": "realtime", "instructions": ""}


def test_an_offer_without_a_model_names_none_and_lf_lines_are_sdp_too() -> None:
    sdp = SDP.replace("\r\n", "\n")
    assert parse_offer("application/sdp", sdp.encode(), None) == Offer(sdp, None, None)
    assert parse_offer("application/sdp", sdp.encode(), "") == Offer(sdp, None, None)
    ctype, body = multipart(("sdp", "application/sdp", SDP.encode()), ("session", "application/json", b"{}"))
    assert parse_offer(ctype, body, "m") == Offer(SDP, {}, "m")


def test_the_providers_multipart_body_is_exactly_two_parts() -> None:
    ctype, body = provider_body(Offer(SDP, None, "m"), "up", None)
    assert ctype.startswith("multipart/form-data; boundary=rtproxy-") and len(ctype.split("=", 1)[1]) == 32
    boundary = ctype.split("=", 1)[1]
    assert body == (
        f'--{boundary}\r\nContent-Disposition: form-data; name="sdp"\r\nContent-Type: application/sdp\r\n\r\n'
        f'{SDP}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="session"\r\nContent-Type: application/json\r\n\r\n'
        '{"type": "realtime", "model": "up"}\r\n'
        f'--{boundary}--\r\n').encode()
    assert provider_body(Offer(SDP, None, "m"), "up", None)[0] != ctype  # a new boundary each time


@pytest.mark.parametrize("model, live, expected", [
    (ModelConfig("m", "openai", api_key="sk-1"), False,
     ("https://api.openai.com/v1/realtime/calls", "wss://api.openai.com/v1/realtime", (("Authorization", "Bearer sk-1"),))),
    (ModelConfig("m", "openai", api_key="sk-1", api_base="wss://proxy.example/v1/"), False,
     ("https://proxy.example/v1/realtime/calls", "wss://proxy.example/v1/realtime", (("Authorization", "Bearer sk-1"),))),
    (ModelConfig("m", "openai", api_key="sk-1", api_base="http://127.0.0.1:9/v1"), False,
     ("http://127.0.0.1:9/v1/realtime/calls", "ws://127.0.0.1:9/v1/realtime", (("Authorization", "Bearer sk-1"),))),
    (ModelConfig("m", "openai", api_key="sk-1", api_base="ws://127.0.0.1:9/v1"), True,
     ("http://127.0.0.1:9/v1/live/sessions", "ws://127.0.0.1:9/v1/live/sessions", (("Authorization", "Bearer sk-1"),))),
    (ModelConfig("m", "azure", api_base="https://r.openai.azure.com/openai", api_key="k", api_version="v1"), False,
     ("https://r.openai.azure.com/openai/v1/realtime/calls", "wss://r.openai.azure.com/openai/v1/realtime",
      (("api-key", "k"),))),
    (ModelConfig("m", "azure", api_base="https://r.openai.azure.com", api_key="k", api_version="2025-04-01-preview"),
     True, ("https://r.openai.azure.com/openai/v1/live/sessions", "wss://r.openai.azure.com/openai/v1/live/sessions",
            (("api-key", "k"),))),
    (ModelConfig("m", "local"), False,
     ("http://127.0.0.1:5/v1/realtime/calls", "ws://127.0.0.1:5/v1/realtime", (("Authorization", "Bearer s"),))),
    (ModelConfig("m", "local"), True,
     ("http://127.0.0.1:5/v1/live/sessions", "ws://127.0.0.1:5/v1/live/sessions", (("Authorization", "Bearer s"),))),
])
def test_each_providers_calls_live_where_its_api_says(model: ModelConfig, live: bool,
                                                       expected: tuple[str, str, tuple[tuple[str, str], ...]]) -> None:
    up = call_upstream(model, local_rtc_url="http://127.0.0.1:5", local_secret="s", live=live)
    assert (up.calls_url, up.sideband_base, up.headers) == expected
    assert (up.provider, up.live) == (model.provider, live)
    target = up.sideband("id_1")
    assert target.url == (f"{expected[1]}/id_1/attach" if live else f"{expected[1]}?call_id=id_1")
    assert (target.headers, target.provider, target.api_base) == (expected[2], model.provider, expected[1])
    assert up.op_url("id_1", "hangup") == f"{expected[0]}/id_1/hangup"


def test_unsupported_providers_say_why() -> None:
    with pytest.raises(CallsUnsupported, match=r"^model 'm' uses Azure API version '2025-04-01-preview': WebRTC calls "
                       r"are served for Azure's v1 API only \(api_version = \"v1\"\)$"):
        call_upstream(ModelConfig("m", "azure", api_base="https://r", api_key="k", api_version="2025-04-01-preview"),
                      local_rtc_url=None, local_secret="s")
    with pytest.raises(CallsUnsupported, match=r"^the offline model's WebRTC peer is not running$"):
        call_upstream(ModelConfig("m", "local"), local_rtc_url=None, local_secret="s")
    with pytest.raises(ValueError, match=r"^api_base must be an http\(s\) or ws\(s\) URL, not 'ftp://x'$"):
        call_upstream(ModelConfig("m", "openai", api_key="k", api_base="ftp://x"), local_rtc_url=None,
                      local_secret="s")


@pytest.mark.parametrize("frame, expected", [
    (b'{"type":"session.updated","session":{"model":"gpt-realtime"}}', None),
    (b'{"type":"session.created","session":{"model":"gpt-realtime-2025"}}', None),
    (b'{"type":"session.updated","session":{"model":"other"}}',
     ("model_not_allowed", "the call's session was switched to model 'other'")),
    (b'{"type":"session.updated","session":{"audio":{"input":{"transcription":{"model":"gpt-4o-transcribe"}}}}}',
     ("model_not_allowed", "the call's session was set to transcription model 'gpt-4o-transcribe'")),
    (b'{"type":"session.updated","session":{"audio":{"input":{"transcription":{"model":"whisper-1"}}}}}', None),
    (b'{"type":"response.done","session":{"model":"other"}}', None),  # not a session report
    (b'{"type":"session.updated",', None),  # not JSON: nothing to judge
])
def test_a_watched_call_reports_a_session_the_key_may_not_have(frame: bytes, expected: tuple[str, str] | None) -> None:
    from rtproxy.protocols.live.gate import DelegationGate
    from rtproxy.protocols.realtime.gate import ModelGate

    gate = ModelGate(frozenset({"gpt-realtime", "gpt-realtime-2025"}), lambda m: True, lambda m: m == "whisper-1")
    assert gate.check_applied(frame) == expected
    assert DelegationGate.check_applied(None, frame) is None  # type: ignore[arg-type]


# -- found by the mutation run (2026-12-02) ---------------------------------------------------------

@pytest.mark.parametrize(("location", "call_id"), [
    ("/v1/realtime/calls/rtc_abcX", "rtc_abcX"),  # only slashes are stripped, never a trailing letter
    ("rtc_1", "rtc_1"),  # a bare id
    ("https://api.openai.com/v1/realtime/calls/rtc_2/", "rtc_2"),
])
def test_the_call_id_is_the_last_path_segment_of_the_location(location: str, call_id: str) -> None:
    assert call_id_of(location) == call_id


def test_an_sdp_part_that_is_itself_multipart_is_not_an_offer() -> None:
    inner = "--in\r\nContent-Type: text/plain\r\n\r\nv=0\r\n--in--\r\n"
    body = ("--b\r\nContent-Disposition: form-data; name=\"sdp\"\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n"
            + inner + "--b--\r\n").encode()
    with pytest.raises(OfferError) as info:
        parse_offer("multipart/form-data; boundary=b", body, None)
    assert (info.value.status, info.value.code) == (400, "invalid_sdp")


def test_an_api_base_keeps_its_path_but_not_its_trailing_slashes() -> None:
    from rtproxy.providers.base import http_base as _http_base
    assert _http_base("wss://h.example/proxyX//") == "https://h.example/proxyX"
    assert _http_base("ws://127.0.0.1:9/v1") == "http://127.0.0.1:9/v1"


async def test_a_call_that_fails_on_the_way_gives_its_lease_back_as_a_refused_one_does() -> None:
    from types import SimpleNamespace

    from rtproxy.server.calls import Answer, CallBroker

    released: list[str] = []

    async def release(session_id: str) -> None:
        released.append(session_id)

    broker = CallBroker(SimpleNamespace(limits=SimpleNamespace(release=release)))  # type: ignore[arg-type]

    async def answer(status: int) -> Answer:
        return Answer(status, b"", "application/sdp")

    async def failing() -> Answer:
        raise AttributeError("a bug on the way")

    assert (await broker._holding_lease("sess_on", 201, answer(201))).status == 201
    assert (await broker._holding_lease("sess_refused", 201, answer(502))).status == 502
    with pytest.raises(AttributeError):
        await broker._holding_lease("sess_failed", 200, failing())
    assert released == ["sess_refused", "sess_failed"]
