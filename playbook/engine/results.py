"""What a run reports: each delivery's outcome at the end, and each change as it happens (for the live view)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from playbook.ledger.contract import utcnow
from playbook.ledger.statuses import DeliveryStatus
from playbook.planning.plan import PostPlan


@dataclass
class DeliveryResult:
    channel: str
    lang: str
    # sent, failed, rejected, already-sent or skipped (the ledger's sending and pending never end a run).
    status: DeliveryStatus
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
        return all(d.status != DeliveryStatus.FAILED for d in self.deliveries)


@dataclass(frozen=True)
class DeliveryEvent:
    """A change in one delivery, for the live view."""

    channel: str
    lang: str
    # pending, sending, sent, retrying, failed, rejected or already-sent.
    status: DeliveryStatus
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
