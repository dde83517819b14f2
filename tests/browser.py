"""Shared pieces of the browser tests: a real server process and Debian's Chromium via Playwright.

Playwright's own browser download is never used (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1); the tests
drive /usr/bin/chromium, which `make test` installs from Debian's packages.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx

from .conftest import USER_KEY
from .helpers import write_server_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BIN = Path(sys.executable).parent
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def speech_wav(path: Path) -> Path:
    """A 48 kHz mono WAV: silence, a spoken sentence, silence (Chromium loops it as the mic)."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak and sox:
        raw = path.with_suffix(".raw.wav")
        subprocess.run([espeak, "-w", str(raw), "What is the weather like in Paris today?"], check=True)
        subprocess.run([sox, str(raw), "-r", "48000", "-c", "1", "-b", "16", str(path), "pad", "0.8", "3.0"],
                       check=True)
        return path
    # Without espeak-ng: a voiced, syllable-modulated signal, speech-like enough for an energy VAD
    # and for Chromium's audio processing.
    return voiced_wav(path, [(0.8, 2.6)], 5.0)


def voiced_wav(path: Path, spans: list[tuple[float, float]], seconds: float) -> Path:
    """A 48 kHz mono WAV, voiced during ``spans`` (start, end seconds) and silent elsewhere."""
    rate, frames = 48000, []
    for i in range(int(rate * seconds)):
        t = i / rate
        voiced = any(a <= t < b for a, b in spans)
        syll = 0.5 + 0.5 * math.sin(2 * math.pi * 4 * t)
        s = (math.sin(2 * math.pi * 150 * t) + 0.5 * math.sin(2 * math.pi * 300 * t)
             + 0.3 * math.sin(2 * math.pi * 900 * t)) * syll * 0.35 if voiced else 0.0
        frames.append(struct.pack("<h", int(max(-1, min(1, s)) * 32767)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(frames))
    return path


class LiveServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.realtime_port = free_port()
        write_server_config(root, self.port, self.realtime_port, stream_delay_ms=2.0)
        self.log = open(root / "server.log", "wb")
        env = {**os.environ, "TEST_USER_KEY": USER_KEY}
        self.proc = subprocess.Popen([str(BIN / "rtproxy"), "serve", "--config", str(root / "config.toml")],
                                     cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{self.url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "server.log").read_text())
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def live_server(root: Path) -> Iterator[LiveServer]:
    server = LiveServer(root)
    try:
        yield server
    finally:
        server.stop()


def launch_browser(playwright, wav: Path | None):  # type: ignore[no-untyped-def]
    args = list(CHROMIUM_ARGS)
    if wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={wav}")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args)
