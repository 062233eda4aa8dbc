"""What workers record beside the posts: who is alive (their heartbeat), the duties that must be done once
by one of them however many run (a reminder, a holding update, a scheduled rehearsal), and each change of a
monitor's state that the watchers saw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# A worker beats every BEAT; one not heard from for ALIVE is taken for dead: the CLI keeps its retries itself
# again, and another worker takes over what it held once the claims' leases lapse.
BEAT = timedelta(seconds=5)
ALIVE = timedelta(seconds=30)


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
