"""`playbook worker`: the long-running process that retries, reminds, holds and rehearses."""

# No `from __future__ import annotations` in the CLI: typer would eval() every annotation string of every
# command at each start, which doubles the time `playbook --help` spends building the commands.
from typing import Annotated

import typer

from playbook.cli.app import STATE, load_home
from playbook.cli.options import PlaybookIds
from playbook.errors import ExitStatus


def worker(
    once: Annotated[bool, typer.Option("--once", help="Run one pass and exit (for cron and tests): each "
                                                      "delivery handed over gets one attempt.")] = False,
    every: Annotated[str, typer.Option("--every", metavar="DURATION", help="The time between passes (and "
                                                                           "heartbeats).")] = "5s",
) -> None:
    """Keep the promises after the first post: retry what commands hand over, remind the on-call before an
    update is due, publish holding updates, run scheduled rehearsals. Logs to stderr and the home's log;
    SIGTERM stops it cleanly, SIGHUP reloads the home."""
    import asyncio
    import re
    from datetime import timedelta

    from playbook import logs
    from playbook.errors import PlaybookError
    from playbook.timeparse import parse_duration
    from playbook.worker import Worker

    try:
        period = parse_duration(every)
    except ValueError as exc:
        # Fractions of a second too (0.5s): tests and a busy team's worker pass more often than each second.
        fraction = re.fullmatch(r"(\d*\.\d+)s", every.strip())
        if fraction is None:
            raise PlaybookError(f"--every: {exc}") from None
        period = timedelta(seconds=float(fraction.group(1)))
    if period < timedelta(seconds=0.1):
        raise PlaybookError(f"--every: {every} is too short: 0.1s at least")
    load_home().require()
    logs.to_stderr()
    try:
        # The home is made again by SIGHUP: from the same options and environment, re-read.
        asyncio.run(Worker(load_home, every=period, once=once).run())
    except KeyboardInterrupt:
        # Ctrl-C in the foreground: the claims were released on the way out, as on SIGTERM; nothing to resume.
        STATE.told_interrupt = True
        raise typer.Exit(ExitStatus.INTERRUPTED) from None


def watch(
    ids: PlaybookIds = None,
) -> None:
    """Watch the playbooks' monitors in the foreground (a worker watches them too): alert the on-call when one
    sees the outage, with the command that publishes the first notice, or trigger it if the playbook says so;
    alert or resolve on recovery. SIGTERM or Ctrl-C stops it."""
    import asyncio

    from playbook import logs
    from playbook.worker.watch import watch_in_foreground

    home = load_home()
    home.require()
    logs.to_stderr()
    logs.attach(home.log_path)
    try:
        asyncio.run(watch_in_foreground(home, ids or []))
    except KeyboardInterrupt:
        STATE.told_interrupt = True
        raise typer.Exit(ExitStatus.INTERRUPTED) from None
