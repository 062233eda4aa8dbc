"""The plugin example of examples/plugin, installed as a user would: a new channel type through an entry point.

It goes into a throwaway virtual environment that sees this project's installed packages (a .pth line),
offline (--no-index, --no-build-isolation), so the project's own environment never gains the plugin.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from playbook.home.starter import write_starter
from tests.conftest import ROOT, run_cli
from tests.fakes.http import WebhookSink

# One worker runs this module, so the environment with the plugin installed is built once.
pytestmark = pytest.mark.xdist_group("plugin-venv")

PLUGIN = ROOT / "examples" / "plugin"
API_KEY = "pgr-key-0f1e2d3c4b5a"


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    # No bytecode: the plugin's source folder stays as it is in the repository.
    full_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200", "NO_COLOR": "1", **env}
    full_env.pop("PLAYBOOK_HOME", None)
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=120)


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The python of a fresh environment where the example plugin is installed (editable), with this project."""
    venv = tmp_path_factory.mktemp("plugin-venv")
    done = run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # addsitedir (not a bare path) so that this project's own .pth files, its editable install among them, apply.
    Path(site, "_project_env.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    done = run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation",
                "--disable-pip-version-check", "-e", str(PLUGIN)])
    assert done.returncode == 0, done.stdout + done.stderr
    yield python


def pager_home(tmp_path: Path, api_base: str) -> Path:
    home = tmp_path / "home"
    write_starter(home)
    with (home / "channels.yaml").open("a", encoding="utf-8") as channels:
        channels.write("  on-call:\n    type: pager\n    api_key: ${PAGER_API_KEY}\n"
                       f"    service: whatsapp-business\n    api_base: {api_base}\n")
    path = home / "playbooks" / "whatsapp-outage.yaml"
    path.write_text(re.sub(r"investigating: \{channels: \[([^\]]*)\]", r"investigating: {channels: [\1, on-call]",
                           path.read_text(encoding="utf-8")), encoding="utf-8")
    return home


def test_the_installed_plugin_adds_a_channel_type_that_publishes(plugin_python: Path, tmp_path: Path,
                                                                 webhook_sink: WebhookSink) -> None:
    home = pager_home(tmp_path, webhook_sink.url(""))
    listing = run([str(plugin_python), "-m", "playbook", "--home", str(home), "channels", "--json"])
    assert listing.returncode == 0, listing.stderr
    channel = {c["name"]: c for c in json.loads(listing.stdout)["channels"]}["on-call"]
    assert (channel["type"], channel["limits"]) == ("pager", "short: pager summary characters ≤ 280")
    assert channel["settings"]["api_key"] == "${PAGER_API_KEY}"
    sent = run([str(plugin_python), "-m", "playbook", "--home", str(home), "trigger", "whatsapp-outage", "--yes",
                "--json"], PAGER_API_KEY=API_KEY)
    assert sent.returncode == 0, sent.stderr
    paged = {d["lang"]: d for d in json.loads(sent.stdout)["deliveries"] if d["channel"] == "on-call"}
    assert {lang: d["status"] for lang, d in paged.items()} == {"fr": "sent", "en": "sent"}
    pages = webhook_sink.requests("v1/pages")
    assert len(pages) == 2
    assert {p.headers["authorization"] for p in pages} == {f"Bearer {API_KEY}"}
    assert sorted(p.json["summary"][:5] for p in pages) == ["Notre", "Our W"]
    assert API_KEY not in sent.stdout + sent.stderr


def test_the_plugins_own_tests_pass_where_it_is_installed(plugin_python: Path) -> None:
    result = run([str(plugin_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN / "tests")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^5 passed", result.stdout, re.MULTILINE), result.stdout


def test_the_plugin_api_names_the_kit_the_built_in_channels_use_and_loads_it_only_when_asked() -> None:
    report = ("import json, sys, playbook\n"
              "loaded = sorted(m for m in sys.modules if m.startswith(('playbook.', 'httpx', 'pydantic', 'jinja2')))\n"
              "print(json.dumps({'loaded': loaded, 'names': {n: getattr(playbook, n).__module__ "
              "for n in playbook.__all__}}))")
    done = run([sys.executable, "-c", report])
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["loaded"] == []
    assert {name: found["names"].get(name) for name in ("HttpPublisher", "failure_from_response",
                                                       "failure_from_exception", "ListedPublisher",
                                                       "ChannelContext", "Link", "DeliveryStatus")} == {
        "HttpPublisher": "playbook.publishers.http", "failure_from_response": "playbook.publishers.http",
        "failure_from_exception": "playbook.publishers.http", "ListedPublisher": "playbook.publishers.listed",
        "ChannelContext": "playbook.publishers.base", "Link": "playbook.publishers.base",
        "DeliveryStatus": "playbook.ledger.statuses"}


def test_where_the_plugin_is_not_installed_its_type_is_unknown(tmp_path: Path) -> None:
    home = pager_home(tmp_path, "http://127.0.0.1:9")
    result = run_cli("trigger", "whatsapp-outage", "--dry-run", home=home)
    assert result.code == 2
    assert "channel 'on-call': unknown type 'pager'" in result.stderr
