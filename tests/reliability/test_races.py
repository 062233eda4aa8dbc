"""Two triggers of one playbook started at the same instant, in two processes, with every kind of channel."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from playbook.home.starter import write_starter
from playbook.ledger import open_ledger
from tests.conftest import write
from tests.fakes.http import WebhookSink
from tests.fakes.smtp import SmtpServer

PLAYBOOK = "whatsapp-outage"
CUSTOMERS = [f"customer{n}@example.com" for n in range(200)]


def make_home(home: Path, sink: WebhookSink, smtp: SmtpServer) -> None:
    write_starter(home)
    channels: dict[str, dict[str, object]] = {name: {"type": "webhook", "url": sink.url(name)}
                                              for name in ("ops", "partners")}
    channels["archive"] = {"type": "file", "path": "outbox/archive.jsonl"}
    channels["customers"] = {"type": "email", "host": smtp.host, "port": smtp.port, "security": "none",
                             "from": "Support <support@example.com>", "recipients": "contacts/customers.csv",
                             "connections": 4}
    write(home / "channels.yaml", yaml.safe_dump({"channels": channels}, sort_keys=False))
    path = home / "playbooks" / f"{PLAYBOOK}.yaml"
    playbook = yaml.safe_load(path.read_text(encoding="utf-8"))
    playbook["phases"] = {phase: {"channels": list(channels)} for phase in playbook["phases"]}
    write(path, yaml.safe_dump(playbook, allow_unicode=True, sort_keys=False))
    write(home / "contacts" / "customers.csv", "email,language\n" + "".join(f"{a},en\n" for a in CUSTOMERS))


@pytest.mark.parametrize("round_", range(3))
def test_two_triggers_at_the_same_instant_open_one_incident_and_post_each_message_once(tmp_path: Path,
                                                                                      round_: int) -> None:
    with WebhookSink(delay=0.2) as sink, SmtpServer(login=None) as smtp:
        home = tmp_path / "home"
        make_home(home, sink, smtp)
        env = {k: v for k, v in os.environ.items() if k not in ("PLAYBOOK_HOME", "PLAYBOOK_STATE")}
        command = [sys.executable, "-m", "playbook", "--home", str(home), "trigger", PLAYBOOK, "--yes", "--json"]
        racers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for _ in range(2)]
        done = [(p.wait(timeout=60), *p.communicate()) for p in racers]

        assert sorted(code for code, _, _ in done) == [0, 2], done
        winner = next(json.loads(out) for code, out, _ in done if code == 0)
        loser = next(err for code, _, err in done if code == 2)
        # Refused by the early check, or by the ledger's own transaction (which also says when it was opened).
        (line,) = loser.strip().splitlines()
        incident = re.escape(winner["incident"])
        assert re.fullmatch(f"error: playbook '{PLAYBOOK}' already has an open incident: {incident}"
                            rf"( \(opened [^)]+\))?; follow it with 'playbook update {incident} --phase \.\.\.', "
                            "or pass --new to open a second one", line), line
        ledger = open_ledger(home / ".playbook" / "state.db", readonly=True)
        try:
            assert [i.id for i in ledger.all_incidents()] == [winner["incident"]]
            rows = ledger.deliveries(winner["incident"])
        finally:
            ledger.close()
        assert len(rows) == 2 * 2 + 2 + len(CUSTOMERS)
        assert {row.status for row in rows} == {"sent"}
        assert sorted(sink.keys()) == sorted(row.key for row in rows if row.channel in ("ops", "partners"))
        assert set(sink.keys().values()) == {1}
        assert Counter(a for m in smtp.messages for a in m.rcpt_tos) == dict.fromkeys(CUSTOMERS, 1)
        archived = (home / "outbox" / "archive.jsonl").read_text(encoding="utf-8").splitlines()
        assert sorted(json.loads(line)["key"] for line in archived) == sorted(
            row.key for row in rows if row.channel == "archive")
