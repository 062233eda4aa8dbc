"""A per-recipient channel's run: its list streamed in batches, each batch recorded and claimed before a pool of
workers sends it, at the channel's rate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime

from playbook import secrets
from playbook.engine.attempts import Held, Sender
from playbook.engine.outage import Outage
from playbook.engine.results import DeliveryEvent, DeliveryResult
from playbook.ledger.contract import delivery_key
from playbook.ledger.statuses import DeliveryStatus
from playbook.planning.plan import ChannelPlan, PostPlan
from playbook.publishers.base import Delivery, Message, Recipient
from playbook.publishers.recipients import recipient_language

BATCH = 200

# How a language's recipients are counted in its result row.
_COUNTED = (DeliveryStatus.SENT, DeliveryStatus.ALREADY_SENT, DeliveryStatus.FAILED, DeliveryStatus.REJECTED)


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


class RecipientRun:
    """One per-recipient channel of a post: a feeder records, claims and renders each batch of the list while
    a pool of workers sends what it has queued; one result row per language, with counts."""

    def __init__(self, sender: Sender, post_plan: PostPlan, plan: ChannelPlan,
                 delivery: Callable[[ChannelPlan, str, Message, Recipient], Delivery]) -> None:
        self.sender = sender
        self.post_plan = post_plan
        self.plan = plan
        self.delivery = delivery
        publisher = plan.publisher
        self.limiter = RateLimiter(getattr(publisher, "rate", None))
        self.counts: dict[str, dict[str, int]] = {lang: dict.fromkeys(_COUNTED, 0) for lang in plan.languages}
        self.last_sent: dict[str, datetime] = {}
        self.errors: dict[str, str] = {}
        self.workers = max(1, publisher.concurrency)
        self.retry_until = sender.retry_until(plan)
        self.outage = Outage((self.retry_until - sender.clock()).total_seconds())
        # The feeder renders each message and queues it, up to two per worker ahead of them: rendering
        # happens while the connections wait for the server, not between a reply and the next message.
        self.queue: asyncio.Queue[tuple[Recipient, str, Message] | None] = asyncio.Queue(maxsize=2 * self.workers)
        self.renderers: dict[str, Callable[[Recipient], Message]] = {}

    async def run(self) -> list[DeliveryResult]:
        """Send to the whole list. The feeder and the workers run in one task group: if any of them dies, the
        others stop at once."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self.workers):
                group.create_task(self._worker())
            group.create_task(self._feed())
        return [self._result(lang) for lang in self.plan.languages]

    def _result(self, lang: str) -> DeliveryResult:
        c = self.counts[lang]
        status = (DeliveryStatus.FAILED if c[DeliveryStatus.FAILED]
                  else DeliveryStatus.SENT if c[DeliveryStatus.SENT] else DeliveryStatus.ALREADY_SENT)
        if not any(c.values()):
            status = DeliveryStatus.SKIPPED
        elif c.get(DeliveryStatus.SUPERSEDED) == sum(c.values()):
            status = DeliveryStatus.SUPERSEDED
        sent_at = self.last_sent.get(lang)
        error = self.errors.get(lang) if status == DeliveryStatus.FAILED or c[DeliveryStatus.REJECTED] else None
        return DeliveryResult(self.plan.name, lang, status, sent_at=sent_at,
                              within_window=self.sender.in_window(sent_at), attempts=sum(c.values()), error=error,
                              recipients={"total": sum(c.values()), **c})

    def _event(self, lang: str, status: DeliveryStatus, recipient: Recipient, error: str | None = None) -> None:
        self.sender.observer.event(DeliveryEvent(self.plan.name, lang, status, error=error,
                                                 recipient=recipient.address))

    def _render(self, recipient: Recipient, lang: str, key: str) -> Message | None:
        """The recipient's message, or None once their delivery is recorded as failed."""
        try:
            if lang not in self.renderers:
                post = self.sender.post
                self.renderers[lang] = self.post_plan.composer.recipient_messages(
                    post.phase, lang, self.post_plan.variables, self.post_plan.context, self.plan.publisher)
            return self.renderers[lang](recipient)
        except Exception as exc:
            self.sender.ledger.mark_failed(key, f"cannot render for this recipient: {exc}")
            self._event(lang, DeliveryStatus.FAILED, recipient, secrets.redact(str(exc)))
            self.counts[lang][DeliveryStatus.FAILED] += 1
            self.errors.setdefault(lang, str(exc))
            return None

    def _tally(self, lang: str, result: DeliveryResult) -> None:
        self.counts[lang][result.status] += 1
        if result.sent_at:
            self.last_sent[lang] = result.sent_at
        if result.error:
            self.errors.setdefault(lang, result.error)

    async def _worker(self) -> None:
        held = Held()
        try:
            while True:
                # The held confirmation waits only for a next message at hand: never while this worker waits.
                if self.queue.empty() or self.limiter.interval:
                    self.sender.write_held(held)
                item = await self.queue.get()
                if item is None:
                    return
                recipient, lang, message = item
                await self.limiter.wait()
                delivery = self.delivery(self.plan, lang, message, recipient)
                self._tally(lang, await self.sender.attempt(self.plan, delivery, self.retry_until, held, self.outage))
        finally:
            self.sender.write_held(held)

    def _give_up(self, pairs: list[tuple[Recipient, str]], keys: list[str]) -> None:
        """A batch met after the channel stayed down past its retries: failed together, in one transaction."""
        reason = self.sender.unreachable(self.plan, self.outage.reason)
        self.sender.ledger.mark_all_failed(keys, reason)
        for recipient, lang in pairs:
            self._tally(lang, DeliveryResult(self.plan.name, lang, DeliveryStatus.FAILED, error=reason))
            self._event(lang, DeliveryStatus.FAILED, recipient, reason)

    async def _feed(self) -> None:
        post, ledger, name = self.sender.post, self.sender.ledger, self.plan.name
        for batch in _batches(self.plan.publisher.recipients(), BATCH):
            pairs = [(r, recipient_language(r, self.plan.languages)) for r in batch]
            ledger.record_intents(post, [(name, lang, r.address) for r, lang in pairs])
            keys = [delivery_key(post.incident, post.seq, post.phase, name, lang, r.address) for r, lang in pairs]
            claim = ledger.claim(keys)
            gave_up = self.outage.gave_up
            if gave_up:
                self._give_up([p for p, k in zip(pairs, keys, strict=True) if k in claim.taken],
                              [k for k in keys if k in claim.taken])
            for (recipient, lang), key in zip(pairs, keys, strict=True):
                finished = claim.finished.get(key)
                if finished == DeliveryStatus.SENT:
                    self.counts[lang][DeliveryStatus.ALREADY_SENT] += 1
                    self._event(lang, DeliveryStatus.ALREADY_SENT, recipient)
                elif finished is not None:
                    # Refused for good, or superseded by a later post: settled either way, never sent here.
                    self.counts[lang][finished] = self.counts[lang].get(finished, 0) + 1
                    self._event(lang, finished, recipient)
                elif key not in claim.taken:
                    self._tally(lang, self.sender.left(self.plan, lang, claim.held.get(key), recipient.address))
                elif not gave_up:
                    self._event(lang, DeliveryStatus.PENDING, recipient)
                    message = self._render(recipient, lang, key)
                    if message is not None:
                        await self.queue.put((recipient, lang, message))
        for _ in range(self.workers):
            await self.queue.put(None)


def _batches(items: Iterator[Recipient], size: int) -> Iterator[list[Recipient]]:
    batch: list[Recipient] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
