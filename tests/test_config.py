"""Config loading: errors name the file, the key path and the problem."""

from __future__ import annotations

import copy
import os
import types
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest

from rtproxy import config as config_module
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
    assert [(m.name, m.provider, m.api) for m in cfg.models] == [
        ("gpt-realtime", "local", "realtime"), ("gpt-live-1", "local", "live"), ("gemini-live", "local", "realtime"),
        ("xai-voice", "local", "realtime"), ("gpt-4o-transcribe", "local", "transcription"),
        ("gpt-4o-mini-transcribe", "local", "transcription"), ("whisper-1", "local", "transcription")]
    assert cfg.keys[0].key == "auto" and cfg.keys[0].role == "admin"


def test_unknown_key_is_named() -> None:
    err = error_of(base(server={"prot": 1}))
    assert str(err).startswith("conf.toml: server: ") and "prot" in str(err)


def test_wrong_type_is_named() -> None:
    err = error_of(base(server={"port": "eighty"}))
    assert err.path == "server.port" and "whole number" in err.problem


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
    assert str(err) == "conf.toml: models[0].provider: must be one of 'openai', 'azure', 'gemini', 'vertex', 'local', 'xai', 'openai-compatible', not 'acme'"


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


# -- exact types, over the whole schema ---------------------------------------------------------
# Every field of every config table is tried with values of the wrong type: each must be refused
# with a one-line error naming the file and the key's path. The cases come from the attrs schema,
# so a key added later is checked without anyone writing a test for it.

_WRONG: dict[Any, list[Any]] = {
    bool: ["false", "true", 0, 1],
    int: ["8100", 8100.5, True],
    float: ["5", True],
    str: [5, True, ["x"]],
    tuple[str, ...]: ["gpt-realtime", [1], True],
    dict[str, Any]: ["x", 5, ["x"], True],
}
#: A minimal valid document, and where each table lives in it.
_BASE: dict[str, Any] = {"models": [{"name": "m", "provider": "local"}],
                         "keys": [{"name": "k", "key": "a-valid-test-key-0123456789"}]}
_TABLES = {"server": config_module.ServerConfig, "spend_log": config_module.SpendLogConfig, "local": config_module.LocalModelConfig,
           "state": config_module.StateConfig, "models[0]": config_module.ModelConfig, "keys[0]": config_module.KeyConfig,
           "models[0].price": config_module.PriceConfig}


def _base_type(t: Any) -> Any:
    """``int | None`` → int; a Literal → the type of its values; others unchanged."""
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if typing.get_origin(t) in (typing.Union, types.UnionType) and len(args) == 1:
        t = args[0]
    if typing.get_origin(t) is typing.Literal:
        return type(typing.get_args(t)[0])
    return t


def _schema_cases() -> list[tuple[str, Any]]:
    cases = []
    for table, cls in _TABLES.items():
        hints = typing.get_type_hints(cls, vars(config_module))
        for f in attrs.fields(cls):
            t = _base_type(hints[f.name])
            if attrs.has(t) or t not in _WRONG:
                assert attrs.has(t), f"{table}.{f.name}: type {t} has no wrong-type cases: add them to _WRONG"
                continue
            for value in _WRONG[t]:
                cases.append((f"{table}.{f.name}", value))
    return cases


def _document_with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_BASE)
    doc["models"][0]["price"] = {"input_text": 1.0, "input_audio": 1.0, "cached_text": 1.0, "cached_audio": 1.0,
                                 "output_text": 1.0, "output_audio": 1.0}
    *tables, key = path.split(".")
    node: Any = doc
    for part in tables:
        name, _, index = part.partition("[")
        node = node.setdefault(name, {}) if not index else node[name][int(index.rstrip("]"))]
    node[key] = value
    return doc


def test_the_base_document_of_the_type_table_is_valid() -> None:
    parse_config(_document_with("server.host", "127.0.0.1"))


@pytest.mark.parametrize(("path", "value"), _schema_cases(), ids=lambda v: repr(v)[:40])
def test_every_config_value_must_have_exactly_its_type(path: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_document_with(path, value), source="rtproxy.toml")
    message = str(info.value)
    assert message.startswith(f"rtproxy.toml: {path}:"), message
    assert "\n" not in message
    if isinstance(value, str) and len(value) > 5:
        assert value not in message  # a string in the wrong place may be a secret: never echoed


def test_require_key_sha256_refuses_a_plain_key_and_accepts_a_digest() -> None:
    doc = {"server": {"require_key_sha256": True}, "models": [{"name": "m", "provider": "local"}],
           "keys": [{"name": "k", "key": "a-valid-test-key-0123456789"}]}
    with pytest.raises(ConfigError) as info:
        parse_config(doc, source="c.toml")
    assert str(info.value).startswith("c.toml: keys[0].key: server.require_key_sha256 is set")
    doc["keys"] = [{"name": "k", "key_sha256": hash_key("a-valid-test-key-0123456789")}]
    cfg = parse_config(doc)
    assert KeyStore.from_config(cfg).lookup("a-valid-test-key-0123456789") is not None


# -- every value check, at its boundary ----------------------------------------------------------

def _doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"models": [{"name": "m", "provider": "local"}],
                           "keys": [{"name": "k", "key": "a-valid-test-key-0123456789"}]}
    for path, value in over.items():
        table, _, key = path.partition("__")
        if table in ("models", "keys"):
            doc[table][0][key] = value
        else:
            doc.setdefault(table, {})[key] = value
    return doc


REFUSED = [
    ({"server__port": -1}, "server.port", "-1 is not a valid port"),
    ({"server__port": 65536}, "server.port", "65536 is not a valid port"),
    ({"server__realtime_port": -2}, "server.realtime_port", "-2 is not a valid port"),
    ({"server__realtime_port": 65536}, "server.realtime_port", "65536 is not a valid port"),
    ({"server__max_message_bytes": 1023}, "server.max_message_bytes", "must be at least 1024 bytes"),
    ({"server__handshake_timeout_s": 0}, "server.handshake_timeout_s", "must be a positive number of seconds"),
    ({"server__keep_alive_timeout_s": 0}, "server.keep_alive_timeout_s", "must be a positive number of seconds"),
    ({"server__http_read_timeout_s": -1}, "server.http_read_timeout_s", "must be a positive number of seconds"),
    ({"server__token_ttl_s": 0}, "server.token_ttl_s", "must be a positive number of seconds"),
    ({"server__max_session_duration_s": -1}, "server.max_session_duration_s",
     "must be 0 (no limit) or a positive number of seconds"),
    ({"server__idle_timeout_s": -0.5}, "server.idle_timeout_s", "must be 0 (no limit) or a positive number of seconds"),
    ({"server__token_ttl_s": 7201}, "server.token_ttl_s", "must be at most 7200 seconds (2 hours)"),
    ({"server__max_concurrent_sessions": 0}, "server.max_concurrent_sessions", "must be at least 1"),
    ({"server__max_connections": 0}, "server.max_connections", "must be at least 1"),
    ({"server__max_fragments_per_message": 0}, "server.max_fragments_per_message", "must be at least 1"),
    ({"server__tls_certfile": "c.pem"}, "server.tls_certfile", "give both tls_certfile and tls_keyfile, or neither"),
    ({"server__tls_keyfile": "k.pem"}, "server.tls_certfile", "give both tls_certfile and tls_keyfile, or neither"),
    ({"server__upstream_ca_file": "nope.pem"}, "server.upstream_ca_file", "file 'nope.pem' does not exist"),
    ({"server__token_secret": "fifteen-chars.."}, "server.token_secret",
     "is too short: use at least 16 random characters"),
    ({"server__settle_window_s": -1}, "server.settle_window_s",
     "must be 0 (bill nothing late) or a positive number of seconds"),
    ({"state__backend": "redis"}, "state.url", 'the redis backend needs url (e.g. "env:REDIS_URL")'),
    ({"state__url": "http://x"}, "state.url", "must start with redis:// or unix://"),
    ({"state__lease_s": 0}, "state.lease_s", "must be a positive number of seconds"),
    ({"state__timeout_s": 0}, "state.timeout_s", "must be a positive number of seconds"),
    ({"state__max_open_sessions": 0}, "state.max_open_sessions", "must be at least 1"),
    ({"models__name": ""}, "models[0].name", "is empty"),
    ({"models__provider": "azure", "models__api_key": "az-0123456789abcdef", "models__api_version": "1"},
     "models[0].api_base", "azure models need api_base (https://<resource>.openai.azure.com)"),
    ({"models__provider": "azure", "models__api_key": "az-0123456789abcdef", "models__api_base": "https://r"},
     "models[0].api_version", "azure models need api_version"),
    ({"models__provider": "openai"}, "models[0].api_key", 'openai models need an api_key (e.g. "env:OPENAI_API_KEY")'),
    ({"keys__name": ""}, "keys[0].name", "is empty"),
    ({"keys__key_sha256": "0" * 64}, "keys[0]", "give exactly one of key or key_sha256"),
    ({"keys__max_sessions_per_minute": 0}, "keys[0].max_sessions_per_minute", "must be at least 1"),
    ({"keys__key": None, "keys__key_sha256": "A" * 64}, "keys[0].key_sha256",
     "must be 64 lowercase hex digits (see `rtproxy hash-key`)"),
    ({"keys__key": "short-key-15chr"}, "keys[0].key", "is too short: use at least 16 random characters"),
    ({"keys__models": ["nope"]}, "keys[0].models[0]", "model 'nope' is not configured in [[models]]"),
    ({"keys__max_budget_usd": -0.01}, "keys[0].max_budget_usd", "must not be negative"),
    ({"keys__max_sessions": 0}, "keys[0].max_sessions", "must be at least 1"),
    ({"server__host": "0.0.0.0", "keys__key": "auto"}, "keys[0].key",
     '"auto" keys are for loopback binds only, not 0.0.0.0: use key = "env:NAME" or key_sha256 '
     '(see `rtproxy hash-key`), or bind host = "127.0.0.1"'),
    ({"server__host": "0.0.0.0"}, "keys[0].key",
     'a literal key is refused on the non-loopback bind 0.0.0.0; use "env:NAME" or key_sha256'),
    ({"server__allowed_origins": ["https://ok.example", "ftp://x"]}, "server.allowed_origins[1]",
     "'ftp://x' is not an origin like \"https://app.example.com\" (no path)"),
    ({"server__allowed_origins": ["https://a.example/path"]}, "server.allowed_origins[0]",
     "'https://a.example/path' is not an origin like \"https://app.example.com\" (no path)"),
]


def test_duplicate_model_and_key_names_are_refused() -> None:
    doc = _doc()
    doc["models"].append({"name": "m", "provider": "local"})
    with pytest.raises(ConfigError, match=r"^t.toml: models\[1\].name: duplicate model name 'm'$"):
        parse_config(doc, source="t.toml", environ={})
    doc = _doc()
    doc["keys"].append({"name": "k", "key": "another-valid-key-0123456"})
    with pytest.raises(ConfigError, match=r"^t.toml: keys\[1\].name: duplicate key name 'k'$"):
        parse_config(doc, source="t.toml", environ={})


@pytest.mark.parametrize(("over", "path", "problem"), REFUSED, ids=[r[1] + ":" + r[2][:20] for r in REFUSED])
def test_each_value_check_names_its_key_and_problem(tmp_path: Path, over: dict[str, Any], path: str,
                                                    problem: str) -> None:
    doc = _doc(**over)
    for k in doc["keys"]:
        if k.get("key") is None:
            k.pop("key", None)
    with pytest.raises(ConfigError) as info:
        parse_config(doc, source="t.toml", base_dir=tmp_path, environ={})
    assert str(info.value) == f"t.toml: {path}: {problem}"


ACCEPTED = [
    {"server__port": 0}, {"server__port": 65535}, {"server__realtime_port": -1}, {"server__realtime_port": 65535},
    {"server__max_message_bytes": 1024}, {"server__max_session_duration_s": 0}, {"server__idle_timeout_s": 0},
    {"server__token_ttl_s": 7200}, {"server__settle_window_s": 0}, {"server__max_connections": 1},
    {"server__token_secret": "sixteen-chars..."}, {"keys__max_budget_usd": 0}, {"keys__max_sessions": 1},
    {"keys__max_sessions_per_minute": 1}, {"state__max_open_sessions": 1}, {"keys__key": "sixteen-chars..."},
    {"state__url": "unix:///tmp/r.sock"}, {"state__backend": "redis", "state__url": "redis://h:1/0"},
    {"keys__models": ["*"]}, {"keys__models": ["m"]}, {"server__allowed_origins": ["null", "http://localhost:3000"]},
    {"server__host": "0.0.0.0", "keys__key": None, "keys__key_sha256": "a" * 64},
]


@pytest.mark.parametrize("over", ACCEPTED, ids=[",".join(f"{k}={v}" for k, v in o.items())[:50] for o in ACCEPTED])
def test_values_at_each_boundary_are_accepted(tmp_path: Path, over: dict[str, Any]) -> None:
    doc = _doc(**over)
    for k in doc["keys"]:
        if k.get("key") is None:
            k.pop("key", None)
    parse_config(doc, source="t.toml", base_dir=tmp_path, environ={})
