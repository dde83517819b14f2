"""What a sans-IO translator answers to one event (rtproxy/relay/translated.py acts on it)."""

from __future__ import annotations

from typing import Any

import attrs

Event = dict[str, Any]


@attrs.frozen
class Output:
    """What one call gives the runner; act on the fields in this order."""

    #: Server events for the client (and the spend collector), in order.
    to_client: list[Event] = attrs.field(factory=list)
    #: Frames for the current upstream socket, in order.
    to_upstream: list[Event] = attrs.field(factory=list)
    #: Close the upstream socket, open a new one and send the translator's ``setup_frame``.
    reconnect: bool = False
    #: End the session: close the client with ``(code, reason)`` after ``to_client``.
    close: tuple[int, str] | None = None
