"""Headless Chromium for the tests: load a page served on 127.0.0.1, get its DOM after scripts ran, or a screenshot.

Also a static file server (what any web server or bucket would do with the status folder).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
SETUP_HINT = "run the project's set-up (apt-get update && apt-get install -y chromium)"


def chromium() -> str:
    """The Chromium binary; a test that needs it fails (never skips) when it is missing."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"headless Chromium is not installed: {SETUP_HINT}", pytrace=False)


def _run(*args: str, timeout: float = 25) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}", *args,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def dump_dom(url: str, *, budget_ms: int = 3000) -> str:
    """The page's DOM as serialized HTML once its scripts ran (and fetched) for `budget_ms` of virtual time."""
    done = _run(f"--virtual-time-budget={budget_ms}", "--dump-dom", url)
    if done.returncode != 0 or "<html" not in done.stdout:
        raise AssertionError(f"chromium could not load {url} (exit {done.returncode}): {done.stderr[-800:]}")
    return done.stdout


def screenshot(url: str, target: Path, *, width: int = 1200, height: int = 1600) -> Path:
    """A PNG of the page as a desktop browser shows it."""
    done = _run(f"--screenshot={target}", f"--window-size={width},{height}", url)
    if done.returncode != 0 or not target.is_file():
        raise AssertionError(f"chromium took no screenshot of {url} (exit {done.returncode}): {done.stderr[-800:]}")
    return target


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
