"""The ledger: what a kill, a second trigger, a race, a dry-run, a moved, lost or corrupt ledger leave behind."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from playbook.errors import IncidentError, LedgerError, PlaybookError
from playbook.ledger import Ledger, NewPost
from tests.conftest import run_cli
from tests.fakes.http import Reply, WebhookSink, use_webhooks

PLAYBOOK = "whatsapp-outage"


def cli_command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "playbook", "--home", str(home), *args]


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **extra}


def lease_lapsed(db: Path, incident: str) -> bool:
    """Whether no process holds a live claim on the incident any more (its lease ran out, or it let go)."""
    ledger = Ledger(db, readonly=True)
    try:
        return not ledger.holders(incident)
    finally:
        ledger.close()


def statuses(db: Path) -> dict[str, str]:
    """Every delivery key of the ledger and its status, read the way `status` reads it."""
    ledger = Ledger(db, readonly=True)
    try:
        return {row.key: row.status for i in ledger.all_incidents() for row in ledger.deliveries(i.id)}
    finally:
        ledger.close()


def wait_for(condition: str, check: Callable[[], bool], timeout: float = 15) -> None:
    """Poll `check` until it holds; fail naming `condition` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {condition}")


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
    process = subprocess.Popen(cli_command(home, "trigger", PLAYBOOK, "--yes", "--json"),
                               env=cli_env(PLAYBOOK_LEASE_SECONDS="3"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the fast channels to be confirmed", fast_confirmed)
        wait_for("the slow channels' requests", lambda: len(webhook_sink.requests()) == len(fast + slow))
    finally:
        os.kill(process.pid, sig)
        _, stderr = process.communicate(timeout=10)
    if sig == signal.SIGINT:
        assert process.returncode == 130
        assert "error: interrupted: run 'playbook status' to see what went out, 'playbook resume' to finish" \
            in stderr
    at_kill = statuses(db)
    confirmed = {key for key, status in at_kill.items() if status == "sent"}
    unconfirmed = set(at_kill) - confirmed
    assert len(confirmed) == 3 and len(unconfirmed) == 3
    assert {status for key, status in at_kill.items() if key in unconfirmed} == {"sending"}

    webhook_sink.delay = 0
    incident = json.loads(run_cli("status", "--json", home=home).stdout)["incidents"][0]["id"]
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
    first = run_cli("trigger", PLAYBOOK, "--json", home=home)
    incident = json.loads(first.stdout)["incident"]
    second = run_cli("trigger", PLAYBOOK, "--json", home=home)

    assert second.code == 2
    assert second.stdout == ""
    assert second.stderr.strip().splitlines() == [
        f"error: playbook '{PLAYBOOK}' already has an open incident: {incident}; follow it with 'playbook update "
        f"{incident} --phase ...', or pass --new to open a second one"
    ]
    assert len(webhook_sink.requests()) == 2

    third = run_cli("trigger", PLAYBOOK, "--new", "--json", home=home)
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
    ledger = Ledger(home / ".playbook" / "state.db", readonly=True)
    assert [i.id for i in ledger.all_incidents()] == [winner["incident"]]
    ledger.close()
    assert len(webhook_sink.keys()) == 6
    assert set(webhook_sink.keys().values()) == {1}


def _first_post(intents: tuple[tuple[str, str, str | None], ...] = ()) -> NewPost:
    now = datetime.now(UTC)
    return NewPost("investigating", now, now + timedelta(minutes=30), None, {}, intents)


def test_an_incident_its_first_post_and_intents_are_recorded_together(tmp_path: Path) -> None:
    # One transaction: a process killed right after opening leaves pending intents that resume finishes.
    ledger = Ledger(tmp_path / "state.db")
    incident, post = ledger.create_incident(PLAYBOOK, datetime.now(UTC), _first_post((("x", "fr", None),
                                                                                        ("x", "en", None))),
                                            drill=False, allow_concurrent=False)
    rows = ledger.deliveries(incident.id)
    assert [(r.seq, r.channel, r.lang, r.status) for r in rows] == [(1, "x", "en", "pending"),
                                                                    (1, "x", "fr", "pending")]
    assert ledger.unfinished_posts(incident.id) == [post.seq]
    ledger.close()


def test_the_ledger_refuses_a_second_open_incident_inside_its_transaction(tmp_path: Path) -> None:
    # Two processes may both pass the early check; the insert itself must still refuse the second.
    path = tmp_path / "state.db"
    first, second = Ledger(path), Ledger(path)
    detected = datetime.now(UTC)
    opened, _ = first.create_incident(PLAYBOOK, detected, _first_post(), drill=False, allow_concurrent=False)
    with pytest.raises(IncidentError, match=f"already has an open incident: {opened.id}"):
        second.create_incident(PLAYBOOK, detected, _first_post(), drill=False, allow_concurrent=False)
    drill, _ = second.create_incident(PLAYBOOK, detected, _first_post(), drill=True, allow_concurrent=False)
    assert drill.id.startswith(f"{PLAYBOOK}-drill-")
    first.close()
    second.close()


def _open_and_trigger(path: str, start: Any, outcomes: Any) -> None:
    """One process of the race below: open (perhaps create) the ledger and open an incident."""
    start.wait()
    try:
        ledger = Ledger(Path(path))
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
