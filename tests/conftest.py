"""Shared fixtures: a fresh home per test, the built-in channel types only, and a CLI runner."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from playbook import secrets
from playbook.publishers import registry
from playbook.starter import write_starter

# The local protocol servers' fixtures (webhook_sink), shared by every test module.
pytest_plugins = ("tests.fakes.http",)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_HOME = ROOT / "examples" / "home"


def builtin_publishers() -> dict[str, str]:
    """The channel types this project registers itself: installed third-party plugins must not leak in."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(data["project"]["entry-points"]["playbook.publishers"])


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    registry.use_registry(registry.Registry(builtin_publishers()))
    secrets.forget_all()
    for name in ("PLAYBOOK_HOME", "PLAYBOOK_STATE"):
        monkeypatch.delenv(name, raising=False)
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
