"""Monitors: the playbook format, each probe against a local fake of what it watches, the tracker that turns
probes into state changes, and what validate and rehearse say of them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from playbook.commands.rehearsal import Check
from playbook.commands.rehearse import rehearse
from playbook.errors import ConfigError, PlaybookError
from playbook.home.locate import Home
from playbook.home.model import Monitor, Playbook
from playbook.monitoring.probes import Finding, probe
from playbook.monitoring.tracker import Change, Tracker
from tests.conftest import free_port, run_cli, write
from tests.fakes.monitors import FakeCloudHealth, FakeHealthUrl, FakeStatusPage
from tests.fakes.provider import Answer

COMPONENT = "WhatsApp Business API"
TOKEN = "EAAGm0PX4ZCpsBAKq7zLtoken"  # distinctive, so a leak is easy to grep
NUMBER = "1234567890"

PLAYBOOK = """\
id: outage
name: {fr: Panne, en: Outage}
languages: [fr, en]
window: 30m
update_every: 1h
phases:
  investigating: {channels: [x]}
  resolved: {channels: [x]}
"""


@pytest.fixture
def status_page() -> Iterator[FakeStatusPage]:
    with FakeStatusPage(COMPONENT) as fake:
        yield fake


@pytest.fixture
def cloud_api() -> Iterator[FakeCloudHealth]:
    with FakeCloudHealth(TOKEN, NUMBER) as fake:
        yield fake


@pytest.fixture
def health_url() -> Iterator[FakeHealthUrl]:
    with FakeHealthUrl() as fake:
        yield fake


def load(tmp_path: Path, monitoring: str) -> Playbook:
    write(tmp_path / "playbooks" / "outage.yaml", PLAYBOOK + monitoring)
    return Home(tmp_path).load_playbook("outage")


def error_of(tmp_path: Path, monitoring: str) -> str:
    with pytest.raises(PlaybookError) as caught:
        load(tmp_path, monitoring)
    return str(caught.value)


def look(monitor: Monitor, env: dict[str, str] | None = None) -> Finding:
    """One probe, as the watcher runs it: an AsyncClient of its own, the home's environment."""
    async def once() -> Finding:
        async with httpx.AsyncClient() as client:
            return await probe(monitor, env or {}, client)
    return asyncio.run(once())


def statuspage(fake: FakeStatusPage, **settings: Any) -> Monitor:
    return Monitor.model_validate({"name": "provider-status", "type": "statuspage", "url": fake.summary_url,
                                   "component": COMPONENT, **settings})


def whatsapp(fake: FakeCloudHealth, **settings: Any) -> Monitor:
    return Monitor.model_validate({"name": "cloud-api", "type": "whatsapp", "phone_number_id": NUMBER,
                                   "access_token": "${WA_TOKEN}", "api_base": fake.api_base, **settings})


def http(url: str, **settings: Any) -> Monitor:
    return Monitor.model_validate({"name": "webhook-receiver", "type": "http", "url": url,
                                   "expect": {"status": 200, "contains": '"ok": true'}, **settings})


# -- the format --------------------------------------------------------------------------------------------

def test_the_issue_example_parses_with_its_defaults(tmp_path: Path) -> None:
    playbook = load(tmp_path, """\
monitors:
  - {name: provider-status, type: statuspage, url: "https://status.example/api/v2/summary.json",
     component: WhatsApp Business API}
  - {name: cloud-api, type: whatsapp, phone_number_id: 1234567890, access_token: "${WA_TOKEN}"}
  - {name: webhook-receiver, type: http, url: "https://api.example.com/health", expect: {contains: ok}}
watch: {every: 1s, fails: 2, on_detect: trigger, alert: [x]}
""")
    status, cloud, hook = playbook.monitors
    assert status.down_when == ["partial_outage", "major_outage"] and status.timeout == timedelta(seconds=10)
    # Unquoted in YAML, the number id is still the digits the user wrote.
    assert cloud.phone_number_id == "1234567890" and cloud.api_base == "https://graph.facebook.com/v21.0"
    assert hook.expect.status == 200 and hook.expect.contains == "ok"
    watch = playbook.watch
    assert (watch.every, watch.fails, watch.recovers, watch.on_detect, watch.on_recover, watch.alert) == \
        (timedelta(seconds=1), 2, 3, "trigger", "alert", ["x"])


def test_a_playbook_without_monitors_watches_nothing(tmp_path: Path) -> None:
    playbook = load(tmp_path, "")
    assert playbook.monitors == [] and playbook.watch.alert == [] and playbook.watch.fails == 3


@pytest.mark.parametrize(("monitoring", "where", "message"), [
    ("monitors:\n  - {name: a, type: http, url: 'https://x.example', expct: {status: 200}}\n", ":10:",
     "unknown key 'expct' (did you mean 'expect'?)"),
    ("monitors:\n  - {name: a, type: statuspage, url: 'https://x.example'}\n", ":10:",
     "monitor 'a' (statuspage) needs 'component'"),
    ("monitors:\n  - name: a\n    type: whatsapp\n    phone_number_id: '1'\n", ":10:",
     "monitor 'a' (whatsapp) needs 'access_token'"),
    ("monitors:\n  - {name: a, type: http}\n", ":10:", "monitor 'a' (http) needs 'url'"),
    ("monitors:\n  - {name: a, type: http, url: api.example.com/health}\n", ":10:",
     "monitors.0.url: 'api.example.com/health' is not a web address: write it with https://"),
    ("monitors:\n  - name: a\n    type: http\n    url: 'https://x.example'\n    component: API\n", ":13:",
     "monitor 'a' (http) has no setting 'component': it is for statuspage monitors"),
    ("monitors:\n  - name: a\n    type: statuspage\n    url: 'https://x.example'\n    component: API\n"
     "    down_when: [major_outge]\n", ":14:", "unknown component status 'major_outge' (did you mean 'major_outage'?)"),
    ("monitors:\n  - {name: Cloud API, type: http, url: 'https://x.example'}\n", ":10:",
     "'Cloud API' is not a valid id"),
    ("monitors:\n  - {name: a, type: pager, url: 'https://x.example'}\n", ":10:",
     "monitors.0.type: Input should be 'statuspage', 'whatsapp' or 'http'"),
    ("monitors:\n  - {name: a, type: http, url: 'https://x.example'}\n"
     "  - {name: a, type: http, url: 'https://y.example'}\n", ":11:", "monitor name 'a' is used twice"),
    ("watch: {evry: 1m}\n", ":9:", "unknown key 'evry' (did you mean 'every'?)"),
    ("watch: {fails: 0}\n", ":9:", "watch.fails: Input should be greater than or equal to 1"),
    ("watch: {every: 0s}\n", ":9:", "watch.every: must be longer than 0s"),
    ("watch: {on_detect: publish}\n", ":9:", "watch.on_detect: Input should be 'alert' or 'trigger'"),
    ("watch:\n  alert: [x, team, x]\n", ":10:", "watch.alert lists 'x' twice"),
])
def test_a_wrong_monitor_or_watch_is_refused_at_its_line(tmp_path: Path, monitoring: str, where: str,
                                                         message: str) -> None:
    error = error_of(tmp_path, monitoring)
    assert f"outage.yaml{where}" in error and message in error


# -- statuspage --------------------------------------------------------------------------------------------

def test_statuspage_reads_the_component_up_then_down_then_up(status_page: FakeStatusPage) -> None:
    monitor = statuspage(status_page)
    assert look(monitor) == Finding(True, f"{COMPONENT}: operational")
    status_page.down()
    assert look(monitor) == Finding(False, f"{COMPONENT}: major_outage")
    status_page.up()
    assert look(monitor).ok


def test_statuspage_down_when_decides_what_counts_as_down(tmp_path: Path) -> None:
    with FakeStatusPage(COMPONENT, outage="degraded_performance") as fake:
        fake.down()
        assert look(statuspage(fake)) == Finding(True, f"{COMPONENT}: degraded_performance")
        stricter = statuspage(fake, down_when=["degraded_performance", "major_outage"])
        assert look(stricter) == Finding(False, f"{COMPONENT}: degraded_performance")


def test_statuspage_without_the_component_fails_saying_which(status_page: FakeStatusPage) -> None:
    finding = look(statuspage(status_page, component="WhatsApp Busines API"))
    assert finding == Finding(False, f"no component 'WhatsApp Busines API' on {status_page.summary_url} "
                                     f"(did you mean '{COMPONENT}'?)", readable=False)


@pytest.mark.parametrize(("answer", "said"), [
    (Answer(200, "<html>We'll be right back</html>"), "not a status page summary (not JSON)"),
    (Answer(200, {"page": {"name": "Provider"}}), "has no 'components' list: not a Statuspage summary.json"),
    (Answer(502, "Bad gateway"), "HTTP 502 from"),
])
def test_statuspage_answering_nonsense_is_a_failure_it_cannot_read(status_page: FakeStatusPage, answer: Answer,
                                                                    said: str) -> None:
    status_page.script(status_page.path, answer)
    finding = look(statuspage(status_page))
    assert not finding.ok and not finding.readable and said in finding.detail


def test_statuspage_slower_than_the_timeout_is_a_failure(status_page: FakeStatusPage) -> None:
    status_page.slow(10)
    finding = look(statuspage(status_page, timeout="1s"))
    assert finding == Finding(False, "no answer within 1s", readable=False)


# -- whatsapp ----------------------------------------------------------------------------------------------

def test_whatsapp_reads_the_health_of_our_number_with_the_token(cloud_api: FakeCloudHealth) -> None:
    monitor = whatsapp(cloud_api)
    assert look(monitor, {"WA_TOKEN": TOKEN}) == Finding(True, f"phone number {NUMBER}: can_send_message AVAILABLE")
    cloud_api.down()
    down = look(monitor, {"WA_TOKEN": TOKEN})
    assert down == Finding(False, f"phone number {NUMBER}: can_send_message BLOCKED "
                                  "(There is an error with the payment method.)")
    request = cloud_api.requests()[-1]
    assert request.query == {"fields": "health_status"} and request.headers["authorization"] == f"Bearer {TOKEN}"


def test_whatsapp_limited_counts_as_down() -> None:
    with FakeCloudHealth(TOKEN, NUMBER, outage="LIMITED") as fake:
        fake.down()
        finding = look(whatsapp(fake), {"WA_TOKEN": TOKEN})
    assert not finding.ok and finding.readable and "can_send_message LIMITED" in finding.detail


def test_whatsapp_with_a_wrong_token_fails_with_graphs_error(cloud_api: FakeCloudHealth) -> None:
    finding = look(whatsapp(cloud_api), {"WA_TOKEN": "EAAwrong-token-value"})
    assert finding == Finding(False, f"Cloud API error 190 (HTTP 401) for phone number {NUMBER}: Invalid OAuth "
                                     "access token - Cannot parse access token", readable=False)


def test_whatsapp_answering_without_health_is_a_failure(cloud_api: FakeCloudHealth) -> None:
    cloud_api.script(cloud_api.path, Answer(200, {"id": NUMBER}))
    finding = look(whatsapp(cloud_api), {"WA_TOKEN": TOKEN})
    assert finding == Finding(False, f"HTTP 200 for phone number {NUMBER}: no health_status in the answer",
                              readable=False)


def test_whatsapp_slower_than_the_timeout_is_a_failure(cloud_api: FakeCloudHealth) -> None:
    cloud_api.slow(10)
    assert look(whatsapp(cloud_api, timeout="1s"), {"WA_TOKEN": TOKEN}) == \
        Finding(False, "no answer within 1s", readable=False)


def test_the_token_echoed_by_the_provider_is_masked_in_the_finding(cloud_api: FakeCloudHealth) -> None:
    cloud_api.script(cloud_api.path, Answer(400, {"error": {"message": f"Malformed access token {TOKEN}",
                                                            "type": "OAuthException", "code": 190}}))
    finding = look(whatsapp(cloud_api), {"WA_TOKEN": TOKEN})
    assert TOKEN not in finding.detail and "Malformed access token ***" in finding.detail


def test_a_providers_control_characters_and_odd_shapes_stay_out_of_the_finding(cloud_api: FakeCloudHealth) -> None:
    cloud_api.script(cloud_api.path,
                     Answer(400, {"error": {"message": "Bad\x1b[2J token\nsent", "code": 190}}),
                     Answer(200, {"health_status": {"can_send_message": "BLOCKED", "entities": 7}}))
    refused = look(whatsapp(cloud_api), {"WA_TOKEN": TOKEN})
    assert refused.detail.endswith(f"phone number {NUMBER}: Bad[2J token sent")
    blocked = look(whatsapp(cloud_api), {"WA_TOKEN": TOKEN})
    assert blocked == Finding(False, f"phone number {NUMBER}: can_send_message BLOCKED")


def test_an_unset_variable_is_the_playbooks_mistake_naming_monitor_and_setting(cloud_api: FakeCloudHealth) -> None:
    with pytest.raises(ConfigError) as caught:
        look(whatsapp(cloud_api))
    assert str(caught.value).startswith("monitor 'cloud-api' setting 'access_token': ${WA_TOKEN} is not set")
    assert cloud_api.requests() == []


# -- http --------------------------------------------------------------------------------------------------

def test_http_is_up_on_the_status_with_the_text_and_down_otherwise(health_url: FakeHealthUrl) -> None:
    monitor = http(health_url.health_url)
    assert look(monitor) == Finding(True, f"HTTP 200 from {health_url.health_url}")
    health_url.down()
    assert look(monitor) == Finding(False, f"HTTP 503 from {health_url.health_url} (expected 200)")


def test_http_with_the_status_but_without_the_text_is_down(health_url: FakeHealthUrl) -> None:
    health_url.script(health_url.path, Answer(200, {"ok": False}))
    assert look(http(health_url.health_url)) == \
        Finding(False, f"HTTP 200 from {health_url.health_url} without '\"ok\": true'")


def test_http_slower_than_the_timeout_or_refused_is_a_failure(health_url: FakeHealthUrl) -> None:
    health_url.slow(10)
    assert look(http(health_url.health_url, timeout="1s")) == Finding(False, "no answer within 1s", readable=False)
    closed = f"http://127.0.0.1:{free_port()}/health"
    assert look(http(closed)) == Finding(False, f"cannot reach {closed}: ConnectError", readable=False)


def test_an_address_no_client_can_send_is_the_playbooks_mistake() -> None:
    with pytest.raises(ConfigError) as caught:
        look(http("http://127.0.0.1/${HEALTH_PATH}"), {"HEALTH_PATH": "health\x00check"})
    assert str(caught.value).startswith("monitor 'webhook-receiver': Invalid non-printable ASCII character in URL")


def test_a_secret_in_the_url_is_masked_in_the_finding(health_url: FakeHealthUrl) -> None:
    health_url.down()
    finding = look(http(health_url.health_url + "?key=${HEALTH_KEY}"), {"HEALTH_KEY": "hk-5f1c9a77e0"})
    assert health_url.requests()[-1].query == {"key": "hk-5f1c9a77e0"}
    assert finding == Finding(False, f"HTTP 503 from {health_url.health_url}?key=*** (expected 200)")


# -- the tracker -------------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
UP, DOWN = Finding(True, "operational"), Finding(False, "major_outage")


def heard(tracker: Tracker, findings: list[Finding]) -> list[tuple[int, Change]]:
    """Feed one probe a minute from T0; the changes, with the index of the probe that made each."""
    changes = [(i, tracker.heard(f, T0 + timedelta(minutes=i))) for i, f in enumerate(findings)]
    return [(i, c) for i, c in changes if c is not None]


def test_fails_failures_in_a_row_make_it_down_since_the_first_of_them() -> None:
    last = Finding(False, "major_outage, still")
    assert heard(Tracker(fails=3, recovers=2), [UP, DOWN, DOWN, last, DOWN]) == \
        [(3, Change("down", T0 + timedelta(minutes=1), last))]


def test_recovers_successes_in_a_row_make_it_up_since_the_first_of_them() -> None:
    tracker = Tracker(fails=1, recovers=3, state="down")
    assert heard(tracker, [UP, DOWN, UP, UP, UP, UP]) == [(4, Change("up", T0 + timedelta(minutes=2), UP))]
    assert tracker.state == "up"


def test_a_flapping_endpoint_changes_nothing() -> None:
    tracker = Tracker(fails=2, recovers=2)
    assert heard(tracker, [DOWN, UP] * 10) == []
    assert tracker.state == "up"


def test_down_then_up_again_is_two_changes_and_the_count_starts_over() -> None:
    tracker = Tracker(fails=2, recovers=2)
    changes = heard(tracker, [DOWN, DOWN, DOWN, UP, DOWN, UP, UP, DOWN])
    assert [(i, c.state, c.since) for i, c in changes] == \
        [(1, "down", T0), (6, "up", T0 + timedelta(minutes=5))]


# -- validate and rehearse ---------------------------------------------------------------------------------

def add_monitors(home: Path, monitors: list[dict[str, Any]], watch: dict[str, Any] | None = None) -> None:
    path = home / "playbooks" / "whatsapp-outage.yaml"
    playbook = yaml.safe_load(path.read_text(encoding="utf-8"))
    playbook["monitors"] = monitors
    playbook["watch"] = watch or {"every": "1m", "fails": 3, "alert": ["oncall"]}
    path.write_text(yaml.safe_dump(playbook, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_validate_names_an_undefined_alert_channel_at_its_line(home: Path) -> None:
    add_monitors(home, [{"name": "site", "type": "http", "url": "https://api.example.com/health"}],
                 {"alert": ["oncall", "on-call"]})
    result = run_cli("validate", home=home)
    assert result.code == 2, result.output
    lines = (home / "playbooks" / "whatsapp-outage.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip() == "- on-call")
    assert (f"whatsapp-outage.yaml:{line}:" in result.output
            and "watch.alert names channel 'on-call', which channels.yaml does not define (did you mean "
                "'oncall'?)" in result.output)


def test_validate_warns_of_a_monitors_unset_variable_and_passes(home: Path) -> None:
    add_monitors(home, [{"name": "cloud-api", "type": "whatsapp", "phone_number_id": NUMBER,
                         "access_token": "${WA_TOKEN}"}])
    unset = run_cli("validate", home=home, env={"WA_TOKEN": ""})
    assert unset.code == 0, unset.output
    assert "monitor 'cloud-api': $WA_TOKEN not set" in unset.output
    set_ = run_cli("validate", home=home, env={"WA_TOKEN": TOKEN})
    assert set_.code == 0 and "WA_TOKEN" not in set_.output


def checks(home: Path, group: str, *, offline: bool = False, env: dict[str, str] | None = None) -> list[Check]:
    (result,) = rehearse(Home(home, environ=env or {}), ["whatsapp-outage"], offline=offline)
    return [c for c in result.checks if c.group == group]


def test_rehearse_reads_each_monitor_once_and_a_down_provider_still_passes(
        home: Path, status_page: FakeStatusPage, cloud_api: FakeCloudHealth, health_url: FakeHealthUrl) -> None:
    add_monitors(home, [
        {"name": "provider-status", "type": "statuspage", "url": status_page.summary_url, "component": COMPONENT},
        {"name": "cloud-api", "type": "whatsapp", "phone_number_id": NUMBER, "access_token": "${WA_TOKEN}",
         "api_base": cloud_api.api_base},
        {"name": "webhook-receiver", "type": "http", "url": health_url.health_url},
    ])
    status_page.down()
    found = checks(home, "monitors", env={"WA_TOKEN": TOKEN})
    assert [(c.name, c.ok) for c in found] == [
        ("monitor 'provider-status' (statuspage) reachable and readable", True),
        ("monitor 'cloud-api' (whatsapp) reachable and readable", True),
        ("monitor 'webhook-receiver' (http) reachable and readable", True),
    ]
    assert found[0].detail.startswith(f"{COMPONENT}: major_outage: down today, yet read as it should be")
    assert len(status_page.requests()) == len(cloud_api.requests()) == len(health_url.requests()) == 1


def test_rehearse_fails_a_monitor_it_cannot_read_and_masks_the_token(home: Path, cloud_api: FakeCloudHealth) -> None:
    add_monitors(home, [{"name": "cloud-api", "type": "whatsapp", "phone_number_id": NUMBER,
                         "access_token": "${WA_TOKEN}", "api_base": cloud_api.api_base}])
    cloud_api.script(cloud_api.path, Answer(400, {"error": {"message": f"Bad token {TOKEN}", "code": 190}}))
    (found,) = checks(home, "monitors", env={"WA_TOKEN": TOKEN})
    assert not found.ok and found.detail == f"Cloud API error 190 (HTTP 400) for phone number {NUMBER}: Bad token ***"
    (unset,) = checks(home, "monitors")
    assert not unset.ok and "${WA_TOKEN} is not set" in unset.detail


def test_rehearse_offline_skips_the_monitors(home: Path, health_url: FakeHealthUrl) -> None:
    add_monitors(home, [{"name": "webhook-receiver", "type": "http", "url": health_url.health_url}])
    (found,) = checks(home, "monitors", offline=True)
    assert found.skipped and found.detail == "skipped (--offline)"
    assert health_url.requests() == []


def test_rehearse_offline_still_checks_a_monitors_variables(home: Path) -> None:
    add_monitors(home, [{"name": "cloud-api", "type": "whatsapp", "phone_number_id": NUMBER,
                         "access_token": "${WA_TOKEN}"}])
    (unset,) = checks(home, "environment", offline=True)
    assert unset.name == "$WA_TOKEN set (monitor 'cloud-api')" and not unset.ok
    assert unset.detail == "not set: export WA_TOKEN=... or add it to the home's .env"
    (present,) = checks(home, "environment", offline=True, env={"WA_TOKEN": TOKEN})
    assert present.ok and present.detail == "set"


def test_the_window_counts_the_detection_delay(home: Path) -> None:
    monitor = {"name": "webhook-receiver", "type": "http", "url": "https://api.example.com/health"}
    add_monitors(home, [monitor], {"every": "1m", "fails": 3})
    fits = checks(home, "window", offline=True)[-1]
    assert fits.ok and "monitors may take 3m (1m x 3 failures) to detect it" in fits.detail
    add_monitors(home, [monitor], {"every": "10m", "fails": 3})
    late = checks(home, "window", offline=True)
    assert not late[-1].ok and "monitors may take 30m (10m x 3 failures)" in late[-1].detail
    assert "detection alone outlasts the window: lower watch.every or watch.fails" in late[0].detail


def test_without_monitors_the_window_says_nothing_of_detection(home: Path) -> None:
    assert all("monitors" not in c.detail for c in checks(home, "window", offline=True))
