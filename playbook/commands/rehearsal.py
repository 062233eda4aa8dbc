"""A rehearsal's results: each check a named result, and how long each channel needs or took."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from playbook.errors import PlaybookError


@dataclass
class Check:
    """One named result of a rehearsal."""

    playbook: str
    group: str
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0
    skipped: bool = False


@dataclass
class ChannelTiming:
    """How long a channel needs (estimated) or took (measured in a drill) to deliver the first phase."""

    channel: str
    type: str
    seconds: float
    measured: bool
    arithmetic: str = ""
    # Where the pace comes from, and when it was measured: the ledger's latest run, a timed check, a default.
    source: str = ""


@dataclass
class Rehearsal:
    playbook: str
    name: str
    window: timedelta
    at: datetime
    checks: list[Check] = field(default_factory=list)
    timings: list[ChannelTiming] = field(default_factory=list)
    drill_incident: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok or c.skipped for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and not c.skipped]

    def summary(self) -> dict[str, Any]:
        return {
            "passed": self.ok,
            "checks": len(self.checks),
            "failed": [f"{c.group}: {c.name}: {c.detail}" for c in self.failures],
            "slowest": max(((t.channel, round(t.seconds, 1)) for t in self.timings), key=lambda t: t[1],
                           default=None),
        }


class Recorder:
    """Adds a rehearsal's checks as they are made."""

    def __init__(self, rehearsal: Rehearsal) -> None:
        self.rehearsal = rehearsal

    def add(self, group: str, name: str, ok: bool, detail: str, seconds: float = 0.0,
            skipped: bool = False) -> None:
        self.rehearsal.checks.append(Check(self.rehearsal.playbook, group, name, ok, detail, seconds, skipped))

    def timed(self, group: str, name: str, run: Callable[[], tuple[bool, str]]) -> None:
        start = time.perf_counter()
        try:
            ok, detail = run()
        except PlaybookError as exc:
            ok, detail = False, str(exc)
        self.add(group, name, ok, detail, time.perf_counter() - start)
