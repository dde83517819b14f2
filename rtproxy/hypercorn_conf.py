"""Hypercorn's settings from rtproxy's config, for the hypercorn launch:

    .venv/bin/hypercorn --config python:rtproxy.hypercorn_conf 'rtproxy.app:create_app()'

serves ``[server].host:port`` of ``$RTPROXY_CONFIG`` (default ``config.toml``), on trio, with
its TLS files, so the launch serves what ``rtproxy serve`` would (the realtime listener on
``[server].realtime_port`` is started by the app itself).

The main port is bound here, before hypercorn or the app starts, and handed to hypercorn as
``fd://`` binds (hypercorn would bind it itself first and fail with a traceback and status 1);
the realtime and metrics ports are tried here too. So a config error, or a port in use, is one
line and exit status 2, as for ``rtproxy serve`` (:mod:`rtproxy.server.ports`).
"""

from __future__ import annotations

import os
import sys

from .config import load_config
from .errors import ConfigError, StartupFailed
from .server.ports import bind_main_port, check_other_ports
from .server.startup import config_failure

try:
    _cfg = load_config(os.environ.get("RTPROXY_CONFIG", "config.toml"))
    # no command-line flags here: the config's keys are what to change
    _main_fds = [sock.detach() for sock in bind_main_port(_cfg.server, flag=None)]
    check_other_ports(_cfg.server, realtime_flag=None)
except ConfigError as _exc:
    print(f"rtproxy: {config_failure(_exc, choose='set RTPROXY_CONFIG=PATH')}", file=sys.stderr)
    raise SystemExit(2) from None
except StartupFailed as _exc:
    print(f"rtproxy: {_exc}", file=sys.stderr)
    raise SystemExit(2) from None

# hypercorn takes the bound sockets over (and listens on them) by their file descriptors
bind = [f"fd://{fd}" for fd in _main_fds]
worker_class = "trio"
if _cfg.server.tls_certfile and _cfg.server.tls_keyfile:
    certfile = str(_cfg.resolve_path(_cfg.server.tls_certfile))
    keyfile = str(_cfg.resolve_path(_cfg.server.tls_keyfile))
# One process, the app in it: hypercorn 0.18 returns 0 when a spawned worker fails (its final
# join runs over an emptied list), so a start-up failure would not show in the exit status.
# For several processes use `rtproxy serve --workers N`.
workers = 0
