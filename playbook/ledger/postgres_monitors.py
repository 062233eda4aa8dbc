"""The PostgreSQL store's record of each monitor's changes of state (duties.py's MonitorChange).

A change is numbered one after the monitor's latest and inserted only when that latest is another state, in one
INSERT ... ON CONFLICT DO NOTHING: of machines recording the same change at the same instant, one inserts it,
and the others, having waited on its row, insert nothing, then read that the state is already recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from playbook import secrets
from playbook.ledger.contract import Owner
from playbook.ledger.duties import MonitorChange
from playbook.ledger.postgres_link import Link
from playbook.ledger.postgres_rows import monitor_change_of

if TYPE_CHECKING:
    from playbook.ledger.postgres_schema import Connection

LATEST = "SELECT seq, state FROM monitor_changes WHERE playbook=%s AND monitor=%s ORDER BY seq DESC LIMIT 1"


class PostgresMonitors:
    """The monitors' part of PostgresLedger, on its connection, owner and clock."""

    link: Link
    owner: Owner
    clock: Callable[[], datetime]

    def record_monitor_change(self, playbook: str, monitor: str, state: str, since: datetime,
                              detail: str) -> MonitorChange | None:
        masked = secrets.redact(detail)

        def work(db: Connection) -> MonitorChange | None:
            # Run again after a lost COMMIT that did record it, this finds the state recorded and answers None.
            while True:
                row = db.execute(
                    f"WITH latest AS ({LATEST}) INSERT INTO monitor_changes (playbook, monitor, seq, state, since,"
                    " recorded_at, detail, recorded_by) SELECT %s, %s, coalesce((SELECT seq FROM latest), 0) + 1,"
                    " %s, %s, %s, %s, %s WHERE NOT EXISTS (SELECT 1 FROM latest WHERE state = %s)"
                    " ON CONFLICT (playbook, monitor, seq) DO NOTHING RETURNING *",
                    (playbook, monitor, playbook, monitor, state, since, self.clock(), masked, str(self.owner), state),
                ).fetchone()
                if row is not None:
                    return monitor_change_of(row)
                # Nothing inserted: the state was recorded already, or another machine took this seq meanwhile
                # (each statement reads what is committed when it starts: the next one sees its row).
                latest = db.execute(LATEST, (playbook, monitor)).fetchone()
                if latest is not None and latest["state"] == state:
                    return None

        return self.link.write(work)

    def monitor_states(self) -> list[MonitorChange]:
        def work(db: Connection) -> list[MonitorChange]:
            if not _monitors_recorded(db):
                return []
            rows = db.execute("SELECT DISTINCT ON (playbook, monitor) * FROM monitor_changes"
                              " ORDER BY playbook, monitor, seq DESC")
            return [monitor_change_of(r) for r in rows.fetchall()]

        return self.link.read(work)

    def monitor_changes(self, playbook: str, since: datetime | None = None) -> list[MonitorChange]:
        def work(db: Connection) -> list[MonitorChange]:
            if not _monitors_recorded(db):
                return []
            rows = db.execute("SELECT * FROM monitor_changes WHERE playbook=%s AND (%s::timestamptz IS NULL OR"
                              " since >= %s) ORDER BY since, monitor, seq", (playbook, since, since))
            return [monitor_change_of(r) for r in rows.fetchall()]

        return self.link.read(work)


def _monitors_recorded(db: Connection) -> bool:
    """Whether the database has the monitors' table: a reader opens one of an older schema as it is."""
    row = db.execute("SELECT to_regclass('monitor_changes') IS NOT NULL AS found").fetchone()
    return bool(row and row["found"])
