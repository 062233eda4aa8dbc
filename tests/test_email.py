"""Customer email against a real SMTP server (STARTTLS, AUTH, a self-signed certificate trusted via ca_file)."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbook.channels.email import EmailConfig, EmailPublisher
from playbook.commands.publishing import trigger
from playbook.commands.session import Session
from playbook.engine import DeliveryEvent
from playbook.home.locate import Home
from playbook.output.live import LiveView
from playbook.publishers.base import ChannelContext, Delivery, Failure, Message, Receipt, Recipient
from tests.conftest import deliveries, run_cli, run_trigger, write
from tests.fakes.smtp import PASSWORD, USERNAME, SmtpServer, self_signed

PLAYBOOK = "whatsapp-outage"
SUBJECT = {
    # French typography: a no-break space before the colon, kept in the Subject as the template writes it.
    "fr": "Messages WhatsApp perturbés\u00a0: nous restons joignables par e-mail, téléphone et chat",
    "en": "WhatsApp messages delayed: you can still reach us by email, phone and chat",
}
GREETING = {"fr": "Bonjour", "en": "Hello"}
CUSTOMERS = [
    # (email, language column, name, the language they must get)
    ("ana@example.com", "fr", "Ana Émile", "fr"),
    ("bob@example.com", "en", "Bob Stone", "en"),
    ("chloe@example.com", "", "Chloé", "fr"),
    ("dieter@example.com", "de", "Dieter", "fr"),
    ("emma@example.com", "en-GB", "Emma", "en"),
]


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp(cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    with SmtpServer(cert=cert) as server:
        yield server


def use_email(home: Path, server: SmtpServer, cert: tuple[Path, Path], *, secret: str = PASSWORD,
              customers: list[tuple[str, str, str, str]] = CUSTOMERS, **settings: Any) -> None:
    """Make `customers` of the starter home an email channel to `server`; x and website stay files."""
    channels = yaml.safe_load((home / "channels.yaml").read_text())
    channels["channels"]["customers"] = {
        "type": "email", "host": server.host, "port": server.port, "security": "starttls",
        "username": "${SMTP_USER}", "password": "${SMTP_PASSWORD}",
        "from": "Example Support <support@example.com>", "reply_to": "help@example.com",
        "recipients": "contacts/customers.csv", "connections": 2, "ca_file": str(cert[0]),
        "unsubscribe": "https://example.com/unsubscribe?e={email}", **settings,
    }
    write(home / "channels.yaml", yaml.safe_dump(channels, allow_unicode=True, sort_keys=False))
    write(home / ".env", f"SMTP_USER={USERNAME}\nSMTP_PASSWORD={secret}\n")
    rows = "".join(f"{email},{lang},{name}\n" for email, lang, name, _ in customers)
    write(home / "contacts" / "customers.csv", "email,language,name\n" + rows)



def customers_rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return deliveries(data, "customers")


def ledger_rows(home: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(home / ".playbook" / "state.db")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM deliveries WHERE channel='customers' ORDER BY recipient").fetchall()
    finally:
        db.close()


def outbox_lines(home: Path, channel: str) -> int:
    path = home / "outbox" / f"{channel}.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_each_customer_gets_one_message_in_their_language(home: Path, smtp: SmtpServer,
                                                          cert: tuple[Path, Path]) -> None:
    use_email(home, smtp, cert)
    result, data = run_trigger(home)
    assert result.code == 0, result.output
    rows = customers_rows(data)
    assert rows["fr"]["recipients"] == {"total": 3, "sent": 3, "already-sent": 0, "failed": 0, "rejected": 0}
    assert rows["en"]["recipients"]["sent"] == 2
    receipts = {row["recipient"]: row["remote_id"] for row in ledger_rows(home)}
    for email, _, name, lang in CUSTOMERS:
        (received,) = smtp.to(email)
        message = received.message
        assert received.tls and received.login == USERNAME
        assert received.mail_from == "support@example.com"
        assert message["Subject"] == SUBJECT[lang]
        assert message["From"] == "Example Support <support@example.com>"
        assert message["To"] == f"{name} <{email}>"
        assert message["Reply-To"] == "help@example.com"
        assert message["Content-Language"] == lang
        assert message["Message-ID"] == receipts[email]
        assert re.fullmatch(r"<[^@<>]+@example\.com>", message["Message-ID"])
        assert abs((message["Date"].datetime - datetime.now(UTC)).total_seconds()) < 120
        assert message["List-Unsubscribe"] == f"<https://example.com/unsubscribe?e={email.replace('@', '%40')}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.get_content_type() == "multipart/alternative"
        assert received.part("plain").startswith(f"{GREETING[lang]} {name},")
        assert f"<p>{GREETING[lang]} {name},</p>" in received.part("html")
        assert '<a href="https://status.example.com">' in received.part("html")
    assert len(smtp.messages) == len(CUSTOMERS)
    assert outbox_lines(home, "x") == 2 and outbox_lines(home, "website") == 2


def test_connections_are_kept_and_reused(home: Path, smtp: SmtpServer, cert: tuple[Path, Path]) -> None:
    customers = [(f"customer{n}@example.com", "fr" if n % 2 else "en", f"Customer {n}", "") for n in range(40)]
    use_email(home, smtp, cert, customers=customers, connections=3)
    session = Session(Home(root=home))
    outcome = trigger(session, PLAYBOOK, {}, None)
    session.close()
    assert outcome.result is not None and outcome.result.ok
    assert len(smtp.messages) == 40
    # Three connections carried forty messages: one TLS handshake and login each, not one per message.
    assert smtp.connections <= 3 and smtp.most_at_once <= 3
    assert len({m.connection for m in smtp.messages}) <= 3
    assert len(smtp.logins) == smtp.connections


def test_rate_spaces_messages_out(home: Path, smtp: SmtpServer, cert: tuple[Path, Path]) -> None:
    customers = [(f"customer{n}@example.com", "fr", f"Customer {n}", "") for n in range(20)]
    use_email(home, smtp, cert, customers=customers, connections=4, rate=10)
    session = Session(Home(root=home))
    outcome = trigger(session, PLAYBOOK, {}, None)
    session.close()
    assert outcome.result is not None and outcome.result.ok
    assert len(smtp.messages) == 20
    starts = sorted(datetime.fromisoformat(row["started_at"]) for row in ledger_rows(home))
    # 20 messages at 10 per second: 19 gaps of 0.1 s between the first start and the last.
    assert (starts[-1] - starts[0]).total_seconds() >= 1.8
    assert smtp.most_at_once <= 4


def test_a_server_closing_connections_costs_no_message(home: Path, smtp: SmtpServer,
                                                         cert: tuple[Path, Path]) -> None:
    customers = [(f"customer{n}@example.com", "en", f"Customer {n}", "") for n in range(12)]
    use_email(home, smtp, cert, customers=customers, connections=2)
    smtp.close_after(3)
    result, _ = run_trigger(home)
    assert result.code == 0, result.output
    assert sorted(r for m in smtp.messages for r in m.rcpt_tos) == sorted(c[0] for c in customers)
    assert smtp.connections >= 4
    # Reconnecting happens before a message starts, so no message needed a second attempt.
    assert {row["attempts"] for row in ledger_rows(home)} == {1}


def test_a_refused_recipient_is_recorded_and_never_retried(home: Path, smtp: SmtpServer,
                                                            cert: tuple[Path, Path]) -> None:
    use_email(home, smtp, cert, retry_for="1s")
    smtp.refuse("bob@example.com", 550, "5.1.1 <bob@example.com>: Recipient address rejected")
    result, data = run_trigger(home, "--detected-at", "-1h")
    assert result.code == 0, result.output
    en = customers_rows(data)["en"]
    assert en["recipients"]["rejected"] == 1 and en["recipients"]["sent"] == 1
    assert "550 5.1.1" in en["error"]
    bob = next(row for row in ledger_rows(home) if row["recipient"] == "bob@example.com")
    assert bob["status"] == "rejected" and bob["attempts"] == 1
    assert smtp.to("bob@example.com") == []
    incident = data["incident"]
    resumed = run_cli("resume", incident, "--json", home=home)
    assert resumed.code == 2 and "nothing left to send" in resumed.stderr
    assert [a for a, _ in smtp.refused] == ["bob@example.com"]


def test_a_deferred_recipient_is_retried_and_delivered(home: Path, smtp: SmtpServer,
                                                        cert: tuple[Path, Path]) -> None:
    use_email(home, smtp, cert)
    smtp.refuse_once("chloe@example.com", 451, "4.7.1 Greylisted, try again later")
    result, _ = run_trigger(home)
    assert result.code == 0, result.output
    assert len(smtp.to("chloe@example.com")) == 1
    chloe = next(row for row in ledger_rows(home) if row["recipient"] == "chloe@example.com")
    assert chloe["status"] == "sent" and chloe["attempts"] == 2
    assert smtp.refused == [("chloe@example.com", "451 4.7.1 Greylisted, try again later")]


def test_a_wrong_password_fails_email_alone_and_resume_finishes_it(home: Path, smtp: SmtpServer,
                                                                     cert: tuple[Path, Path]) -> None:
    wrong = "not-the-password-3b9d"
    use_email(home, smtp, cert, secret=wrong)
    result, data = run_trigger(home)
    assert result.code == 1
    expected = (f"127.0.0.1:{smtp.port} refused the login (535 5.7.8 Authentication credentials invalid): "
                "check the settings 'username' and 'password' of channel 'customers'")
    assert {lang: row["error"] for lang, row in customers_rows(data).items()} == {"fr": expected, "en": expected}
    assert outbox_lines(home, "x") == 2 and outbox_lines(home, "website") == 2
    assert smtp.messages == []
    # Each of the two connections tried once, then the channel stopped: no hammering with bad logins.
    assert smtp.connections <= 2 and smtp.logins
    write(home / ".env", f"SMTP_USER={USERNAME}\nSMTP_PASSWORD={PASSWORD}\n")
    resumed = run_cli("resume", data["incident"], home=home)
    assert resumed.code == 0, resumed.output
    assert sorted(r for m in smtp.messages for r in m.rcpt_tos) == sorted(c[0] for c in CUSTOMERS)
    for text in (result.output, resumed.output, (home / ".playbook" / "state.db").read_bytes().decode("latin-1")):
        assert wrong not in text and PASSWORD not in text


def test_resume_never_mails_a_confirmed_recipient_twice(home: Path, smtp: SmtpServer,
                                                        cert: tuple[Path, Path]) -> None:
    use_email(home, smtp, cert, retry_for="1s")
    smtp.refuse("dieter@example.com", 452, "4.2.2 Mailbox full, try later")
    result, data = run_trigger(home, "--detected-at", "-1h")
    assert result.code == 1
    assert customers_rows(data)["fr"]["recipients"]["failed"] == 1
    assert len(smtp.messages) == len(CUSTOMERS) - 1
    smtp.allow("dieter@example.com")
    resumed = run_cli("resume", data["incident"], "--json", home=home)
    assert resumed.code == 0, resumed.output
    fr = customers_rows(json.loads(resumed.stdout))["fr"]
    assert fr["recipients"]["sent"] == 1 and fr["recipients"]["already-sent"] == 2
    for email, *_ in CUSTOMERS:
        assert len(smtp.to(email)) == 1


def test_validate_points_at_bad_rows_and_trigger_skips_them(home: Path, smtp: SmtpServer,
                                                           cert: tuple[Path, Path]) -> None:
    use_email(home, smtp, cert)
    write(home / "contacts" / "customers.csv",
          "email;language;name\r\nana@example.com;fr;Ana\r\njean@;fr;Jean\r\nANA@example.com;fr;Ana again\r\n")
    result = run_cli("validate", home=home)
    assert result.code == 0, result.output
    assert ("warning: channel 'customers': contacts/customers.csv:3: 'jean@' is not an email address "
            "(there must be something after the @-sign); this row is skipped") in result.stdout
    assert ("warning: channel 'customers': contacts/customers.csv:4: ANA@example.com repeats line 2; "
            "it is sent once") in result.stdout
    sent, _ = run_trigger(home)
    assert sent.code == 0, sent.output
    assert [r for m in smtp.messages for r in m.rcpt_tos] == ["ana@example.com"]


@pytest.mark.parametrize(("settings", "error"), [
    ({"from": "support"}, "setting 'from': 'support' is not an email address (an email address must have an "
                          "@-sign)"),
    ({"unsubscribe": "http://example.com/u"}, "setting 'unsubscribe': 'http://example.com/u' must be an "
                                              "https:// or mailto: link ({email} is the recipient's address)"),
    ({"password": None}, "setting 'password': the login needs both username and password (or neither)"),
    ({"security": "tls"}, "setting 'security': Input should be 'starttls', 'ssl' or 'none'"),
    ({"connections": 0}, "setting 'connections': Input should be greater than or equal to 1"),
    ({"recipients": "contacts/missing.csv"}, "channel 'customers': recipient list contacts/missing.csv does not "
                                             "exist"),
    ({"ca_file": "nope.pem"}, "channel 'customers': setting 'ca_file': nope.pem does not exist"),
], ids=["from", "unsubscribe", "login", "security", "connections", "recipients", "ca-file"])
def test_a_misconfigured_channel_is_one_line_and_sends_nothing(home: Path, smtp: SmtpServer,
                                                                cert: tuple[Path, Path], settings: dict[str, Any],
                                                                error: str) -> None:
    use_email(home, smtp, cert, **settings)
    channels = yaml.safe_load((home / "channels.yaml").read_text())
    channels["channels"]["customers"] = {k: v for k, v in channels["channels"]["customers"].items() if v is not None}
    write(home / "channels.yaml", yaml.safe_dump(channels, allow_unicode=True))
    result = run_cli("trigger", PLAYBOOK, "--yes", home=home)
    assert result.code == 2
    assert result.stderr.count("\n") == 1 and error in result.stderr, result.stderr
    assert smtp.messages == [] and outbox_lines(home, "x") == 0


def test_check_logs_in_and_sends_nothing(home: Path, smtp: SmtpServer, cert: tuple[Path, Path]) -> None:
    use_email(home, smtp, cert)
    result = run_cli("channels", "--check", "--json", home=home)
    assert result.code == 0, result.output
    listed = {c["name"]: c for c in json.loads(result.stdout)["channels"]}
    assert listed["customers"]["check"] == {
        "ok": True, "detail": f"127.0.0.1:{smtp.port} answers (TLSv1.3, login accepted); nothing was sent"}
    assert listed["customers"]["recipients"] == len(CUSTOMERS)
    assert listed["customers"]["settings"]["password"] == "${SMTP_PASSWORD}"
    assert smtp.messages == [] and smtp.logins == [(USERNAME, True)]
    assert PASSWORD not in result.output


@pytest.mark.parametrize(("change", "detail"), [
    ({"password": "wrong-password-9f"}, "{where} refused the login (535 5.7.8 Authentication credentials invalid): "
                                        "check the settings 'username' and 'password' of channel 'customers'"),
    ({"ca_file": None}, "TLS certificate of {where} not trusted (self-signed certificate): set 'ca_file' of "
                        "channel 'customers' to its CA certificate"),
    ({"port": "closed"}, "cannot reach {where}: connection refused"),
], ids=["wrong-password", "untrusted-certificate", "unreachable"])
def test_check_says_what_is_wrong(home: Path, smtp: SmtpServer, cert: tuple[Path, Path], change: dict[str, Any],
                                  detail: str) -> None:
    settings = {k: v for k, v in change.items() if k != "password"}
    if settings.get("port") == "closed":
        with SmtpServer() as gone:
            settings["port"] = gone.port
    use_email(home, smtp, cert, secret=change.get("password", PASSWORD), **settings)
    if "ca_file" in change:
        channels = yaml.safe_load((home / "channels.yaml").read_text())
        del channels["channels"]["customers"]["ca_file"]
        write(home / "channels.yaml", yaml.safe_dump(channels, allow_unicode=True))
    result = run_cli("channels", "--check", "--json", home=home)
    assert result.code == 1
    port = settings.get("port", smtp.port)
    listed = {c["name"]: c for c in json.loads(result.stdout)["channels"]}
    assert listed["customers"]["check"] == {"ok": False, "detail": detail.format(where=f"127.0.0.1:{port}")}
    assert "wrong-password-9f" not in result.output


def test_implicit_tls_on_its_own_port(home: Path, cert: tuple[Path, Path]) -> None:
    with SmtpServer(cert=cert, implicit_tls=True) as server:
        use_email(home, server, cert, security="ssl")
        result, _ = run_trigger(home)
        assert result.code == 0, result.output
        assert len(server.messages) == len(CUSTOMERS) and all(m.tls for m in server.messages)


# -- the message itself -------------------------------------------------------------------------------

def publisher_for(home: Path, server: SmtpServer, **settings: Any) -> EmailPublisher:
    config = EmailConfig.model_validate({
        "type": "email", "host": server.host, "port": server.port, "security": "none",
        "from": "Élise de Support <support@example.com>", "recipients": "list.csv", **settings})
    return EmailPublisher("customers", config, ChannelContext(home, ["fr", "en"]))


def send_one(publisher: EmailPublisher, blocks: dict[str, str], recipient: Recipient) -> Receipt | Failure:
    delivery = Delivery(key="k", incident_id="i", playbook_id="p", phase="investigating", channel="customers",
                        lang="fr", message=Message("fr", blocks), deadline=datetime.now(UTC), recipient=recipient)

    async def run() -> Receipt | Failure:
        await publisher.open()
        try:
            return await publisher.publish(delivery)
        finally:
            await publisher.close()

    return asyncio.run(run())


def test_names_and_subjects_cannot_inject_headers(tmp_path: Path) -> None:
    with SmtpServer(login=None) as server:
        publisher = publisher_for(tmp_path, server)
        name = 'Martin, "Léa"\r\nBcc: victim@example.com'
        outcome = send_one(publisher, {"title": "Panne\nBcc: x@example.com", "body": "Bonjour"},
                           Recipient("lea@example.com", "fr", {"name": name}))
        assert isinstance(outcome, Receipt), outcome
        (received,) = server.messages
    assert received.rcpt_tos == ("lea@example.com",)
    message = received.message
    assert "Bcc" not in message
    assert message["To"].addresses[0].display_name == 'Martin, "Léa" Bcc: victim@example.com'
    assert message["Subject"] == "Panne Bcc: x@example.com"
    assert message["From"].addresses[0].display_name == "Élise de Support"
    assert "List-Unsubscribe" not in message and "Reply-To" not in message


def test_the_html_block_is_used_when_the_template_has_one(tmp_path: Path) -> None:
    with SmtpServer(login=None) as server:
        publisher = publisher_for(tmp_path, server, unsubscribe="mailto:unsubscribe@example.com?subject={email}")
        outcome = send_one(publisher, {"title": "T", "body": "plain words", "html": "<p><b>rich</b> words</p>"},
                           Recipient("lea@example.com", "fr", {}))
        assert isinstance(outcome, Receipt)
        (received,) = server.messages
    assert received.part("plain") == "plain words\n"
    assert "<body>\n<p><b>rich</b> words</p>\n</body>" in received.part("html")
    assert received.message["To"] == "lea@example.com"
    assert received.message["List-Unsubscribe"] == "<mailto:unsubscribe@example.com?subject=lea%40example.com>"
    # One-click unsubscribing (RFC 8058) is for https links only.
    assert "List-Unsubscribe-Post" not in received.message


def test_live_progress_counts_recipients_settled_by_an_earlier_run() -> None:
    view = LiveView()
    events = [("pending", 0), ("sent", 1), ("already-sent", 0), ("rejected", 0), ("pending", 0), ("rejected", 1)]
    for n, (status, attempts) in enumerate(events):
        view.event(DeliveryEvent("customers", "fr", status, attempts, recipient=f"c{n}@example.com"))
    row = view.rows[("customers", "fr")]
    assert (row["done"], row["total"], row["status"]) == (4, 4, "done")


def test_many_recipients_take_little_time(home: Path, smtp: SmtpServer, cert: tuple[Path, Path]) -> None:
    customers = [(f"customer{n}@example.com", "fr" if n % 3 else "en", f"Customer {n}", "") for n in range(300)]
    use_email(home, smtp, cert, customers=customers, connections=4)
    session = Session(Home(root=home))
    started = time.monotonic()
    outcome = trigger(session, PLAYBOOK, {}, None)
    elapsed = time.monotonic() - started
    session.close()
    assert outcome.result is not None and outcome.result.ok
    assert smtp.count == 300
    assert elapsed < 15


def test_a_message_refused_after_data_fails_alone_and_the_connection_carries_the_others(
        home: Path, smtp: SmtpServer, cert: tuple[Path, Path]) -> None:
    use_email(home, smtp, cert, connections=1, retry_for="1s")
    # A multiline reply, as content filters give: every line must be read before the next command.
    smtp.refuse_data("bob@example.com", "554 5.7.1 Message rejected", "554 5.7.1 as spam")
    result, data = run_trigger(home, "--detected-at", "-1h")
    assert result.code == 1, result.output
    en = customers_rows(data)["en"]
    assert "the message was refused by the server (554 5.7.1 Message rejected 5.7.1 as spam)" in en["error"]
    bob = next(row for row in ledger_rows(home) if row["recipient"] == "bob@example.com")
    assert (bob["status"], bob["attempts"]) == ("failed", 1)
    others = {c[0] for c in CUSTOMERS} - {"bob@example.com"}
    assert {r for m in smtp.messages for r in m.rcpt_tos} == others
    # One connection carried every message, the refused one included.
    assert smtp.connections == 1


@pytest.mark.parametrize(("received", "code", "text"), [
    (b"250 2.0.0 Ok: queued\r\n", 250, "2.0.0 Ok: queued"),
    (b"250-first\r\n250-second\r\n250 last\r\n", 250, "first\nsecond\nlast"),
    (b"354 End data with <CR><LF>.<CR><LF>\r\n", 354, "End data with <CR><LF>.<CR><LF>"),
    (b"550 5.1.1 caf\xc3\xa9 inconnu\n", 550, "5.1.1 café inconnu"),
])
def test_smtp_replies_are_read_whole_single_or_multiline(received: bytes, code: int, text: str) -> None:
    from playbook.channels.email.smtp import parse_reply

    reply = parse_reply(bytearray(received))
    assert reply is not None and (reply.code, reply.message) == (code, text)


@pytest.mark.parametrize("partial", [b"250 Ok", b"250-first\r\n", b"250-first\r\n250-second\r\n", b""])
def test_a_partial_smtp_reply_waits_for_the_rest(partial: bytes) -> None:
    from playbook.channels.email.smtp import parse_reply

    assert parse_reply(bytearray(partial)) is None


def test_a_reply_that_is_not_smtp_is_an_error() -> None:
    from playbook.channels.email.smtp import parse_reply

    with pytest.raises(ValueError, match=r"Malformed SMTP response: HTTP/1\.1 400"):
        parse_reply(bytearray(b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n"))


def test_headers_follow_rfc_5322_numeric_zone_no_break_spaces_kept_lines_folded(home: Path, smtp: SmtpServer,
                                                                               cert: tuple[Path, Path]) -> None:
    long_link = "https://preferences.example.com/communications/unsubscribe/one-click?list=crisis&address={email}"
    use_email(home, smtp, cert, unsubscribe=long_link)
    result, _ = run_trigger(home)
    assert result.code == 0, result.output
    (received,) = smtp.to("ana@example.com")
    head = received.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    date = re.search(r"^Date: ([^\r]*)", head, re.M)
    assert date is not None and date.group(1).endswith(" +0000")  # not "GMT", obsolete in RFC 5322
    assert all(len(line) <= 78 for line in head.split("\r\n")), head
    message = received.message  # the stdlib parser reads back what was folded and encoded
    assert message["Subject"] == SUBJECT["fr"] and "\u00a0:" in message["Subject"]
    assert message["Date"].datetime.utcoffset() == timedelta(0)
    unfolded = "".join(str(message["List-Unsubscribe"]).split())
    assert unfolded == "<" + long_link.replace("{email}", "ana%40example.com") + ">"
