"""The command line, timed as a user meets it: every run is a fresh process, baselines run interleaved.

1. `playbook --help` against a two-command typer app: what playbook adds to typer's own start-up.
2. Each read-only command (list, show, status, faq, checklist, timeline, channels) against that app's
   `--help`: the commands an operator runs mid-incident must answer at once. Beside them, for information,
   one command of the typer app itself: typer builds pydantic validators for the parameters of the command
   it runs, which `--help` never pays.
3. A trigger to six webhook channels against a trigger to one, each answering after 300 ms: deliveries
   go out together, so six channels cost about what one does.
4. The same message to four webhooks and one email recipient, by `playbook trigger` and by the apprise CLI.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import smtp_sink
import yaml

from playbook.home.starter import write_starter
from tests.fakes.http import WebhookSink, use_webhooks

BIN = Path(sys.executable).parent
# A user's Python writes .pyc files on the first run and loads them afterwards; an environment that forbids
# it would time the compilation of every module instead.
ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
HERE = Path(__file__).resolve().parent
PLAYBOOK = "whatsapp-outage"
HELP_RUNS = 15
READ_RUNS = 7
READ_TARGET = 1.5
TRIGGER_RUNS = 5
SLOW_ANSWER = 0.3


def row(name: str, measured: float, baseline: float, target: float | None) -> dict[str, Any]:
    return {"name": name, "measured": measured, "baseline": baseline, "unit": "s", "ratio": measured / baseline,
            "target": target}


def timed(command: Sequence[str]) -> float:
    """Wall time of one run of `command`; a failing run stops the benchmark with its output."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=ENV)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip() or done.stdout}")
    return took


def interleaved(runs: int, measured: Callable[[int], float], baseline: Callable[[int], float]) -> tuple[float, float]:
    """Medians of `runs` alternating runs of each, after one warm-up of each (disk cache, .pyc files)."""
    measured(-1)
    baseline(-1)
    pairs = [(measured(i), baseline(i)) for i in range(runs)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def bench_help() -> dict[str, Any]:
    playbook = [str(BIN / "playbook"), "--help"]
    minimal = [sys.executable, str(HERE / "minimal_typer_app.py"), "--help"]
    ours, typer_alone = interleaved(HELP_RUNS, lambda _: timed(playbook), lambda _: timed(minimal))
    return row("playbook --help vs a two-command typer app", ours, typer_alone, 1.3)


def _timed_run(command: Sequence[str], _run: int) -> float:
    return timed(command)


def bench_read_only(root: Path) -> list[dict[str, Any]]:
    """Each read-only command on the starter home with one incident, against the typer app's `--help`."""
    home = new_home(root, "read")
    state = root / "read.db"
    opened = subprocess.run(trigger_command(home, state), capture_output=True, text=True, env=ENV)
    if opened.returncode != 0:
        raise RuntimeError(f"the trigger that opens the incident failed: {opened.stderr.strip() or opened.stdout}")
    incident = json.loads(opened.stdout)["incident"]
    minimal = [sys.executable, str(HERE / "minimal_typer_app.py")]
    playbook = [str(BIN / "playbook"), "--home", str(home), "--state", str(state)]
    commands = [["list"], ["show", PLAYBOOK], ["status"], ["faq", PLAYBOOK], ["checklist", PLAYBOOK],
                ["timeline", incident], ["channels"]]
    rows = []
    for command in commands:
        ours, typer_alone = interleaved(READ_RUNS, partial(_timed_run, [*playbook, *command]),
                                        lambda _: timed([*minimal, "--help"]))
        rows.append(row(f"playbook {command[0]} vs a typer app's --help", ours, typer_alone, READ_TARGET))
    command_run, help_only = interleaved(READ_RUNS, lambda _: timed([*minimal, "hello", "world"]),
                                         lambda _: timed([*minimal, "--help"]))
    rows.append(row("the typer app running a command vs its --help", command_run, help_only, None))
    return rows


def trigger_command(home: Path, state: Path) -> list[str]:
    return [str(BIN / "playbook"), "--home", str(home), "--state", str(state), "trigger", PLAYBOOK, "--yes", "--json"]


def new_home(root: Path, name: str) -> Path:
    home = root / name
    write_starter(home)
    return home


def bench_fan_out(root: Path, sink: WebhookSink) -> dict[str, Any]:
    six = new_home(root, "six")
    use_webhooks(six, sink, [f"six{i}" for i in range(6)])
    one = new_home(root, "one")
    use_webhooks(one, sink, ["one"])
    took_six, took_one = interleaved(
        TRIGGER_RUNS,
        lambda i: timed(trigger_command(six, root / f"six-{i}.db")),
        lambda i: timed(trigger_command(one, root / f"one-{i}.db")),
    )
    return row("trigger: 6 webhooks vs 1 (each answers in 300 ms)", took_six, took_one, 1.5)


def bench_against_apprise(root: Path, sink: WebhookSink) -> dict[str, Any]:
    apprise = BIN / "apprise"
    if not apprise.exists():
        raise RuntimeError(f"apprise is not installed: {BIN / 'pip'} install apprise")
    home = new_home(root, "apprise")
    hooks = [f"ap{i}" for i in range(4)]
    use_webhooks(home, sink, [*hooks, "customers"], languages=["en"])
    (home / "contacts").mkdir(exist_ok=True)
    (home / "contacts" / "bench.csv").write_text("email,language\ncustomer@example.com,en\n")
    with smtp_sink.running() as (smtp_port, smtp):
        channels_file = home / "channels.yaml"
        channels = yaml.safe_load(channels_file.read_text())
        channels["channels"]["customers"] = {
            "type": "email", "host": "127.0.0.1", "port": smtp_port, "security": "none",
            "from": "noreply@example.com", "recipients": "contacts/bench.csv", "languages": ["en"],
        }
        channels_file.write_text(yaml.safe_dump(channels, sort_keys=False))
        preview = subprocess.run([str(BIN / "playbook"), "--home", str(home), "trigger", PLAYBOOK, "--dry-run",
                                  "--json"], capture_output=True, text=True, check=True)
        blocks = next(d["blocks"] for d in json.loads(preview.stdout)["deliveries"] if d["channel"] == hooks[0])
        urls = [f"json://127.0.0.1:{sink.port}/{hook}" for hook in hooks]
        urls.append(f"mailto://127.0.0.1:{smtp_port}?to=customer@example.com&from=noreply@example.com")
        notify = [str(apprise), "--title", blocks["title"], "--body", blocks["short"], *urls]
        before_hooks, before_mail = len(sink.requests()), smtp.received
        ours, theirs = interleaved(TRIGGER_RUNS, lambda i: timed(trigger_command(home, root / f"ap-{i}.db")),
                                   lambda _: timed(notify))
        runs = 2 * (TRIGGER_RUNS + 1)
        if (len(sink.requests()) - before_hooks, smtp.received - before_mail) != (4 * runs, runs):
            raise RuntimeError("playbook and apprise did not deliver the same messages")
    return row("4 webhooks + 1 email: playbook trigger vs apprise", ours, theirs, 1.0)


def run() -> list[dict[str, Any]]:
    rows = [bench_help()]
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench_read_only(Path(tmp))
    with tempfile.TemporaryDirectory() as tmp, WebhookSink(delay=SLOW_ANSWER) as sink:
        rows.append(bench_fan_out(Path(tmp), sink))
        rows.append(bench_against_apprise(Path(tmp), sink))
    return rows
