"""Config loading: errors name the file, the key path and the problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from rtproxy.config import load_config, parse_config
from rtproxy.errors import ConfigError
from rtproxy.auth.keys import KeyStore, hash_key

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "a-long-enough-key-123456"


def base(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "models": [{"name": "m1", "provider": "local"}],
        "keys": [{"name": "k1", "key": GOOD_KEY, "models": ["m1"]}],
    }
    data.update(extra)
    return data


def error_of(data: dict[str, Any], environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="conf.toml", environ=environ or {})
    return info.value


def test_shipped_config_loads_and_serves_the_offline_model() -> None:
    cfg = load_config(ROOT / "config.toml")
    assert (cfg.server.host, cfg.server.port, cfg.server.realtime_port) == ("127.0.0.1", 8000, 8001)
    assert [(m.name, m.provider) for m in cfg.models] == [("gpt-realtime", "local")]
    assert cfg.keys[0].key == "auto" and cfg.keys[0].role == "admin"


def test_unknown_key_is_named() -> None:
    err = error_of(base(server={"prot": 1}))
    assert str(err).startswith("conf.toml: server: ") and "prot" in str(err)


def test_wrong_type_is_named() -> None:
    err = error_of(base(server={"port": "eighty"}))
    assert err.path == "server.port" and "int" in err.problem


def test_missing_env_var_is_named() -> None:
    data = base(models=[{"name": "m1", "provider": "openai", "api_key": "env:NOPE_KEY"}])
    err = error_of(data)
    assert (err.path, err.problem) == ("models[0].api_key", "environment variable NOPE_KEY is not set")


def test_env_secrets_are_resolved() -> None:
    data = base(models=[{"name": "m1", "provider": "openai", "api_key": "env:PROVIDER"}],
                keys=[{"name": "k1", "key": "env:VKEY"}])
    cfg = parse_config(data, environ={"PROVIDER": "sk-123", "VKEY": GOOD_KEY})
    assert cfg.models[0].api_key == "sk-123" and cfg.keys[0].key == GOOD_KEY
    assert "sk-123" not in repr(cfg) and GOOD_KEY not in repr(cfg)


def test_duplicate_model_name() -> None:
    err = error_of(base(models=[{"name": "m1", "provider": "local"}, {"name": "m1", "provider": "local"}]))
    assert err.path == "models[1].name" and "duplicate" in err.problem


def test_unknown_provider() -> None:
    err = error_of(base(models=[{"name": "m1", "provider": "acme"}]))
    assert str(err) == "conf.toml: models[0].provider: must be one of 'openai', 'azure', 'local', not 'acme'"


def test_a_string_where_a_list_belongs_is_an_error() -> None:
    err = error_of(base(keys=[{"name": "k1", "key": GOOD_KEY, "models": "m1"}]))
    assert err.path == "keys[0].models" and "list" in err.problem


def test_key_allowed_a_model_that_does_not_exist() -> None:
    err = error_of(base(keys=[{"name": "k1", "key": GOOD_KEY, "models": ["m1", "gpt-x"]}]))
    assert (err.path, err.problem) == ("keys[0].models[1]", "model 'gpt-x' is not configured in [[models]]")


def test_key_needs_exactly_one_of_key_and_key_sha256() -> None:
    assert "exactly one" in str(error_of(base(keys=[{"name": "k1"}])))
    both = base(keys=[{"name": "k1", "key": GOOD_KEY, "key_sha256": hash_key(GOOD_KEY)}])
    assert "exactly one" in str(error_of(both))


def test_key_sha256_is_accepted_instead_of_a_plain_key() -> None:
    cfg = parse_config(base(keys=[{"name": "k1", "key_sha256": hash_key(GOOD_KEY)}]))
    store = KeyStore.from_config(cfg)
    found = store.lookup(GOOD_KEY)
    assert found is not None and found.name == "k1"
    assert store.lookup(GOOD_KEY + "x") is None


def test_no_well_known_key_on_a_public_bind() -> None:
    err = error_of(base(server={"host": "0.0.0.0"}))
    assert err.path == "keys[0].key" and "non-loopback" in err.problem
    auto = base(server={"host": "0.0.0.0"}, keys=[{"name": "k1", "key": "auto"}])
    assert "loopback" in error_of(auto).problem
    # env keys and hashes are fine anywhere
    parse_config(base(server={"host": "0.0.0.0"}, keys=[{"name": "k1", "key_sha256": hash_key(GOOD_KEY)}]))


def test_short_keys_are_refused() -> None:
    assert "too short" in str(error_of(base(keys=[{"name": "k1", "key": "sk-1234"}])))


def test_auto_key_is_generated_once_with_0600(tmp_path: Path) -> None:
    data = base(keys=[{"name": "local", "key": "auto", "role": "admin"}])
    cfg = parse_config(data, base_dir=tmp_path)
    first = KeyStore.from_config(cfg)
    (gen,) = first.generated
    assert gen.path == tmp_path / ".rtproxy" / "local.key"
    assert os.stat(gen.path).st_mode & 0o777 == 0o600
    assert first.lookup(gen.value) is not None
    again = KeyStore.from_config(cfg)
    assert again.generated[0].value == gen.value


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[server\nport = 1")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert str(info.value).startswith(str(p)) and "TOML" in str(info.value)


def test_azure_needs_api_base_and_version() -> None:
    err = error_of(base(models=[{"name": "m1", "provider": "azure", "api_key": "k"}]))
    assert err.path == "models[0].api_base"
