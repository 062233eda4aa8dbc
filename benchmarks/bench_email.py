"""Customer email at scale: `playbook trigger`'s SMTP rate against a bare smtplib loop, and its memory.

Both senders talk to the same plain SMTP server on 127.0.0.1 (aiosmtpd in its own process, counting only)
over 4 connections, one after the other in the same run. The baseline sends messages built beforehand, so
it measures SMTP alone; the trigger also reads the list, renders each message and records each delivery.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = "whatsapp-outage"
CONNECTIONS = 4
RATE_RECIPIENTS = 10_000
MEMORY_RECIPIENTS = 100_000
RATE_TARGET = 0.8
ROUNDS = 2
MEMORY_LIMIT_MB = 150.0


class _SmtpProcess:
    """The test suite's SMTP server in a process of its own, so its work is not counted as ours."""

    def __enter__(self) -> _SmtpProcess:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.fakes.smtp"], cwd=ROOT, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.port = int(self._line())
        return self

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the SMTP server did not start")
        return line

    def count(self) -> int:
        """Messages the server has accepted so far."""
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write("count\n")
        stdin.flush()
        return int(self._line())

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _home(directory: Path, port: int, recipients: int) -> Path:
    """The starter home with `customers` as an email channel to `port`, and a list of `recipients`."""
    from playbook.starter import write_starter

    write_starter(directory)
    channels = yaml.safe_load((directory / "channels.yaml").read_text())
    channels["channels"]["customers"] = {
        "type": "email", "host": "127.0.0.1", "port": port, "security": "none",
        "from": "Example Support <support@example.com>", "recipients": "customers.csv",
        "connections": CONNECTIONS, "unsubscribe": "https://example.com/unsubscribe?e={email}",
    }
    (directory / "channels.yaml").write_text(yaml.safe_dump(channels, sort_keys=False))
    with (directory / "customers.csv").open("w", encoding="utf-8") as handle:
        handle.write("email,language,name\n")
        for n in range(recipients):
            handle.write(f"customer{n}@example.com,{'fr' if n % 3 else 'en'},Client Numéro {n}\n")
    return directory


def _prebuilt(home: Path) -> list[tuple[str, bytes]]:
    """Every message of the list, rendered and built as playbook would: the baseline's input."""
    from playbook.compose import Composer
    from playbook.home import Home
    from playbook.incidents import Session
    from playbook.publishers.base import Delivery
    from playbook.publishers.email import EmailPublisher
    from playbook.variables import resolve

    session = Session(Home(root=home))
    playbook = session.home.load_playbook(PLAYBOOK)
    publisher = session.load_channels().publisher("customers", playbook.languages)
    assert isinstance(publisher, EmailPublisher)
    composer = Composer(session.home, playbook)
    now = datetime.now(UTC)
    context = composer.context("bench", now, playbook.first_phase, None)
    variables = resolve(playbook, {})
    built = []
    for recipient in publisher.recipients():
        lang = recipient.lang or "fr"
        message = composer.message(playbook.first_phase, lang, variables, context, publisher, recipient)
        delivery = Delivery(key="bench", incident_id="bench", playbook_id=PLAYBOOK, phase=playbook.first_phase,
                            channel="customers", lang=lang, message=message, deadline=now, recipient=recipient)
        built.append((recipient.address, publisher.message_bytes(delivery)[0]))
    session.close()
    return built


def _smtplib_loop(port: int, messages: list[tuple[str, bytes]]) -> float:
    """Seconds for CONNECTIONS threads, one smtplib connection each, to send their share of `messages`."""
    def send(share: list[tuple[str, bytes]]) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            for address, data in share:
                client.sendmail("support@example.com", [address], data)

    threads = [threading.Thread(target=send, args=(messages[n::CONNECTIONS],)) for n in range(CONNECTIONS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def _trigger(home: Path) -> tuple[float, float]:
    """(seconds, peak resident MB) of `playbook trigger` in its own process, start-up included."""
    env = {k: v for k, v in os.environ.items() if k not in ("PLAYBOOK_HOME", "PLAYBOOK_STATE")}
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "playbook", "--home", str(home), "trigger", PLAYBOOK, "--yes", "--json", "--new"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors,
        )
        # wait4 gives this child's own resource usage, where RUSAGE_CHILDREN would mix in the others.
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"playbook trigger failed ({process.returncode}): {errors.read().decode()}")
    # ru_maxrss is in kilobytes on Linux.
    return elapsed, usage.ru_maxrss / 1024


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp, _SmtpProcess() as server:
        rate_home = _home(Path(tmp) / "rate", server.port, RATE_RECIPIENTS)
        messages = _prebuilt(rate_home)
        before = server.count()
        baselines, measures = [], []
        # Turn about, best of each: a busy neighbour on the machine then costs both sides alike.
        for _ in range(ROUNDS):
            baselines.append(_smtplib_loop(server.port, messages))
            measures.append(_trigger(rate_home)[0])
        baseline, measured = min(baselines), min(measures)
        sent = server.count() - before
        if sent != 2 * ROUNDS * RATE_RECIPIENTS:
            raise RuntimeError(f"the server received {sent:,} messages, not {2 * ROUNDS * RATE_RECIPIENTS:,}")
        memory_home = _home(Path(tmp) / "memory", server.port, MEMORY_RECIPIENTS)
        before = server.count()
        _, peak = _trigger(memory_home)
        if server.count() - before != MEMORY_RECIPIENTS:
            raise RuntimeError("the 100,000-recipient trigger did not deliver every message")
    return [
        {"name": f"email: {RATE_RECIPIENTS:,} recipients, trigger vs smtplib loop ({CONNECTIONS} connections)",
         "measured": round(measured, 2), "baseline": round(baseline, 2), "unit": "s",
         "ratio": round(baseline / measured, 2), "target": f"rate ratio >= {RATE_TARGET}"},
        {"name": f"email: peak memory of a trigger to {MEMORY_RECIPIENTS:,} recipients",
         "measured": round(peak, 1), "baseline": MEMORY_LIMIT_MB, "unit": "MB",
         "ratio": round(peak / MEMORY_LIMIT_MB, 2), "target": f"< {MEMORY_LIMIT_MB:g} MB"},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
