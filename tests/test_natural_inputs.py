"""Times as an operator types them at 2 a.m.: `--detected-at 05:20`, `--var eta=18:00`, in the playbook's zone."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from playbook.errors import VariableError
from playbook.home.locate import Home
from playbook.rendering.variables import resolve
from playbook.timeparse import parse_clock, parse_coming, parse_moment
from tests.conftest import run_cli, write
from tests.fakes.http import WebhookSink, use_webhooks

PARIS = ZoneInfo("Europe/Paris")
# 06:02 in Paris on 25 November (UTC+1): every test reads the clock from here, never from the machine.
NOW = datetime(2026, 11, 25, 5, 2, tzinfo=UTC)


@pytest.mark.parametrize("text", ["05:20", "5:20", "5h20", "05h20", " 5H20 "])
def test_a_time_of_day_is_read_however_it_is_typed(text: str) -> None:
    clock = parse_clock(text)
    assert clock is not None and (clock.hour, clock.minute) == (5, 20)


@pytest.mark.parametrize("text", ["24:00", "5:6", "5h200", "520", "h20", "-15m", "2026-11-25"])
def test_what_is_not_a_time_of_day_is_left_to_the_other_forms(text: str) -> None:
    assert parse_clock(text) is None


def test_a_detection_time_is_today_in_the_playbooks_zone() -> None:
    detected = parse_moment("05:20", reference=NOW, zone=PARIS)
    assert detected == datetime(2026, 11, 25, 5, 20, tzinfo=PARIS)
    assert parse_moment("5h", reference=NOW, zone=PARIS) == datetime(2026, 11, 25, 5, 0, tzinfo=PARIS)


def test_a_detection_time_still_to_come_today_is_yesterdays() -> None:
    assert parse_moment("06:30", reference=NOW, zone=PARIS) == datetime(2026, 11, 24, 6, 30, tzinfo=PARIS)
    # The zone decides which day it is: at 00:30 in Paris it is still the 24th in UTC.
    just_after_midnight = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    assert parse_moment("00:10", reference=just_after_midnight, zone=PARIS) == datetime(
        2026, 11, 25, 0, 10, tzinfo=PARIS)


def test_a_naive_iso_moment_is_in_the_playbooks_zone() -> None:
    assert parse_moment("2026-11-25T05:20", reference=NOW, zone=PARIS) == datetime(2026, 11, 25, 4, 20, tzinfo=UTC)
    assert parse_moment("2026-11-25T05:20Z", reference=NOW, zone=PARIS) == datetime(2026, 11, 25, 5, 20, tzinfo=UTC)


def test_an_expected_time_is_today_or_tomorrow_once_past() -> None:
    assert parse_coming("18:00", reference=NOW, zone=PARIS) == datetime(2026, 11, 25, 18, 0, tzinfo=PARIS)
    assert parse_coming("06:00", reference=NOW, zone=PARIS) == datetime(2026, 11, 26, 6, 0, tzinfo=PARIS)
    assert parse_coming("+2h", reference=NOW, zone=PARIS) == NOW + timedelta(hours=2)


def test_a_datetime_variable_given_as_a_time_is_stored_with_the_playbooks_offset(home: Path) -> None:
    playbook = Home(home).load_playbook("whatsapp-outage")
    assert playbook.vars["eta"].is_datetime  # its sample is an ISO 8601 date-time
    assert not playbook.vars["cause"].is_datetime
    values = resolve(playbook, {"eta": "18h", "cause": "18:00"}, now=NOW)
    assert values["eta"] == "2026-11-25T18:00+01:00"
    assert values["cause"] == "18:00"  # a text variable keeps what was typed


def test_an_explicit_type_decides_what_a_variable_is(home: Path) -> None:
    path = home / "playbooks" / "whatsapp-outage.yaml"
    write(path, path.read_text(encoding="utf-8").replace(
        "  cause: {required: false,", "  back_at: {type: datetime}\n  cause: {required: false,"))
    playbook = Home(home).load_playbook("whatsapp-outage")
    assert resolve(playbook, {"back_at": "5:45"}, now=NOW)["back_at"] == "2026-11-26T05:45+01:00"


def test_a_wrong_date_time_variable_names_the_var_and_gives_an_example(home: Path) -> None:
    playbook = Home(home).load_playbook("whatsapp-outage")
    with pytest.raises(VariableError) as caught:
        resolve(playbook, {"eta": "soon"}, now=NOW)
    assert str(caught.value) == (
        "--var eta: 'soon' is not a date-time: write a time of day such as --var eta=18:00 (today, or tomorrow "
        "once past, Europe/Paris time), or ISO 8601 such as --var eta=2026-11-25T18:00+01:00, or a delay such "
        "as --var eta=+2h")


def test_the_cli_refuses_a_wrong_eta_at_the_var_and_sends_nothing(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    result = run_cli("trigger", "whatsapp-outage", "--yes", "--var", "eta=tomorrow", home=home)
    assert result.code == 2
    assert result.stderr.startswith("error: --var eta: 'tomorrow' is not a date-time: write a time of day such as")
    assert "templates/" not in result.stderr
    assert webhook_sink.requests() == []


def test_trigger_takes_a_detection_time_and_an_eta_as_typed(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"], languages=["en"])
    before = datetime.now(UTC)
    result = run_cli("trigger", "whatsapp-outage", "--yes", "--json", "--detected-at", "5h20", "--var",
                     "eta=18:00", env={"TZ": "UTC"}, home=home)
    assert result.code == 0, result.output
    after = datetime.now(UTC)
    incident = json.loads(result.stdout)["incident"]
    status = json.loads(run_cli("status", incident, "--json", home=home).stdout)["incidents"][0]
    detected = datetime.fromisoformat(status["detected_at"])
    # The latest 05:20 in Paris, whatever the machine's zone and whenever the test runs.
    assert (detected.astimezone(PARIS).hour, detected.astimezone(PARIS).minute) == (5, 20)
    assert timedelta(0) <= after - detected < timedelta(days=1)
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        stored = json.loads(db.execute("SELECT vars FROM posts WHERE incident=?", (incident,)).fetchone()[0])
    eta = datetime.fromisoformat(stored["eta"])
    assert stored["eta"] == eta.astimezone(PARIS).isoformat(timespec="minutes")
    assert (eta.hour, eta.minute) == (18, 0)
    assert timedelta(0) < eta - before <= timedelta(days=1)
