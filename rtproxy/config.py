"""The configuration file: TOML in, frozen attrs values out.

``load_config(path)`` reads the file with :mod:`tomllib`, structures it with a strict cattrs
converter (unknown keys are errors), resolves ``"env:NAME"`` secrets from the environment and
checks the cross-references (duplicate names, unknown providers, keys allowed models that do not
exist). Every problem raises :class:`~rtproxy.errors.ConfigError` naming the file, the key path
and what is wrong, e.g. ``config.toml: keys[1].models: model 'gpt-x' is not configured``.

Limits carry their unit in their name (``_bytes``, ``_s``, ``_ms``).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs

from .errors import ConfigError
from .periods import parse_period

MIB = 1024 * 1024

#: A module per provider in rtproxy/providers/; what each needs of a model is checked below (_check_model).
Provider = Literal["openai", "azure", "gemini", "vertex", "local", "xai", "openai-compatible"]
#: What the offline model speaks (``[[models]] dialect`` of a ``local`` model).
LOCAL_DIALECTS = ("realtime", "gemini", "xai")
#: What an ``openai-compatible`` upstream speaks (``[[models]] dialect``): OpenAI Realtime GA or beta.
COMPATIBLE_DIALECTS = ("ga", "beta")
#: Headers an ``openai-compatible`` model's ``auth_header`` may not name: the WebSocket handshake's own.
_HANDSHAKE_HEADERS = frozenset({"host", "connection", "upgrade", "content-length", "transfer-encoding", "origin",
                                "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol",
                                "sec-websocket-extensions", "sec-websocket-accept", "openai-beta"})
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
#: The Gemini API's Live versions (``api_version`` of a ``gemini`` model).
GEMINI_VERSIONS = ("v1", "v1beta", "v1alpha")
Role = Literal["user", "admin"]
Api = Literal["realtime", "transcription", "live"]

#: The value of ``[[keys]].key`` that asks rtproxy to generate a key on first run.
AUTO_KEY = "auto"


@attrs.frozen
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    #: The realtime listener's port; 0 picks a free port (tests), -1 turns the listener off.
    realtime_port: int = 8001
    #: A port of its own for Prometheus scrapers (``GET /metrics``, no key: bind it where only
    #: the scraper reaches); -1: none (``/metrics`` on the main port answers admin keys either way).
    metrics_port: int = -1
    metrics_host: str = "127.0.0.1"
    #: Largest WebSocket message accepted on either leg; bigger ones close the session with 1009.
    max_message_bytes: int = 16 * MIB
    #: A client must finish its WebSocket handshake within this time.
    handshake_timeout_s: float = 10.0
    #: TCP + TLS + WebSocket handshake with the upstream must finish within this time.
    upstream_connect_timeout_s: float = 10.0
    #: How long to wait for the peer's close frame after sending ours.
    close_timeout_s: float = 2.0
    #: On shutdown, open sessions are closed (1001) and their records written within this time.
    shutdown_grace_s: float = 5.0
    #: Where rtproxy keeps generated state (the auto key), relative to the config file.
    state_dir: str = ".rtproxy"
    #: Serve both listeners over TLS with this certificate chain and key (PEM files).
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    #: CA bundle that verifies ``wss://`` upstreams (a private provider); the system's by default.
    upstream_ca_file: str | None = None
    #: Signs ephemeral ``ek_`` tokens (``"env:NAME"``; at least 16 characters). Without it each
    #: process generates its own: tokens then die with the process and, under ``--workers``, the
    #: workers of one ``rtproxy serve`` share one generated secret.
    token_secret: str | None = attrs.field(default=None, repr=False)
    #: Lifetime of an ephemeral token when the request does not ask for one (max 7200 s).
    token_ttl_s: float = 60.0
    #: A session is closed (error event + 1008) after this long; 0 means no limit.
    max_session_duration_s: float = 3600.0
    #: A session with no frame either way for this long is closed (error event + 1008); 0: never.
    idle_timeout_s: float = 300.0
    #: Sessions open at once in this process; more are refused with 503 (4503 for browsers).
    max_concurrent_sessions: int = 10000
    #: A client that does not take its data for this long is closed with 1008: the proxy never
    #: buffers more for it than the kernel's socket buffers.
    client_send_timeout_s: float = 10.0
    #: Browser ``Origin``s allowed to open sessions; empty allows any (check it at your edge then).
    allowed_origins: tuple[str, ...] = ()
    #: Refuse keys written as ``key`` (plain, env or auto): only ``key_sha256`` may be used.
    require_key_sha256: bool = False
    #: When a client leaves with responses in flight, the upstream stays open this long to cancel
    #: them and bill them as the provider reports; what is not reported by then is estimated.
    settle_window_s: float = 5.0
    #: A GPT-Live client must send its first frame (``session.start``) within this long of the
    #: upgrade, or it is told why and closed (the gateway dials only once it has read it).
    live_start_timeout_s: float = 10.0
    #: Client connections open at once in this process, both ports together (a handshake in
    #: progress, a session, an idle HTTP keep-alive); more get a 503 and are closed. Lowered at
    #: start to what the process's descriptor limit allows (two descriptors per connection).
    max_connections: int = 4096
    #: An HTTP connection with no request in progress is closed after this long.
    keep_alive_timeout_s: float = 5.0
    #: A client mid-request (its head or body) that sends nothing for this long is closed.
    http_read_timeout_s: float = 30.0
    #: A REST request's body must arrive whole within this long of its head (it is at most 1 MiB):
    #: slower, it is answered 408 and its connection closed, however steadily it trickles (a
    #: byte per ``http_read_timeout_s`` would otherwise hold a connection slot for good). The
    #: head itself must arrive within ``handshake_timeout_s``; the realtime listener reads no bodies.
    http_body_timeout_s: float = 30.0
    #: Fragments one WebSocket message may arrive in; more close the connection with 1009.
    max_fragments_per_message: int = 1024


@attrs.frozen
class StateConfig:
    """The state store behind concurrency caps, rates and budgets (rtproxy.state)."""

    #: ``sqlite``: one file on this host, exact across ``--workers``; ``redis``: across servers.
    backend: Literal["sqlite", "redis"] = "sqlite"
    #: The SQLite file, relative to ``[server].state_dir``.
    path: str = "state.sqlite3"
    #: ``redis://[user:password@]host:port/db`` or ``unix:///path/redis.sock``; ``"env:REDIS_URL"``.
    url: str | None = attrs.field(default=None, repr=False)
    #: Prefix of every Redis key rtproxy writes.
    prefix: str = "rtproxy:"
    #: When the store cannot be reached: ``fail_closed`` refuses new sessions (503 / 4503);
    #: ``fail_open`` admits them against this process's own limits. Open sessions go on either way.
    on_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    #: A session whose process stopped renewing its lease stops counting after this long.
    lease_s: float = 30.0
    #: One store call (connect included) must answer within this time.
    timeout_s: float = 1.0
    #: Sessions open at once across everything sharing the store; unset: no such cap.
    max_open_sessions: int | None = None
    #: Ephemeral tokens' session configs kept in the store at once per key (those too large to
    #: travel inside the token), and their total UTF-8 bytes; beyond either, minting answers 429.
    max_token_sessions_per_key: int = 256
    max_token_session_bytes_per_key: int = 8 * 1024 * 1024


@attrs.frozen
class SpendLogConfig:
    #: JSON-lines file, relative to the config file; its directory is created.
    path: str = "spend.jsonl"
    #: Write messages, session config and responses into records (per-key overridable).
    store_prompts: bool = True


@attrs.frozen
class LedgerConfig:
    """The spend ledger (rtproxy.ledger): the database the spend log is shipped to."""

    #: ``postgresql://[user[:password]@]host[:port]/db`` (several servers), ``sqlite:///abs/path``
    #: or a file path (relative to the config file), or ``"env:DATABASE_URL"``. Unset: the embedded
    #: SQLite file ``ledger.sqlite3`` beside the spend log. Never logged (it may hold a password).
    url: str | None = attrs.field(default=None, repr=False)
    #: Database calls running at once in this process (each in a worker thread, on a pooled connection).
    max_connections: int = 4
    #: One database call (connecting included) must answer within this time.
    timeout_s: float = 10.0


@attrs.frozen
class LocalModelConfig:
    """The built-in offline model (``provider = "local"``)."""

    #: Loopback port of the offline model's WebSocket server; 0 picks a free port.
    port: int = 0
    #: Pause between streamed response chunks, so responses take time like a real model's.
    stream_delay_ms: float = 5.0
    #: How often a GPT-Live session checks its billed seconds and sends ``session.usage.updated``
    #: when they rose (the real API: about every 15 s).
    live_usage_interval_ms: float = 1000.0
    #: ``"auto"``: the offline model hears speech (pocketsphinx) and speaks (espeak-ng) when those
    #: packages are installed (``make run`` installs them); ``"off"``: placeholder transcripts
    #: ("(spoken, 1.6 seconds)") and tone audio, deterministic and without their CPU cost.
    speech: Literal["auto", "off"] = "auto"
    #: Gemini Live (``dialect = "gemini"``): how long one connection lives, as Google's (about 10
    #: minutes), and how long before the cut ``goAway`` is sent (unset: min(60 s, half the limit));
    #: sessions kept for resumption (the oldest forgotten beyond).
    gemini_connection_limit_s: float = 600.0
    gemini_go_away_lead_s: float | None = None
    gemini_max_sessions: int = 256


@attrs.frozen
class PriceConfig:
    """USD per one million tokens (and per hour of audio); overrides the price database
    (genai-prices) for one model. A cached or image rate left out is the uncached input rate."""

    input_text: float = 0.0
    input_audio: float = 0.0
    output_text: float = 0.0
    output_audio: float = 0.0
    cached_text: float | None = None
    cached_audio: float | None = None
    input_image: float | None = None
    cached_image: float | None = None
    #: USD per hour of audio, for usage the provider reports as a duration (whisper-1), and a
    #: GPT-Live voice model's active seconds.
    audio_per_hour: float | None = None
    #: USD per hour of a GPT-Live session's paused (standby) seconds; none: the active rate.
    standby_audio_per_hour: float | None = None
    #: USD per minute of audio the gateway relayed (measured from the bytes, at the session's
    #: format), for providers that bill audio by duration and report no usage (xAI): audio the
    #: client sent, and audio the model spoke.
    audio_in_per_minute: float | None = None
    audio_out_per_minute: float | None = None
    #: USD per text item a client creates (``conversation.item.create`` with text; tool outputs
    #: and audio items are not text items): xAI's per-message fee.
    per_text_item: float | None = None


@attrs.frozen
class ModelConfig:
    #: The name clients ask for (``?model=`` or Azure's ``deployment=``).
    name: str
    provider: Provider
    #: The provider's model name (OpenAI) or deployment (Azure); defaults to ``name``.
    upstream_model: str | None = None
    #: ``wss://api.openai.com/v1`` for openai (``/realtime`` is appended); ``https://<resource>.openai.azure.com``
    #: for azure; ``https://api.x.ai`` for xai (the default; ``/v1/realtime`` is appended); required for
    #: openai-compatible: its base up to ``/v1`` (``http://vllm:8000/v1``; ``/realtime`` is appended).
    api_base: str | None = None
    #: The provider secret, usually ``"env:OPENAI_API_KEY"``; never sent to clients.
    api_key: str | None = attrs.field(default=None, repr=False)
    api_version: str | None = None
    #: The API this model serves: ``"realtime"`` sessions (``?model=``), or ``"transcription"``:
    #: an input-transcription model (``gpt-4o-transcribe``, ``whisper-1``) that transcription
    #: sessions (``?intent=transcription``) are routed by and that session updates may name.
    api: Api = "realtime"
    price: PriceConfig | None = None
    #: What the upstream speaks, where a provider speaks more than one: a ``local`` model's
    #: ``"realtime"`` (the default), ``"gemini"`` or ``"xai"`` (the offline model playing xAI's
    #: Grok Voice); an ``openai-compatible`` model's ``"ga"`` (the default) or ``"beta"`` OpenAI
    #: Realtime dialect: clients must speak the same one (the other is refused at the handshake).
    dialect: str | None = None
    #: Vertex AI: the Google Cloud project and location (``"us-central1"``, ``"global"``).
    project: str | None = None
    location: str | None = None
    #: Vertex AI: a service-account JSON file (relative to the config file); none: Application
    #: Default Credentials.
    credentials_file: str | None = None
    #: A model served through Gemini Live (gemini, vertex, a local model in the gemini dialect):
    #: fields merged under the ``setup`` of every translated OpenAI Realtime session (what the
    #: client's settings decide wins). Unset: :data:`DEFAULT_GEMINI_SETUP`; ``{}``: nothing added.
    gemini_setup: dict[str, Any] | None = attrs.field(default=None, hash=False)
    #: openai-compatible: the header the upstream reads ``api_key`` from. ``"Authorization"`` (the
    #: default) carries ``Bearer <api_key>``; any other name (``"api-key"``, ``"x-api-key"``) the
    #: bare key. Without ``api_key`` no credential is sent.
    auth_header: str | None = None

    @property
    def target_model(self) -> str:
        return self.upstream_model or self.name


@attrs.frozen
class KeyConfig:
    name: str
    #: The plain key (``"env:NAME"`` recommended, ``"auto"`` to generate one locally).
    key: str | None = attrs.field(default=None, repr=False)
    #: Hex sha256 of the key, as printed by ``rtproxy hash-key``.
    key_sha256: str | None = None
    #: Model names this key may use; ``["*"]`` means all.
    models: tuple[str, ...] = ("*",)
    #: Input-transcription models (``whisper-1``, ``gpt-4o-transcribe``, …) a session of this key
    #: may name in ``session.update``; the provider bills them apart. ``["*"]``: any. Not given:
    #: the key's ``models`` (a key limited to some models is not open to every transcription model).
    transcription_models: tuple[str, ...] | None = None
    #: GPT-Live delegated backend models (``delegation.responses.model``, ``decisions.model``) a
    #: session of this key may name; the provider bills their tokens apart. ``["*"]``: any. Not
    #: given: the key's ``models``.
    delegation_models: tuple[str, ...] | None = None
    role: Role = "user"
    max_budget_usd: float | None = None
    #: Minutes of audio (sent and received, as the gateway measured them) the key may use, on
    #: every provider; enforced at admission and mid-session like the budget.
    max_audio_minutes: float | None = None
    max_sessions: int | None = None
    #: New sessions this key may open per minute (ephemeral tokens count against their key).
    max_sessions_per_minute: int | None = None
    store_prompts: bool | None = None
    #: ``max_budget_usd`` and ``max_audio_minutes`` per period: ``1d`` (from 00:00 UTC each day),
    #: ``monthly`` (from 00:00 UTC on the 1st), ``7d`` or ``30d`` (runs of days from 00:00 UTC,
    #: counted for a config key from 1970-01-01: 7d periods start on Thursdays). Not given: for
    #: the key's lifetime.
    budget_period: str | None = None


@attrs.frozen
class Config:
    server: ServerConfig = ServerConfig()
    spend_log: SpendLogConfig = SpendLogConfig()
    ledger: LedgerConfig = LedgerConfig()
    local: LocalModelConfig = LocalModelConfig()
    state: StateConfig = StateConfig()
    models: tuple[ModelConfig, ...] = ()
    keys: tuple[KeyConfig, ...] = ()
    #: The directory relative paths are resolved against (the config file's directory).
    base_dir: Path = attrs.field(default=Path("."), eq=False)
    source: str = attrs.field(default="<config>", eq=False)

    def resolve_path(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def model(self, name: str) -> ModelConfig | None:
        for m in self.models:
            if m.name == name:
                return m
        return None


_converter = cattrs.Converter(forbid_extra_keys=True)


def _structure_str_tuple(value: Any, _: Any) -> tuple[str, ...]:
    # cattrs would happily turn "gpt-realtime" into a tuple of characters.
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError  # cattrs reports it by type: _TYPE_PROBLEMS says what the operator reads
    return tuple(value)


_converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_str_tuple)


# Exact scalar types: cattrs would turn "false" into True, "8100" into 8100 and 1 into True. An
# operator who writes `store_prompts = "false"` means false; guessing is worse than refusing.
# (The message the operator sees is _TYPE_PROBLEMS', by the type cattrs names.)
def _exact_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError
    return value


def _exact_int(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError
    return value


def _exact_float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError
    return float(value)


def _exact_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    return value


_TYPE_PROBLEMS = {
    "bool": "must be true or false (a TOML boolean, not a string or a number)",
    "int": "must be a whole number (not a string, a boolean or a fraction)",
    "float": "must be a number (not a string or a boolean)",
    "str": "must be a string (in quotes)",
    "tuple": "must be a list of strings, e.g. [\"model-a\", \"model-b\"]",
}
_EXPECTED = re.compile(r"^invalid value for type, expected (\w+)(?: \| None)?$")
#: A section or inline table (``price``, ``[server]``) given as something else: cattrs says so by
#: naming the class it expected, or by failing to read the value's keys.
_NOT_A_TABLE = re.compile(r"^(?:invalid value for type, expected [\w.]+\.\w+(?: \| None)?"
                          r"|unknown error \('\w+' object has no attribute 'keys'\))$")
_TABLE_PROBLEM = "must be a table (a [section], or { name = value, ... } inline)"


for _type, _hook in ((bool, _exact_bool), (int, _exact_int), (float, _exact_float), (str, _exact_str)):
    _converter.register_structure_hook(_type, _hook)
_LITERAL_ERROR = re.compile(r"unknown error \((.*) not in literal typing\.Literal\[(.*)\]\)")
_ENV_PREFIX = "env:"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: ``[ledger] url``: Postgres, SQLite, or a plain path (no ``scheme://`` of another kind).
_LEDGER_URL = re.compile(r"^(?:postgres(?:ql)?://|sqlite:|(?![A-Za-z][A-Za-z0-9+.-]*://)[^\x00]+$)")


def _resolve_secret(value: str | None, file: str, path: str, environ: dict[str, str]) -> str | None:
    if value is None or not value.startswith(_ENV_PREFIX):
        return value
    name = value[len(_ENV_PREFIX):]
    if not name:
        raise ConfigError(file, path, "'env:' needs a variable name, e.g. \"env:OPENAI_API_KEY\"")
    if name not in environ or not environ[name]:
        raise ConfigError(file, path, f"environment variable {name} is not set")
    return environ[name]


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_EXTRA_KEYS = re.compile(r"^extra fields found \((.*)\)$")


def _did_you_mean(exc: BaseException, names: list[str]) -> str:
    """``"; did you mean max_message_bytes?"`` for unknown keys that are near a known one of the
    table cattrs found them in (its ForbiddenExtraKeysError names the class), else ``""``."""
    if isinstance(exc, cattrs.ForbiddenExtraKeysError) and exc.extra_fields == set(names):
        known = [f.name for f in attrs.fields(exc.cl)]
        guesses = [f"{name} → {match[0]}" if len(names) > 1 else match[0]
                   for name in names if (match := difflib.get_close_matches(name, known, n=1, cutoff=0.6))]
        return f"; did you mean {', '.join(guesses)}?" if guesses else ""
    for inner in getattr(exc, "exceptions", ()):
        found = _did_you_mean(inner, names)
        if found:
            return found
    return ""


def _format_cattrs_error(exc: Exception) -> tuple[str, str]:
    """Turn a cattrs error into (key path, problem), the first one only."""
    # each of cattrs' messages reads "<problem> @ $.<path>" (the problem may quote the value, so
    # the path is after the last " @ ")
    problem, _, where = cattrs.transform_error(exc, path="$")[0].rpartition(" @ ")
    path = where.removeprefix("$").lstrip(".")
    unknown = _EXTRA_KEYS.match(problem)
    if unknown:  # cattrs' "extra fields found (x)": name them as keys (sorted: cattrs lists a set),
        # and guess what was meant
        names = sorted(unknown.group(1).split(", "))
        return path, f"unknown key(s) ({', '.join(names)})" + _did_you_mean(exc, names)
    literal = _LITERAL_ERROR.match(problem)
    if literal:
        problem = f"must be one of {literal.group(2)}, not {literal.group(1)!r}"
    expected = _EXPECTED.match(problem)
    if expected and expected.group(1) in _TYPE_PROBLEMS:
        return path, _TYPE_PROBLEMS[expected.group(1)]
    if _NOT_A_TABLE.match(problem):
        return path, _TABLE_PROBLEM
    return path, problem


def parse_config(
    data: dict[str, Any],
    *,
    source: str = "<config>",
    base_dir: Path = Path("."),
    environ: dict[str, str] | None = None,
) -> Config:
    """Structure and check a parsed TOML document. Raises ConfigError."""
    env = dict(os.environ) if environ is None else environ
    try:
        cfg = _converter.structure({**data}, Config)
    except Exception as exc:  # cattrs raises ClassValidationError / ForbiddenExtraKeysError
        path, problem = _format_cattrs_error(exc)
        raise ConfigError(source, path, problem) from None
    cfg = attrs.evolve(cfg, base_dir=base_dir, source=source)
    return _check(cfg, env)


def _check_price(p: PriceConfig, file: str, where: str) -> None:
    rates = attrs.asdict(p)
    for name, rate in rates.items():
        if rate is not None and rate < 0:
            raise ConfigError(file, f"{where}.{name}", "must not be negative")
    if not any(rates.values()):
        raise ConfigError(file, where, "gives no rate: set input_text, input_audio, output_text, output_audio "
                                       "(USD per 1M tokens), audio_per_hour, audio_in_per_minute / "
                                       "audio_out_per_minute or per_text_item")


_ENV_KEY = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY", "gemini": "GEMINI_API_KEY",
            "xai": "XAI_API_KEY"}


#: What a translated session's setup carries unless the model's ``gemini_setup`` says otherwise:
#: a sliding context window, without which Google ends an audio session after 15 minutes (2 with
#: video) however often the gateway resumes it on a new connection (docs/gemini.md).
DEFAULT_GEMINI_SETUP: dict[str, Any] = {"contextWindowCompression": {"slidingWindow": {}}}


def _check_model(m: ModelConfig) -> tuple[str, str] | None:
    """What the model's provider needs of its entry: (field, problem), or None."""
    if m.provider == "azure" and not m.api_base:
        return "api_base", "azure models need api_base (https://<resource>.openai.azure.com)"
    if m.provider == "azure" and not m.api_version:
        return "api_version", "azure models need api_version"
    if m.provider in _ENV_KEY and not m.api_key:
        return "api_key", f"{m.provider} models need an api_key (e.g. \"env:{_ENV_KEY[m.provider]}\")"
    if m.provider == "gemini" and m.api_version is not None and m.api_version not in GEMINI_VERSIONS:
        return "api_version", f"the Gemini API serves Live on {', '.join(GEMINI_VERSIONS)}"
    if m.provider == "vertex" and not m.project:
        return "project", "vertex models need project (the Google Cloud project id)"
    if m.provider == "vertex" and not m.location:
        return "location", "vertex models need location (e.g. \"us-central1\", or \"global\")"
    if m.provider == "openai-compatible" and not m.api_base:
        return "api_base", ("openai-compatible models need api_base (the server's base URL up to /v1, e.g. "
                            "\"http://127.0.0.1:8000/v1\")")
    if m.provider in ("xai", "openai-compatible") and m.api_base is not None \
            and not re.match(r"^(https?|wss?)://[^/\s]+", m.api_base):
        return "api_base", "must be an http(s) or ws(s) URL"
    if (m.provider == "openai-compatible" and m.api == "live") or (m.provider == "xai" and m.api != "realtime"):
        return "api", f"{m.provider} models serve realtime sessions" + \
            (" (or transcription)" if m.provider == "openai-compatible" else "")
    if m.dialect is not None:
        if m.provider == "local" and m.dialect not in LOCAL_DIALECTS:
            return "dialect", f"a local model speaks {', '.join(LOCAL_DIALECTS[:-1])} or {LOCAL_DIALECTS[-1]}"
        if m.provider == "openai-compatible" and m.dialect not in COMPATIBLE_DIALECTS:
            return "dialect", "an openai-compatible model speaks ga or beta (the upstream's OpenAI Realtime dialect)"
        if m.provider not in ("local", "openai-compatible"):
            return "dialect", ("dialect is for local models (realtime, gemini or xai) and openai-compatible ones "
                               "(ga or beta)")
        if m.dialect == "xai" and m.api != "realtime":
            return "api", "the offline model plays xAI for realtime sessions only"
    if m.auth_header is not None:
        if m.provider != "openai-compatible":
            return "auth_header", "is for openai-compatible models"
        if not _HEADER_NAME.match(m.auth_header) or m.auth_header.lower() in _HANDSHAKE_HEADERS:
            return "auth_header", ("must be a header name such as \"Authorization\", \"api-key\" or \"x-api-key\" "
                                   "(not one of the WebSocket handshake's own)")
    for field in ("project", "location", "credentials_file"):
        if getattr(m, field) is not None and m.provider != "vertex":
            return field, "is for vertex models"
    if m.gemini_setup is not None:
        if m.provider not in ("gemini", "vertex") and m.dialect != "gemini":
            return "gemini_setup", "is for models served through Gemini Live (gemini, vertex, or local with dialect \"gemini\")"
        for name in ("model", "sessionResumption", "session_resumption"):
            if name in m.gemini_setup:
                return f"gemini_setup.{name}", "is the gateway's to set"
    return None


def _check(cfg: Config, env: dict[str, str]) -> Config:
    file = cfg.source
    s = cfg.server
    for name in ("port", "realtime_port", "metrics_port"):
        port = getattr(s, name)
        if not (-1 <= port <= 65535) or (name == "port" and port < 0):
            raise ConfigError(file, f"server.{name}", f"{port} is not a valid port")
    if s.max_message_bytes < 1024:
        raise ConfigError(file, "server.max_message_bytes", "must be at least 1024 bytes")
    for name in ("handshake_timeout_s", "upstream_connect_timeout_s", "close_timeout_s", "shutdown_grace_s",
                 "client_send_timeout_s", "token_ttl_s", "keep_alive_timeout_s", "http_read_timeout_s",
                 "http_body_timeout_s", "live_start_timeout_s"):
        if getattr(s, name) <= 0:
            raise ConfigError(file, f"server.{name}", "must be a positive number of seconds")
    for name in ("max_session_duration_s", "idle_timeout_s"):
        if getattr(s, name) < 0:
            raise ConfigError(file, f"server.{name}", "must be 0 (no limit) or a positive number of seconds")
    if s.token_ttl_s > 7200:
        raise ConfigError(file, "server.token_ttl_s", "must be at most 7200 seconds (2 hours)")
    for name in ("max_concurrent_sessions", "max_connections", "max_fragments_per_message"):
        if getattr(s, name) < 1:
            raise ConfigError(file, f"server.{name}", "must be at least 1")
    if (s.tls_certfile is None) != (s.tls_keyfile is None):
        raise ConfigError(file, "server.tls_certfile", "give both tls_certfile and tls_keyfile, or neither")
    for name in ("tls_certfile", "tls_keyfile", "upstream_ca_file"):
        value = getattr(s, name)
        if value is not None and not cfg.resolve_path(value).is_file():
            raise ConfigError(file, f"server.{name}", f"file {value!r} does not exist")
    token_secret = _resolve_secret(s.token_secret, file, "server.token_secret", env)
    if token_secret is not None and len(token_secret) < 16:
        raise ConfigError(file, "server.token_secret", "is too short: use at least 16 random characters")
    for i, origin in enumerate(s.allowed_origins):
        if origin != "null" and not re.match(r"^https?://[^/\s]+$", origin):
            raise ConfigError(file, f"server.allowed_origins[{i}]",
                              f"{origin!r} is not an origin like \"https://app.example.com\" (no path)")
    s = attrs.evolve(s, token_secret=token_secret)
    if s.settle_window_s < 0:
        raise ConfigError(file, "server.settle_window_s", "must be 0 (bill nothing late) or a positive number of seconds")
    st = cfg.state
    state_url = _resolve_secret(st.url, file, "state.url", env)
    if st.backend == "redis" and not state_url:
        raise ConfigError(file, "state.url", "the redis backend needs url (e.g. \"env:REDIS_URL\")")
    if state_url is not None and not re.match(r"^(redis|unix)://", state_url):
        raise ConfigError(file, "state.url", "must start with redis:// or unix://")
    for name in ("lease_s", "timeout_s"):
        if getattr(st, name) <= 0:
            raise ConfigError(file, f"state.{name}", "must be a positive number of seconds")
    if st.max_open_sessions is not None and st.max_open_sessions < 1:
        raise ConfigError(file, "state.max_open_sessions", "must be at least 1")
    for name in ("max_token_sessions_per_key", "max_token_session_bytes_per_key"):
        if getattr(st, name) < 1:
            raise ConfigError(file, f"state.{name}", "must be at least 1")
    st = attrs.evolve(st, url=state_url)
    ledger_url = _resolve_secret(cfg.ledger.url, file, "ledger.url", env)
    if ledger_url is not None and not _LEDGER_URL.match(ledger_url):
        # the value is not echoed: it may be a URL with a password in it
        raise ConfigError(file, "ledger.url", "must be postgresql://…, sqlite:///path or a file path "
                                              "(no other scheme)")
    if cfg.ledger.max_connections < 1:
        raise ConfigError(file, "ledger.max_connections", "must be at least 1")
    if cfg.ledger.timeout_s <= 0:
        raise ConfigError(file, "ledger.timeout_s", "must be a positive number of seconds")
    ledger = attrs.evolve(cfg.ledger, url=ledger_url)
    loc = cfg.local
    if loc.gemini_connection_limit_s <= 0:
        raise ConfigError(file, "local.gemini_connection_limit_s", "must be a positive number of seconds")
    if loc.gemini_go_away_lead_s is not None and not 0 < loc.gemini_go_away_lead_s < loc.gemini_connection_limit_s:
        raise ConfigError(file, "local.gemini_go_away_lead_s", "must be more than 0 and less than the connection limit")
    if loc.gemini_max_sessions < 1:
        raise ConfigError(file, "local.gemini_max_sessions", "must be at least 1")

    models: list[ModelConfig] = []
    seen: set[str] = set()
    for i, m in enumerate(cfg.models):
        where = f"models[{i}]"
        if not m.name or m.name in seen:
            problem = "is empty" if not m.name else f"duplicate model name {m.name!r}"
            raise ConfigError(file, f"{where}.name", problem)
        seen.add(m.name)
        api_key = _resolve_secret(m.api_key, file, f"{where}.api_key", env)
        m = attrs.evolve(m, api_key=api_key)
        if m.credentials_file is not None:
            m = attrs.evolve(m, credentials_file=str(cfg.resolve_path(m.credentials_file)))
        problem = _check_model(m)
        if problem is not None:
            raise ConfigError(file, f"{where}.{problem[0]}", problem[1])
        if m.price is not None:
            _check_price(m.price, file, f"{where}.price")
        models.append(m)

    keys: list[KeyConfig] = []
    key_names: set[str] = set()
    loopback = is_loopback_host(s.host)
    for i, k in enumerate(cfg.keys):
        where = f"keys[{i}]"
        if not k.name or k.name in key_names:
            raise ConfigError(file, f"{where}.name", "is empty" if not k.name else f"duplicate key name {k.name!r}")
        key_names.add(k.name)
        if (k.key is None) == (k.key_sha256 is None):
            raise ConfigError(file, where, "give exactly one of key or key_sha256")
        if s.require_key_sha256 and k.key is not None:
            raise ConfigError(file, f"{where}.key", "server.require_key_sha256 is set: give key_sha256 instead")
        if k.max_sessions_per_minute is not None and k.max_sessions_per_minute < 1:
            raise ConfigError(file, f"{where}.max_sessions_per_minute", "must be at least 1")
        if k.key_sha256 is not None and not _HEX64.match(k.key_sha256):
            raise ConfigError(file, f"{where}.key_sha256", "must be 64 lowercase hex digits (see `rtproxy hash-key`)")
        plain = k.key
        if plain is not None and not plain.startswith(_ENV_PREFIX) and plain != AUTO_KEY and not loopback:
            # A key written in the file is as good as public; only loopback servers may use one.
            raise ConfigError(
                file, f"{where}.key",
                f"a literal key is refused on the non-loopback bind {s.host}; use \"env:NAME\" or key_sha256",
            )
        if plain == AUTO_KEY and not loopback:
            raise ConfigError(file, f"{where}.key",
                              f"\"auto\" keys are for loopback binds only, not {s.host}: use key = \"env:NAME\" "
                              "or key_sha256 (see `rtproxy hash-key`), or bind host = \"127.0.0.1\"")
        resolved = _resolve_secret(plain, file, f"{where}.key", env)
        if resolved is not None and resolved != AUTO_KEY and len(resolved) < 16:
            raise ConfigError(file, f"{where}.key", "is too short: use at least 16 random characters")
        for j, model in enumerate(k.models):
            if model != "*" and model not in seen:
                raise ConfigError(file, f"{where}.models[{j}]", f"model {model!r} is not configured in [[models]]")
        if k.max_budget_usd is not None and k.max_budget_usd < 0:
            raise ConfigError(file, f"{where}.max_budget_usd", "must not be negative")
        if k.max_audio_minutes is not None and k.max_audio_minutes < 0:
            raise ConfigError(file, f"{where}.max_audio_minutes", "must not be negative")
        if k.max_sessions is not None and k.max_sessions < 1:
            raise ConfigError(file, f"{where}.max_sessions", "must be at least 1")
        try:
            period = parse_period(k.budget_period)
        except ValueError as exc:
            raise ConfigError(file, f"{where}.budget_period", str(exc).removeprefix("budget_period ")) from None
        keys.append(attrs.evolve(k, key=resolved, budget_period=period))
    return attrs.evolve(cfg, server=s, state=st, ledger=ledger, models=tuple(models), keys=tuple(keys))


def load_config(path: str | os.PathLike[str], *, environ: dict[str, str] | None = None) -> Config:
    """Read, structure and check a config file. Raises ConfigError."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(p), "", f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), "", f"not valid TOML: {exc}") from None
    return parse_config(data, source=str(p), base_dir=p.resolve().parent, environ=environ)
