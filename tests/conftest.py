"""Shared fixtures: a fresh home per test, the built-in channel types only, and a CLI runner."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from playbook import secrets
from playbook.home.starter import write_starter
from playbook.publishers import registry

# The local servers' fixtures (webhook_sink, postgres_url), shared by every test module.
pytest_plugins = ("tests.fakes.http", "tests.fakes.postgres")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_HOME = ROOT / "examples" / "home"


def builtin_publishers() -> dict[str, str]:
    """The channel types this project registers itself: installed third-party plugins must not leak in."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(data["project"]["entry-points"]["playbook.publishers"])


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    registry.use_registry(registry.Registry(builtin_publishers()))
    secrets.forget_all()
    for name in ("PLAYBOOK_HOME", "PLAYBOOK_STATE"):
        monkeypatch.delenv(name, raising=False)
    # Parsed playbooks are cached per file (Home.parse_cache): the tests' thousands of homes stay out of ~/.cache.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    yield
    registry.use_registry(None)
    secrets.forget_all()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh home made by `playbook init` (the starter: whatsapp-outage, channels archived to files)."""
    target = tmp_path / "home"
    write_starter(target)
    return target


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args: str, home: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 60, input: str | None = None) -> Result:
    """Run the real `playbook` command in a subprocess, as a user would (no terminal attached)."""
    command = [sys.executable, "-m", "playbook"]
    if home is not None:
        command += ["--home", str(home)]
    # The caller's env wins, so a test can set PLAYBOOK_HOME or PLAYBOOK_STATE on purpose.
    full_env = {k: v for k, v in os.environ.items() if k not in ("PLAYBOOK_HOME", "PLAYBOOK_STATE")}
    full_env.update({"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
    done = subprocess.run([*command, *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                          input=input)
    return Result(done.returncode, done.stdout, done.stderr)


def run_trigger(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Result, dict[str, Any]]:
    """`playbook trigger whatsapp-outage --yes --json ARGS`: the result and its JSON ({} when it printed none)."""
    result = run_cli("trigger", "whatsapp-outage", "--yes", "--json", *args, home=home, env=env)
    return result, json.loads(result.stdout) if result.stdout.strip() else {}


def deliveries(data: dict[str, Any], channel: str) -> dict[str, dict[str, Any]]:
    """The deliveries of `channel` in a run's JSON, by language."""
    return {d["lang"]: d for d in data["deliveries"] if d["channel"] == channel}


def by_channel(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every delivery in a run's JSON, by (channel, language)."""
    return {(d["channel"], d["lang"]): d for d in data["deliveries"]}


def channel_check(home: Path, channel: str, env: dict[str, str] | None = None) -> tuple[Result, dict[str, Any]]:
    """`playbook channels --check --json`: the result and what it says of `channel`."""
    result = run_cli("channels", "--check", "--json", home=home, env=env)
    listing = {c["name"]: c for c in json.loads(result.stdout)["channels"]}
    return result, listing[channel]


def set_short(home: Path, lang: str, text: str) -> None:
    """Replace the `short` block of the whatsapp-outage first phase's template in `lang` with `text`."""
    template = home / "templates" / "whatsapp-outage" / f"investigating.{lang}.j2"
    source = template.read_text(encoding="utf-8")
    write(template, re.sub(r"(\{% block short %\}).*?(\{% endblock %\})", lambda m: m.group(1) + text + m.group(2),
                           source, count=1, flags=re.DOTALL))


def ledger_text(home: Path) -> str:
    """The home's whole ledger as SQL, to search for what must never be stored."""
    with sqlite3.connect(home / ".playbook" / "state.db") as db:
        return "\n".join(db.iterdump())


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_main(*args: str) -> Result:
    """`playbook ARGS` in this process, through main(): the installed command's own error handler."""
    from playbook.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with mock.patch.object(sys, "argv", ["playbook", *args]), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


def copy_example(tmp_path: Path) -> Path:
    target = tmp_path / "example"
    shutil.copytree(EXAMPLE_HOME, target, ignore=shutil.ignore_patterns(".playbook", "outbox", "public"))
    return target


def wait_for(condition: str, check: Callable[[], bool], timeout: float = 30) -> None:
    """Poll `check` until it holds; fail naming `condition` after `timeout` seconds (an event, never a sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {condition}")


def lease_lapsed(db: Path, incident: str) -> bool:
    """Whether no process holds a live claim on the incident any more (its lease ran out, or it let go)."""
    from playbook.ledger import open_ledger

    ledger = open_ledger(db, readonly=True)
    try:
        return not ledger.holders(incident)
    finally:
        ledger.close()


def sent_count(home: Path, channel: str) -> int:
    """How many deliveries of `channel` the home's ledger records as sent (0 while it does not exist yet)."""
    try:
        db = sqlite3.connect(f"file:{home / '.playbook' / 'state.db'}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:
        return 0
    try:
        return int(db.execute("SELECT count(*) FROM deliveries WHERE channel=? AND status='sent'",
                              (channel,)).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def kill_when(condition: str, check: Callable[[], bool], *args: str, home: Path, env: dict[str, str]) -> None:
    """Run `playbook ARGS` and kill -9 it once `check` holds: a crash at a chosen point, however loaded the machine."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("PLAYBOOK_HOME", "PLAYBOOK_STATE")}
    with subprocess.Popen([sys.executable, "-m", "playbook", "--home", str(home), *args], env={**full_env, **env},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as run:
        try:
            wait_for(condition, check, timeout=60)
        finally:
            run.kill()
