"""Moving and keeping a ledger: every record in one neutral form, a store's description, and a whole copy.

A record is a dict: "record" names its kind (incident, post, delivery, rehearsal, duty, monitor_change), the
other keys are its columns. Times are ISO 8601 in UTC to the millisecond, flags are booleans, variables and
texts are objects: the same whichever store wrote them, so that a copy from SQLite to PostgreSQL and back is
exact. Claims, a duty's hold and the workers' heartbeats are not records: they belong to the processes of the
store they were made in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from playbook.errors import LedgerError
from playbook.ledger.sqlite import SqliteLedger
from playbook.ledger.sqlite_file import iso as written

if TYPE_CHECKING:
    from playbook.ledger.postgres import PostgresLedger

    Store = SqliteLedger | PostgresLedger

Record = dict[str, Any]

# Each kind of record, its table and its columns, in the order a copy writes them (posts after incidents...).
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "incident": ("incidents", ("id", "playbook", "drill", "open", "detected_at", "opened_at", "closed_at", "phase",
                               "vars", "operator")),
    "post": ("posts", ("incident", "seq", "phase", "issued_at", "deadline", "next_update_at", "vars", "operator",
                       "texts", "holding", "handed_until")),
    "delivery": ("deliveries", ("key", "incident", "seq", "phase", "channel", "lang", "recipient", "status",
                                "attempts", "remote_id", "url", "note", "error", "created_at", "started_at",
                                "finished_at")),
    "rehearsal": ("rehearsals", ("playbook", "at", "passed", "summary")),
    "duty": ("duties", ("key", "kind", "incident", "playbook", "taken_at", "taken_by", "attempts", "done_at", "ok",
                        "outcome")),
    "monitor_change": ("monitor_changes", ("playbook", "monitor", "seq", "state", "since", "recorded_at", "detail",
                                           "recorded_by")),
}
# The order each kind is read in: a copy keeps it (rehearsals: the last one is the latest).
ORDER = {"incident": "opened_at, id", "post": "incident, seq", "delivery": "incident, seq, key", "rehearsal": "id",
         "duty": "id", "monitor_change": "playbook, monitor, seq"}
TIMES = frozenset({"detected_at", "opened_at", "closed_at", "issued_at", "deadline", "next_update_at", "created_at",
                   "started_at", "finished_at", "at", "handed_until", "taken_at", "done_at", "since",
                   "recorded_at"})
FLAGS = frozenset({"drill", "open", "passed", "holding"})
# A flag that may be unknown yet: a duty's `ok` until it is finished.
OPTIONAL_FLAGS = frozenset({"ok"})
OBJECTS = frozenset({"vars", "texts", "summary"})


@dataclass(frozen=True)
class StoreInfo:
    """What `playbook ledger info` says of a store."""

    store: str
    where: str
    schema: int
    size: int
    counts: Mapping[str, int]
    server: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"store": self.store, "where": self.where, "schema": self.schema, "size_bytes": self.size,
                "server": self.server, "counts": dict(self.counts)}


def iso(moment: datetime | str | None) -> str | None:
    """A moment in the records' form (SQLite already writes it so)."""
    if moment is None or isinstance(moment, str):
        return moment
    return written(moment)


def records(store: Store) -> Iterator[Record]:
    """Every record of the store, kind after kind in KINDS' order, each in its order."""
    if isinstance(store, SqliteLedger):
        from playbook.ledger import sqlite_archive

        return sqlite_archive.records(store)
    from playbook.ledger import postgres_archive

    return postgres_archive.records(store)


def info(store: Store) -> StoreInfo:
    if isinstance(store, SqliteLedger):
        from playbook.ledger import sqlite_archive

        return sqlite_archive.info(store)
    from playbook.ledger import postgres_archive

    return postgres_archive.info(store)


def copy(source: Store, target: Store) -> dict[str, int]:
    """Copy every record of `source` into `target`, in one transaction: how many of each kind.

    LedgerError, and nothing copied, when the target already holds records (a copy never merges two
    histories) or when the source has deliveries in flight under a live claim (a run is still going on).
    """
    held = [incident.id for incident in source.open_incidents() if source.holders(incident.id)]
    if held:
        raise LedgerError(f"incident {held[0]} is being published right now (from {source.holders(held[0])[0].owner}):"
                          " copy the ledger once that run has finished; nothing was copied")
    present = {kind: n for kind, n in info(target).counts.items() if n}
    if present:
        found = ", ".join(f"{n} {(kind if n == 1 else KINDS[kind][0]).replace('_', ' ')}"
                          for kind, n in present.items())
        raise LedgerError(f"the ledger {info(target).where} already holds records ({found}): a copy never merges "
                          "two histories; choose an empty database or a new file; nothing was copied")
    if isinstance(target, SqliteLedger):
        from playbook.ledger import sqlite_archive

        return sqlite_archive.load(target, records(source))
    from playbook.ledger import postgres_archive

    return postgres_archive.load(target, records(source))
