"""`playbook worker`: retries handed over by the commands, reminders, holding updates and scheduled rehearsals.

Real worker processes for what a worker's life is about (a command returning while the worker delivers, a kill
-9 then another worker, two workers on one PostgreSQL ledger), counted at the receiving servers; one pass in
this process on an injected clock for what happens hours into an outage (reminders, holding updates).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from playbook.home.locate import Home
from playbook.ledger import open_ledger
from playbook.ledger.contract import utcnow
from playbook.worker import Worker
from tests.conftest import lease_lapsed, run_cli, wait_for
from tests.fakes.http import Reply, WebhookSink, use_webhooks
from tests.fakes.postgres import Database
from tests.fakes.provider import add_channel
from tests.fakes.webhooks import FakeSlack

PLAYBOOK = "whatsapp-outage"
# The first phase's template, with what a holding update says instead.
HOLDING_TEMPLATE = """{% block title %}{% if incident.holding %}Still on it{% else %}Down{% endif %}{% endblock %}
{% block short %}{% if incident.holding %}We are still working on it.{% else %}WhatsApp is down.{% endif %}
{%- if incident.next_update_at %} Next update at {{ incident.next_update_at | time }}.{% endif %}{% endblock %}
"""


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def edit_playbook(home: Path, **settings: Any) -> None:
    path = home / "playbooks" / f"{PLAYBOOK}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(settings)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def team_home(home: Path, sink: WebhookSink, slack: FakeSlack, **settings: Any) -> None:
    """Two public webhooks (`social`, `site`) in English, the `team` Slack channel for reminders only (written in
    the playbook's first language, French)."""
    use_webhooks(home, sink, ["social", "site"], languages=["en"])
    add_channel(home, "team", {"type": "slack", "url": "${SLACK_WEBHOOK_URL}", "languages": ["en"]}, phases=[],
                env={"SLACK_WEBHOOK_URL": slack.hook()})
    # The starter's own reminders and holding name channels this home no longer has: each test says its own.
    edit_playbook(home, **{"reminders": None, "holding": None, **settings})
    (home / "templates" / PLAYBOOK / "investigating.en.j2").write_text(HOLDING_TEMPLATE, encoding="utf-8")


def cli(home: Path, *args: str, state: str | None = None) -> list[str]:
    return [sys.executable, "-m", "playbook", "--home", str(home), *(["--state", state] if state else []), *args]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PLAYBOOK_HOME", "PLAYBOOK_STATE")}
    return {**base, "COLUMNS": "200", "NO_COLOR": "1", **extra}


def start_worker(home: Path, *args: str, state: str | None = None, lease: float | None = None
                 ) -> subprocess.Popen[str]:
    extra = {"PLAYBOOK_LEASE_SECONDS": str(lease)} if lease else {}
    return subprocess.Popen(cli(home, "worker", "--every", "0.2s", *args, state=state), env=env(**extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, then what it wrote on stderr; a hang guard, never a speed bound."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=90)
    return stderr


def workers_alive(home: Path, state: str | None = None) -> int:
    result = subprocess.run(cli(home, "status", "--json", state=state), env=env(), capture_output=True, text=True)
    return len(json.loads(result.stdout)["workers"]) if result.returncode == 0 and result.stdout else 0


def statuses(state: Path | str) -> dict[str, str]:
    ledger = open_ledger(state, readonly=True)
    try:
        return {row.key: row.status for i in ledger.all_incidents() for row in ledger.deliveries(i.id)}
    finally:
        ledger.close()


def one_pass(home: Path, at: datetime, state: str | None = None) -> None:
    """One worker pass in this process, the worker's clock set to `at`."""
    asyncio.run(Worker(lambda: Home.locate(home, state), clock=lambda: at, once=True).run())


def the_incident(home: Path) -> dict[str, Any]:
    result = run_cli("status", "--json", home=home)
    [incident] = json.loads(result.stdout)["incidents"]
    return dict(incident)


# -- retries handed over -----------------------------------------------------------------------------------------

def test_a_command_hands_a_failing_channel_to_the_live_worker_which_delivers_it_once(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    team_home(home, webhook_sink, slack)
    # `site` is down for its first four requests: the command's one attempt and the worker's first retries.
    webhook_sink.script("site", *[Reply(status=503)] * 4)
    worker = start_worker(home)
    try:
        wait_for("the worker's heartbeat", lambda: workers_alive(home) == 1)
        result = run_cli("trigger", PLAYBOOK, "--yes", "--json", home=home)
        assert result.code == 5, result.output
        data = json.loads(result.stdout)
        assert data["handed_off"]["deliveries"] == 1
        assert {d["channel"]: d["status"] for d in data["deliveries"]} == {"social": "sent", "site": "failed"}
        assert "left to the worker" in next(d["error"] for d in data["deliveries"] if d["channel"] == "site")
        db = home / ".playbook" / "state.db"
        wait_for("the worker to deliver what was handed over", lambda: set(statuses(db).values()) == {"sent"})
        worker.send_signal(signal.SIGHUP)
        wait_for("the reloaded home to be logged", lambda: "home reloaded" in (home / ".playbook" /
                                                                                "playbook.log").read_text())
    finally:
        stderr = stop(worker)
    assert worker.returncode == 0, stderr
    assert "worker stopped" in stderr
    # Five requests on `site`: four refused, one confirmed; `social` once.
    assert len(webhook_sink.requests("site")) == 5
    assert len(webhook_sink.requests("social")) == 1
    # Stopped cleanly: no longer listed, so the next command keeps its retries itself.
    assert workers_alive(home) == 0
    timeline = run_cli("timeline", the_incident(home)["id"], "--format", "json", home=home)
    [post] = json.loads(timeline.stdout)["posts"]
    assert post["handed_until"] is not None


def test_an_update_goes_out_while_the_worker_retries_the_previous_post_whose_stale_words_are_never_sent(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    team_home(home, webhook_sink, slack)
    # `site` is down until the test says it recovered: the worker keeps retrying the first notice meanwhile.
    webhook_sink.script("site", *[Reply(status=503)] * 1000)
    worker = start_worker(home)
    try:
        wait_for("the worker's heartbeat", lambda: workers_alive(home) == 1)
        assert run_cli("trigger", PLAYBOOK, "--yes", "--json", home=home).code == 5
        wait_for("the worker's first retry", lambda: len(webhook_sink.requests("site")) >= 2)
        # The on-call publishes the next phase mid-retry: it goes out (site, still down, is handed over again).
        updated = run_cli("update", the_incident(home)["id"], "--phase", "identified", "--yes", "--json", home=home)
        assert updated.code == 5, updated.output
        assert {d["channel"]: d["status"] for d in json.loads(updated.stdout)["deliveries"]} == {
            "social": "sent", "site": "failed"}
        # Once the first notice to site is superseded (at once, or when an attempt under way has failed), nothing
        # of it can go out any more: site recovers.
        db = home / ".playbook" / "state.db"
        wait_for("the first notice to site to be superseded",
                 lambda: any("/1-investigating/site/" in key and status == "superseded"
                             for key, status in statuses(db).items()))
        recovered = len(webhook_sink.requests("site"))
        webhook_sink.unscript("site")
        wait_for("the worker to deliver the update to site", lambda: set(statuses(db).values()) <= {"sent",
                                                                                                   "superseded"})
    finally:
        stderr = stop(worker)
    assert worker.returncode == 0, stderr
    # Counted at the server: once site answers again, it gets the update once, and never the first notice.
    after = [json.loads(r.body)["phase"] for r in webhook_sink.requests("site")[recovered:]]
    assert after == ["identified"], after
    assert [json.loads(r.body)["phase"] for r in webhook_sink.requests("social")] == ["investigating", "identified"]


def test_sigterm_lets_the_attempt_under_way_finish_then_releases_every_claim(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    team_home(home, webhook_sink, slack)
    # The command's attempt is refused; the worker's retry takes three seconds to be answered, then succeeds.
    webhook_sink.script("site", Reply(status=503), Reply(delay=3))
    worker = start_worker(home)
    try:
        wait_for("the worker's heartbeat", lambda: workers_alive(home) == 1)
        assert run_cli("trigger", PLAYBOOK, "--yes", "--json", home=home).code == 5
        wait_for("the worker's retry to reach the server", lambda: len(webhook_sink.requests("site")) == 2)
    finally:
        stderr = stop(worker)
    assert worker.returncode == 0, stderr
    db = home / ".playbook" / "state.db"
    # The attempt under way was answered and recorded, not cut off; nothing is left claimed or to retry.
    assert set(statuses(db).values()) == {"sent"}
    assert lease_lapsed(db, the_incident(home)["id"])
    assert workers_alive(home) == 0


def test_without_a_live_worker_a_command_keeps_its_retries(home: Path, webhook_sink: WebhookSink,
                                                           slack: FakeSlack) -> None:
    team_home(home, webhook_sink, slack)
    webhook_sink.script("site", Reply(status=503))
    # A worker that stopped beating a minute ago (killed): it is dead, nothing is handed to it.
    db = home / ".playbook" / "state.db"
    dead = open_ledger(db, clock=lambda: utcnow() - timedelta(minutes=1))
    dead.beat(str(home), utcnow() - timedelta(hours=1), "idle")
    dead.close()
    result = run_cli("trigger", PLAYBOOK, "--yes", "--json", home=home)
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["handed_off"] is None
    assert next(d for d in data["deliveries"] if d["channel"] == "site")["attempts"] == 2


def test_a_worker_killed_while_retrying_is_taken_over_by_another_and_nothing_is_confirmed_twice(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    team_home(home, webhook_sink, slack)
    webhook_sink.script("site", Reply(status=503))
    first = start_worker(home, lease=3)
    try:
        wait_for("the first worker's heartbeat", lambda: workers_alive(home) == 1)
        # The worker's retry hangs (no answer for a minute): it is killed with the claim in its hands.
        webhook_sink.script("site", Reply(delay=60))
        assert run_cli("trigger", PLAYBOOK, "--yes", "--json", home=home).code == 5
        wait_for("the worker's retry to reach the server", lambda: len(webhook_sink.requests("site")) == 2)
    finally:
        first.kill()
        first.communicate(timeout=30)
    second = start_worker(home, lease=3)
    try:
        db = home / ".playbook" / "state.db"
        wait_for("the second worker to finish the job", lambda: set(statuses(db).values()) == {"sent"}, timeout=60)
    finally:
        stderr = stop(second)
    assert second.returncode == 0, stderr
    # The killed worker's attempt never answered: the only one that may repeat. Confirmed once.
    site = webhook_sink.requests("site")
    assert len(site) == 3
    assert len({r.key for r in site}) == 1


# -- reminders and holding updates, hours into an outage, on the worker's clock --------------------------------

def triggered(home: Path) -> tuple[str, datetime]:
    """Trigger the playbook: the incident and when its next update is due."""
    result = run_cli("trigger", PLAYBOOK, "--yes", "--json", home=home)
    assert result.code == 0, result.output
    incident = the_incident(home)
    return incident["id"], datetime.fromisoformat(incident["next_update_due"])


def test_reminders_reach_the_on_call_before_and_after_the_update_is_due_once_each(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    team_home(home, webhook_sink, slack, reminders={"channels": ["team"], "before": "10m"})
    incident, due = triggered(home)

    one_pass(home, due - timedelta(minutes=20))
    assert slack.messages == []
    one_pass(home, due - timedelta(minutes=5))
    one_pass(home, due - timedelta(minutes=4))
    [soon] = slack.messages
    text = json.dumps(soon.payload, ensure_ascii=False)
    assert "Point d’étape attendu à" in text and incident in text
    # The time as a French sentence writes it, in the playbook's zone.
    local = due.astimezone(ZoneInfo("Europe/Paris"))
    assert f"à {local.hour} h {local:%M} {local:%Z}" in text, text
    assert f"playbook update {incident} --phase identified" in text
    assert f"playbook update {incident} --phase investigating --again" in text
    # What was last said, so the on-call knows where things stand.
    assert "WhatsApp is down." in text

    one_pass(home, due + timedelta(minutes=1))
    one_pass(home, due + timedelta(minutes=2))
    assert len(slack.messages) == 2
    assert "Point d’étape en retard depuis" in json.dumps(slack.messages[1].payload, ensure_ascii=False)
    # Reminders are for the team: nothing public went out.
    assert len(webhook_sink.requests("social")) == 1
    timeline = run_cli("timeline", incident, home=home)
    assert "What the worker did" in timeline.stdout
    assert f"reminder/{incident}/1/soon" in timeline.stdout and f"reminder/{incident}/1/overdue" in timeline.stdout


def test_a_missed_update_gets_a_holding_update_on_the_holding_channels_only_and_once(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    team_home(home, webhook_sink, slack, holding={"after": "15m", "channels": ["social"]})
    incident, due = triggered(home)

    one_pass(home, due + timedelta(minutes=14))
    assert len(webhook_sink.requests("social")) == 1
    one_pass(home, due + timedelta(minutes=16))
    one_pass(home, due + timedelta(minutes=17))

    social = webhook_sink.requests("social")
    assert len(social) == 2
    assert social[1].json["blocks"]["short"].startswith("We are still working on it.")
    assert len(webhook_sink.requests("site")) == 1
    review = json.loads(run_cli("timeline", incident, "--format", "json", home=home).stdout)
    assert [p["holding"] for p in review["posts"]] == [False, True]
    assert [d["kind"] for d in review["worker"]] == ["holding"]
    assert review["worker"][0]["ok"] is True


def test_a_holding_update_on_a_channel_that_is_down_is_left_to_the_retries_without_holding_up_the_pass(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    team_home(home, webhook_sink, slack, holding={"after": "15m", "channels": ["social"]})
    incident, due = triggered(home)
    webhook_sink.script("social", Reply(status=503))

    # One attempt, refused: the pass ends at once (a worker's heartbeat goes on), the post is handed over.
    one_pass(home, due + timedelta(minutes=16))
    review = json.loads(run_cli("timeline", incident, "--format", "json", home=home).stdout)
    assert review["posts"][1]["holding"] is True and review["posts"][1]["handed_until"] is not None
    # The next pass retries it, as any handed-over post, and it goes out.
    one_pass(home, due + timedelta(minutes=17))
    assert [r.json["blocks"]["short"].split(".")[0] for r in webhook_sink.requests("social")] == [
        "WhatsApp is down", "We are still working on it", "We are still working on it"]
    assert set(statuses(home / ".playbook" / "state.db").values()) == {"sent"}


def test_no_holding_update_in_a_drill_that_does_not_ask_nor_after_resolve(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    team_home(home, webhook_sink, slack, holding={"after": "15m", "channels": ["social"]})
    # A drill publishes through sandbox channels: `social` is drilled on `drill-social`.
    for live in ("social", "site"):
        add_channel(home, f"drill-{live}", {"type": "webhook", "url": webhook_sink.url(f"drill-{live}"),
                                            "languages": ["en"]}, phases=[])
    with (home / "channels.yaml").open("a", encoding="utf-8") as channels:
        channels.write("drill:\n  social: drill-social\n  site: drill-site\n")
    result = run_cli("trigger", PLAYBOOK, "--drill", "--yes", "--json", home=home)
    assert result.code == 0, result.output
    drill = the_incident(home)
    due = datetime.fromisoformat(drill["next_update_due"])
    one_pass(home, due + timedelta(hours=2))
    assert len(webhook_sink.requests("drill-social")) == 1

    # The team chose to rehearse holding updates too: the drill's holding update goes to the sandbox.
    edit_playbook(home, holding={"after": "15m", "channels": ["social"], "drills": True})
    one_pass(home, due + timedelta(hours=2))
    sandbox = webhook_sink.requests("drill-social")
    assert len(sandbox) == 2
    # Marked as a drill, as every drill message is.
    assert sandbox[1].json["blocks"]["short"].startswith("[DRILL] We are still working on it.")
    assert len(webhook_sink.requests("drill-site")) == 1
    assert webhook_sink.requests("social") == [] and webhook_sink.requests("site") == []

    assert run_cli("resolve", drill["id"], "--yes", home=home).code == 0
    before = len(webhook_sink.requests("drill-social"))
    one_pass(home, due + timedelta(hours=5))
    assert len(webhook_sink.requests("drill-social")) == before


def test_a_scheduled_rehearsal_runs_when_due_is_recorded_and_its_failure_reaches_the_on_call(
        home: Path, webhook_sink: WebhookSink, slack: FakeSlack) -> None:
    team_home(home, webhook_sink, slack, reminders={"channels": ["team"]}, rehearse_every="1d")
    now = utcnow()
    one_pass(home, now)
    status = json.loads(run_cli("status", "--json", home=home).stdout)
    [rehearsal] = status["rehearsals"]
    assert rehearsal["passed"] is True and rehearsal["last_rehearsed_at"] is not None
    assert slack.messages == []
    one_pass(home, now + timedelta(hours=1))
    assert json.loads(run_cli("status", "--json", home=home).stdout)["rehearsals"] == [rehearsal]

    # A template that no longer renders: the next rehearsal, a day later, fails and says so on Slack.
    (home / "templates" / PLAYBOOK / "identified.en.j2").write_text("{% block short %}{{ nope( }}{% endblock %}")
    one_pass(home, utcnow() + timedelta(days=1, minutes=1))
    [told] = slack.messages
    # The title is Slack's header, the body below it.
    assert told.payload["text"].startswith("Échec de la répétition programmée")
    assert "La répétition programmée de Panne de WhatsApp Business (whatsapp-outage) a échoué" in \
        json.dumps(told.payload, ensure_ascii=False)
    assert f"playbook rehearse {PLAYBOOK}" in json.dumps(told.payload, ensure_ascii=False)


def test_worker_once_runs_one_pass_for_cron_and_leaves_no_live_worker(home: Path) -> None:
    result = run_cli("worker", "--once", home=home)
    assert result.code == 0, result.output
    # Its pass rehearsed the never-rehearsed playbook, as cron would have it do.
    assert "rehearsal/whatsapp-outage/never: passed" in result.stderr
    status = json.loads(run_cli("status", "--json", home=home).stdout)
    assert status["rehearsals"][0]["passed"] is True
    assert status["workers"] == []
    assert run_cli("worker", "--every", "0.01s", home=home).stderr.strip() == \
        "error: --every: 0.01s is too short: 0.1s at least"


# -- a team: two workers on one PostgreSQL ledger ---------------------------------------------------------------

def test_two_workers_on_one_postgres_ledger_send_each_delivery_and_each_reminder_once(
        tmp_path: Path, home: Path, webhook_sink: WebhookSink, slack: FakeSlack, postgres_database: Database) -> None:
    url = postgres_database.url()
    # The reminder is due at once: the next update is 5 minutes away, reminders start 10 minutes before.
    team_home(home, webhook_sink, slack, update_every="5m", reminders={"channels": ["team"], "before": "10m"})
    webhook_sink.script("site", *[Reply(status=503)] * 3)
    workers = [start_worker(home, state=url), start_worker(home, state=url)]
    try:
        wait_for("both heartbeats", lambda: workers_alive(home, url) == 2)
        result = subprocess.run(cli(home, "trigger", PLAYBOOK, "--yes", "--json", state=url), env=env(),
                                capture_output=True, text=True)
        assert result.returncode == 5, result.stderr
        wait_for("every delivery confirmed", lambda: set(statuses(url).values()) == {"sent"}, timeout=60)
        wait_for("the reminder", lambda: len(reminders(slack)) >= 1)
        # Both workers make more passes after it (their heartbeats say so): neither sends anything again.
        after = utcnow()
        wait_for("both workers' next passes", lambda: beats_since(home, url, after) == 2)
    finally:
        stderrs = [stop(w) for w in workers]
    assert all(w.returncode == 0 for w in workers), stderrs
    assert len(reminders(slack)) == 1
    assert len(webhook_sink.requests("social")) == 1
    assert len(webhook_sink.requests("site")) == 4


def reminders(slack: FakeSlack) -> list[str]:
    texts = [json.dumps(m.payload, ensure_ascii=False) for m in slack.messages]
    return [text for text in texts if "Point d’étape attendu" in text]


def beats_since(home: Path, state: str, moment: datetime) -> int:
    """How many live workers have beaten after `moment` (a worker beats at the start and end of each pass)."""
    result = subprocess.run(cli(home, "status", "--json", state=state), env=env(), capture_output=True, text=True)
    workers = json.loads(result.stdout)["workers"]
    return sum(1 for w in workers if datetime.fromisoformat(w["seen_at"]) > moment + timedelta(seconds=1))
