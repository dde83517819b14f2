"""Test-side WebSocket client helpers (trio-websocket: independent of the code under test)."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from .conftest import RunningServer, make_config, start_server
from .fakes import FakeUpstream

PROVIDER_KEY = "sk-provider-secret-abcdef123456"


@asynccontextmanager
async def ws_connect(url: str, *, headers: dict[str, str] | None = None,
                     subprotocols: list[str] | None = None) -> AsyncIterator[WebSocketConnection]:
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    async with open_websocket_url(url, extra_headers=extra, subprotocols=subprotocols,
                                  max_message_size=64 * 2**20, message_queue_size=256) as ws:
        yield ws


async def events_until(ws: WebSocketConnection, etype: str, *, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Read events up to and including the first of type ``etype``."""
    events: list[dict[str, Any]] = []
    with trio.fail_after(timeout_s):
        while True:
            message = await ws.get_message()
            event = json.loads(message)
            events.append(event)
            if event.get("type") == etype:
                return events


async def send_event(ws: WebSocketConnection, event: dict[str, Any]) -> None:
    await ws.send_message(json.dumps(event))


def user_text(text: str) -> dict[str, Any]:
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}


async def text_turn(ws: WebSocketConnection, text: str = "Hello there", *, fresh: bool = True) -> list[dict[str, Any]]:
    """A text-only turn; ``fresh`` when the session has just opened (its session.created unread)."""
    if fresh:
        await events_until(ws, "session.created")
    await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    await events_until(ws, "session.updated")
    await send_event(ws, user_text(text))
    await send_event(ws, {"type": "response.create"})
    return await events_until(ws, "response.done")


def auth_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def server_with_fake(nursery: trio.Nursery, tmp_path: Path, fake: FakeUpstream,
                           server: dict[str, Any] | None = None, keys: list[dict[str, Any]] | None = None,
                           **kwargs: Any) -> RunningServer:
    from .conftest import ADMIN_KEY, USER_KEY

    cfg = make_config(
        tmp_path,
        server=server,
        models=[{"name": "gpt-realtime", "provider": "local"},
                {"name": "fake", "provider": "openai", "api_base": fake.url + "/v1", "api_key": PROVIDER_KEY,
                 "upstream_model": "gpt-realtime"},
                {"name": "fake-azure", "provider": "azure", "api_base": fake.url.replace("ws://", "http://"),
                 "api_key": PROVIDER_KEY, "api_version": "2025-04-01-preview", "upstream_model": "my-deployment"}],
        keys=[{"name": "user", "key": USER_KEY, "models": ["gpt-realtime", "fake", "fake-azure"]},
              {"name": "admin", "key": ADMIN_KEY, "role": "admin"}, *(keys or [])],
        **kwargs,
    )
    return await start_server(nursery, cfg)


#: A Gemini-backed model: the offline model speaking Gemini Live, which OpenAI Realtime clients
#: reach through the gateway's translation (``write_server_config(..., gemini=True)``).
GEMINI_MODEL_TOML = """
[[models]]
name = "gemini-live"
provider = "local"
dialect = "gemini"
upstream_model = "gemini-live-2.5-flash"
"""


def write_server_config(directory: Path, port: int, rt_port: int, *, stream_delay_ms: float = 1.0,
                        gemini: bool = False) -> Path:
    """A config.toml for a real `rtproxy serve` process: the offline model, a user key from
    $TEST_USER_KEY and an admin key given only as its sha256. ``gemini``: also
    :data:`GEMINI_MODEL_TOML` (kept apart: the other tests count the models a key sees)."""
    from .conftest import ADMIN_KEY

    cfg = directory / "config.toml"
    cfg.write_text(textwrap.dedent(f"""
        [server]
        host = "127.0.0.1"
        port = {port}
        realtime_port = {rt_port}
        shutdown_grace_s = 5.0
        [spend_log]
        path = "spend.jsonl"
        [local]
        stream_delay_ms = {stream_delay_ms}
        live_usage_interval_ms = 100
        [[models]]
        name = "gpt-realtime"
        provider = "local"
        [[models]]
        name = "gpt-4o-transcribe"
        provider = "local"
        api = "transcription"
        [[models]]
        name = "gpt-live-1"
        provider = "local"
        api = "live"
        [[keys]]
        name = "user"
        key = "env:TEST_USER_KEY"
        [[keys]]
        name = "admin"
        key_sha256 = "{hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}"
        role = "admin"
    """) + (GEMINI_MODEL_TOML if gemini else ""))
    return cfg


async def raw_upgrade(port: int, key: str, *, model: str = "gpt-realtime", extra: bytes = b"") -> trio.SocketStream:
    """A WebSocket upgrade written by hand: for clients that misbehave on purpose."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(
        f"GET /v1/realtime?model={model} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {key}\r\n".encode() + extra + b"\r\n")
    return stream


async def expect_error_then_close(ws: WebSocketConnection, code: str, close_code: int, timeout_s: float = 10) -> str:
    """The gateway's error event (exactly one, with ``code``), then the close with ``close_code``."""
    errors = []
    with pytest.raises(ConnectionClosed) as closed, trio.fail_after(timeout_s):
        while True:
            event = json.loads(await ws.get_message())
            if event["type"] == "error":
                errors.append(event["error"]["code"])
    assert errors == [code], f"expected one error event {code!r} before the close, got {errors}"
    assert closed.value.reason.code == close_code
    return closed.value.reason.reason or ""


def examples(n: int) -> int:
    """A property test's example count: ``n``, or a few when `make mutation` runs the test once
    per mutant (``RTPROXY_MUTATION=1``)."""
    return min(n, 20) if os.environ.get("RTPROXY_MUTATION") else n
