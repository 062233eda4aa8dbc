"""The SQLite ledger's file: its schema and migrations, and opening it only when it can be trusted.

A ledger that was lost, emptied, damaged, or written by a newer version is refused, never rebuilt: starting
afresh could post everything again. The file and its folder are readable by their owner only.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from playbook.errors import LedgerError, LedgerWriteError
from playbook.ledger.stored import known_schema

SCHEMA_VERSION = 3

# Version 1, as every ledger starts: _migrate then brings it to SCHEMA_VERSION, in the same transaction.
SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    playbook TEXT NOT NULL,
    drill INTEGER NOT NULL DEFAULT 0,
    open INTEGER NOT NULL DEFAULT 1,
    detected_at TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    phase TEXT NOT NULL,
    vars TEXT NOT NULL
);
CREATE INDEX incidents_open ON incidents (playbook, open);
CREATE TABLE posts (
    incident TEXT NOT NULL REFERENCES incidents (id),
    seq INTEGER NOT NULL,
    phase TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    deadline TEXT NOT NULL,
    next_update_at TEXT,
    vars TEXT NOT NULL,
    PRIMARY KEY (incident, seq)
);
CREATE TABLE deliveries (
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
CREATE INDEX deliveries_post ON deliveries (incident, seq, channel, lang);
CREATE TABLE rehearsals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    playbook TEXT NOT NULL,
    at TEXT NOT NULL,
    passed INTEGER NOT NULL,
    summary TEXT NOT NULL
);
"""

TABLES = ("meta", "incidents", "posts", "deliveries", "rehearsals")
# The workers' and monitors' tables, from version 3 on: a ledger of that version without them is damaged.
WORKER_TABLES = ("workers", "duties", "monitor_changes")

# The columns each schema version adds to tables that already hold data; a later column goes into the version
# that introduces it. _migrate adds them, then runs that version's own step, if any.
ADDED_COLUMNS: dict[int, tuple[tuple[str, str], ...]] = {
    # A claim: who holds the row (a token per process), their host and pid for messages, and until when.
    2: (*((table, column) for table in ("posts", "deliveries") for column in (
        "claim_owner TEXT", "claim_host TEXT", "claim_pid INTEGER", "claim_until TEXT")),
        # Who published (user@host) and what each post said, for the post-incident review.
        ("incidents", "operator TEXT"), ("posts", "operator TEXT"), ("posts", "texts TEXT")),
    # A post a worker published because an update was overdue; until when its failures are the workers' to retry.
    # Version 3 is also the first to store the status `superseded`, which an older reader could not read: it
    # refuses the file as newer than it knows instead.
    3: (("posts", "holding INTEGER NOT NULL DEFAULT 0"), ("posts", "handed_until TEXT")),
}

# Version 3's own tables: the workers' heartbeats (a row a process, by its owner token; a stopped one is marked,
# not deleted, as every other record), the duties done once (`id` keeps the order they were first taken), and
# each monitor's changes of state (numbered per monitor: the key two watchers recording one change collide on).
SCHEMA_V3_TABLES = """
CREATE TABLE workers (
    token TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    home TEXT NOT NULL,
    started_at TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    doing TEXT NOT NULL,
    stopped_at TEXT
);
CREATE TABLE duties (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    incident TEXT,
    playbook TEXT,
    taken_at TEXT NOT NULL,
    taken_by TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    done_at TEXT,
    ok INTEGER,
    outcome TEXT,
    hold_owner TEXT,
    hold_until TEXT
);
CREATE INDEX duties_incident ON duties (incident);
CREATE TABLE monitor_changes (
    playbook TEXT NOT NULL,
    monitor TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('up', 'down')),
    since TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    detail TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (playbook, monitor, seq)
);
"""

# The first four bytes of a SQLite write-ahead log (its two byte orders).
WAL_MAGIC = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")


def iso(moment: datetime) -> str:
    """How the SQLite ledger writes a moment: UTC, to the millisecond, so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def created_marker(path: Path) -> Path:
    """The file written beside a new ledger: while it exists, a missing or empty ledger is a loss, not a start."""
    return path.with_name(path.name + ".created")


def connect(path: Path, *, create: bool, readonly: bool) -> sqlite3.Connection:
    """The ledger at `path`, created (or brought to SCHEMA_VERSION) unless `readonly`, once it is trusted.

    LedgerError if it is missing, lost, emptied, damaged or of an unknown schema; LedgerWriteError if a writer
    cannot write it.
    """
    if not path.exists():
        _guard_against_lost_ledger(path)
        if not create or readonly:
            raise LedgerError(
                f"no ledger at {path}: nothing has been published from this home yet, or the ledger "
                "was moved (pass --state PATH or set PLAYBOOK_STATE)"
            )
        _private_file(path)
    try:
        _refuse_foreign_journal(path)
        if readonly:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            _refuse_damaged(db, path)
            # An older schema is read as it is: the reading methods use no column a later version added.
            _check_schema(db, path)
        else:
            db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            _use_wal(db)
            # NORMAL in WAL mode survives any process crash; only a power cut can lose the last commit.
            db.execute("PRAGMA synchronous=NORMAL")
            _refuse_damaged(db, path)
            _prepare(db, path)
        db.row_factory = sqlite3.Row
        db.execute("SELECT count(*) FROM incidents").fetchone()
    except LedgerError:
        db.close()
        raise
    except sqlite3.OperationalError as exc:
        if readonly or not _cannot_write(exc):
            raise _unreadable(path, exc) from None
        raise LedgerWriteError(
            f"the ledger {path} cannot be written ({exc}); nothing was sent. Free some space or fix the "
            "permissions of the file and its folder, then run the command again"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise _unreadable(path, exc) from None
    return db


@contextmanager
def transaction(db: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE: two processes triggering at once are serialised here, not after posting.

    A write SQLite cannot make (disk full, read-only file, the lock never granted) is a LedgerWriteError.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        if not (_cannot_write(exc) or "locked" in str(exc)):
            raise
        if db.in_transaction:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise LedgerWriteError(f"the ledger {path} cannot be written ({exc})") from exc


def _unreadable(path: Path, exc: sqlite3.DatabaseError) -> LedgerError:
    return LedgerError(
        f"the ledger {path} cannot be read ({exc}); nothing was sent. Keep the file for the review and "
        f"check the remote channels before publishing again: restore the ledger from backup, or move it "
        f"aside and delete {created_marker(path)} to start a new one ('playbook timeline' works on a "
        f"copy restored from backup)"
    )


def _refuse_damaged(db: sqlite3.Connection, path: Path) -> None:
    """A ledger failing SQLite's own check, or emptied since it was created, is neither trusted nor rebuilt."""
    # Damage in a page the first query does not touch would otherwise surface mid-send, as a traceback.
    verdict = str(db.execute("PRAGMA quick_check(1)").fetchone()[0])
    if verdict != "ok":
        db.close()
        raise sqlite3.DatabaseError(f"damaged: {' '.join(verdict.splitlines()[-1:])}")
    marker = created_marker(path)
    # A zero-length or truncated file opens as an empty database: recreating the tables would post again.
    if marker.exists() and not _tables(db):
        db.close()
        raise LedgerError(
            f"the ledger {path} is empty (it was created on {marker.read_text().strip()}): starting "
            "afresh could post everything again. Restore it from backup, or, once you are sure nothing is in "
            f"flight, delete it and {marker} to start a new ledger"
        )


def _guard_against_lost_ledger(path: Path) -> None:
    marker = created_marker(path)
    # The marker is written after the file: another process creating the ledger right now is not a loss.
    if marker.exists() and not path.exists():
        raise LedgerError(
            f"the ledger {path} has disappeared (it was created on {marker.read_text().strip()}): "
            "starting afresh could post everything again. Restore it from backup, or, once you are sure "
            f"nothing is in flight, delete {marker} to start a new ledger"
        )


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables of a new ledger, or check an existing one and bring it to SCHEMA_VERSION.

    One immediate transaction: processes opening a new or old ledger at once see it whole, never half made.
    """
    created = False
    with transaction(db, path):
        if not _tables(db):
            for statement in SCHEMA_V1.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT INTO meta VALUES ('schema', '1')")
            created = True
        version = _check_schema(db, path)
        if version < SCHEMA_VERSION:
            _migrate(db, version)
    marker = created_marker(path)
    if created and not marker.exists():
        _private_file(marker, iso(datetime.now(UTC)) + "\n")


def _check_schema(db: sqlite3.Connection, path: Path) -> int:
    """The ledger's schema version, once every table is found and the version is one this code knows."""
    found = _tables(db)
    marker = created_marker(path)
    recover = (f"Restore it from backup, or, once you are sure nothing is in flight, move it aside and delete "
               f"{marker} to start a new ledger")
    if not found:
        # Only a reader gets here (a writer creates the tables), and only while the file is brand new.
        raise LedgerError(f"the ledger {path} holds nothing yet (another command may be creating it right "
                          "now): run the command again in a moment")
    _refuse_missing([name for name in TABLES if name not in found], path, recover)
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    version = known_schema(str(row[0]) if row is not None else "none", str(path), SCHEMA_VERSION, recover=recover)
    if version >= 3:
        _refuse_missing([name for name in WORKER_TABLES if name not in found], path, recover)
    return version


def _refuse_missing(missing: list[str], path: Path, recover: str) -> None:
    if missing:
        raise LedgerError(
            f"the ledger {path} is damaged: its table{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} {'are' if len(missing) > 1 else 'is'} missing; nothing was sent, and the "
            f"tables are not made again over what is left (that could post everything again). {recover}"
        )


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


def _tables(db: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a ledger of `version` to SCHEMA_VERSION inside the caller's transaction, keeping every row."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        for table, column in ADDED_COLUMNS.get(target, ()):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        if target == 2:
            _rekey_recipients(db)
            db.execute("CREATE INDEX deliveries_claim ON deliveries (claim_owner) WHERE claim_owner IS NOT NULL")
        if target == 3:
            for statement in SCHEMA_V3_TABLES.split(";"):
                if statement.strip():
                    db.execute(statement)
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))


def _rekey_recipients(db: sqlite3.Connection) -> None:
    """Version 2 keys a recipient's delivery by address alone: version 1 had the language in it too.

    A list whose language column was edited between a run and `resume` left two rows for one address: the one
    that says the most (sent, then in flight, then refused, then the oldest) is kept, as the next run would.
    """
    db.execute(
        "DELETE FROM deliveries WHERE recipient IS NOT NULL AND rowid NOT IN (SELECT rowid FROM (SELECT rowid,"
        " row_number() OVER (PARTITION BY incident, seq, channel, lower(recipient) ORDER BY CASE status"
        " WHEN 'sent' THEN 0 WHEN 'sending' THEN 1 WHEN 'rejected' THEN 2 ELSE 3 END, created_at) AS rank"
        " FROM deliveries WHERE recipient IS NOT NULL) WHERE rank = 1)"
    )
    db.execute(
        "UPDATE deliveries SET key = incident || '/' || seq || '-' || phase || '/' || channel || '/' ||"
        " lower(recipient) WHERE recipient IS NOT NULL"
    )


def _cannot_write(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite failed to write (full, read-only, no room for its journal), not to read what is there."""
    text = str(exc).lower()
    return any(words in text for words in ("readonly", "read-only", "is full", "unable to open", "disk i/o"))


def _private_file(path: Path, text: str | None = None) -> None:
    """Create `path` (and its folder) readable by its owner only: they hold customers' addresses."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created 0600 here, before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if text is not None else 0), 0o600)
    try:
        if text is not None:
            os.write(fd, text.encode())
    finally:
        os.close(fd)
