"""rtproxy: a gateway for realtime (WebSocket, voice + text) LLM sessions.

The public surface: :func:`create_app` (the ASGI app for hypercorn), :class:`Gateway`,
:func:`load_config`, and the errors in :mod:`rtproxy.errors`.
"""

from .app import create_app
from .config import Config, load_config
from .errors import ConfigError, RtproxyError, UpstreamError, UpstreamRejected, UpstreamUnreachable
from .gateway import Gateway

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
