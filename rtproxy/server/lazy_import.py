"""Modules a gateway loads on first use, imported off the event loop.

A gateway pays at start-up only for the data path (`rtproxy serve`'s start-up figure in
docs/benchmarks.md). What a deployment may never use — the Quart app and hypercorn's HTTP server
(pages, REST), httpx (WebRTC calls) — loads the first time it is needed. Executing
a module's code takes the GIL; run in a worker thread, it gives the loop the interpreter back
every switch interval (5 ms), so the sessions already open keep their pace while it loads, where
an import on the loop would hold them all for the whole import (60–400 ms).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import trio


#: Imports under way: a caller that comes meanwhile waits for the first one's end (a module in
#: sys.modules may still be executing, half defined).
_loading: dict[str, trio.Event] = {}


async def import_off_loop(name: str) -> ModuleType:
    """``importlib.import_module(name)``, in a worker thread unless it is loaded already."""
    while (under_way := _loading.get(name)) is not None:
        await under_way.wait()
    module = sys.modules.get(name)
    if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
        return module
    done = _loading[name] = trio.Event()
    try:
        return await trio.to_thread.run_sync(importlib.import_module, name)
    finally:
        del _loading[name]
        done.set()
