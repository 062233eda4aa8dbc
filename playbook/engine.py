"""Publishing a post: every channel x language at once, each delivery retried inside the window.

The ledger holds the intent of every delivery before it is attempted and the outcome right after; a
delivery the ledger already confirms is never attempted again, whoever re-runs what.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from playbook import secrets
from playbook.compose import BlockMeasure, Composer
from playbook.ledger import SENT, Confirmation, Ledger, Post, delivery_key, utcnow
from playbook.publishers.base import Delivery, Failure, Publisher, Receipt, Recipient
from playbook.render import Message, RenderContext

# Statuses of a delivery in results (the ledger has its own, finer ones).
SENT_STATUS, FAILED_STATUS, SKIPPED, DRY_RUN, ALREADY_SENT, REJECTED_STATUS = (
    "sent", "failed", "skipped", "dry-run", "already-sent", "rejected")

log = logging.getLogger("playbook.engine")

BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0
BATCH = 200


@dataclass
class ChannelPlan:
    """One channel of a post: its publisher, languages and (for single-target channels) the messages."""

    name: str
    type: str
    publisher: Publisher[Any]
    languages: list[str]
    messages: dict[str, Message] = field(default_factory=dict)
    measures: dict[str, list[BlockMeasure]] = field(default_factory=dict)
    recipient_count: int | None = None
    # Per-recipient channels: how many recipients each language has (the first language takes the rest).
    recipients_by_lang: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None
    # In a drill: the live channel this sandbox stands in for.
    stands_in_for: str | None = None


@dataclass
class PostPlan:
    """Everything a post will send, rendered and checked before anything goes out."""

    playbook: str
    phase: str
    incident_id: str
    deadline: datetime
    composer: Composer
    context: RenderContext
    variables: dict[str, str | None]
    channels: list[ChannelPlan]
    drill: bool = False


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

    async def run(self) -> PostResult:
        """Send every unconfirmed delivery of the post; one channel's trouble never holds up another.

        Briefing channels (`Publisher.briefing`) wait for the others and receive their results as links.
        """
        live = [c for c in self.plan.channels if c.skipped is None]
        self.ledger.record_intents(self.post, [
            (c.name, lang, None) for c in live if not c.publisher.per_recipient for lang in c.languages
        ])
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
        for channel_results in await asyncio.gather(*(self._run_channel(c) for c in live
                                                      if not c.publisher.briefing)):
            results.extend(channel_results)
        briefings = {c.name for c in self.plan.channels if c.publisher.briefing}
        self.links = [{"channel": r.channel, "lang": r.lang, "status": r.status, "url": r.url}
                      for r in results if r.channel not in briefings]
        for channel_results in await asyncio.gather(*(self._run_channel(c) for c in live if c.publisher.briefing)):
            results.extend(channel_results)
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
            return list(await asyncio.gather(*(self._single(plan, lang) for lang in plan.languages)))
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
        )

    async def _single(self, plan: ChannelPlan, lang: str) -> DeliveryResult:
        delivery = self._delivery(plan, lang, plan.messages[lang], None)
        status = self.ledger.statuses([delivery.key]).get(delivery.key)
        if status == SENT:
            row = next(r for r in self.ledger.deliveries(self.post.incident, self.post.seq, recipients=False)
                       if r.key == delivery.key)
            self.observer.event(DeliveryEvent(plan.name, lang, ALREADY_SENT, attempts=row.attempts, url=row.url))
            return DeliveryResult(plan.name, lang, ALREADY_SENT, row.remote_id, row.url, row.finished_at,
                                  self._in_window(row.finished_at), row.attempts)
        return await self._attempt(plan, delivery)

    async def _attempt(self, plan: ChannelPlan, delivery: Delivery, held: _Held | None = None) -> DeliveryResult:
        """Send one delivery, retrying inside the window; with `held`, its confirmation is left there to be written
        with the sender's next mark (see _Held) rather than in a transaction of its own."""
        publisher = plan.publisher
        timeout = publisher.config.timeout.total_seconds()
        retry_until = max(self.post.deadline, self.clock() + publisher.config.retry_for)
        who = delivery.recipient.address if delivery.recipient else None
        attempts = 0
        while True:
            attempts = self.ledger.mark_sending(delivery.key, confirmed=held.confirmation if held else None)
            if held is not None:
                self._announce(held)
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
        """Stream the recipient list in batches: intents first, then a pool of workers sends the batch."""
        publisher = plan.publisher
        limiter = RateLimiter(getattr(publisher, "rate", None))
        counts = {lang: dict.fromkeys((SENT_STATUS, ALREADY_SENT, FAILED_STATUS, REJECTED_STATUS), 0)
                  for lang in plan.languages}
        last_sent: dict[str, datetime] = {}
        errors: dict[str, str] = {}
        workers_count = max(1, publisher.concurrency)
        # The feeder renders each message and queues it, up to two per worker ahead of them: rendering
        # happens while the connections wait for the server, not between a reply and the next message.
        queue: asyncio.Queue[tuple[Recipient, str, Message] | None] = asyncio.Queue(maxsize=2 * workers_count)
        renderers: dict[str, Callable[[Recipient], Message]] = {}

        def render(recipient: Recipient, lang: str) -> Message | None:
            """The recipient's message, or None once their delivery is recorded as failed."""
            try:
                if lang not in renderers:
                    renderers[lang] = self.plan.composer.recipient_messages(
                        self.post.phase, lang, self.plan.variables, self.plan.context, publisher)
                return renderers[lang](recipient)
            except Exception as exc:
                key = delivery_key(self.post.incident, self.post.seq, self.post.phase, plan.name, lang,
                                   recipient.address)
                self.ledger.mark_failed(key, f"cannot render for this recipient: {exc}")
                self.observer.event(DeliveryEvent(plan.name, lang, FAILED_STATUS, error=secrets.redact(str(exc)),
                                                  recipient=recipient.address))
                counts[lang][FAILED_STATUS] += 1
                errors.setdefault(lang, str(exc))
                return None

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
                    result = await self._attempt(plan, self._delivery(plan, lang, message, recipient), held)
                    counts[lang][result.status] += 1
                    if result.sent_at:
                        last_sent[lang] = result.sent_at
                    if result.error:
                        errors.setdefault(lang, result.error)
            finally:
                self._write_held(held)

        workers = [asyncio.create_task(worker()) for _ in range(workers_count)]
        try:
            for batch in _batches(publisher.recipients(), BATCH):
                pairs = [(r, recipient_language(r, plan.languages)) for r in batch]
                self.ledger.record_intents(self.post, [(plan.name, lang, r.address) for r, lang in pairs])
                keys = [delivery_key(self.post.incident, self.post.seq, self.post.phase, plan.name, lang, r.address)
                        for r, lang in pairs]
                known = self.ledger.statuses(keys)
                for (recipient, lang), key in zip(pairs, keys, strict=True):
                    if known.get(key) == SENT:
                        counts[lang][ALREADY_SENT] += 1
                        self.observer.event(DeliveryEvent(plan.name, lang, ALREADY_SENT, recipient=recipient.address))
                    elif known.get(key) == "rejected":
                        counts[lang][REJECTED_STATUS] += 1
                        self.observer.event(DeliveryEvent(plan.name, lang, REJECTED_STATUS,
                                                          recipient=recipient.address))
                    else:
                        self.observer.event(DeliveryEvent(plan.name, lang, "pending", recipient=recipient.address))
                        message = render(recipient, lang)
                        if message is not None:
                            await queue.put((recipient, lang, message))
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
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


def recipient_language(recipient: Recipient, languages: list[str]) -> str:
    """The recipient's language when the channel speaks it (`en-GB` counts as `en`), else the first language."""
    lang = (recipient.lang or "").strip().lower()
    if lang in languages:
        return lang
    base = lang.split("-")[0].split("_")[0]
    return base if base in languages else languages[0]


def _batches(items: Iterator[Recipient], size: int) -> Iterator[list[Recipient]]:
    batch: list[Recipient] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
