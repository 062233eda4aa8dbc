"""`timeline` is the post-incident review: who published what, the exact texts, variables, deadlines, cadence."""

from __future__ import annotations

import getpass
import json
import re
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playbook.commands.review import build_review, markdown
from playbook.home.locate import Home
from playbook.ledger.contract import NewPost
from playbook.ledger.sqlite import SqliteLedger
from playbook.ledger.sqlite_file import SCHEMA_V1
from tests import test_email
from tests.conftest import copy_example, run_cli
from tests.fakes.http import WebhookSink, use_webhooks
from tests.fakes.smtp import SmtpServer

# The local SMTP server and its certificate, as the email tests set them up.
cert, smtp, use_email = test_email.cert, test_email.smtp, test_email.use_email

PLAYBOOK = "whatsapp-outage"
OPERATOR = f"{getpass.getuser()}@{socket.gethostname()}"


def run_json(home: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli(*args, "--json", home=home, env=env)
    assert result.code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def outbox(home: Path, channel: str) -> list[dict[str, Any]]:
    """What the starter's file channel `channel` really received, line by line."""
    lines = (home / "outbox" / f"{channel}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_the_json_timeline_holds_each_posts_texts_in_both_languages_its_variables_and_operator(home: Path) -> None:
    incident = run_json(home, "trigger", PLAYBOOK, "--yes", "--detected-at", "-10m")["incident"]
    run_json(home, "update", incident, "--phase", "identified", "--yes", "--var", "cause=a bad deploy",
             "--var", "eta=2026-11-25T18:00+01:00")
    run_json(home, "resolve", incident, "--yes")

    result = run_cli("timeline", incident, "--format", "json", home=home)
    assert result.code == 0, result.output
    review = json.loads(result.stdout)
    assert [p["phase"] for p in review["posts"]] == ["investigating", "identified", "resolved"]
    assert review["triggered_by"] == OPERATOR
    sent = {(r["phase"], r["channel"], r["lang"]): r["blocks"] for c in ("x", "website", "customers")
            for r in outbox(home, c)}
    for post in review["posts"]:
        assert post["operator"] == OPERATOR
        assert post["variables"]["brand"] == "Example"
        for channel, entry in post["texts"].items():
            assert set(entry["languages"]) == {"fr", "en"}
            for lang, blocks in entry["languages"].items():
                # The very words the channel received, not a rendering made again for the review.
                assert blocks == sent[(post["phase"], channel, lang)], (post["phase"], channel, lang)
    identified = review["posts"][1]
    assert (identified["variables"]["cause"], identified["variables"]["eta"]) == (
        "a bad deploy", "2026-11-25T18:00+01:00")
    assert "a bad deploy" in identified["texts"]["x"]["languages"]["en"]["body"]


def test_the_markdown_timeline_names_the_operator_and_quotes_each_text_once_per_language(home: Path) -> None:
    incident = run_json(home, "trigger", PLAYBOOK, "--yes")["incident"]
    md = run_cli("timeline", incident, home=home)
    assert md.code == 0, md.output
    assert re.search(rf"- Triggered: .* by {re.escape(OPERATOR)}\n", md.stdout)
    assert f"- By: {OPERATOR}\n" in md.stdout
    assert "### Texts in fr\n\nx, website, customers:\n\n> **title**\n> Messages WhatsApp perturbés" in md.stdout
    assert md.stdout.count("### Texts in en") == 1
    assert "- Variables: `brand` = Example," in md.stdout
    # Times in the playbook's zone (Europe/Paris), labelled, whatever the machine's zone.
    assert " CET" in md.stdout or " CEST" in md.stdout


def test_a_file_channels_link_is_its_path_and_line(home: Path) -> None:
    data = run_json(home, "trigger", PLAYBOOK, "--yes")
    x = {d["lang"]: d["remote_id"] for d in data["deliveries"] if d["channel"] == "x"}
    lines = outbox(home, "x")
    for lang, where in x.items():
        path, line = where.rsplit(":", 1)
        assert path == "outbox/x.jsonl"
        assert lines[int(line) - 1]["lang"] == lang


def test_a_secret_in_a_message_is_masked_in_the_recorded_texts(home: Path, webhook_sink: WebhookSink) -> None:
    secret = "sk-live-REVIEW-5e0c9a1d"
    use_webhooks(home, webhook_sink, ["ops"], secret=secret, languages=["en"])
    incident = run_json(home, "trigger", PLAYBOOK, "--yes")["incident"]
    run_json(home, "update", incident, "--phase", "identified", "--yes", "--var", f"cause=leaked {secret}")
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        texts = db.execute("SELECT texts FROM posts WHERE seq=2").fetchone()[0]
    assert secret not in texts and "leaked ***" in texts
    review = run_cli("timeline", incident, "--format", "json", home=home)
    assert secret not in review.stdout


# -- cadence, window and drills, from a ledger written at chosen times -------------------------------------------

T0 = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 05:00 in Paris


def _post(phase: str, issued: datetime, next_update: datetime | None, deadline: datetime | None = None) -> NewPost:
    return NewPost(phase, issued, deadline or issued + timedelta(minutes=30), next_update, {"cause": None},
                   (("x", "fr", None),), operator="camille@laptop",
                   texts={"variables": {"cause": None},
                          "channels": {"x": {"per_recipient": False, "stands_in_for": None,
                                             "languages": {"fr": {"short": f"{phase} !"}}}}})


def _ledger(home: Path, *, drill: bool, first_notice: datetime) -> tuple[SqliteLedger, str]:
    ledger = SqliteLedger(home / ".playbook" / "state.db")
    # The first post's deadline is the window's: 30 minutes after detection.
    first = _post("investigating", T0 + timedelta(minutes=5), T0 + timedelta(hours=1, minutes=5),
                  T0 + timedelta(minutes=30))
    incident, _ = ledger.create_incident(PLAYBOOK, T0, first,
                                            drill=drill, allow_concurrent=False)
    key = ledger.deliveries(incident.id)[0].key
    ledger.db.execute("UPDATE deliveries SET status='sent', finished_at=? WHERE key=?",
                      (first_notice.isoformat(), key))
    # The second update came 20 minutes after the time the first one promised.
    ledger.add_post(incident.id, _post("identified", T0 + timedelta(hours=1, minutes=25),
                                       T0 + timedelta(hours=2, minutes=25)))
    return ledger, incident.id


def test_the_review_shows_a_late_update_and_a_missed_window_by_how_much(home: Path) -> None:
    ledger, incident = _ledger(home, drill=False, first_notice=T0 + timedelta(minutes=34))
    now = T0 + timedelta(hours=3)
    review = build_review(Home(home), ledger, incident, now=now)

    assert (review["window_met"], review["window_margin_seconds"]) == (False, -4 * 60)
    assert review["detected_at"] == "2026-11-25T05:00:00+01:00"
    second = review["posts"][1]
    assert (second["late_seconds"], second["promised_by"]) == (20 * 60, "2026-11-25T06:05:00+01:00")
    assert review["posts"][0]["late_seconds"] is None
    # Promised for 07:25, not published by 08:00.
    assert review["next_update_overdue_seconds"] == 35 * 60
    first = review["deliveries"][0]
    assert (first["within_window"], first["margin_seconds"]) == (False, -4 * 60)

    md = markdown(review)
    assert "(window 30m, deadline 2026-11-25 05:30:00 CET: missed by 4m)" in md
    assert ("- Cadence: 1h20m after the previous post; promised by 2026-11-25 06:05:00 CET: 20m later than "
            "promised") in md
    assert "- Next update overdue by 35m (as of 2026-11-25 08:00:00 CET)" in md
    assert "| x | fr | sent | 2026-11-25 05:34:00 CET | 4m late |" in md
    assert "- By: camille@laptop" in md
    ledger.close()


def test_the_review_says_how_much_time_a_met_window_left_and_marks_a_drill(home: Path) -> None:
    ledger, incident = _ledger(home, drill=True, first_notice=T0 + timedelta(minutes=12))
    review = build_review(Home(home), ledger, incident, now=T0 + timedelta(hours=2))
    assert (review["drill"], review["window_met"], review["window_margin_seconds"]) == (True, True, 18 * 60)
    md = markdown(review)
    assert md.startswith(f"# Timeline of {incident} (drill)\n\n> A drill:")
    assert ": met, 18m to spare)" in md
    ledger.close()


def test_a_ledger_from_before_the_review_columns_gains_them_and_still_reads(home: Path) -> None:
    path = home / ".playbook" / "state.db"
    path.parent.mkdir()
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_V1)
    old.executescript("""
        INSERT INTO meta VALUES ('schema', '1');
        INSERT INTO incidents VALUES ('old-1', 'whatsapp-outage', 0, 1, '2026-11-25T04:00:00+00:00',
            '2026-11-25T04:05:00+00:00', NULL, 'investigating', '{}');
        INSERT INTO posts VALUES ('old-1', 1, 'investigating', '2026-11-25T04:05:00+00:00',
            '2026-11-25T04:30:00+00:00', NULL, '{}');
    """)
    old.commit()
    old.close()
    readonly = SqliteLedger(path, readonly=True)
    assert readonly.incident("old-1").operator is None and readonly.posts("old-1")[0].texts is None
    readonly.close()
    ledger = SqliteLedger(path)
    columns = {row[1] for row in ledger.db.execute("PRAGMA table_info(posts)")}
    assert {"operator", "texts"} <= columns
    review = build_review(Home(home), ledger, "old-1", now=T0 + timedelta(hours=1))
    assert review["posts"][0]["operator"] is None
    assert "_No texts recorded for this post" in markdown(review)
    ledger.close()


def test_a_per_recipient_channels_text_is_recorded_for_a_sample_recipient_not_a_customer(
        home: Path, smtp: SmtpServer, cert: tuple[Path, Path]) -> None:
    use_email(home, smtp, cert)
    incident = run_json(home, "trigger", PLAYBOOK, "--yes")["incident"]
    review = json.loads(run_cli("timeline", incident, "--format", "json", home=home).stdout)
    customers = review["posts"][0]["texts"]["customers"]
    assert customers["per_recipient"] is True
    assert customers["languages"]["fr"]["body"].startswith("Bonjour Camille Martin,")
    recorded = json.dumps(review["posts"][0]["texts"], ensure_ascii=False)
    assert "Ana Émile" not in recorded and "Bob Stone" not in recorded
    md = run_cli("timeline", incident, home=home).stdout
    assert "customers (per recipient, shown for a sample one):" in md
    email_rows = [d for d in review["deliveries"] if d["channel"] == "customers"]
    assert {d["lang"]: d["recipients"]["sent"] for d in email_rows} == {"fr": 3, "en": 2}
    assert all(d["sent_at"] and d["within_window"] for d in email_rows)


def test_a_drill_through_sandboxes_is_marked_and_names_the_channel_each_stands_in_for(tmp_path: Path) -> None:
    example = copy_example(tmp_path)
    incident = run_json(example, "trigger", PLAYBOOK, "--drill", "--yes")["incident"]
    md = run_cli("timeline", incident, home=example).stdout
    assert md.startswith(f"# Timeline of {incident} (drill)\n\n> A drill:")
    assert "x-sandbox (standing in for x), team-inbox (standing in for customers):" in md
    assert "> [DRILL] " in md and "> [EXERCICE] " in md
    review = json.loads(run_cli("timeline", incident, "--format", "json", home=example).stdout)
    assert review["drill"] is True
    assert review["posts"][0]["texts"]["website-staging"]["stands_in_for"] == "website"
