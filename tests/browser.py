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
from typing import Any

import httpx

from .conftest import USER_KEY
from .helpers import write_server_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BIN = Path(sys.executable).parent
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    # WebRTC on this machine's loopback only (the offline model's peer gathers 127.0.0.1 alone)
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spoken(sentence: str, rate: int = 48000) -> bytes:
    """``sentence`` in the offline model's own voice (its recognizer hears the words; recorded
    once, see ``audio_fixtures.speech``), PCM16 mono at ``rate``."""
    from rtproxy.offline.resample import resample

    from .audio_fixtures import speech

    return resample(speech(sentence), 24000, rate)


def silence(seconds: float, rate: int = 48000) -> bytes:
    return bytes(2 * int(rate * seconds))


def voiced(seconds: float, rate: int = 48000) -> bytes:
    """A voiced, syllable-modulated tone: speech to an energy VAD, words to nobody."""
    frames = []
    for i in range(int(rate * seconds)):
        t = i / rate
        syll = 0.5 + 0.5 * math.sin(2 * math.pi * 4 * t)
        s = (math.sin(2 * math.pi * 150 * t) + 0.5 * math.sin(2 * math.pi * 300 * t)
             + 0.3 * math.sin(2 * math.pi * 900 * t)) * syll * 0.35
        frames.append(struct.pack("<h", int(max(-1, min(1, s)) * 32767)))
    return b"".join(frames)


def mic_wav(path: Path, *parts: bytes) -> Path:
    """A 48 kHz mono WAV of ``parts`` in order; Chromium loops it as the microphone."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"".join(parts))
    return path


def speech_wav(path: Path, sentence: str = "What is the weather in Paris?") -> Path:
    """Silence, ``sentence``, silence."""
    return mic_wav(path, silence(0.8), spoken(sentence), silence(3.0))


class LiveServer:
    def __init__(self, root: Path, *, gemini: bool = False) -> None:
        self.root = root
        self.port = free_port()
        self.realtime_port = free_port()
        write_server_config(root, self.port, self.realtime_port, stream_delay_ms=2.0, gemini=gemini)
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


def live_server(root: Path, *, gemini: bool = False) -> Iterator[LiveServer]:
    """A server process for the tests of a module; ``gemini``: with a Gemini-backed model too."""
    server = LiveServer(root, gemini=gemini)
    try:
        yield server
    finally:
        server.stop()


def launch_browser(playwright, wav: Path | None):  # type: ignore[no-untyped-def]
    args = list(CHROMIUM_ARGS)
    if wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={wav}")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args)


def module_browser(fake_audio: Path | None = None) -> Iterator[Any]:
    """Headless Chromium for a test module (``fake_audio``: what its microphone hears)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_browser(p, fake_audio)
        yield b
        b.close()


def checked_page(browser: Any, width: int = 1440, height: int = 900, *, timeout_ms: int = 15_000,
                 clipboard: bool = False) -> Iterator[Any]:
    """A page in a fresh context (its clipboard readable with ``clipboard``); the test fails if the
    page threw an uncaught error."""
    context = browser.new_context(viewport={"width": width, "height": height})
    if clipboard:
        context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(timeout_ms)
    yield page
    context.close()
    assert errors == []
