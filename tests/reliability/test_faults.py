"""Providers that misbehave, one clear test per fault, against real local servers.

Each fault and what the engine promises (the HTTP side of the first two is proven in test_engine.py, each
SMTP refusal alone in test_email.py):

- slower than the attempt timeout: retried, then sent once;
- the connection dropped mid-answer: retried, then sent once;
- 429 on every attempt until retry_for is spent: failed with the reason, exit 1; resume sends it later;
- 5xx several times, then recovery: retried and sent, with the same key and body each time;
- 550 for some recipients of a list and 451 once for others: the 550 ones rejected, recorded and never
  retried by resume; the 451 ones deferred, retried and delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import by_channel, run_cli, run_trigger, write
from tests.fakes.http import Reply, WebhookSink, use_webhooks
from tests.fakes.smtp import SmtpServer

PLAYBOOK = "whatsapp-outage"


class FaultyRcpt:
    """Wraps the fake SMTP server's handler: the first RCPT for an address is held unanswered, or cut off.

    A held RCPT is answered only once the client asked again for the same address (or after `hold`
    seconds): a client that waits for the server instead of giving up after its own timeout sends no second
    RCPT and shows as a run of `hold` seconds with one attempt, whatever the machine's load.
    """

    def __init__(self, inner: Any, address: str, fault: str, hold: float = 30.0) -> None:
        self.inner = inner
        self.address = address
        self.fault = fault
        self.hold = hold
        self.struck = 0
        # Set when the address is asked for again before the held RCPT was answered.
        self.retried_unanswered = False
        self._answered = False
        self._asked_again = asyncio.Event()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address == self.address and not self.struck:
            self.struck += 1
            if self.fault == "slow":
                # aiosmtpd cancels this wait when the client hangs up: the RCPT then stays unanswered.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._asked_again.wait(), self.hold)
                self._answered = True
            else:
                server.transport.close()
        elif address == self.address and not self._answered:
            self.retried_unanswered = True
            self._asked_again.set()
        reply: str = await self.inner.handle_RCPT(server, session, envelope, address, options)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply: str = await self.inner.handle_DATA(server, session, envelope)
        return reply


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(login=None) as server:
        yield server


def use_email(home: Path, server: SmtpServer, customers: list[str], **settings: Any) -> None:
    """Make `customers` of the starter home an email channel (plain SMTP, no login) to these addresses."""
    channels = yaml.safe_load((home / "channels.yaml").read_text())
    channels["channels"]["customers"] = {
        "type": "email", "host": server.host, "port": server.port, "security": "none",
        "from": "Support <support@example.com>", "recipients": "contacts/customers.csv", "connections": 2,
        **settings,
    }
    write(home / "channels.yaml", yaml.safe_dump(channels, sort_keys=False))
    write(home / "contacts" / "customers.csv", "email,language\n" + "".join(f"{a},en\n" for a in customers))



def email_rows(home: Path) -> dict[str, sqlite3.Row]:
    db = sqlite3.connect(home / ".playbook" / "state.db")
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute("SELECT * FROM deliveries WHERE channel='customers'").fetchall()
    finally:
        db.close()
    return {row["recipient"]: row for row in rows}


@pytest.mark.parametrize("fault", ["slow", "drop"])
def test_an_smtp_answer_too_slow_or_cut_off_is_retried_and_the_customer_mailed_once(home: Path, smtp: SmtpServer,
                                                                                      fault: str) -> None:
    customers = [f"c{n}@example.com" for n in range(6)]
    # 3 s per attempt: the other customers' answers come well inside it even on a loaded machine.
    use_email(home, smtp, customers, timeout="3s")
    # The server holds this RCPT unanswered (far beyond the 3 s attempt), or closes the connection instead.
    faulty = FaultyRcpt(smtp._controller.handler, "c2@example.com", fault)
    smtp._controller.handler = faulty
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    assert by_channel(data)[("customers", "en")]["recipients"]["sent"] == len(customers)
    assert Counter(a for m in smtp.messages for a in m.rcpt_tos) == dict.fromkeys(customers, 1)
    rows = email_rows(home)
    assert rows["c2@example.com"]["attempts"] == 2
    assert {rows[a]["attempts"] for a in customers if a != "c2@example.com"} == {1}
    # Given up after the 3 s timeout: the retry came while the server still held the first RCPT unanswered.
    if fault == "slow":
        assert faulty.retried_unanswered


def test_429_on_every_attempt_fails_with_the_reason_once_retry_for_is_spent_then_resume_sends_it(
        home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["limited", "ops"], languages=["en"],
                 settings={"limited": {"retry_for": "3s"}})
    # Retry-After: 1 on each answer: attempts at about 0, 1 and 2 s; a fourth would start after retry_for.
    webhook_sink.script("limited", *[Reply(429, headers={"Retry-After": "1"}, body={"error": "slow down"})] * 3)
    # Detected 40 minutes ago: the window is over, so retry_for alone bounds the retries.
    result, data = run_trigger(home, "--detected-at", "-40m")

    assert result.code == 1
    failed = by_channel(data)[("limited", "en")]
    assert (failed["status"], failed["attempts"]) == ("failed", 3)
    # The last answer's Retry-After points past retry_for: the error says when the provider would accept again.
    assert re.fullmatch(r'rate limited \(HTTP 429\): \{"error": "slow down"\}(; the provider accepts again at '
                        r'\d\d:\d\d:\d\d UTC, after the deadline| \(gave up after 3 attempts\))',
                        failed["error"]), failed
    first, second, third = webhook_sink.requests("limited")
    assert second.at - first.at >= 0.95 and third.at - second.at >= 0.95
    assert by_channel(data)[("ops", "en")]["status"] == "sent"

    resumed = run_cli("resume", data["incident"], "--json", home=home)
    assert resumed.code == 0, resumed.output
    assert {(d["channel"], d["status"]) for d in json.loads(resumed.stdout)["deliveries"]} == {
        ("limited", "sent"), ("ops", "already-sent")}
    assert [r.key for r in webhook_sink.requests("limited")] == [first.key] * 4
    assert len(webhook_sink.requests("ops")) == 1


def test_server_errors_in_a_row_then_recovery_send_once_with_the_same_key_and_body(
        home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["ops"], languages=["en"])
    webhook_sink.script("ops", Reply(500, body="oops"), Reply(502, body="<html>bad gateway</html>"),
                        Reply(503, headers={"Retry-After": "0"}, body={"error": "busy"}))
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    delivery = by_channel(data)[("ops", "en")]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 4)
    requests = webhook_sink.requests("ops")
    assert len(requests) == 4
    assert len({r.key for r in requests}) == 1
    # The same bytes and signature each time: a receiver can drop the repeats it already acted on.
    assert len({(r.body, r.headers["x-playbook-signature"]) for r in requests}) == 1


def test_refused_and_deferred_recipients_in_one_list_end_rejected_and_delivered(home: Path,
                                                                               smtp: SmtpServer) -> None:
    customers = [f"c{n}@example.com" for n in range(40)]
    refused, deferred = customers[3:6], customers[20:23]
    use_email(home, smtp, customers, retry_for="2s")
    for address in refused:
        smtp.refuse(address, 550, "5.1.1 No such user here")
    for address in deferred:
        smtp.refuse_once(address, 451, "4.7.1 Greylisted, try again later")
    result, data = run_trigger(home)

    assert result.code == 0, result.output
    summary = by_channel(data)[("customers", "en")]
    assert summary["recipients"] == {"total": 40, "sent": 37, "already-sent": 0, "failed": 0, "rejected": 3}
    assert "550 5.1.1 No such user here" in summary["error"]
    rows = email_rows(home)
    for address in refused:
        assert (rows[address]["status"], rows[address]["attempts"]) == ("rejected", 1)
        assert "was refused by the server (550 5.1.1 No such user here)" in rows[address]["error"]
    for address in deferred:
        assert (rows[address]["status"], rows[address]["attempts"]) == ("sent", 2)
    mailed = Counter(a for m in smtp.messages for a in m.rcpt_tos)
    assert mailed == dict.fromkeys([a for a in customers if a not in refused], 1)

    refusals = len(smtp.refused)
    resumed = run_cli("resume", data["incident"], home=home)
    assert resumed.code == 2
    assert "nothing left to send" in resumed.stderr
    assert len(smtp.refused) == refusals and smtp.count == len(customers) - len(refused)
