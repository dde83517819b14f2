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
from .server.app import create_app
from .server.gateway import Gateway

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
