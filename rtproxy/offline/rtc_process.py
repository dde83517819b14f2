"""The offline model's WebRTC peer as the gateway sees it: a child process started on first use.

:mod:`rtproxy.offline.rtc` says why it is a process. The gateway calls :meth:`RtcPeerProcess.url`
before its first local WebRTC call; the supervisor task (:meth:`RtcPeerProcess.serve`, in the
gateway's service nursery) starts ``python -m rtproxy.offline.rtc``, reads the port it bound from
its first output line, and stops it (SIGTERM, then SIGKILL) when the gateway stops. A peer that
dies is started again by the next call that needs it. Its log lines go to the gateway's stderr.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import trio

from ..errors import UpstreamError

log = logging.getLogger("rtproxy.offline")

#: How long the peer may take to start (importing aiortc and PyAV takes a second or two).
START_TIMEOUT_S = 30.0
#: How long it may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 5.0
#: The first line it prints, at most (``port N``).
MAX_FIRST_LINE_BYTES = 256


class RtcPeerProcess:
    def __init__(self, secret: str, stream_delay_s: float, speech: str) -> None:
        self._secret = secret
        self._args = ["--stream-delay-ms", str(stream_delay_s * 1000), "--speech", speech]
        self._wanted = trio.Event()
        self._ready = trio.Event()
        self._url: str | None = None
        self._failure: str | None = None
        self.starts = 0

    async def url(self) -> str:
        """The peer's ``http://127.0.0.1:port``, starting it if it is not running. Raises
        UpstreamError if it cannot start."""
        if self._url is not None:
            return self._url
        self._wanted.set()
        with trio.move_on_after(START_TIMEOUT_S + 1):
            await self._ready.wait()
        if self._url is None:
            raise UpstreamError(f"the offline model's WebRTC peer did not start: {self._failure or 'timed out'}")
        return self._url

    async def serve(self) -> None:
        """Run (and re-run) the peer whenever it is wanted, until cancelled."""
        while True:
            await self._wanted.wait()
            try:
                await self._run_once()
            except OSError as exc:
                self._failure = str(exc)
                log.warning("the offline WebRTC peer could not start: %s", exc)
            self._url = None
            self._wanted = trio.Event()
            ready, self._ready = self._ready, trio.Event()
            ready.set()  # wake whoever waited for a start that failed or a peer that ended

    async def _run_once(self) -> None:
        env = {**os.environ, "RTPROXY_LOCAL_SECRET": self._secret}
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "rtproxy.offline.rtc", "--port", "0", *self._args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env)
        self.starts += 1
        try:
            assert proc.stdout is not None
            line = b""
            with trio.move_on_after(START_TIMEOUT_S):
                while not line.endswith(b"\n") and len(line) < MAX_FIRST_LINE_BYTES:
                    chunk = await proc.stdout.receive_some(MAX_FIRST_LINE_BYTES)
                    if not chunk:
                        break
                    line += chunk
            words = line.decode("ascii", "replace").split()
            if len(words) != 2 or words[0] != "port" or not words[1].isdigit():
                self._failure = f"it printed {line[:80]!r} (exit code {proc.poll()})"
                log.warning("the offline WebRTC peer did not start: %s", self._failure)
                return
            self._url = f"http://127.0.0.1:{int(words[1])}"
            self._failure = None
            log.info("offline model WebRTC peer on %s (pid %d)", self._url, proc.pid)
            self._ready.set()
            await proc.wait()
            log.warning("the offline WebRTC peer exited (code %s); the next call starts it again", proc.returncode)
        finally:
            with trio.CancelScope(shield=True):
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    with trio.move_on_after(STOP_TIMEOUT_S):
                        await proc.wait()
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
                if proc.stdout is not None:
                    await proc.stdout.aclose()
