"""Moving and keeping a ledger: a whole history copied between a SQLite file and PostgreSQL, exported, described."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from playbook.errors import IncidentError, LedgerError
from playbook.ledger import open_store
from playbook.ledger.archive import copy, info, records
from playbook.ledger.contract import Confirmation, NewPost, Owner, delivery_key
from playbook.ledger.duties import DutyKind
from tests.conftest import run_cli
from tests.fakes.http import SECRET as WEBHOOK_SECRET
from tests.fakes.http import WebhookSink, use_webhooks
from tests.fakes.postgres import Database

T0 = datetime(2026, 11, 30, 9, 0, 12, 345000, tzinfo=UTC)


def post_at(phase: str, minutes: int, intents: tuple[tuple[str, str, str | None], ...] = ()) -> NewPost:
    at = T0 + timedelta(minutes=minutes)
    return NewPost(phase, at, at + timedelta(minutes=30), at + timedelta(minutes=15), {"region": "Île-de-France"},
                   intents, operator="anna@laptop", texts={"channels": {"x": {"languages": {"fr": {"short": "É"}}}}})


def fill(state: Path | str) -> None:
    """A varied history: a resolved incident, an open one with a second beside it, a drill, every status."""
    ledger = open_store(state, owner=Owner("laptop-anna", 1, "anna"), clock=lambda: T0)
    try:
        old, _ = ledger.create_incident("outage", T0, post_at("investigating", 0, (("x", "fr", None),)),
                                        drill=False, allow_concurrent=False)
        ledger.mark_sent(Confirmation(delivery_key(old.id, 1, "investigating", "x", "fr"), "tweet-1", "https://x/1",
                                      None, T0 + timedelta(seconds=3)))
        ledger.release()
        ledger.add_post(old.id, post_at("resolved", 40))
        ledger.release()
        ledger.close_incident(old.id)
        current, post = ledger.create_incident("outage", T0 + timedelta(hours=2), post_at("investigating", 120),
                                               drill=False, allow_concurrent=False)
        ledger.record_intents(post, [("customers", "en", f"c{n}@example.com") for n in range(3)])
        keys = [delivery_key(current.id, 1, "investigating", "customers", "en", f"c{n}@example.com") for n in range(3)]
        ledger.claim(keys)
        ledger.mark_sending(keys[0])
        ledger.mark_sent(Confirmation(keys[0], "<m1@example.com>", None, "250 ok", T0 + timedelta(hours=2)))
        ledger.mark_failed(keys[1], "550 no such user", rejected=True)
        ledger.mark_failed(keys[2], "timed out")
        ledger.release()
        beside, _ = ledger.create_incident("outage", T0 + timedelta(hours=3), post_at("investigating", 180),
                                           drill=False, allow_concurrent=True)
        ledger.create_incident("outage", T0, post_at("investigating", 0), drill=True, allow_concurrent=False)
        ledger.release()
        ledger.record_rehearsal("outage", False, {"checks": ["links"]})
        ledger.record_rehearsal("outage", True, {"checks": []})
        # The workers': a holding update published, the failures handed to them, a duty done and one failed.
        ledger.add_post(beside.id, replace(post_at("identified", 200), holding=True))
        ledger.release()
        ledger.hand_off(current.id, 1, T0 + timedelta(hours=3))
        ledger.take_duty(f"reminder:{current.id}:1", DutyKind.REMINDER, incident=current.id, playbook="outage",
                         hold=timedelta(minutes=2))
        ledger.finish_duty(f"reminder:{current.id}:1", ok=True, outcome="told #ops")
        ledger.take_duty("rehearsal:outage", DutyKind.REHEARSAL, incident=None, playbook="outage",
                         hold=timedelta(minutes=2))
        ledger.finish_duty("rehearsal:outage", ok=False, outcome="links: 1 broken")
        ledger.take_duty("holding:1", DutyKind.HOLDING, incident=current.id, playbook="outage",
                         hold=timedelta(minutes=2))
        # A monitor seen going down before the incident, then back up.
        ledger.record_monitor_change("outage", "provider-status", "down", T0 + timedelta(minutes=118),
                                     "WhatsApp Business API: major_outage")
        ledger.record_monitor_change("outage", "provider-status", "up", T0 + timedelta(hours=4), "operational")
    finally:
        ledger.close()


def history(state: Path | str) -> list[dict[str, object]]:
    store = open_store(state, create=False, readonly=True)
    try:
        return list(records(store))
    finally:
        store.close()


def copied(source: Path | str, target: Path | str) -> dict[str, int]:
    origin, destination = open_store(source, create=False, readonly=True), open_store(target)
    try:
        return copy(origin, destination)
    finally:
        origin.close()
        destination.close()


def test_a_sqlite_ledger_copied_to_postgresql_and_back_keeps_its_whole_history(
        tmp_path: Path, postgres_url: str) -> None:
    fill(tmp_path / "laptop.db")
    original = history(tmp_path / "laptop.db")
    # The workers' records are in it: the duties with their outcome, a post's holding flag and hand-off.
    assert [(r["key"], r["kind"], r["attempts"], r["ok"], r["outcome"]) for r in original if r["record"] == "duty"] == [
        ("reminder:outage-20261130-1100:1", "reminder", 1, True, "told #ops"),
        ("rehearsal:outage", "rehearsal", 1, False, "links: 1 broken"), ("holding:1", "holding", 1, None, None)]
    assert [(r["incident"], r["seq"]) for r in original if r["record"] == "post" and r["holding"]] == [
        ("outage-20261130-1200", 2)]
    assert [r["handed_until"] for r in original if r["record"] == "post" and r["handed_until"]] == [
        "2026-11-30T12:00:12.345+00:00"]
    assert [(r["monitor"], r["seq"], r["state"], r["since"], r["recorded_by"]) for r in original
            if r["record"] == "monitor_change"] == [
        ("provider-status", 1, "down", "2026-11-30T10:58:12.345+00:00", "pid 1 on laptop-anna"),
        ("provider-status", 2, "up", "2026-11-30T13:00:12.345+00:00", "pid 1 on laptop-anna")]

    assert copied(tmp_path / "laptop.db", postgres_url) == {"incident": 4, "post": 6, "delivery": 4,
                                                            "rehearsal": 2, "duty": 3, "monitor_change": 2}
    assert history(postgres_url) == original
    assert copied(postgres_url, tmp_path / "back.db")["delivery"] == 4
    assert history(tmp_path / "back.db") == original

    # The copy is a ledger: the rule of one open incident holds there, the one opened with --new beside it too.
    shared = open_store(postgres_url)
    try:
        assert [i.id for i in shared.open_incidents("outage", drill=False)] == [
            "outage-20261130-1100", "outage-20261130-1200"]
        with pytest.raises(IncidentError, match="already has an open incident: outage-20261130-1100"):
            shared.create_incident("outage", T0, post_at("investigating", 0), drill=False, allow_concurrent=False)
        last = shared.last_rehearsal("outage")
        assert last is not None and last[1] is True
    finally:
        shared.close()


def test_a_copy_never_merges_into_a_ledger_that_holds_records(tmp_path: Path, postgres_database: Database) -> None:
    fill(tmp_path / "laptop.db")
    fill(postgres_database.url())
    before = history(postgres_database.url())

    with pytest.raises(LedgerError, match=r"the ledger postgresql://playbook:\*\*\*@.* already holds records \(4 "
                                          r"incidents, 6 posts, 4 deliveries, 2 rehearsals, 3 duties, 2 monitor "
                                          r"changes\): a copy never merges"):
        copied(tmp_path / "laptop.db", postgres_database.url())
    assert history(postgres_database.url()) == before


def test_a_copy_waits_for_the_run_in_flight(tmp_path: Path) -> None:
    ledger = open_store(tmp_path / "laptop.db", owner=Owner("laptop-anna", 8812, "anna"))
    ledger.create_incident("outage", T0, post_at("investigating", 0, (("x", "en", None),)), drill=False,
                           allow_concurrent=False)
    ledger.close()

    with pytest.raises(LedgerError, match=r"incident outage-20261130-0900 is being published right now \(from pid 8812"
                                          r" on laptop-anna\): copy the ledger once that run has finished"):
        copied(tmp_path / "laptop.db", tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists() or history(tmp_path / "copy.db") == []


def test_info_names_the_store_its_schema_size_and_counts_never_the_password(
        tmp_path: Path, postgres_database: Database) -> None:
    fill(postgres_database.url())
    store = open_store(postgres_database.url(), readonly=True)
    try:
        described = info(store)
    finally:
        store.close()

    assert described.store == "PostgreSQL" and described.schema == 2
    assert described.where == f"postgresql://playbook:***@127.0.0.1:{postgres_database.server.port}/" \
                              f"{postgres_database.name}"
    assert described.server is not None and described.server.startswith("PostgreSQL 15")
    assert dict(described.counts) == {"incident": 4, "post": 6, "delivery": 4, "rehearsal": 2, "duty": 3,
                                      "monitor_change": 2}
    assert described.size > 0
    assert postgres_database.server.password not in json.dumps(described.as_json())


# -- through the command line: a laptop's ledger moved to the team's database

def test_ledger_migrate_moves_a_laptops_history_to_postgresql_where_the_team_carries_on(
        home: Path, webhook_sink: WebhookSink, postgres_database: Database) -> None:
    use_webhooks(home, webhook_sink, ["ops", "partners"])
    triggered = run_cli("trigger", "whatsapp-outage", "--yes", "--json", home=home)
    incident = json.loads(triggered.stdout)["incident"]
    secret = postgres_database.server.password

    moved = run_cli("ledger", "migrate", "--to", postgres_database.url(), home=home)

    assert moved.code == 0, moved.output
    where = f"postgresql://playbook:***@127.0.0.1:{postgres_database.server.port}/{postgres_database.name}"
    assert moved.stdout.splitlines()[0] == (f"Copied 1 incident, 1 post, 4 deliveries, 0 rehearsals, 0 duties, 0 "
                                            f"monitor changes into {where}.")
    assert "the password in ${NAME}, PGPASSWORD or ~/.pgpass" in moved.stdout
    assert secret not in moved.output
    team = {"PLAYBOOK_STATE": postgres_database.url(password="${LEDGER_PASSWORD}"), "LEDGER_PASSWORD": secret}
    status = run_cli("status", "--json", home=home, env=team)
    assert [i["id"] for i in json.loads(status.stdout)["incidents"]] == [incident]
    described = run_cli("ledger", "info", "--json", home=home, env=team)
    assert json.loads(described.stdout)["counts"] == {"incident": 1, "post": 1, "delivery": 4, "rehearsal": 0,
                                                      "duty": 0, "monitor_change": 0}
    assert json.loads(described.stdout)["where"] == where
    # The laptop's file is left as it was; moving again into the same database is refused, nothing merged.
    again = run_cli("ledger", "migrate", "--to", postgres_database.url(), home=home)
    assert again.code == 2
    assert again.stderr.startswith(f"error: the ledger {where} already holds records (1 incident, 1 post, 4 "
                                   "deliveries): a copy never merges two histories")
    assert secret not in again.output
    # And back to a file: one machine's ledger again, nothing about passwords.
    back = home / "back.db"
    returned = run_cli("ledger", "migrate", "--to", str(back), home=home, env=team)
    assert returned.code == 0, returned.output
    assert returned.stdout.splitlines()[1] == f"Use it with --state '{back}' or PLAYBOOK_STATE."


def test_ledger_export_writes_every_record_as_json_lines_to_a_private_file(
        home: Path, webhook_sink: WebhookSink, tmp_path: Path) -> None:
    use_webhooks(home, webhook_sink, ["ops"])
    run_cli("trigger", "whatsapp-outage", "--yes", "--json", home=home)
    run_cli("rehearse", "--offline", home=home)
    target = tmp_path / "archive" / "ledger.jsonl"
    target.parent.mkdir()

    done = run_cli("ledger", "export", "--output", str(target), home=home)

    assert done.code == 0, done.output
    assert done.stderr.strip() == "Exported 1 incident, 1 post, 2 deliveries, 1 rehearsal."
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [line["record"] for line in lines] == ["incident", "post", "delivery", "delivery", "rehearsal"]
    assert {line["status"] for line in lines if line["record"] == "delivery"} == {"sent"}
    assert WEBHOOK_SECRET not in target.read_text(encoding="utf-8")
    # On standard output, the same lines.
    assert run_cli("ledger", "export", home=home).stdout == target.read_text(encoding="utf-8")


def test_a_database_lost_while_its_records_are_read_is_an_error_not_a_shorter_history(
        postgres_database: Database) -> None:
    fill(postgres_database.url())
    store = open_store(postgres_database.url(), readonly=True)
    try:
        reading = records(store)
        assert next(reading)["record"] == "incident"
        postgres_database.server.halt()
        try:
            with pytest.raises(LedgerError, match=r"the ledger postgresql://playbook:\*\*\*@.* went away while its "
                                                  r"records were read \(.*\); read them again once it is back"):
                list(reading)
        finally:
            postgres_database.server.launch()
    finally:
        store.close()


def test_ledger_init_creates_the_tables_as_the_owner_once_and_changes_nothing_after(
        home: Path, postgres_database: Database) -> None:
    owner = {"PLAYBOOK_STATE": postgres_database.url()}

    first = run_cli("ledger", "init", "--json", home=home, env=owner)
    described = run_cli("ledger", "info", "--json", home=home, env=owner)
    again = run_cli("ledger", "init", home=home, env=owner)

    assert first.code == 0, first.output
    assert json.loads(first.stdout)["schema"] == 2
    assert json.loads(first.stdout)["counts"] == {"incident": 0, "post": 0, "delivery": 0, "rehearsal": 0,
                                                  "duty": 0, "monitor_change": 0}
    assert json.loads(described.stdout)["store"] == "PostgreSQL"
    assert again.code == 0
    assert "records: 0 incidents, 0 posts, 0 deliveries, 0 rehearsals, 0 duties, 0 monitor changes" in again.stdout
    assert postgres_database.query("SELECT value FROM meta") == [("2",)]


def test_an_export_that_cannot_be_written_or_has_nothing_to_read_is_one_line_and_leaves_no_file(
        home: Path, tmp_path: Path) -> None:
    missing_folder = tmp_path / "no-such-folder" / "ledger.jsonl"
    unwritable = run_cli("ledger", "export", "--output", str(missing_folder), home=home)
    assert unwritable.code == 2
    assert unwritable.stderr.strip().splitlines() == [
        f"error: --output {missing_folder}: cannot write there: No such file or directory"]

    # No ledger yet: the error of every read, and no file, not even an empty one.
    target = tmp_path / "ledger.jsonl"
    nothing = run_cli("ledger", "export", "--output", str(target), home=home)
    assert nothing.code == 2
    assert nothing.stderr.startswith("error: no ledger at ")
    assert [p.name for p in tmp_path.iterdir()] == ["home"]
