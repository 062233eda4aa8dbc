"""A home that uses every channel type: validate and render show each one's limits, and SMS its cost."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import run_cli, write

CHANNELS = """
channels:
  x: {type: x, consumer_key: "${X_CONSUMER_KEY}", consumer_secret: "${X_CONSUMER_SECRET}",
      access_token: "${X_ACCESS_TOKEN}", access_token_secret: "${X_ACCESS_TOKEN_SECRET}"}
  website: {type: status-page, output_dir: public/status, url: "https://status.example.com"}
  customers: {type: email, host: smtp.example.com, username: "${SMTP_USER}", password: "${SMTP_PASSWORD}",
              from: "Example <support@example.com>", recipients: contacts/customers.csv}
  mastodon: {type: mastodon, api_base: "https://mastodon.social", access_token: "${MASTODON_TOKEN}"}
  bluesky: {type: bluesky, handle: brand.bsky.social, app_password: "${BSKY_APP_PASSWORD}"}
  telegram: {type: telegram, token: "${TELEGRAM_BOT_TOKEN}", chat_id: "@brand_status"}
  sms: {type: sms, account_sid: "${TWILIO_SID}", auth_token: "${TWILIO_TOKEN}", from: "+33700000000",
        recipients: contacts/sms.csv, cost_per_segment: 0.07}
  team: {type: slack, url: "${SLACK_WEBHOOK_URL}"}
  managers: {type: teams, url: "${TEAMS_WEBHOOK_URL}"}
  whatsapp-backup: {type: whatsapp, phone_number_id: "1234567890", access_token: "${WA_TOKEN}",
                    template: service_disruption, recipients: contacts/urgent.csv}
  long-tail: {type: apprise, urls: ["json://127.0.0.1:8080/hook", "${DISCORD_URL}"]}
  ops: {type: webhook, url: "https://hooks.example.com/crisis"}
  archive: {type: file, path: outbox/archive.jsonl}
  screen: {type: console}
"""
ALL = ("x, website, customers, mastodon, bluesky, telegram, sms, team, managers, whatsapp-backup, long-tail, "
       "ops, archive, screen")
# What each channel's limit is counted in, as validate prints it.
UNITS = {
    "x": "weighted characters", "mastodon": "characters", "bluesky": "graphemes", "telegram": "characters",
    "sms": "segments", "team": "characters", "managers": "bytes", "whatsapp-backup": "characters",
    "long-tail": "characters", "customers": "characters",
}


def _every_channel_home(home: Path) -> Path:
    write(home / "channels.yaml", CHANNELS)
    playbook = home / "playbooks" / "whatsapp-outage.yaml"
    text = playbook.read_text()
    text = text.replace("investigating: {channels: [x, website, customers]", f"investigating: {{channels: [{ALL}]")
    text = text.replace("reminders: {channels: [oncall]", "reminders: {channels: [team]")  # the team's Slack
    playbook.write_text(text)
    write(home / "contacts" / "customers.csv", "email,language,name\nana@example.com,fr,Ana\nbob@example.com,en,Bob\n")
    write(home / "contacts" / "sms.csv", "phone,language,name\n+33612345678,fr,Ana\n+447700900123,en,Bob\n")
    write(home / "contacts" / "urgent.csv", "phone,language,name\n+33698765432,fr,Chloé\n")
    return home


def test_validate_measures_every_channel_type_against_its_own_limit(home: Path) -> None:
    result = run_cli("validate", home=_every_channel_home(home), env={"COLUMNS": "250"})
    assert result.code == 0, result.output
    # The rows under the heading "whatsapp-outage · investigating", up to the next heading.
    section = result.stdout.split("whatsapp-outage · investigating\n", 1)[1].split("whatsapp-outage · ", 1)[0]
    rows = [line.split() for line in section.splitlines()]
    for channel, unit in UNITS.items():
        measured = [" ".join(row) for row in rows if row[1:2] == [channel]]
        assert measured, f"no measure for channel {channel}"
        assert all(re.search(rf"\d+/\d+ {unit}", line) for line in measured), (channel, measured)
    sms = next(" ".join(row) for row in rows if row[:2] == ["fr", "sms"])
    assert re.search(r"\d/3 segments, GSM-7, \d+ units", sms) and "EUR" in sms
    assert "warning: channel 'x': $X_CONSUMER_KEY" in result.stdout  # credentials can wait for a real trigger


def test_render_shows_sms_segments_and_cost_and_each_channels_limit(home: Path) -> None:
    home = _every_channel_home(home)
    sms = run_cli("render", "whatsapp-outage", "--lang", "fr", "--channel", "sms", home=home,
                  env={"COLUMNS": "250"})
    assert sms.code == 0, sms.output
    assert re.search(r"short → sms \(\d/3 segments, GSM-7, \d+ units.*≈ 0\.\d\d EUR each, "
                     r"≈ 0\.\d\d EUR for 2 recipients", sms.stdout), sms.stdout
    everything = run_cli("render", "whatsapp-outage", "--lang", "en", home=home, env={"COLUMNS": "250"})
    assert everything.code == 0, everything.output
    for channel in ALL.split(", "):
        # Named among the channels a block goes to ("short → x (212/280 ...), sms (...)").
        assert re.search(rf"(→ |, ){re.escape(channel)}( \(\d|,|$)", everything.stdout, re.MULTILINE), channel
    assert "weighted characters" in everything.stdout and "graphemes" in everything.stdout


def test_channels_says_for_every_type_what_a_crash_mid_send_may_mean(home: Path) -> None:
    every = _every_channel_home(home)
    listed = json.loads(run_cli("channels", "--json", home=every).stdout)["channels"]
    meanings = {c["type"]: c["unconfirmed"] for c in listed}
    assert len(meanings) == 14
    assert all(len(meaning) > 20 for meaning in meanings.values()), meanings
    # The types differ in what they promise: a receiver that finds the key is not an SMTP server.
    assert "never a repeat" in meanings["file"] and "sent again by resume" in meanings["email"]
    table = run_cli("channels", home=every, env={"COLUMNS": "250"})
    assert table.code == 0, table.output
    # Once per type, after the table.
    crash_lines = table.stdout.split("If publishing stops mid-send", 1)[1].splitlines()[1:]
    assert sorted(line.split(":", 1)[0].strip() for line in crash_lines if line.strip()) == sorted(meanings)


def test_channels_shows_durations_as_channels_yaml_writes_them(home: Path) -> None:
    every = _every_channel_home(home)
    write(every / "channels.yaml", (every / "channels.yaml").read_text().replace(
        "ops: {type: webhook,", "ops: {type: webhook, timeout: 1m30s, retry_for: 2h,"))
    listing = json.loads(run_cli("channels", "--json", home=every).stdout)["channels"]
    listed = {c["name"]: c["settings"] for c in listing}
    # Not ISO 8601 (PT15S): what a marketer reads back is what they would write.
    assert (listed["ops"]["timeout"], listed["ops"]["retry_for"]) == ("1m30s", "2h")
    assert {(s["timeout"], s["retry_for"]) for name, s in listed.items() if name != "ops"} == {("15s", "5m")}
