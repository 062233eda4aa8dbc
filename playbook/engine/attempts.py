"""One delivery's attempts: each recorded in the ledger before it starts and after it ends, retried with
backoff until the channel's retries end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from playbook import secrets
from playbook.engine.backoff import backoff
from playbook.engine.results import DeliveryEvent, DeliveryResult, Observer
from playbook.ledger.contract import Confirmation, Ledger, Post, utcnow
from playbook.ledger.statuses import DeliveryStatus
from playbook.planning.plan import ChannelPlan
from playbook.publishers.base import Delivery, Failure, Receipt

if TYPE_CHECKING:
    from playbook.engine.outage import Outage

log = logging.getLogger("playbook.engine")


@dataclass(frozen=True)
class Retries:
    """How long a run retries a failing delivery: by default until the channel's own end (the post's deadline,
    or `retry_for` after the channel starts if later).

    `hand_off`: one attempt each, what still fails is left to a worker (a command run while a worker is alive);
    `until`: never past that time (a worker keeps the end the command handed over with, whenever it starts);
    `stop`: once set (a worker's SIGTERM), no attempt starts and no retry waits: what is under way finishes.
    """

    hand_off: bool = False
    until: datetime | None = None
    stop: asyncio.Event | None = None

    @property
    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()


# The failure recorded for a delivery a stopping worker did not attempt: the next worker or `resume` takes it.
STOPPED = "the worker stopped before this attempt"


@dataclass
class Held:
    """The delivery a per-recipient worker saw confirmed last, not yet in the ledger.

    It is written in the transaction that marks the worker's next message as sending, so a long list costs one
    commit per message, not two; or alone, before the worker waits for anything. A kill in between can repeat
    that one message, as a kill while it was in flight could: still at most one per worker, that is per
    connection.
    """

    confirmation: Confirmation | None = None
    event: DeliveryEvent | None = None


class Sender:
    """Sends the deliveries of one post, telling the ledger and the observer about every attempt."""

    def __init__(self, ledger: Ledger, post: Post, observer: Observer, clock: Callable[[], datetime],
                 retries: Retries | None = None) -> None:
        self.ledger = ledger
        self.post = post
        self.observer = observer
        self.clock = clock
        self.retries = retries or Retries()
        # Each channel's own end of retries: what a hand-off gives the worker.
        self.ends: dict[str, datetime] = {}

    def retry_until(self, plan: ChannelPlan) -> datetime:
        """When retries of a channel end: the post's deadline, or retry_for after the channel starts if later;
        now when failures are handed off, and never past the end a worker was handed."""
        retry_for: timedelta = plan.publisher.config.retry_for
        own = max(self.post.deadline, self.clock() + retry_for)
        if self.retries.until is not None:
            own = min(own, self.retries.until)
        self.ends[plan.name] = own
        return self.clock() if self.retries.hand_off else own

    def in_window(self, moment: datetime | None) -> bool | None:
        return None if moment is None else moment <= self.post.deadline

    def left(self, plan: ChannelPlan, lang: str, owner: object, who: str | None = None) -> DeliveryResult:
        """A delivery another process holds: not attempted here, and not confirmed either."""
        reason = (f"left to {owner}, which is sending it" if owner
                  else "taken over by another process, or superseded by a later post (playbook status says which)")
        self.observer.event(DeliveryEvent(plan.name, lang, DeliveryStatus.FAILED, error=reason, recipient=who))
        return DeliveryResult(plan.name, lang, DeliveryStatus.FAILED, error=reason)

    async def attempt(self, plan: ChannelPlan, delivery: Delivery, retry_until: datetime, held: Held | None = None,
                      outage: Outage | None = None) -> DeliveryResult:
        """Send one delivery, retrying until `retry_until`; with `held`, its confirmation is left there to be written
        with the sender's next mark (see Held) rather than in a transaction of its own. With `outage`, a server
        that cannot be reached is waited for as the whole channel's trouble, not retried for this delivery."""
        publisher = plan.publisher
        timeout = publisher.config.timeout.total_seconds()
        who = delivery.recipient.address if delivery.recipient else None
        attempts = 0
        while True:
            if self.retries.stopping:
                self.ledger.mark_failed(delivery.key, STOPPED)
                self.observer.event(DeliveryEvent(plan.name, delivery.lang, DeliveryStatus.FAILED, attempts, STOPPED,
                                                  who))
                return DeliveryResult(plan.name, delivery.lang, DeliveryStatus.FAILED, attempts=attempts,
                                      error=STOPPED)
            if outage is not None and not await outage.admit():
                reason = self.unreachable(plan, outage.reason)
                self.ledger.mark_failed(delivery.key, reason)
                self.observer.event(DeliveryEvent(plan.name, delivery.lang, DeliveryStatus.FAILED, attempts, reason,
                                                  who))
                return DeliveryResult(plan.name, delivery.lang, DeliveryStatus.FAILED, attempts=attempts,
                                      error=reason)
            marked = self.ledger.mark_sending(delivery.key, confirmed=held.confirmation if held else None)
            if held is not None:
                self.announce(held)
            if marked is None:
                if outage is not None:
                    outage.probe_over()
                return self.left(plan, delivery.lang, None, who)
            attempts = marked
            self.observer.event(DeliveryEvent(plan.name, delivery.lang, DeliveryStatus.SENDING, attempts,
                                              recipient=who))
            try:
                # A timeout scope rather than wait_for: no Task made per attempt, thousands per list.
                async with asyncio.timeout(timeout):
                    outcome: Receipt | Failure = await publisher.publish(delivery)
            except TimeoutError:
                outcome = Failure(f"no answer within {timeout:g}s", retryable=True)
            except Exception as exc:  # a plugin bug: reported as this delivery's failure, others go on
                log.exception("%s: the publisher raised instead of returning a Failure", delivery.key)
                outcome = Failure(f"{type(exc).__name__}: {exc}", retryable=False)
            # One line per recipient would drown the log of a large list: those go at debug level.
            level = logging.DEBUG if who else logging.INFO
            if outage is not None:
                outage.heard(outcome)
            if isinstance(outcome, Receipt):
                sent_at = utcnow()
                confirmation = Confirmation(delivery.key, outcome.remote_id, outcome.url, outcome.note, sent_at)
                log.log(level, "%s: sent (attempt %d) %s", delivery.key, attempts,
                        outcome.url or outcome.remote_id or outcome.note or "")
                event = DeliveryEvent(plan.name, delivery.lang, DeliveryStatus.SENT, attempts, recipient=who,
                                      url=outcome.url)
                if held is None:
                    self.ledger.mark_sent(confirmation)
                    self.observer.event(event)
                else:
                    held.confirmation, held.event = confirmation, event
                return DeliveryResult(plan.name, delivery.lang, DeliveryStatus.SENT, outcome.remote_id, outcome.url,
                                      sent_at, self.in_window(sent_at), attempts,
                                      note=secrets.redact(outcome.note) if outcome.note else None)
            reason = secrets.redact(outcome.reason)
            if outage is not None and outage.reason is not None and outcome.retryable:
                log.log(level, "%s: attempt %d failed, the channel is down: %s", delivery.key, attempts, reason)
                self.ledger.note_error(delivery.key, reason)
                self.observer.event(DeliveryEvent(plan.name, delivery.lang, DeliveryStatus.RETRYING, attempts,
                                                  reason, who))
                continue
            now = self.clock()
            wait = timedelta(seconds=backoff(attempts))
            if outcome.retry_at is not None:
                wait = max(wait, outcome.retry_at - now)
            if outcome.retryable and now + wait <= retry_until:
                log.log(level, "%s: attempt %d failed, retrying in %.1fs: %s", delivery.key, attempts,
                        wait.total_seconds(), reason)
                self.ledger.note_error(delivery.key, reason)
                self.observer.event(DeliveryEvent(plan.name, delivery.lang, DeliveryStatus.RETRYING, attempts,
                                                  reason, who, retry_at=now + wait))
                await self._pause(wait.total_seconds())
                continue
            if outcome.retryable and self.retries.hand_off:
                reason += f"; left to the worker, which retries it until {self.ends[plan.name]:%H:%M:%S} UTC"
            elif outcome.retryable and outcome.retry_at is not None and outcome.retry_at > retry_until:
                reason += f"; the provider accepts again at {outcome.retry_at:%H:%M:%S} UTC, after the deadline"
            elif outcome.retryable:
                reason += f" (gave up after {attempts} attempts)"
            status = DeliveryStatus.REJECTED if outcome.rejected else DeliveryStatus.FAILED
            log.log(level if outcome.rejected else logging.WARNING, "%s: %s after %d attempt(s): %s", delivery.key,
                    status, attempts, reason)
            self.ledger.mark_failed(delivery.key, reason, rejected=outcome.rejected)
            self.observer.event(DeliveryEvent(plan.name, delivery.lang, status, attempts, reason, who))
            return DeliveryResult(plan.name, delivery.lang, status, attempts=attempts, error=reason)

    def unreachable(self, plan: ChannelPlan, reason: str | None) -> str:
        """Why a delivery of a channel that stayed down was given up."""
        if self.retries.hand_off:
            return f"{reason} (left to the worker, which retries it until {self.ends[plan.name]:%H:%M:%S} UTC)"
        return f"{reason} (the channel stayed unreachable until the end of its retries)"

    async def _pause(self, seconds: float) -> None:
        """The wait before a retry, cut short when the run must stop."""
        if self.retries.stop is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.retries.stop.wait()

    def write_held(self, held: Held) -> None:
        """Write the held confirmation now, in a transaction of its own: the sender is about to wait."""
        if held.confirmation is not None:
            self.ledger.mark_sent(held.confirmation)
            self.announce(held)

    def announce(self, held: Held) -> None:
        """Tell the observer about the held confirmation, just written to the ledger, and let it go."""
        if held.event is not None:
            self.observer.event(held.event)
        held.confirmation, held.event = None, None
