"""``python -m rtproxy``: the same as the ``rtproxy`` command."""

import sys

from .server.cli import main

sys.exit(main())
