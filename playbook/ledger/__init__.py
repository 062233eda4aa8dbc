"""The ledger: the record of incidents, their posts and every delivery, before and after it is attempted.

Callers type against `Ledger`, the contract (contract.py), and open a store with `open_ledger`; the store
is chosen by the `--state` value: today a path, a SQLite file (sqlite.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from playbook.ledger.contract import (
    UNFINISHED,
    Claim,
    Confirmation,
    DeliveryRow,
    DeliveryStatus,
    Holder,
    Incident,
    Ledger,
    NewPost,
    Owner,
    Post,
    delivery_key,
    lease_from_env,
    publishing,
    utcnow,
)
from playbook.ledger.sqlite import SqliteLedger
from playbook.ledger.sqlite_file import SCHEMA_V1, SCHEMA_VERSION, created_marker

__all__ = [
    "SCHEMA_V1", "SCHEMA_VERSION", "UNFINISHED", "Claim", "Confirmation", "DeliveryRow", "DeliveryStatus", "Holder",
    "Incident", "Ledger", "NewPost", "Owner", "Post", "SqliteLedger",
    "created_marker", "delivery_key", "lease_from_env", "open_ledger", "publishing", "utcnow",
]


def open_ledger(state: Path, *, create: bool = True, readonly: bool = False,
                clock: Callable[[], datetime] | None = None, owner: Owner | None = None,
                lease: timedelta | None = None) -> Ledger:
    """The ledger at `state`, as this process's owner unless `owner` is given.

    `create`: a missing store is made (not when `readonly`); LedgerError if it cannot be trusted.
    """
    return SqliteLedger(state, create=create, readonly=readonly, clock=clock, owner=owner, lease=lease)
