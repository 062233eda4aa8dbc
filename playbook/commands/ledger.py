"""The ledger itself: which store is in use, an export of every record, and a copy into another store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from playbook.home.locate import Home
from playbook.ledger import open_store
from playbook.ledger.archive import StoreInfo, copy, info, records
from playbook.ledger.location import is_database_url, shown


def describe(home: Home) -> StoreInfo:
    """The home's ledger: its store, where it is (password masked), schema version, size and record counts."""
    store = open_store(home.state, create=False, readonly=True, environ=home.env)
    try:
        return info(store)
    finally:
        store.close()


def create(home: Home) -> StoreInfo:
    """Make the home's ledger if it does not exist yet (a file, or the tables in a database): its description."""
    store = open_store(home.state, environ=home.env)
    try:
        return info(store)
    finally:
        store.close()


def export(home: Home, write: Callable[[str], object]) -> dict[str, int]:
    """Every record of the home's ledger as JSON Lines, one `write` a line: how many of each kind."""
    store = open_store(home.state, create=False, readonly=True, environ=home.env)
    counts: dict[str, int] = {}
    try:
        for record in records(store):
            write(json.dumps(record, ensure_ascii=False) + "\n")
            counts[record["record"]] = counts.get(record["record"], 0) + 1
    finally:
        store.close()
    return counts


def migrate(home: Home, to: str) -> tuple[dict[str, int], str]:
    """Copy the home's whole ledger into `to` (a postgresql:// URL or a file), which must hold no records yet:
    how many of each kind, and the target as it may be shown."""
    target_state: Path | str = to if is_database_url(to) else Path(to).expanduser()
    source = open_store(home.state, create=False, readonly=True, environ=home.env)
    try:
        target = open_store(target_state, environ=home.env)
        try:
            return copy(source, target), shown(to) if is_database_url(to) else str(target_state)
        finally:
            target.close()
    finally:
        source.close()
