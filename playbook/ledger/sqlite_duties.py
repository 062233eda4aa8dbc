"""The SQLite store's records of the workers (duties.py): heartbeats, posts handed to them, duties done once.

Each write is one BEGIN IMMEDIATE transaction, as every other write of the file: processes taking a duty at
the same instant are serialised there, so the second reads what the first recorded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from playbook import secrets
from playbook.ledger.contract import Owner, Post
from playbook.ledger.duties import DUTY_TRIES, Duty, DutyKind, Worker, retry_after
from playbook.ledger.sqlite_file import iso, transaction
from playbook.ledger.sqlite_rows import duty_of, post_of, worker_of
from playbook.ledger.statuses import UNFINISHED


class SqliteDuties:
    """The workers' part of SqliteLedger, on its file, owner and clock."""

    db: sqlite3.Connection
    path: Path
    owner: Owner
    clock: Callable[[], datetime]

    def beat(self, home: str, started_at: datetime, doing: str) -> None:
        with transaction(self.db, self.path) as db:
            db.execute(
                "INSERT INTO workers (token, host, pid, home, started_at, seen_at, doing) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (token) DO UPDATE SET home=excluded.home, started_at=excluded.started_at,"
                " seen_at=excluded.seen_at, doing=excluded.doing, stopped_at=NULL",
                (self.owner.token, self.owner.host, self.owner.pid, home, iso(started_at), iso(self.clock()),
                 secrets.redact(doing)),
            )

    def workers(self, alive_within: timedelta) -> list[Worker]:
        if not self._workers_recorded():
            return []
        rows = self.db.execute("SELECT * FROM workers WHERE stopped_at IS NULL AND seen_at >= ?"
                               " ORDER BY started_at, token", (iso(self.clock() - alive_within),))
        return [worker_of(r) for r in rows]

    def worker_stopped(self) -> None:
        # Marked, not deleted: a role that may not delete (the ledger keeps its history) runs workers too.
        with transaction(self.db, self.path) as db:
            db.execute("UPDATE workers SET stopped_at=? WHERE token=?", (iso(self.clock()), self.owner.token))

    def hand_off(self, incident_id: str, seq: int, until: datetime) -> None:
        with transaction(self.db, self.path) as db:
            db.execute("UPDATE posts SET handed_until=? WHERE incident=? AND seq=? AND (handed_until IS NULL OR"
                       " handed_until < ?)", (iso(until), incident_id, seq, iso(until)))

    def handed_off(self) -> list[Post]:
        if not self._workers_recorded():
            return []
        rows = self.db.execute(
            "SELECT p.* FROM posts p JOIN incidents i ON i.id = p.incident WHERE i.open = 1 AND p.handed_until > ?"
            f" AND EXISTS (SELECT 1 FROM deliveries d WHERE d.incident = p.incident AND d.seq = p.seq AND d.status"
            f" IN ({','.join('?' * len(UNFINISHED))})) ORDER BY p.issued_at, p.incident, p.seq",
            (iso(self.clock()), *UNFINISHED))
        return [post_of(r) for r in rows]

    def take_duty(self, key: str, kind: DutyKind, *, incident: str | None, playbook: str | None,
                  hold: timedelta, tries: int = DUTY_TRIES) -> bool:
        now = self.clock()
        taken = (iso(now), str(self.owner), self.owner.token, iso(now + hold))
        with transaction(self.db, self.path) as db:
            row = db.execute("SELECT done_at, ok, attempts, hold_owner, hold_until FROM duties WHERE key=?",
                             (key,)).fetchone()
            if row is None:
                db.execute("INSERT INTO duties (key, kind, incident, playbook, taken_at, taken_by, hold_owner,"
                           " hold_until, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                           (key, kind, incident, playbook, *taken))
                return True
            if not _takeable(row, now, tries):
                return False
            db.execute("UPDATE duties SET taken_at=?, taken_by=?, hold_owner=?, hold_until=?, attempts=attempts+1,"
                       " done_at=NULL, ok=NULL WHERE key=?", (*taken, key))
        return True

    def finish_duty(self, key: str, *, ok: bool, outcome: str) -> None:
        with transaction(self.db, self.path) as db:
            db.execute("UPDATE duties SET done_at=?, ok=?, outcome=?, hold_owner=NULL, hold_until=NULL WHERE key=?"
                       " AND hold_owner=?", (iso(self.clock()), int(ok), secrets.redact(outcome), key,
                                             self.owner.token))

    def duties(self, incident_id: str | None = None) -> list[Duty]:
        if not self._workers_recorded():
            return []
        rows = self.db.execute("SELECT * FROM duties WHERE ? IS NULL OR incident=? ORDER BY id",
                               (incident_id, incident_id))
        return [duty_of(r) for r in rows]

    def _workers_recorded(self) -> bool:
        """Whether the file has the workers' tables: a reader opens a ledger of an older schema as it is."""
        found = self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='duties'").fetchone()
        return found is not None


def _takeable(row: sqlite3.Row, now: datetime, tries: int) -> bool:
    """Whether a duty recorded as `row` may be taken again at `now` (contract.Ledger.take_duty)."""
    done_at, ok, attempts, owner, until = row
    if done_at is not None:
        return not ok and attempts < tries and datetime.fromisoformat(done_at) + retry_after(attempts) <= now
    # Unfinished: held (by this owner too: a take is one attempt), or left by a taker whose hold lapsed.
    return owner is None or until <= iso(now)
