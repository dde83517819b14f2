"""``rtproxy ledger migrate`` and ``rtproxy ledger ship``."""

from __future__ import annotations

import signal
import sys

import trio

from ..config import Config
from . import open_ledger, shipper_for
from .db import LedgerError


def migrate_command(cfg: Config) -> int:
    ledger = open_ledger(cfg)
    try:
        version, applied = ledger.migrate_sync()
    except LedgerError as exc:
        print(f"rtproxy: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    done = f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"
    print(f"ledger {ledger.target.display}: schema version {version} ({done})")
    return 0


def ship_command(cfg: Config) -> int:
    """Ship the spend log to the ledger until SIGINT/SIGTERM (the gateway does this itself; this
    runs a shipper alone, e.g. for a log whose gateway is stopped)."""
    shipper = shipper_for(cfg)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shipper.run)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()
        await shipper.ledger.aclose()

    trio.run(main)
    return 0
