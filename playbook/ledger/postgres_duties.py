"""The PostgreSQL store's records of the workers (duties.py): heartbeats, posts handed to them, duties done once.

A duty is taken in one INSERT ... ON CONFLICT DO UPDATE ... WHERE statement: of machines taking it at the same
instant, one inserts the row (or updates it), and the others, waiting on that row, then test the WHERE against
what it committed and change nothing. Holds are compared with this process's clock, as claims are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from playbook import secrets
from playbook.ledger.contract import Owner, Post
from playbook.ledger.duties import DUTY_TRIES, RETRY_FIRST, RETRY_MOST, Duty, DutyKind, Worker
from playbook.ledger.postgres_link import Link
from playbook.ledger.postgres_rows import duty_of, post_of, worker_of
from playbook.ledger.statuses import UNFINISHED

if TYPE_CHECKING:
    from playbook.ledger.postgres_schema import Connection


class PostgresDuties:
    """The workers' part of PostgresLedger, on its connection, owner and clock."""

    link: Link
    owner: Owner
    clock: Callable[[], datetime]

    def beat(self, home: str, started_at: datetime, doing: str) -> None:
        self.link.write(lambda db: db.execute(
            "INSERT INTO workers (token, host, pid, home, started_at, seen_at, doing) VALUES (%s, %s, %s, %s, %s, %s,"
            " %s) ON CONFLICT (token) DO UPDATE SET home=excluded.home, started_at=excluded.started_at,"
            " seen_at=excluded.seen_at, doing=excluded.doing, stopped_at=NULL",
            (self.owner.token, self.owner.host, self.owner.pid, home, started_at, self.clock(), secrets.redact(doing))))

    def workers(self, alive_within: timedelta) -> list[Worker]:
        def work(db: Connection) -> list[Worker]:
            if not _workers_recorded(db):
                return []
            rows = db.execute("SELECT * FROM workers WHERE stopped_at IS NULL AND seen_at >= %s"
                              " ORDER BY started_at, token", (self.clock() - alive_within,))
            return [worker_of(r) for r in rows.fetchall()]

        return self.link.read(work)

    def worker_stopped(self) -> None:
        # Marked, not deleted: a role that may not delete (the ledger keeps its history) runs workers too.
        self.link.write(lambda db: db.execute("UPDATE workers SET stopped_at=%s WHERE token=%s",
                                              (self.clock(), self.owner.token)))

    def hand_off(self, incident_id: str, seq: int, until: datetime) -> None:
        self.link.write(lambda db: db.execute(
            "UPDATE posts SET handed_until=greatest(handed_until, %s) WHERE incident=%s AND seq=%s",
            (until, incident_id, seq)))

    def handed_off(self) -> list[Post]:
        def work(db: Connection) -> list[Post]:
            if not _workers_recorded(db):
                return []
            rows = db.execute(
                "SELECT p.* FROM posts p JOIN incidents i ON i.id = p.incident WHERE i.open AND p.handed_until > %s"
                " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.incident = p.incident AND d.seq = p.seq AND"
                " d.status = ANY(%s)) ORDER BY p.issued_at, p.incident, p.seq", (self.clock(), list(UNFINISHED)))
            return [post_of(r) for r in rows.fetchall()]

        return self.link.read(work)

    def take_duty(self, key: str, kind: DutyKind, *, incident: str | None, playbook: str | None,
                  hold: timedelta, tries: int = DUTY_TRIES) -> bool:
        now = self.clock()

        def work(db: Connection) -> bool:
            # Run again after a lost COMMIT that did take it, this finds it held (by this owner) and answers
            # False: the duty waits for its hold to lapse, and is never done twice.
            row = db.execute(
                "INSERT INTO duties AS d (key, kind, incident, playbook, taken_at, taken_by, hold_owner, hold_until,"
                " attempts) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1) ON CONFLICT (key) DO UPDATE SET"
                " taken_at=excluded.taken_at, taken_by=excluded.taken_by, hold_owner=excluded.hold_owner,"
                " hold_until=excluded.hold_until, attempts=d.attempts + 1, done_at=NULL, ok=NULL"
                # Done: taken again only after a failure, while tries are left, once duties.retry_after has
                # passed. Unfinished: only once its hold lapsed (held by this owner too: a take is one attempt).
                " WHERE CASE WHEN d.done_at IS NOT NULL THEN NOT d.ok AND d.attempts < %s AND d.done_at +"
                " make_interval(secs => least(%s * power(2, greatest(d.attempts - 1, 0)), %s)) <= %s"
                " ELSE d.hold_owner IS NULL OR d.hold_until <= %s END RETURNING d.attempts",
                (key, str(kind), incident, playbook, now, str(self.owner), self.owner.token, now + hold, tries,
                 RETRY_FIRST.total_seconds(), RETRY_MOST.total_seconds(), now, now),
            ).fetchone()
            return row is not None

        return self.link.write(work)

    def finish_duty(self, key: str, *, ok: bool, outcome: str) -> None:
        self.link.write(lambda db: db.execute(
            "UPDATE duties SET done_at=%s, ok=%s, outcome=%s, hold_owner=NULL, hold_until=NULL WHERE key=%s AND"
            " hold_owner=%s", (self.clock(), ok, secrets.redact(outcome), key, self.owner.token)))

    def duties(self, incident_id: str | None = None) -> list[Duty]:
        def work(db: Connection) -> list[Duty]:
            if not _workers_recorded(db):
                return []
            rows = db.execute("SELECT * FROM duties WHERE %s::text IS NULL OR incident=%s ORDER BY id",
                              (incident_id, incident_id))
            return [duty_of(r) for r in rows.fetchall()]

        return self.link.read(work)


def _workers_recorded(db: Connection) -> bool:
    """Whether the database has the workers' tables: a reader opens one of an older schema as it is."""
    row = db.execute("SELECT to_regclass('duties') IS NOT NULL AS found").fetchone()
    return bool(row and row["found"])
