"""Config errors to the letter (``file: key.path: problem`` is what an operator reads at start-up),
secrets resolved wherever the config allows ``env:``, and the small rules around them. Found
loosely pinned by the mutation run of 2026-12-02."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rtproxy.config import is_loopback_host, load_config, parse_config
from rtproxy.errors import ConfigError

KEY = "a-long-enough-key-123456"


def base(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"models": [{"name": "m1", "provider": "local"}],
                            "keys": [{"name": "k1", "key": KEY, "models": ["m1"]}]}
    data.update(extra)
    return data


@pytest.mark.parametrize(("data", "message"), [
    (base(keys=[{"name": "k1", "key": KEY, "models": "m1"}]),
     'conf.toml: keys[0].models: must be a list of strings, e.g. ["model-a", "model-b"]'),
    (base(keys=[{"name": "k1", "key": KEY, "models": [1]}]),
     'conf.toml: keys[0].models: must be a list of strings, e.g. ["model-a", "model-b"]'),
    (base(spend_log={"store_prompts": "yes"}),
     "conf.toml: spend_log.store_prompts: must be true or false (a TOML boolean, not a string or a number)"),
    (base(server={"port": "x"}),
     "conf.toml: server.port: must be a whole number (not a string, a boolean or a fraction)"),
    (base(server={"idle_timeout_s": "x"}), "conf.toml: server.idle_timeout_s: must be a number (not a string or a boolean)"),
    (base(server={"host": 1}), "conf.toml: server.host: must be a string (in quotes)"),
    (base(models=[{"name": "m1", "provider": "openai", "api_key": "env:"}]),
     "conf.toml: models[0].api_key: 'env:' needs a variable name, e.g. \"env:OPENAI_API_KEY\""),
    (base(models=[{"name": "m1", "provider": "openai", "api_key": "env:NOPE"}]),
     "conf.toml: models[0].api_key: environment variable NOPE is not set"),
    (base(models=[{"name": "m1", "provider": "openai", "api_key": "env:EMPTY"}]),
     "conf.toml: models[0].api_key: environment variable EMPTY is not set"),
    (base(server={"token_secret": "env:NOPE"}), "conf.toml: server.token_secret: environment variable NOPE is not set"),
    (base(state={"backend": "redis", "url": "env:NOPE"}), "conf.toml: state.url: environment variable NOPE is not set"),
    (base(keys=[{"name": "k1", "key": "env:NOPE", "models": ["m1"]}]),
     "conf.toml: keys[0].key: environment variable NOPE is not set"),
    (base(models=[{"name": "m1", "provider": "local", "price": {"input_text": -1}}]),
     "conf.toml: models[0].price.input_text: must not be negative"),
    (base(models=[{"name": "m1", "provider": "local", "price": {}}]),
     "conf.toml: models[0].price: gives no rate: set input_text, input_audio, output_text, output_audio "
     "(USD per 1M tokens), audio_per_hour, audio_in_per_minute / audio_out_per_minute or per_text_item"),
    (base(models=[{"name": "m1", "provider": "nope"}]),
     "conf.toml: models[0].provider: must be one of 'openai', 'azure', 'gemini', 'vertex', 'local', 'xai', 'openai-compatible', not 'nope'"),
    (base(server={"prot": 1}), "conf.toml: server: unknown key(s) (prot); did you mean port?"),
    (base(server={"max_message_byte": 1}),
     "conf.toml: server: unknown key(s) (max_message_byte); did you mean max_message_bytes?"),
    ({**base(), "sever": {}}, "conf.toml: unknown key(s) (sever); did you mean server?"),
    (base(server={"hots": "::1", "prot": 1}),
     "conf.toml: server: unknown key(s) (hots, prot); did you mean hots → host, prot → port?"),
    (base(models=[{"name": "m1", "provider": "x @ y"}]),  # the path is after the last " @ "
     "conf.toml: models[0].provider: must be one of 'openai', 'azure', 'gemini', 'vertex', 'local', 'xai', 'openai-compatible', not 'x @ y'"),
    (base(models=[{"name": "m1", "provider": "local", "price": "4.0"}]),
     "conf.toml: models[0].price: must be a table (a [section], or { name = value, ... } inline)"),
    (base(models=[{"name": "m1", "provider": "local", "price": [4.0]}]),
     "conf.toml: models[0].price: must be a table (a [section], or { name = value, ... } inline)"),
    (base(models=[{"name": "m1", "provider": "local", "price": 4.0}]),
     "conf.toml: models[0].price: must be a table (a [section], or { name = value, ... } inline)"),
    (base(server="127.0.0.1"), "conf.toml: server: must be a table (a [section], or { name = value, ... } inline)"),
    ({**base(), "zzz": 1}, "conf.toml: unknown key(s) (zzz)"),
    (base(models=[{"name": "m1", "provider": "openai"}]),
     'conf.toml: models[0].api_key: openai models need an api_key (e.g. "env:OPENAI_API_KEY")'),
    (base(models=[{"name": "m1", "provider": "azure", "api_base": "https://r.openai.azure.com", "api_version": "v1"}]),
     'conf.toml: models[0].api_key: azure models need an api_key (e.g. "env:AZURE_OPENAI_API_KEY")'),
    (base(models=[{"name": "g", "provider": "gemini"}]),
     'conf.toml: models[0].api_key: gemini models need an api_key (e.g. "env:GEMINI_API_KEY")'),
    (base(models=[{"name": "g", "provider": "gemini", "api_key": "k", "api_version": "v2"}]),
     "conf.toml: models[0].api_version: the Gemini API serves Live on v1, v1beta, v1alpha"),
    (base(models=[{"name": "v", "provider": "vertex", "location": "global"}]),
     "conf.toml: models[0].project: vertex models need project (the Google Cloud project id)"),
    (base(models=[{"name": "v", "provider": "vertex", "project": "p"}]),
     'conf.toml: models[0].location: vertex models need location (e.g. "us-central1", or "global")'),
    (base(models=[{"name": "l", "provider": "local", "dialect": "beta"}]),
     "conf.toml: models[0].dialect: a local model speaks realtime, gemini or xai"),
    (base(models=[{"name": "o", "provider": "openai", "api_key": "k", "dialect": "ga"}]),
     ("conf.toml: models[0].dialect: dialect is for local models (realtime, gemini or xai) and openai-compatible "
      "ones (ga or beta)")),
    (base(models=[{"name": "c", "provider": "openai-compatible"}]),
     ('conf.toml: models[0].api_base: openai-compatible models need api_base (the server\'s base URL up to /v1, '
      'e.g. "http://127.0.0.1:8000/v1")')),
    (base(models=[{"name": "x", "provider": "xai"}]),
     'conf.toml: models[0].api_key: xai models need an api_key (e.g. "env:XAI_API_KEY")'),
    (base(models=[{"name": "o", "provider": "openai", "api_key": "k", "project": "p"}]),
     "conf.toml: models[0].project: is for vertex models"),
], ids=lambda v: v.split(": ")[1] if isinstance(v, str) else None)
def test_each_config_error_reads_exactly(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="conf.toml", environ={"EMPTY": ""})
    assert str(info.value) == message


def test_an_error_without_a_source_names_the_config() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(base(server={"port": "x"}), environ={})
    assert str(info.value).startswith("<config>: server.port: ")


def test_secrets_come_from_the_environment_wherever_env_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"TS": "a-token-secret-0123456789", "RU": "redis://h:1/0", "KK": KEY, "AK": "sk-upstream-123"}
    data = base(server={"token_secret": "env:TS"}, state={"backend": "redis", "url": "env:RU"},
                keys=[{"name": "k1", "key": "env:KK", "models": ["m1"]}],
                models=[{"name": "m1", "provider": "openai", "api_key": "env:AK"}])
    cfg = parse_config(data, environ=env)
    assert (cfg.server.token_secret, cfg.state.url, cfg.models[0].api_key) == (env["TS"], env["RU"], env["AK"])
    assert cfg.keys[0].key == KEY
    # environ=None: the process environment
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert parse_config(data).state.url == env["RU"]


def test_the_config_files_own_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == f"{missing}: cannot read: No such file or directory" and info.value.path == ""
    bad = tmp_path / "bad.toml"
    bad.write_text("x = [")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value) == f"{bad}: not valid TOML: Invalid value (at end of document)" and info.value.path == ""
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError) as info:
        load_config(binary)
    assert str(info.value) == f"{binary}: not valid TOML: 'utf-8' codec can't decode byte 0xff in position 0: " \
                              "invalid start byte"
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('zzz = 1\n[[models]]\nname = "m1"\nprovider = "local"\n')
    with pytest.raises(ConfigError) as info:
        load_config(unknown)
    assert str(info.value) == f"{unknown}: unknown key(s) (zzz)"  # the file's path, not <config>
    secret = tmp_path / "secret.toml"
    secret.write_text('[[models]]\nname = "m1"\nprovider = "openai"\napi_key = "env:AK"\n')
    assert load_config(secret, environ={"AK": "sk-from-the-given-environment"}).models[0].api_key == \
        "sk-from-the-given-environment"


def test_relative_paths_are_the_config_files_and_absolute_ones_stay(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    cfg_file = tmp_path / "sub" / "c.toml"
    cfg_file.write_text('[[models]]\nname = "m1"\nprovider = "local"\n[[keys]]\nname = "k1"\n'
                        f'key = "{KEY}"\n')
    cfg = load_config(cfg_file)
    assert cfg.resolve_path("spend.jsonl") == tmp_path / "sub" / "spend.jsonl"
    assert cfg.resolve_path("/var/log/x.jsonl") == Path("/var/log/x.jsonl")
    assert cfg.resolve_path(Path("/var/log/x.jsonl")) == Path("/var/log/x.jsonl")


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("LOCALHOST", False), ("example.com", False), ("", False),
])
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
