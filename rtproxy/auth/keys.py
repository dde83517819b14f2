"""Virtual keys: stored as sha256 digests, looked up in constant time.

A presented key is hashed once and compared with every stored digest with
:func:`hmac.compare_digest`, without stopping at the first match, so the time taken does not tell
an attacker which key (or how much of one) matched. The plain key is never kept after hashing.

``key = "auto"`` in the config asks for a key generated on first run and kept, with 0600
permissions, in the state directory; such keys are accepted on loopback binds only.

Keys come from two places: ``[[keys]]`` in the config (read-only: changed by editing the file and
restarting) and the ledger's key table (rtproxy.ledger.keys: created, changed, rotated and
revoked at run time through the admin API or ``rtproxy keys``). A :class:`KeyStore` holds both;
the ledger's keys are replaced as a whole each time the ledger's key version moves
(:meth:`KeyStore.replace_live`), so a lookup never waits on the database. Ledger keys are found by
their digest in a dict: the digest of a high-entropy secret tells an attacker timing it nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import attrs

from ..config import AUTO_KEY, Config, KeyConfig
from ..periods import Period

#: Printed key hashes are shortened to this many hex digits in records and logs.
KEY_HASH_PREFIX_LEN = 12
#: The shortest plain key the config accepts (``[[keys]] key``, env or literal); ``rtproxy
#: hash-key`` warns below it, as a ``key_sha256`` cannot say how long its key was.
MIN_KEY_CHARS = 16


def hash_key(key: str) -> str:
    """The hex sha256 of a key: what ``key_sha256`` in the config holds."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@attrs.frozen
class TeamTerms:
    """A team's budget, as each of its keys carries it (the tighter of the key's and the team's wins)."""

    name: str
    max_budget_usd: float | None = None
    budget_period: Period | None = None
    #: When the team's 7- and 30-day periods count from (seconds since the epoch).
    anchor_s: float = 0.0
    #: Reported (API, /metrics) when the period's spend reaches it; nothing is refused.
    soft_budget_usd: float | None = None


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
    #: Minutes of audio (sent and received, measured by the gateway) the key may use (per period).
    max_audio_minutes: float | None = None
    #: ``max_budget_usd`` and ``max_audio_minutes`` are per period of this (None: for the key's lifetime).
    budget_period: Period | None = None
    #: When the key's 7- and 30-day periods count from (seconds since the epoch).
    budget_anchor_s: float = 0.0
    soft_budget_usd: float | None = None
    team: TeamTerms | None = None
    #: After this moment (seconds since the epoch) the key is refused and its sessions end.
    expires_at: float | None = None
    #: Who the key is for, and its tags: written into every spend record of the key.
    user: str | None = None
    tags: tuple[str, ...] = ()
    #: The key's metadata as JSON text (an object), as given at creation or update.
    metadata_json: str = "{}"
    #: Where the key is defined: ``config`` (read-only) or ``ledger`` (the admin API).
    source: Literal["config", "ledger"] = "config"

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def record_fields(self) -> dict[str, object]:
        """What every spend record of this key carries beside its name: its team, user and tags
        (those it has)."""
        fields: dict[str, object] = {}
        if self.team is not None:
            fields["team"] = self.team.name
        if self.user is not None:
            fields["user"] = self.user
        if self.tags:
            fields["tags"] = list(self.tags)
        return fields

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


@attrs.frozen
class LiveKey:
    """A ledger key as the store holds it: the key, and its digests — the current one, and the one
    it was rotated from while that one's grace period lasts (until ``previous_until``)."""

    key: VirtualKey
    previous_sha256: str | None = None
    previous_until: float | None = None


class KeyStore:
    """The virtual keys of the config and of the ledger, looked up by presented key."""

    def __init__(self, keys: list[VirtualKey], generated: list[GeneratedKey] | None = None) -> None:
        self._keys = list(keys)
        self._digests = [bytes.fromhex(k.sha256) for k in self._keys]
        self.generated = list(generated or [])
        #: Ledger keys by digest (the previous digest of a rotated key too, with its end of grace).
        self._live: dict[bytes, tuple[VirtualKey, float | None]] = {}
        self._live_by_name: dict[str, VirtualKey] = {}
        #: The ledger's key version these were read at (None: never read).
        self.version: int | None = None

    def replace_live(self, keys: Iterable[LiveKey], version: int | None = None) -> None:
        """The ledger's keys, all of them, as read at ``version`` (a config key's name wins)."""
        self.install(self.prepare_live(keys), version)

    def install(self, prepared: tuple[dict[bytes, tuple[VirtualKey, float | None]], dict[str, VirtualKey]],
                version: int | None) -> None:
        """Swap in what :meth:`prepare_live` built (on the event loop: two assignments)."""
        self._live, self._live_by_name = prepared
        self.version = version

    def prepare_live(self, keys: Iterable[LiveKey]
                     ) -> tuple[dict[bytes, tuple[VirtualKey, float | None]], dict[str, VirtualKey]]:
        """The lookup tables of the ledger's keys (pure: built in a worker thread, where the
        registry reads the keys, so a reload of many keys never holds the event loop)."""
        configured = {k.name for k in self._keys}
        live: dict[bytes, tuple[VirtualKey, float | None]] = {}
        by_name: dict[str, VirtualKey] = {}
        for lk in keys:
            if lk.key.name in configured:
                continue
            by_name[lk.key.name] = lk.key
            live[bytes.fromhex(lk.key.sha256)] = (lk.key, None)
            if lk.previous_sha256 and lk.previous_until is not None:
                live.setdefault(bytes.fromhex(lk.previous_sha256), (lk.key, lk.previous_until))
        return live, by_name

    def accepts_digest(self, sha256: str, now: float) -> bool:
        """Whether a key with this (hex) digest is still accepted: a current key's, or a rotated
        key's old one within its grace period."""
        try:
            entry = self._live.get(bytes.fromhex(sha256))
        except ValueError:
            return False
        return entry is not None and (entry[1] is None or now < entry[1])

    def accepts_minter(self, key: VirtualKey, digest_prefix: str, now: float) -> bool:
        """Whether a token minted by a secret whose sha256 starts ``digest_prefix`` may still act
        for ``key``: the key's current secret, or its previous one within the grace period (a
        token without the claim, from before it existed: only for a config key)."""
        if not digest_prefix:
            return key.source == "config"
        if key.sha256.startswith(digest_prefix):
            return True
        return any(k is key and (until is None or now < until) and d.hex().startswith(digest_prefix)
                   for d, (k, until) in self._live.items() if until is not None)

    @property
    def live_count(self) -> int:
        return len(self._live_by_name)

    @property
    def configured(self) -> list[VirtualKey]:
        return list(self._keys)

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

    def __iter__(self) -> Iterator[VirtualKey]:
        return iter([*self._keys, *self._live_by_name.values()])

    def by_name(self, name: str) -> VirtualKey | None:
        """The key named ``name`` (an expired one too: see :meth:`current`)."""
        for k in self._keys:
            if k.name == name:
                return k
        return self._live_by_name.get(name)

    def current(self, name: str, now: float | None = None) -> VirtualKey | None:
        """The key named ``name`` as it stands now: None once it is revoked, deleted or expired."""
        key = self.by_name(name)
        if key is None or key.expired(time.time() if now is None else now):
            return None
        return key

    def lookup(self, presented: str, now: float | None = None) -> VirtualKey | None:
        """The key whose digest matches ``presented``, or None (an expired key, a rotated key's old
        secret after its grace period: None too); constant time in the config's key count."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: VirtualKey | None = None
        for key, stored in zip(self._keys, self._digests):
            if hmac.compare_digest(digest, stored):
                found = key
        if found is None and self._live:
            entry = self._live.get(digest)
            if entry is not None:
                at = time.time() if now is None else now
                key, until = entry
                if (until is None or at < until) and not key.expired(at):
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
        budget_period=kc.budget_period,
    )
