"""Which of an open incident's duties are due at a given moment: pure functions of the ledger's records and a
clock, so that tests drive hours of an outage in an instant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from playbook.home.model import Playbook
from playbook.ledger.contract import Incident, Post
from playbook.ledger.duties import DutyKind


@dataclass(frozen=True)
class Due:
    """A duty that is due: its ledger key (the same on every worker, so only one does it) and what it is for."""

    key: str
    kind: DutyKind
    incident: Incident
    post: Post
    # "soon" or "overdue" for a reminder, "holding" for a holding update.
    reason: str


def due_for_incident(playbook: Playbook, incident: Incident, last: Post, now: datetime) -> list[Due]:
    """The reminders and holding update due for an open incident whose last post is `last`.

    Keyed by the last post: a new post (the humans' update, or a holding update) starts a new cycle. A
    reminder that the update is soon due is not sent once it is already overdue: the overdue one says more.
    """
    due_at = last.next_update_at
    if not incident.open or due_at is None or last.phase == playbook.last_phase:
        return []
    found: list[Due] = []
    base = f"{incident.id}/{last.seq}"
    reminders = playbook.reminders
    if reminders is not None:
        if now >= due_at:
            found.append(Due(f"reminder/{base}/overdue", DutyKind.REMINDER, incident, last, "overdue"))
        elif now >= due_at - reminders.before:
            found.append(Due(f"reminder/{base}/soon", DutyKind.REMINDER, incident, last, "soon"))
    holding = playbook.holding
    if holding is not None and (holding.drills or not incident.drill) and now >= due_at + holding.after:
        found.append(Due(f"holding/{base}", DutyKind.HOLDING, incident, last, "holding"))
    return found


def rehearsal_key(playbook: Playbook, last: tuple[datetime, bool] | None, now: datetime) -> str | None:
    """The duty key of the playbook's scheduled rehearsal when one is due (the last is older than
    `rehearse_every`, or there was none): keyed by the last one, so that one worker runs each."""
    if last is not None and now - last[0] < playbook.rehearse_every:
        return None
    since = last[0].isoformat(timespec="seconds") if last is not None else "never"
    return f"rehearsal/{playbook.id}/{since}"
