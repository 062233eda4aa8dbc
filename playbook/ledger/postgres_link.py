"""The PostgreSQL ledger's connection: one transaction a write, and a bounded wait when the server goes away.

A server restarting or out of reach for a moment (a failover, a network blip) should not stop a run that is
sending: a write that lost its connection waits for the server, up to `patience`, and runs again once it is
back, but only when running it again cannot record a thing twice. A write whose COMMIT went unanswered may
or may not have been recorded: those that must not be recorded twice (a new incident, a new post) stop with
an error instead, which leaves nothing sent that is not recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import psycopg
from psycopg import errors

from playbook.errors import LedgerError, LedgerWriteError
from playbook.ledger.location import shown
from playbook.ledger.postgres_schema import connect, describe

if TYPE_CHECKING:
    from playbook.ledger.postgres_schema import Connection

T = TypeVar("T")
# A transaction that met a deadlock or a serialisation failure is run again, this many times in all.
ATTEMPTS = 5
# How long a write waits at least for a server that went away; a run waits until its deadline if that is later
# (PostgresLedger.bear_with_outages_until).
PATIENCE = timedelta(seconds=30)
log = logging.getLogger("playbook.ledger")


class Link:
    """The connection to the ledger's database (autocommit: each write opens its own transaction)."""

    def __init__(self, url: str, *, create: bool, readonly: bool, patience: timedelta = PATIENCE) -> None:
        self._url = url
        self.where = shown(url)
        self.readonly = readonly
        self.patience = patience
        self.db = connect(url, create=create, readonly=readonly)

    def close(self) -> None:
        self.db.close()

    def read(self, work: Callable[[Connection], T]) -> T:
        """`work`'s reading, run again on a new connection if the server went away and came back."""
        for attempt in (1, 2):
            try:
                return work(self.db)
            except psycopg.OperationalError as exc:
                if not self._lost() or attempt == 2:
                    raise LedgerError(f"the ledger {self.where} cannot be read ({describe(exc)})") from None
                self._reconnect(exc)
        raise AssertionError("unreachable")

    def write(self, work: Callable[[Connection], T], *, again: bool = True) -> T:
        """Run `work` in one transaction; again if the server chose it as a deadlock's victim, or once the
        server is back after it went away, unless `again` is False and its COMMIT went unanswered."""
        for attempt in range(1, ATTEMPTS + 1):
            committing = False
            try:
                with self.db.transaction():
                    result = work(self.db)
                    committing = True
                return result
            except (errors.DeadlockDetected, errors.SerializationFailure):
                if attempt == ATTEMPTS:
                    raise LedgerWriteError(f"the ledger {self.where} stayed too busy to write") from None
            except psycopg.OperationalError as exc:
                if not self._lost() or attempt == ATTEMPTS:
                    raise LedgerWriteError(f"the ledger {self.where} cannot be written ({describe(exc)})") from None
                self._reconnect(exc)
                if committing and not again:
                    raise LedgerWriteError(
                        f"the ledger {self.where} went away while recording this ({describe(exc)}) and is back; "
                        "whether it was recorded is unknown: check with 'playbook status' before running the "
                        "command again") from None
            except (psycopg.IntegrityError, psycopg.InternalError) as exc:
                raise LedgerWriteError(f"the ledger {self.where} cannot be written ({describe(exc)})") from None
        raise AssertionError("unreachable")

    def _lost(self) -> bool:
        return self.db.closed or self.db.broken

    def _reconnect(self, lost: psycopg.Error) -> None:
        """A new connection once the server answers again; LedgerWriteError if it has not within `patience`."""
        waited = self.patience.total_seconds()
        log.warning("the ledger %s went away (%s): waiting up to %.0f s for it", self.where, describe(lost), waited)
        give_up = time.monotonic() + waited
        while True:
            try:
                self.db = connect(self._url, create=False, readonly=self.readonly)
            except LedgerError:
                if time.monotonic() >= give_up:
                    raise LedgerWriteError(
                        f"the ledger {self.where} went away ({describe(lost)}) and did not come back within "
                        f"{waited:.0f} s; nothing more was sent. Once it is back, 'playbook resume' sends the rest"
                    ) from None
                time.sleep(0.5)
            else:
                log.warning("the ledger %s is back", self.where)
                return
