"""A team on one PostgreSQL ledger: two laptops, each with its own clone of the home's git repository.

Real `playbook` processes against a real PostgreSQL server, aiosmtpd and a webhook receiver, counted at the
receiving servers: two triggers at the same instant open one incident and post each message once; a trigger
killed (kill -9) on one laptop is finished by `resume`, run on both laptops at once once its lease lapsed; a
database restarting in the middle of a trigger is waited for, and the trigger finishes.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from playbook.ledger import open_ledger
from tests.conftest import run_cli, wait_for
from tests.fakes.http import WebhookSink
from tests.fakes.postgres import Database
from tests.fakes.smtp import SmtpServer
from tests.reliability.test_claims import (
    CONNECTIONS,
    HOST,
    PLAYBOOK,
    HeldAfter,
    Setup,
    finish,
    make_home,
    statuses,
)

GIT = ["git", "-c", "user.name=On-call", "-c", "user.email=oncall@example.com"]


@pytest.fixture
def team(tmp_path: Path, postgres_database: Database) -> Iterator[tuple[Setup, list[Path], Database]]:
    """The home (600 customers, two webhooks) committed to git and cloned to two laptops, and the ledger."""
    with WebhookSink() as sink, SmtpServer(login=None) as smtp:
        setup = make_home(tmp_path / "origin", sink, smtp, recipients=600)
        subprocess.run([*GIT, "init", "-q"], cwd=setup.home, check=True)
        subprocess.run([*GIT, "add", "-A"], cwd=setup.home, check=True)
        subprocess.run([*GIT, "commit", "-qm", "playbooks"], cwd=setup.home, check=True)
        laptops = [tmp_path / name for name in ("laptop-anna", "laptop-bob")]
        for laptop in laptops:
            subprocess.run(["git", "clone", "-q", str(setup.home), str(laptop)], check=True)
        yield setup, laptops, postgres_database


def start(laptop: Path, url: str, *args: str, lease: float | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PLAYBOOK_HOME"}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PLAYBOOK_STATE": url})
    if lease is not None:
        env["PLAYBOOK_LEASE_SECONDS"] = str(lease)
    return subprocess.Popen([sys.executable, "-m", "playbook", "--home", str(laptop), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sent(database: Database) -> int:
    """How many customer deliveries the ledger records as sent (0 before its tables exist)."""
    try:
        return int(database.query("SELECT count(*) FROM deliveries WHERE channel='customers' AND status='sent'")
                   [0][0])
    except psycopg.errors.UndefinedTable:
        return 0


@pytest.mark.timeout(240)
def test_two_laptops_triggering_at_the_same_instant_open_one_incident_and_post_each_message_once(
        team: tuple[Setup, list[Path], Database]) -> None:
    setup, laptops, database = team
    url = database.url()
    racers = [start(laptop, url, "trigger", PLAYBOOK, "--yes", "--json") for laptop in laptops]
    done = [finish(p) for p in racers]

    assert sorted(code for code, _, _ in done) == [0, 2], done
    winner = next(json.loads(out) for code, out, _ in done if code == 0)
    (line,) = next(err for code, _, err in done if code == 2).strip().splitlines()
    incident = re.escape(winner["incident"])
    assert re.fullmatch(f"error: playbook '{PLAYBOOK}' already has an open incident: {incident}"
                        rf"( \(opened [^)]+\))?; follow it with 'playbook update {incident} --phase \.\.\.', "
                        "or pass --new to open a second one", line), line
    assert Counter(a for m in setup.smtp.messages for a in m.rcpt_tos) == dict.fromkeys(setup.customers, 1)
    assert set(setup.sink.keys().values()) == {1} and len(setup.sink.keys()) == 4
    assert set(statuses(url).values()) == {"sent"}
    # The other laptop sees it too; the password is nowhere in what it prints.
    seen = run_cli("status", home=laptops[1], env={"PLAYBOOK_STATE": url})
    assert seen.code == 0, seen.output
    assert winner["incident"] in seen.stdout
    assert database.server.password not in seen.output


@pytest.mark.timeout(240)
def test_a_trigger_killed_on_one_laptop_is_finished_by_resume_on_both_at_once_each_customer_mailed_once(
        team: tuple[Setup, list[Path], Database]) -> None:
    setup, laptops, database = team
    url = database.url()
    trigger = start(laptops[0], url, "trigger", PLAYBOOK, "--yes", "--json", lease=2)
    try:
        wait_for("the trigger to be sending", lambda: sent(database) >= random.Random(15).randrange(50, 400),
                 timeout=120)
    finally:
        os.kill(trigger.pid, signal.SIGKILL)
        finish(trigger, timeout=10)
    at_kill = statuses(url)
    ledger = open_ledger(url, readonly=True)
    try:
        (incident,) = [i.id for i in ledger.all_incidents()]
        wait_for("the killed trigger's lease to lapse", lambda: not ledger.holders(incident), timeout=60)
    finally:
        ledger.close()

    racers = [start(laptop, url, "resume", incident, "--json") for laptop in laptops]
    done = [(p.pid, *finish(p)) for p in racers]

    assert sorted(code for _, code, _, _ in done) == [0, 2], done
    winner = next(pid for pid, code, _, _ in done if code == 0)
    (line,) = next(err for _, code, _, err in done if code == 2).strip().splitlines()
    assert (f"being sent by pid {winner} on {HOST}; nothing to do here" in line
            or "has nothing left to send: every delivery is confirmed" in line), line
    mailed = setup.mailed()
    assert set(mailed) == set(setup.customers)
    # Twice only if in flight at the kill, and never more than the trigger's connections.
    twice = {address for address, n in mailed.items() if n > 1}
    assert all(mailed[address] == 2 and at_kill.get(address) == "sending" for address in twice), twice
    assert len(twice) <= CONNECTIONS
    assert set(statuses(url).values()) == {"sent"}


@pytest.mark.timeout(240)
def test_the_database_restarting_mid_trigger_is_waited_for_and_every_customer_is_mailed_once(
        team: tuple[Setup, list[Path], Database]) -> None:
    setup, laptops, database = team
    # The mail server holds every message after the first 150 until the database has gone down.
    held = HeldAfter(setup.smtp._controller.handler, accepted=150)
    setup.smtp._controller.handler = held
    trigger = start(laptops[0], database.url(), "trigger", PLAYBOOK, "--yes", "--json")
    try:
        wait_for("the trigger to be sending", lambda: sent(database) >= held.accepted, timeout=120)
        database.server.halt()
        held.release()
        database.server.launch()
    finally:
        held.release()
        code, out, err = finish(trigger)

    assert code == 0, (err, out)
    # It did lose the database, and waited for it (the log is in the laptop's home: the ledger is not a file).
    log = (laptops[0] / ".playbook" / "playbook.log").read_text(encoding="utf-8")
    assert "went away" in log and "is back" in log
    assert database.server.password not in log
    assert setup.mailed() == dict.fromkeys(setup.customers, 1)
    assert set(setup.sink.keys().values()) == {1}
    assert set(statuses(database.url()).values()) == {"sent"}
