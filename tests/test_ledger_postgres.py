"""The PostgreSQL ledger's own side: its URL and password, its schema, and machines racing on one database.

The contract every store keeps runs on PostgreSQL in tests/test_ledger.py; here is what only a database shared
over the network has: a URL whose password must never show, a server that may be down or of a newer schema,
and processes (standing for machines) opening, triggering and claiming at the same instant.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from playbook import secrets
from playbook.errors import LedgerError, LedgerWriteError, PlaybookError
from playbook.ledger import open_ledger
from playbook.ledger.contract import Confirmation, NewPost, Owner, delivery_key
from playbook.ledger.location import is_database_url, resolve_url, shown
from playbook.ledger.postgres import PostgresLedger
from playbook.ledger.postgres_schema import SCHEMA
from tests.conftest import free_port
from tests.fakes.postgres import USER, Database, binaries

PLAYBOOK = "whatsapp-outage"


def first_post(intents: tuple[tuple[str, str, str | None], ...] = ()) -> NewPost:
    now = datetime.now(UTC)
    return NewPost("investigating", now, now + timedelta(minutes=30), None, {}, intents)


def opens_and_records(url: str, environ: dict[str, str] | None = None) -> str:
    """Open the ledger at `url`, open an incident in it: the incident's id."""
    ledger = open_ledger(url, environ=environ)
    try:
        incident, _ = ledger.create_incident(PLAYBOOK, datetime.now(UTC), first_post(), drill=False,
                                             allow_concurrent=False)
        return incident.id
    finally:
        ledger.close()


# -- the test server itself

def test_the_test_server_is_found_in_the_newest_debian_folder_or_named_as_missing(tmp_path: Path) -> None:
    for version in ("9", "15", "16"):
        folder = tmp_path / version / "bin"
        folder.mkdir(parents=True)
        for program in ("initdb", "pg_ctl"):
            (folder / program).write_text("")
    (tmp_path / "16" / "bin" / "pg_ctl").unlink()

    assert binaries("", str(tmp_path / "*" / "bin")) == tmp_path / "15" / "bin"
    with pytest.raises(RuntimeError, match=r"PostgreSQL is not installed: .* run \./scripts/install-test-deps"):
        binaries("", str(tmp_path / "none" / "*" / "bin"))


# -- the URL and its password

@pytest.mark.parametrize("url", ["postgresql://u@db.example.com/ledger", "postgres://db/ledger?sslmode=require",
                                 " POSTGRESQL://db/ledger"])
def test_a_postgresql_url_names_a_database_and_anything_else_a_file(url: str) -> None:
    assert is_database_url(url)
    assert not is_database_url(Path(url.strip()))
    assert not is_database_url("state/postgresql.db")


def test_the_password_is_masked_in_the_address_and_as_a_parameter() -> None:
    assert shown("postgresql://anna:s3cr%40t-pw@db.example.com:6432/ledger?sslmode=require") == \
        "postgresql://anna:***@db.example.com:6432/ledger?sslmode=require"
    assert shown("postgres://anna@db/ledger?password=s3cret-pw&sslmode=verify-full") == \
        "postgres://anna@db/ledger?password=***&sslmode=verify-full"


@pytest.mark.parametrize("way", ["in the URL", "${NAME}", "PGPASSWORD", ".pgpass"])
def test_the_password_comes_from_the_url_a_variable_pgpassword_or_pgpass(
        way: str, postgres_database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    password = postgres_database.server.password
    environ: dict[str, str] = {}
    url = postgres_database.url(password="")
    if way == "in the URL":
        url = postgres_database.url()
    elif way == "${NAME}":
        url = postgres_database.url(password="${LEDGER_PASSWORD}")
        environ["LEDGER_PASSWORD"] = password
    elif way == "PGPASSWORD":
        monkeypatch.setenv("PGPASSWORD", password)
    else:
        pgpass = tmp_path / "pgpass"
        pgpass.write_text(f"127.0.0.1:{postgres_database.server.port}:{postgres_database.name}:{USER}:{password}\n")
        pgpass.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(pgpass))

    assert opens_and_records(url, environ).startswith(PLAYBOOK)
    assert postgres_database.query("SELECT count(*) FROM incidents") == [(1,)]


def test_a_refused_password_is_one_clear_error_that_never_shows_it(postgres_database: Database) -> None:
    wrong = "not-the-password-9d2f"
    with pytest.raises(LedgerError) as refused:
        open_ledger(postgres_database.url(password=wrong))

    message = str(refused.value)
    assert message.startswith(f"cannot connect to the ledger postgresql://{USER}:***@127.0.0.1:"
                              f"{postgres_database.server.port}/{postgres_database.name}: ")
    assert "password authentication failed" in message
    assert message.endswith("Check the URL, the password (in the URL, ${NAME}, PGPASSWORD or ~/.pgpass) and "
                            "that the server is up")
    assert wrong not in message
    # Registered as a secret: masked in whatever else would quote it (logs, provider errors, the ledger).
    assert secrets.redact(f"dsn={wrong}") == "dsn=***"


def test_an_unset_variable_in_the_url_is_named(postgres_database: Database) -> None:
    with pytest.raises(LedgerError, match=r"the ledger URL postgresql://playbook:\*\*\*@127.0.0.1:\d+/ledger_\d+ "
                                          r"refers to \$\{LEDGER_PASSWORD\}, which is not set \(export "
                                          r"LEDGER_PASSWORD=\.\.\. or add it to the home's \.env\)"):
        open_ledger(postgres_database.url(password="${LEDGER_PASSWORD}"), environ={})


def test_a_server_that_does_not_answer_is_one_clear_error() -> None:
    url = f"postgresql://{USER}:secret-pw-7781@127.0.0.1:{free_port()}/ledger?connect_timeout=3"

    with pytest.raises(LedgerError, match=rf"cannot connect to the ledger postgresql://{USER}:\*\*\*@127.0.0.1:\d+/"
                                          r"ledger\?connect_timeout=3: .*(refused|failed).*nothing was sent"):
        open_ledger(url)


# -- the schema: created once, by one machine; a newer or damaged one refused and left as it is

def test_a_reader_of_an_empty_database_is_told_nothing_was_published_and_creates_nothing(
        postgres_database: Database) -> None:
    with pytest.raises(LedgerError, match=r"no ledger in the database postgresql://playbook:\*\*\*@.*: nothing "
                                          r"has been published to it yet"):
        open_ledger(postgres_database.url(), readonly=True)
    assert postgres_database.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_a_database_of_a_newer_schema_is_refused_and_never_altered(postgres_database: Database) -> None:
    opens_and_records(postgres_database.url())
    postgres_database.query("UPDATE meta SET value = '7' WHERE key = 'schema'")
    before = postgres_database.query("SELECT table_name, column_name FROM information_schema.columns WHERE"
                                     " table_schema = 'public' ORDER BY 1, 2")

    for readonly in (False, True):
        with pytest.raises(LedgerError, match="was written by a newer crisis-playbook \\(ledger schema 7; this "
                                              "version knows 1 to 2\\): upgrade crisis-playbook to use it"):
            open_ledger(postgres_database.url(), readonly=readonly)

    assert postgres_database.query("SELECT value FROM meta") == [("7",)]
    assert postgres_database.query("SELECT table_name, column_name FROM information_schema.columns WHERE"
                                   " table_schema = 'public' ORDER BY 1, 2") == before


def test_a_database_missing_a_table_is_refused_and_never_rebuilt(postgres_database: Database) -> None:
    opens_and_records(postgres_database.url())
    postgres_database.query("DROP TABLE deliveries")

    with pytest.raises(LedgerError, match="is damaged: its table deliveries is missing; nothing was sent, and the "
                                          "tables are not made again"):
        open_ledger(postgres_database.url())
    assert postgres_database.query("SELECT to_regclass('deliveries')") == [(None,)]


def test_a_reader_cannot_write(postgres_database: Database) -> None:
    opens_and_records(postgres_database.url())
    reader = open_ledger(postgres_database.url(), readonly=True)
    try:
        with pytest.raises(LedgerError, match="cannot be written \\(cannot execute UPDATE in a read-only"):
            reader.close_incident(reader.all_incidents()[0].id)
    finally:
        reader.close()
    assert postgres_database.query("SELECT open FROM incidents") == [(True,)]


def test_a_connection_the_server_ended_is_made_again_and_the_work_goes_on(postgres_database: Database) -> None:
    ledger = open_ledger(postgres_database.url())
    try:
        incident, _ = ledger.create_incident(PLAYBOOK, datetime.now(UTC), first_post(), drill=False,
                                             allow_concurrent=False)
        # The server ends the session, as a failover would; the next write and read find a new connection.
        postgres_database.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                                " current_database() AND pid <> pg_backend_pid()")
        ledger.close_incident(incident.id)
        assert ledger.incident(incident.id).open is False
        # A new incident too: the connection was lost before its COMMIT, so nothing can be recorded twice.
        postgres_database.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                                " current_database() AND pid <> pg_backend_pid()")
        opened, _ = ledger.create_incident(PLAYBOOK, datetime.now(UTC), first_post(), drill=False,
                                           allow_concurrent=False)
    finally:
        ledger.close()
    assert postgres_database.query("SELECT id, open FROM incidents ORDER BY open") == [(incident.id, False),
                                                                                      (opened.id, True)]


def test_a_write_while_the_server_restarts_waits_for_it_and_goes_through(postgres_database: Database) -> None:
    ledger = open_ledger(postgres_database.url())
    try:
        incident, _ = ledger.create_incident(PLAYBOOK, datetime.now(UTC), first_post((("x", "en", None),)),
                                             drill=False, allow_concurrent=False)
        key = delivery_key(incident.id, 1, "investigating", "x", "en")
        postgres_database.server.halt()
        coming_back = threading.Thread(target=postgres_database.server.launch)
        coming_back.start()
        try:
            ledger.mark_sent(Confirmation(key, "tweet-1", None, None, datetime.now(UTC)))
        finally:
            coming_back.join(timeout=90)
    finally:
        ledger.close()
    assert postgres_database.query("SELECT status, remote_id FROM deliveries") == [("sent", "tweet-1")]


def test_a_server_away_longer_than_the_patience_stops_the_write_with_one_clear_error(
        postgres_database: Database) -> None:
    ledger = PostgresLedger(resolve_url(postgres_database.url(), {}), patience=timedelta(seconds=1))
    try:
        incident, _ = ledger.create_incident(PLAYBOOK, datetime.now(UTC), first_post(), drill=False,
                                             allow_concurrent=False)
        postgres_database.server.halt()
        try:
            with pytest.raises(LedgerWriteError, match=r"the ledger postgresql://playbook:\*\*\*@127.0.0.1:\d+/"
                                                       r"ledger_\d+ went away \(.*\) and did not come back within "
                                                       r"1 s; nothing more was sent. Once it is back, 'playbook "
                                                       r"resume' sends the rest"):
                ledger.close_incident(incident.id)
        finally:
            postgres_database.server.launch()
    finally:
        ledger.close()
    assert postgres_database.query("SELECT open FROM incidents") == [(True,)]


def test_a_run_waits_for_a_server_away_longer_than_the_patience_while_its_window_lasts(
        postgres_database: Database) -> None:
    # The same minimum as above, but the run's deadline is two minutes away: the write waits for the server.
    ledger = PostgresLedger(resolve_url(postgres_database.url(), {}), patience=timedelta(seconds=1))
    try:
        incident, _ = ledger.create_incident(PLAYBOOK, datetime.now(UTC), first_post(), drill=False,
                                             allow_concurrent=False)
        ledger.bear_with_outages_until(datetime.now(UTC) + timedelta(minutes=2))
        postgres_database.server.halt()
        # Down three times the minimum patience before it comes back.
        coming_back = threading.Timer(3, postgres_database.server.launch)
        coming_back.start()
        try:
            ledger.close_incident(incident.id)
        finally:
            coming_back.join(timeout=90)
    finally:
        ledger.close()
    assert postgres_database.query("SELECT open FROM incidents") == [(False,)]


# -- a role with only the rights it needs

@pytest.fixture
def oncall(postgres_database: Database) -> Iterator[str]:
    """A login role of its own that may read, add and change rows (no DELETE, no CREATE): its URL."""
    role = f"oncall_{postgres_database.name}"
    postgres_database.query(f"CREATE ROLE {role} LOGIN PASSWORD 'oncall-pw-5521'")
    postgres_database.query(f"GRANT CONNECT ON DATABASE {postgres_database.name} TO {role}")
    postgres_database.query(f"GRANT USAGE ON SCHEMA public TO {role}")
    # The tables do not exist yet: the owner's future tables are granted.
    postgres_database.query(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES "
                            f"TO {role}")
    yield postgres_database.url().replace(f"//{USER}:{postgres_database.server.password}@",
                                          f"//{role}:oncall-pw-5521@")
    postgres_database.query(f"DROP OWNED BY {role}")
    postgres_database.query(f"DROP ROLE {role}")


def test_a_role_that_may_not_create_tables_is_told_how_to_start_the_ledger(
        postgres_database: Database, oncall: str) -> None:
    with pytest.raises(LedgerError, match=r"cannot create the ledger's tables in postgresql://oncall_ledger_\d+:\*\*\*@"
                                          r".*permission denied for schema public.*; nothing was sent. Run the "
                                          r"first command once as a role that may create tables"):
        open_ledger(oncall)
    assert postgres_database.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_a_role_that_may_only_select_insert_and_update_runs_the_ledger_and_cannot_delete_its_history(
        postgres_database: Database, oncall: str) -> None:
    opens_and_records(postgres_database.url())

    ledger = open_ledger(oncall)
    try:
        incident, post = ledger.create_incident(PLAYBOOK, datetime.now(UTC), first_post(), drill=True,
                                                allow_concurrent=False)
        ledger.record_intents(post, [("customers", "en", "c0@example.com")])
        key = delivery_key(incident.id, 1, "investigating", "customers", "en", "c0@example.com")
        assert ledger.claim([key]).taken == {key}
        assert ledger.mark_sending(key) == 1
        ledger.mark_sent(Confirmation(key, "<m0@example.com>", None, None, datetime.now(UTC)))
        ledger.record_rehearsal(PLAYBOOK, True, {})
        ledger.release()
        ledger.close_incident(incident.id)
    finally:
        ledger.close()
    with psycopg.connect(oncall) as connection, pytest.raises(psycopg.errors.InsufficientPrivilege):
        connection.execute("DELETE FROM deliveries")
    assert postgres_database.query("SELECT count(*) FROM deliveries WHERE status = 'sent'") == [(1,)]


def test_a_role_that_may_not_alter_the_tables_reads_an_older_schema_and_is_told_how_to_bring_it_up(
        postgres_database: Database, oncall: str) -> None:
    # Schema 1, as the owner made it before the workers' records: the role was granted its tables.
    for statement in SCHEMA.split(";"):
        postgres_database.query(statement)
    postgres_database.query("INSERT INTO meta VALUES ('schema', '1')")

    reader = open_ledger(oncall, readonly=True)
    try:
        assert reader.all_incidents() == [] and reader.duties() == []
    finally:
        reader.close()
    with pytest.raises(LedgerError, match=r"the ledger postgresql://oncall_ledger_\d+:\*\*\*@.* is of schema 1 and "
                                          r"this crisis-playbook needs 2, but this role may not change its tables "
                                          r"\(must be owner of table posts\); nothing was sent. Run 'playbook "
                                          r"ledger init' once as the tables' owner"):
        open_ledger(oncall)
    assert postgres_database.query("SELECT value FROM meta") == [("1",)]
    assert postgres_database.query("SELECT to_regclass('duties')") == [(None,)]


# -- machines at the same instant (processes, each with its own connection)

def _open_and_trigger(url: str, start: Any, outcomes: Any) -> None:
    start.wait()
    try:
        outcomes.put(f"opened {opens_and_records(url)}")
    except PlaybookError as exc:
        outcomes.put(f"{type(exc).__name__}: {exc}")


def test_machines_opening_a_new_database_and_triggering_at_once_open_one_incident(
        postgres_database: Database) -> None:
    # Each first creates the tables (one does, the others wait for it), then opens the incident.
    fork = multiprocessing.get_context("fork")
    start, outcomes = fork.Barrier(4), fork.Queue()
    racers = [fork.Process(target=_open_and_trigger, args=(postgres_database.url(), start, outcomes))
              for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)

    said = sorted(outcomes.get(timeout=5) for _ in racers)
    opened = [s for s in said if s.startswith("opened ")]
    assert len(opened) == 1, said
    incident = opened[0].removeprefix("opened ")
    assert all(s.startswith(f"IncidentError: playbook 'whatsapp-outage' already has an open incident: {incident}")
               for s in said if s not in opened), said
    assert postgres_database.query("SELECT id FROM incidents") == [(incident,)]


def _claim_all(url: str, keys: list[str], number: int, start: Any, outcomes: Any) -> None:
    ledger = open_ledger(url, owner=Owner(f"machine-{number}", os.getpid(), f"machine-{number}"))
    start.wait()
    outcomes.put((number, sorted(ledger.claim(keys).taken)))
    ledger.close()


def test_machines_claiming_the_same_deliveries_at_once_never_claim_one_twice(
        postgres_database: Database) -> None:
    ledger = open_ledger(postgres_database.url())
    incident, post = ledger.create_incident(PLAYBOOK, datetime.now(UTC), first_post(), drill=False,
                                            allow_concurrent=False)
    ledger.release()
    addresses = [f"c{n}@example.com" for n in range(300)]
    ledger.record_intents(post, [("customers", "en", a) for a in addresses])
    ledger.close()
    keys = [delivery_key(incident.id, post.seq, post.phase, "customers", "en", a) for a in addresses]
    fork = multiprocessing.get_context("fork")
    start, outcomes = fork.Barrier(3), fork.Queue()
    # Each claims the batch in its own order, as workers of different sizes would.
    batches = [keys, keys[::-1], keys[100:] + keys[:100]]
    racers = [fork.Process(target=_claim_all, args=(postgres_database.url(), batch, n, start, outcomes))
              for n, batch in enumerate(batches)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)

    taken = dict(outcomes.get(timeout=5) for _ in racers)
    claimed = [key for share in taken.values() for key in share]
    assert sorted(claimed) == sorted(keys)
    owners = dict(postgres_database.query("SELECT key, claim_owner FROM deliveries WHERE recipient IS NOT NULL"))
    assert all(owners[key] == f"machine-{n}" for n, share in taken.items() for key in share)
