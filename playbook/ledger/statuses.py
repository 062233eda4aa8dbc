"""A delivery's statuses, which of them the ledger stores, and what they mean for a run and for the views."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class DeliveryStatus(StrEnum):
    """Where a delivery stands: the ledger stores the first six (as these strings); results and the live view
    add the others, which are never stored."""

    # Intent recorded, not yet attempted.
    PENDING = "pending"
    # An attempt is under way (after a crash: unconfirmed).
    SENDING = "sending"
    # Confirmed by the remote side.
    SENT = "sent"
    # Given up for now: resume tries again.
    FAILED = "failed"
    # Refused for good (an SMTP 5xx for one recipient): never retried.
    REJECTED = "rejected"
    # Left unconfirmed by an earlier post when a later one went to the same channel, language and recipient:
    # never sent, as it would now say something out of date (from schema 3 on).
    SUPERSEDED = "superseded"
    # An attempt failed and another one is waiting for its turn.
    RETRYING = "retrying"
    # A run met the delivery already confirmed (by an earlier run) and did not send it again.
    ALREADY_SENT = "already-sent"
    # The channel was not sent at all (no recipients, no template for the phase...).
    SKIPPED = "skipped"
    # Planned by a dry run: nothing went out.
    DRY_RUN = "dry-run"


# What `resume` finishes: deliveries not confirmed, not refused for good and not superseded.
UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.FAILED)
# What a run meets already settled, and never attempts again.
SETTLED = (DeliveryStatus.SENT, DeliveryStatus.REJECTED, DeliveryStatus.SUPERSEDED)


def list_status(counts: Mapping[str, int]) -> DeliveryStatus:
    """One status for a channel's recipients in one language, from how many are in each status: failed if any
    failed, sending while any is unfinished, superseded if some were, else sent."""
    if counts.get(DeliveryStatus.FAILED):
        return DeliveryStatus.FAILED
    if any(counts.get(status) for status in UNFINISHED):
        return DeliveryStatus.SENDING
    return DeliveryStatus.SUPERSEDED if counts.get(DeliveryStatus.SUPERSEDED) else DeliveryStatus.SENT


def superseded_by(seq: int, phase: str) -> str:
    """What a superseded delivery records as its reason."""
    return f"superseded by post {seq} ({phase}): not sent, it would say something out of date"
