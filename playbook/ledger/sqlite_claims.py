"""The SQLite store's claims (contract.Ledger says what they guarantee): a post, or a batch of its deliveries,
taken by one owner under a lease, in one BEGIN IMMEDIATE transaction, so two processes claiming at the same
instant are serialised and the second reads what the first took."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from playbook.ledger.contract import Claim, Holder, Owner, post_held
from playbook.ledger.sqlite_file import iso, transaction
from playbook.ledger.statuses import UNFINISHED, DeliveryStatus


class SqliteClaims:
    """The claims part of SqliteLedger, on its file, owner, clock and lease."""

    db: sqlite3.Connection
    path: Path
    owner: Owner
    clock: Callable[[], datetime]
    lease: timedelta

    def claim_post(self, incident_id: str, seq: int) -> None:
        with transaction(self.db, self.path) as db:
            holder = next((h for h in self._holders(db, incident_id) if h.seq == seq), None)
            if holder is not None:
                raise post_held(incident_id, holder)
            db.execute("UPDATE posts SET claim_owner=?, claim_host=?, claim_pid=?, claim_until=?"
                       " WHERE incident=? AND seq=?", (*self._claim_values(), incident_id, seq))

    def claim(self, keys: Sequence[str]) -> Claim:
        taken: list[str] = []
        held: dict[str, Owner] = {}
        finished: dict[str, DeliveryStatus] = {}
        now = iso(self.clock())
        # One lease end for the whole claim: every key taken, and the post's claim, run to the same moment.
        values = self._claim_values()
        with transaction(self.db, self.path) as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                mine: list[str] = []
                rows = db.execute(
                    "SELECT key, status, claim_owner, claim_host, claim_pid, claim_until FROM deliveries"
                    f" WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                for key, status, owner, host, pid, until in rows:
                    if status not in UNFINISHED:
                        finished[key] = DeliveryStatus(status)
                    elif owner is not None and owner != self.owner.token and until > now:
                        held[key] = Owner(host, pid, owner)
                    else:
                        mine.append(key)
                db.executemany("UPDATE deliveries SET claim_owner=?, claim_host=?, claim_pid=?, claim_until=?"
                               " WHERE key=?", [(*values, key) for key in mine])
                taken += mine
            # The post's claim runs at least as long as its newest deliveries': `holders`, and a resume's
            # claim_post, read the post's, and must not call a run gone while a batch it took is still its own.
            db.execute("UPDATE posts SET claim_until=? WHERE claim_owner=? AND claim_until<?",
                       (values[3], self.owner.token, values[3]))
        return Claim(frozenset(taken), held, finished)

    def renew(self) -> int:
        until = iso(self.clock() + self.lease)
        with transaction(self.db, self.path) as db:
            renewed = 0
            for table in ("posts", "deliveries"):
                renewed += db.execute(f"UPDATE {table} SET claim_until=? WHERE claim_owner=?",
                                      (until, self.owner.token)).rowcount
        return renewed

    def release(self, keys: Sequence[str] | None = None) -> None:
        clear = "claim_owner=NULL, claim_host=NULL, claim_pid=NULL, claim_until=NULL"
        with transaction(self.db, self.path) as db:
            if keys is None:
                for table in ("posts", "deliveries"):
                    db.execute(f"UPDATE {table} SET {clear} WHERE claim_owner=?", (self.owner.token,))
            else:
                db.executemany(f"UPDATE deliveries SET {clear} WHERE key=? AND claim_owner=?",
                               [(key, self.owner.token) for key in keys])

    def holders(self, incident_id: str) -> list[Holder]:
        return self._holders(self.db, incident_id)

    def _holders(self, db: sqlite3.Connection, incident_id: str) -> list[Holder]:
        rows = db.execute(
            "SELECT p.seq, p.claim_owner, p.claim_host, p.claim_pid, p.claim_until, (SELECT count(*) FROM"
            f" deliveries d WHERE d.incident=p.incident AND d.seq=p.seq AND d.status IN ({','.join('?' * 3)}))"
            " FROM posts p WHERE p.incident=? AND p.claim_owner IS NOT NULL AND p.claim_owner != ?"
            " AND p.claim_until > ? ORDER BY p.seq",
            (*UNFINISHED, incident_id, self.owner.token, iso(self.clock())),
        )
        return [Holder(Owner(host, pid, token), seq, count, datetime.fromisoformat(until))
                for seq, token, host, pid, until, count in rows]

    def _claim_values(self) -> tuple[str, str, int, str]:
        return (self.owner.token, self.owner.host, self.owner.pid, iso(self.clock() + self.lease))
