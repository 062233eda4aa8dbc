"""A post's run: every channel x language at once, briefing channels last with the others' links."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any

from playbook import secrets
from playbook.engine.attempts import Retries, Sender
from playbook.engine.claims import while_claimed
from playbook.engine.recipients import RecipientRun
from playbook.engine.results import DeliveryEvent, DeliveryResult, NullObserver, Observer, PostResult
from playbook.ledger.contract import Claim, Ledger, Post, delivery_key, utcnow
from playbook.ledger.statuses import SETTLED, DeliveryStatus
from playbook.planning.history import channel_history
from playbook.planning.plan import ChannelPlan, PostPlan
from playbook.publishers.base import Delivery, Link, Message, PastPost, Receipt, Recipient

log = logging.getLogger("playbook.engine")


class Engine:
    def __init__(self, ledger: Ledger, post: Post, plan: PostPlan, observer: Observer | None = None,
                 clock: Callable[[], datetime] = utcnow, retries: Retries | None = None) -> None:
        self.ledger = ledger
        self.post = post
        self.plan = plan
        self.observer = observer or NullObserver()
        self.clock = clock
        self.started = clock()
        self.sender = Sender(ledger, post, self.observer, clock, retries)
        # The other channels' outcomes, handed to briefing channels once those have finished.
        self.links: tuple[Link, ...] = ()
        # The single-target deliveries of the post, as claimed when the run starts.
        self.claimed = Claim(frozenset(), {}, {})
        # For channels that show a history (the status page): what the ledger holds of theirs, read once a run.
        self.histories: dict[str, tuple[PastPost, ...]] = {}

    async def run(self) -> PostResult:
        """Send every unconfirmed delivery of the post; one channel's trouble never holds up another.

        Briefing channels (`Publisher.briefing`) wait for the others and receive their outcomes as links.
        The post is claimed for the whole run (ClaimHeld if another process is publishing it) and the claims
        are renewed in the background; a task that dies (the ledger cannot be written, a bug) stops the run at
        once with RunStopped, and the claims are released whatever happens.
        """
        return await while_claimed(self.ledger, self.post, self._publish)

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
            DeliveryResult(c.name, lang, DeliveryStatus.SKIPPED, error=c.skipped)
            for c in self.plan.channels if c.skipped is not None for lang in c.languages or ["-"]
        ]
        # Briefing channels (team chats) go last: their message links to what the others have just published.
        results.extend(await _all(self._run_channel(c) for c in live if not c.publisher.briefing))
        briefings = {c.name for c in self.plan.channels if c.publisher.briefing}
        self.links = tuple(Link(r.channel, r.lang, r.status, r.url) for r in results if r.channel not in briefings)
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
                self.observer.event(DeliveryEvent(plan.name, lang, DeliveryStatus.FAILED, error=reason))
            return [DeliveryResult(plan.name, lang, DeliveryStatus.FAILED, error=reason) for lang in plan.languages]
        size = publisher.history_size()
        if size is not None:
            self.histories[plan.name] = channel_history(self.ledger, self.plan.composer.home, plan.name, size,
                                                        self.post)
        try:
            if publisher.per_recipient:
                return await RecipientRun(self.sender, self.plan, plan, self._delivery).run()
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
            thread=thread, drill=self.plan.drill, links=self.links if plan.publisher.briefing else (),
            next_update_at=self.post.next_update_at, detected_at=self.plan.context.detected_at,
            timezone=self.plan.context.timezone, stage=self.plan.stage, history=self.histories.get(plan.name, ()),
        )

    async def _single(self, plan: ChannelPlan, lang: str) -> DeliveryResult:
        delivery = self._delivery(plan, lang, plan.messages[lang], None)
        status = self.claimed.finished.get(delivery.key)
        if status in SETTLED:
            row = next(r for r in self.ledger.deliveries(self.post.incident, self.post.seq, recipients=False)
                       if r.key == delivery.key)
            shown = DeliveryStatus.ALREADY_SENT if status == DeliveryStatus.SENT else status
            self.observer.event(DeliveryEvent(plan.name, lang, shown, attempts=row.attempts, url=row.url))
            return DeliveryResult(plan.name, lang, shown, row.remote_id, row.url, row.finished_at,
                                  self.sender.in_window(row.finished_at), row.attempts, error=row.error)
        if delivery.key not in self.claimed.taken:
            return self.sender.left(plan, lang, self.claimed.held.get(delivery.key))
        return await self.sender.attempt(plan, delivery, self.sender.retry_until(plan))


async def _all(coroutines: Iterable[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run coroutines together and flatten their results; the first to fail stops the others (a task group)."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(c) for c in coroutines]
    flat: list[Any] = []
    for task in tasks:
        value = task.result()
        flat.extend(value if isinstance(value, list) else [value])
    return flat
