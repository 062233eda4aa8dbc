"""Probes turned into state changes: down after `fails` failures in a row, up after `recovers` successes in a row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from playbook.monitoring.probes import Finding

State = Literal["up", "down"]


@dataclass(frozen=True)
class Change:
    """A monitor's new state; `since` is the first probe of the run that made it (for down, the first failure)."""

    state: State
    since: datetime
    finding: Finding


class Tracker:
    """One monitor's state; a probe that breaks a run starts the count again, so flapping changes nothing."""

    def __init__(self, fails: int, recovers: int, state: State = "up") -> None:
        self.fails = fails
        self.recovers = recovers
        self.state: State = state
        self._run = 0
        self._first: datetime | None = None

    def heard(self, finding: Finding, at: datetime) -> Change | None:
        """The change this probe completes, if any."""
        if finding.ok == (self.state == "up"):
            self._run, self._first = 0, None
            return None
        if self._first is None:
            self._first = at
        self._run += 1
        if self._run < (self.fails if self.state == "up" else self.recovers):
            return None
        self.state = "down" if self.state == "up" else "up"
        change = Change(self.state, self._first, finding)
        self._run, self._first = 0, None
        return change
