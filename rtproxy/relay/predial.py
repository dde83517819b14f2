"""Dialing the upstream while the admission's shared checks are still running.

A connect waits for two things that do not depend on each other: the state store's answer
(budget, per-key cap, rate; a SQLite transaction in a worker thread or a Redis round trip) and
the upstream's TCP + WebSocket handshake. Done one after the other they add up; a
:class:`Predial` starts the dial first, so a connect waits only for the longer of the two
(measured in bench/PROFILE.md: about 0.9 ms off every connect on the embedded store).

The cost of guessing wrong is one upstream connection opened and closed at once (1000, nothing
sent): the gateway only predials for a key whose admission it expects (see
:meth:`~rtproxy.server.limits.Limits.expects_admission`), so a client hammering a key over its
cap or budget does not turn each refused attempt into a provider connection.

Lifetime: :meth:`run` runs in a nursery that outlives the session; whoever started it calls
:meth:`discard` at the end (shielded), which cancels a dial still in flight and closes a leg
nobody took, so no upstream connection outlives its session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ..errors import UpstreamError, UpstreamUnreachable
from ..protocols.seam import UpstreamTarget
from .wsleg import WebSocketLeg

#: Close code for an upstream connection opened for a client that was then refused.
UNUSED_CLOSE_CODE = 1000


class Predial:
    """One upstream dial, started early; :meth:`take` hands its leg (or its error) over once."""

    def __init__(self, dial: Callable[[UpstreamTarget], Awaitable[WebSocketLeg]], target: UpstreamTarget) -> None:
        self.target = target
        self._dial = dial
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self._leg: WebSocketLeg | None = None
        self._error: UpstreamError | None = None
        self._taken = False

    async def run(self) -> None:
        try:
            with self._scope:
                self._leg = await self._dial(self.target)
        except UpstreamError as exc:
            self._error = exc
        finally:
            self._done.set()

    async def take(self, target: UpstreamTarget) -> WebSocketLeg:
        """The dialed leg (raises the dial's UpstreamError): the session's ``dial`` port."""
        if target != self.target or self._taken:
            # the plan changed its target after all (or a second dial): dial it as asked
            return await self._dial(target)
        await self._done.wait()
        self._taken = True
        if self._error is not None:
            raise self._error
        if self._leg is None:  # its nursery was cancelled before it finished
            raise UpstreamUnreachable("the upstream dial was cancelled")
        return self._leg

    async def discard(self) -> None:
        """Cancel the dial if it is still running; close its leg if nobody took it."""
        self._scope.cancel()
        await self._done.wait()
        if self._leg is not None and not self._taken:
            self._taken = True
            await self._leg.close(UNUSED_CLOSE_CODE)
