"""The provider layer: each provider module owns its URL, credentials and wire protocol; the
config names one per model; adding one is a module plus its config checks."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from rtproxy.config import LOCAL_DIALECTS, ConfigError, ModelConfig, Provider, parse_config
from rtproxy.providers import PROVIDERS, LocalEndpoint, RealtimeRequest, Unsupported, provider_for

LOCAL = LocalEndpoint(url="ws://127.0.0.1:9", secret="s3cret", rtc_url="http://127.0.0.1:10")


def test_every_configurable_provider_has_a_module_and_nothing_else_does() -> None:
    assert set(PROVIDERS) == set(typing.get_args(Provider))


def test_gemini_dials_google_live_path_with_the_key_in_a_header_never_the_url() -> None:
    model = ModelConfig("gemini-live", "gemini", upstream_model="gemini-live-2.5-flash", api_key="AIza-secret")
    t = provider_for(model).realtime_target(model, RealtimeRequest(), LOCAL)
    assert t.url == ("wss://generativelanguage.googleapis.com/ws/"
                     "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent")
    assert dict(t.headers) == {"x-goog-api-key": "AIza-secret"} and "AIza" not in t.url
    assert provider_for(model).upstream_api(model) == "gemini"
    assert provider_for(model).setup_model(model) == "models/gemini-live-2.5-flash"


@pytest.mark.parametrize(("api_base", "expected"), [
    ("ws://127.0.0.1:7000", "ws://127.0.0.1:7000/ws/google.ai.generativelanguage.v1.GenerativeService."
                            "BidiGenerateContent"),
    ("http://127.0.0.1:7000/prefix/", "ws://127.0.0.1:7000/prefix/ws/google.ai.generativelanguage.v1."
                                      "GenerativeService.BidiGenerateContent"),
    ("https://proxy.example", "wss://proxy.example/ws/google.ai.generativelanguage.v1.GenerativeService."
                              "BidiGenerateContent"),
])
def test_gemini_api_base_replaces_scheme_host_and_prefix(api_base: str, expected: str) -> None:
    model = ModelConfig("g", "gemini", api_key="k", api_base=api_base, api_version="v1")
    assert provider_for(model).realtime_target(model, RealtimeRequest(), LOCAL).url == expected


def test_gemini_serves_no_gpt_live_and_no_webrtc() -> None:
    model = ModelConfig("g", "gemini", api_key="k")
    with pytest.raises(Unsupported):
        provider_for(model).live_target(model, "", "", LOCAL)
    with pytest.raises(Unsupported):
        provider_for(model).calls(model, LOCAL, live=False)


def test_vertex_names_the_full_resource_and_the_regional_host() -> None:
    model = ModelConfig("v", "vertex", upstream_model="gemini-live-2.5-flash", project="proj", location="us-central1")
    vertex = provider_for(model)
    assert vertex.setup_model(model) == "projects/proj/locations/us-central1/publishers/google/models/gemini-live-2.5-flash"
    with pytest.raises(Unsupported):  # no token fetched yet: nothing to dial with
        vertex.realtime_target(model, RealtimeRequest(), LOCAL)


def test_a_local_model_speaks_realtime_or_gemini_with_the_per_process_secret() -> None:
    realtime = ModelConfig("gpt-realtime", "local")
    t = provider_for(realtime).realtime_target(realtime, RealtimeRequest(dialect="beta"), LOCAL)
    assert t.url == "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime"
    assert dict(t.headers) == {"Authorization": "Bearer s3cret", "OpenAI-Beta": "realtime=v1"}
    gemini = ModelConfig("gemini-live", "local", dialect="gemini")
    t = provider_for(gemini).realtime_target(gemini, RealtimeRequest(), LOCAL)
    assert t.url.endswith("/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent")
    assert dict(t.headers) == {"x-goog-api-key": "s3cret"}
    assert provider_for(gemini).upstream_api(gemini) == "gemini"
    with pytest.raises(Unsupported):
        provider_for(gemini).calls(gemini, LOCAL, live=False)


def test_openai_and_azure_targets_are_as_before() -> None:
    openai = ModelConfig("m", "openai", upstream_model="gpt-realtime", api_key="sk-1")
    t = provider_for(openai).realtime_target(openai, RealtimeRequest(forward_query=(("intent", "x"),)), LOCAL)
    assert t.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime&intent=x"
    azure = ModelConfig("a", "azure", upstream_model="dep", api_key="k", api_base="https://r.openai.azure.com",
                        api_version="2025-04-01-preview")
    t = provider_for(azure).realtime_target(azure, RealtimeRequest(), LOCAL)
    assert t.url == "wss://r.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=dep"
    assert dict(t.headers) == {"api-key": "k"}


def test_the_config_checks_each_providers_fields(tmp_path: Path) -> None:
    cfg = parse_config({"models": [
        {"name": "g", "provider": "gemini", "api_key": "k"},
        {"name": "v", "provider": "vertex", "project": "p", "location": "global", "credentials_file": "sa.json"},
        {"name": "l", "provider": "local", "dialect": "gemini"}]}, source="t.toml", base_dir=tmp_path, environ={})
    vertex = cfg.model("v")
    assert vertex is not None and vertex.credentials_file == str(tmp_path / "sa.json")
    assert "gemini" in LOCAL_DIALECTS


def _first_setup(model: ModelConfig) -> dict:
    """The setup frame a translated session of ``model`` sends first."""
    translator = provider_for(model).translation(model, "ga")()
    translator.start()
    out = translator.from_client({"type": "session.update", "session": {"type": "realtime", "instructions": "hi"}})
    (frame,) = [f for f in out.to_upstream if "setup" in f]
    return frame["setup"]


def test_a_translated_session_asks_for_a_sliding_context_window_by_default() -> None:
    # without it Google ends an audio session after 15 minutes, however often it is resumed
    setup = _first_setup(ModelConfig("g", "gemini", api_key="k"))
    assert setup["contextWindowCompression"] == {"slidingWindow": {}}
    assert setup["systemInstruction"] == {"parts": [{"text": "hi"}]}


def test_gemini_setup_replaces_the_default_and_the_clients_settings_still_win() -> None:
    model = ModelConfig("g", "gemini", api_key="k", gemini_setup={
        "contextWindowCompression": {"triggerTokens": 20000, "slidingWindow": {"targetTokens": 8000}},
        "systemInstruction": {"parts": [{"text": "operator"}]}})
    setup = _first_setup(model)
    assert setup["contextWindowCompression"] == {"triggerTokens": 20000, "slidingWindow": {"targetTokens": 8000}}
    assert setup["systemInstruction"] == {"parts": [{"text": "hi"}]}
    assert "contextWindowCompression" not in _first_setup(ModelConfig("g", "gemini", api_key="k", gemini_setup={}))


@pytest.mark.parametrize(("entry", "problem"), [
    ({"name": "o", "provider": "openai", "api_key": "k", "gemini_setup": {}}, "models[0].gemini_setup: is for models served through Gemini Live"),
    ({"name": "g", "provider": "gemini", "api_key": "k", "gemini_setup": {"model": "x"}}, "gemini_setup.model"),
    ({"name": "g", "provider": "gemini", "api_key": "k", "gemini_setup": {"sessionResumption": {}}},
     "gemini_setup.sessionResumption"),
])
def test_gemini_setup_is_refused_where_it_cannot_apply(tmp_path: Path, entry: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"models": [entry]}, source="t.toml", base_dir=tmp_path, environ={})
    assert problem in str(err.value)


# -- xAI, the offline model playing it, and OpenAI-compatible servers ---------------------------------

def test_xai_dials_its_realtime_path_with_the_operators_key_and_no_beta_header() -> None:
    model = ModelConfig("grok", "xai", upstream_model="grok-voice-think-fast-1.0", api_key="xai-secret")
    xai = provider_for(model)
    t = xai.realtime_target(model, RealtimeRequest(), LOCAL)
    assert t.url == "wss://api.x.ai/v1/realtime?model=grok-voice-think-fast-1.0"
    assert dict(t.headers) == {"Authorization": "Bearer xai-secret"} and t.api_base == "wss://api.x.ai/v1/realtime"
    assert xai.price_provider(model) == "x-ai" and xai.upstream_api(model) == "realtime"
    fake = ModelConfig("grok", "xai", api_key="k", api_base="http://127.0.0.1:7000/")
    assert xai.realtime_target(fake, RealtimeRequest(), LOCAL).url == "ws://127.0.0.1:7000/v1/realtime?model=grok"
    from rtproxy.translate.realtime_xai import RealtimeXaiNormalizer

    assert isinstance(xai.translation(model, "ga")(), RealtimeXaiNormalizer)


@pytest.mark.parametrize("model", [ModelConfig("grok", "xai", api_key="k"),
                                   ModelConfig("xai-voice", "local", dialect="xai")])
def test_an_xai_upstream_refuses_beta_clients_transcription_gpt_live_and_webrtc(model: ModelConfig) -> None:
    p = provider_for(model)
    with pytest.raises(Unsupported) as beta:
        p.realtime_target(model, RealtimeRequest(dialect="beta"), LOCAL)
    assert (beta.value.status, beta.value.code) == (400, "unsupported_dialect")
    assert "GA Realtime dialect only" in str(beta.value)
    with pytest.raises(Unsupported) as transcription:
        p.realtime_target(model, RealtimeRequest(transcription=True), LOCAL)
    assert transcription.value.status == 400
    with pytest.raises(Unsupported):
        p.live_target(model, "", "", LOCAL)
    with pytest.raises(Unsupported):
        p.calls(model, LOCAL, live=False)


def test_the_offline_model_plays_xai_under_its_own_path_and_bills_as_xai() -> None:
    model = ModelConfig("xai-voice", "local", dialect="xai", upstream_model="grok-voice-think-fast-1.0")
    local = provider_for(model)
    t = local.realtime_target(model, RealtimeRequest(), LOCAL)
    assert t.url == "ws://127.0.0.1:9/xai/v1/realtime?model=grok-voice-think-fast-1.0"
    assert dict(t.headers) == {"Authorization": "Bearer s3cret"}
    assert local.price_provider(model) == "x-ai" and local.translation(model, "ga") is not None
    assert local.translation(ModelConfig("gpt-realtime", "local"), "ga") is None
    assert "xai" in LOCAL_DIALECTS


@pytest.mark.parametrize(("auth_header", "api_key", "expected"), [
    (None, "k-1", {"Authorization": "Bearer k-1"}),
    ("authorization", "k-1", {"authorization": "Bearer k-1"}),
    ("api-key", "k-1", {"api-key": "k-1"}),
    ("x-api-key", "k-1", {"x-api-key": "k-1"}),
    ("x-api-key", None, {}),
])
def test_an_openai_compatible_server_gets_the_key_in_its_own_header(auth_header: str | None, api_key: str | None,
                                                                    expected: dict[str, str]) -> None:
    model = ModelConfig("vllm", "openai-compatible", upstream_model="voxtral", api_base="http://10.0.0.5:8000/v1",
                        api_key=api_key, auth_header=auth_header)
    t = provider_for(model).realtime_target(model, RealtimeRequest(forward_query=(("intent", "transcription"),)), LOCAL)
    assert t.url == "ws://10.0.0.5:8000/v1/realtime?model=voxtral&intent=transcription"
    assert dict(t.headers) == expected


def test_an_openai_compatible_server_speaks_one_dialect_and_has_no_database_price() -> None:
    from rtproxy.spend.pricing import database_price

    beta = ModelConfig("vllm", "openai-compatible", api_base="https://h/v1", dialect="beta")
    p = provider_for(beta)
    assert dict(p.realtime_target(beta, RealtimeRequest(dialect="beta"), LOCAL).headers) == {"OpenAI-Beta": "realtime=v1"}
    with pytest.raises(Unsupported) as ga:
        p.realtime_target(beta, RealtimeRequest(), LOCAL)
    assert ga.value.code == "unsupported_dialect"
    ga_model = ModelConfig("vllm", "openai-compatible", api_base="https://h/v1")
    with pytest.raises(Unsupported):
        p.realtime_target(ga_model, RealtimeRequest(dialect="beta"), LOCAL)
    assert database_price(p.price_provider(ga_model), "gpt-realtime") is None  # the database prices nothing there
    with pytest.raises(Unsupported):
        p.calls(ga_model, LOCAL, live=False)


@pytest.mark.parametrize(("entry", "problem"), [
    ({"name": "x", "provider": "xai"}, 'models[0].api_key: xai models need an api_key (e.g. "env:XAI_API_KEY")'),
    ({"name": "x", "provider": "xai", "api_key": "k", "api": "transcription"},
     "models[0].api: xai models serve realtime sessions"),
    ({"name": "c", "provider": "openai-compatible"}, "models[0].api_base: openai-compatible models need api_base"),
    ({"name": "c", "provider": "openai-compatible", "api_base": "10.0.0.5:8000"},
     "models[0].api_base: must be an http(s) or ws(s) URL"),
    ({"name": "c", "provider": "openai-compatible", "api_base": "http://h/v1", "dialect": "realtime"},
     "models[0].dialect: an openai-compatible model speaks ga or beta"),
    ({"name": "c", "provider": "openai-compatible", "api_base": "http://h/v1", "auth_header": "Sec-WebSocket-Key"},
     "models[0].auth_header: must be a header name"),
    ({"name": "c", "provider": "openai-compatible", "api_base": "http://h/v1", "auth_header": "x api key"},
     "models[0].auth_header: must be a header name"),
    ({"name": "c", "provider": "openai-compatible", "api_base": "http://h/v1", "api": "live"},
     "models[0].api: openai-compatible models serve realtime sessions (or transcription)"),
    ({"name": "o", "provider": "openai", "api_key": "k", "auth_header": "api-key"},
     "models[0].auth_header: is for openai-compatible models"),
    ({"name": "o", "provider": "xai", "api_key": "k", "dialect": "beta"}, "models[0].dialect: dialect is for local"),
    ({"name": "l", "provider": "local", "dialect": "beta"}, "models[0].dialect: a local model speaks realtime, gemini or xai"),
    ({"name": "l", "provider": "local", "dialect": "xai", "api": "transcription"}, "models[0].api: the offline model plays"),
])
def test_the_config_checks_xai_and_openai_compatible_entries(tmp_path: Path, entry: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"models": [entry]}, source="t.toml", base_dir=tmp_path, environ={})
    assert problem in str(err.value)
