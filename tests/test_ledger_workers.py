"""The workers' records in every store: heartbeats, posts handed to them, duties done once by one of them.

The contract tests run on each store through test_ledger.py's `store` fixture and a clock moved by hand; the
race runs real processes; the migrations start from files and databases as the previous versions wrote them.
"""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from playbook import secrets
from playbook.errors import LedgerError
from playbook.ledger import open_ledger, open_store
from playbook.ledger.archive import info, records
from playbook.ledger.contract import Confirmation, Ledger, NewPost, Owner, delivery_key
from playbook.ledger.duties import ALIVE, DUTY_TRIES, DutyKind
from playbook.ledger.postgres_schema import SCHEMA as POSTGRES_V1
from playbook.ledger.sqlite import SqliteLedger
from playbook.ledger.sqlite_file import ADDED_COLUMNS, SCHEMA_V1
from tests.fakes.postgres import Database
from tests.test_ledger import ANNA, BOB, PLAYBOOK, STORES, Clock, Opener

# The fixture, shared with test_ledger.py: every contract test runs on each store.
from tests.test_ledger import store as store

HOLD = timedelta(minutes=2)


def post(phase: str, intents: tuple[tuple[str, str, str | None], ...] = (), *, holding: bool = False) -> NewPost:
    now = datetime.now(UTC)
    return NewPost(phase, now, now + timedelta(minutes=30), None, {}, intents, holding=holding)


def opened(ledger: Ledger, channels: tuple[str, ...] = ("x",)) -> tuple[str, list[str]]:
    """A new incident whose first post has one pending delivery a channel: its id and their keys."""
    incident, first = ledger.create_incident(PLAYBOOK, datetime.now(UTC), post("investigating", tuple(
        (c, "en", None) for c in channels)), drill=False, allow_concurrent=True)
    ledger.release()
    return incident.id, [delivery_key(incident.id, 1, first.phase, c, "en") for c in channels]


# -- heartbeats

def test_workers_are_listed_while_their_heartbeat_is_recent_and_gone_once_stopped(store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    secrets.register("hunter2-token")
    anna.beat("/srv/comms", clock(), "idle")
    clock.advance(10)
    bob.beat("/home/bob/comms", clock(), "retrying 3 deliveries (token hunter2-token)")

    assert [(w.host, w.pid, w.token, w.home) for w in bob.workers(ALIVE)] == [
        ("laptop-anna", 8812, "laptop-anna:8812:a", "/srv/comms"), ("desk-bob", 4242, "desk-bob:4242:b",
                                                                    "/home/bob/comms")]
    assert bob.workers(ALIVE)[1].doing == "retrying 3 deliveries (token ***)"
    started = clock()
    clock.advance(ALIVE.total_seconds() - 5)  # Anna has not beaten for 35 s, Bob for 25
    bob.beat("/home/bob/comms", started, "idle")
    (alive,) = anna.workers(ALIVE)
    assert (alive.token, alive.started_at, alive.seen_at, alive.doing) == (BOB.token, started, clock(), "idle")
    bob.worker_stopped()
    assert anna.workers(ALIVE) == []
    anna.beat("/srv/comms", clock(), "idle")
    assert [w.token for w in bob.workers(ALIVE)] == [ANNA.token]


# -- posts handed to the workers

def test_a_post_handed_to_the_workers_is_listed_until_its_time_runs_out_and_the_later_time_wins(
        store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    incident, _ = opened(anna)
    until = clock() + timedelta(minutes=30)

    anna.hand_off(incident, 1, until)
    anna.hand_off(incident, 1, until - timedelta(minutes=20))  # an earlier time never shortens it

    (handed,) = bob.handed_off()
    assert (handed.incident, handed.seq, handed.handed_until) == (incident, 1, until)
    assert bob.post(incident, 1).handed_until == until
    anna.hand_off(incident, 1, until + timedelta(minutes=5))
    assert bob.post(incident, 1).handed_until == until + timedelta(minutes=5)
    clock.advance(timedelta(minutes=35).total_seconds())
    assert bob.handed_off() == []


def test_posts_handed_off_are_listed_oldest_first_and_not_once_finished_or_closed(store: Opener) -> None:
    clock = Clock()
    ledger = store(ANNA, clock)
    until = clock() + timedelta(hours=1)
    first, _ = opened(ledger)
    second, _ = opened(ledger)
    third, keys = opened(ledger)
    for incident in (first, second, third):
        ledger.hand_off(incident, 1, until)
    assert [(p.incident, p.seq) for p in ledger.handed_off()] == [(first, 1), (second, 1), (third, 1)]

    ledger.close_incident(first)
    ledger.mark_sent(Confirmation(keys[0], "id-1", None, None, clock()))

    assert [p.incident for p in ledger.handed_off()] == [second]


# -- duties

def test_a_duty_has_one_taker_at_a_time_and_a_lapsed_hold_is_taken_over(store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    key = "reminder:whatsapp-outage-20261130-0900:2"

    assert anna.take_duty(key, DutyKind.REMINDER, incident="inc", playbook=PLAYBOOK, hold=HOLD) is True
    assert bob.take_duty(key, DutyKind.REMINDER, incident="inc", playbook=PLAYBOOK, hold=HOLD) is False
    # Its taker too: a take is one attempt, never two at once.
    assert anna.take_duty(key, DutyKind.REMINDER, incident="inc", playbook=PLAYBOOK, hold=HOLD) is False

    clock.advance(HOLD.total_seconds())  # Anna died while reminding
    assert bob.take_duty(key, DutyKind.REMINDER, incident="inc", playbook=PLAYBOOK, hold=HOLD) is True
    anna.finish_duty(key, ok=True, outcome="too late: not hers any more")
    (duty,) = anna.duties("inc")
    assert (duty.key, duty.kind, duty.incident, duty.playbook, duty.taken_by, duty.taken_at, duty.attempts) == (
        key, DutyKind.REMINDER, "inc", PLAYBOOK, "pid 4242 on desk-bob", clock(), 2)
    assert (duty.done_at, duty.ok, duty.outcome) == (None, None, None)


def test_a_failed_duty_is_taken_again_after_a_growing_wait_up_to_its_tries_and_a_done_one_never(
        store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    secrets.register("s3cr3t-webhook")

    def take(ledger: Ledger, key: str, tries: int = 2) -> bool:
        return ledger.take_duty(key, DutyKind.HOLDING, incident=None, playbook=PLAYBOOK, hold=HOLD, tries=tries)

    assert take(anna, "holding:1")
    anna.finish_duty("holding:1", ok=False, outcome="POST https://hooks.example/s3cr3t-webhook: 503")
    # Not at once: the channel gets 30 s to come back.
    assert not take(bob, "holding:1")
    clock.advance(29)
    assert not take(bob, "holding:1")
    clock.advance(1)
    assert take(bob, "holding:1")
    bob.finish_duty("holding:1", ok=False, outcome="503 again")
    clock.advance(3600)
    assert not take(anna, "holding:1")  # two attempts, two failures: given up

    assert take(anna, "holding:2")
    clock.advance(10)
    finished_at = clock()
    anna.finish_duty("holding:2", ok=True, outcome="published post 3")
    clock.advance(HOLD.total_seconds() * 10)
    assert not take(bob, "holding:2") and not take(anna, "holding:2")

    failed, done = bob.duties()
    assert (failed.attempts, failed.ok, failed.outcome, failed.taken_by) == (2, False, "503 again",
                                                                             "pid 4242 on desk-bob")
    assert (done.attempts, done.ok, done.outcome, done.done_at) == (1, True, "published post 3", finished_at)
    assert bob.duties("another-incident") == []

    # With the default five tries, the waits double: 30 s, 1, 2 then 4 minutes.
    waits = []
    assert take(anna, "reminder:1", DUTY_TRIES)
    for _ in range(DUTY_TRIES - 1):
        anna.finish_duty("reminder:1", ok=False, outcome="Slack answered 500")
        waited = 0
        while not take(anna, "reminder:1", DUTY_TRIES):
            clock.advance(10)
            waited += 10
        waits.append(waited)
    assert waits == [30, 60, 120, 240]
    anna.finish_duty("reminder:1", ok=False, outcome="Slack answered 500")
    clock.advance(3600)
    assert not take(anna, "reminder:1", DUTY_TRIES)


def test_finish_duty_masks_secrets_in_the_outcome(store: Opener) -> None:
    ledger = store(ANNA, Clock())
    secrets.register("s3cr3t-webhook")
    ledger.take_duty("rehearsal:outage:2026-11-30", DutyKind.REHEARSAL, incident=None, playbook="outage", hold=HOLD)
    ledger.finish_duty("rehearsal:outage:2026-11-30", ok=False, outcome="https://hooks.example/s3cr3t-webhook: 404")

    assert [d.outcome for d in ledger.duties()] == ["https://hooks.example/***: 404"]


def test_a_posts_holding_flag_is_recorded_with_it(store: Opener) -> None:
    ledger = store(ANNA, Clock())
    incident, _ = opened(ledger, ())
    ledger.add_post(incident, post("identified", holding=True))

    assert [(p.seq, p.holding, p.handed_until) for p in ledger.posts(incident)] == [(1, False, None), (2, True, None)]


# -- processes taking one duty at the same instant

def _racer(location: str, number: int, act: Callable[[Ledger, Clock], Any], ready: Any, start: Any,
           outcomes: Any) -> None:
    ledger = open_ledger(location, owner=Owner(f"machine-{number}", number, f"machine-{number}"), clock=Clock(),
                         create=False)
    ready.put(number)
    start.wait()
    try:
        outcomes.put(act(ledger, Clock()))
    finally:
        ledger.close()


def race(location: str, act: Callable[[Ledger, Clock], Any], racers: int = 6) -> list[Any]:
    """`racers` processes, each a machine with the ledger already open, doing `act` at the same instant: what
    each got. The race is the act, not the opening."""
    fork = multiprocessing.get_context("fork")
    ready, start, outcomes = fork.Queue(), fork.Event(), fork.Queue()
    processes = [fork.Process(target=_racer, args=(location, n, act, ready, start, outcomes))
                 for n in range(racers)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=60)
    start.set()
    for process in processes:
        process.join(timeout=60)
    return [outcomes.get(timeout=5) for _ in processes]


def _take(ledger: Ledger, _: Clock) -> bool:
    return ledger.take_duty("reminder:inc:2", DutyKind.REMINDER, incident="inc", playbook=PLAYBOOK, hold=HOLD)


@pytest.mark.parametrize("kind", sorted(STORES))
def test_processes_taking_one_duty_at_the_same_instant_give_it_to_one(request: pytest.FixtureRequest,
                                                                     tmp_path: Path, kind: str) -> None:
    location = str(STORES[kind](request, tmp_path))
    open_ledger(location).close()
    assert sorted(race(location, _take)) == [False] * 5 + [True]
    reader = open_ledger(location, readonly=True)
    try:
        (duty,) = reader.duties()
        assert duty.attempts == 1
    finally:
        reader.close()


# -- the schema versions before the workers'

def test_a_version_2_sqlite_ledger_is_read_as_it_is_then_migrated_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_V1)
    for table, column in ADDED_COLUMNS[2]:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
    at = "2026-11-25T14:05:00.000+00:00"
    db.execute("INSERT INTO meta VALUES ('schema', '2')")
    db.execute("INSERT INTO incidents (id, playbook, detected_at, opened_at, phase, vars) VALUES ('inc', ?, ?, ?,"
               " 'investigating', '{}')", (PLAYBOOK, at, at))
    db.execute("INSERT INTO posts (incident, seq, phase, issued_at, deadline, vars) VALUES ('inc', 1,"
               " 'investigating', ?, ?, '{}')", (at, at))
    db.execute("INSERT INTO deliveries (key, incident, seq, phase, channel, lang, status, created_at) VALUES"
               " ('inc/1-investigating/x/en', 'inc', 1, 'investigating', 'x', 'en', 'failed', ?)", (at,))
    db.commit()
    db.close()

    reader = SqliteLedger(path, readonly=True)
    assert [(p.seq, p.holding, p.handed_until) for p in reader.posts("inc")] == [(1, False, None)]
    assert (reader.duties(), reader.workers(ALIVE), reader.handed_off()) == ([], [], [])
    assert (reader.monitor_states(), reader.monitor_changes(PLAYBOOK)) == ([], [])
    # Exported as it is: the post's later columns empty, no duties.
    exported = list(records(reader))
    assert [(r["record"], r.get("holding"), r.get("handed_until")) for r in exported] == [
        ("incident", None, None), ("post", False, None), ("delivery", None, None)]
    assert (info(reader).counts["duty"], info(reader).counts["monitor_change"]) == (0, 0)
    reader.close()
    clock = Clock()
    ledger = SqliteLedger(path, clock=clock, owner=ANNA)
    try:
        assert ledger.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "3"
        assert [d.status for d in ledger.deliveries("inc")] == ["failed"]
        ledger.hand_off("inc", 1, clock() + HOLD)
        assert [p.handed_until for p in ledger.handed_off()] == [clock() + HOLD]
        assert ledger.take_duty("holding:inc", DutyKind.HOLDING, incident="inc", playbook=PLAYBOOK, hold=HOLD)
        assert ledger.record_monitor_change(PLAYBOOK, "cloud-api", "down", clock(), "BLOCKED") is not None
        assert [(c.monitor, c.seq) for c in ledger.monitor_states()] == [("cloud-api", 1)]
    finally:
        ledger.close()


def test_a_version_1_postgresql_ledger_is_read_as_it_is_and_migrated_by_the_first_writer(
        postgres_database: Database, caplog: pytest.LogCaptureFixture) -> None:
    for statement in POSTGRES_V1.split(";"):
        postgres_database.query(statement)
    postgres_database.query("INSERT INTO meta VALUES ('schema', '1')")
    postgres_database.query("INSERT INTO incidents (id, playbook, drill, detected_at, opened_at, phase, vars) VALUES"
                            " ('inc', %s, false, now(), now(), 'investigating', '{}')", PLAYBOOK)
    postgres_database.query("INSERT INTO posts (incident, seq, phase, issued_at, deadline, vars) VALUES ('inc', 1,"
                            " 'investigating', now(), now(), '{}')")
    url = postgres_database.url()

    reader = open_store(url, readonly=True)
    try:
        assert [(p.seq, p.holding, p.handed_until) for p in reader.posts("inc")] == [(1, False, None)]
        assert (reader.duties(), reader.workers(ALIVE), reader.handed_off()) == ([], [], [])
        assert (reader.monitor_states(), reader.monitor_changes(PLAYBOOK)) == ([], [])
        exported = list(records(reader))
        assert [(r["record"], r.get("holding"), r.get("handed_until")) for r in exported] == [
            ("incident", None, None), ("post", False, None)]
        assert (info(reader).counts["duty"], info(reader).counts["monitor_change"]) == (0, 0)
    finally:
        reader.close()
    assert postgres_database.query("SELECT value FROM meta") == [("1",)]

    with caplog.at_level(logging.WARNING, logger="playbook.ledger"):
        writer = open_ledger(url, owner=ANNA)
    try:
        assert postgres_database.query("SELECT value FROM meta") == [("2",)]
        assert [(p.incident, p.seq, p.holding) for p in writer.posts("inc")] == [("inc", 1, False)]
        assert writer.take_duty("holding:inc", DutyKind.HOLDING, incident="inc", playbook=PLAYBOOK, hold=HOLD)
        assert writer.record_monitor_change(PLAYBOOK, "cloud-api", "down", datetime.now(UTC), "BLOCKED") is not None
        assert [(c.monitor, c.seq) for c in writer.monitor_states()] == [("cloud-api", 1)]
    finally:
        writer.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"the ledger {url.replace(postgres_database.server.password, '***')} was brought from schema 1 to 2 (the "
        "workers' and monitors' records); crisis-playbook versions older than this one no longer write it"]
    # A second writer finds it current and changes nothing.
    open_ledger(url, owner=BOB).close()
    assert postgres_database.query("SELECT value FROM meta") == [("2",)]


def test_a_current_ledger_without_the_workers_tables_is_damaged_and_never_rebuilt(
        tmp_path: Path, postgres_database: Database) -> None:
    SqliteLedger(tmp_path / "state.db").close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("DROP TABLE duties")
    db.commit()
    db.close()
    open_ledger(postgres_database.url()).close()
    postgres_database.query("DROP TABLE workers")

    for location in (tmp_path / "state.db", postgres_database.url()):
        for readonly in (False, True):
            with pytest.raises(LedgerError, match=r"is damaged: its table (duties|workers) is missing; nothing was "
                                                  "sent, and the tables are not made again"):
                open_ledger(location, readonly=readonly)
    assert postgres_database.query("SELECT to_regclass('workers')") == [(None,)]
