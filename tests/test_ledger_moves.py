"""Moving and keeping a ledger: a whole history copied between a SQLite file and PostgreSQL, exported, described."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from playbook.errors import IncidentError, LedgerError
from playbook.ledger import open_store
from playbook.ledger.archive import copy, info, records
from playbook.ledger.contract import Confirmation, NewPost, Owner, delivery_key
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
        ledger.create_incident("outage", T0 + timedelta(hours=3), post_at("investigating", 180), drill=False,
                               allow_concurrent=True)
        ledger.create_incident("outage", T0, post_at("investigating", 0), drill=True, allow_concurrent=False)
        ledger.release()
        ledger.record_rehearsal("outage", False, {"checks": ["links"]})
        ledger.record_rehearsal("outage", True, {"checks": []})
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

    assert copied(tmp_path / "laptop.db", postgres_url) == {"incident": 4, "post": 5, "delivery": 4,
                                                            "rehearsal": 2}
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
        assert shared.last_rehearsal("outage") is not None and shared.last_rehearsal("outage")[1] is True
    finally:
        shared.close()


def test_a_copy_never_merges_into_a_ledger_that_holds_records(tmp_path: Path, postgres_database: Database) -> None:
    fill(tmp_path / "laptop.db")
    fill(postgres_database.url())
    before = history(postgres_database.url())

    with pytest.raises(LedgerError, match=r"the ledger postgresql://playbook:\*\*\*@.* already holds records \(4 "
                                          r"incidents, 5 posts, 4 deliveries, 2 rehearsals\): a copy never merges"):
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

    assert described.store == "PostgreSQL" and described.schema == 1
    assert described.where == f"postgresql://playbook:***@127.0.0.1:{postgres_database.server.port}/" \
                              f"{postgres_database.name}"
    assert described.server is not None and described.server.startswith("PostgreSQL 15")
    assert dict(described.counts) == {"incident": 4, "post": 5, "delivery": 4, "rehearsal": 2}
    assert described.size > 0
    assert postgres_database.server.password not in json.dumps(described.as_json())
