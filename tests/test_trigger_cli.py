"""An incident from the command line: trigger, update, resolve, resume, status and timeline, and exit codes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.fakes.http import Reply, WebhookSink, use_webhooks

PLAYBOOK = "whatsapp-outage"
STATUS_KEYS = {"id", "playbook", "phase", "open", "drill", "detected_at", "first_notice_at", "window_met",
               "next_update_due"}


def run_json(home: Path, *args: str, code: int = 0) -> dict[str, Any]:
    result = run_cli(*args, "--json", home=home)
    assert result.code == code, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def status_of(home: Path, incident: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = run_json(home, "status", incident)["incidents"]
    assert len(found) == 1
    assert set(found[0]) == STATUS_KEYS
    return found[0]


def test_trigger_prints_where_each_message_went(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"])
    result = run_cli("trigger", PLAYBOOK, home=home)

    assert result.code == 0, result.output
    for name in ("ops", "partners"):
        assert f"https://hooks.example.test/posts/{name}-1" in result.stdout
    assert re.search(r"Everything went out in \d+\.\ds\. Incident: whatsapp-outage-\d{8}-\d{4}\n", result.stdout)
    # The playbook's zone labels the time column once; each cell is the time alone, never wrapped.
    assert re.search(r"^channel +lang +status +at CET +took", result.stdout, re.MULTILINE)
    assert len(re.findall(r"^(ops|partners) +(fr|en) +sent +\d\d:\d\d ", result.stdout, re.MULTILINE)) == 4
    assert result.stderr == ""


def test_an_incident_from_trigger_to_resolve(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"])
    before = datetime.now(UTC)
    triggered = run_json(home, "trigger", PLAYBOOK, "--detected-at", "-10m")
    after = datetime.now(UTC)
    incident = triggered["incident"]

    opened = status_of(home, incident)
    assert (opened["playbook"], opened["phase"], opened["open"], opened["drill"]) == (
        PLAYBOOK, "investigating", True, False)
    detected = datetime.fromisoformat(opened["detected_at"])
    # Ten minutes before the moment the command read the option, however long a loaded machine made it take
    # (the ledger keeps milliseconds).
    assert before - timedelta(minutes=10, milliseconds=1) <= detected <= after - timedelta(minutes=10)
    first = datetime.fromisoformat(opened["first_notice_at"])
    assert timedelta(minutes=10) <= first - detected < timedelta(minutes=11)
    assert opened["window_met"] is True
    due = datetime.fromisoformat(opened["next_update_due"])
    assert timedelta(minutes=59) < due - before < timedelta(minutes=61)  # update_every: 60m after the post
    assert run_json(home, "status")["incidents"] == [opened]

    updated = run_json(home, "update", incident, "--phase", "identified", "--var", "cause=a bad deploy")
    assert (updated["incident"], updated["phase"], updated["ok"]) == (incident, "identified", True)
    assert status_of(home, incident)["phase"] == "identified"
    assert webhook_sink.requests("ops")[-1].json["phase"] == "identified"

    same = run_cli("update", incident, "--phase", "identified", home=home)
    assert same.code == 2
    assert "already in phase 'identified'; pass --again" in same.stderr
    again = run_json(home, "update", incident, "--phase", "identified", "--again")
    assert again["ok"] is True

    resolved = run_json(home, "resolve", incident)
    assert (resolved["phase"], resolved["ok"], resolved["closed"]) == ("resolved", True, True)
    closed = status_of(home, incident)
    assert (closed["open"], closed["phase"], closed["next_update_due"]) == (False, "resolved", None)
    assert closed["window_met"] is True
    assert run_json(home, "status")["incidents"] == []
    assert len(webhook_sink.requests()) == 4 * 4  # four posts, two channels, two languages

    late = run_cli("update", incident, "--phase", "monitoring", home=home)
    assert late.code == 2
    assert f"incident {incident} is closed" in late.stderr


def test_a_first_notice_after_the_window_is_reported_missed(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"], languages=["en"])
    data = run_json(home, "trigger", PLAYBOOK, "--detected-at", "-45m")

    assert data["deliveries"][0]["status"] == "sent"
    assert data["deliveries"][0]["within_window"] is False
    assert status_of(home, data["incident"])["window_met"] is False


def test_the_timeline_lists_every_delivery_with_its_link(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"])
    incident = run_json(home, "trigger", PLAYBOOK)["incident"]
    run_json(home, "update", incident, "--phase", "identified")
    webhook_sink.script("partners", Reply(403, body={"error": "token revoked"}))
    run_json(home, "resolve", incident, code=1)

    md = run_cli("timeline", incident, home=home)
    assert md.code == 0, md.output
    assert md.stdout.startswith(f"# Timeline of {incident}\n")
    for n, phase in enumerate(["investigating", "identified", "resolved"], start=1):
        assert f"## {n}. {phase} (issued " in md.stdout
    links = [line for line in md.stdout.splitlines() if "<https://hooks.example.test/posts/" in line]
    assert len(links) == 11  # 12 deliveries, one refused
    assert "| partners | fr | failed |" in md.stdout or "| partners | en | failed |" in md.stdout
    assert "refused (HTTP 403)" in md.stdout

    as_json = run_cli("timeline", incident, "--format", "json", home=home)
    assert as_json.code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["id"] == incident
    assert [p["phase"] for p in data["posts"]] == ["investigating", "identified", "resolved"]
    assert len(data["deliveries"]) == 12
    sent = [d for d in data["deliveries"] if d["status"] == "sent"]
    assert len(sent) == 11
    assert all(d["url"] == f"https://hooks.example.test/posts/{d['remote_id']}" for d in sent)
    failed = [d for d in data["deliveries"] if d["status"] == "failed"]
    assert [(d["channel"], d["post"]) for d in failed] == [("partners", 3)]

    wrong = run_cli("timeline", incident, "--format", "pdf", home=home)
    assert wrong.code == 2
    assert "--format must be md or json, not 'pdf'" in wrong.stderr


def test_a_failed_resolve_is_finished_by_resume(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"], languages=["en"])
    incident = run_json(home, "trigger", PLAYBOOK)["incident"]
    webhook_sink.script("partners", Reply(401, body={"error": "bad signature"}))
    resolved = run_json(home, "resolve", incident, code=1)

    assert (resolved["ok"], resolved["closed"]) == (False, False)
    assert status_of(home, incident)["open"] is True

    resumed = run_json(home, "resume", incident)
    assert resumed["closed"] is True
    assert {d["channel"]: d["status"] for d in resumed["deliveries"]} == {"ops": "already-sent", "partners": "sent"}
    assert status_of(home, incident)["open"] is False
    assert sorted(webhook_sink.keys().values()) == [1, 1, 1, 2]  # only the refused one went twice


def test_a_channel_still_failing_does_not_hold_up_the_next_update_whose_words_replace_the_stale_ones(
        home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"], languages=["en"])
    webhook_sink.script("partners", *[Reply(401, body={"error": "bad signature"})] * 2)
    incident = run_json(home, "trigger", PLAYBOOK, code=1)["incident"]

    # The preview (and the confirmation, on a terminal) says what the update supersedes.
    preview = run_cli("update", incident, "--phase", "identified", "--dry-run", home=home)
    assert preview.code == 0, preview.output
    assert "Supersedes what earlier posts left unconfirmed here" in preview.stdout
    assert "post 1 · partners en: failed (refused (HTTP 401)" in preview.stdout
    assert len(webhook_sink.requests("partners")) == 1

    # partners still refuses: ops gets the update all the same, as the operator asked.
    updated = run_json(home, "update", incident, "--phase", "identified", code=1)
    assert {d["channel"]: d["status"] for d in updated["deliveries"]} == {"ops": "sent", "partners": "failed"}
    # partners is fixed: resume sends it the update, never the first notice the update replaced.
    resumed = run_json(home, "resume", incident)
    assert {d["channel"]: d["status"] for d in resumed["deliveries"]} == {"ops": "already-sent", "partners": "sent"}
    bodies = [json.loads(r.body) for r in webhook_sink.requests("partners")]
    assert [b["phase"] for b in bodies] == ["investigating", "identified", "identified"]
    status = run_cli("status", incident, home=home)
    assert re.search(r"^partners +en +superseded", status.stdout, re.MULTILINE), status.stdout
    assert "superseded by post 2 (identified): not sent, it would say something out of date" in status.stdout
    nothing = run_cli("resume", incident, home=home)
    assert nothing.code == 2 and "nothing left to send" in nothing.stderr
    assert len(webhook_sink.requests("partners")) == 3


def test_the_human_result_tells_how_to_finish(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"], languages=["en"])
    webhook_sink.script("partners", Reply(401, body={"error": "bad signature"}))
    result = run_cli("trigger", PLAYBOOK, home=home)

    assert result.code == 1
    assert "refused (HTTP 401)" in result.stdout
    assert "1 delivery(ies) failed" in result.stdout
    assert "playbook resume whatsapp-outage-" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--var", "colour=red"), "colour"),
    (("--var", "cause"), "cause"),
    (("--detected-at", "yesterday"), "--detected-at: 'yesterday' is not a moment"),
    (("--detected-at", "+2h"), "--detected-at: '+2h' is 2h in the future ("),
])
def test_invalid_input_exits_2_and_sends_and_records_nothing(home: Path, webhook_sink: WebhookSink,
                                                             args: tuple[str, ...], message: str) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    result = run_cli("trigger", PLAYBOOK, *args, home=home)

    assert result.code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert result.stdout == ""
    assert webhook_sink.connections == 0
    assert not (home / ".playbook").exists()


def test_an_unknown_playbook_or_incident_exits_2(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    unknown = run_cli("trigger", "whatsapp-outgae", home=home)
    assert unknown.code == 2
    assert "no playbook 'whatsapp-outgae' (did you mean 'whatsapp-outage'?)" in unknown.stderr

    run_json(home, "trigger", PLAYBOOK)
    for args in (("update", "nope", "--phase", "identified"), ("resolve", "nope"), ("resume", "nope"),
                 ("status", "nope"), ("timeline", "nope")):
        result = run_cli(*args, home=home)
        assert result.code == 2, (args, result.output)
        assert "no incident 'nope' in the ledger" in result.stderr


def test_a_missing_environment_variable_names_the_channel_and_sends_nothing(home: Path,
                                                                            webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"], secret=None)
    result = run_cli("trigger", PLAYBOOK, "--yes", home=home, env={"WEBHOOK_SECRET": ""})

    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "channel 'ops' setting 'secret': ${WEBHOOK_SECRET} is not set (export WEBHOOK_SECRET=... or add it to" \
        in lines[0]
    assert webhook_sink.connections == 0
    assert not (home / ".playbook").exists()
