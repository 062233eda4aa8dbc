"""The read side of incidents: what `status` and `timeline` show, read from the ledger without the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from playbook.errors import PlaybookError
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.ledger import open_existing, open_ledger
from playbook.ledger.contract import Incident, Ledger, utcnow
from playbook.ledger.duties import ALIVE, Worker
from playbook.ledger.statuses import DeliveryStatus, list_status

if TYPE_CHECKING:
    from playbook.commands.review import Review


@dataclass
class DeliveryView:
    seq: int
    phase: str
    channel: str
    lang: str
    status: DeliveryStatus
    attempts: int
    remote_id: str | None
    url: str | None
    sent_at: datetime | None
    error: str | None
    within_window: bool | None
    recipients: dict[str, int] | None = None
    note: str | None = None
    # Unfinished, and nobody is at it: no live claim on its post, and no worker retrying it. A process was
    # killed or stopped mid-send; `playbook resume` finishes it.
    interrupted: bool = False


@dataclass
class IncidentView:
    id: str
    playbook: str
    phase: str
    open: bool
    drill: bool
    detected_at: datetime
    window: timedelta
    deadline: datetime
    first_notice_at: datetime | None
    window_met: bool | None
    next_update_due: datetime | None
    closed_at: datetime | None
    deliveries: list[DeliveryView]
    posts: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "playbook": self.playbook,
            "phase": self.phase,
            "open": self.open,
            "drill": self.drill,
            "detected_at": self.detected_at.isoformat(),
            "first_notice_at": self.first_notice_at.isoformat() if self.first_notice_at else None,
            "window_met": self.window_met,
            "next_update_due": self.next_update_due.isoformat() if self.next_update_due else None,
        }


# What a delivery is left as in the ledger when its run stopped before knowing the outcome (a failure is
# recorded as one).
IN_FLIGHT = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


def incident_view(home: Home, ledger: Ledger, incident: Incident) -> IncidentView:
    try:
        playbook: Playbook | None = home.load_playbook(incident.playbook)
    except PlaybookError:
        playbook = None
    posts = ledger.posts(incident.id)
    # Judged by the window it was opened under: editing the playbook later does not rewrite history.
    window = posts[0].deadline - incident.detected_at if posts else (playbook.window if playbook else timedelta())
    deadline = incident.detected_at + window
    first = ledger.first_sent_at(incident.id, 1)
    met = (first <= deadline) if first else (False if utcnow() > deadline else None)
    next_due = None
    if incident.open and posts and playbook is not None:
        next_due = posts[-1].issued_at + playbook.update_every
    now = utcnow()
    worked_on = {h.seq for h in ledger.holders(incident.id)} | {
        p.seq for p in posts if p.handed_until is not None and p.handed_until > now}
    views: list[DeliveryView] = []
    for row in ledger.deliveries(incident.id, recipients=False):
        post_deadline = next(p.deadline for p in posts if p.seq == row.seq)
        sent_at = row.finished_at if row.status == DeliveryStatus.SENT else None
        in_window = (sent_at <= post_deadline) if sent_at else None
        views.append(DeliveryView(row.seq, row.phase, row.channel, row.lang, row.status, row.attempts,
                                  row.remote_id, row.url, sent_at, row.error, in_window, note=row.note,
                                  interrupted=row.status in IN_FLIGHT and row.seq not in worked_on))
    grouped: dict[tuple[int, str, str], dict[str, int]] = {}
    for seq, channel, lang, status, count in ledger.delivery_counts(incident.id):
        grouped.setdefault((seq, channel, lang), {})[status] = count
    for (seq, channel, lang), counts in grouped.items():
        phase = next(p.phase for p in posts if p.seq == seq)
        status = list_status(counts)
        views.append(DeliveryView(seq, phase, channel, lang, status, 0, None, None, None, None, None,
                                  {"total": sum(counts.values()), **counts},
                                  interrupted=status == DeliveryStatus.SENDING and seq not in worked_on))
    views.sort(key=lambda v: (v.seq, v.channel, v.lang))
    return IncidentView(
        id=incident.id, playbook=incident.playbook, phase=incident.phase, open=incident.open, drill=incident.drill,
        detected_at=incident.detected_at, window=window, deadline=deadline, first_notice_at=first,
        window_met=met, next_update_due=next_due, closed_at=incident.closed_at, deliveries=views,
        posts=[{"seq": p.seq, "phase": p.phase, "issued_at": p.issued_at, "deadline": p.deadline,
                "holding": p.holding, "handed_until": p.handed_until} for p in posts],
    )


@dataclass
class RehearsalView:
    playbook: str
    last_at: datetime | None
    passed: bool | None
    every: timedelta

    @property
    def stale(self) -> bool:
        return self.last_at is None or utcnow() - self.last_at > self.every

    def as_json(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "last_rehearsed_at": self.last_at.isoformat() if self.last_at else None,
                "passed": self.passed, "stale": self.stale}


def rehearsal_status(home: Home, ledger: Ledger | None) -> list[RehearsalView]:
    """When each playbook was last rehearsed, and whether that is older than its `rehearse_every`."""
    views = []
    for playbook_id in home.playbook_ids():
        try:
            every = home.load_playbook(playbook_id).rehearse_every
        except PlaybookError:
            continue
        last = ledger.last_rehearsal(playbook_id) if ledger else None
        views.append(RehearsalView(playbook_id, last[0] if last else None, last[1] if last else None, every))
    return views


def review(home: Home, incident_id: str, now: datetime | None = None) -> Review:
    """The post-incident review of one incident (see playbook.commands.review), read from the ledger."""
    from playbook.commands.review import build_review

    ledger = open_ledger(home.state, readonly=True, environ=home.env)
    try:
        return build_review(home, ledger, incident_id, now)
    finally:
        ledger.close()


@dataclass
class MonitorView:
    """A monitor's last recorded state ("unknown" before any change was recorded: every probe said up so far,
    or nothing watches it)."""

    playbook: str
    name: str
    state: str
    since: datetime | None
    detail: str | None

    def as_json(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "monitor": self.name, "state": self.state,
                "since": self.since.isoformat() if self.since else None, "detail": self.detail}


def monitor_status(home: Home, ledger: Ledger | None) -> list[MonitorView]:
    """Every monitor of the home's playbooks and its last recorded state."""
    latest = {(c.playbook, c.monitor): c for c in (ledger.monitor_states() if ledger else [])}
    views = []
    for playbook_id in home.playbook_ids():
        try:
            playbook = home.load_playbook(playbook_id)
        except PlaybookError:
            continue
        for monitor in playbook.monitors:
            change = latest.get((playbook.id, monitor.name))
            views.append(MonitorView(playbook.id, monitor.name, change.state if change else "unknown",
                                     change.since if change else None, change.detail if change else None))
    return views


@dataclass
class StatusReport:
    """What `status` shows: the incidents, when each playbook was last rehearsed, and each one's time zone."""

    incidents: list[IncidentView]
    rehearsals: list[RehearsalView]
    # A playbook that no longer loads has no zone here: its times are shown in UTC rather than not at all.
    zones: dict[str, str]
    # The workers alive now: who retries what the commands hand over, and keeps the duties.
    workers: list[Worker] = field(default_factory=list)
    monitors: list[MonitorView] = field(default_factory=list)


def status_report(home: Home, incident_id: str | None) -> StatusReport:
    """One incident, or every open one with the rehearsals, and the zones their times are shown in."""
    # One ledger for the whole report: a PostgreSQL ledger is a connection, not a file to reopen for free. A
    # ledger that has disappeared must say so (open_existing does): "no open incident" would be a silent lie.
    ledger = (open_existing(home.state, readonly=True, environ=home.env) if incident_id is None else
              open_ledger(home.state, readonly=True, environ=home.env))
    try:
        incidents = []
        if ledger is not None:
            found = [ledger.incident(incident_id)] if incident_id else ledger.open_incidents()
            incidents = [incident_view(home, ledger, i) for i in found]
        rehearsals = rehearsal_status(home, ledger) if incident_id is None else []
        workers = ledger.workers(ALIVE) if ledger is not None else []
        monitors = monitor_status(home, ledger) if incident_id is None else []
    finally:
        if ledger is not None:
            ledger.close()
    zones = {}
    for playbook_id in {i.playbook for i in incidents} | {r.playbook for r in rehearsals} | {m.playbook for m in
                                                                                           monitors}:
        try:
            zones[playbook_id] = home.load_playbook(playbook_id).timezone
        except PlaybookError:
            continue
    return StatusReport(incidents, rehearsals, zones, workers, monitors)
