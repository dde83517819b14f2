"""Spend-log scans (``GET /spend/logs``, ``GET /spend/summary``): off the event loop, bounded.

A scan reads the JSONL log line by line, linear in its size: a 200k-line log is seconds of CPU.
On the event loop that would freeze every session of the process for as long, so each scan runs
in a worker thread (:func:`trio.to_thread.run_sync`) and the request's task only waits for it.
A thread still takes a core, so scans are bounded: :data:`MAX_CONCURRENT_SCANS` at once per
process, :data:`MAX_SCANS_PER_KEY` of them for any one key (one key cannot take them all).
Beyond either bound the request is refused at once, never queued (a queue would hold its
connection, and the slot that goes with it): :class:`ScanRefused` says with which answer.

A scan cannot be cancelled once it runs (a thread cannot be interrupted): a client that leaves
still has its scan finish, and its slot is given back only then, so the bounds hold exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import attrs
import trio

#: Scans running at once in this process, over every key (each holds a worker thread and a core).
MAX_CONCURRENT_SCANS = 2
#: Scans running at once for one key (a second request waits for the first's answer).
MAX_SCANS_PER_KEY = 1
#: What a refusal at the process's bound asks the client to wait (``Retry-After``, whole seconds).
SCAN_RETRY_AFTER_S = 1

T = TypeVar("T")


class ScanRefused(Exception):
    """A scan refused at a bound: 429 ``too_many_scans`` (the key's), 503 ``scans_busy`` (the process's)."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after_s = status, code, message, retry_after_s


@attrs.define
class ScanSlots:
    """The scans running in this process, by key, against the two bounds."""

    max_scans: int = MAX_CONCURRENT_SCANS
    max_per_key: int = MAX_SCANS_PER_KEY
    running: int = 0
    by_key: dict[str, int] = attrs.field(factory=dict)
    _threads: trio.CapacityLimiter | None = None

    def _take(self, key_name: str) -> None:
        if self.by_key.get(key_name, 0) >= self.max_per_key:
            raise ScanRefused(429, "too_many_scans", f"this key already has {self.max_per_key} spend-log scan(s) "
                              "running: wait for its answer", SCAN_RETRY_AFTER_S)
        if self.running >= self.max_scans:
            raise ScanRefused(503, "scans_busy", f"the gateway is running {self.max_scans} spend-log scans; "
                              f"retry in {SCAN_RETRY_AFTER_S} s", SCAN_RETRY_AFTER_S)
        self.running += 1
        self.by_key[key_name] = self.by_key.get(key_name, 0) + 1

    def _give_back(self, key_name: str) -> None:
        self.running -= 1
        left = self.by_key[key_name] - 1
        if left:
            self.by_key[key_name] = left
        else:
            del self.by_key[key_name]

    async def run(self, key_name: str, scan: Callable[[], T]) -> T:
        """``scan()`` in a worker thread, for ``key_name``; raises :class:`ScanRefused` at a bound."""
        self._take(key_name)
        try:
            if self._threads is None:  # its own threads: scans never wait for trio's shared ones
                self._threads = trio.CapacityLimiter(self.max_scans)
            return await trio.to_thread.run_sync(scan, limiter=self._threads)
        finally:
            self._give_back(key_name)
