"""CSV recipient lists: the spreadsheet exports people really have, streamed, with every bad row pointed at."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from playbook.channels.email import email_address
from playbook.commands.publishing import trigger
from playbook.commands.session import Session
from playbook.home.locate import Home
from playbook.publishers.recipients import SHOWN_WARNINGS, RecipientList
from tests.fakes.smtp import SmtpServer
from tests.test_email import CUSTOMERS, cert, smtp, use_email

__all__ = ["cert", "smtp"]  # the SMTP server's fixtures, shared with the email tests


def email_list(tmp_path: Path, content: str | bytes) -> RecipientList:
    path = tmp_path / "customers.csv"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return RecipientList(path, "contacts/customers.csv", "email", email_address, "an email address")


@pytest.mark.parametrize("content", [
    "email,language,name\nana@example.com,fr,Ana\nbob@example.com,en,Bob\n",
    "\ufeffEmail;Language;Name\r\nana@example.com;fr;Ana\r\nbob@example.com;en;Bob\r\n",
    "email\tlanguage\tname\nana@example.com\tfr\tAna\nbob@example.com\ten\tBob",
    ' Email , LANGUAGE ,Name\n\n"ana@example.com", fr ,"Ana"\n\nbob@example.com,en,Bob\n',
], ids=["commas", "bom-crlf-semicolons", "tabs", "spaces-quotes-blank-lines"])
def test_spreadsheet_exports_read_the_same(tmp_path: Path, content: str) -> None:
    listed = list(email_list(tmp_path, content))
    assert [(r.address, r.lang, r.fields["name"]) for r in listed] == [
        ("ana@example.com", "fr", "Ana"), ("bob@example.com", "en", "Bob")]
    assert email_list(tmp_path, content).problems() == []


def test_rows_keep_every_column_and_their_first_line(tmp_path: Path) -> None:
    content = 'email,lang,name,order\r\nana@example.com,fr,"Ana\r\nMaria",A-1\r\nbob@example.com,,Bob,B-2\r\n'
    first, second = email_list(tmp_path, content)
    assert first.line == 2 and second.line == 4
    assert dict(second.fields) == {"email": "bob@example.com", "lang": "", "name": "Bob", "order": "B-2"}
    assert second.lang is None


def test_an_international_domain_is_sent_to_in_ascii(tmp_path: Path) -> None:
    (recipient,) = email_list(tmp_path, "email\nlea@EXÄMPLE.fr\n")
    assert recipient.address == "lea@xn--exmple-cua.fr"


@pytest.mark.parametrize(("cell", "warning"), [
    ("jean@", "contacts/customers.csv:3: 'jean@' is not an email address (there must be something after "
              "the @-sign); this row is skipped"),
    ("jean.example.com", "contacts/customers.csv:3: 'jean.example.com' is not an email address (an email "
                         "address must have an @-sign); this row is skipped"),
    ("jean dupont@example.com", "contacts/customers.csv:3: 'jean dupont@example.com' is not an email address "
                                "(it contains invalid characters before the @-sign: SPACE); this row is skipped"),
    ("Jean <jean@example.com>", "contacts/customers.csv:3: 'Jean <jean@example.com>' is not an email address "
                                "(a display name and angle brackets around the email address are not permitted "
                                "here); this row is skipped"),
    ("", "contacts/customers.csv:3: an empty cell is not an email address (no address); this row is skipped"),
    ("ANA@example.com", "contacts/customers.csv:3: ANA@example.com repeats line 2; it is sent once"),
])
def test_each_bad_row_is_named_by_its_line(tmp_path: Path, cell: str, warning: str) -> None:
    recipients = email_list(tmp_path, f"email,name\nana@example.com,Ana\n{cell},X\nzoe@example.com,Zoé\n")
    assert recipients.warnings() == [warning]
    assert [r.address for r in recipients] == ["ana@example.com", "zoe@example.com"]
    assert recipients.count() == (3 if cell else 2)


@pytest.mark.parametrize(("content", "problem"), [
    (None, "recipient list contacts/customers.csv does not exist"),
    ("", "recipient list contacts/customers.csv is empty: its first row must name the columns"),
    ("courriel;nom\na@example.com;A\n", "contacts/customers.csv:1: no 'email' column (columns: courriel, nom)"),
    ("email,name\na@example.com,A\nb@example.com,R\xe9mi\n".encode("latin-1"),
     "contacts/customers.csv:3: not UTF-8 text; save the list as UTF-8 (CSV UTF-8)"),
], ids=["missing", "empty", "no-email-column", "latin-1"])
def test_an_unusable_list_is_a_problem(tmp_path: Path, content: str | bytes | None, problem: str) -> None:
    recipients = (email_list(tmp_path, content) if content is not None else
                  RecipientList(tmp_path / "nope.csv", "contacts/customers.csv", "email", email_address,
                                "an email address"))
    assert recipients.problems() == [problem]
    assert recipients.warnings() == []


@pytest.mark.parametrize("content", ["email,name\n", "email,name\njean@,Jean\n,Ana\n"], ids=["header-only", "no-valid"])
def test_a_list_with_nobody_to_send_to_is_a_problem(tmp_path: Path, content: str) -> None:
    assert email_list(tmp_path, content).problems() == [
        "contacts/customers.csv has no recipient to send to (no row holds an email address)"]


@pytest.mark.parametrize(("content", "problem"), [
    ('email,name\nana@example.com,"Ana\nbob@example.com,Bob\nzoe@example.com,Zoé\n',
     "contacts/customers.csv:2: cannot read this row (a quoted cell runs to the end of the file); "
     "is a quote left open?"),
    ('email,name\nana@example.com,"Ana\nbob@example.com,"Bob"\nzoe@example.com,Zoé\n',
     "contacts/customers.csv:2: cannot read this row (text after the closing quote of a quoted cell); "
     "is a quote left open?"),
    ('email;name\nana@example.com;"Ana" Maria\n',
     "contacts/customers.csv:2: cannot read this row (text after the closing quote of a quoted cell); "
     "is a quote left open?"),
    ("email,name\nana@example.com,Ana\nbob@example.com,Bob,extra\n",
     "contacts/customers.csv:3: 3 cells where the header has 2; is a separator or a quote out of place?"),
    ("email,language,name\nana@example.com,fr,Ana\nbob@example.com,Bob\n",
     "contacts/customers.csv:3: 2 cells where the header has 3; is a separator or a quote out of place?"),
    ("email,name\nana@example.com,Ana\nbob@example.com,B\x00ob\n",
     "contacts/customers.csv:3: a NUL byte, which no text holds; is this a spreadsheet file rather than its CSV "
     "export?"),
    (b"email,name\n\x00\xff\n", "contacts/customers.csv:2: a NUL byte, which no text holds; is this a spreadsheet "
                                  "file rather than its CSV export?"),
], ids=["quote-open-to-the-end", "quote-closed-rows-later", "text-after-quote", "cell-too-many", "cell-too-few",
        "nul-byte", "nul-before-bad-utf8"])
def test_a_malformed_list_is_a_problem_at_the_line_it_starts(tmp_path: Path, content: str | bytes,
                                                             problem: str) -> None:
    recipients = email_list(tmp_path, content)
    assert recipients.problems() == [problem]
    assert recipients.warnings() == []


def test_many_bad_rows_are_summed_up(tmp_path: Path) -> None:
    rows = "".join(f"person{n}@\n" for n in range(SHOWN_WARNINGS + 30))
    warnings = email_list(tmp_path, "email\n" + rows).warnings()
    assert len(warnings) == SHOWN_WARNINGS + 1
    assert warnings[-1] == "contacts/customers.csv: and 30 more rows like these"


def test_a_large_list_is_streamed_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,language,name\n")
        for n in range(50_000):
            handle.write(f"customer{n}@example.com,fr,Customer number {n} with a longer name\n")
    recipients = RecipientList(path, "big.csv", "email", lambda cell: cell, "an email address")
    assert recipients.count() == 50_000
    tracemalloc.start()
    taken = sum(1 for _ in recipients)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert taken == 50_000
    # The list is 3 MB on disk; only the set of addresses seen (to drop repeats) grows with it.
    assert peak < 8_000_000


def test_a_trigger_reads_its_list_once_to_plan_and_once_to_send(home: Path, smtp: SmtpServer,
                                                                 cert: tuple[Path, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    use_email(home, smtp, cert)
    detected = datetime.now(UTC) - timedelta(minutes=5)
    session = Session(Home(root=home))
    first = trigger(session, "whatsapp-outage", {}, detected)
    session.close()
    opened: list[str] = []
    path_open = Path.open

    def counted(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path.name == "customers.csv":
            opened.append(path.name)
        return path_open(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counted)
    # The same detection minute as the open incident: its provisional id is taken, so the plan is built twice,
    # the second time under the id the ledger gave.
    session = Session(Home(root=home))
    second = trigger(session, "whatsapp-outage", {}, detected, new=True)
    session.close()
    assert second.plan.incident_id != first.plan.incident_id
    assert second.result is not None and second.result.ok
    assert len(smtp.messages) == 2 * len(CUSTOMERS)
    # Problems, warnings, counts and each language's sample come from one read; sending streams the list again.
    assert opened == ["customers.csv", "customers.csv"]
