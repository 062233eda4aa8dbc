"""The ledger: the record of incidents, their posts and every delivery, before and after it is attempted.

Callers type against `Ledger` and its records, the contract (contract.py), and open a store with
`open_ledger`; the store is chosen by the `--state` value: today a path, a SQLite file (sqlite.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from playbook.ledger.contract import Ledger, Owner
from playbook.ledger.sqlite import SqliteLedger

__all__ = ["open_ledger"]


def open_ledger(state: Path, *, create: bool = True, readonly: bool = False,
                clock: Callable[[], datetime] | None = None, owner: Owner | None = None,
                lease: timedelta | None = None) -> Ledger:
    """The ledger at `state`, as this process's owner unless `owner` is given.

    `create`: a missing store is made (not when `readonly`); LedgerError if it cannot be trusted.
    """
    return SqliteLedger(state, create=create, readonly=readonly, clock=clock, owner=owner, lease=lease)
