"""What the admin API and LiteLLM's key routes share: their two refusals of their own."""

from __future__ import annotations

from quart import Response


class ReadOnly(Exception):
    """A change asked of a key defined in config.toml."""

    def __init__(self, name: str) -> None:
        super().__init__(f"key {name!r} is defined in config.toml: change it there (and restart), or make a "
                         "ledger key instead")


class Answered(Exception):
    """Reading the body answered the request itself (too large, too slow)."""

    def __init__(self, response: Response) -> None:
        super().__init__("answered")
        self.response = response
