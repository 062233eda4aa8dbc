"""The ledger: what a kill, a second trigger, a race, a dry-run, a moved, lost or corrupt ledger leave behind."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from playbook.errors import IncidentError, LedgerError, PlaybookError
from playbook.ledger import open_ledger
from playbook.ledger.contract import (
    ClaimHeld,
    Confirmation,
    Ledger,
    NewPost,
    Owner,
    delivery_key,
    lease_from_env,
    utcnow,
)
from playbook.ledger.sqlite import SqliteLedger
from playbook.ledger.sqlite_file import SCHEMA_V1, SCHEMA_VERSION
from tests.conftest import lease_lapsed, run_cli, wait_for
from tests.fakes.http import Reply, WebhookSink, use_webhooks

PLAYBOOK = "whatsapp-outage"


def cli_command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "playbook", "--home", str(home), *args]


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **extra}




def statuses(db: Path) -> dict[str, str]:
    """Every delivery key of the ledger and its status, read the way `status` reads it."""
    ledger = open_ledger(db, readonly=True)
    try:
        return {row.key: row.status for i in ledger.all_incidents() for row in ledger.deliveries(i.id)}
    finally:
        ledger.close()




# -- through the command line, on the home's ledger (its default store, a SQLite file: the lost and corrupt
# ledgers below are files deleted or overwritten)

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_resume_after_a_kill_sends_what_was_unconfirmed_and_nothing_twice(home: Path, webhook_sink: WebhookSink,
                                                                          sig: signal.Signals) -> None:
    fast, slow = ["fast1", "fast2", "fast3"], ["slow1", "slow2", "slow3"]
    use_webhooks(home, webhook_sink, fast + slow, languages=["en"])
    webhook_sink.delay = 20
    for name in fast:
        webhook_sink.script(name, Reply(delay=0.05))
    db = home / ".playbook" / "state.db"

    def fast_confirmed() -> bool:
        try:
            found = statuses(db)
        except LedgerError:  # not created yet, or created but its tables not yet written
            return False
        return sum(1 for key, status in found.items() if status == "sent") == len(fast)

    # A short lease: after kill -9, resume takes the claims over once it has run out.
    # SIGINT as a terminal leaves it: a suite started in the background (`make test &` from a script) runs
    # with SIGINT ignored, which every child inherits, and a trigger that ignores Ctrl-C runs to its deadline.
    process = subprocess.Popen(cli_command(home, "trigger", PLAYBOOK, "--yes", "--json"),
                               env=cli_env(PLAYBOOK_LEASE_SECONDS="3"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for("the fast channels to be confirmed", fast_confirmed)
        wait_for("the slow channels' requests", lambda: len(webhook_sink.requests()) == len(fast + slow))
    finally:
        os.kill(process.pid, sig)
        # A hang guard, not a speed bound: a loaded machine can take seconds to unwind a run.
        _, stderr = process.communicate(timeout=60)
    incident = json.loads(run_cli("status", "--json", home=home).stdout)["incidents"][0]["id"]
    if sig == signal.SIGINT:
        assert process.returncode == 130
        # The hint names the incident: both commands work as printed.
        assert (f"error: interrupted: 'playbook status {incident}' shows what went out; 'playbook resume "
                f"{incident}' finishes") in stderr
    at_kill = statuses(db)
    confirmed = {key for key, status in at_kill.items() if status == "sent"}
    unconfirmed = set(at_kill) - confirmed
    assert len(confirmed) == 3 and len(unconfirmed) == 3
    assert {status for key, status in at_kill.items() if key in unconfirmed} == {"sending"}

    webhook_sink.delay = 0
    # Ctrl-C releases the claims on the way out; kill -9 leaves them to lapse.
    wait_for("the killed trigger's lease to lapse", lambda: lease_lapsed(db, incident))
    result = run_cli("resume", incident, "--json", home=home)

    assert result.code == 0, result.output
    rows = {d["channel"]: d["status"] for d in json.loads(result.stdout)["deliveries"]}
    assert rows == {**dict.fromkeys(fast, "already-sent"), **dict.fromkeys(slow, "sent")}
    assert set(statuses(db).values()) == {"sent"}
    received = webhook_sink.keys()
    assert set(received) == set(at_kill)
    assert {key for key, count in received.items() if count > 1} <= unconfirmed
    assert all(received[key] == 1 for key in confirmed)
    again = run_cli("resume", incident, home=home)
    assert again.code == 2
    assert "nothing left to send" in again.stderr
    assert webhook_sink.keys() == received


def test_a_second_trigger_is_refused_and_names_the_open_incident(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    # One detection moment for both incidents: their ids share its minute whenever the test runs.
    detected = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
    first = run_cli("trigger", PLAYBOOK, "--json", "--detected-at", detected, home=home)
    incident = json.loads(first.stdout)["incident"]
    second = run_cli("trigger", PLAYBOOK, "--json", home=home)

    assert second.code == 2
    assert second.stdout == ""
    assert second.stderr.strip().splitlines() == [
        f"error: playbook '{PLAYBOOK}' already has an open incident: {incident}; follow it with 'playbook update "
        f"{incident} --phase ...', or pass --new to open a second one"
    ]
    assert len(webhook_sink.requests()) == 2

    third = run_cli("trigger", PLAYBOOK, "--new", "--json", "--detected-at", detected, home=home)
    assert third.code == 0, third.output
    assert json.loads(third.stdout)["incident"] == f"{incident}-2"
    assert len(webhook_sink.requests()) == 4
    listed = json.loads(run_cli("status", "--json", home=home).stdout)["incidents"]
    assert [i["id"] for i in listed] == [incident, f"{incident}-2"]


def test_two_triggers_at_the_same_instant_open_one_incident(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners", "press"])
    webhook_sink.delay = 0.5
    racers = [subprocess.Popen(cli_command(home, "trigger", PLAYBOOK, "--yes", "--json"), env=cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = [(p.wait(timeout=30), *p.communicate()) for p in racers]

    codes = sorted(code for code, _, _ in done)
    assert codes == [0, 2], done
    winner = next(json.loads(out) for code, out, _ in done if code == 0)
    loser = next(err for code, _, err in done if code == 2)
    assert f"already has an open incident: {winner['incident']}" in loser
    ledger = open_ledger(home / ".playbook" / "state.db", readonly=True)
    assert [i.id for i in ledger.all_incidents()] == [winner["incident"]]
    ledger.close()
    assert len(webhook_sink.keys()) == 6
    assert set(webhook_sink.keys().values()) == {1}


def test_dry_run_opens_no_connection_and_records_nothing(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"])
    result = run_cli("trigger", PLAYBOOK, "--dry-run", home=home)
    as_json = run_cli("trigger", PLAYBOOK, "--dry-run", "--json", home=home)

    assert result.code == 0, result.output
    assert "Dry run: nothing was sent and nothing recorded." in result.stdout
    assert "ops" in result.stdout and "partners" in result.stdout
    assert as_json.code == 0, as_json.output
    deliveries = json.loads(as_json.stdout)["deliveries"]
    assert {(d["channel"], d["lang"], d["status"]) for d in deliveries} == {
        (c, lang, "dry-run") for c in ("ops", "partners") for lang in ("fr", "en")}
    assert webhook_sink.connections == 0
    assert not (home / ".playbook").exists()


def test_update_dry_run_sends_and_records_nothing(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    incident = json.loads(run_cli("trigger", PLAYBOOK, "--json", home=home).stdout)["incident"]
    db = home / ".playbook" / "state.db"
    before, connections = statuses(db), webhook_sink.connections
    result = run_cli("update", incident, "--phase", "identified", "--dry-run", home=home)

    assert result.code == 0, result.output
    assert webhook_sink.connections == connections
    assert statuses(db) == before


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_ledger_can_live_outside_the_home(tmp_path: Path, home: Path, webhook_sink: WebhookSink,
                                              how: str) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    elsewhere = tmp_path / "records" / "ledger.db"
    options = ("--state", str(elsewhere)) if how == "option" else ()
    env = {"PLAYBOOK_STATE": str(elsewhere)} if how == "environment" else {}
    result = run_cli(*options, "trigger", PLAYBOOK, "--json", home=home, env=env)

    assert result.code == 0, result.output
    assert elsewhere.is_file()
    assert (tmp_path / "records" / "ledger.db.created").is_file()
    assert not (home / ".playbook").exists()
    incident = json.loads(result.stdout)["incident"]
    assert statuses(elsewhere) and all(key.startswith(incident) for key in statuses(elsewhere))
    seen = json.loads(run_cli(*options, "status", "--json", home=home, env=env).stdout)["incidents"]
    assert [i["id"] for i in seen] == [incident]
    assert json.loads(run_cli("status", "--json", home=home).stdout)["incidents"] == []


def test_a_lost_ledger_is_not_silently_replaced(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    assert run_cli("trigger", PLAYBOOK, home=home).code == 0
    for leftover in (home / ".playbook").glob("state.db*"):
        if not leftover.name.endswith(".created"):
            leftover.unlink()
    sent = len(webhook_sink.requests())

    for args in (("trigger", PLAYBOOK), ("trigger", PLAYBOOK, "--new")):
        result = run_cli(*args, home=home)
        assert result.code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: the ledger {home / '.playbook' / 'state.db'} has disappeared")
        assert "Restore it from backup" in lines[0]
    assert len(webhook_sink.requests()) == sent
    assert not (home / ".playbook" / "state.db").exists()


def test_a_corrupt_ledger_is_one_clear_error(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    db = home / ".playbook" / "state.db"
    db.parent.mkdir()
    db.write_bytes(b"this is not a database, it was overwritten by mistake" * 100)

    for args in (("trigger", PLAYBOOK), ("status",), ("timeline", "whatsapp-outage-20260101-0000")):
        result = run_cli(*args, home=home)
        assert result.code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: the ledger {db} cannot be read (file is not a database); nothing was "
                                   "sent")
    assert webhook_sink.connections == 0


# -- the contract: written against the Ledger's public methods only, so that every store (a PostgreSQL ledger
# shared by several machines) runs the same tests: one more parameter of the `store` fixture.

class Clock:
    """A clock the test moves by hand: leases expire when the test says so, never by waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


LEASE = timedelta(seconds=30)
ANNA = Owner("laptop-anna", 8812, "laptop-anna:8812:a")
BOB = Owner("desk-bob", 4242, "desk-bob:4242:b")

# Where each store lives in a test: a file in the test's folder, or a new database on the test process's
# PostgreSQL server (started on first use); every contract test below runs on each.
STORES: dict[str, Callable[[pytest.FixtureRequest, Path], Path | str]] = {
    "sqlite": lambda request, folder: folder / "state.db",
    "postgresql": lambda request, folder: str(request.getfixturevalue("postgres_url")),
}
Opener = Callable[[Owner, Callable[[], datetime]], Ledger]


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens one new, empty store as seen by an owner with a clock; every ledger it opened is closed at the end."""
    location = STORES[request.param](request, tmp_path)
    opened: list[Ledger] = []

    def open_as(owner: Owner, clock: Callable[[], datetime]) -> Ledger:
        ledger = open_ledger(location, clock=clock, owner=owner, lease=LEASE)
        opened.append(ledger)
        return ledger

    yield open_as
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(store: Opener) -> Ledger:
    """The store as this process sees it, on the real clock."""
    return store(Owner.this_process(), utcnow)


def _first_post(intents: tuple[tuple[str, str, str | None], ...] = ()) -> NewPost:
    now = datetime.now(UTC)
    return NewPost("investigating", now, now + timedelta(minutes=30), None, {}, intents)


def test_an_incident_its_first_post_and_intents_are_recorded_together(ledger: Ledger) -> None:
    # One transaction: a process killed right after opening leaves pending intents that resume finishes.
    incident, post = ledger.create_incident(PLAYBOOK, datetime.now(UTC), _first_post((("x", "fr", None),
                                                                                        ("x", "en", None))),
                                            drill=False, allow_concurrent=False)
    rows = ledger.deliveries(incident.id)
    assert [(r.seq, r.channel, r.lang, r.status) for r in rows] == [(1, "x", "en", "pending"),
                                                                    (1, "x", "fr", "pending")]
    assert ledger.unfinished_posts(incident.id) == [post.seq]


def test_the_ledger_refuses_a_second_open_incident_inside_its_transaction(store: Opener) -> None:
    # Two processes may both pass the early check; the insert itself must still refuse the second.
    first, second = store(ANNA, utcnow), store(BOB, utcnow)
    detected = datetime.now(UTC)
    opened, _ = first.create_incident(PLAYBOOK, detected, _first_post(), drill=False, allow_concurrent=False)
    with pytest.raises(IncidentError, match=f"already has an open incident: {opened.id}"):
        second.create_incident(PLAYBOOK, detected, _first_post(), drill=False, allow_concurrent=False)
    drill, _ = second.create_incident(PLAYBOOK, detected, _first_post(), drill=True, allow_concurrent=False)
    assert drill.id.startswith(f"{PLAYBOOK}-drill-")


def test_one_post_per_phase_change_unless_again_and_none_on_a_closed_incident(ledger: Ledger) -> None:
    incident, _ = ledger.create_incident(PLAYBOOK, datetime.now(UTC), _first_post(), drill=False,
                                         allow_concurrent=False)
    ledger.release()
    now = datetime.now(UTC)
    same = NewPost("investigating", now, now + timedelta(minutes=30), None, {})

    with pytest.raises(IncidentError, match=f"incident {incident.id} is already in phase 'investigating'; pass "
                                            "--again to publish a new update of the same phase"):
        ledger.add_post(incident.id, same)
    assert ledger.add_post(incident.id, same, again=True).seq == 2
    ledger.release()
    ledger.close_incident(incident.id)
    with pytest.raises(IncidentError, match=f"incident {incident.id} is closed"):
        ledger.add_post(incident.id, NewPost("resolved", now, now, None, {}))
    assert [(p.seq, p.phase) for p in ledger.posts(incident.id)] == [(1, "investigating"), (2, "investigating")]


def recipients_post(ledger: Ledger, count: int = 4) -> tuple[str, list[str]]:
    """An incident whose first post lists `count` email recipients (pending): its id and their keys."""
    incident, post = ledger.create_incident(PLAYBOOK, datetime.now(UTC), _first_post(), drill=False,
                                            allow_concurrent=True)
    ledger.release()
    addresses = [f"c{n}@example.com" for n in range(count)]
    ledger.record_intents(post, [("customers", "en", a) for a in addresses])
    return incident.id, [delivery_key(incident.id, post.seq, post.phase, "customers", "en", a) for a in addresses]


def test_a_claim_is_taken_in_one_step_and_another_owner_is_told_who_holds_it(
        store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    _, keys = recipients_post(anna)

    first = anna.claim(keys[:3])
    second = bob.claim(keys)

    assert first.taken == frozenset(keys[:3]) and not first.held
    assert second.taken == frozenset(keys[3:])
    assert second.held == dict.fromkeys(keys[:3], ANNA)
    assert str(second.held[keys[0]]) == "pid 8812 on laptop-anna"
    # The holder may claim again (a retry of its own batch): it keeps them.
    assert anna.claim(keys[:3]).taken == frozenset(keys[:3])


def test_only_the_holder_may_mark_a_delivery_as_sending(store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    _, keys = recipients_post(anna, 1)
    anna.claim(keys)

    assert bob.mark_sending(keys[0]) is None
    assert anna.mark_sending(keys[0]) == 1


def test_a_renewed_lease_outlives_the_first_one_and_a_lapsed_one_is_taken_over(
        store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    _, keys = recipients_post(anna, 2)
    anna.claim(keys)

    clock.advance(20)
    assert anna.renew() == 2
    clock.advance(20)  # 40 s after the claim, 20 s after the renewal: still Anna's
    assert bob.claim(keys).held == dict.fromkeys(keys, ANNA)

    clock.advance(LEASE.total_seconds())  # Anna was killed: nobody renewed
    taken = bob.claim(keys)
    assert taken.taken == frozenset(keys) and not taken.held
    # Anna, back from a long pause, has lost them: she may neither send nor renew them.
    assert anna.mark_sending(keys[0]) is None
    assert anna.renew() == 0
    assert bob.mark_sending(keys[0]) == 1


def test_released_claims_and_finished_deliveries(store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    _, keys = recipients_post(anna, 3)
    anna.claim(keys)
    anna.mark_sending(keys[0])
    anna.mark_sent(Confirmation(keys[0], "id-1", None, None, clock()))
    anna.mark_failed(keys[1], "550 no such user", rejected=True)
    anna.release([keys[2]])

    claim = bob.claim(keys)

    # Sent and rejected deliveries are finished: reported, never claimed; the released one is Bob's at once.
    assert claim.finished == {keys[0]: "sent", keys[1]: "rejected"}
    assert claim.taken == frozenset(keys[2:]) and not claim.held


def test_a_post_is_claimed_by_one_owner_and_taken_over_once_its_lease_lapses(
        store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    incident, post = anna.create_incident(PLAYBOOK, datetime.now(UTC), _first_post((("x", "en", None),)),
                                          drill=False, allow_concurrent=False)

    # The creator holds the new post and its intents; another owner is refused and told by whom and how much.
    with pytest.raises(ClaimHeld, match=f"incident {incident.id}: 1 delivery is being sent by pid 8812 on "
                                        "laptop-anna; nothing to do here") as refused:
        bob.claim_post(incident.id, post.seq)
    assert refused.value.exit_status == 2
    assert [(h.owner, h.seq, h.unconfirmed) for h in bob.holders(incident.id)] == [(ANNA, 1, 1)]

    clock.advance(LEASE.total_seconds() + 1)
    bob.claim_post(incident.id, post.seq)
    assert bob.holders(incident.id) == []
    assert [h.owner for h in anna.holders(incident.id)] == [BOB]
    bob.release()
    assert anna.holders(incident.id) == []


def test_a_post_stays_claimed_as_long_as_the_newest_deliveries_its_owner_took(store: Opener) -> None:
    # A run killed just after taking a batch of recipients: its post's lease, renewed earlier, runs out before
    # the batch's. Until the batch's has too, the run is not gone: resume must not start and leave the batch.
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    incident, keys = recipients_post(anna, 3)
    anna.claim_post(incident, 1)
    clock.advance(20)
    anna.claim(keys)

    clock.advance(LEASE.total_seconds() - 5)  # past the post's first lease, inside the batch's
    assert [h.owner for h in bob.holders(incident)] == [ANNA]
    with pytest.raises(ClaimHeld):
        bob.claim_post(incident, 1)
    assert bob.claim(keys).held == dict.fromkeys(keys, ANNA)

    clock.advance(10)  # the batch's lease is over too
    assert bob.holders(incident) == []
    bob.claim_post(incident, 1)
    assert bob.claim(keys).taken == frozenset(keys)


def test_a_second_post_while_another_owner_publishes_is_refused_inside_the_transaction(
        store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    incident, _ = anna.create_incident(PLAYBOOK, datetime.now(UTC), _first_post(), drill=False,
                                       allow_concurrent=False)
    anna.release()
    now = datetime.now(UTC)
    update = NewPost("identified", now, now + timedelta(minutes=30), None, {}, (("x", "en", None),))
    anna.add_post(incident.id, update)

    with pytest.raises(ClaimHeld, match=rf"incident {incident.id}: post 2 is being published by pid 8812 on "
                                        r"laptop-anna \(1 delivery not yet confirmed\); nothing was published here"):
        bob.add_post(incident.id, update)
    assert [p.seq for p in bob.posts(incident.id)] == [1, 2]
    anna.release()
    # Once Anna is gone, a new post goes out, and what she left unconfirmed where it publishes is superseded.
    assert bob.add_post(incident.id, update, again=True).seq == 3
    [left] = bob.deliveries(incident.id, 2)
    assert (left.status, left.error) == ("superseded", "superseded by post 3 (identified): not sent, it would "
                                                       "say something out of date")


def test_a_later_post_supersedes_what_earlier_ones_left_unconfirmed_where_it_publishes_and_nothing_else(
        store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    first = _first_post((("x", "en", None), ("x", "fr", None), ("ops", "en", None)))
    incident, post = anna.create_incident(PLAYBOOK, clock(), first, drill=False, allow_concurrent=False)
    anna.record_intents(post, [("customers", "en", "A@example.com"), ("customers", "fr", "b@example.com")])
    key = partial(delivery_key, incident.id, 1, "investigating")
    assert anna.claim([key("x", "en"), key("x", "fr"), key("ops", "en"), key("customers", "en", "a@example.com"),
                       key("customers", "fr", "b@example.com")]).taken
    assert anna.mark_sending(key("ops", "en")) == 1
    anna.mark_sent(Confirmation(key("ops", "en"), "1", None, None, clock()))
    anna.mark_all_failed([key("x", "en"), key("x", "fr")], "HTTP 503")
    anna.release()  # the customers' are left pending, as a run killed before mailing them leaves them

    # The update publishes to x in English and mails a@ (whose address the list now writes in lower case).
    now = clock()
    update = NewPost("identified", now, now + timedelta(minutes=30), None, {},
                     (("x", "en", None), ("ops", "en", None), ("customers", "en", "a@example.com")))
    bob.add_post(incident.id, update)
    before = {(row.channel, row.lang, row.recipient): row.status for row in bob.deliveries(incident.id, 1)}
    assert before == {("x", "en", None): "superseded", ("x", "fr", None): "failed", ("ops", "en", None): "sent",
                      ("customers", "en", "A@example.com"): "superseded",
                      ("customers", "fr", "b@example.com"): "pending"}
    # Resume has the rest of post 1 to finish: x in French and b@, which the update did not cover.
    assert bob.unfinished_posts(incident.id) == [1, 2]
    claim = bob.claim([key("x", "en"), key("x", "fr")])
    assert claim.taken == {key("x", "fr")} and claim.finished == {key("x", "en"): "superseded"}


def test_a_post_left_to_the_workers_does_not_hold_up_the_next_one_and_its_attempts_under_way_end_as_they_may(
        store: Opener) -> None:
    clock = Clock()
    worker, anna = store(BOB, clock), store(ANNA, clock)
    first = _first_post((("x", "en", None), ("ops", "en", None), ("site", "en", None)))
    incident, _ = anna.create_incident(PLAYBOOK, clock(), first, drill=False, allow_concurrent=False)
    key = partial(delivery_key, incident.id, 1, "investigating")
    keys = [key("x", "en"), key("ops", "en"), key("site", "en")]
    anna.mark_all_failed(keys, "HTTP 503")
    anna.hand_off(incident.id, 1, clock() + timedelta(minutes=30))
    anna.release()
    # The worker retries all three: its attempts at ops and site are under way when the next phase is published.
    worker.claim_post(incident.id, 1)
    assert worker.claim(keys).taken == set(keys)
    assert worker.mark_sending(key("ops", "en")) == worker.mark_sending(key("site", "en")) == 1

    now = clock()
    update = NewPost("identified", now, now + timedelta(minutes=30), None, {},
                     (("x", "en", None), ("ops", "en", None), ("site", "en", None)))
    assert anna.add_post(incident.id, update).seq == 2
    statuses = {row.channel: row.status for row in anna.deliveries(incident.id, 1)}
    assert statuses == {"x": "superseded", "ops": "sending", "site": "sending"}
    # The store refuses the worker's next attempt at x; ops is confirmed as its attempt ends; site's attempt
    # failed, and its retry is refused too: nothing of post 1 goes out after post 2 but what was under way.
    assert worker.mark_sending(key("x", "en")) is None
    worker.mark_sent(Confirmation(key("ops", "en"), "7", None, None, clock()))
    assert worker.mark_sending(key("site", "en")) is None
    rows = {row.channel: row for row in anna.deliveries(incident.id, 1)}
    assert {name: row.status for name, row in rows.items()} == {"x": "superseded", "ops": "sent",
                                                                 "site": "superseded"}
    assert rows["site"].error == ("superseded by post 2 (identified): not sent, it would say something out of "
                                  "date")
    assert anna.unfinished_posts(incident.id) == [2]


def test_a_post_another_process_is_still_publishing_holds_up_the_next_one(
        store: Opener) -> None:
    clock = Clock()
    anna, bob = store(ANNA, clock), store(BOB, clock)
    incident, _ = anna.create_incident(PLAYBOOK, clock(), _first_post((("x", "en", None),)), drill=False,
                                       allow_concurrent=False)
    # Anna is still publishing post 1 (her live claim), and nothing of it was handed to the workers.
    now = clock()
    update = NewPost("identified", now, now + timedelta(minutes=30), None, {}, (("x", "en", None),))
    with pytest.raises(ClaimHeld, match="post 1 is being published by pid 8812 on laptop-anna"):
        bob.add_post(incident.id, update)
    assert [p.seq for p in bob.posts(incident.id)] == [1]


def test_the_lease_length_comes_from_the_environment_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYBOOK_LEASE_SECONDS", "2.5")
    assert lease_from_env() == timedelta(seconds=2.5)
    monkeypatch.delenv("PLAYBOOK_LEASE_SECONDS")
    assert lease_from_env() == timedelta(seconds=60)
    monkeypatch.setenv("PLAYBOOK_LEASE_SECONDS", "soon")
    with pytest.raises(LedgerError, match="PLAYBOOK_LEASE_SECONDS must be a number of seconds above 0 "
                                          "\\(it is 'soon'\\)"):
        lease_from_env()


# -- SQLite only: the file (created by processes at once, private), its schema versions and their migration

def _open_and_trigger(path: str, start: Any, outcomes: Any) -> None:
    """One process of the race below: open (perhaps create) the ledger and open an incident."""
    start.wait()
    try:
        ledger = SqliteLedger(Path(path))
        ledger.create_incident(PLAYBOOK, datetime.now(UTC), _first_post(), drill=False, allow_concurrent=False)
        outcomes.put("opened")
    except PlaybookError as exc:
        outcomes.put(f"{type(exc).__name__}: {exc}")


def test_processes_creating_the_ledger_at_once_all_get_it(tmp_path: Path) -> None:
    # SQLite answers "locked" at once to a second process switching a brand-new file to WAL: that must wait,
    # not tell the user that the ledger cannot be read.
    fork = multiprocessing.get_context("fork")
    for round_ in range(15):
        path = tmp_path / str(round_) / ".playbook" / "state.db"
        start, outcomes = fork.Barrier(4), fork.Queue()
        racers = [fork.Process(target=_open_and_trigger, args=(str(path), start, outcomes)) for _ in range(4)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=30)
        said = sorted(outcomes.get(timeout=5) for _ in racers)
        assert said[-1] == "opened", said
        assert all(s.startswith("IncidentError: playbook 'whatsapp-outage' already has an open incident")
                   for s in said[:-1]), said



def v1_ledger(path: Path) -> None:
    """A ledger as version 1 wrote it: a post to two recipients, one of them recorded twice in two languages
    (its list's language column was edited between the run and a resume), once sent."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_V1)
    at = "2026-11-25T14:05:00.000+00:00"
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute("INSERT INTO incidents VALUES ('inc', ?, 0, 1, ?, ?, NULL, 'investigating', '{}')", (PLAYBOOK, at, at))
    db.execute("INSERT INTO posts VALUES ('inc', 1, 'investigating', ?, ?, NULL, '{}')", (at, at))
    rows = [("inc/1-investigating/ops/en", "ops", "en", None, "sent"),
            ("inc/1-investigating/customers/en/ann@example.com", "customers", "en", "Ann@Example.com", "sent"),
            ("inc/1-investigating/customers/fr/ann@example.com", "customers", "fr", "Ann@Example.com", "pending"),
            ("inc/1-investigating/customers/fr/bo@example.com", "customers", "fr", "bo@example.com", "failed")]
    db.executemany("INSERT INTO deliveries (key, incident, seq, phase, channel, lang, recipient, status, created_at)"
                   " VALUES (?, 'inc', 1, 'investigating', ?, ?, ?, ?, ?)", [(*row, at) for row in rows])
    db.commit()
    db.close()


def test_a_version_1_ledger_is_migrated_in_place_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    v1_ledger(path)

    # Read-only readers (status, timeline) read version 1 as it is.
    old = SqliteLedger(path, readonly=True)
    assert len(old.deliveries("inc")) == 4
    old.close()
    ledger = SqliteLedger(path)

    assert ledger.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(SCHEMA_VERSION)
    assert {(r.key, r.lang, r.status) for r in ledger.deliveries("inc")} == {
        ("inc/1-investigating/ops/en", "en", "sent"),
        # One row per address, keyed without the language; the sent one is kept.
        ("inc/1-investigating/customers/ann@example.com", "en", "sent"),
        ("inc/1-investigating/customers/bo@example.com", "fr", "failed"),
    }
    assert [p.seq for p in ledger.posts("inc")] == [1]
    assert ledger.incident("inc").phase == "investigating"
    # The new columns work: the failed delivery can be claimed and resumed.
    assert ledger.claim(["inc/1-investigating/customers/bo@example.com"]).taken
    ledger.close()
    # A second opening finds it current and changes nothing.
    again = SqliteLedger(path)
    assert len(again.deliveries("inc")) == 3
    again.close()


def test_a_new_ledger_is_current_and_private(tmp_path: Path) -> None:
    path = tmp_path / ".playbook" / "state.db"
    ledger = SqliteLedger(path)
    ledger.create_incident(PLAYBOOK, datetime.now(UTC), _first_post((("x", "en", None),)), drill=False,
                           allow_concurrent=False)
    assert ledger.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(SCHEMA_VERSION)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    ledger.close()
    assert modes == {"state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600, "state.db.created": 0o600}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_ledger_and_log_a_trigger_writes_are_readable_by_their_owner_only(home: Path,
                                                                              webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    result = run_cli("trigger", PLAYBOOK, home=home)

    assert result.code == 0, result.output
    folder = home / ".playbook"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert {"state.db", "state.db.created", "playbook.log"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


def drop_tables(db: Path, *tables: str) -> None:
    connection = sqlite3.connect(db)
    for table in tables:
        connection.execute(f"DROP TABLE {table}")
    connection.commit()
    connection.close()


def set_schema(db: Path, value: str) -> None:
    connection = sqlite3.connect(db)
    connection.execute("UPDATE meta SET value=? WHERE key='schema'", (value,))
    connection.commit()
    connection.close()


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda db: drop_tables(db, "posts", "deliveries"),
     "is damaged: its tables posts, deliveries are missing; nothing was sent, and the tables are not made again "
     "over what is left (that could post everything again). Restore it from backup, or, once you are sure nothing "
     "is in flight, move it aside and delete {marker} to start a new ledger"),
    (lambda db: drop_tables(db, "meta"), "is damaged: its table meta is missing; nothing was sent"),
    (lambda db: set_schema(db, "7"), "was written by a newer crisis-playbook (ledger schema 7; this version knows "
                                     "1 to 3): upgrade crisis-playbook to use it; nothing was sent"),
    (lambda db: set_schema(db, "two"), "has an unknown schema version 'two' (this crisis-playbook knows 1 to 3): it "
                                       "is damaged, or not a crisis-playbook ledger; nothing was sent. Restore it"),
], ids=["tables-dropped-meta-kept", "meta-dropped", "newer-schema", "garbage-schema"])
def test_a_ledger_missing_tables_or_of_an_unknown_schema_stops_every_command_and_is_never_rebuilt(
        home: Path, webhook_sink: WebhookSink, damage: Callable[[Path], None], expected: str) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    first = run_cli("trigger", PLAYBOOK, "--json", home=home)
    incident = json.loads(first.stdout)["incident"]
    db = home / ".playbook" / "state.db"
    damage(db)
    sent = len(webhook_sink.requests())
    before = sqlite3.connect(db)
    tables = {r[0] for r in before.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    before.close()

    for args in (("trigger", PLAYBOOK, "--new", "--yes"), ("update", incident, "--phase", "identified", "--yes"),
                 ("resume", incident), ("status",), ("timeline", incident)):
        result = run_cli(*args, home=home)
        assert result.code == 2, (args, result.output)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: the ledger {db} " + expected.format(marker=f"{db}.created")), line
    assert len(webhook_sink.requests()) == sent
    after = sqlite3.connect(db)
    assert {r[0] for r in after.execute("SELECT name FROM sqlite_master WHERE type='table'")} == tables
    after.close()


def test_a_reader_meeting_a_ledger_being_created_is_told_to_try_again(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"")  # as a creating process leaves it before its first commit (no marker yet)

    with pytest.raises(LedgerError, match="holds nothing yet \\(another command may be creating it right now\\): "
                                          "run the command again in a moment"):
        SqliteLedger(path, readonly=True)
