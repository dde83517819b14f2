"""Spend-log scans (``GET /spend/logs``, ``GET /spend/summary``): off the event loop, bounded.

A scan reads the JSONL log line by line, linear in its size: a 200k-line log is seconds of CPU.
On the event loop that would freeze every session of the process for as long; in a worker
thread it still would, in pieces, for it holds the interpreter lock most of the time (two scans
held the loop for 330 ms at a time). So each scan runs in a **child process**
(:mod:`rtproxy.spend.scan_worker`), and the request's task only waits for its answer. The
processes are started on first use and kept (:data:`MAX_CONCURRENT_SCANS` at most, one scan each
at a time); one that fails, or takes longer than :data:`SCAN_TIMEOUT_S`, is killed and replaced.

A scan still takes a core, so scans are bounded: :data:`MAX_CONCURRENT_SCANS` at once per
process, :data:`MAX_SCANS_PER_KEY` of them for any one key (one key cannot take them all).
Beyond either bound the request is refused at once, never queued (a queue would hold its
connection, and the slot that goes with it): :class:`ScanRefused` says with which answer. A
client that leaves mid-scan has its scan's process killed, and the slot is given back at once.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import attrs
import trio

from .scan_worker import ScanRequest

log = logging.getLogger("rtproxy.spend")

#: Scans running at once in this process, over every key (each holds a worker thread and a core).
MAX_CONCURRENT_SCANS = 2
#: Scans running at once for one key (a second request waits for the first's answer).
MAX_SCANS_PER_KEY = 1
#: What a refusal at the process's bound asks the client to wait (``Retry-After``, whole seconds).
SCAN_RETRY_AFTER_S = 1
#: A scan (its process's start-up included) must answer within this; else it is killed (503).
SCAN_TIMEOUT_S = 60.0
#: Largest answer read from a scan process (a page is at most 1000 records, each bounded).
MAX_SCAN_ANSWER_BYTES = 64 * 1024 * 1024
#: Bytes read from a scan process per read.
READ_CHUNK_BYTES = 1024 * 1024


class ScanFailed(Exception):
    """The scan process failed or took too long (503 ``scan_failed``)."""


class _Worker:
    """One scan process, answering one request at a time over its pipes."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self._buffer = bytearray()

    @classmethod
    async def start(cls) -> _Worker:
        proc = await trio.lowlevel.open_process([sys.executable, "-m", "rtproxy.spend.scan_worker"],
                                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return cls(proc)

    async def ask(self, request: ScanRequest) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        await self.proc.stdin.send_all(request.to_json().encode() + b"\n")
        while b"\n" not in self._buffer:
            chunk = await self.proc.stdout.receive_some(READ_CHUNK_BYTES)
            if not chunk:
                raise ScanFailed("the scan process ended")
            self._buffer += chunk
            if len(self._buffer) > MAX_SCAN_ANSWER_BYTES:
                raise ScanFailed("the scan's answer is too large")
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        answer = json.loads(line)
        if "ok" not in answer:
            raise ScanFailed(str(answer.get("error"))[:200])
        return str(answer["ok"])

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


class ScanRefused(Exception):
    """A scan refused at a bound: 429 ``too_many_scans`` (the key's), 503 ``scans_busy`` (the process's)."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after_s = status, code, message, retry_after_s


@attrs.define
class ScanSlots:
    """The scans running in this process, by key, against the two bounds; and their processes."""

    max_scans: int = MAX_CONCURRENT_SCANS
    max_per_key: int = MAX_SCANS_PER_KEY
    running: int = 0
    by_key: dict[str, int] = attrs.field(factory=dict)
    #: Scan processes waiting for work (at most ``max_scans`` exist).
    _idle: list[_Worker] = attrs.field(factory=list)

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

    async def run(self, key_name: str, request: ScanRequest) -> str:
        """The scan's answer (JSON text), from a scan process, for ``key_name``. Raises
        :class:`ScanRefused` at a bound, :class:`ScanFailed` when the process fails or is too slow."""
        self._take(key_name)
        worker: _Worker | None = None
        try:
            with trio.fail_after(SCAN_TIMEOUT_S):
                worker = self._idle.pop() if self._idle else await _Worker.start()
                answer = await worker.ask(request)
            self._idle.append(worker)
            worker = None
            return answer
        except trio.TooSlowError:
            raise ScanFailed(f"the scan took longer than {SCAN_TIMEOUT_S:g} s") from None
        except (OSError, trio.BrokenResourceError, ValueError) as exc:
            raise ScanFailed(f"the scan process failed: {type(exc).__name__}") from None
        finally:
            if worker is not None:  # failed, too slow, or its client left: never reused mid-answer
                worker.kill()
            self._give_back(key_name)

    async def aclose(self) -> None:
        """Stop the idle scan processes (at shutdown)."""
        for worker in self._idle:
            worker.kill()
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await worker.proc.wait()
        self._idle.clear()
