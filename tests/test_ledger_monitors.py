"""The monitors' changes of state in every store: recorded once however many watchers see them, read back per
monitor and per playbook, carried by a migration of the schema.

The contract tests run on each store through test_ledger.py's `store` fixture and a clock moved by hand; the
race runs real processes, as the duties' race in test_ledger_workers.py does.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from playbook import secrets
from playbook.errors import LedgerError
from playbook.ledger import open_ledger
from playbook.ledger.contract import Ledger
from playbook.ledger.duties import MonitorChange
from tests.fakes.postgres import Database
from tests.test_ledger import ANNA, BOB, PLAYBOOK, STORES, Clock, Opener

# The fixture, shared with test_ledger.py: every contract test runs on each store.
from tests.test_ledger import store as store
from tests.test_ledger_workers import race

DOWN = "WhatsApp Business API: major_outage"


def test_a_change_is_recorded_once_and_the_same_state_again_records_nothing(store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    first_failed = clock() - timedelta(seconds=2)

    recorded = anna.record_monitor_change(PLAYBOOK, "provider-status", "down", first_failed, DOWN)

    assert recorded == MonitorChange(PLAYBOOK, "provider-status", 1, "down", first_failed, clock(), DOWN,
                                     "pid 8812 on laptop-anna")
    # Bob's watcher saw the same outage a moment later: Anna recorded it first.
    clock.advance(1)
    assert bob.record_monitor_change(PLAYBOOK, "provider-status", "down", first_failed, DOWN) is None
    assert anna.record_monitor_change(PLAYBOOK, "provider-status", "down", clock(), DOWN) is None
    assert bob.monitor_changes(PLAYBOOK) == [recorded]


def test_alternating_states_are_numbered_one_after_the_other(store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    seen = []
    for ledger, state in ((anna, "down"), (bob, "up"), (bob, "up"), (anna, "down")):
        clock.advance(60)
        seen.append(ledger.record_monitor_change(PLAYBOOK, "cloud-api", state, clock(), f"now {state}"))

    assert [(c.seq, c.state, c.by) if c else None for c in seen] == [
        (1, "down", "pid 8812 on laptop-anna"), (2, "up", "pid 4242 on desk-bob"), None,
        (3, "down", "pid 8812 on laptop-anna")]
    assert [(c.seq, c.state, c.since) for c in anna.monitor_changes(PLAYBOOK)] == [
        (1, "down", Clock().now + timedelta(minutes=1)), (2, "up", Clock().now + timedelta(minutes=2)),
        (3, "down", Clock().now + timedelta(minutes=4))]


def test_monitor_states_gives_each_monitors_latest_change_by_playbook_then_monitor(store: Opener) -> None:
    clock = Clock()
    ledger = store(ANNA, clock)
    assert ledger.monitor_states() == []
    for playbook, monitor, state in (("whatsapp-outage", "webhook-receiver", "down"),
                                     ("whatsapp-outage", "cloud-api", "down"), ("api-outage", "health", "down"),
                                     ("whatsapp-outage", "cloud-api", "up"), ("api-outage", "health", "up"),
                                     ("api-outage", "health", "down")):
        clock.advance(30)
        ledger.record_monitor_change(playbook, monitor, state, clock(), state)

    assert [(c.playbook, c.monitor, c.seq, c.state, c.recorded_at) for c in ledger.monitor_states()] == [
        ("api-outage", "health", 3, "down", clock()),
        ("whatsapp-outage", "cloud-api", 2, "up", clock() - timedelta(seconds=60)),
        ("whatsapp-outage", "webhook-receiver", 1, "down", clock() - timedelta(seconds=150))]


def test_monitor_changes_are_a_playbooks_own_since_a_moment_oldest_first(store: Opener) -> None:
    clock = Clock()
    ledger = store(ANNA, clock)
    start = clock()
    for minutes, playbook, monitor, state in ((0, PLAYBOOK, "provider-status", "down"),
                                              (5, "api-outage", "health", "down"),
                                              (10, PLAYBOOK, "cloud-api", "down"),
                                              (20, PLAYBOOK, "provider-status", "up")):
        ledger.record_monitor_change(playbook, monitor, state, start + timedelta(minutes=minutes), "seen")

    assert [(c.monitor, c.state) for c in ledger.monitor_changes(PLAYBOOK)] == [
        ("provider-status", "down"), ("cloud-api", "down"), ("provider-status", "up")]
    # From a moment on, that moment included: the detection at the incident's detected_at is in its timeline.
    assert [(c.monitor, c.state) for c in ledger.monitor_changes(PLAYBOOK, start + timedelta(minutes=10))] == [
        ("cloud-api", "down"), ("provider-status", "up")]
    assert ledger.monitor_changes(PLAYBOOK, start + timedelta(minutes=21)) == []
    assert ledger.monitor_changes("no-such-playbook") == []


def test_a_secret_in_the_finding_is_masked_in_the_ledger(store: Opener) -> None:
    clock = Clock()
    ledger = store(ANNA, clock)
    secrets.register("EAAG-wa-s3cr3t")

    recorded = ledger.record_monitor_change(PLAYBOOK, "cloud-api", "down", clock(),
                                            "GET /1234567890?access_token=EAAG-wa-s3cr3t: HTTP 401")

    assert recorded is not None and recorded.detail == "GET /1234567890?access_token=***: HTTP 401"
    assert [c.detail for c in ledger.monitor_states()] == ["GET /1234567890?access_token=***: HTTP 401"]


# -- watchers recording one change at the same instant

def _record(ledger: Ledger, clock: Clock) -> tuple[int, str] | None:
    change = ledger.record_monitor_change(PLAYBOOK, "provider-status", "down", clock(), DOWN)
    return None if change is None else (change.seq, change.by)


@pytest.mark.parametrize("kind", sorted(STORES))
def test_watchers_recording_one_change_at_the_same_instant_record_it_once(request: pytest.FixtureRequest,
                                                                        tmp_path: Path, kind: str) -> None:
    location = str(STORES[kind](request, tmp_path))
    open_ledger(location).close()
    results = race(location, _record)
    (winner,) = [r for r in results if r is not None]
    assert results.count(None) == 5 and winner[0] == 1
    reader = open_ledger(location, readonly=True)
    try:
        assert [(c.seq, c.state, c.by) for c in reader.monitor_changes(PLAYBOOK)] == [(1, "down", winner[1])]
    finally:
        reader.close()


# -- the schema

def test_a_current_ledger_without_the_monitors_table_is_damaged_and_never_rebuilt(
        tmp_path: Path, postgres_database: Database) -> None:
    open_ledger(tmp_path / "state.db").close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("DROP TABLE monitor_changes")
    db.commit()
    db.close()
    open_ledger(postgres_database.url()).close()
    postgres_database.query("DROP TABLE monitor_changes")

    for location in (tmp_path / "state.db", postgres_database.url()):
        for readonly in (False, True):
            with pytest.raises(LedgerError, match="is damaged: its table monitor_changes is missing; nothing was "
                                                  "sent, and the tables are not made again"):
                open_ledger(location, readonly=readonly)
    assert postgres_database.query("SELECT to_regclass('monitor_changes')") == [(None,)]
