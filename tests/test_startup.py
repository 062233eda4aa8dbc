"""Read-only commands start without the publishing side: no provider client, no template engine, no engine.

Each command runs in a fresh interpreter, which then lists the heavy modules it imported: an import moved
back to module level anywhere on the way fails here, where a timing would only drift. A playbook parsed once
is read back from the parse cache, identical, without PyYAML.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from playbook.errors import ConfigError
from playbook.home import yamlparse
from playbook.home.locate import Home
from playbook.home.yamlfile import load_yaml
from tests.conftest import run_cli, write
from tests.fakes.http import WebhookSink, use_webhooks

# Provider clients, the template engine and what only publishing needs.
HEAVY = ("tweepy", "requests", "atproto", "twilio", "apprise", "aiohttp", "httpx", "mastodon", "jinja2",
         "pkg_resources", "twitter_text", "aiosmtplib", "playbook.engine", "playbook.commands.publishing",
         "playbook.planning", "playbook.rendering.templates", "playbook.rendering.messages",
         # Babel's locale data (a language code is checked against its files), the event loop, PyYAML's parser
         # (a playbook parsed before comes from the cache; channels.yaml is never cached, it may hold a secret).
         "babel", "asyncio", "yaml",
         # The PostgreSQL driver: only a postgresql:// ledger loads it.
         "psycopg")
# The starter's channels are `file` channels, whose module imports asyncio.
CHANNELS_IMPORT = ["asyncio", "yaml"]

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
heavy = sorted({{h for name, module in sys.modules.items() for h in {heavy!r}
                if module is not None and (name == h or name.startswith(h + "."))}})
print("\\n" + " ".join(["exit", str(code), *heavy]))
"""


def imported(home: Path, *args: str, heavy: tuple[str, ...] = HEAVY) -> tuple[int, list[str]]:
    """The exit status of `playbook ARGS` and which of the `heavy` modules it imported."""
    done = subprocess.run([sys.executable, "-c", REPORT.format(heavy=heavy), "--home", str(home), *args],
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
    assert heavy == (CHANNELS_IMPORT if command == ("channels",) else [])


def test_a_trigger_loads_httpx_without_its_command_line_client(home: Path, webhook_sink: WebhookSink) -> None:
    # apprise and atproto install click, and httpx then imports its own CLI (pygments, rich.progress).
    use_webhooks(home, webhook_sink, ["hook"], languages=["en"])
    code, heavy = imported(home, "trigger", "whatsapp-outage", "--yes", "--json",
                           heavy=("httpx", "httpx._main", "click", "pygments"))
    assert code == 0
    assert heavy == ["httpx"]
    assert len(webhook_sink.requests()) == 1


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


def test_a_playbook_parsed_once_is_read_back_identical_without_parsing(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Home(home).load_playbook_doc("whatsapp-outage")
    assert first[1].data is not None

    def no_parsing(raw: bytes, shown: Path) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(yamlparse, "parse", no_parsing)
    assert Home(home).load_playbook_doc("whatsapp-outage") == first


def test_an_edited_playbook_is_parsed_again_and_its_error_is_the_same_as_without_the_cache(home: Path) -> None:
    Home(home).load_playbook("whatsapp-outage")
    path = home / "playbooks" / "whatsapp-outage.yaml"
    path.write_text(path.read_text().replace("name: {fr: ", "name: {fr: Quand ?, "), encoding="utf-8")
    with pytest.raises(ConfigError) as cached:
        Home(home).load_playbook("whatsapp-outage")
    with pytest.raises(ConfigError) as uncached:
        load_yaml(path, display=Path("playbooks/whatsapp-outage.yaml"))
    assert str(cached.value) == str(uncached.value)
    assert "a '?' inside [ ] or { }" in str(cached.value)


def test_a_damaged_cache_entry_is_parsed_again(home: Path, tmp_path: Path) -> None:
    own = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    expected = Home(home, environ=own).load_playbook("whatsapp-outage")
    [entry] = (tmp_path / "cache" / "crisis-playbook" / "parsed").iterdir()
    entry.write_bytes(b"\x00 not marshal")
    assert Home(home, environ=own).load_playbook("whatsapp-outage") == expected
    assert entry.read_bytes() != b"\x00 not marshal"


def test_a_cache_that_cannot_be_written_only_costs_speed(home: Path, tmp_path: Path) -> None:
    blocked = write(tmp_path / "not-a-folder", "a file where the cache folder would go")
    loaded = Home(home, environ={"XDG_CACHE_HOME": str(blocked)}).load_playbook("whatsapp-outage")
    assert loaded.id == "whatsapp-outage"
    assert blocked.read_text() == "a file where the cache folder would go"


def test_cache_entries_are_private_to_the_user(home: Path, tmp_path: Path) -> None:
    Home(home, environ={"XDG_CACHE_HOME": str(tmp_path / "cache")}).load_playbook("whatsapp-outage")
    entries = list((tmp_path / "cache" / "crisis-playbook" / "parsed").iterdir())
    assert len(entries) == 1
    assert os.stat(entries[0]).st_mode & 0o077 == 0
