"""The PostgreSQL ledger's records in the neutral form of archive.py, and a whole history written into it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Json

from playbook.errors import LedgerError
from playbook.ledger.archive import KINDS, OBJECTS, ORDER, TIMES, Record, StoreInfo, iso
from playbook.ledger.postgres import PostgresLedger
from playbook.ledger.postgres_schema import describe

if TYPE_CHECKING:
    from playbook.ledger.postgres_schema import Connection


def records(store: PostgresLedger) -> Iterator[Record]:
    db = store.link.db
    try:
        # One snapshot for the whole export: what another machine records meanwhile is all in, or all out.
        with db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for kind, (table, columns) in KINDS.items():
                if not _present(db, table):
                    continue
                # Every column there is: a database of an older schema, read as it is, lacks the later ones.
                for row in db.cursor().execute(f"SELECT * FROM {table} ORDER BY {ORDER[kind]}"):
                    yield {"record": kind, **{c: _neutral(c, row.get(c)) for c in columns}}
    except psycopg.OperationalError as exc:
        # Half an archive is worse than none: the caller is told, never handed a shorter history.
        raise LedgerError(f"the ledger {store.where} went away while its records were read ({describe(exc)}); "
                          "read them again once it is back") from None


def load(store: PostgresLedger, items: Iterable[Record]) -> dict[str, int]:
    def work(db: Connection) -> dict[str, int]:
        counts: Counter[str] = Counter()
        # An incident opened with --new beside another open one of its playbook stays outside the rule of one.
        open_kinds: set[tuple[str, bool]] = set()
        for item in items:
            kind = item["record"]
            table, columns = KINDS[kind]
            values = [Json(item.get(c)) if c in OBJECTS and item.get(c) is not None else item.get(c)
                      for c in columns]
            names = list(columns)
            if kind == "incident":
                alongside = bool(item["open"]) and (item["playbook"], bool(item["drill"])) in open_kinds
                if item["open"]:
                    open_kinds.add((item["playbook"], bool(item["drill"])))
                names.append("alongside")
                values.append(alongside)
            db.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})",
                       values)
            counts[kind] += 1
        return {kind: counts[kind] for kind in KINDS}

    return store.link.write(work, again=False)


def info(store: PostgresLedger) -> StoreInfo:
    tables = [table for table, _ in KINDS.values()]
    row = store.link.db.execute(
        "SELECT (SELECT value FROM meta WHERE key='schema') AS schema, current_setting('server_version') AS server,"
        " (SELECT sum(pg_total_relation_size(t)) FROM unnest(%s::text[] || 'meta'::text) AS n,"
        " to_regclass(n) AS t) AS size",
        (tables,)).fetchone()
    assert row is not None
    counts = {}
    for kind, (table, _) in KINDS.items():
        found = store.link.db.execute(f"SELECT count(*) AS n FROM {table}").fetchone() \
            if _present(store.link.db, table) else None
        counts[kind] = int(found["n"]) if found else 0
    return StoreInfo("PostgreSQL", store.where, int(row["schema"]), int(row["size"] or 0), counts,
                     f"PostgreSQL {row['server']}")


def _present(db: Connection, table: str) -> bool:
    row = db.execute("SELECT to_regclass(%s) IS NOT NULL AS found", (table,)).fetchone()
    return bool(row and row["found"])


def _neutral(column: str, value: Any) -> Any:
    if column in TIMES:
        return iso(value)
    # A post of a schema 1 database has no holding flag: it was not one.
    return False if column == "holding" and value is None else value
