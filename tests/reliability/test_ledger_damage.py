"""A ledger deleted, emptied, truncated or damaged: one clear line, exit 2, nothing sent, and a way back.

test_ledger.py covers a ledger removed with its journal and one overwritten with text; these are the other
ways a file is lost or broken, and the recovery each message prescribes, followed to the letter.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from playbook.home.starter import write_starter
from tests.conftest import Result, run_cli
from tests.fakes.http import WebhookSink, use_webhooks

PLAYBOOK = "whatsapp-outage"


def checkpointed(db: Path) -> None:
    """Fold the journal into the file, as a quiet ledger is: every page of the data is in state.db itself."""
    connection = sqlite3.connect(db)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def deliveries_root_page(db: Path) -> int:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(connection.execute("SELECT rootpage FROM sqlite_master WHERE name='deliveries'").fetchone()[0])
    finally:
        connection.close()


def deleted_leaving_its_journal(db: Path) -> None:
    db.unlink()
    # A journal (its header, here) as a process killed mid-write leaves it: it must not pass for a ledger.
    (db.parent / "state.db-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(60))
    (db.parent / "state.db-shm").write_bytes(bytes(32768))


def emptied(db: Path) -> None:
    db.write_bytes(b"")


def truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def damaged_page(db: Path) -> None:
    # The first query a command makes reads the incidents only: damage to the deliveries must be found too.
    page = deliveries_root_page(db)
    data = bytearray(db.read_bytes())
    data[(page - 1) * 4096 : page * 4096] = random.Random(page).randbytes(4096)
    db.write_bytes(bytes(data))


def garbage_journal(db: Path) -> None:
    # The last commits live in the journal until SQLite folds them in: a journal that is not SQLite's own
    # would be ignored, and those commits silently lost.
    (db.parent / "state.db-wal").write_bytes(random.Random(7).randbytes(8192))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "deleted-journal-left": deleted_leaving_its_journal,
    "zero-length": emptied,
    "truncated": truncated,
    "damaged-page": damaged_page,
    "garbage-journal": garbage_journal,
}


# One worker runs this module, so the ledger at rest (three triggers) is built once, not once per worker.
pytestmark = pytest.mark.xdist_group("ledger-damage")


@pytest.fixture(scope="module")
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as started:
        yield started


@pytest.fixture(scope="module")
def at_rest(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> tuple[Path, str]:
    """A home whose ledger records three incidents sent to three webhooks, quietly at rest (no journal)."""
    home = tmp_path_factory.mktemp("at-rest") / "home"
    write_starter(home)
    use_webhooks(home, sink, ["ops", "partners", "press"])
    first = run_cli("trigger", PLAYBOOK, "--json", home=home)
    assert first.code == 0, first.output
    for _ in range(2):  # more incidents: a ledger of several pages
        assert run_cli("trigger", PLAYBOOK, "--new", home=home).code == 0
    checkpointed(home / ".playbook" / "state.db")
    for leftover in (home / ".playbook").glob("state.db-*"):
        leftover.unlink()
    return home, str(json.loads(first.stdout)["incident"])


@pytest.fixture
def published(at_rest: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    """A copy of that home for one test to damage."""
    home = tmp_path / "home"
    shutil.copytree(at_rest[0], home)
    return home, at_rest[1]


def one_line(result: Result) -> str:
    assert result.code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_lost_or_broken_ledger_is_one_line_for_every_command_and_nothing_is_sent(
        published: tuple[Path, str], sink: WebhookSink, damage: str) -> None:
    home, incident = published
    db = home / ".playbook" / "state.db"
    sent = len(sink.requests())
    DAMAGE[damage](db)

    said = {one_line(run_cli(*args, home=home)) for args in (
        ("trigger", PLAYBOOK, "--new", "--yes"), ("resume", incident), ("status",), ("timeline", incident))}

    assert len(said) == 1, said
    (line,) = said
    expected = {
        "deleted-journal-left": f"error: the ledger {db} has disappeared (it was created on ",
        "zero-length": f"error: the ledger {db} is empty (it was created on ",
        "truncated": f"error: the ledger {db} cannot be read (",
        "damaged-page": f"error: the ledger {db} cannot be read (",
        "garbage-journal": f"error: the ledger {db} cannot be read (its journal state.db-wal is damaged",
    }[damage]
    assert line.startswith(expected), line
    assert len(sink.requests()) == sent


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_the_recovery_each_error_prescribes_works(published: tuple[Path, str], damage: str) -> None:
    home, incident = published
    db = home / ".playbook" / "state.db"
    backup = home.parent / "backup.db"
    shutil.copy(db, backup)
    DAMAGE[damage](db)
    line = one_line(run_cli("status", home=home))

    # Restoring the backup brings the incident back as it was.
    assert re.search(r"[Rr]estore (it|the ledger) from backup", line), line
    for leftover in (home / ".playbook").glob("state.db*"):
        if not leftover.name.endswith(".created"):
            leftover.unlink()
    shutil.copy(backup, db)
    restored = run_cli("status", incident, "--json", home=home)
    assert restored.code == 0, restored.output
    assert json.loads(restored.stdout)["incidents"][0]["id"] == incident

    # Or, once the remote channels are checked, start a new ledger by removing exactly what the error names.
    DAMAGE[damage](db)
    named = re.search(r"delete (?:it and )?(/\S+\.created) to start a new", line)
    assert named, line
    if db.exists():
        db.rename(home.parent / "damaged.db")
    for leftover in (home / ".playbook").glob("state.db-*"):
        leftover.unlink()
    Path(named[1]).unlink()
    fresh = run_cli("trigger", PLAYBOOK, "--yes", "--json", home=home)
    assert fresh.code == 0, fresh.output
