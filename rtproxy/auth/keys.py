"""Virtual keys: stored as sha256 digests, looked up in constant time.

A presented key is hashed once and compared with every stored digest with
:func:`hmac.compare_digest`, without stopping at the first match, so the time taken does not tell
an attacker which key (or how much of one) matched. The plain key is never kept after hashing.

``key = "auto"`` in the config asks for a key generated on first run and kept, with 0600
permissions, in the state directory; such keys are accepted on loopback binds only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import attrs

from ..config import AUTO_KEY, Config, KeyConfig

#: Printed key hashes are shortened to this many hex digits in records and logs.
KEY_HASH_PREFIX_LEN = 12
#: The shortest plain key the config accepts (``[[keys]] key``, env or literal); ``rtproxy
#: hash-key`` warns below it, as a ``key_sha256`` cannot say how long its key was.
MIN_KEY_CHARS = 16


def hash_key(key: str) -> str:
    """The hex sha256 of a key: what ``key_sha256`` in the config holds."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@attrs.frozen
class VirtualKey:
    name: str
    sha256: str = attrs.field(repr=False)
    models: tuple[str, ...]
    role: str
    max_budget_usd: float | None
    max_sessions: int | None
    max_sessions_per_minute: int | None
    store_prompts: bool | None
    transcription_models: tuple[str, ...] = ("*",)
    delegation_models: tuple[str, ...] = ("*",)
    #: Minutes of audio (sent and received, measured by the gateway) the key may use.
    max_audio_minutes: float | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def hash_prefix(self) -> str:
        return self.sha256[:KEY_HASH_PREFIX_LEN]

    def allows_model(self, model: str) -> bool:
        return "*" in self.models or model in self.models

    def allows_transcription_model(self, model: str) -> bool:
        return "*" in self.transcription_models or model in self.transcription_models

    def allows_delegation_model(self, model: str) -> bool:
        return "*" in self.delegation_models or model in self.delegation_models


@attrs.frozen
class GeneratedKey:
    """A key made by rtproxy on first run: shown to the operator once per start, never logged."""

    name: str
    value: str = attrs.field(repr=False)
    path: Path


def _load_or_create_auto_key(state_dir: Path, name: str) -> tuple[str, Path]:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / f"{name}.key"
    try:
        value = path.read_text("utf-8").strip()
        if value:
            return value, path
    except FileNotFoundError:
        pass
    value = "rtp-" + secrets.token_urlsafe(32)
    # O_EXCL: two workers starting at once must not both write (the loser re-reads).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text("utf-8").strip(), path
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    return value, path


class KeyStore:
    """The configured virtual keys, looked up by presented key in constant time."""

    def __init__(self, keys: list[VirtualKey], generated: list[GeneratedKey] | None = None) -> None:
        self._keys = list(keys)
        self._digests = [bytes.fromhex(k.sha256) for k in self._keys]
        self.generated = list(generated or [])

    @classmethod
    def from_config(cls, cfg: Config) -> KeyStore:
        keys: list[VirtualKey] = []
        generated: list[GeneratedKey] = []
        for kc in cfg.keys:
            digest = kc.key_sha256
            if kc.key == AUTO_KEY:
                value, path = _load_or_create_auto_key(cfg.resolve_path(cfg.server.state_dir), kc.name)
                generated.append(GeneratedKey(kc.name, value, path))
                digest = hash_key(value)
            elif kc.key is not None:
                digest = hash_key(kc.key)
            assert digest is not None
            keys.append(_virtual_key(kc, digest))
        return cls(keys, generated)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._keys)

    def by_name(self, name: str) -> VirtualKey | None:
        for k in self._keys:
            if k.name == name:
                return k
        return None

    def lookup(self, presented: str) -> VirtualKey | None:
        """The key whose digest matches ``presented``, or None; constant time in the key count."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: VirtualKey | None = None
        for key, stored in zip(self._keys, self._digests):
            if hmac.compare_digest(digest, stored):
                found = key
        return found


def _virtual_key(kc: KeyConfig, digest: str) -> VirtualKey:
    return VirtualKey(
        name=kc.name,
        sha256=digest,
        models=tuple(kc.models),
        role=kc.role,
        max_budget_usd=kc.max_budget_usd,
        max_sessions=kc.max_sessions,
        max_sessions_per_minute=kc.max_sessions_per_minute,
        store_prompts=kc.store_prompts,
        # not given: what the key's models allow ("*" stays an explicit choice)
        transcription_models=tuple(kc.models if kc.transcription_models is None else kc.transcription_models),
        delegation_models=tuple(kc.models if kc.delegation_models is None else kc.delegation_models),
        max_audio_minutes=kc.max_audio_minutes,
    )
