"""Times users give are sane: a detection within the last week and not ahead of the clock, windows that last."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from playbook.timeparse import parse_detection
from tests.conftest import run_cli, run_main, write

PLAYBOOK = "whatsapp-outage"
NOW = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("now", NOW),
    ("-15m", NOW - timedelta(minutes=15)),
    ("-7d", NOW - timedelta(days=7)),
    ("+1m", NOW + timedelta(minutes=1)),
    ("2026-11-25T14:05:30Z", NOW + timedelta(seconds=30)),
    ("2026-11-18T15:05+01:00", NOW - timedelta(days=7)),
])
def test_a_detection_within_the_last_week_or_a_minute_ahead_is_taken(text: str, expected: datetime) -> None:
    assert parse_detection(text, reference=NOW) == expected


@pytest.mark.parametrize(("text", "error"), [
    ("-7d1s", "'-7d1s' is more than 7 days ago (2026-11-18 14:04 UTC); check the date"),
    ("2025-11-25T14:05", "'2025-11-25T14:05' is more than 7 days ago (2025-11-25 14:05 UTC); check the date"),
    ("+1m1s", "'+1m1s' is 1m01s in the future (2026-11-25 14:06 UTC); give when the outage was detected"),
    ("2026-11-25T16:05+01:00", "'2026-11-25T16:05+01:00' is 1h in the future (2026-11-25 15:05 UTC); give when the "
                               "outage was detected"),
])
def test_a_detection_too_old_or_in_the_future_is_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_detection(text, reference=NOW)
    assert str(raised.value) == error


@pytest.mark.parametrize(("when", "error"), [
    ("-8d", "error: --detected-at: '-8d' is more than 7 days ago ("),
    ("+2h", "error: --detected-at: '+2h' is 2h in the future ("),
    # A date without an offset is in the playbook's zone (Europe/Paris), and the error speaks that zone.
    ("2020-01-01", "error: --detected-at: '2020-01-01' is more than 7 days ago (2020-01-01 00:00 CET); check the date"),
])
def test_trigger_refuses_a_detection_too_old_or_ahead_and_records_nothing(home: Path, when: str, error: str) -> None:
    for args in (("--dry-run",), ("--yes",)):
        said = run_main("--home", str(home), "trigger", PLAYBOOK, "--detected-at", when, *args)
        assert said.code == 2, said
        assert said.stderr.startswith(error) and said.stderr.count("\n") == 1, said.stderr
    assert not (home / ".playbook").exists() and not (home / "outbox").exists()


def test_status_judges_an_incident_by_the_window_it_was_opened_under(home: Path) -> None:
    opened = run_cli("trigger", PLAYBOOK, "--yes", "--json", "--detected-at", "-20m", home=home)
    assert opened.code == 0, opened.output
    incident = json.loads(opened.stdout)["incident"]
    playbook_file = home / "playbooks" / f"{PLAYBOOK}.yaml"
    # Someone tightens the playbook afterwards: the incident was on time under the 30 minutes it had.
    write(playbook_file, playbook_file.read_text(encoding="utf-8").replace("window: 30m", "window: 10m"))

    said = run_cli("status", incident, "--json", home=home)
    assert said.code == 0, said.output
    (seen,) = json.loads(said.stdout)["incidents"]
    assert seen["window_met"] is True


@pytest.mark.parametrize(("line", "written", "error"), [
    ("window: 30m", "window: 0s", "playbooks/whatsapp-outage.yaml:15:1: window: must be longer than 0s, e.g. 30m"),
    ("update_every: 60m", "update_every: 0m",
     "playbooks/whatsapp-outage.yaml:17:1: update_every: must be longer than 0s, e.g. 30m"),
])
def test_a_window_or_cadence_of_nothing_is_refused_at_its_line(home: Path, line: str, written: str,
                                                                error: str) -> None:
    playbook_file = home / "playbooks" / f"{PLAYBOOK}.yaml"
    write(playbook_file, playbook_file.read_text(encoding="utf-8").replace(line, written, 1))
    checked = run_main("--home", str(home), "validate")
    assert checked.code == 2 and f"error: {error}" in checked.stderr.splitlines(), checked
    said = run_main("--home", str(home), "trigger", PLAYBOOK, "--yes")
    assert (said.code, said.stderr) == (2, f"error: {error}\n")
    assert not (home / ".playbook").exists()
