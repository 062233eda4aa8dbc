"""A ledger on a disk that fills up mid-run, reproduced for real on a small tmpfs (the tests run as root).

The run ends in bounded time with one line and exit status 4, never hangs, and the ledger says what went
out; once there is room again, `resume` finishes. (tests/test_engine.py injects the same failure in process.)
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import lease_lapsed, run_cli, wait_for
from tests.fakes.http import WebhookSink
from tests.fakes.smtp import SmtpServer
from tests.reliability.test_claims import CONNECTIONS, PLAYBOOK, make_home, statuses


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: room for the start of a run, not for the journal of 3,000 deliveries (SQLite grows it to 4 MB)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"this test mounts a tmpfs and needs root: {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


@pytest.mark.timeout(240)
def test_a_full_disk_ends_the_run_with_one_line_then_resume_finishes_once_there_is_room(
        tmp_path: Path, small_disk: Path) -> None:
    with WebhookSink() as sink, SmtpServer(login=None) as smtp:
        setup = make_home(tmp_path / "home", sink, smtp, recipients=3000)
        db = small_disk / "state.db"
        started = time.monotonic()
        # A short lease: the full disk refuses the release of the claims too, so they lapse instead.
        result = run_cli("--state", str(db), "trigger", PLAYBOOK, "--yes", "--json", home=setup.home, timeout=90,
                         env={"PLAYBOOK_LEASE_SECONDS": "3"})
        took = time.monotonic() - started

        assert result.code == 4, result.output
        (line,) = result.stderr.strip().splitlines()
        assert re.fullmatch(rf"error: the ledger {re.escape(str(db))} cannot be written \(database or disk is full\)"
                            r": the run stopped; the ledger records what went out \('playbook status (\S+)'\); once "
                            r"the cause is fixed, 'playbook resume \1' sends the rest", line), line
        assert took < 60, took
        incident = re.search(r"'playbook resume (\S+)'", line)
        assert incident is not None
        at_stop = statuses(db)
        mailed = Counter(a for m in smtp.messages for a in m.rcpt_tos)
        sent = {a for a, s in at_stop.items() if s == "sent"}
        assert 0 < len(mailed) < len(setup.customers)
        # What the ledger says was sent was; what went out beyond it is recorded as in flight.
        assert sent <= set(mailed)
        assert {at_stop.get(a) for a in set(mailed) - sent} <= {"sending"}
        assert len(set(mailed) - sent) <= CONNECTIONS

        subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True, timeout=30)
        wait_for("the stopped trigger's lease to lapse", lambda: lease_lapsed(db, incident[1]))
        resumed = run_cli("--state", str(db), "resume", incident[1], "--json", home=setup.home, timeout=90)

        assert resumed.code == 0, resumed.output
        mailed = Counter(a for m in smtp.messages for a in m.rcpt_tos)
        assert set(mailed) == set(setup.customers)
        twice = {a for a, n in mailed.items() if n > 1}
        assert twice <= {a for a, s in at_stop.items() if s == "sending"}
        assert set(statuses(db).values()) == {"sent"}


@pytest.mark.timeout(240)
def test_a_ledger_on_a_read_only_disk_is_one_line_and_nothing_is_sent(tmp_path: Path, small_disk: Path) -> None:
    with WebhookSink() as sink, SmtpServer(login=None) as smtp:
        setup = make_home(tmp_path / "home", sink, smtp, recipients=10)
        db = small_disk / "state.db"
        first = run_cli("--state", str(db), "trigger", PLAYBOOK, "--yes", home=setup.home)
        assert first.code == 0, first.output
        sent = len(sink.requests()), smtp.count
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True, timeout=30)

        result = run_cli("--state", str(db), "trigger", PLAYBOOK, "--new", "--yes", home=setup.home)

        assert result.code == 4, result.output
        # The ledger, or the log beside it when SQLite opens the ledger read-only, is the first to refuse.
        (line,) = result.stderr.strip().splitlines()
        assert re.fullmatch(rf"error: the (ledger {re.escape(str(db))}|log {re.escape(str(small_disk))}/playbook\.log)"
                            r" cannot be written \([^)]+\); nothing was sent\. Free some space or fix the permissions"
                            r" of the file and its folder, then run the command again", line), line
        assert (len(sink.requests()), smtp.count) == sent
