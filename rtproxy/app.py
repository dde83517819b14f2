"""The ASGI entry point for hypercorn: ``hypercorn -k trio 'rtproxy.app:create_app()'``.

The app itself is :mod:`rtproxy.server.app`; this module keeps the documented launch path.
"""

from .server.app import RtproxyApp, create_app

__all__ = ["RtproxyApp", "create_app"]
