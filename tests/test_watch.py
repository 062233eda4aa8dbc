"""Monitors at work: `playbook watch` and the worker probing local fakes of a provider's Statuspage, the Cloud API
health of our number and a plain health URL, each switched down and up by the test; what they record, alert,
trigger and resolve, counted at the receiving servers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, wait_for
from tests.fakes.http import WebhookSink
from tests.fakes.monitors import FakeCloudHealth, FakeHealthUrl, FakeStatusPage
from tests.fakes.provider import Answer
from tests.fakes.webhooks import FakeSlack
from tests.test_worker import PLAYBOOK, edit_playbook, env, stop, team_home

COMPONENT = "WhatsApp Business API"
TOKEN = "EAAG-watch-token-51"
PHONE = "106540352242922"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def watching(home: Path, sink: WebhookSink, slack: FakeSlack, monitor: dict[str, Any], **watch: Any) -> None:
    """The team home of the worker's tests, with one monitor probed every second, down after two failures."""
    team_home(home, sink, slack)
    edit_playbook(home, monitors=[monitor], watch={"every": "1s", "fails": 2, "recovers": 2, "alert": ["team"],
                                                   **watch})


def start(home: Path, *command: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "playbook", "--home", str(home), *command], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def alerts(slack: FakeSlack) -> list[str]:
    return [json.dumps(m.payload, ensure_ascii=False) for m in slack.messages]


def monitor_state(home: Path) -> dict[str, Any]:
    [monitor] = json.loads(run_cli("status", "--json", home=home).stdout)["monitors"]
    return dict(monitor)


def test_an_outage_seen_on_the_providers_status_page_is_alerted_once_with_the_trigger_command(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    with FakeStatusPage(COMPONENT) as page:
        watching(home, webhook_sink, slack, {"name": "provider-status", "type": "statuspage",
                                             "url": page.summary_url, "component": COMPONENT})
        # Two watchers, as two machines of a team would run: each change is alerted once.
        watchers = [start(home, "watch"), start(home, "watch")]
        try:
            wait_for("both watchers' first probes", lambda: len(page.requests()) >= 2)
            switched = datetime.now(UTC)
            page.down()
            wait_for("the outage alert", lambda: len(alerts(slack)) == 1)
            [alert] = alerts(slack)
            command = re.search(r"playbook trigger whatsapp-outage --detected-at ([0-9T:+-]+)", alert)
            assert command is not None, alert
            detected = datetime.fromisoformat(command.group(1))
            # The first failed probe: after the switch, and it is what the ledger recorded.
            assert switched - timedelta(seconds=1) <= detected <= datetime.now(UTC)
            state = monitor_state(home)
            # To the second, as an operator types it.
            assert state["state"] == "down"
            assert datetime.fromisoformat(state["since"]).replace(microsecond=0) == detected
            assert f"{COMPONENT}: major_outage" in alert
            # What the first notice would say, in each language.
            assert "Le premier message dirait (fr)" in alert and "Le premier message dirait (en)" in alert
            # Nothing public went out: a human decides.
            assert webhook_sink.requests() == []

            opened = run_cli("trigger", PLAYBOOK, "--detected-at", command.group(1), "--yes", "--json", home=home)
            assert opened.code == 0, opened.output
            incident = json.loads(opened.stdout)["incident"]
            page.up()
            wait_for("the recovery alert", lambda: len(alerts(slack)) == 2)
            assert f"playbook resolve {incident}" in alerts(slack)[1]
            assert monitor_state(home)["state"] == "up"
            # A few more rounds of both watchers: nothing more is said.
            seen = len(page.requests())
            wait_for("more probes", lambda: len(page.requests()) >= seen + 4)
        finally:
            stderrs = [stop(w) for w in watchers]
    assert all(w.returncode == 0 for w in watchers), stderrs
    assert len(alerts(slack)) == 2
    timeline = run_cli("timeline", incident, home=home).stdout
    assert "## Detection" in timeline and "provider-status down" in timeline


def test_a_worker_triggers_the_approved_first_notice_at_the_first_failed_probe_and_resolves_on_recovery(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    with FakeCloudHealth(TOKEN, PHONE) as health:
        watching(home, webhook_sink, slack, {"name": "cloud-api", "type": "whatsapp", "api_base": health.api_base,
                                             "phone_number_id": PHONE, "access_token": "${WA_TOKEN}"},
                 on_detect="trigger", on_recover="resolve")
        with (home / ".env").open("a", encoding="utf-8") as dotenv:
            dotenv.write(f"WA_TOKEN={TOKEN}\n")
        worker = start(home, "worker", "--every", "0.2s")
        try:
            wait_for("the worker's first probe", lambda: len(health.requests()) >= 1)
            health.down()
            wait_for("the first notice on every channel",
                     lambda: len(webhook_sink.requests("social")) == 1 and len(webhook_sink.requests("site")) == 1)
            [incident] = json.loads(run_cli("status", "--json", home=home).stdout)["incidents"]
            state = monitor_state(home)
            assert datetime.fromisoformat(incident["detected_at"]) == datetime.fromisoformat(state["since"])
            wait_for("the alert naming the incident", lambda: len(alerts(slack)) == 1)
            assert incident["id"] in alerts(slack)[0]
            health.up()
            wait_for("the incident resolved", lambda: not json.loads(
                run_cli("status", "--json", home=home).stdout)["incidents"])
            wait_for("the recovery alert", lambda: len(alerts(slack)) == 2)
        finally:
            stderr = stop(worker)
    assert worker.returncode == 0, stderr
    # The first phase, then the last one, on each channel: never triggered twice.
    assert len(webhook_sink.requests("social")) == len(webhook_sink.requests("site")) == 2
    assert TOKEN not in stderr and TOKEN not in (home / ".playbook" / "playbook.log").read_text()
    review = json.loads(run_cli("timeline", incident["id"], "--format", "json", home=home).stdout)
    assert [c["state"] for c in review["detection"]] == ["down", "up"]
    assert review["detection"][0]["since"] == review["detected_at"]


def test_a_flapping_health_url_triggers_nothing(home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    with FakeHealthUrl() as service:
        watching(home, webhook_sink, slack, {"name": "webhook-receiver", "type": "http", "url": service.health_url,
                                             "expect": {"status": 200, "contains": '"ok": true'}},
                 on_detect="trigger")
        # Down, up, down, up...: never two failures in a row.
        down = Answer(503, {"ok": False})
        up = Answer(200, {"ok": True})
        service.script(service.path, down, up, down, up, down, up)
        watcher = start(home, "watch")
        try:
            wait_for("eight probes", lambda: len(service.requests()) >= 8)
        finally:
            stderr = stop(watcher)
    assert watcher.returncode == 0, stderr
    assert alerts(slack) == [] and webhook_sink.requests() == []
    assert monitor_state(home)["state"] == "unknown"


def test_watch_refuses_a_playbook_without_monitors(home: Path) -> None:
    result = run_cli("watch", PLAYBOOK, home=home)
    assert result.code == 2
    assert result.stderr.strip() == ("error: playbook 'whatsapp-outage' has no monitors to watch: add `monitors:` "
                                     "to it (see README: Monitors)")
