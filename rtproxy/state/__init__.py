"""Shared state behind the limits that must hold across processes and servers: session leases,
rates and spend totals. :func:`open_store` picks the configured backend."""

from __future__ import annotations

from ..config import Config
from .memory import MemoryStore
from .sqlite import SqliteStore
from .store import Charge, KeyLimits, Refusal, StateStore, StateStoreError, StoreLostData


def open_store(config: Config) -> StateStore:
    st = config.state
    if st.backend == "redis":
        from .redis import RedisStore

        assert st.url is not None  # checked with the config
        return RedisStore(st.url, prefix=st.prefix, timeout_s=st.timeout_s)
    state_dir = config.resolve_path(config.server.state_dir)
    return SqliteStore(state_dir / st.path if not st.path.startswith("/") else config.resolve_path(st.path))


__all__ = ["Charge", "KeyLimits", "MemoryStore", "Refusal", "SqliteStore", "StateStore", "StateStoreError",
           "StoreLostData", "open_store"]
