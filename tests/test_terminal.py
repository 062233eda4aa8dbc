"""The operator's terminal, driven for real: a pseudo-terminal answers the confirmation, a terminal emulator
reads the screen as drawn, at 60 and 80 columns, with the machine in UTC and the playbook in Paris."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pexpect
import pyte
import pytest
import yaml

from tests.conftest import copy_example, run_cli
from tests.fakes.http import Reply, WebhookSink, use_webhooks

PARIS = ZoneInfo("Europe/Paris")
# Longer than the narrowest terminal, so that only a whole line keeps it whole.
LONG_URL = "https://hooks.example.test/posts/ops/incident-whatsapp-outage/a-long-permalink-to-copy-whole"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass
class Session:
    stream: str  # everything the command wrote, ANSI sequences removed, lines as written
    screen: list[str]  # what the terminal shows at the end, line by line
    code: int


def spawn(home: Path, *args: str, columns: int = 80) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if k not in ("PLAYBOOK_HOME", "PLAYBOOK_STATE", "COLUMNS")}
    # The machine's clock in UTC: every time shown must still be the playbook's (Europe/Paris), labelled.
    env.update({"TZ": "UTC", "TERM": "xterm-256color", "NO_COLOR": "1"})
    return pexpect.spawn(sys.executable, ["-m", "playbook", "--home", str(home), *args], env=env,
                         dimensions=(60, columns), encoding="utf-8", timeout=20)


def finish(child: pexpect.spawn, before: str = "", columns: int = 80) -> Session:
    child.expect(pexpect.EOF)
    raw = before + (child.before or "")
    child.close()
    screen = pyte.Screen(columns, 200)
    pyte.Stream(screen).feed(raw)
    shown = [line.rstrip() for line in screen.display]
    return Session(ANSI.sub("", raw).replace("\r\n", "\n"), shown, child.exitstatus)


def run(home: Path, *args: str, columns: int = 80) -> Session:
    return finish(spawn(home, *args, columns=columns), columns=columns)


@pytest.mark.parametrize("answer", ["enter", "ctrl-d"])
def test_the_confirmation_shows_the_words_and_enter_declines_with_exit_3_recording_nothing(home: Path,
                                                                                         answer: str) -> None:
    child = spawn(home, "trigger", "whatsapp-outage")
    child.expect(r"Publish\? \[y/N\]")
    shown = ANSI.sub("", child.before).replace("\r\n", "\n")
    # Each text once per language, with the channels that receive it.
    assert shown.count("title → x, website, customers\n") == 2
    assert "  Messages WhatsApp perturbés\u00a0: nous restons joignables" in shown
    assert "  WhatsApp messages delayed: you can still reach us" in shown
    assert re.search(r"^Deadline: \d\d:\d\d CET \(\d+m\d+s left\)$", shown, re.MULTILINE)
    if answer == "enter":
        child.sendline("")
    else:
        child.sendeof()
    session = finish(child)

    assert session.code == 3
    assert "Declined: nothing was sent and nothing recorded." in session.stream
    assert not (home / ".playbook").exists()
    assert not (home / "outbox").exists()


def test_yes_publishes_and_the_result_table_replaces_the_live_view_at_60_columns(
        home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"])
    webhook_sink.script("ops", Reply(body={"id": "1", "url": LONG_URL}))
    child = spawn(home, "trigger", "whatsapp-outage", columns=60)
    child.expect(r"Publish\? \[y/N\]")
    child.sendline("y")
    session = finish(child, columns=60)

    assert session.code == 0, session.stream
    assert len(webhook_sink.requests()) == 4
    screen = "\n".join(session.screen)
    incident = re.search(r"Incident: (whatsapp-outage-\d{8}-\d{4})", session.stream)
    assert incident, session.stream
    # Whole on a line of the screen: not cut by the terminal's width either.
    assert sum(incident.group(1) in line for line in session.screen) == 2, screen
    # The live view is gone from the screen; the final table is there once, links whole below it.
    assert "Publishing" not in screen
    assert len(re.findall(r"^(ops|partners) +(fr|en) +sent ", screen, re.MULTILINE)) == 4
    # Each row whole on its line, its time included: nothing wraps under itself (the zone heads the column).
    whole_row = r"^(ops|partners) +(fr|en) +sent +\d\d:\d\d +\d+\.\ds +met +1 *$"
    assert len(re.findall(whole_row, screen, re.MULTILINE)) == 4, screen
    # Both languages go to /ops at once: either may get the long link.
    assert re.search(rf"^ops (fr|en): {re.escape(LONG_URL)}$", session.stream, re.MULTILINE), session.stream


@pytest.mark.parametrize("columns", [60, 80])
def test_status_keeps_ids_urls_and_the_resume_hint_whole(home: Path, webhook_sink: WebhookSink,
                                                         columns: int) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"])
    webhook_sink.script("ops", Reply(body={"id": "1", "url": LONG_URL}))
    webhook_sink.script("partners", *[Reply(status=400, body={"error": "no such partner feed"})] * 2)
    triggered = run_cli("trigger", "whatsapp-outage", "--yes", home=home, env={"COLUMNS": str(columns)})
    assert triggered.code == 1, triggered.output
    incident = re.search(r"playbook resume (whatsapp-outage-\d{8}-\d{4})\n", triggered.stdout)
    assert incident, triggered.stdout

    session = run(home, "status", columns=columns)
    assert session.code == 0
    lines = session.stream.splitlines()
    assert any(line.startswith(f"{incident.group(1)} · whatsapp-outage") for line in lines), session.stream
    assert re.search(rf"^1\. ops (fr|en): {re.escape(LONG_URL)}$", session.stream, re.MULTILINE), session.stream
    assert re.search(r"^1\. partners (fr|en): .*HTTP 400", session.stream, re.MULTILINE), session.stream
    # The table itself fits the terminal: nothing of it is folded onto the next line by the terminal.
    assert all(len(line) <= columns for line in lines if " sent " in line or " failed " in line)


def test_times_are_the_playbooks_labelled_and_the_id_carries_its_local_time(home: Path,
                                                                            webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    detected = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)
    triggered = run_cli("trigger", "whatsapp-outage", "--yes", "--json", "--detected-at", detected.isoformat(),
                        home=home, env={"TZ": "UTC"})
    data = json.loads(triggered.stdout)
    local = detected.astimezone(PARIS)
    assert data["incident"] == f"whatsapp-outage-{local:%Y%m%d-%H%M}"
    # JSON keeps ISO 8601 with its offset.
    assert datetime.fromisoformat(data["deliveries"][0]["sent_at"]).utcoffset() is not None

    session = run(home, "status")
    label = local.tzname()
    assert re.search(rf"detected (\d{{4}}-\d\d-\d\d )?{local:%H:%M} {label} · first notice at \d\d:\d\d {label}",
                     session.stream), session.stream
    due = (datetime.fromisoformat(data["deliveries"][0]["sent_at"]) + timedelta(hours=1)).astimezone(PARIS)
    assert re.search(rf"next update due (\d{{4}}-\d\d-\d\d )?\d\d:\d\d {label}\n", session.stream)
    assert due.tzname() == label


def test_resume_asks_like_update_and_takes_yes(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    webhook_sink.script("ops", *[Reply(status=400)] * 2)
    triggered = run_cli("trigger", "whatsapp-outage", "--yes", "--json", home=home)
    assert triggered.code == 1
    incident = json.loads(triggered.stdout)["incident"]
    sent = len(webhook_sink.requests())

    child = spawn(home, "resume", incident)
    child.expect(r"Publish\? \[y/N\]")
    child.sendline("n")
    declined = finish(child)
    assert declined.code == 3
    assert len(webhook_sink.requests()) == sent

    resumed = run(home, "resume", incident, "--yes")
    assert resumed.code == 0, resumed.stream
    assert "Publish?" not in resumed.stream
    assert len(webhook_sink.requests()) == sent + 2


def test_the_live_view_says_why_and_a_console_channel_prints_above_it(home: Path,
                                                                      webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"], languages=["en"])
    channels = yaml.safe_load((home / "channels.yaml").read_text())
    channels["channels"]["screen"] = {"type": "console", "stream": "stdout", "languages": ["fr"]}
    (home / "channels.yaml").write_text(yaml.safe_dump(channels))
    playbook_path = home / "playbooks" / "whatsapp-outage.yaml"
    playbook = yaml.safe_load(playbook_path.read_text(encoding="utf-8"))
    playbook["phases"]["investigating"]["channels"] = ["ops", "screen"]
    playbook_path.write_text(yaml.safe_dump(playbook, allow_unicode=True, sort_keys=False), encoding="utf-8")
    # Two seconds to wait: the view has time to show why, and when the next attempt comes.
    webhook_sink.script("ops", Reply(status=503, headers={"Retry-After": "2"}))

    child = spawn(home, "trigger", "whatsapp-outage", columns=120)
    child.expect(r"Publish\? \[y/N\]")
    child.sendline("y")
    child.expect(r"next try \d\d:\d\d:\d\d CET")
    frame = ANSI.sub("", child.before)
    assert "HTTP 503" in frame
    assert re.search(r"Publishing \d/2 · deadline \d\d:\d\d CET", frame)
    session = finish(child, child.before + child.after, columns=120)

    assert session.code == 0, session.stream
    screen = "\n".join(session.screen)
    assert "--- screen [fr] investigating ---\nMessages WhatsApp perturbés" in screen
    # The view is gone once the result is shown: nothing of it below what the console channel printed. (Above
    # it, a frame can survive: rich's refresh thread may draw one between a line printed above the view and the
    # erasing of the view that line's own write carries, a rare race of its threads, not of what is shown.)
    assert "Publishing" not in screen[screen.index("--- screen [fr]"):]
    assert re.search(r"^ops +en +sent ", screen, re.MULTILINE)


def test_channels_at_60_columns_keep_every_setting_whole(tmp_path: Path) -> None:
    listed = run_cli("channels", home=copy_example(tmp_path), env={"COLUMNS": "60"})
    assert listed.code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert "customers · email · fr, en" in lines
    for setting in ("  url: https://status.example.com/", "  from: Example Support <support@example.com>",
                    "  recipients: contacts/customers.csv", "  consumer_key: ${X_CONSUMER_KEY}"):
        assert setting in lines, listed.stdout


def test_dry_run_and_render_show_each_text_once_with_its_channels(home: Path) -> None:
    dry = run_cli("trigger", "whatsapp-outage", "--dry-run", home=home, env={"COLUMNS": "60"})
    assert dry.code == 0, dry.output
    # Three channels, two languages, four blocks: each text once, not once per channel.
    title = "Messages WhatsApp perturbés\u00a0: nous restons joignables par e-mail, téléphone et chat"
    assert dry.stdout.count(title) == 1
    assert dry.stdout.count("→ x, website, customers\n") == 8
    assert len(dry.stdout.splitlines()) < 80
    rendered = run_cli("render", "whatsapp-outage", "--lang", "en", home=home, env={"COLUMNS": "60"})
    assert rendered.stdout.count("body → x, website, customers\n") == 1


def test_rehearse_sums_up_what_passed_and_prints_each_failure_whole(tmp_path: Path) -> None:
    result = run_cli("rehearse", "--offline", home=copy_example(tmp_path), env={"COLUMNS": "60"})
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert any(re.fullmatch(r"✓ render: \d+ passed", line) for line in lines), result.stdout
    # The three channels of the phases and the one reminders go through.
    assert "- channels: 4 skipped (--offline)" in lines
    assert any(line.startswith("✗ FAIL environment: $SMTP_PASSWORD set (channel 'customers'): not set: "
                               "export SMTP_PASSWORD=... or add it to ") for line in lines), result.stdout
    assert len(lines) < 20
