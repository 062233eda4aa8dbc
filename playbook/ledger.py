"""The SQLite record of incidents, their posts (one publication of a phase) and every delivery.

A delivery's intent is committed before it is attempted and its outcome right after, so a process
killed at any moment leaves a ledger that says exactly what was confirmed and what was in flight.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from playbook import secrets
from playbook.errors import IncidentError, LedgerError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    playbook TEXT NOT NULL,
    drill INTEGER NOT NULL DEFAULT 0,
    open INTEGER NOT NULL DEFAULT 1,
    detected_at TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    phase TEXT NOT NULL,
    vars TEXT NOT NULL,
    operator TEXT
);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (playbook, open);
CREATE TABLE IF NOT EXISTS posts (
    incident TEXT NOT NULL REFERENCES incidents (id),
    seq INTEGER NOT NULL,
    phase TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    deadline TEXT NOT NULL,
    next_update_at TEXT,
    vars TEXT NOT NULL,
    operator TEXT,
    texts TEXT,
    PRIMARY KEY (incident, seq)
);
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,
    incident TEXT NOT NULL,
    seq INTEGER NOT NULL,
    phase TEXT NOT NULL,
    channel TEXT NOT NULL,
    lang TEXT NOT NULL,
    recipient TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    remote_id TEXT,
    url TEXT,
    note TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_post ON deliveries (incident, seq, channel, lang);
CREATE TABLE IF NOT EXISTS rehearsals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    playbook TEXT NOT NULL,
    at TEXT NOT NULL,
    passed INTEGER NOT NULL,
    summary TEXT NOT NULL
);
"""

# Columns the post-incident review needs, added to a ledger written before they existed. Kept apart from
# the schema's version migrations: adding a nullable column is safe at any version, in any order.
REVIEW_COLUMNS = (("incidents", "operator"), ("posts", "operator"), ("posts", "texts"))


def _add_review_columns(db: sqlite3.Connection) -> None:
    for table, column in REVIEW_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")


# pending: intent recorded, not yet attempted. sending: an attempt is under way (after a crash: unconfirmed).
# sent: confirmed. failed: gave up (resume tries again). rejected: refused for good (never retried).
PENDING, SENDING, SENT, FAILED, REJECTED = "pending", "sending", "sent", "failed", "rejected"
UNFINISHED = (PENDING, SENDING, FAILED)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _optional(row: sqlite3.Row, column: str) -> Any:
    """A column a read-only ledger written before it existed lacks (it is added on the next write)."""
    try:
        return row[column]
    except IndexError:
        return None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Incident:
    id: str
    playbook: str
    drill: bool
    open: bool
    detected_at: datetime
    opened_at: datetime
    closed_at: datetime | None
    phase: str
    vars: dict[str, str | None]
    # Who opened it: user@host (None in a ledger older than the column).
    operator: str | None = None


@dataclass(frozen=True)
class Post:
    """One publication of a phase: `trigger` makes the first, each `update`/`resolve` the next."""

    incident: str
    seq: int
    phase: str
    issued_at: datetime
    deadline: datetime
    next_update_at: datetime | None
    vars: dict[str, str | None]
    operator: str | None = None
    # What the post said, secrets masked, for the review: {"variables": {...}, "channels": {channel:
    # {per_recipient, stands_in_for, languages: {lang: {block: text}}}}}.
    texts: dict[str, Any] | None = None


@dataclass(frozen=True)
class NewPost:
    """A post about to be recorded, with the (channel, lang, recipient) intents known up front."""

    phase: str
    issued_at: datetime
    deadline: datetime
    next_update_at: datetime | None
    variables: dict[str, str | None]
    intents: tuple[tuple[str, str, str | None], ...] = ()
    operator: str | None = None
    texts: dict[str, Any] | None = None


@dataclass(frozen=True)
class DeliveryRow:
    key: str
    incident: str
    seq: int
    phase: str
    channel: str
    lang: str
    recipient: str | None
    status: str
    attempts: int
    remote_id: str | None
    url: str | None
    note: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Confirmation:
    """A delivery the remote side confirmed at `at`, and what it called it."""

    key: str
    remote_id: str | None
    url: str | None
    note: str | None
    at: datetime


def delivery_key(incident: str, seq: int, phase: str, channel: str, lang: str, recipient: str | None = None) -> str:
    key = f"{incident}/{seq}-{phase}/{channel}/{lang}"
    return f"{key}/{recipient.lower()}" if recipient else key


def created_marker(path: Path) -> Path:
    """The file written beside a new ledger: while it exists, a missing or empty ledger is a loss, not a start."""
    return path.with_name(path.name + ".created")


# The first four bytes of a SQLite write-ahead log (its two byte orders).
WAL_MAGIC = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")


def _refuse_foreign_journal(path: Path) -> None:
    """A journal beside the ledger that is not SQLite's holds the last commits in a form SQLite will not read.

    SQLite would ignore it and carry on without those commits (deliveries confirmed, then forgotten), and
    the next write would overwrite it: the ledger is refused instead, as a damaged one is.
    """
    wal = path.with_name(path.name + "-wal")
    try:
        with wal.open("rb") as handle:
            head = handle.read(4)
    except FileNotFoundError:
        return
    if len(head) == 4 and head not in WAL_MAGIC:
        raise sqlite3.DatabaseError(f"its journal {wal.name} is damaged: the last changes may be in it")


def _use_wal(db: sqlite3.Connection, patience: float = 30) -> None:
    """Switch to WAL, waiting for another process that is creating the same ledger at this moment."""
    # SQLite answers "locked" at once, without its busy timeout, while another connection makes the switch.
    give_up = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > give_up:
                raise
            time.sleep(0.05)


class Ledger:
    """One SQLite file; every write is its own short transaction (WAL: readers never wait)."""

    def __init__(self, path: Path, *, create: bool = True, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        if not path.exists():
            self._guard_against_lost_ledger()
            if not create or readonly:
                raise LedgerError(
                    f"no ledger at {path}: nothing has been published from this home yet, or the ledger "
                    "was moved (pass --state PATH or set PLAYBOOK_STATE)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _refuse_foreign_journal(path)
            if readonly:
                self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30,
                                          isolation_level=None, check_same_thread=False)
                self._refuse_damaged()
            else:
                self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
                _use_wal(self.db)
                # NORMAL in WAL mode survives any process crash; only a power cut can lose the last commit.
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._refuse_damaged()
                self.db.executescript(SCHEMA)
                _add_review_columns(self.db)
                self._stamp()
            self.db.row_factory = sqlite3.Row
            self.db.execute("SELECT count(*) FROM incidents").fetchone()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"the ledger {path} cannot be read ({exc}); nothing was sent. Keep the file for the review and "
                f"check the remote channels before publishing again: restore the ledger from backup, or move it "
                f"aside and delete {created_marker(path)} to start a new one ('playbook timeline' works on a "
                f"copy restored from backup)"
            ) from None

    def _refuse_damaged(self) -> None:
        """A ledger failing SQLite's own check, or emptied since it was created, is neither trusted nor rebuilt."""
        # Damage in a page the first query does not touch would otherwise surface mid-send, as a traceback.
        verdict = str(self.db.execute("PRAGMA quick_check(1)").fetchone()[0])
        if verdict != "ok":
            self.db.close()
            raise sqlite3.DatabaseError(f"damaged: {' '.join(verdict.splitlines()[-1:])}")
        marker = created_marker(self.path)
        # A zero-length or truncated file opens as an empty database: recreating the tables would post again.
        if marker.exists() and self.db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is None:
            self.db.close()
            raise LedgerError(
                f"the ledger {self.path} is empty (it was created on {marker.read_text().strip()}): starting "
                "afresh could post everything again. Restore it from backup, or, once you are sure nothing is in "
                f"flight, delete it and {marker} to start a new ledger"
            )

    def _guard_against_lost_ledger(self) -> None:
        marker = created_marker(self.path)
        # The marker is written after the file: another process creating the ledger right now is not a loss.
        if marker.exists() and not self.path.exists():
            raise LedgerError(
                f"the ledger {self.path} has disappeared (it was created on {marker.read_text().strip()}): "
                "starting afresh could post everything again. Restore it from backup, or, once you are sure "
                f"nothing is in flight, delete {marker} to start a new ledger"
            )

    def _stamp(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            marker = created_marker(self.path)
            if not marker.exists():
                marker.write_text(_iso(utcnow()) + "\n")
        elif int(row[0]) > SCHEMA_VERSION:
            raise LedgerError(f"the ledger {self.path} was written by a newer crisis-playbook: upgrade first")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: two processes triggering at once are serialised here, not after posting."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

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
        return [self._incident(r) for r in self.db.execute(sql + " ORDER BY opened_at", args)]

    def all_incidents(self) -> list[Incident]:
        return [self._incident(r) for r in self.db.execute("SELECT * FROM incidents ORDER BY opened_at")]

    def incident(self, incident_id: str) -> Incident:
        row = self.db.execute("SELECT * FROM incidents WHERE id=?", (incident_id,)).fetchone()
        if row is None:
            known = [r[0] for r in self.db.execute("SELECT id FROM incidents ORDER BY opened_at DESC LIMIT 5")]
            hint = f"; recent: {', '.join(known)}" if known else "; no incident recorded yet"
            raise IncidentError(f"no incident '{incident_id}' in the ledger {self.path}{hint}")
        return self._incident(row)

    def create_incident(self, playbook: str, detected_at: datetime, first: NewPost, *, drill: bool,
                        allow_concurrent: bool, zone: tzinfo = UTC) -> tuple[Incident, Post]:
        """Open an incident with its first post and the post's intents, in one transaction.

        The id carries the detection time in `zone`, the playbook's, as the operator reads it on the clock.
        Refuses if this playbook already has an open incident of the same kind. One transaction means a
        process killed at any moment leaves either nothing or an incident that `resume` can finish.
        """
        phase, variables = first.phase, first.variables
        with self.transaction() as db:
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
                (incident_id, playbook, int(drill), _iso(detected_at), _iso(now), phase, json.dumps(variables),
                 first.operator),
            )
            seq = self._insert_post(db, incident_id, first)
        return self.incident(incident_id), self.post(incident_id, seq)

    def close_incident(self, incident_id: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE incidents SET open=0, closed_at=? WHERE id=?", (_iso(utcnow()), incident_id))

    @staticmethod
    def _incident(row: sqlite3.Row) -> Incident:
        return Incident(
            id=row["id"], playbook=row["playbook"], drill=bool(row["drill"]), open=bool(row["open"]),
            detected_at=datetime.fromisoformat(row["detected_at"]),
            opened_at=datetime.fromisoformat(row["opened_at"]),
            closed_at=_parse(row["closed_at"]), phase=row["phase"], vars=json.loads(row["vars"]),
            operator=_optional(row, "operator"),
        )

    # -- posts ---------------------------------------------------------------------------------------
    def add_post(self, incident_id: str, new: NewPost) -> Post:
        """Record a later post of an incident and its intents, in one transaction."""
        with self.transaction() as db:
            seq = self._insert_post(db, incident_id, new)
        return self.post(incident_id, seq)

    def _insert_post(self, db: sqlite3.Connection, incident_id: str, new: NewPost) -> int:
        seq = int(db.execute("SELECT coalesce(max(seq), 0) + 1 FROM posts WHERE incident=?",
                             (incident_id,)).fetchone()[0])
        db.execute(
            "INSERT INTO posts (incident, seq, phase, issued_at, deadline, next_update_at, vars, operator, texts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (incident_id, seq, new.phase, _iso(new.issued_at), _iso(new.deadline),
             _iso(new.next_update_at) if new.next_update_at else None, json.dumps(new.variables), new.operator,
             _texts_json(new.texts)),
        )
        db.execute("UPDATE incidents SET phase=?, vars=? WHERE id=?",
                   (new.phase, json.dumps(new.variables), incident_id))
        _insert_intents(db, incident_id, seq, new.phase, new.intents)
        return seq

    def record_texts(self, incident_id: str, seq: int, texts: dict[str, Any]) -> None:
        """Replace a post's recorded texts (trigger renders again once the incident has its final id)."""
        with self.transaction() as db:
            db.execute("UPDATE posts SET texts=? WHERE incident=? AND seq=?", (_texts_json(texts), incident_id, seq))

    def post(self, incident_id: str, seq: int) -> Post:
        row = self.db.execute("SELECT * FROM posts WHERE incident=? AND seq=?", (incident_id, seq)).fetchone()
        return self._post(row)

    def posts(self, incident_id: str) -> list[Post]:
        rows = self.db.execute("SELECT * FROM posts WHERE incident=? ORDER BY seq", (incident_id,))
        return [self._post(r) for r in rows]

    @staticmethod
    def _post(row: sqlite3.Row) -> Post:
        return Post(
            incident=row["incident"], seq=row["seq"], phase=row["phase"],
            issued_at=datetime.fromisoformat(row["issued_at"]), deadline=datetime.fromisoformat(row["deadline"]),
            next_update_at=_parse(row["next_update_at"]), vars=json.loads(row["vars"]),
            operator=_optional(row, "operator"),
            texts=json.loads(texts) if (texts := _optional(row, "texts")) else None,
        )

    # -- deliveries ----------------------------------------------------------------------------------
    def record_intents(self, post: Post, items: Iterable[tuple[str, str, str | None]]) -> None:
        """Write (channel, lang, recipient) intents as pending; existing rows are left as they are."""
        with self.transaction() as db:
            _insert_intents(db, post.incident, post.seq, post.phase, items)

    def statuses(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT key, status FROM deliveries WHERE key IN ({marks})", chunk):
                found[row[0]] = row[1]
        return found

    def mark_sending(self, key: str, *, confirmed: Confirmation | None = None) -> int:
        """Record an attempt as under way, before it starts; returns its number (1 for the first).

        `confirmed`, the delivery that the same sender has just seen confirmed, is recorded in the same
        transaction: one commit per message of a long list instead of two.
        """
        with self.transaction() as db:
            if confirmed is not None:
                _record_sent(db, confirmed)
            rows = db.execute(
                "UPDATE deliveries SET status=?, attempts=attempts+1, started_at=coalesce(started_at, ?),"
                " error=NULL WHERE key=? RETURNING attempts",
                (SENDING, _iso(utcnow()), key),
            ).fetchall()
        return int(rows[0][0])

    def mark_sent(self, confirmed: Confirmation) -> None:
        with self.transaction() as db:
            _record_sent(db, confirmed)

    def mark_failed(self, key: str, error: str, *, rejected: bool = False) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET status=?, error=?, finished_at=? WHERE key=?",
                (REJECTED if rejected else FAILED, secrets.redact(error), _iso(utcnow()), key),
            )

    def note_error(self, key: str, error: str) -> None:
        """The last error of a delivery that will be retried (it stays 'sending')."""
        with self.transaction() as db:
            db.execute("UPDATE deliveries SET error=? WHERE key=?", (secrets.redact(error), key))

    def deliveries(self, incident_id: str, seq: int | None = None, *, recipients: bool = True) -> list[DeliveryRow]:
        sql = "SELECT * FROM deliveries WHERE incident=?"
        args: list[Any] = [incident_id]
        if seq is not None:
            sql += " AND seq=?"
            args.append(seq)
        if not recipients:
            sql += " AND recipient IS NULL"
        return [self._delivery(r) for r in self.db.execute(sql + " ORDER BY seq, channel, lang, recipient", args)]

    def delivery_counts(self, incident_id: str, seq: int | None = None) -> list[tuple[int, str, str, str, int]]:
        """(seq, channel, lang, status, count) for the per-recipient rows: a summary without loading them all."""
        sql = ("SELECT seq, channel, lang, status, count(*) FROM deliveries WHERE incident=? AND recipient IS NOT NULL")
        args: list[Any] = [incident_id]
        if seq is not None:
            sql += " AND seq=?"
            args.append(seq)
        rows = self.db.execute(sql + " GROUP BY seq, channel, lang, status ORDER BY seq, channel, lang", args)
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def recipients_last_sent(self, incident_id: str) -> dict[tuple[int, str, str], datetime]:
        """When the last recipient of each (seq, channel, lang) of a per-recipient channel was confirmed."""
        rows = self.db.execute(
            "SELECT seq, channel, lang, max(finished_at) FROM deliveries WHERE incident=? AND recipient IS NOT NULL"
            " AND status=? GROUP BY seq, channel, lang", (incident_id, SENT))
        return {(r[0], r[1], r[2]): datetime.fromisoformat(r[3]) for r in rows}

    def unfinished_posts(self, incident_id: str) -> list[int]:
        rows = self.db.execute(
            f"SELECT DISTINCT seq FROM deliveries WHERE incident=? AND status IN ({','.join('?' * len(UNFINISHED))})"
            " ORDER BY seq",
            (incident_id, *UNFINISHED),
        )
        return [r[0] for r in rows]

    def first_receipt(self, incident_id: str, channel: str, lang: str) -> DeliveryRow | None:
        """The first confirmed post of a channel in a language: later phases reply to it."""
        row = self.db.execute(
            "SELECT * FROM deliveries WHERE incident=? AND channel=? AND lang=? AND recipient IS NULL"
            " AND status=? AND remote_id IS NOT NULL ORDER BY seq LIMIT 1",
            (incident_id, channel, lang, SENT),
        ).fetchone()
        return self._delivery(row) if row else None

    def first_sent_at(self, incident_id: str, seq: int = 1) -> datetime | None:
        row = self.db.execute(
            "SELECT min(finished_at) FROM deliveries WHERE incident=? AND seq=? AND status=?",
            (incident_id, seq, SENT),
        ).fetchone()
        return _parse(row[0])

    @staticmethod
    def _delivery(row: sqlite3.Row) -> DeliveryRow:
        return DeliveryRow(
            key=row["key"], incident=row["incident"], seq=row["seq"], phase=row["phase"], channel=row["channel"],
            lang=row["lang"], recipient=row["recipient"], status=row["status"], attempts=row["attempts"],
            remote_id=row["remote_id"], url=row["url"], note=row["note"], error=row["error"],
            created_at=datetime.fromisoformat(row["created_at"]), started_at=_parse(row["started_at"]),
            finished_at=_parse(row["finished_at"]),
        )

    def measured_latencies(self, sample: int = 500) -> dict[str, float]:
        """Median seconds of a first-attempt delivery per channel, from the latest confirmed deliveries."""
        latencies: dict[str, list[float]] = {}
        rows = self.db.execute(
            "SELECT channel, started_at, finished_at FROM deliveries WHERE status=? AND attempts=1"
            " AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?",
            (SENT, sample * 10),
        )
        for channel, started, finished in rows:
            values = latencies.setdefault(channel, [])
            if len(values) < sample:
                values.append((datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds())
        return {channel: sorted(v)[len(v) // 2] for channel, v in latencies.items() if v}

    # -- rehearsals ----------------------------------------------------------------------------------
    def record_rehearsal(self, playbook: str, passed: bool, summary: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO rehearsals (playbook, at, passed, summary) VALUES (?, ?, ?, ?)",
                       (playbook, _iso(utcnow()), int(passed), secrets.redact(json.dumps(summary))))

    def last_rehearsal(self, playbook: str) -> tuple[datetime, bool] | None:
        row = self.db.execute("SELECT at, passed FROM rehearsals WHERE playbook=? ORDER BY id DESC LIMIT 1",
                              (playbook,)).fetchone()
        return (datetime.fromisoformat(row[0]), bool(row[1])) if row else None

    def channel_paces(self, sample: int = 2000) -> dict[str, tuple[str, int, float, float, datetime]]:
        """Per channel, its latest post with confirmed deliveries: (incident, messages, wall seconds from the
        first start to the last confirmation, median seconds of one delivery, when it finished)."""
        latest: dict[str, tuple[str, str, int, int, str, str]] = {}
        for channel, incident, seq, count, first, last in self.db.execute(
            "SELECT channel, incident, seq, count(*), min(started_at), max(finished_at) FROM deliveries"
            " WHERE status=? AND started_at IS NOT NULL AND finished_at IS NOT NULL GROUP BY channel, incident, seq",
            (SENT,),
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
                    (incident, seq, channel, SENT, sample),
                )
            )
            wall = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
            paces[channel] = (incident, count, wall, each[len(each) // 2], datetime.fromisoformat(last))
        return paces


def _texts_json(texts: dict[str, Any] | None) -> str | None:
    # A secret can reach a message through a variable or a template: the record must not keep it. Masked
    # before encoding, as JSON would escape a secret's quotes or backslashes out of recognition.
    def masked(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: masked(v) for k, v in value.items()}
        return secrets.redact(value) if isinstance(value, str) else value

    return json.dumps(masked(texts), ensure_ascii=False) if texts is not None else None


def _record_sent(db: sqlite3.Connection, confirmed: Confirmation) -> None:
    remote_id, url, note = confirmed.remote_id, confirmed.url, confirmed.note
    db.execute(
        "UPDATE deliveries SET status=?, remote_id=?, url=?, note=?, error=NULL, finished_at=? WHERE key=?",
        # A receiver may echo a tokened URL back: readers such as `status` never load the secrets.
        (SENT, secrets.redact(remote_id) if remote_id else None, secrets.redact(url) if url else None,
         secrets.redact(note) if note else None, _iso(confirmed.at), confirmed.key),
    )


def _insert_intents(db: sqlite3.Connection, incident: str, seq: int, phase: str,
                    items: Iterable[tuple[str, str, str | None]]) -> None:
    now = _iso(utcnow())
    db.executemany(
        "INSERT OR IGNORE INTO deliveries (key, incident, seq, phase, channel, lang, recipient, status,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(delivery_key(incident, seq, phase, channel, lang, recipient), incident, seq, phase, channel, lang,
          recipient, PENDING, now) for channel, lang, recipient in items],
    )
