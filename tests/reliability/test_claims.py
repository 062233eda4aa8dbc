"""Several processes on one incident at once: each delivery is attempted by one of them, counted at the server.

Real processes against a real aiosmtpd and a webhook receiver, with seeded random timings:

- `resume` started while a 3,000-recipient trigger is sending: it leaves the work to the trigger and names it;
- two `update --phase` (or `resolve`) at once: one post, the other refused with exit 2, naming who publishes it;
- a trigger killed (kill -9) while holding claims: `resume` says who holds them until the lease lapses, then
  takes over; two `resume`s at once after the lapse send everything once between them;
- a lease far shorter than a slow server's answers: renewed in the background, so the claims hold.

Every recipient is mailed exactly once, except those in flight at a kill (at most one per connection).
PLAYBOOK_LEASE_SECONDS shortens the lease of the processes that are killed, so that the lapse comes quickly.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbook.home.starter import write_starter
from playbook.ledger import open_ledger
from tests.conftest import lease_lapsed, wait_for, write
from tests.fakes.http import Reply, WebhookSink
from tests.fakes.smtp import SmtpServer

PLAYBOOK = "whatsapp-outage"
CONNECTIONS = 4
HOOKS = ("ops", "partners")
HOST = socket.gethostname()


@dataclass
class Setup:
    home: Path
    sink: WebhookSink
    smtp: SmtpServer
    customers: list[str]

    @property
    def db(self) -> Path:
        return self.home / ".playbook" / "state.db"

    def mailed(self) -> Counter[str]:
        return Counter(address for message in self.smtp.messages for address in message.rcpt_tos)


def make_home(home: Path, sink: WebhookSink, smtp: SmtpServer, recipients: int) -> Setup:
    """The starter home publishing every phase to two webhooks and `recipients` customers over 4 connections."""
    write_starter(home)
    channels: dict[str, dict[str, object]] = {name: {"type": "webhook", "url": sink.url(name)} for name in HOOKS}
    channels["customers"] = {"type": "email", "host": smtp.host, "port": smtp.port, "security": "none",
                             "from": "Support <support@example.com>", "recipients": "contacts/customers.csv",
                             "connections": CONNECTIONS}
    write(home / "channels.yaml", yaml.safe_dump({"channels": channels}, sort_keys=False))
    path = home / "playbooks" / f"{PLAYBOOK}.yaml"
    playbook = yaml.safe_load(path.read_text(encoding="utf-8"))
    playbook["phases"] = {phase: {"channels": list(channels)} for phase in playbook["phases"]}
    write(path, yaml.safe_dump(playbook, allow_unicode=True, sort_keys=False))
    customers = [f"customer{n}@example.com" for n in range(recipients)]
    write(home / "contacts" / "customers.csv",
          "email,language\n" + "".join(f"{a},{'fr' if n % 2 else 'en'}\n" for n, a in enumerate(customers)))
    return Setup(home, sink, smtp, customers)


@pytest.fixture
def servers() -> Iterator[tuple[WebhookSink, SmtpServer]]:
    with WebhookSink() as sink, SmtpServer(login=None) as smtp:
        yield sink, smtp


def start(setup: Setup, *args: str, lease: float | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PLAYBOOK_HOME", "PLAYBOOK_STATE")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    if lease is not None:
        env["PLAYBOOK_LEASE_SECONDS"] = str(lease)
    return subprocess.Popen([sys.executable, "-m", "playbook", "--home", str(setup.home), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str, str]:
    """Wait for a command (never for ever, but long enough for thousands of emails on a loaded machine): its
    exit status, stdout and stderr."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err




def count(db: Path, status: str) -> int:
    """How many customer deliveries the ledger records with `status` (0 before it exists)."""
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:
        return 0
    try:
        row = connection.execute("SELECT count(*) FROM deliveries WHERE channel='customers' AND status=?",
                                 (status,)).fetchone()
        return int(row[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        connection.close()


def statuses(state: Path | str) -> dict[str, str]:
    """Each customer's delivery status in the ledger (post 1): a SQLite file or a PostgreSQL URL."""
    ledger = open_ledger(state, readonly=True)
    try:
        return {row.recipient: row.status for i in ledger.all_incidents() for row in ledger.deliveries(i.id, 1)
                if row.recipient}
    finally:
        ledger.close()


def incident_of(db: Path) -> str:
    ledger = open_ledger(db, readonly=True)
    try:
        return ledger.all_incidents()[0].id
    finally:
        ledger.close()




class HeldAfter:
    """Wraps the fake SMTP server's handler: the messages after the first `accepted` wait until `release()`.

    A run held this way is surely still sending when another command looks at it, however slowly that command
    starts on a loaded machine.
    """

    def __init__(self, inner: Any, accepted: int) -> None:
        self.inner = inner
        self.accepted = accepted
        self._taken = 0
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        reply: str = await self.inner.handle_RCPT(server, session, envelope, address, options)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._taken += 1
        while self._taken > self.accepted and not self._released.is_set():
            await asyncio.sleep(0.02)
        reply: str = await self.inner.handle_DATA(server, session, envelope)
        return reply


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [1, 2])
def test_resume_while_a_3000_recipient_trigger_sends_leaves_it_the_work_and_names_it(
        tmp_path: Path, servers: tuple[WebhookSink, SmtpServer], seed: int) -> None:
    rng = random.Random(seed)
    setup = make_home(tmp_path / "home", *servers, recipients=3000)
    # A seeded point of the run: after some hundreds of customers were confirmed, the server holds the rest
    # until resume has answered.
    held = HeldAfter(setup.smtp._controller.handler, accepted=rng.randrange(50, 1200))
    setup.smtp._controller.handler = held
    trigger = start(setup, "trigger", PLAYBOOK, "--yes", "--json")
    try:
        wait_for("the trigger to be sending", lambda: count(setup.db, "sent") >= held.accepted, timeout=120)
        helper = start(setup, "resume", incident_of(setup.db))
        code, out, err = finish(helper)
    finally:
        held.release()
        done = finish(trigger)

    assert done[0] == 0, done[2]
    assert code == 2, (out, err)
    (line,) = err.strip().splitlines()
    assert re.fullmatch(rf"error: incident \S+: \d+ deliver(y is|ies are) being sent by pid {trigger.pid} on "
                        rf"{re.escape(HOST)}; nothing to do here \(if that process is gone, its claim lapses at "
                        r"\d\d:\d\d:\d\d UTC: run 'playbook resume \S+' again then\)", line), line
    assert setup.mailed() == dict.fromkeys(setup.customers, 1)
    assert set(setup.sink.keys().values()) == {1}
    assert set(statuses(setup.db).values()) == {"sent"}


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("command", "seed"), [("update", 1), ("update", 2), ("resolve", 3)])
def test_two_updates_at_once_make_one_post_and_the_other_names_who_publishes_it(
        tmp_path: Path, servers: tuple[WebhookSink, SmtpServer], command: str, seed: int) -> None:
    rng = random.Random(seed)
    setup = make_home(tmp_path / "home", *servers, recipients=200)
    first = start(setup, "trigger", PLAYBOOK, "--yes", "--json")
    code, out, err = finish(first)
    assert code == 0, err
    incident = json.loads(out)["incident"]
    # The server holds post 2's emails until one of the racers has answered: the post is still going out when
    # the other command checks, however slowly either starts.
    held = HeldAfter(setup.smtp._controller.handler, accepted=0)
    setup.smtp._controller.handler = held
    args = ("update", incident, "--phase", "identified") if command == "update" else ("resolve", incident)
    racers = []
    try:
        for _ in range(2):
            racers.append(start(setup, *args, "--yes", "--json"))
            time.sleep(rng.uniform(0, 0.3))
        wait_for("one of the two to answer", lambda: any(p.poll() is not None for p in racers), timeout=120)
    finally:
        held.release()
    done = [(p.pid, *finish(p)) for p in racers]

    assert sorted(code for _, code, _, _ in done) == [0, 2], done
    winner = next(pid for pid, code, _, _ in done if code == 0)
    (line,) = next(err for _, code, _, err in done if code == 2).strip().splitlines()
    assert re.fullmatch(rf"error: incident {re.escape(incident)}: post 2 is being published by pid {winner} on "
                        rf"{re.escape(HOST)}( \(\d+ deliver(y|ies) not yet confirmed\))?; nothing was published "
                        rf"here: wait for it to finish \('playbook status {re.escape(incident)}'\)", line), line
    ledger = open_ledger(setup.db, readonly=True)
    try:
        assert [p.seq for p in ledger.posts(incident)] == [1, 2]
    finally:
        ledger.close()
    # Each webhook key of post 2 arrived once; each customer got one message per post.
    assert set(setup.sink.keys().values()) == {1}
    assert len(setup.sink.keys()) == 2 * len(HOOKS) * 2
    assert setup.mailed() == dict.fromkeys(setup.customers, 2)


def kill_mid_send(setup: Setup, rng: random.Random, lease: float) -> tuple[int, dict[str, str]]:
    """Start a trigger with a short lease and kill -9 it at a seeded point of its list: its pid, and the ledger
    as the kill left it."""
    trigger = start(setup, "trigger", PLAYBOOK, "--yes", "--json", lease=lease)
    try:
        wait_for("the trigger to be sending", lambda: count(setup.db, "sent") >= rng.randrange(50, 1000),
                 timeout=120)
    finally:
        os.kill(trigger.pid, signal.SIGKILL)
        finish(trigger, timeout=10)
    return trigger.pid, statuses(setup.db)


def check_served_once(setup: Setup, at_kill: dict[str, str]) -> None:
    """Everyone mailed; twice only if in flight at the kill, and never more than the connections."""
    mailed = setup.mailed()
    assert set(mailed) == set(setup.customers)
    twice = {address for address, n in mailed.items() if n > 1}
    assert all(mailed[address] == 2 for address in twice)
    assert all(at_kill.get(address) == "sending" for address in twice), twice
    assert len(twice) <= CONNECTIONS
    assert set(statuses(setup.db).values()) == {"sent"}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [1, 2])
def test_a_killed_trigger_keeps_its_claims_until_the_lease_lapses_then_resume_takes_over(
        tmp_path: Path, servers: tuple[WebhookSink, SmtpServer], seed: int) -> None:
    setup = make_home(tmp_path / "home", *servers, recipients=1500)
    # A lease long enough that the first resume surely comes while it is live, even when it starts slowly.
    killed, at_kill = kill_mid_send(setup, random.Random(seed), lease=30)
    incident = incident_of(setup.db)
    mailed = setup.mailed().total()

    # Straight after the kill, the claims are still live: resume sends nothing and says whose they are.
    code, _, err = finish(start(setup, "resume", incident))
    assert code == 2, err
    assert f"being sent by pid {killed} on {HOST}; nothing to do here" in err
    assert setup.mailed().total() == mailed
    # status, meanwhile, cannot tell a dead owner from a slow one: under a live claim the customers are sending.
    code, out, err = finish(start(setup, "status", incident))
    assert code == 0 and re.search(r"^customers +(fr|en) +sending", out, re.MULTILINE), out + err
    assert "interrupted" not in out
    wait_for("the killed trigger's lease to lapse", lambda: lease_lapsed(setup.db, incident), timeout=90)
    # Once nobody holds them, status says the run was interrupted and how to finish it.
    code, out, err = finish(start(setup, "status", incident))
    assert code == 0 and re.search(r"^customers +(fr|en) +interrupted", out, re.MULTILINE), out + err
    assert re.search(rf"^1\. customers (fr|en): sending, unconfirmed: nobody is at it, playbook resume {incident} "
                     "finishes it", out, re.MULTILINE), out
    code, out, err = finish(start(setup, "resume", incident, "--json"))

    # A failed delivery is only in the JSON: show it, with whatever resume said.
    assert code == 0, (err, [d for d in json.loads(out or "{}").get("deliveries", []) if d.get("status") != "sent"])
    check_served_once(setup, at_kill)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [1, 2])
def test_two_resumes_at_once_after_a_kill_send_everything_once_between_them(
        tmp_path: Path, servers: tuple[WebhookSink, SmtpServer], seed: int) -> None:
    rng = random.Random(seed)
    setup = make_home(tmp_path / "home", *servers, recipients=1500)
    _, at_kill = kill_mid_send(setup, rng, lease=2)
    incident = incident_of(setup.db)
    wait_for("the killed trigger's lease to lapse", lambda: lease_lapsed(setup.db, incident))

    racers = []
    for _ in range(2):
        racers.append(start(setup, "resume", incident, "--json"))
        time.sleep(rng.uniform(0, 0.3))
    done = [(p.pid, *finish(p)) for p in racers]

    assert sorted(code for _, code, _, _ in done) == [0, 2], done
    winner = next(pid for pid, code, _, _ in done if code == 0)
    (line,) = next(err for _, code, _, err in done if code == 2).strip().splitlines()
    # Refused while the other sends, or, if it had already finished, nothing left.
    assert (f"being sent by pid {winner} on {HOST}; nothing to do here" in line
            or "has nothing left to send: every delivery is confirmed" in line), line
    check_served_once(setup, at_kill)


@pytest.mark.timeout(180)
def test_claims_are_renewed_while_every_delivery_waits_on_a_slow_server(
        tmp_path: Path, servers: tuple[WebhookSink, SmtpServer]) -> None:
    setup = make_home(tmp_path / "home", *servers, recipients=10)
    for name in HOOKS:
        setup.sink.script(name, *[Reply(delay=8)] * 2)
    # The emails wait until resume has answered: the run is surely still going when it looks.
    held = HeldAfter(setup.smtp._controller.handler, accepted=0)
    setup.smtp._controller.handler = held
    # A lease of 3 s, far shorter than the webhooks' 8 s answers: only the background renewal (every second)
    # keeps it.
    trigger = start(setup, "trigger", PLAYBOOK, "--yes", "--json", lease=3)
    try:
        wait_for("every webhook to wait on its answer", lambda: len(setup.sink.requests()) == 2 * len(HOOKS))
        incident = incident_of(setup.db)
        ledger = open_ledger(setup.db, readonly=True)
        try:
            (first,) = ledger.holders(incident)
            wait_for("the first lease to end", lambda: datetime.now(UTC) > first.until + timedelta(seconds=1))
            (later,) = ledger.holders(incident)
        finally:
            ledger.close()
        code, _, err = finish(start(setup, "resume", incident))
    finally:
        held.release()
        done = finish(trigger)

    assert (first.owner.pid, later.owner.pid) == (trigger.pid, trigger.pid)
    assert later.until > first.until + timedelta(seconds=1)
    assert code == 2 and f"being sent by pid {trigger.pid} on {HOST}; nothing to do here" in err, err
    assert done[0] == 0, done[2]
    assert set(setup.sink.keys().values()) == {1}
