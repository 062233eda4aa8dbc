"""The pager channel as users get it: found through the installed entry point, run by the real `playbook`.

A fake Pager API runs on 127.0.0.1 (a real HTTP server on a free port); nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from playbook_pager import PagerPublisher

API_KEY = "pgr-key-6a5b4c3d2e1f"


@dataclass
class FakePager:
    """The two endpoints of the Pager API; pages are kept by dedup_key, as the real one would."""

    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    # When set, the first POST of each page is answered 503 (busy), as a loaded API would.
    busy_once: bool = False
    refused_once: set[str] = field(default_factory=set)


def _handler(fake: FakePager) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def _answer(self) -> None:
            fake.requests.append((self.command, self.path))
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.headers.get("authorization") != f"Bearer {API_KEY}":
                return self._reply(401, {"error": "unauthorized"})
            if self.command == "POST" and self.path == "/v1/pages":
                page = json.loads(body)
                if fake.busy_once and page["dedup_key"] not in fake.refused_once:
                    fake.refused_once.add(page["dedup_key"])
                    return self._reply(503, {"error": "busy"})
                stored = fake.pages.setdefault(page["dedup_key"], {"id": f"PG{len(fake.pages) + 1}", **page})
                return self._reply(201, {"id": stored["id"], "url": f"https://pager.example/pages/{stored['id']}"})
            if self.command == "GET" and self.path == "/v1/services/whatsapp-business":
                return self._reply(200, {"name": "whatsapp-business"})
            return self._reply(404, {"error": "not found"})

        def _reply(self, status: int, data: dict[str, Any]) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@pytest.fixture
def pager() -> Iterator[FakePager]:
    fake = FakePager()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def playbook(*args: str, key: str = API_KEY) -> subprocess.CompletedProcess[str]:
    """The real `playbook` command of this environment, as a user runs it."""
    env = {**os.environ, "PAGER_API_KEY": key, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "playbook", *args], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.fixture
def home(tmp_path: Path, pager: FakePager) -> Path:
    """A starter home whose first phase also pages the on-call team through the fake Pager API."""
    home = tmp_path / "home"
    assert playbook("init", str(home)).returncode == 0
    with (home / "channels.yaml").open("a", encoding="utf-8") as channels:
        channels.write("  on-call:\n    type: pager\n    api_key: ${PAGER_API_KEY}\n"
                       f"    service: whatsapp-business\n    api_base: {pager.url}\n")
    path = home / "playbooks" / "whatsapp-outage.yaml"
    text = re.sub(r"investigating: \{channels: \[([^\]]*)\]", r"investigating: {channels: [\1, on-call]",
                  path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return home


def test_the_pager_type_comes_from_the_installed_entry_point() -> None:
    (found,) = [ep for ep in entry_points(group="playbook.publishers") if ep.name == "pager"]
    assert found.value == "playbook_pager:PagerPublisher"
    assert found.load() is PagerPublisher


def test_a_trigger_pages_the_service_once_per_language(home: Path, pager: FakePager) -> None:
    result = playbook("--home", str(home), "trigger", "whatsapp-outage", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    paged = {d["lang"]: d for d in json.loads(result.stdout)["deliveries"] if d["channel"] == "on-call"}
    assert {lang: d["status"] for lang, d in paged.items()} == {"fr": "sent", "en": "sent"}
    assert len(pager.pages) == 2
    summaries = sorted(page["summary"] for page in pager.pages.values())
    assert summaries[0].startswith("Notre WhatsApp") and summaries[1].startswith("Our WhatsApp")
    assert {page["urgency"] for page in pager.pages.values()} == {"high"}


def test_check_finds_the_service_and_pages_no_one(home: Path, pager: FakePager) -> None:
    result = playbook("--home", str(home), "channels", "--check", "--json")
    channel = {c["name"]: c for c in json.loads(result.stdout)["channels"]}["on-call"]
    assert channel["type"] == "pager"
    assert channel["check"] == {"ok": True, "detail": "service 'whatsapp-business' found; nothing was paged"}
    assert channel["limits"] == "short: pager summary characters ≤ 280"
    assert pager.pages == {}


def test_a_refused_key_fails_at_once_naming_the_setting(home: Path, pager: FakePager) -> None:
    result = playbook("--home", str(home), "trigger", "whatsapp-outage", "--yes", "--json", key="pgr-revoked")
    assert result.returncode == 1
    paged = [d for d in json.loads(result.stdout)["deliveries"] if d["channel"] == "on-call"]
    assert [(d["status"], d["attempts"]) for d in paged] == [("failed", 1), ("failed", 1)]
    assert paged[0]["error"] == ("refused (HTTP 401): set 'api_key' of channel 'on-call' to a key with the right to "
                                 'page: {"error": "unauthorized"}')
    assert "pgr-revoked" not in result.stdout + result.stderr


def test_a_busy_api_is_asked_again_and_each_page_opens_once(home: Path, pager: FakePager) -> None:
    pager.busy_once = True
    result = playbook("--home", str(home), "trigger", "whatsapp-outage", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    paged = [d for d in json.loads(result.stdout)["deliveries"] if d["channel"] == "on-call"]
    assert [(d["status"], d["attempts"]) for d in paged] == [("sent", 2), ("sent", 2)]
    assert len(pager.pages) == 2
    assert pager.requests.count(("POST", "/v1/pages")) == 4
