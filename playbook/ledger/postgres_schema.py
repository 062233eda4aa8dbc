"""The PostgreSQL ledger's database: its schema and version, and connecting only to a database it can trust.

A database without the ledger's tables is given them, in one transaction, by the first writer (others wait
on an advisory lock); a database of a newer schema, or one where some tables are missing, is refused and
never altered. The versions are the PostgreSQL store's own: the SQLite file counts its own.

A database of an older schema is brought to SCHEMA_VERSION by the first writer that opens it, in one
transaction under the same advisory lock (the others wait, then find it current), and the log says so: every
machine then runs the new version's code against it. A reader leaves it as it is and reads it as it is, as a
reader of an older SQLite file does: `status` or `timeline` from a machine not yet upgraded, or from one
whose role may not alter tables, still works; the records an older schema lacks (the workers', a post's
holding flag, the monitors' changes) read as absent. A role that may not alter the tables is told to open it
once as their owner.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from playbook import secrets
from playbook.errors import LedgerError
from playbook.ledger.location import shown
from playbook.ledger.stored import known_schema

if TYPE_CHECKING:
    Connection = psycopg.Connection[DictRow]

SCHEMA_VERSION = 2
TABLES = ("meta", "incidents", "posts", "deliveries", "rehearsals")
# The workers' and monitors' tables, from version 2 on: a database of that version without them is damaged.
WORKER_TABLES = ("workers", "duties", "monitor_changes")
log = logging.getLogger("playbook.ledger")
# Taken by whoever creates the tables, so that machines opening a new database at once see it whole.
SCHEMA_LOCK = 0x706C6179626F6F6B  # "playbook"
# How long to wait for the server when it does not answer at all (the URL's connect_timeout wins).
CONNECT_TIMEOUT = 10

# A claim is who holds the row (a token per process), their host and pid for messages, and until when.
CLAIM_COLUMNS = "claim_owner text, claim_host text, claim_pid integer, claim_until timestamptz"

SCHEMA = f"""
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE incidents (
    id text PRIMARY KEY,
    playbook text NOT NULL,
    drill boolean NOT NULL,
    open boolean NOT NULL DEFAULT true,
    -- Opened with --new beside another open incident: outside the one-open-incident rule below.
    alongside boolean NOT NULL DEFAULT false,
    detected_at timestamptz NOT NULL,
    opened_at timestamptz NOT NULL,
    closed_at timestamptz,
    phase text NOT NULL,
    vars json NOT NULL,
    operator text
);
-- One open incident per playbook and kind, whichever machine opens it.
CREATE UNIQUE INDEX incidents_one_open ON incidents (playbook, drill) WHERE open AND NOT alongside;
CREATE TABLE posts (
    incident text NOT NULL REFERENCES incidents (id),
    seq integer NOT NULL,
    phase text NOT NULL,
    issued_at timestamptz NOT NULL,
    deadline timestamptz NOT NULL,
    next_update_at timestamptz,
    vars json NOT NULL,
    operator text,
    texts json,
    {CLAIM_COLUMNS},
    PRIMARY KEY (incident, seq)
);
CREATE TABLE deliveries (
    key text PRIMARY KEY,
    incident text NOT NULL,
    seq integer NOT NULL,
    phase text NOT NULL,
    channel text NOT NULL,
    lang text NOT NULL,
    recipient text,
    status text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    remote_id text,
    url text,
    note text,
    error text,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    {CLAIM_COLUMNS},
    FOREIGN KEY (incident, seq) REFERENCES posts (incident, seq)
);
CREATE INDEX deliveries_post ON deliveries (incident, seq, channel, lang);
CREATE INDEX deliveries_claim ON deliveries (claim_owner) WHERE claim_owner IS NOT NULL;
CREATE TABLE rehearsals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    playbook text NOT NULL,
    at timestamptz NOT NULL,
    passed boolean NOT NULL,
    summary json NOT NULL
)
"""

# What each version adds to the one before: a new database runs SCHEMA, then each of these in order.
MIGRATIONS: dict[int, str] = {
    # A post a worker published because an update was overdue, and until when its failures are the workers' to
    # retry; the workers' heartbeats (a stopped one is marked, not deleted: a role may be denied DELETE); the
    # duties done once, `id` keeping the order they were first taken; each monitor's changes of state, numbered
    # per monitor (the key two watchers recording one change collide on). Version 2 is also the first to store
    # the status `superseded`, which an older reader could not read: it refuses the database instead.
    2: """
ALTER TABLE posts ADD COLUMN holding boolean NOT NULL DEFAULT false, ADD COLUMN handed_until timestamptz;
CREATE TABLE workers (
    token text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    home text NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at timestamptz NOT NULL,
    doing text NOT NULL,
    stopped_at timestamptz
);
CREATE TABLE duties (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key text NOT NULL UNIQUE,
    kind text NOT NULL,
    incident text,
    playbook text,
    taken_at timestamptz NOT NULL,
    taken_by text NOT NULL,
    attempts integer NOT NULL,
    done_at timestamptz,
    ok boolean,
    outcome text,
    hold_owner text,
    hold_until timestamptz
);
CREATE INDEX duties_incident ON duties (incident);
CREATE TABLE monitor_changes (
    playbook text NOT NULL,
    monitor text NOT NULL,
    seq integer NOT NULL,
    state text NOT NULL CHECK (state IN ('up', 'down')),
    since timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    detail text NOT NULL,
    recorded_by text NOT NULL,
    PRIMARY KEY (playbook, monitor, seq)
)
""",
}


class NoLedgerYet(LedgerError):
    """The database is reachable and has no ledger's tables: nothing was ever published to it."""


def connect(url: str, *, create: bool, readonly: bool) -> Connection:
    """A connection to the ledger's database (in autocommit: each write opens its own transaction), once its
    schema is one this version knows; the tables are created first when the database has none and `create`.

    LedgerError when the server cannot be reached, the login is refused, or the ledger cannot be trusted.
    """
    options: dict[str, Any] = {}
    if "connect_timeout" not in conninfo_to_dict(url):
        options["connect_timeout"] = CONNECT_TIMEOUT
    try:
        db = psycopg.connect(url, autocommit=True, row_factory=dict_row, **options)
    except psycopg.Error as exc:
        raise LedgerError(f"cannot connect to the ledger {shown(url)}: {describe(exc)}; nothing was sent. Check "
                          "the URL, the password (in the URL, ${NAME}, PGPASSWORD or ~/.pgpass) and that the "
                          "server is up") from None
    try:
        # Claims' leases are compared with this process's clock, and their times shown in UTC.
        db.execute("SET TIME ZONE 'UTC'")
        if readonly:
            db.execute("SET default_transaction_read_only = on")
        _prepare(db, url, create=create and not readonly, migrate=not readonly)
    except BaseException:
        db.close()
        raise
    return db


def describe(exc: psycopg.Error) -> str:
    """The server's or libpq's own words, on one line, secrets masked."""
    return secrets.excerpt(str(exc) or type(exc).__name__, 300)


def _prepare(db: Connection, url: str, *, create: bool, migrate: bool) -> None:
    where = shown(url)
    found = _tables(db)
    if not found and create:
        try:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                # Another machine may have created them while this one waited for the lock.
                if not _tables(db):
                    for statement in SCHEMA.split(";"):
                        db.execute(statement.encode())
                    db.execute("INSERT INTO meta VALUES ('schema', '1')")
                    _migrate(db, 1)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise LedgerError(
                f"cannot create the ledger's tables in {where} ({describe(exc)}); nothing was sent. Run the first "
                "command once as a role that may create tables in the database (its owner), or grant this one "
                "CREATE on its schema"
            ) from None
        found = _tables(db)
    if not found:
        raise NoLedgerYet(f"no ledger in the database {where}: nothing has been published to it yet (the first "
                          "trigger creates its tables)")
    _refuse_missing([name for name in TABLES if name not in found], where)
    version = _version(db, where)
    if version < SCHEMA_VERSION and migrate:
        version = _upgrade(db, where, version)
    if version >= 2:
        _refuse_missing([name for name in WORKER_TABLES if name not in _tables(db)], where)


def _version(db: Connection, where: str) -> int:
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    return known_schema(str(row["value"]) if row is not None else "none", where, SCHEMA_VERSION)


def _upgrade(db: Connection, where: str, version: int) -> int:
    """Bring the database from `version` to SCHEMA_VERSION, once, whichever machines open it at this moment."""
    try:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            # Another machine may have brought it up while this one waited for the lock.
            found = _version(db, where)
            if found < SCHEMA_VERSION:
                _migrate(db, found)
                log.warning("the ledger %s was brought from schema %d to %d (the workers' and monitors' "
                            "records); crisis-playbook versions older than this one no longer write it", where, found,
                            SCHEMA_VERSION)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise LedgerError(
            f"the ledger {where} is of schema {version} and this crisis-playbook needs {SCHEMA_VERSION}, but this "
            f"role may not change its tables ({describe(exc)}); nothing was sent. Run 'playbook ledger init' once "
            "as the tables' owner, then run the command again"
        ) from None
    return SCHEMA_VERSION


def _migrate(db: Connection, version: int) -> None:
    """Run each migration after `version`, inside the caller's transaction, and record the new version."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[target].split(";"):
            db.execute(statement.encode())
    db.execute("UPDATE meta SET value=%s WHERE key='schema'", (str(SCHEMA_VERSION),))


def _refuse_missing(missing: list[str], where: str) -> None:
    if missing:
        raise LedgerError(
            f"the ledger {where} is damaged: its table{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} missing; nothing was sent, and the tables are not made again "
            "over what is left (that could post everything again). Restore the database from backup"
        )


def _tables(db: Connection) -> set[str]:
    """The ledger's tables found in the connection's search path (its first schema, usually public)."""
    rows = db.execute("SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                      " WHERE c.relkind = 'r' AND c.relname = ANY(%s) AND n.nspname = current_schema()",
                      (list(TABLES + WORKER_TABLES),))
    return {str(r["name"]) for r in rows}
