"""The PostgreSQL store: one database that a team's machines share (contract.Ledger says what it guarantees).

Every write is one transaction at READ COMMITTED, and each guarantee rests on a lock taken inside it, never on
a check made before it: an advisory lock per playbook serialises opening incidents (a partial unique index
has the last word), the incident's row serialises its posts, a post's row its claim, and deliveries are
claimed by locking their rows in key order, so that two machines claiming overlapping batches never deadlock.
Leases are compared with this process's clock, passed as a parameter: the server's clock is never asked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from psycopg.rows import DictRow

from playbook import secrets
from playbook.errors import IncidentError
from playbook.ledger.contract import (
    Confirmation,
    DeliveryRow,
    Incident,
    NewPost,
    Owner,
    Post,
    blocking,
    delivery_key,
    lease_from_env,
    post_prefix,
    publishing,
    utcnow,
)
from playbook.ledger.postgres_claims import CLEAR_CLAIM, PostgresClaims
from playbook.ledger.postgres_duties import PostgresDuties
from playbook.ledger.postgres_link import PATIENCE, Link
from playbook.ledger.postgres_monitors import PostgresMonitors
from playbook.ledger.postgres_rows import delivery_of, incident_of, post_of

# Times in messages, and masked texts, as the SQLite store writes them: both stores read alike.
from playbook.ledger.sqlite_file import iso
from playbook.ledger.statuses import UNFINISHED, DeliveryStatus, superseded_by
from playbook.ledger.stored import texts_json

if TYPE_CHECKING:
    from playbook.ledger.postgres_schema import Connection

ClaimValues = tuple[str, str, int, datetime] | tuple[None, None, None, None]


# A row's key after its post's prefix (contract.post_prefix): its channel, language and recipient. A later post
# `p` has delivery `n` for the same ones when `n`'s key is that with `p`'s prefix, found through the primary key.
_TAIL = "substr(d.key, length(d.incident) + length(d.seq::text) + length(d.phase) + 4)"
_SAME = f"n.key = p.incident || '/' || p.seq || '-' || p.phase || '/' || {_TAIL}"
_LATER = f"SELECT 1 FROM posts p JOIN deliveries n ON {_SAME} WHERE p.incident = d.incident AND p.seq > d.seq"


class PostgresLedger(PostgresClaims, PostgresDuties, PostgresMonitors):
    """One PostgreSQL database, opened by one owner over one connection.

    `clock` dates claims and their leases (tests inject one to expire a lease); `owner` is who this ledger
    claims for (this process, unless a test plays two); `lease` how long a claim lives unless renewed;
    `patience` how long a write waits for a server that went away (postgres_link.py).
    """

    def __init__(self, url: str, *, create: bool = True, readonly: bool = False,
                 clock: Callable[[], datetime] | None = None, owner: Owner | None = None,
                 lease: timedelta | None = None, patience: timedelta = PATIENCE) -> None:
        self.link = Link(url, create=create, readonly=readonly, patience=patience)
        self.where = self.link.where
        self.clock = clock or utcnow
        self.owner = owner or Owner.this_process()
        self.lease = lease or lease_from_env()

    def close(self) -> None:
        self.link.close()

    def bear_with_outages_until(self, moment: datetime) -> None:
        # Waiting longer than the lease lets this run's claims lapse meanwhile: harmless, as the store refuses an
        # attempt to an owner who lost its claim, and nobody can take a claim while the server is down.
        self.link.patience = max(PATIENCE, moment - self.clock())

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[DictRow]:
        return self.link.read(lambda db: db.execute(sql, args).fetchall())

    # -- incidents -----------------------------------------------------------------------------------
    def open_incidents(self, playbook: str | None = None, *, drill: bool | None = None) -> list[Incident]:
        rows = self._read("SELECT * FROM incidents WHERE open AND (%s::text IS NULL OR playbook=%s) AND"
                          " (%s::boolean IS NULL OR drill=%s) ORDER BY opened_at", (playbook, playbook, drill, drill))
        return [incident_of(r) for r in rows]

    def all_incidents(self) -> list[Incident]:
        return [incident_of(r) for r in self._read("SELECT * FROM incidents ORDER BY opened_at")]

    def incident(self, incident_id: str) -> Incident:
        rows = self._read("SELECT * FROM incidents WHERE id=%s", (incident_id,))
        if not rows:
            known = [r["id"] for r in self._read("SELECT id FROM incidents ORDER BY opened_at DESC LIMIT 5")]
            hint = f"; recent: {', '.join(known)}" if known else "; no incident recorded yet"
            raise IncidentError(f"no incident '{incident_id}' in the ledger {self.where}{hint}")
        return incident_of(rows[0])

    def create_incident(self, playbook: str, detected_at: datetime, first: NewPost, *, drill: bool,
                        allow_concurrent: bool, zone: tzinfo = UTC) -> tuple[Incident, Post]:
        def work(db: Connection) -> tuple[str, int]:
            # Machines opening an incident of this playbook at once take turns here, as SQLite's BEGIN
            # IMMEDIATE makes processes do: the check below then sees what the one before committed.
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"incident:{playbook}",))
            if not allow_concurrent:
                existing = db.execute("SELECT id, opened_at FROM incidents WHERE playbook=%s AND open AND drill=%s"
                                      " ORDER BY opened_at LIMIT 1", (playbook, drill)).fetchone()
                if existing is not None:
                    kind = "drill" if drill else "incident"
                    raise IncidentError(
                        f"playbook '{playbook}' already has an open {kind}: {existing['id']} (opened "
                        f"{iso(existing['opened_at'])}); follow it with 'playbook update {existing['id']} --phase"
                        " ...', or pass --new to open a second one"
                    )
            base = f"{playbook}-{'drill-' if drill else ''}{detected_at.astimezone(zone):%Y%m%d-%H%M}"
            taken = {r["id"] for r in db.execute("SELECT id FROM incidents WHERE id=%s OR starts_with(id, %s)",
                                                 (base, base + "-"))}
            incident_id, n = base, 1
            while incident_id in taken:
                n += 1
                incident_id = f"{base}-{n}"
            db.execute(
                "INSERT INTO incidents (id, playbook, drill, alongside, detected_at, opened_at, phase, vars, operator)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::json, %s)",
                (incident_id, playbook, drill, allow_concurrent, detected_at, utcnow(), first.phase,
                 json.dumps(first.variables), first.operator),
            )
            return incident_id, self._insert_post(db, incident_id, first)

        incident_id, seq = self.link.write(work, again=False)
        return self.incident(incident_id), self.post(incident_id, seq)

    def close_incident(self, incident_id: str) -> None:
        self.link.write(lambda db: db.execute("UPDATE incidents SET open=false, closed_at=%s WHERE id=%s",
                                          (utcnow(), incident_id)))

    # -- posts ---------------------------------------------------------------------------------------
    def add_post(self, incident_id: str, new: NewPost, *, again: bool = False) -> Post:
        def work(db: Connection) -> int:
            # The incident's row, locked: machines adding a post to it at once take turns.
            row = db.execute("SELECT open, phase FROM incidents WHERE id=%s FOR UPDATE", (incident_id,)).fetchone()
            if row is None:
                raise IncidentError(f"no incident '{incident_id}' in the ledger {self.where}")
            now = self.clock()
            handed = [r["seq"] for r in db.execute("SELECT seq FROM posts WHERE incident=%s AND handed_until > %s",
                                                   (incident_id, now)).fetchall()]
            holder = blocking(self._holders(db, incident_id), handed)
            if holder is not None:
                raise publishing(incident_id, holder)
            if not row["open"]:
                raise IncidentError(f"incident {incident_id} is closed")
            if row["phase"] == new.phase and not again:
                raise IncidentError(
                    f"incident {incident_id} is already in phase '{new.phase}'; pass --again to publish a new "
                    "update of the same phase"
                )
            seq = self._insert_post(db, incident_id, new)
            # The same channel, language and recipient in the new post: the key with the new post's prefix.
            db.execute(
                f"UPDATE deliveries d SET status=%s, error=%s, finished_at=%s, {CLEAR_CLAIM} WHERE d.incident=%s"
                " AND d.seq<%s AND d.status = ANY(%s) AND NOT (d.status=%s AND d.claim_owner IS NOT NULL AND"
                f" d.claim_until > %s) AND EXISTS (SELECT 1 FROM deliveries n WHERE n.key = %s || {_TAIL})",
                (DeliveryStatus.SUPERSEDED, superseded_by(seq, new.phase), now, incident_id, seq, list(UNFINISHED),
                 DeliveryStatus.SENDING, now, post_prefix(incident_id, seq, new.phase)))
            return seq

        return self.post(incident_id, self.link.write(work, again=False))

    def _insert_post(self, db: Connection, incident_id: str, new: NewPost) -> int:
        """Insert the post and its intents, claimed by this owner: no other machine may start on them."""
        found = db.execute("SELECT coalesce(max(seq), 0) + 1 AS seq FROM posts WHERE incident=%s",
                           (incident_id,)).fetchone()
        seq = int(found["seq"]) if found else 1
        claim = self._claim_values()
        db.execute(
            "INSERT INTO posts (incident, seq, phase, issued_at, deadline, next_update_at, vars, operator, texts,"
            " holding, claim_owner, claim_host, claim_pid, claim_until) VALUES (%s, %s, %s, %s, %s, %s, %s::json,"
            " %s, %s::json, %s, %s, %s, %s, %s)",
            (incident_id, seq, new.phase, new.issued_at, new.deadline, new.next_update_at,
             json.dumps(new.variables), new.operator, texts_json(new.texts), new.holding, *claim),
        )
        db.execute("UPDATE incidents SET phase=%s, vars=%s::json WHERE id=%s",
                   (new.phase, json.dumps(new.variables), incident_id))
        _insert_intents(db, incident_id, seq, new.phase, new.intents, claim)
        return seq

    def record_texts(self, incident_id: str, seq: int, texts: dict[str, Any]) -> None:
        self.link.write(lambda db: db.execute("UPDATE posts SET texts=%s::json WHERE incident=%s AND seq=%s",
                                          (texts_json(texts), incident_id, seq)))

    def post(self, incident_id: str, seq: int) -> Post:
        rows = self._read("SELECT * FROM posts WHERE incident=%s AND seq=%s", (incident_id, seq))
        if not rows:
            raise IncidentError(f"incident {incident_id} has no post {seq} in the ledger {self.where}")
        return post_of(rows[0])

    def posts(self, incident_id: str) -> list[Post]:
        return [post_of(r) for r in self._read("SELECT * FROM posts WHERE incident=%s ORDER BY seq", (incident_id,))]

    # -- deliveries ----------------------------------------------------------------------------------
    def record_intents(self, post: Post, items: Iterable[tuple[str, str, str | None]]) -> None:
        self.link.write(lambda db: _insert_intents(db, post.incident, post.seq, post.phase, items))

    def mark_sending(self, key: str, *, confirmed: Confirmation | None = None) -> int | None:
        def work(db: Connection) -> int | None:
            if confirmed is not None:
                _record_sent(db, confirmed)
            row = db.execute(
                "UPDATE deliveries d SET status=%s, attempts=attempts+1, started_at=coalesce(started_at, %s),"
                f" error=NULL WHERE d.key=%s AND d.claim_owner=%s AND d.status = ANY(%s) AND NOT EXISTS ({_LATER})"
                " RETURNING attempts",
                (DeliveryStatus.SENDING, utcnow(), key, self.owner.token, list(UNFINISHED)),
            ).fetchone()
            if row:
                return int(row["attempts"])
            # Refused: the claim is gone, or a later post covers this delivery, which is then superseded.
            later = db.execute(f"SELECT p.seq, p.phase FROM deliveries d JOIN posts p ON p.incident = d.incident AND"
                               f" p.seq > d.seq JOIN deliveries n ON {_SAME} WHERE d.key=%s ORDER BY p.seq LIMIT 1",
                               (key,)).fetchone()
            if later is not None:
                db.execute(f"UPDATE deliveries SET status=%s, error=%s, finished_at=%s, {CLEAR_CLAIM} WHERE key=%s"
                           " AND claim_owner=%s AND status = ANY(%s)",
                           (DeliveryStatus.SUPERSEDED, superseded_by(later["seq"], later["phase"]), utcnow(), key,
                            self.owner.token, list(UNFINISHED)))
            return None

        return self.link.write(work)

    def mark_sent(self, confirmed: Confirmation) -> None:
        self.link.write(lambda db: _record_sent(db, confirmed))

    def mark_failed(self, key: str, error: str, *, rejected: bool = False) -> None:
        self.mark_all_failed([key], error, rejected=rejected)

    def mark_all_failed(self, keys: Sequence[str], error: str, *, rejected: bool = False) -> None:
        status = DeliveryStatus.REJECTED if rejected else DeliveryStatus.FAILED
        self.link.write(lambda db: db.execute(
            f"UPDATE deliveries SET status=%s, error=%s, finished_at=%s, {CLEAR_CLAIM} WHERE key = ANY(%s)"
            " AND claim_owner=%s", (status, secrets.redact(error), utcnow(), sorted(keys), self.owner.token)))

    def note_error(self, key: str, error: str) -> None:
        self.link.write(lambda db: db.execute("UPDATE deliveries SET error=%s WHERE key=%s AND claim_owner=%s",
                                          (secrets.redact(error), key, self.owner.token)))

    # -- reading -------------------------------------------------------------------------------------
    def deliveries(self, incident_id: str, seq: int | None = None, *, recipients: bool = True) -> list[DeliveryRow]:
        rows = self._read("SELECT * FROM deliveries WHERE incident=%s AND (%s::integer IS NULL OR seq=%s)"
                          " AND (%s OR recipient IS NULL) ORDER BY seq, channel, lang, recipient",
                          (incident_id, seq, seq, recipients))
        return [delivery_of(r) for r in rows]

    def delivery_counts(self, incident_id: str,
                        seq: int | None = None) -> list[tuple[int, str, str, DeliveryStatus, int]]:
        rows = self._read("SELECT seq, channel, lang, status, count(*) AS n FROM deliveries WHERE incident=%s AND"
                          " recipient IS NOT NULL AND (%s::integer IS NULL OR seq=%s) GROUP BY seq, channel, lang,"
                          " status ORDER BY seq, channel, lang", (incident_id, seq, seq))
        return [(r["seq"], r["channel"], r["lang"], DeliveryStatus(r["status"]), int(r["n"])) for r in rows]

    def recipients_last_sent(self, incident_id: str) -> dict[tuple[int, str, str], datetime]:
        rows = self._read("SELECT seq, channel, lang, max(finished_at) AS last FROM deliveries WHERE incident=%s"
                          " AND recipient IS NOT NULL AND status=%s GROUP BY seq, channel, lang",
                          (incident_id, DeliveryStatus.SENT))
        return {(r["seq"], r["channel"], r["lang"]): r["last"] for r in rows}

    def unfinished_posts(self, incident_id: str) -> list[int]:
        return self.link.read(lambda db: self._unfinished(db, incident_id))

    @staticmethod
    def _unfinished(db: Connection, incident_id: str) -> list[int]:
        rows = db.execute("SELECT DISTINCT seq FROM deliveries WHERE incident=%s AND status = ANY(%s) ORDER BY seq",
                          (incident_id, list(UNFINISHED)))
        return [int(r["seq"]) for r in rows.fetchall()]

    def first_receipt(self, incident_id: str, channel: str, lang: str) -> DeliveryRow | None:
        rows = self._read("SELECT * FROM deliveries WHERE incident=%s AND channel=%s AND lang=%s AND recipient IS"
                          " NULL AND status=%s AND remote_id IS NOT NULL ORDER BY seq LIMIT 1",
                          (incident_id, channel, lang, DeliveryStatus.SENT))
        return delivery_of(rows[0]) if rows else None

    def first_sent_at(self, incident_id: str, seq: int = 1) -> datetime | None:
        rows = self._read("SELECT min(finished_at) AS first FROM deliveries WHERE incident=%s AND seq=%s AND"
                          " status=%s", (incident_id, seq, DeliveryStatus.SENT))
        first: datetime | None = rows[0]["first"]
        return first

    def channel_paces(self, sample: int = 2000) -> dict[str, tuple[str, int, float, float, datetime]]:
        # Per channel, its latest post with confirmed deliveries, and a sample of their durations.
        rows = self._read(
            "SELECT DISTINCT ON (channel) channel, incident, seq, count(*) AS n, min(started_at) AS first,"
            " max(finished_at) AS last FROM deliveries WHERE status=%s AND started_at IS NOT NULL AND finished_at"
            " IS NOT NULL GROUP BY channel, incident, seq ORDER BY channel, max(finished_at) DESC",
            (DeliveryStatus.SENT,))
        paces = {}
        for row in rows:
            each = sorted(float(r["seconds"]) for r in self._read(
                "SELECT extract(epoch FROM finished_at - started_at) AS seconds FROM deliveries WHERE incident=%s"
                " AND seq=%s AND channel=%s AND status=%s AND started_at IS NOT NULL AND finished_at IS NOT NULL"
                " LIMIT %s", (row["incident"], row["seq"], row["channel"], DeliveryStatus.SENT, sample)))
            wall = (row["last"] - row["first"]).total_seconds()
            paces[row["channel"]] = (row["incident"], int(row["n"]), wall, each[len(each) // 2], row["last"])
        return paces

    # -- rehearsals ----------------------------------------------------------------------------------
    def record_rehearsal(self, playbook: str, passed: bool, summary: dict[str, Any]) -> None:
        self.link.write(lambda db: db.execute("INSERT INTO rehearsals (playbook, at, passed, summary) VALUES (%s, %s,"
                                              " %s, %s::json)",
                                              (playbook, utcnow(), passed, secrets.redact(json.dumps(summary)))),
                        again=False)

    def last_rehearsal(self, playbook: str) -> tuple[datetime, bool] | None:
        rows = self._read("SELECT at, passed FROM rehearsals WHERE playbook=%s ORDER BY id DESC LIMIT 1",
                          (playbook,))
        return (rows[0]["at"], bool(rows[0]["passed"])) if rows else None


def _record_sent(db: Connection, confirmed: Confirmation) -> None:
    remote_id, url, note = confirmed.remote_id, confirmed.url, confirmed.note
    # Recorded whoever holds the claim now: it did go out, and no one may send it again.
    db.execute(
        f"UPDATE deliveries SET status=%s, remote_id=%s, url=%s, note=%s, error=NULL, finished_at=%s, {CLEAR_CLAIM}"
        " WHERE key=%s",
        # A receiver may echo a tokened URL back: readers such as `status` never load the secrets.
        (DeliveryStatus.SENT, secrets.redact(remote_id) if remote_id else None, secrets.redact(url) if url else None,
         secrets.redact(note) if note else None, confirmed.at, confirmed.key),
    )


def _insert_intents(db: Connection, incident: str, seq: int, phase: str, items: Iterable[tuple[str, str, str | None]],
                    claim: ClaimValues = (None, None, None, None)) -> None:
    """Pending rows for the intents, in one statement however many recipients; existing rows are kept."""
    rows = [(delivery_key(incident, seq, phase, channel, lang, recipient), channel, lang, recipient)
            for channel, lang, recipient in items]
    if not rows:
        return
    keys, channels, langs, recipients = (list(column) for column in zip(*rows, strict=True))
    db.execute(
        "INSERT INTO deliveries (key, incident, seq, phase, channel, lang, recipient, status, created_at, claim_owner,"
        " claim_host, claim_pid, claim_until) SELECT k, %s, %s, %s, c, l, r, %s, %s, %s, %s, %s, %s FROM"
        " unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS t(k, c, l, r) ON CONFLICT (key) DO NOTHING",
        (incident, seq, phase, DeliveryStatus.PENDING, utcnow(), *claim, keys, channels, langs, recipients),
    )
