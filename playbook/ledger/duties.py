"""What workers record beside the posts: who is alive (their heartbeat), the duties that must be done once
by one of them however many run (a reminder, a holding update, a scheduled rehearsal), and each change of a
monitor's state that the watchers saw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

# A worker beats every BEAT; one not heard from for ALIVE is taken for dead: the CLI keeps its retries itself
# again, and another worker takes over what it held once the claims' leases lapse.
BEAT = timedelta(seconds=5)
ALIVE = timedelta(seconds=30)

# A duty that failed (Slack down for a minute, a holding channel refusing) is tried again after 30 s, then 1, 2
# and 4 minutes: five tries over about seven minutes, so that a short outage of the channel does not lose it,
# and no channel is hammered every pass.
DUTY_TRIES = 5
RETRY_FIRST = timedelta(seconds=30)
RETRY_MOST = timedelta(minutes=5)


def retry_after(attempts: int) -> timedelta:
    """How long a duty that failed its `attempts`-th try waits before the next one."""
    wait: timedelta = RETRY_FIRST * 2 ** min(max(0, attempts - 1), 10)
    return min(wait, RETRY_MOST)


class DutyKind(StrEnum):
    # The on-call told that an update is due soon, or overdue.
    REMINDER = "reminder"
    # The current phase published again by the worker because the humans are late.
    HOLDING = "holding"
    # A playbook's offline rehearsal run on its `rehearse_every` schedule.
    REHEARSAL = "rehearsal"


@dataclass(frozen=True)
class Worker:
    """A worker process as its heartbeat recorded it."""

    host: str
    pid: int
    token: str
    # The home it serves, as a path on its own machine.
    home: str
    started_at: datetime
    seen_at: datetime
    # What it is doing in its own words ("retrying 3 deliveries of whatsapp-outage-20261130-1405 until 14:35").
    doing: str


@dataclass(frozen=True)
class Duty:
    """Something done once by one worker: taken (under a hold), then finished with its outcome."""

    key: str
    kind: DutyKind
    incident: str | None
    playbook: str | None
    taken_at: datetime
    # Who took it last: "pid N on host".
    taken_by: str
    attempts: int
    done_at: datetime | None
    ok: bool | None
    # What was done, or why it failed, secrets masked.
    outcome: str | None


@dataclass(frozen=True)
class MonitorChange:
    """A monitor of a playbook seen going down or coming back up, as the watcher that saw it first recorded it."""

    playbook: str
    monitor: str
    # 1, 2, ... per (playbook, monitor): the states alternate, so an odd seq is always the first "down".
    seq: int
    # "up" or "down".
    state: str
    # The first probe that said so: for "down", the moment the review counts detection from.
    since: datetime
    recorded_at: datetime
    # The last probe's finding, secrets masked.
    detail: str
    # Who recorded it: "pid N on host".
    by: str


class DutyLedger(Protocol):
    """The part of the ledger's contract (`contract.Ledger` extends it) that the workers and watchers use:
    heartbeats, duties and monitor changes, written by each store's duties and monitors mixins."""

    # -- workers -------------------------------------------------------------------------------------
    def beat(self, home: str, started_at: datetime, doing: str) -> None:
        """Record that this owner runs a worker serving `home` and is alive now (its row made or refreshed)."""

    def workers(self, alive_within: timedelta) -> list[Worker]:
        """The workers heard from within `alive_within` of now and not stopped, the longest-running first."""

    def worker_stopped(self) -> None:
        """Mark this owner's worker as stopped (cleanly, holding nothing): no longer listed, its row kept."""

    # -- duties --------------------------------------------------------------------------------------
    def take_duty(self, key: str, kind: DutyKind, *, incident: str | None, playbook: str | None,
                  hold: timedelta, tries: int = DUTY_TRIES) -> bool:
        """Take a duty for this owner, atomically across processes and machines: True when it is now this
        owner's for `hold`. It is taken when never taken, or when its last taker failed it (fewer than `tries`
        attempts so far, and `retry_after(attempts)` since) or let its hold lapse unfinished; never once done,
        nor while held, by another owner or by this one (each True is one attempt)."""

    def finish_duty(self, key: str, *, ok: bool, outcome: str) -> None:
        """Record a duty this owner holds as done (ok: never taken again) or failed (takeable again later),
        with its outcome, secrets masked; nothing changes if another owner took it over after this one's hold
        lapsed."""

    def duties(self, incident_id: str | None = None) -> list[Duty]:
        """The duties taken (of one incident), in the order they were first taken."""

    # -- monitors ------------------------------------------------------------------------------------
    def record_monitor_change(self, playbook: str, monitor: str, state: str, since: datetime,
                              detail: str) -> MonitorChange | None:
        """Record that the monitor is now `state`, atomically across processes and machines, detail masked:
        None, recording nothing, when its latest recorded state already is `state` (another watcher recorded
        this change first)."""

    def monitor_states(self) -> list[MonitorChange]:
        """The latest recorded change of every monitor, by playbook then monitor."""

    def monitor_changes(self, playbook: str, since: datetime | None = None) -> list[MonitorChange]:
        """A playbook's monitor changes (those whose state began at or after `since`), oldest first: the
        timeline's detection part."""
