"""Publishing a post: every channel x language at once, each delivery retried inside the window.

The ledger holds the intent of every delivery before it is attempted and the outcome right after; a
delivery the ledger already confirms is never attempted again, whoever re-runs what. A run claims its post
and each batch of deliveries in the ledger, and renews those claims while it works: no other process
attempts them meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from playbook import secrets
from playbook.errors import LedgerWriteError, PlaybookError, RunStopped
from playbook.ledger import REJECTED, SENT, Claim, Confirmation, Ledger, Post, delivery_key, utcnow
from playbook.plan import ChannelPlan, PostPlan
from playbook.publishers.base import Delivery, Failure, Receipt, Recipient
from playbook.publishers.recipients import recipient_language
from playbook.templates import Message

# Statuses of a delivery in results (the ledger has its own, finer ones).
SENT_STATUS, FAILED_STATUS, SKIPPED, DRY_RUN, ALREADY_SENT, REJECTED_STATUS = (
    "sent", "failed", "skipped", "dry-run", "already-sent", "rejected")

log = logging.getLogger("playbook.engine")

BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
BATCH = 200


@dataclass
class DeliveryResult:
    channel: str
    lang: str
    status: str
    remote_id: str | None = None
    url: str | None = None
    sent_at: datetime | None = None
    within_window: bool | None = None
    attempts: int = 0
    error: str | None = None
    # Per-recipient channels report one row per language with counts.
    recipients: dict[str, int] | None = None
    # What the provider said besides an id or link (e.g. "X reports a duplicate: already posted").
    note: str | None = None


@dataclass
class PostResult:
    incident: str
    playbook: str
    phase: str
    seq: int
    deadline: datetime
    drill: bool
    deliveries: list[DeliveryResult]
    started_at: datetime
    finished_at: datetime

    @property
    def ok(self) -> bool:
        return all(d.status != FAILED_STATUS for d in self.deliveries)


@dataclass(frozen=True)
class DeliveryEvent:
    """A change in one delivery, for the live view."""

    channel: str
    lang: str
    status: str  # pending, sending, sent, retrying, failed, rejected, already-sent
    attempts: int = 0
    error: str | None = None
    recipient: str | None = None
    url: str | None = None
    at: datetime = field(default_factory=utcnow)
    # A retrying delivery's next attempt, so the operator sees when it will be tried again.
    retry_at: datetime | None = None


class Observer(Protocol):
    def planned(self, plan: PostPlan, totals: dict[tuple[str, str], int]) -> None: ...

    def event(self, event: DeliveryEvent) -> None: ...


class NullObserver:
    def planned(self, plan: PostPlan, totals: dict[tuple[str, str], int]) -> None:
        return None

    def event(self, event: DeliveryEvent) -> None:
        return None


class RateLimiter:
    """At most `rate` starts per second, spread evenly (no bursts that trip provider limits)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: retries of many clients do not arrive together."""
    # The floor is half the first wait: uniform(0.5, 0.5) would send every first retry at the same instant.
    return random.uniform(BACKOFF_FIRST / 2, min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (attempt - 1)))


class Engine:
    def __init__(self, ledger: Ledger, post: Post, plan: PostPlan, observer: Observer | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.ledger = ledger
        self.post = post
        self.plan = plan
        self.observer = observer or NullObserver()
        self.clock = clock
        self.started = clock()
        # The other channels' results, handed to briefing channels once those have finished.
        self.links: list[dict[str, str | None]] = []
        # The single-target deliveries of the post, as claimed when the run starts.
        self.claimed = Claim(frozenset(), {}, {})

    async def run(self) -> PostResult:
        """Send every unconfirmed delivery of the post; one channel's trouble never holds up another.

        Briefing channels (`Publisher.briefing`) wait for the others and receive their results as links.
        The post is claimed for the whole run (ClaimHeld if another process is publishing it) and the claims
        are renewed in the background; a task that dies (the ledger cannot be written, a bug) stops the run at
        once with RunStopped, and the claims are released whatever happens.
        """
        self.ledger.claim_post(self.post.incident, self.post.seq)
        try:
            async with asyncio.TaskGroup() as group:
                renewal = group.create_task(self._renew())
                result = await self._publish()
                renewal.cancel()
            return result
        except BaseExceptionGroup as stopped:
            error = self._stopped(stopped)
            # A crash keeps its own traceback as the cause (--debug shows it); the rest need no group around them.
            raise error from error.__cause__
        finally:
            # The lease would lapse anyway: releasing now lets a `resume` start at once.
            with contextlib.suppress(PlaybookError, sqlite3.Error):
                self.ledger.release()

    async def _renew(self) -> None:
        """Renew this run's claims every third of the lease, whatever the sending tasks are doing."""
        while True:
            await asyncio.sleep(self.ledger.lease.total_seconds() / 3)
            self.ledger.renew()

    def _stopped(self, group: BaseExceptionGroup[BaseException]) -> BaseException:
        """The one error to tell for a run whose tasks failed: the user's own kind if it is one, else RunStopped."""
        leaves = list(_leaves(group))
        for leaf in leaves:
            if isinstance(leaf, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
                return leaf
        first = next((leaf for leaf in leaves if isinstance(leaf, PlaybookError)), leaves[0])
        after = (f"the ledger records what went out ('playbook status {self.post.incident}'); once the cause is "
                 f"fixed, 'playbook resume {self.post.incident}' sends the rest")
        if isinstance(first, LedgerWriteError):
            log.error("%s: run stopped: %s", self.post.incident, first)
            return RunStopped(f"{first}: the run stopped; {after}")
        if isinstance(first, PlaybookError):
            return first
        log.error("%s: run stopped by a failing task", self.post.incident, exc_info=first)
        stopped = RunStopped(f"the run stopped: a sending task failed ({type(first).__name__}: "
                             f"{secrets.redact(str(first))}, details in the log); {after}")
        stopped.__cause__ = first
        return stopped

    async def _publish(self) -> PostResult:
        live = [c for c in self.plan.channels if c.skipped is None]
        single = [(c.name, lang, None) for c in live if not c.publisher.per_recipient for lang in c.languages]
        self.ledger.record_intents(self.post, single)
        self.claimed = self.ledger.claim([delivery_key(self.post.incident, self.post.seq, self.post.phase, name,
                                                       lang) for name, lang, _ in single])
        totals = {(c.name, lang): 1 for c in live if not c.publisher.per_recipient for lang in c.languages}
        for c in live:
            if c.publisher.per_recipient:
                for lang in c.languages:
                    totals[(c.name, lang)] = 0
        self.observer.planned(self.plan, totals)
        log.info("%s: post %d (%s)%s to %s, deadline %s", self.post.incident, self.post.seq, self.post.phase,
                 " [drill]" if self.plan.drill else "", ", ".join(c.name for c in live) or "no channel",
                 self.post.deadline.isoformat(timespec="seconds"))
        results: list[DeliveryResult] = [
            DeliveryResult(c.name, lang, SKIPPED, error=c.skipped)
            for c in self.plan.channels if c.skipped is not None for lang in c.languages or ["-"]
        ]
        # Briefing channels (team chats) go last: their message links to what the others have just published.
        results.extend(await _all(self._run_channel(c) for c in live if not c.publisher.briefing))
        briefings = {c.name for c in self.plan.channels if c.publisher.briefing}
        self.links = [{"channel": r.channel, "lang": r.lang, "status": r.status, "url": r.url}
                      for r in results if r.channel not in briefings]
        results.extend(await _all(self._run_channel(c) for c in live if c.publisher.briefing))
        return PostResult(
            incident=self.post.incident, playbook=self.plan.playbook, phase=self.post.phase, seq=self.post.seq,
            deadline=self.post.deadline, drill=self.plan.drill, deliveries=results, started_at=self.started,
            finished_at=self.clock(),
        )

    async def _run_channel(self, plan: ChannelPlan) -> list[DeliveryResult]:
        publisher = plan.publisher
        try:
            await publisher.open()
        except Exception as exc:  # a plugin's own failure must not stop the other channels
            reason = secrets.redact(f"could not start: {type(exc).__name__}: {exc}")
            for lang in plan.languages:
                self.observer.event(DeliveryEvent(plan.name, lang, FAILED_STATUS, error=reason))
            return [DeliveryResult(plan.name, lang, FAILED_STATUS, error=reason) for lang in plan.languages]
        try:
            if publisher.per_recipient:
                return await self._run_recipients(plan)
            return await _all(self._single(plan, lang) for lang in plan.languages)
        finally:
            # Closing is best effort: every outcome is already recorded.
            with contextlib.suppress(Exception):
                await publisher.close()

    def _delivery(self, plan: ChannelPlan, lang: str, message: Message, recipient: Recipient | None) -> Delivery:
        thread = None
        if recipient is None:
            first = self.ledger.first_receipt(self.post.incident, plan.name, lang)
            if first is not None and first.seq < self.post.seq:
                thread = Receipt(first.remote_id, first.url)
        return Delivery(
            key=delivery_key(self.post.incident, self.post.seq, self.post.phase, plan.name, lang,
                             recipient.address if recipient else None),
            incident_id=self.post.incident, playbook_id=self.plan.playbook, phase=self.post.phase,
            channel=plan.name, lang=lang, message=message, deadline=self.post.deadline, recipient=recipient,
            thread=thread, drill=self.plan.drill,
            extra={"links": list(self.links)} if plan.publisher.briefing else {},
            next_update_at=self.post.next_update_at, detected_at=self.plan.context.detected_at,
            timezone=self.plan.context.timezone, stage=self.plan.stage,
        )

    async def _single(self, plan: ChannelPlan, lang: str) -> DeliveryResult:
        delivery = self._delivery(plan, lang, plan.messages[lang], None)
        status = self.claimed.finished.get(delivery.key)
        if status in (SENT, REJECTED):
            row = next(r for r in self.ledger.deliveries(self.post.incident, self.post.seq, recipients=False)
                       if r.key == delivery.key)
            shown = ALREADY_SENT if status == SENT else REJECTED_STATUS
            self.observer.event(DeliveryEvent(plan.name, lang, shown, attempts=row.attempts, url=row.url))
            return DeliveryResult(plan.name, lang, shown, row.remote_id, row.url, row.finished_at,
                                  self._in_window(row.finished_at), row.attempts, error=row.error)
        if delivery.key not in self.claimed.taken:
            return self._left(plan, lang, self.claimed.held.get(delivery.key))
        return await self._attempt(plan, delivery, self._retry_until(plan))

    def _left(self, plan: ChannelPlan, lang: str, owner: object, who: str | None = None) -> DeliveryResult:
        """A delivery another process holds: not attempted here, and not confirmed either."""
        reason = f"left to {owner}, which is sending it" if owner else "taken over by another process"
        self.observer.event(DeliveryEvent(plan.name, lang, FAILED_STATUS, error=reason, recipient=who))
        return DeliveryResult(plan.name, lang, FAILED_STATUS, error=reason)

    def _retry_until(self, plan: ChannelPlan) -> datetime:
        """When retries of a channel end: the post's deadline, or retry_for after the channel starts if later."""
        retry_for: timedelta = plan.publisher.config.retry_for
        return max(self.post.deadline, self.clock() + retry_for)

    async def _attempt(self, plan: ChannelPlan, delivery: Delivery, retry_until: datetime, held: _Held | None = None,
                       outage: _Outage | None = None) -> DeliveryResult:
        """Send one delivery, retrying until `retry_until`; with `held`, its confirmation is left there to be written
        with the sender's next mark (see _Held) rather than in a transaction of its own. With `outage`, a server
        that cannot be reached is waited for as the whole channel's trouble, not retried for this delivery."""
        publisher = plan.publisher
        timeout = publisher.config.timeout.total_seconds()
        who = delivery.recipient.address if delivery.recipient else None
        attempts = 0
        while True:
            if outage is not None and not await outage.admit():
                reason = f"{outage.reason} (the channel stayed unreachable until the end of its retries)"
                self.ledger.mark_failed(delivery.key, reason)
                self.observer.event(DeliveryEvent(plan.name, delivery.lang, FAILED_STATUS, attempts, reason, who))
                return DeliveryResult(plan.name, delivery.lang, FAILED_STATUS, attempts=attempts, error=reason)
            marked = self.ledger.mark_sending(delivery.key, confirmed=held.confirmation if held else None)
            if held is not None:
                self._announce(held)
            if marked is None:
                if outage is not None:
                    outage.probe_over()
                return self._left(plan, delivery.lang, None, who)
            attempts = marked
            self.observer.event(DeliveryEvent(plan.name, delivery.lang, "sending", attempts, recipient=who))
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
                event = DeliveryEvent(plan.name, delivery.lang, SENT_STATUS, attempts, recipient=who, url=outcome.url)
                if held is None:
                    self.ledger.mark_sent(confirmation)
                    self.observer.event(event)
                else:
                    held.confirmation, held.event = confirmation, event
                return DeliveryResult(plan.name, delivery.lang, SENT_STATUS, outcome.remote_id, outcome.url,
                                      sent_at, self._in_window(sent_at), attempts,
                                      note=secrets.redact(outcome.note) if outcome.note else None)
            reason = secrets.redact(outcome.reason)
            if outage is not None and outage.reason is not None and outcome.retryable:
                log.log(level, "%s: attempt %d failed, the channel is down: %s", delivery.key, attempts, reason)
                self.ledger.note_error(delivery.key, reason)
                self.observer.event(DeliveryEvent(plan.name, delivery.lang, "retrying", attempts, reason, who))
                continue
            now = self.clock()
            wait = timedelta(seconds=backoff(attempts))
            if outcome.retry_at is not None:
                wait = max(wait, outcome.retry_at - now)
            if outcome.retryable and now + wait <= retry_until:
                log.log(level, "%s: attempt %d failed, retrying in %.1fs: %s", delivery.key, attempts,
                        wait.total_seconds(), reason)
                self.ledger.note_error(delivery.key, reason)
                self.observer.event(DeliveryEvent(plan.name, delivery.lang, "retrying", attempts, reason, who,
                                                  retry_at=now + wait))
                await asyncio.sleep(wait.total_seconds())
                continue
            if outcome.retryable and outcome.retry_at is not None and outcome.retry_at > retry_until:
                reason += f"; the provider accepts again at {outcome.retry_at:%H:%M:%S} UTC, after the deadline"
            elif outcome.retryable:
                reason += f" (gave up after {attempts} attempts)"
            status = REJECTED_STATUS if outcome.rejected else FAILED_STATUS
            log.log(level if outcome.rejected else logging.WARNING, "%s: %s after %d attempt(s): %s", delivery.key,
                    status, attempts, reason)
            self.ledger.mark_failed(delivery.key, reason, rejected=outcome.rejected)
            self.observer.event(DeliveryEvent(plan.name, delivery.lang, status, attempts, reason, who))
            return DeliveryResult(plan.name, delivery.lang, status, attempts=attempts, error=reason)

    def _in_window(self, moment: datetime | None) -> bool | None:
        return None if moment is None else moment <= self.post.deadline

    def _write_held(self, held: _Held) -> None:
        """Write the held confirmation now, in a transaction of its own: the sender is about to wait."""
        if held.confirmation is not None:
            self.ledger.mark_sent(held.confirmation)
            self._announce(held)

    def _announce(self, held: _Held) -> None:
        """Tell the observer about the held confirmation, just written to the ledger, and let it go."""
        if held.event is not None:
            self.observer.event(held.event)
        held.confirmation, held.event = None, None

    async def _run_recipients(self, plan: ChannelPlan) -> list[DeliveryResult]:
        """Stream the recipient list in batches: intents and claims first, then a pool of workers sends the batch.

        The feeder and the workers run in one task group: if any of them dies, the others stop at once.
        """
        publisher = plan.publisher
        limiter = RateLimiter(getattr(publisher, "rate", None))
        counts = {lang: dict.fromkeys((SENT_STATUS, ALREADY_SENT, FAILED_STATUS, REJECTED_STATUS), 0)
                  for lang in plan.languages}
        last_sent: dict[str, datetime] = {}
        errors: dict[str, str] = {}
        workers_count = max(1, publisher.concurrency)
        retry_until = self._retry_until(plan)
        outage = _Outage((retry_until - self.clock()).total_seconds())
        # The feeder renders each message and queues it, up to two per worker ahead of them: rendering
        # happens while the connections wait for the server, not between a reply and the next message.
        queue: asyncio.Queue[tuple[Recipient, str, Message] | None] = asyncio.Queue(maxsize=2 * workers_count)
        renderers: dict[str, Callable[[Recipient], Message]] = {}

        def render(recipient: Recipient, lang: str, key: str) -> Message | None:
            """The recipient's message, or None once their delivery is recorded as failed."""
            try:
                if lang not in renderers:
                    renderers[lang] = self.plan.composer.recipient_messages(
                        self.post.phase, lang, self.plan.variables, self.plan.context, publisher)
                return renderers[lang](recipient)
            except Exception as exc:
                self.ledger.mark_failed(key, f"cannot render for this recipient: {exc}")
                self.observer.event(DeliveryEvent(plan.name, lang, FAILED_STATUS, error=secrets.redact(str(exc)),
                                                  recipient=recipient.address))
                counts[lang][FAILED_STATUS] += 1
                errors.setdefault(lang, str(exc))
                return None

        def tally(lang: str, result: DeliveryResult) -> None:
            counts[lang][result.status] += 1
            if result.sent_at:
                last_sent[lang] = result.sent_at
            if result.error:
                errors.setdefault(lang, result.error)

        async def worker() -> None:
            held = _Held()
            try:
                while True:
                    # The held confirmation waits only for a next message at hand: never while this worker waits.
                    if queue.empty() or limiter.interval:
                        self._write_held(held)
                    item = await queue.get()
                    if item is None:
                        return
                    recipient, lang, message = item
                    await limiter.wait()
                    tally(lang, await self._attempt(plan, self._delivery(plan, lang, message, recipient), retry_until,
                                                    held, outage))
            finally:
                self._write_held(held)

        def give_up(pairs: list[tuple[Recipient, str]], keys: list[str]) -> None:
            """A batch met after the channel stayed down past its retries: failed together, in one transaction."""
            reason = f"{outage.reason} (the channel stayed unreachable until the end of its retries)"
            self.ledger.mark_all_failed(keys, reason)
            for recipient, lang in pairs:
                tally(lang, DeliveryResult(plan.name, lang, FAILED_STATUS, error=reason))
                self.observer.event(DeliveryEvent(plan.name, lang, FAILED_STATUS, error=reason,
                                                  recipient=recipient.address))

        async def feed() -> None:
            for batch in _batches(publisher.recipients(), BATCH):
                pairs = [(r, recipient_language(r, plan.languages)) for r in batch]
                self.ledger.record_intents(self.post, [(plan.name, lang, r.address) for r, lang in pairs])
                keys = [delivery_key(self.post.incident, self.post.seq, self.post.phase, plan.name, lang, r.address)
                        for r, lang in pairs]
                claim = self.ledger.claim(keys)
                gave_up = outage.gave_up
                if gave_up:
                    give_up([p for p, k in zip(pairs, keys, strict=True) if k in claim.taken],
                            [k for k in keys if k in claim.taken])
                for (recipient, lang), key in zip(pairs, keys, strict=True):
                    finished = claim.finished.get(key)
                    if finished == SENT:
                        counts[lang][ALREADY_SENT] += 1
                        self.observer.event(DeliveryEvent(plan.name, lang, ALREADY_SENT, recipient=recipient.address))
                    elif finished is not None:
                        counts[lang][REJECTED_STATUS] += 1
                        self.observer.event(DeliveryEvent(plan.name, lang, REJECTED_STATUS,
                                                          recipient=recipient.address))
                    elif key not in claim.taken:
                        tally(lang, self._left(plan, lang, claim.held.get(key), recipient.address))
                    elif not gave_up:
                        self.observer.event(DeliveryEvent(plan.name, lang, "pending", recipient=recipient.address))
                        message = render(recipient, lang, key)
                        if message is not None:
                            await queue.put((recipient, lang, message))
            for _ in range(workers_count):
                await queue.put(None)

        async with asyncio.TaskGroup() as group:
            for _ in range(workers_count):
                group.create_task(worker())
            group.create_task(feed())
        results = []
        for lang in plan.languages:
            c = counts[lang]
            status = FAILED_STATUS if c[FAILED_STATUS] else (SENT_STATUS if c[SENT_STATUS] else ALREADY_SENT)
            if not any(c.values()):
                status = SKIPPED
            sent_at = last_sent.get(lang)
            results.append(DeliveryResult(
                plan.name, lang, status, sent_at=sent_at, within_window=self._in_window(sent_at),
                attempts=sum(c.values()), error=errors.get(lang) if status == FAILED_STATUS or c[REJECTED_STATUS]
                else None, recipients={"total": sum(c.values()), **c},
            ))
        return results


class _Outage:
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


async def _all(coroutines: Iterable[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run coroutines together and flatten their results; the first to fail stops the others (a task group)."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(c) for c in coroutines]
    flat: list[Any] = []
    for task in tasks:
        value = task.result()
        flat.extend(value if isinstance(value, list) else [value])
    return flat


def _leaves(group: BaseException) -> Iterator[BaseException]:
    """The exceptions inside nested exception groups, in order."""
    if isinstance(group, BaseExceptionGroup):
        for inner in group.exceptions:
            yield from _leaves(inner)
    else:
        yield group


@dataclass
class _Held:
    """The delivery a per-recipient worker saw confirmed last, not yet in the ledger.

    It is written in the transaction that marks the worker's next message as sending, so a long list costs one
    commit per message, not two; or alone, before the worker waits for anything. A kill in between can repeat
    that one message, as a kill while it was in flight could: still at most one per worker, that is per
    connection.
    """

    confirmation: Confirmation | None = None
    event: DeliveryEvent | None = None


def _batches(items: Iterator[Recipient], size: int) -> Iterator[list[Recipient]]:
    batch: list[Recipient] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
