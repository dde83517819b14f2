"""``python -m rtproxy`` and the ``rtproxy`` command."""

import gc
import sys


def main() -> int:
    # Everything start-up imports lives as long as the process, so the cyclic collector, which
    # would run dozens of times over it while it loads, finds nothing: off until serve_main has
    # started (it then freezes what was loaded and turns it back on), or the command is known not
    # to be `serve` (rtproxy/server/cli.py). Some 10 % of start-up.
    gc.disable()
    from .server.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
