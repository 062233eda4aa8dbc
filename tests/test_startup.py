"""Read-only commands start without the publishing side: no provider client, no template engine, no engine.

Each command runs in a fresh interpreter, which then lists the heavy modules it imported: an import moved
back to module level anywhere on the way fails here, where a timing would only drift.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli, write

# Provider clients, the template engine and what only publishing needs.
HEAVY = ("tweepy", "requests", "atproto", "twilio", "apprise", "aiohttp", "httpx", "mastodon", "jinja2",
         "pkg_resources", "twitter_text", "aiosmtplib", "playbook.engine", "playbook.publishing", "playbook.plan",
         "playbook.templates", "playbook.messages")

CHANNELS = """\
channels:
  x:
    type: x
    consumer_key: key
    consumer_secret: secret
    access_token: token
    access_token_secret: token-secret
  website:
    type: status-page
    output_dir: public/status
    url: https://status.example.com
  customers:
    type: file
    path: outbox/customers.jsonl
"""

REPORT = """\
import sys
from playbook.cli import main
sys.argv = ["playbook", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
heavy = sorted(name for name in sys.modules if name in {heavy!r} or name.split(".")[0] in {heavy!r})
print("\\n" + " ".join(["exit", str(code), *heavy]))
"""


def imported(home: Path, *args: str) -> tuple[int, list[str]]:
    """The exit status of `playbook ARGS` and the heavy modules it imported."""
    done = subprocess.run([sys.executable, "-c", REPORT.format(heavy=HEAVY), "--home", str(home), *args],
                          capture_output=True, text=True, timeout=60)
    _, code, *heavy = done.stdout.splitlines()[-1].split(" ")
    return int(code), heavy


@pytest.fixture
def incident_home(home: Path) -> tuple[Path, str]:
    """The starter home with an open incident, then an X channel and a status page that were never used."""
    opened = run_cli("trigger", "whatsapp-outage", "--yes", "--json", home=home)
    assert opened.code == 0, opened.output
    write(home / "channels.yaml", CHANNELS)
    return home, json.loads(opened.stdout)["incident"]


@pytest.mark.parametrize("command", [
    ("list",), ("show", "whatsapp-outage"), ("status",), ("faq", "whatsapp-outage"),
    ("checklist", "whatsapp-outage"), ("timeline", "{incident}"), ("channels",),
])
def test_read_only_command_imports_no_provider_client_template_engine_or_publishing_engine(
        incident_home: tuple[Path, str], command: tuple[str, ...]) -> None:
    home, incident = incident_home
    code, heavy = imported(home, *(part.format(incident=incident) for part in command))
    assert code == 0
    assert heavy == []


def test_channel_check_still_loads_the_provider_client(incident_home: tuple[Path, str]) -> None:
    home, _ = incident_home
    _, heavy = imported(home, "channels", "--check")
    assert "tweepy" in heavy


LAYER = """\
import importlib, pkgutil, sys
import playbook.cli, playbook.output
for module in pkgutil.iter_modules(playbook.output.__path__):
    importlib.import_module("playbook.output." + module.name)
print(" ".join(sorted({name.split(".")[0] for name in sys.modules} & {"rich", "jinja2", "pydantic"})))
"""


def test_the_command_line_and_every_output_module_import_without_rich() -> None:
    # rich is imported by the function that draws: `--help`, `--version` and a failing command never pay for it.
    done = subprocess.run([sys.executable, "-c", LAYER], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
