"""`playbook rehearse` and drills: each way to break a home fails the right named check."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli, write
from tests.fakes.smtp import SmtpServer, self_signed
from tests.fakes.social import X_CREDENTIALS, X
from tests.fakes.x_api import FakeXApi
from tests.test_email import use_email


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
    # The online checks skipped offline: the three channels of the phases and the one reminders go through.
    assert failed == 0 and skipped == 4 and total > 20
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
    # validate says it too, in the same words: the two can no longer disagree.
    assert names == ["playbook, templates and channels validate", "variable 'region' has a value"]
    assert result.stdout.count("add `sample:` to vars.region") >= 2


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
    X.use(home, fake_x.url)
    expired = {**X.env, "X_ACCESS_TOKEN": "at-expired-0000000000"}
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


def test_rehearse_drill_with_nothing_to_drill_fails_says_why_and_records_no_drill(home: Path,
                                                                                   tmp_path: Path) -> None:
    result = run_cli("rehearse", "--offline", "--drill", "--junit", str(tmp_path / "r.xml"), home=home)
    assert result.code == 1
    _, _, _, names = _junit_counts(tmp_path / "r.xml")
    assert names == ["drill through the sandbox channels"]
    failure = ET.parse(tmp_path / "r.xml").getroot().find(".//failure")
    assert failure is not None and failure.get("message", "").startswith(
        "nothing to drill: channels.yaml has no `drill:` section mapping this playbook's channels "
        "(x, website, customers) to sandbox channels")
    assert "checks failed" in result.stdout
    db = sqlite3.connect(home / ".playbook" / "state.db")
    try:
        assert db.execute("SELECT count(*) FROM incidents").fetchone() == (0,)
    finally:
        db.close()


@pytest.mark.timeout(300)  # 2,000 real SMTP sessions on a shared, loaded machine
def test_the_window_budget_learns_the_pace_of_a_2000_email_drill(home: Path, smtp_server: SmtpServer,
                                                                  tls: tuple[Path, Path]) -> None:
    from playbook.commands.rehearse import rehearse
    from playbook.home.locate import Home

    use_email(home, smtp_server, tls, connections=4)
    write(home / "contacts" / "customers.csv",
          "email,language,name\n" + "".join(f"client{n}@example.com,fr,Client {n}\n" for n in range(2000)))
    channels = yaml.safe_load((home / "channels.yaml").read_text())
    channels["channels"]["customers-drill"] = dict(channels["channels"]["customers"])
    channels["drill"] = {"customers": "customers-drill"}
    write(home / "channels.yaml", yaml.safe_dump(channels, allow_unicode=True, sort_keys=False))

    before = {t.channel: t for t in rehearse(Home(root=home), ["whatsapp-outage"], offline=True)[0].timings}
    assert before["customers"].source.startswith("default: 0.25 s per message")
    drilled = rehearse(Home(root=home), ["whatsapp-outage"], offline=True, drill=True)[0]
    assert len(smtp_server.messages) == 2000
    took = {t.channel: t for t in drilled.timings if t.measured}["customers-drill"].seconds

    after = {t.channel: t for t in rehearse(Home(root=home), ["whatsapp-outage"], offline=True)[0].timings}
    predicted = after["customers"]
    assert took / 2 <= predicted.seconds <= took * 2, (predicted.seconds, took, predicted.arithmetic)
    assert re.match(r"ledger: 2,000 message\(s\) of 'customers-drill' in whatsapp-outage-drill-\S+ took [\d.]+ s, "
                    r"measured \d{4}-\d\d-\d\d \d\d:\d\d UTC: [\d.]+ in parallel achieved$", predicted.source)


def test_the_budget_names_its_source_and_rate_caps_a_fast_measured_pace(
        home: Path, smtp_server: SmtpServer, tls: tuple[Path, Path]) -> None:
    from datetime import UTC, datetime

    from playbook.commands.window_check import channel_budget
    from playbook.home.channel_config import load_channels
    from playbook.home.locate import Home

    use_email(home, smtp_server, tls, rate=10, connections=4)
    publisher = load_channels(Home(root=home)).publisher("customers", ["fr", "en"], offline=True)
    measured = datetime(2026, 11, 30, 6, 10, tzinfo=UTC)
    # A drill mailed 2,000 in 20 s (100 a second, 4 in flight at 0.04 s each): 60,000 would take 600 s,
    # but `rate: 10` still makes them 6,000 s.
    budget, source = channel_budget(publisher, 60_000,
                                    ("customers-drill", ("fire-drill-1", 2000, 20.0, 0.04, measured)), None)
    assert (budget.seconds, budget.bound) == (6000, "rate")
    assert budget.arithmetic.startswith("60,000 message(s) x 0.040 s (measured) / 4 in parallel = 600 s")
    assert source == ("ledger: 2,000 message(s) of 'customers-drill' in fire-drill-1 took 20.0 s, measured "
                      "2026-11-30 06:10 UTC: 4 in parallel achieved")
    budget, source = channel_budget(publisher, 100, None, (0.5, measured))
    assert budget.seconds == 12.5 and source == "timed check, measured 2026-11-30 06:10 UTC"
    budget, source = channel_budget(publisher, 100, None, None)
    assert budget.seconds == 10 and source == "default: 0.25 s per message for this channel type"


def test_a_drill_rehearsal_still_checks_the_live_channels_credentials(home: Path, tmp_path: Path) -> None:
    channels = home / "channels.yaml"
    channels.write_text(channels.read_text() + "\n  ops:\n    type: webhook\n    url: ${OPS_HOOK_URL}\n"
                        + SANDBOXES + "  ops: x-sandbox\n")
    playbook = home / "playbooks/whatsapp-outage.yaml"
    playbook.write_text(playbook.read_text().replace("channels: [x, website, customers]",
                                                     "channels: [x, website, customers, ops]", 1))
    result = run_cli("rehearse", "--offline", "--drill", "--junit", str(tmp_path / "r.xml"), home=home)
    # The drill goes through the sandbox, but on the day the live webhook needs its URL: --drill adds checks,
    # it never hides a live channel's missing secret.
    assert result.code == 1, result.output
    _, _, _, names = _junit_counts(tmp_path / "r.xml")
    assert "$OPS_HOOK_URL set (channel 'ops')" in names


def test_a_sandbox_of_another_type_lends_no_pace_to_the_live_channel(home: Path, tmp_path: Path) -> None:
    channels = home / "channels.yaml"
    channels.write_text(channels.read_text().replace("drill:", "  customers-console: {type: console}\ndrill:")
                        + SANDBOXES.replace("drill:", "  customers-console: {type: console}\ndrill:")
                        + "  customers: customers-console\n")
    assert run_cli("trigger", "whatsapp-outage", "--drill", "--yes", home=home).code == 0
    result = run_cli("rehearse", "--offline", "--report", str(tmp_path / "r.md"), home=home)
    assert result.code == 0, result.output
    rows = {line.split("|")[1].strip(): line for line in (tmp_path / "r.md").read_text().splitlines()
            if line.startswith("| ") and line.count("|") > 4}
    customers = next(line for name, line in rows.items() if name.startswith("customers"))
    x = next(line for name, line in rows.items() if name.startswith("x"))
    # Printing on a terminal says nothing of how fast the live channel goes; a file sandbox does stand for a file
    # channel (as a local SMTP sandbox stands for email).
    assert "customers-console" not in customers and "default:" in customers, customers
    assert "'x-sandbox'" in x, x


def test_a_drill_with_nothing_to_drill_is_refused_and_records_nothing(home: Path) -> None:
    result = run_cli("trigger", "whatsapp-outage", "--drill", "--yes", home=home)
    assert result.code == 2, result.output
    assert result.stderr.startswith("error: nothing to drill: channels.yaml has no `drill:` section")
    assert "Everything went out" not in result.output
    assert not (home / ".playbook" / "state.db").exists()


def test_a_drill_measures_each_text_against_the_live_channel_it_stands_in_for(home: Path) -> None:
    channels = home / "channels.yaml"
    channels.write_text(channels.read_text().replace(
        "  x:\n    type: file\n    path: outbox/x.jsonl",
        "  x:\n    type: x\n    consumer_key: ${X_CONSUMER_KEY}\n    consumer_secret: ${X_CONSUMER_SECRET}\n"
        "    access_token: ${X_ACCESS_TOKEN}\n    access_token_secret: ${X_ACCESS_TOKEN_SECRET}") + SANDBOXES)
    template = home / "templates/whatsapp-outage/investigating.fr.j2"
    template.write_text(template.read_text().replace("{% block short %}", "{% block short %}" + "Long. " * 60))
    for how in ("--dry-run", "--yes"):
        # The live X credentials are not needed to drill, but its limit is: the sandbox file would take anything.
        result = run_cli("trigger", "whatsapp-outage", "--drill", how, home=home)
        assert result.code == 2, result.output
        assert re.search(r"block 'short' is too long for channel 'x': \d{3}/280 weighted characters", result.stderr)
    assert not (home / "outbox" / "x-drill.jsonl").exists()
