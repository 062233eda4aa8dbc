"""A run's hold on the ledger: the post claimed for the whole run, its claims renewed while it works and
released at the end, and the one error a run whose tasks died stops with."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from playbook import secrets
from playbook.errors import LedgerWriteError, PlaybookError, RunStopped
from playbook.ledger.contract import Ledger, Post

log = logging.getLogger("playbook.engine")

T = TypeVar("T")


async def while_claimed(ledger: Ledger, post: Post, work: Callable[[], Awaitable[T]]) -> T:
    """Claim the post (ClaimHeld if another process is publishing it), then do `work` while the claims are
    renewed in the background; a task that dies (the ledger cannot be written, a bug) stops the run at once
    with RunStopped, and the claims are released whatever happens."""
    ledger.claim_post(post.incident, post.seq)
    # A database restarting mid-run is waited for while the window lasts: giving up earlier would leave the
    # rest of the post to a `resume` someone has to think of.
    ledger.bear_with_outages_until(post.deadline)
    try:
        async with asyncio.TaskGroup() as group:
            renewal = group.create_task(_renew(ledger))
            result = await work()
            renewal.cancel()
        return result
    except BaseExceptionGroup as stopped:
        error = _stopped(post, stopped)
        # A crash keeps its own traceback as the cause (--debug shows it); the rest need no group around them.
        raise error from error.__cause__
    finally:
        # The lease would lapse anyway: releasing now lets a `resume` start at once.
        with contextlib.suppress(PlaybookError, sqlite3.Error):
            ledger.release()


async def _renew(ledger: Ledger) -> None:
    """Renew this run's claims every third of the lease, whatever the sending tasks are doing."""
    while True:
        await asyncio.sleep(ledger.lease.total_seconds() / 3)
        ledger.renew()


def _stopped(post: Post, group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error to tell for a run whose tasks failed: the user's own kind if it is one, else RunStopped."""
    leaves = list(_leaves(group))
    for leaf in leaves:
        if isinstance(leaf, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
            return leaf
    first = next((leaf for leaf in leaves if isinstance(leaf, PlaybookError)), leaves[0])
    after = (f"the ledger records what went out ('playbook status {post.incident}'); once the cause is "
             f"fixed, 'playbook resume {post.incident}' sends the rest")
    if isinstance(first, LedgerWriteError):
        log.error("%s: run stopped: %s", post.incident, first)
        return RunStopped(f"{first}: the run stopped; {after}")
    if isinstance(first, PlaybookError):
        return first
    log.error("%s: run stopped by a failing task", post.incident, exc_info=first)
    stopped = RunStopped(f"the run stopped: a sending task failed ({type(first).__name__}: "
                         f"{secrets.redact(str(first))}, details in the log); {after}")
    stopped.__cause__ = first
    return stopped


def _leaves(group: BaseException) -> Iterator[BaseException]:
    """The exceptions inside nested exception groups, in order."""
    if isinstance(group, BaseExceptionGroup):
        for inner in group.exceptions:
            yield from _leaves(inner)
    else:
        yield group
