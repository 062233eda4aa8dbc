"""The ledger: the record of incidents, their posts and every delivery, before and after it is attempted.

Callers type against `Ledger` and its records, the contract (contract.py), and open a store with
`open_ledger`; the store is chosen by the `--state` value: a path is a SQLite file (sqlite.py), a
postgresql:// URL a database a team shares (postgres.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from playbook.ledger.contract import Ledger, Owner
from playbook.ledger.location import is_database_url, resolve_url
from playbook.ledger.sqlite import SqliteLedger

__all__ = ["open_ledger"]


def open_ledger(state: Path | str, *, create: bool = True, readonly: bool = False,
                clock: Callable[[], datetime] | None = None, owner: Owner | None = None,
                lease: timedelta | None = None, environ: Mapping[str, str] | None = None) -> Ledger:
    """The ledger at `state` (a path or a URL), as this process's owner unless `owner` is given.

    `create`: a missing store is made (not when `readonly`); LedgerError if it cannot be trusted. A URL's
    ${NAME} references are read from `environ` (the process's environment unless given).
    """
    if is_database_url(state):
        # Imported here: psycopg is loaded only by the commands that open a PostgreSQL ledger.
        from playbook.ledger.postgres import PostgresLedger

        url = resolve_url(str(state), os.environ if environ is None else environ)
        return PostgresLedger(url, create=create, readonly=readonly, clock=clock, owner=owner, lease=lease)
    return SqliteLedger(Path(state), create=create, readonly=readonly, clock=clock, owner=owner, lease=lease)
