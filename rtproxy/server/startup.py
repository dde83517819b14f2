"""What an operator sees when the server starts: the banner, or one line saying why it could not.

Shared by ``rtproxy serve`` and the hypercorn launch (``rtproxy.app:create_app()``), so both
print the same banner once both ports listen, and both turn a failure an operator can fix (a
port in use, a file that cannot be read, a certificate that cannot be used, a bad config) into
one line and exit status 2, with the traceback kept for ``--debug`` (or ``RTPROXY_DEBUG=1``).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError, StartupFailed

#: How far down an exception's cause/context chain the explanation is looked for.
_MAX_CHAIN = 8


def startup_failure(exc: BaseException | None, depth: int = 0) -> str | None:
    """The one line for a start-up failure an operator can fix, or None (a bug: show it whole).

    Failures arrive wrapped: in trio's exception groups, and in hypercorn's lifespan error whose
    context is the app's own exception; both are unwrapped."""
    if exc is None or depth > _MAX_CHAIN:
        return None
    if isinstance(exc, StartupFailed | ConfigError):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = startup_failure(inner, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(exc, ssl.SSLError):
        return f"the TLS certificate or key cannot be used: {exc.reason or exc}"
    if isinstance(exc, OSError):
        if exc.filename:
            return f"{exc.filename}: {exc.strerror or exc}"
        return str(exc.strerror if exc.strerror and str(exc).startswith("[Errno") and exc.args[1:] == (exc.strerror,)
                   else exc.args[1] if len(exc.args) > 1 else exc)
    return startup_failure(exc.__cause__ or exc.__context__, depth + 1)


def config_failure(exc: ConfigError, *, choose: str = "pass --config PATH") -> str:
    """The one line for a config that cannot be used; a config file that is not there also says
    how to name one (``choose``: how this launch is told which file)."""
    if not exc.path and not Path(exc.file).exists():
        return f"{exc} (run it from the repository, or {choose})"
    return str(exc)


def banner(cfg: Config, gateway: Any) -> str:
    host = cfg.server.host
    shown = f"[{host}]" if ":" in host else host
    http, ws = ("https", "wss") if gateway.tls else ("http", "ws")
    lines = [
        f"rtproxy on {http}://{shown}:{cfg.server.port}/  (playground)",
        f"  realtime: {ws}://{shown}:{gateway.realtime_port}/v1/realtime" if gateway.realtime_port else "",
        f"  also:     {ws}://{shown}:{cfg.server.port}/v1/realtime",
        f"  models:   {', '.join(m.name for m in cfg.models) or '(none)'}",
        f"  spend log: {gateway.spend.path}",
    ]
    for gk in gateway.keys.generated:
        # Printed to the terminal (not the log) so the developer can paste it into the playground.
        lines.append(f"  key {gk.name!r}: {gk.value}   (kept in {gk.path}, mode 0600)")
        lines.append(f"  open: {http}://{shown}:{cfg.server.port}/#key={gk.value}")
    if not cfg.keys:
        lines.append(f"  no [[keys]] in {cfg.source}: nobody can open a session")
    return "\n".join(line for line in lines if line)
