"""`playbook rehearse` and drills: each way to break a home fails the right named check."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli, write
from tests.fakes.smtp import SmtpServer, self_signed
from tests.fakes.x_api import FakeXApi
from tests.test_email import use_email
from tests.test_x import CREDENTIALS as X_CREDENTIALS
from tests.test_x import ENV as X_ENV
from tests.test_x import use_x


@pytest.fixture
def fake_x() -> Iterator[FakeXApi]:
    with FakeXApi(X_CREDENTIALS) as fake:
        yield fake


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def smtp_server(tls: tuple[Path, Path]) -> Iterator[SmtpServer]:
    with SmtpServer(cert=tls) as server:
        yield server


SANDBOXES = """
  x-sandbox: {type: file, path: outbox/x-drill.jsonl}
  website-staging: {type: file, path: outbox/website-drill.jsonl}
drill:
  x: x-sandbox
  website: website-staging
"""


def _junit_counts(path: Path) -> tuple[int, int, int, list[str]]:
    root = ET.parse(path).getroot()
    cases = root.findall(".//testcase")
    failed = [c.get("name", "") for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert int(root.get("tests", "-1")) == len(cases)
    assert int(root.get("failures", "-1")) == len(failed)
    assert int(root.get("skipped", "-1")) == len(skipped)
    return len(cases), len(failed), len(skipped), failed


def test_a_healthy_home_passes_offline_with_junit_and_report(home: Path, tmp_path: Path) -> None:
    result = run_cli("rehearse", "--offline", "--junit", str(tmp_path / "r.xml"), "--report",
                     str(tmp_path / "r.md"), home=home)
    assert result.code == 0, result.output
    assert "All" in result.stdout and "checks passed" in result.stdout
    total, failed, skipped, _ = _junit_counts(tmp_path / "r.xml")
    assert failed == 0 and skipped == 3 and total > 20  # 3 online checks skipped offline
    report = (tmp_path / "r.md").read_text()
    assert "PASSED" in report and "within the 30m window" in report
    chart = tmp_path / "r.whatsapp-outage.svg"
    svg = ET.parse(chart).getroot()
    assert svg.tag.endswith("svg") and "window 30m" in chart.read_text()


def test_an_over_long_template_fails_the_render_check_with_its_count(home: Path, tmp_path: Path) -> None:
    channels = home / "channels.yaml"
    channels.write_text(channels.read_text().replace(
        "  x:\n    type: file\n    path: outbox/x.jsonl",
        "  x:\n    type: x\n    consumer_key: k\n    consumer_secret: s\n    access_token: t\n"
        "    access_token_secret: ts"))
    template = home / "templates/whatsapp-outage/identified.en.j2"
    template.write_text(template.read_text().replace("{% block short %}", "{% block short %}" + "Long. " * 60))
    result = run_cli("rehearse", "--offline", "--junit", str(tmp_path / "r.xml"), home=home)
    assert result.code == 1
    _, _, _, names = _junit_counts(tmp_path / "r.xml")
    assert "identified · en · x within limit" in names
    assert re.search(r"block 'short' is too long for channel 'x': \d{3}/280 weighted characters", result.stdout)


def test_an_unset_environment_variable_fails_the_environment_check(home: Path, tmp_path: Path) -> None:
    channels = home / "channels.yaml"
    channels.write_text(channels.read_text() + "\n  ops:\n    type: webhook\n    url: ${OPS_HOOK_URL}\n")
    playbook = home / "playbooks/whatsapp-outage.yaml"
    playbook.write_text(playbook.read_text().replace("channels: [x, website, customers]",
                                                     "channels: [x, website, customers, ops]", 1))
    result = run_cli("rehearse", "--offline", "--junit", str(tmp_path / "r.xml"), home=home)
    assert result.code == 1
    _, _, _, names = _junit_counts(tmp_path / "r.xml")
    assert "$OPS_HOOK_URL set (channel 'ops')" in names
    assert "export OPS_HOOK_URL=..." in result.stdout


def test_a_variable_without_default_or_sample_fails_the_variables_check(home: Path, tmp_path: Path) -> None:
    playbook = home / "playbooks/whatsapp-outage.yaml"
    playbook.write_text(playbook.read_text().replace("vars:\n", "vars:\n  region: {required: true}\n", 1))
    result = run_cli("rehearse", "--offline", "--junit", str(tmp_path / "r.xml"), home=home)
    assert result.code == 1
    _, _, _, names = _junit_counts(tmp_path / "r.xml")
    assert names == ["variable 'region' has a value"]
    assert "add `sample:` to vars.region" in result.stdout


def test_a_drill_posts_with_the_marker_through_sandboxes_and_leaves_live_incidents_alone(home: Path) -> None:
    channels = home / "channels.yaml"
    channels.write_text(channels.read_text() + SANDBOXES)
    live = run_cli("trigger", "whatsapp-outage", "--yes", "--json", home=home)
    assert live.code == 0, live.output
    live_id = json.loads(live.stdout)["incident"]
    live_lines = (home / "outbox/x.jsonl").read_text().splitlines()

    drill = run_cli("trigger", "whatsapp-outage", "--drill", "--yes", "--json", home=home)
    assert drill.code == 0, drill.output
    result = json.loads(drill.stdout)
    assert result["drill"] is True and "-drill-" in result["incident"] and result["incident"] != live_id
    by_channel = {(d["channel"], d["lang"]): d["status"] for d in result["deliveries"]}
    assert by_channel[("x-sandbox", "fr")] == "sent" and by_channel[("website-staging", "en")] == "sent"
    assert by_channel[("customers", "fr")] == "skipped"  # no sandbox: skipped and said so
    skipped = next(d for d in result["deliveries"] if d["channel"] == "customers")
    assert "no sandbox channel" in skipped["error"]

    posts = [json.loads(line) for line in (home / "outbox/x-drill.jsonl").read_text().splitlines()]
    shorts = {p["lang"]: p["blocks"]["short"] for p in posts}
    assert shorts["fr"].startswith("[EXERCICE] ") and shorts["en"].startswith("[DRILL] ")
    assert (home / "outbox/x.jsonl").read_text().splitlines() == live_lines  # live channel untouched

    status = json.loads(run_cli("status", "--json", home=home).stdout)
    kinds = {i["id"]: i["drill"] for i in status["incidents"]}
    assert kinds == {live_id: False, result["incident"]: True}
    again = run_cli("trigger", "whatsapp-outage", "--yes", home=home)
    assert again.code == 2 and live_id in again.stderr  # the open drill did not replace the live incident


def test_a_drill_dry_run_says_which_live_channel_each_sandbox_stands_in_for(home: Path) -> None:
    channels = home / "channels.yaml"
    channels.write_text(channels.read_text() + SANDBOXES)
    as_json = run_cli("trigger", "whatsapp-outage", "--drill", "--dry-run", "--json", home=home)
    assert as_json.code == 0, as_json.output
    stands = {d["channel"]: d.get("stands_in_for") for d in json.loads(as_json.stdout)["deliveries"]}
    assert stands == {"x-sandbox": "x", "website-staging": "website", "customers": None}
    table = run_cli("trigger", "whatsapp-outage", "--drill", "--dry-run", home=home, env={"COLUMNS": "250"})
    assert "(for x)" in table.stdout and "(for website)" in table.stdout


def test_rehearse_drill_times_each_sandbox_and_closes_the_drill(home: Path, tmp_path: Path) -> None:
    (home / "channels.yaml").write_text((home / "channels.yaml").read_text() + SANDBOXES)
    result = run_cli("rehearse", "--offline", "--drill", "--report", str(tmp_path / "r.md"), home=home)
    assert result.code == 0, result.output
    report = (tmp_path / "r.md").read_text()
    assert "measured in drill whatsapp-outage-drill-" in report
    assert "channel 'customers' (fr) delivered through its sandbox" in report  # skipped, and said so
    status = json.loads(run_cli("status", "--json", home=home).stdout)
    assert status["incidents"] == []  # the rehearsal's drill is closed once published


def test_status_shows_the_last_rehearsal_and_warns_when_it_is_stale(home: Path) -> None:
    before = run_cli("status", home=home)
    assert "has never been rehearsed" in before.stdout
    playbook = home / "playbooks/whatsapp-outage.yaml"
    playbook.write_text(playbook.read_text().replace("rehearse_every: 30d", "rehearse_every: 1s"))
    assert run_cli("rehearse", "--offline", home=home).code == 0
    fresh = json.loads(run_cli("status", "--json", home=home).stdout)["rehearsals"][0]
    assert fresh["passed"] is True and fresh["last_rehearsed_at"]
    time.sleep(1.2)
    stale = run_cli("status", home=home)
    assert re.search(r"warning: playbook 'whatsapp-outage' last rehearsed .*: passed, more than 1s ago", stale.stdout)


def test_an_invalid_playbook_is_one_failed_check_not_a_crash(home: Path, tmp_path: Path) -> None:
    write(home / "playbooks/broken.yaml", "id: broken\nname: [unclosed\n")
    result = run_cli("rehearse", "broken", "--offline", "--junit", str(tmp_path / "r.xml"), home=home)
    assert result.code == 1 and "Traceback" not in result.output
    _, failed, _, names = _junit_counts(tmp_path / "r.xml")
    assert failed == 1 and names == ["playbook loads"]
    assert "playbooks/broken.yaml:" in result.stdout and "invalid YAML" in result.stdout


def test_expired_x_credentials_fail_the_channel_check(home: Path, tmp_path: Path, fake_x: FakeXApi) -> None:
    use_x(home, fake_x.url)
    expired = {**X_ENV, "X_ACCESS_TOKEN": "at-expired-0000000000"}
    result = run_cli("rehearse", "--junit", str(tmp_path / "r.xml"), home=home, env=expired)
    assert result.code == 1
    _, _, _, names = _junit_counts(tmp_path / "r.xml")
    assert names == ["channel 'x' (x) online check"]
    assert "X refused the credentials (401)" in result.stdout
    assert "at-expired-0000000000" not in result.output + (tmp_path / "r.xml").read_text()


def test_a_wrong_smtp_password_fails_the_channel_check(home: Path, tmp_path: Path, smtp_server: SmtpServer,
                                                       tls: tuple[Path, Path]) -> None:
    use_email(home, smtp_server, tls, secret="not-the-password-42")
    result = run_cli("rehearse", "--junit", str(tmp_path / "r.xml"), home=home)
    assert result.code == 1
    _, _, _, names = _junit_counts(tmp_path / "r.xml")
    assert names == ["channel 'customers' (email) online check"]
    assert "password" in result.stdout and "not-the-password-42" not in result.output
    assert smtp_server.messages == []  # a check sends nothing


def test_a_list_too_large_for_the_window_at_its_rate_fails_with_the_arithmetic_and_the_fix(
        home: Path, tmp_path: Path, smtp_server: SmtpServer, tls: tuple[Path, Path]) -> None:
    use_email(home, smtp_server, tls, rate=10, connections=4)
    rows = "".join(f"client{n}@example.com,fr,Client {n}\n" for n in range(60_000))
    write(home / "contacts" / "customers.csv", "email,language,name\n" + rows)
    result = run_cli("rehearse", "--offline", "--junit", str(tmp_path / "r.xml"), "--report",
                     str(tmp_path / "r.md"), home=home)
    assert result.code == 1
    _, _, _, names = _junit_counts(tmp_path / "r.xml")
    assert names == ["channel 'customers' delivers 'investigating' within 30m",
                     "first phase fully delivered within 30m"]
    report = (tmp_path / "r.md").read_text()
    assert "60,000 at 10/s (rate) = 6,000 s" in report  # 100 minutes
    assert "raise `rate` to at least 33.3 per second" in report
    assert "send a first wave of at most 18,000" in report
    assert "Today the 30m window would be MISSED: 'customers' (email) needs about 1h40m" in report
