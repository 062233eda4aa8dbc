"""The SQLite store's record of each monitor's changes of state (duties.py's MonitorChange).

A change is recorded in one BEGIN IMMEDIATE transaction that reads the monitor's latest state first: watchers
recording the same change at the same instant are serialised there, and all but the first find it recorded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from playbook import secrets
from playbook.ledger.contract import Owner
from playbook.ledger.duties import MonitorChange
from playbook.ledger.sqlite_file import iso, transaction
from playbook.ledger.sqlite_rows import monitor_change_of


class SqliteMonitors:
    """The monitors' part of SqliteLedger, on its file, owner and clock."""

    db: sqlite3.Connection
    path: Path
    owner: Owner
    clock: Callable[[], datetime]

    def record_monitor_change(self, playbook: str, monitor: str, state: str, since: datetime,
                              detail: str) -> MonitorChange | None:
        with transaction(self.db, self.path) as db:
            latest = db.execute("SELECT seq, state FROM monitor_changes WHERE playbook=? AND monitor=?"
                                " ORDER BY seq DESC LIMIT 1", (playbook, monitor)).fetchone()
            if latest is not None and latest["state"] == state:
                return None
            row = db.execute(
                "INSERT INTO monitor_changes (playbook, monitor, seq, state, since, recorded_at, detail, recorded_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (playbook, monitor, latest["seq"] + 1 if latest else 1, state, iso(since), iso(self.clock()),
                 secrets.redact(detail), str(self.owner))).fetchone()
        return monitor_change_of(row)

    def monitor_states(self) -> list[MonitorChange]:
        if not self._monitors_recorded():
            return []
        rows = self.db.execute("SELECT m.* FROM monitor_changes m WHERE seq = (SELECT max(seq) FROM monitor_changes"
                               " WHERE playbook = m.playbook AND monitor = m.monitor) ORDER BY playbook, monitor")
        return [monitor_change_of(r) for r in rows]

    def monitor_changes(self, playbook: str, since: datetime | None = None) -> list[MonitorChange]:
        if not self._monitors_recorded():
            return []
        start = None if since is None else iso(since)
        rows = self.db.execute("SELECT * FROM monitor_changes WHERE playbook=? AND (? IS NULL OR since >= ?)"
                               " ORDER BY since, monitor, seq", (playbook, start, start))
        return [monitor_change_of(r) for r in rows]

    def _monitors_recorded(self) -> bool:
        """Whether the file has the monitors' table: a reader opens a ledger of an older schema as it is."""
        found = self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='monitor_changes'")
        return found.fetchone() is not None
