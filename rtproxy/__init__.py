"""rtproxy: a gateway for realtime (WebSocket, voice + text) LLM sessions.

The public surface: :func:`create_app` (the ASGI app for hypercorn), :class:`Gateway`,
:func:`load_config`, and the errors in :mod:`rtproxy.errors`.

The packages, lowest layer first (a module imports only from its own layer or lower ones;
``tests/test_architecture.py`` checks it):

- ``config``, ``errors``: the configuration file and the error hierarchy;
- ``auth/``: virtual keys, ephemeral tokens, admission;
- ``spend/``: prices, record values, the spend log, queries, budgets;
- ``protocols/``: what each realtime API means (sans-IO): event classes, collectors, upstream URLs;
- ``relay/``: the data path: session core, WebSocket legs, transport, upstream dial;
- ``server/``: the process: gateway state, listeners, the Quart app, the CLI;
- ``offline/``: the built-in offline model, a separate upstream server.
"""

from .config import Config, load_config
from .errors import ConfigError, RtproxyError, UpstreamError, UpstreamRejected, UpstreamUnreachable

# The server's modules load on first use (PEP 562): ``rtproxy.<anything>`` imports this package
# first, and a command, a test or the offline model's process must not pay for the Quart app, the
# gateway and everything they import (a third of a second, tens of MiB) unless it uses them.
_LAZY = {"create_app": ".server.app", "Gateway": ".server.gateway"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = [
    "Config",
    "ConfigError",
    "Gateway",
    "RtproxyError",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamUnreachable",
    "create_app",
    "load_config",
]
