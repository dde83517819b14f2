"""The sans-IO pieces of the handshake: admission, providers, and the frame peek."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtproxy.auth.admission import Admission, HandshakeRequest, Rejection, admit, select_subprotocol
from rtproxy.protocols.peek import peek_type
from rtproxy.protocols.realtime.events import AUDIO_TYPES, is_collected
from rtproxy.auth.keys import KeyStore
from rtproxy.providers import LocalEndpoint, RealtimeRequest, realtime_target


def build_target(model, *, dialect="ga", forward_query=(), local_url=None, local_secret="s", transcription=False):  # type: ignore[no-untyped-def]
    """The provider layer's target, called as the old protocol function was (these tests predate it)."""
    return realtime_target(model, RealtimeRequest(dialect=dialect, forward_query=forward_query,
                                                  transcription=transcription),
                           LocalEndpoint(url=local_url, secret=local_secret))

from .conftest import USER_KEY, make_config


def request(path: str = "/v1/realtime", query: str = "model=gpt-realtime", **headers: str) -> HandshakeRequest:
    return HandshakeRequest(path, query, tuple((k.replace("_", "-").lower(), v) for k, v in headers.items()))


@pytest.fixture
def cfg(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_config(tmp_path)


def test_bearer_wins_over_api_key_and_subprotocol(cfg) -> None:  # type: ignore[no-untyped-def]
    keys = KeyStore.from_config(cfg)
    req = request(authorization=f"Bearer {USER_KEY}", api_key="bad-key-xxxxxxxxxxxx",
                  sec_websocket_protocol="realtime, openai-insecure-api-key.bad-key-xxxxxxxxxxx")
    decision = admit(req, keys, cfg)
    assert isinstance(decision, Admission) and not decision.browser and decision.key.name == "user"


def test_subprotocol_clients_are_browsers_and_get_realtime_echoed(cfg) -> None:  # type: ignore[no-untyped-def]
    keys = KeyStore.from_config(cfg)
    req = request(sec_websocket_protocol=f"realtime, openai-insecure-api-key.{USER_KEY}, openai-beta.realtime-v1")
    decision = admit(req, keys, cfg)
    assert isinstance(decision, Admission)
    assert decision.browser and decision.subprotocol == "realtime" and decision.dialect == "beta"


def test_a_rejected_browser_gets_a_4xxx_close_code(cfg) -> None:  # type: ignore[no-untyped-def]
    keys = KeyStore.from_config(cfg)
    decision = admit(request(sec_websocket_protocol="realtime, openai-insecure-api-key.nope-nope-nope-nope"),
                     keys, cfg)
    assert isinstance(decision, Rejection) and decision.browser and decision.close_code == 4401


@pytest.mark.parametrize("offered", [
    ["openai-insecure-api-key.k"], ["openai-insecure-api-key.realtime"], [], ["realtime.v1"],
])
def test_select_subprotocol_never_picks_a_key_token(offered: list[str]) -> None:
    assert select_subprotocol(offered) is None
    assert select_subprotocol([*offered, "realtime"]) == "realtime"


def test_beta_header_selects_the_beta_dialect(cfg) -> None:  # type: ignore[no-untyped-def]
    keys = KeyStore.from_config(cfg)
    decision = admit(request(authorization=f"Bearer {USER_KEY}", openai_beta="realtime=v1"), keys, cfg)
    assert isinstance(decision, Admission) and decision.dialect == "beta"


def test_attribution_headers_are_kept_and_cleaned(cfg) -> None:  # type: ignore[no-untyped-def]
    keys = KeyStore.from_config(cfg)
    decision = admit(request(authorization=f"Bearer {USER_KEY}", x_rtproxy_end_user="user-42\x07",
                             x_rtproxy_tags="a, b ,,c"), keys, cfg)
    assert isinstance(decision, Admission)
    assert decision.end_user == "user-42" and decision.tags == ("a", "b", "c")


def test_providers_build_openai_azure_and_local_targets(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, models=[
        {"name": "o", "provider": "openai", "api_key": "sk-x", "upstream_model": "gpt-realtime"},
        {"name": "a", "provider": "azure", "api_key": "az-x", "api_base": "https://res.openai.azure.com",
         "api_version": "2025-04-01-preview", "upstream_model": "dep1"},
        {"name": "l", "provider": "local"},
    ], keys=[{"name": "k", "key": USER_KEY}])
    keys = KeyStore.from_config(cfg)
    o = admit(request(query="model=o&foo=bar&intent=conversation", authorization=f"Bearer {USER_KEY}",
                      openai_beta="realtime=v1"), keys, cfg)
    a = admit(request("/openai/realtime", "api-version=x&deployment=a", api_key=USER_KEY), keys, cfg)
    loc = admit(request(query="model=l", authorization=f"Bearer {USER_KEY}"), keys, cfg)
    assert isinstance(o, Admission) and isinstance(a, Admission) and isinstance(loc, Admission)
    t = build_target(o.model, dialect=o.dialect, forward_query=o.forward_query, local_url=None, local_secret="s")
    assert t.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime&intent=conversation"  # foo: dropped
    assert dict(t.headers) == {"Authorization": "Bearer sk-x", "OpenAI-Beta": "realtime=v1"}
    t = build_target(a.model, dialect=a.dialect, forward_query=a.forward_query, local_url=None, local_secret="s")
    assert t.url == "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=dep1"
    assert dict(t.headers) == {"api-key": "az-x"}
    t = build_target(loc.model, dialect=loc.dialect, forward_query=loc.forward_query, local_url="ws://127.0.0.1:9", local_secret="s3cret")
    assert t.url == "ws://127.0.0.1:9/v1/realtime?model=l" and dict(t.headers) == {"Authorization": "Bearer s3cret"}


@pytest.mark.parametrize("query", ["model%20=x", "model+=x", "MODEL=x", "api-key=sk-x", "authorization=x",
                                   "Intent=transcription", "call_id%20=c", "foo=bar", "deployment=other",
                                   "api-version=1", "model=o"])
def test_only_documented_query_parameters_reach_the_provider(tmp_path: Path, query: str) -> None:
    cfg = make_config(tmp_path, models=[{"name": "o", "provider": "openai", "api_key": "sk-x",
                                         "upstream_model": "gpt-realtime"}], keys=[{"name": "k", "key": USER_KEY}])
    adm = admit(request(query=f"model=o&{query}", authorization=f"Bearer {USER_KEY}"), KeyStore.from_config(cfg), cfg)
    assert isinstance(adm, Admission)
    t = build_target(adm.model, dialect=adm.dialect, forward_query=adm.forward_query, local_url=None,
                     local_secret="s")
    assert t.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime"


def test_an_azure_v1_model_uses_the_ga_v1_path() -> None:
    from rtproxy.config import ModelConfig

    model = ModelConfig("a", "azure", "dep1", "https://res.openai.azure.com", "az-x", "v1")
    t = build_target(model, dialect="ga", local_url=None, local_secret="s")
    assert t.url == "wss://res.openai.azure.com/openai/v1/realtime?model=dep1"
    assert dict(t.headers) == {"api-key": "az-x"}


def test_a_model_given_twice_with_different_values_is_refused(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, keys=[{"name": "k", "key": USER_KEY}])
    refused = admit(request(query="model=gpt-realtime&model=other", authorization=f"Bearer {USER_KEY}"),
                    KeyStore.from_config(cfg), cfg)
    assert not isinstance(refused, Admission) and (refused.status, refused.code) == (400, "ambiguous_model")


@pytest.mark.parametrize(("frame", "expected"), [
    (b'{"type":"input_audio_buffer.append","audio":"AAAA"}', b"input_audio_buffer.append"),
    (b'{"event_id":"event_123","type":"response.output_audio.delta","delta":"..."}', b"response.output_audio.delta"),
    (b'{ "type" : "response.done" }', b"response.done"),
    (b'{"audio":"' + b"A" * 500 + b'","type":"input_audio_buffer.append"}', None),
    (b'{"type": 5}', None),
    (b"not json at all", None),
    (b'{"type":"', None),
])
def test_peek_type(frame: bytes, expected: bytes | None) -> None:
    assert peek_type(frame) == expected
    assert peek_type(bytearray(frame)) == expected


def test_audio_frames_are_not_collected_and_needed_ones_are() -> None:
    for t in AUDIO_TYPES:
        assert not is_collected(b'{"type":"' + t + b'","audio":"AAAA"}')
    assert is_collected(b'{"type":"response.done","response":{}}')
    assert is_collected(b'{"type":"response.output_text.delta","delta":"x"}')  # estimation needs it
    assert not is_collected(b'{"type":"response.output_item.added","item":{}}')
    assert is_collected(b'{"x":1}')  # type not found in the head: the collector decides


TRANSCRIBERS = [
    {"name": "gpt-realtime", "provider": "local"},
    {"name": "gpt-4o-transcribe", "provider": "openai", "api_key": "sk-x", "api": "transcription"},
    {"name": "whisper-1", "provider": "openai", "api_key": "sk-x", "api": "transcription"},
]


def test_a_transcription_session_is_routed_by_the_keys_transcription_models(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, models=TRANSCRIBERS, keys=[
        {"name": "k", "key": USER_KEY}, {"name": "w", "key": USER_KEY[::-1], "transcription_models": ["whisper-1"]}])
    keys = KeyStore.from_config(cfg)
    adm = admit(request(query="intent=transcription", authorization=f"Bearer {USER_KEY}"), keys, cfg)
    assert isinstance(adm, Admission) and adm.transcription and adm.model.name == "gpt-4o-transcribe"
    t = build_target(adm.model, dialect=adm.dialect, forward_query=adm.forward_query, local_url=None,
                     local_secret="s", transcription=True)
    assert t.url == "wss://api.openai.com/v1/realtime?intent=transcription"  # no model: the session config names it
    named = admit(request(query="intent=transcription&model=whisper-1", authorization=f"Bearer {USER_KEY[::-1]}"),
                  keys, cfg)
    assert isinstance(named, Admission) and named.model.name == "whisper-1"
    only = admit(request(query="intent=transcription", authorization=f"Bearer {USER_KEY[::-1]}"), keys, cfg)
    assert isinstance(only, Admission) and only.model.name == "whisper-1"


@pytest.mark.parametrize(("query", "status", "code"), [
    ("intent=transcription&model=gpt-4o-transcribe", 403, "model_not_allowed"),  # the key has whisper-1 only
    ("intent=transcription&model=nope", 404, "model_not_found"),
    ("intent=transcription&model=gpt-realtime", 404, "model_not_found"),  # a realtime model routes no transcription
    ("model=whisper-1", 400, "wrong_api"),  # a transcription model opens no conversation
])
def test_transcription_routes_refuse_what_the_key_or_the_gateway_does_not_serve(tmp_path: Path, query: str,
                                                                                 status: int, code: str) -> None:
    cfg = make_config(tmp_path, models=TRANSCRIBERS, keys=[{"name": "w", "key": USER_KEY,
                                                            "transcription_models": ["whisper-1"]}])
    refused = admit(request(query=query, authorization=f"Bearer {USER_KEY}"), KeyStore.from_config(cfg), cfg)
    assert not isinstance(refused, Admission) and (refused.status, refused.code) == (status, code)


def test_a_transcription_session_without_a_route_or_with_several_upstreams_is_refused(tmp_path: Path) -> None:
    bare = make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "local"}],
                       keys=[{"name": "k", "key": USER_KEY}])
    refused = admit(request(query="intent=transcription", authorization=f"Bearer {USER_KEY}"),
                    KeyStore.from_config(bare), bare)
    assert not isinstance(refused, Admission) and (refused.status, refused.code) == (404, "model_not_found")
    two = make_config(tmp_path, models=[*TRANSCRIBERS, {"name": "local-whisper", "provider": "local",
                                                         "api": "transcription"}],
                      keys=[{"name": "k", "key": USER_KEY}])
    refused = admit(request(query="intent=transcription", authorization=f"Bearer {USER_KEY}"),
                    KeyStore.from_config(two), two)
    assert not isinstance(refused, Admission) and (refused.status, refused.code) == (400, "missing_model")
    assert "model=" in refused.message
