"""Hypercorn's settings from rtproxy's config, for the hypercorn launch:

    .venv/bin/hypercorn --config python:rtproxy.hypercorn_conf 'rtproxy.app:create_app()'

binds ``[server].host:port`` of ``$RTPROXY_CONFIG`` (default ``config.toml``), on trio, with
its TLS files, so the launch serves what ``rtproxy serve`` would (the realtime listener on
``[server].realtime_port`` is started by the app itself). A config error exits with one line.
"""

from __future__ import annotations

import os
import sys

from .config import load_config
from .errors import ConfigError

try:
    _cfg = load_config(os.environ.get("RTPROXY_CONFIG", "config.toml"))
except ConfigError as _exc:
    print(f"rtproxy: {_exc}", file=sys.stderr)
    raise SystemExit(2) from None

_host = _cfg.server.host
bind = [f"[{_host}]:{_cfg.server.port}" if ":" in _host else f"{_host}:{_cfg.server.port}"]
worker_class = "trio"
if _cfg.server.tls_certfile and _cfg.server.tls_keyfile:
    certfile = str(_cfg.resolve_path(_cfg.server.tls_certfile))
    keyfile = str(_cfg.resolve_path(_cfg.server.tls_keyfile))
# One process, the app in it: hypercorn 0.18 returns 0 when a spawned worker fails (its final
# join runs over an emptied list), so a start-up failure would not show in the exit status.
# For several processes use `rtproxy serve --workers N`.
workers = 0
