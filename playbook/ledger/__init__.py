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
from typing import TYPE_CHECKING

from playbook.ledger.contract import Ledger, Owner
from playbook.ledger.location import is_database_url, resolve_url
from playbook.ledger.sqlite import SqliteLedger
from playbook.ledger.sqlite_file import created_marker

if TYPE_CHECKING:
    from playbook.ledger.archive import Store

__all__ = ["open_existing", "open_ledger", "open_store"]


def open_ledger(state: Path | str, *, create: bool = True, readonly: bool = False,
                clock: Callable[[], datetime] | None = None, owner: Owner | None = None,
                lease: timedelta | None = None, environ: Mapping[str, str] | None = None) -> Ledger:
    """The ledger at `state` (a path or a URL), as this process's owner unless `owner` is given.

    `create`: a missing store is made (not when `readonly`); LedgerError if it cannot be trusted. A URL's
    ${NAME} references are read from `environ` (the process's environment unless given).
    """
    return open_store(state, create=create, readonly=readonly, clock=clock, owner=owner, lease=lease,
                      environ=environ)


def open_store(state: Path | str, *, create: bool = True, readonly: bool = False,
               clock: Callable[[], datetime] | None = None, owner: Owner | None = None,
               lease: timedelta | None = None, environ: Mapping[str, str] | None = None) -> Store:
    """open_ledger, typed as the store it is: for what only moving a whole ledger needs (archive.py)."""
    if is_database_url(state):
        # Imported here: psycopg is loaded only by the commands that open a PostgreSQL ledger.
        from playbook.ledger.postgres import PostgresLedger

        url = resolve_url(str(state), os.environ if environ is None else environ)
        return PostgresLedger(url, create=create, readonly=readonly, clock=clock, owner=owner, lease=lease)
    return SqliteLedger(Path(state), create=create, readonly=readonly, clock=clock, owner=owner, lease=lease)


def open_existing(state: Path | str, *, readonly: bool = False,
                  environ: Mapping[str, str] | None = None) -> Ledger | None:
    """The ledger at `state`, or None when nothing was ever recorded there (no file, a database without its
    tables). A ledger that was made and is now lost or damaged is still a LedgerError, never None."""
    if is_database_url(state):
        from playbook.ledger.postgres_schema import NoLedgerYet

        try:
            return open_ledger(state, create=False, readonly=readonly, environ=environ)
        except NoLedgerYet:
            return None
    path = Path(state)
    if not path.exists() and not created_marker(path).exists():
        return None
    return open_ledger(path, create=False, readonly=readonly)
