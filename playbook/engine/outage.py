"""A per-recipient channel whose server cannot be reached: down as a whole, probed by one delivery at a time."""

from __future__ import annotations

import asyncio
import contextlib

from playbook import secrets
from playbook.engine.backoff import backoff
from playbook.publishers.base import Failure, Receipt


class Outage:
    """A per-recipient channel whose server cannot be reached is down as a whole, not recipient by recipient.

    While it is down, one delivery at a time probes it (with backoff); the others wait for it to come back,
    or fail together once `retry_for` (or the deadline) is over: a run lasts about that plus one attempt,
    whatever the size of the list.
    """

    def __init__(self, seconds_left: float) -> None:
        self.give_up_at = asyncio.get_running_loop().time() + seconds_left
        self.reason: str | None = None
        self.probing = False
        self.probes = 0
        self.next_probe_at = 0.0
        self._changed = asyncio.Event()

    @property
    def gave_up(self) -> bool:
        return self.reason is not None and asyncio.get_running_loop().time() >= self.give_up_at

    async def admit(self) -> bool:
        """Wait for this delivery's turn: True to attempt it (the channel is up, or this is its probe), False
        once the channel has stayed down past the end of its retries."""
        loop = asyncio.get_running_loop()
        while self.reason is not None:
            now = loop.time()
            if now >= self.give_up_at:
                return False
            if not self.probing and now >= self.next_probe_at:
                self.probing = True
                return True
            wake = self.give_up_at if self.probing else min(self.next_probe_at, self.give_up_at)
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wake - now):
                    await changed.wait()
        return True

    def probe_over(self) -> None:
        """No probe is under way any more (answered, or not attempted after all): the waiting deliveries look again."""
        self.probing = False
        self._changed.set()
        self._changed = asyncio.Event()

    def heard(self, outcome: Receipt | Failure) -> None:
        """An attempt's outcome: the server could not be reached (down), or it answered (up)."""
        if isinstance(outcome, Failure) and outcome.unreachable:
            self.probes += 1
            self.reason = secrets.redact(outcome.reason)
            self.next_probe_at = asyncio.get_running_loop().time() + backoff(self.probes)
        elif self.reason is not None:
            self.reason, self.probes = None, 0
        self.probe_over()
