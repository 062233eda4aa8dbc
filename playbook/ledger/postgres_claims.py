"""The PostgreSQL store's claims: a post, or a batch of its deliveries, held by one owner under a lease.

A post's row, locked, serialises its claim; deliveries are claimed by locking their rows in key order, so that
two machines claiming overlapping batches never deadlock. Leases are compared with this process's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from playbook.ledger.contract import Claim, Holder, Owner, post_held
from playbook.ledger.postgres_link import Link
from playbook.ledger.statuses import UNFINISHED, DeliveryStatus

if TYPE_CHECKING:
    from playbook.ledger.postgres_schema import Connection

CLEAR_CLAIM = "claim_owner=NULL, claim_host=NULL, claim_pid=NULL, claim_until=NULL"


class PostgresClaims:
    """The claims of PostgresLedger, on its connection, owner, clock and lease."""

    link: Link
    owner: Owner
    clock: Callable[[], datetime]
    lease: timedelta

    def claim_post(self, incident_id: str, seq: int) -> None:
        def work(db: Connection) -> None:
            # The post's row, locked: of two machines claiming it at once, the second sees the first's claim.
            db.execute("SELECT 1 FROM posts WHERE incident=%s AND seq=%s FOR UPDATE", (incident_id, seq))
            holder = next((h for h in self._holders(db, incident_id) if h.seq == seq), None)
            if holder is not None:
                raise post_held(incident_id, holder)
            db.execute("UPDATE posts SET claim_owner=%s, claim_host=%s, claim_pid=%s, claim_until=%s"
                       " WHERE incident=%s AND seq=%s", (*self._claim_values(), incident_id, seq))

        self.link.write(work)

    def claim(self, keys: Sequence[str]) -> Claim:
        now = self.clock()

        def work(db: Connection) -> Claim:
            taken: list[str] = []
            held: dict[str, Owner] = {}
            finished: dict[str, DeliveryStatus] = {}
            # Locked in key order across the chunks too: two machines claiming overlapping lists never wait on
            # each other in a circle. A row another machine is claiming right now is read once it commits.
            ordered = sorted(keys)
            for start in range(0, len(ordered), 5000):
                chunk = ordered[start : start + 5000]
                mine: list[str] = []
                rows = db.execute("SELECT key, status, claim_owner, claim_host, claim_pid, claim_until FROM"
                                  " deliveries WHERE key = ANY(%s) ORDER BY key FOR UPDATE", (chunk,))
                for row in rows.fetchall():
                    owner = row["claim_owner"]
                    if row["status"] not in UNFINISHED:
                        finished[row["key"]] = DeliveryStatus(row["status"])
                    elif owner is not None and owner != self.owner.token and row["claim_until"] > now:
                        held[row["key"]] = Owner(row["claim_host"], row["claim_pid"], owner)
                    else:
                        mine.append(row["key"])
                db.execute("UPDATE deliveries SET claim_owner=%s, claim_host=%s, claim_pid=%s, claim_until=%s"
                           " WHERE key = ANY(%s)", (*self._claim_values(), mine))
                taken += mine
            # The post's claim runs at least as long as its newest deliveries' (see SqliteLedger.claim).
            until = self._claim_values()[3]
            db.execute("UPDATE posts SET claim_until=%s WHERE claim_owner=%s AND claim_until<%s",
                       (until, self.owner.token, until))
            return Claim(frozenset(taken), held, finished)

        return self.link.write(work)

    def renew(self) -> int:
        until = self.clock() + self.lease

        def work(db: Connection) -> int:
            posts = db.execute("UPDATE posts SET claim_until=%s WHERE claim_owner=%s", (until, self.owner.token))
            renewed = posts.rowcount
            deliveries = db.execute("UPDATE deliveries SET claim_until=%s WHERE claim_owner=%s",
                                    (until, self.owner.token))
            return renewed + deliveries.rowcount

        return self.link.write(work)

    def release(self, keys: Sequence[str] | None = None) -> None:
        def work(db: Connection) -> None:
            if keys is None:
                db.execute(f"UPDATE posts SET {CLEAR_CLAIM} WHERE claim_owner=%s", (self.owner.token,))
                db.execute(f"UPDATE deliveries SET {CLEAR_CLAIM} WHERE claim_owner=%s", (self.owner.token,))
            else:
                db.execute(f"UPDATE deliveries SET {CLEAR_CLAIM} WHERE key = ANY(%s) AND claim_owner=%s",
                           (sorted(keys), self.owner.token))

        self.link.write(work)

    def holders(self, incident_id: str) -> list[Holder]:
        return self.link.read(lambda db: self._holders(db, incident_id))

    def _holders(self, db: Connection, incident_id: str) -> list[Holder]:
        rows = db.execute(
            "SELECT p.seq, p.claim_owner, p.claim_host, p.claim_pid, p.claim_until, (SELECT count(*) FROM"
            " deliveries d WHERE d.incident=p.incident AND d.seq=p.seq AND d.status = ANY(%s)) AS unconfirmed"
            " FROM posts p WHERE p.incident=%s AND p.claim_owner IS NOT NULL AND p.claim_owner <> %s"
            " AND p.claim_until > %s ORDER BY p.seq",
            (list(UNFINISHED), incident_id, self.owner.token, self.clock()),
        )
        return [Holder(Owner(r["claim_host"], r["claim_pid"], r["claim_owner"]), r["seq"], int(r["unconfirmed"]),
                       r["claim_until"]) for r in rows.fetchall()]

    def _claim_values(self) -> tuple[str, str, int, datetime]:
        return (self.owner.token, self.owner.host, self.owner.pid, self.clock() + self.lease)

