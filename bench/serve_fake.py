"""Run a bench fake upstream (an asyncio ``websockets`` handler) on a port until killed, on uvloop
when it is installed: what every fake in bench/ does after its handler."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import serve


async def _serve(handler: Callable[[Any], Awaitable[None]], port: int, name: str) -> None:
    async with serve(handler, "127.0.0.1", port, max_size=None, compression=None, ping_interval=None):
        print(f"{name} on ws://127.0.0.1:{port}", flush=True)
        await asyncio.Future()


def run(handler: Callable[[Any], Awaitable[None]], name: str) -> None:
    """``python bench/<fake>.py PORT``: serve ``handler`` there."""
    port = int(sys.argv[1])
    try:
        import uvloop

        uvloop.run(_serve(handler, port, name))
    except ImportError:
        asyncio.run(_serve(handler, port, name))
