"""The SQLite file's records in the neutral form of archive.py, and a whole history written into a new file."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from playbook.ledger.archive import FLAGS, KINDS, OBJECTS, OPTIONAL_FLAGS, ORDER, Record, StoreInfo
from playbook.ledger.sqlite import SqliteLedger
from playbook.ledger.sqlite_file import transaction


def records(store: SqliteLedger) -> Iterator[Record]:
    for kind, (table, columns) in _present(store).items():
        for row in store.db.execute(f"SELECT * FROM {table} ORDER BY {ORDER[kind]}"):
            present = row.keys()
            # A ledger of an older schema, read as it is, lacks the later columns: they are empty.
            yield {"record": kind, **{c: _neutral(c, row[c] if c in present else None) for c in columns}}


def load(store: SqliteLedger, items: Iterable[Record]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    with transaction(store.db, store.path) as db:
        for item in items:
            kind = item["record"]
            table, columns = KINDS[kind]
            db.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                       [_stored(c, item.get(c)) for c in columns])
            counts[kind] += 1
    return {kind: counts[kind] for kind in KINDS}


def info(store: SqliteLedger) -> StoreInfo:
    version = store.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    present = _present(store)
    counts = {kind: int(store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) if kind in present else 0
              for kind, (table, _) in KINDS.items()}
    # The write-ahead log holds the latest commits until SQLite folds them into the file.
    size = sum(p.stat().st_size for p in (store.path, store.path.with_name(store.path.name + "-wal")) if p.exists())
    return StoreInfo("SQLite file", str(store.path), int(version[0]) if version else 0, size, counts)


def _present(store: SqliteLedger) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The kinds whose table the file has: a ledger of an older schema, read as it is, lacks the duties'."""
    tables = {str(r[0]) for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return {kind: found for kind, found in KINDS.items() if found[0] in tables}


def _neutral(column: str, value: Any) -> Any:
    if column in OPTIONAL_FLAGS and value is not None:
        return bool(value)
    if column in FLAGS:
        return bool(value)
    if column in OBJECTS and value is not None:
        return json.loads(value)
    return value


def _stored(column: str, value: Any) -> Any:
    if column in OPTIONAL_FLAGS and value is not None:
        return int(bool(value))
    if column in FLAGS:
        return int(bool(value))
    if column in OBJECTS and value is not None:
        return json.dumps(value, ensure_ascii=False)
    return value
