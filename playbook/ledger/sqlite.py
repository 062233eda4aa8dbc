"""The SQLite store: the ledger in one file (contract.Ledger says what every store guarantees).

Every write is its own short transaction, BEGIN IMMEDIATE, so that processes sharing the file are serialised
before they post; the file is in WAL mode, so that readers never wait.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

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
from playbook.ledger.sqlite_claims import SqliteClaims
from playbook.ledger.sqlite_duties import SqliteDuties
from playbook.ledger.sqlite_file import connect, iso, transaction
from playbook.ledger.sqlite_monitors import SqliteMonitors
from playbook.ledger.sqlite_rows import delivery_of, incident_of, parse_time, post_of
from playbook.ledger.statuses import UNFINISHED, DeliveryStatus, superseded_by
from playbook.ledger.stored import texts_json

# A row's key after its post's prefix (contract.post_prefix): its channel, language and recipient. A later post
# `p` has delivery `n` for the same ones when `n`'s key is that with `p`'s prefix, found through the primary key.
_TAIL = "substr(deliveries.key, length(deliveries.incident) + length(deliveries.seq) + length(deliveries.phase) + 4)"
_SAME = f"n.key = p.incident || '/' || p.seq || '-' || p.phase || '/' || {_TAIL}"
_LATER = (f"SELECT 1 FROM posts p JOIN deliveries n ON {_SAME} WHERE p.incident = deliveries.incident"
          " AND p.seq > deliveries.seq")


class SqliteLedger(SqliteClaims, SqliteDuties, SqliteMonitors):
    """One SQLite file, opened by one owner.

    `clock` dates claims and their leases (tests inject one to expire a lease); `owner` is who this ledger
    claims for (this process, unless a test plays two); `lease` how long a claim lives unless renewed.
    """

    def __init__(self, path: Path, *, create: bool = True, readonly: bool = False,
                 clock: Callable[[], datetime] | None = None, owner: Owner | None = None,
                 lease: timedelta | None = None) -> None:
        self.path = path
        self.readonly = readonly
        self.clock = clock or utcnow
        self.owner = owner or Owner.this_process()
        self.lease = lease or lease_from_env()
        self.db = connect(path, create=create, readonly=readonly)

    def close(self) -> None:
        self.db.close()

    def bear_with_outages_until(self, moment: datetime) -> None:
        # A file does not go away and come back: a busy one is waited for by the lock's own timeout.
        pass

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with transaction(self.db, self.path) as db:
            yield db

    # -- incidents -----------------------------------------------------------------------------------
    def open_incidents(self, playbook: str | None = None, *, drill: bool | None = None) -> list[Incident]:
        sql = "SELECT * FROM incidents WHERE open=1"
        args: list[Any] = []
        if playbook is not None:
            sql += " AND playbook=?"
            args.append(playbook)
        if drill is not None:
            sql += " AND drill=?"
            args.append(int(drill))
        return [incident_of(r) for r in self.db.execute(sql + " ORDER BY opened_at", args)]

    def all_incidents(self) -> list[Incident]:
        return [incident_of(r) for r in self.db.execute("SELECT * FROM incidents ORDER BY opened_at")]

    def incident(self, incident_id: str) -> Incident:
        row = self.db.execute("SELECT * FROM incidents WHERE id=?", (incident_id,)).fetchone()
        if row is None:
            known = [r[0] for r in self.db.execute("SELECT id FROM incidents ORDER BY opened_at DESC LIMIT 5")]
            hint = f"; recent: {', '.join(known)}" if known else "; no incident recorded yet"
            raise IncidentError(f"no incident '{incident_id}' in the ledger {self.path}{hint}")
        return incident_of(row)

    def create_incident(self, playbook: str, detected_at: datetime, first: NewPost, *, drill: bool,
                        allow_concurrent: bool, zone: tzinfo = UTC) -> tuple[Incident, Post]:
        phase, variables = first.phase, first.variables
        with self._transaction() as db:
            if not allow_concurrent:
                existing = db.execute(
                    "SELECT id, opened_at FROM incidents WHERE playbook=? AND open=1 AND drill=?",
                    (playbook, int(drill)),
                ).fetchone()
                if existing is not None:
                    kind = "drill" if drill else "incident"
                    raise IncidentError(
                        f"playbook '{playbook}' already has an open {kind}: {existing['id']} (opened "
                        f"{existing['opened_at']}); follow it with 'playbook update {existing['id']} --phase ...',"
                        f" or pass --new to open a second one"
                    )
            now = utcnow()
            base = f"{playbook}-{'drill-' if drill else ''}{detected_at.astimezone(zone):%Y%m%d-%H%M}"
            incident_id, n = base, 1
            while db.execute("SELECT 1 FROM incidents WHERE id=?", (incident_id,)).fetchone():
                n += 1
                incident_id = f"{base}-{n}"
            db.execute(
                "INSERT INTO incidents (id, playbook, drill, open, detected_at, opened_at, phase, vars, operator)"
                " VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
                (incident_id, playbook, int(drill), iso(detected_at), iso(now), phase, json.dumps(variables),
                 first.operator),
            )
            seq = self._insert_post(db, incident_id, first)
        return self.incident(incident_id), self.post(incident_id, seq)

    def close_incident(self, incident_id: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE incidents SET open=0, closed_at=? WHERE id=?", (iso(utcnow()), incident_id))

    # -- posts ---------------------------------------------------------------------------------------
    def add_post(self, incident_id: str, new: NewPost, *, again: bool = False) -> Post:
        with self._transaction() as db:
            row = db.execute("SELECT open, phase FROM incidents WHERE id=?", (incident_id,)).fetchone()
            if row is None:
                raise IncidentError(f"no incident '{incident_id}' in the ledger {self.path}")
            now = iso(self.clock())
            handed = [r[0] for r in db.execute("SELECT seq FROM posts WHERE incident=? AND handed_until > ?",
                                               (incident_id, now))]
            holder = blocking(self._holders(db, incident_id), handed)
            if holder is not None:
                raise publishing(incident_id, holder)
            if not row[0]:
                raise IncidentError(f"incident {incident_id} is closed")
            if row[1] == new.phase and not again:
                raise IncidentError(
                    f"incident {incident_id} is already in phase '{new.phase}'; pass --again to publish a new "
                    "update of the same phase"
                )
            seq = self._insert_post(db, incident_id, new)
            # The same channel, language and recipient in the new post: the key with the new post's prefix.
            db.execute(
                "UPDATE deliveries SET status=?, error=?, finished_at=?, claim_owner=NULL, claim_host=NULL,"
                " claim_pid=NULL, claim_until=NULL WHERE incident=? AND seq<? AND status IN (?, ?, ?)"
                " AND NOT (status=? AND claim_owner IS NOT NULL AND claim_until > ?) AND EXISTS (SELECT 1 FROM"
                f" deliveries n WHERE n.key = ? || {_TAIL})",
                (DeliveryStatus.SUPERSEDED, superseded_by(seq, new.phase), now, incident_id, seq, *UNFINISHED,
                 DeliveryStatus.SENDING, now, post_prefix(incident_id, seq, new.phase)))
        return self.post(incident_id, seq)

    def _insert_post(self, db: sqlite3.Connection, incident_id: str, new: NewPost) -> int:
        """Insert the post and its intents, claimed by this owner: no other process may start on them."""
        seq = int(db.execute("SELECT coalesce(max(seq), 0) + 1 FROM posts WHERE incident=?",
                             (incident_id,)).fetchone()[0])
        claim = self._claim_values()
        db.execute(
            "INSERT INTO posts (incident, seq, phase, issued_at, deadline, next_update_at, vars, operator, texts,"
            " holding, claim_owner, claim_host, claim_pid, claim_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?)",
            (incident_id, seq, new.phase, iso(new.issued_at), iso(new.deadline),
             iso(new.next_update_at) if new.next_update_at else None, json.dumps(new.variables), new.operator,
             texts_json(new.texts), int(new.holding), *claim),
        )
        db.execute("UPDATE incidents SET phase=?, vars=? WHERE id=?",
                   (new.phase, json.dumps(new.variables), incident_id))
        _insert_intents(db, incident_id, seq, new.phase, new.intents, claim)
        return seq

    def record_texts(self, incident_id: str, seq: int, texts: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute("UPDATE posts SET texts=? WHERE incident=? AND seq=?", (texts_json(texts), incident_id, seq))

    def post(self, incident_id: str, seq: int) -> Post:
        row = self.db.execute("SELECT * FROM posts WHERE incident=? AND seq=?", (incident_id, seq)).fetchone()
        return post_of(row)

    def posts(self, incident_id: str) -> list[Post]:
        rows = self.db.execute("SELECT * FROM posts WHERE incident=? ORDER BY seq", (incident_id,))
        return [post_of(r) for r in rows]

    # -- deliveries ----------------------------------------------------------------------------------
    def record_intents(self, post: Post, items: Iterable[tuple[str, str, str | None]]) -> None:
        with self._transaction() as db:
            _insert_intents(db, post.incident, post.seq, post.phase, items)

    def mark_sending(self, key: str, *, confirmed: Confirmation | None = None) -> int | None:
        with self._transaction() as db:
            if confirmed is not None:
                _record_sent(db, confirmed)
            rows = db.execute(
                "UPDATE deliveries SET status=?, attempts=attempts+1, started_at=coalesce(started_at, ?),"
                f" error=NULL WHERE key=? AND claim_owner=? AND status IN (?, ?, ?) AND NOT EXISTS ({_LATER})"
                " RETURNING attempts",
                (DeliveryStatus.SENDING, iso(utcnow()), key, self.owner.token, *UNFINISHED),
            ).fetchall()
            if rows:
                return int(rows[0][0])
            # Refused: the claim is gone, or a later post covers this delivery, which is then superseded.
            later = db.execute(f"SELECT p.seq, p.phase FROM deliveries JOIN posts p ON p.incident = deliveries.incident"
                               f" AND p.seq > deliveries.seq JOIN deliveries n ON {_SAME} WHERE deliveries.key=?"
                               " ORDER BY p.seq LIMIT 1", (key,)).fetchone()
            if later is not None:
                db.execute("UPDATE deliveries SET status=?, error=?, finished_at=?, claim_owner=NULL, claim_host=NULL,"
                           " claim_pid=NULL, claim_until=NULL WHERE key=? AND claim_owner=? AND status IN (?, ?, ?)",
                           (DeliveryStatus.SUPERSEDED, superseded_by(*later), iso(utcnow()), key, self.owner.token,
                            *UNFINISHED))
        return None

    def mark_sent(self, confirmed: Confirmation) -> None:
        with self._transaction() as db:
            _record_sent(db, confirmed)

    def mark_failed(self, key: str, error: str, *, rejected: bool = False) -> None:
        self.mark_all_failed([key], error, rejected=rejected)

    def mark_all_failed(self, keys: Sequence[str], error: str, *, rejected: bool = False) -> None:
        status = DeliveryStatus.REJECTED if rejected else DeliveryStatus.FAILED
        with self._transaction() as db:
            db.executemany(
                "UPDATE deliveries SET status=?, error=?, finished_at=?, claim_owner=NULL, claim_host=NULL,"
                " claim_pid=NULL, claim_until=NULL WHERE key=? AND claim_owner=?",
                [(status, secrets.redact(error), iso(utcnow()), key, self.owner.token) for key in keys],
            )

    def note_error(self, key: str, error: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE deliveries SET error=? WHERE key=? AND claim_owner=?",
                       (secrets.redact(error), key, self.owner.token))

    # -- reading -------------------------------------------------------------------------------------
    def deliveries(self, incident_id: str, seq: int | None = None, *, recipients: bool = True) -> list[DeliveryRow]:
        sql = "SELECT * FROM deliveries WHERE incident=?"
        args: list[Any] = [incident_id]
        if seq is not None:
            sql += " AND seq=?"
            args.append(seq)
        if not recipients:
            sql += " AND recipient IS NULL"
        return [delivery_of(r) for r in self.db.execute(sql + " ORDER BY seq, channel, lang, recipient", args)]

    def delivery_counts(self, incident_id: str,
                        seq: int | None = None) -> list[tuple[int, str, str, DeliveryStatus, int]]:
        sql = ("SELECT seq, channel, lang, status, count(*) FROM deliveries WHERE incident=? AND recipient IS NOT NULL")
        args: list[Any] = [incident_id]
        if seq is not None:
            sql += " AND seq=?"
            args.append(seq)
        rows = self.db.execute(sql + " GROUP BY seq, channel, lang, status ORDER BY seq, channel, lang", args)
        return [(r[0], r[1], r[2], DeliveryStatus(r[3]), r[4]) for r in rows]

    def recipients_last_sent(self, incident_id: str) -> dict[tuple[int, str, str], datetime]:
        rows = self.db.execute(
            "SELECT seq, channel, lang, max(finished_at) FROM deliveries WHERE incident=? AND recipient IS NOT NULL"
            " AND status=? GROUP BY seq, channel, lang", (incident_id, DeliveryStatus.SENT))
        return {(r[0], r[1], r[2]): datetime.fromisoformat(r[3]) for r in rows}

    def unfinished_posts(self, incident_id: str) -> list[int]:
        return self._unfinished(self.db, incident_id)

    @staticmethod
    def _unfinished(db: sqlite3.Connection, incident_id: str) -> list[int]:
        rows = db.execute(
            f"SELECT DISTINCT seq FROM deliveries WHERE incident=? AND status IN ({','.join('?' * len(UNFINISHED))})"
            " ORDER BY seq",
            (incident_id, *UNFINISHED),
        )
        return [r[0] for r in rows]

    def first_receipt(self, incident_id: str, channel: str, lang: str) -> DeliveryRow | None:
        row = self.db.execute(
            "SELECT * FROM deliveries WHERE incident=? AND channel=? AND lang=? AND recipient IS NULL"
            " AND status=? AND remote_id IS NOT NULL ORDER BY seq LIMIT 1",
            (incident_id, channel, lang, DeliveryStatus.SENT),
        ).fetchone()
        return delivery_of(row) if row else None

    def first_sent_at(self, incident_id: str, seq: int = 1) -> datetime | None:
        row = self.db.execute(
            "SELECT min(finished_at) FROM deliveries WHERE incident=? AND seq=? AND status=?",
            (incident_id, seq, DeliveryStatus.SENT),
        ).fetchone()
        return parse_time(row[0])

    # -- rehearsals ----------------------------------------------------------------------------------
    def record_rehearsal(self, playbook: str, passed: bool, summary: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO rehearsals (playbook, at, passed, summary) VALUES (?, ?, ?, ?)",
                       (playbook, iso(utcnow()), int(passed), secrets.redact(json.dumps(summary))))

    def last_rehearsal(self, playbook: str) -> tuple[datetime, bool] | None:
        row = self.db.execute("SELECT at, passed FROM rehearsals WHERE playbook=? ORDER BY id DESC LIMIT 1",
                              (playbook,)).fetchone()
        return (datetime.fromisoformat(row[0]), bool(row[1])) if row else None

    def channel_paces(self, sample: int = 2000) -> dict[str, tuple[str, int, float, float, datetime]]:
        latest: dict[str, tuple[str, str, int, int, str, str]] = {}
        for channel, incident, seq, count, first, last in self.db.execute(
            "SELECT channel, incident, seq, count(*), min(started_at), max(finished_at) FROM deliveries"
            " WHERE status=? AND started_at IS NOT NULL AND finished_at IS NOT NULL GROUP BY channel, incident, seq",
            (DeliveryStatus.SENT,),
        ):
            if channel not in latest or last > latest[channel][5]:
                latest[channel] = (channel, incident, seq, count, first, last)
        paces = {}
        for channel, incident, seq, count, first, last in latest.values():
            each = sorted(
                (datetime.fromisoformat(f) - datetime.fromisoformat(s)).total_seconds()
                for s, f in self.db.execute(
                    "SELECT started_at, finished_at FROM deliveries WHERE incident=? AND seq=? AND channel=?"
                    " AND status=? AND started_at IS NOT NULL AND finished_at IS NOT NULL LIMIT ?",
                    (incident, seq, channel, DeliveryStatus.SENT, sample),
                )
            )
            wall = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
            paces[channel] = (incident, count, wall, each[len(each) // 2], datetime.fromisoformat(last))
        return paces


def _record_sent(db: sqlite3.Connection, confirmed: Confirmation) -> None:
    remote_id, url, note = confirmed.remote_id, confirmed.url, confirmed.note
    # Recorded whoever holds the claim now: it did go out, and no one may send it again.
    db.execute(
        "UPDATE deliveries SET status=?, remote_id=?, url=?, note=?, error=NULL, finished_at=?, claim_owner=NULL,"
        " claim_host=NULL, claim_pid=NULL, claim_until=NULL WHERE key=?",
        # A receiver may echo a tokened URL back: readers such as `status` never load the secrets.
        (DeliveryStatus.SENT, secrets.redact(remote_id) if remote_id else None, secrets.redact(url) if url else None,
         secrets.redact(note) if note else None, iso(confirmed.at), confirmed.key),
    )


def _insert_intents(db: sqlite3.Connection, incident: str, seq: int, phase: str,
                    items: Iterable[tuple[str, str, str | None]],
                    claim: tuple[str, str, int, str] | tuple[None, None, None, None] = (None, None, None, None)
                    ) -> None:
    now = iso(utcnow())
    db.executemany(
        "INSERT OR IGNORE INTO deliveries (key, incident, seq, phase, channel, lang, recipient, status,"
        " created_at, claim_owner, claim_host, claim_pid, claim_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(delivery_key(incident, seq, phase, channel, lang, recipient), incident, seq, phase, channel, lang,
          recipient, DeliveryStatus.PENDING, now, *claim) for channel, lang, recipient in items],
    )
