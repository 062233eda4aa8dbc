"""Customer email at scale: `playbook trigger`'s SMTP rate against a bare smtplib loop, and its memory.

Both senders talk to the same SMTP server on 127.0.0.1 (aiosmtpd in a process of its own, with a handler
that only counts) over 4 connections, in turns: baseline, trigger, baseline, trigger... ROUNDS times, best
of each side reported (the other processes of a shared machine only ever slow a run down) and the median
of the per-round ratios beside it. The baseline sends the messages playbook builds, built beforehand, so it
measures SMTP alone; the trigger starts a process, reads the list, renders and builds each message and
records each delivery in the ledger, all inside its time.
"""

from __future__ import annotations

import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import smtp_sink
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = "whatsapp-outage"
CONNECTIONS = 4
RATE_RECIPIENTS = 10_000
MEMORY_RECIPIENTS = 100_000
RATE_TARGET = 0.8
ROUNDS = 5
MEMORY_LIMIT_MB = 150.0


def _home(directory: Path, port: int, recipients: int) -> Path:
    """The starter home with `customers` as an email channel to `port`, and a list of `recipients`."""
    from playbook.home.starter import write_starter

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
    from playbook.channels.email import EmailPublisher
    from playbook.commands.session import Session
    from playbook.home.locate import Home
    from playbook.publishers.base import Delivery
    from playbook.rendering.messages import Composer
    from playbook.rendering.variables import resolve

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
    with tempfile.TemporaryDirectory() as tmp, smtp_sink.Process() as server:
        rate_home = _home(Path(tmp) / "rate", server.port, RATE_RECIPIENTS)
        messages = _prebuilt(rate_home)
        before = server.count()
        baselines, measures = [], []
        for _ in range(ROUNDS):
            baselines.append(_smtplib_loop(server.port, messages))
            measures.append(_trigger(rate_home)[0])
        sent = server.count() - before
        if sent != 2 * ROUNDS * RATE_RECIPIENTS:
            raise RuntimeError(f"the server received {sent:,} messages, not {2 * ROUNDS * RATE_RECIPIENTS:,}")
        memory_home = _home(Path(tmp) / "memory", server.port, MEMORY_RECIPIENTS)
        before = server.count()
        _, peak = _trigger(memory_home)
        if server.count() - before != MEMORY_RECIPIENTS:
            raise RuntimeError("the 100,000-recipient trigger did not deliver every message")
    baseline, measured = min(baselines), min(measures)
    # Rates are messages per second: the ratio of rates is the inverse ratio of times.
    ratios = [b / m for b, m in zip(baselines, measures, strict=True)]
    name = f"email: {RATE_RECIPIENTS:,} recipients, trigger vs smtplib loop ({CONNECTIONS} connections)"
    return [
        {"name": f"{name}, best of {ROUNDS}", "measured": round(measured, 2), "baseline": round(baseline, 2),
         "unit": "s", "ratio": round(baseline / measured, 2), "target": f"rate ratio >= {RATE_TARGET}"},
        {"name": f"{name}, median of the {ROUNDS} rounds' ratios", "measured": round(statistics.median(measures), 2),
         "baseline": round(statistics.median(baselines), 2), "unit": "s", "ratio": round(statistics.median(ratios), 2),
         "target": None},
        {"name": f"email: peak memory of a trigger to {MEMORY_RECIPIENTS:,} recipients",
         "measured": round(peak, 1), "baseline": MEMORY_LIMIT_MB, "unit": "MB",
         "ratio": round(peak / MEMORY_LIMIT_MB, 2), "target": f"< {MEMORY_LIMIT_MB:g} MB"},
    ]


if __name__ == "__main__":
    for result in run():
        print(result)
