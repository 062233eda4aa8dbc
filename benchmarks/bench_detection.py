"""Detection to first notice: a provider's Statuspage goes down, `playbook watch` sees it (`every: 1s`,
`fails: 2`, `on_detect: trigger`) and publishes the first notice to two webhooks; timed from the switch to the
last webhook receiving it, against the floor of `every` x `fails` that no watcher can beat.

What is above the floor is the watcher's own work: a probe's round trip, recording the change, planning and
publishing the first phase (in a thread of the watcher, no new process).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from bench_cli import BIN, ENV, PLAYBOOK, new_home, row

from tests.fakes.http import WebhookSink, use_webhooks
from tests.fakes.monitors import FakeStatusPage

RUNS = 3
EVERY, FAILS = 1.0, 2
COMPONENT = "WhatsApp Business API"


def _watched(home: Path, page: FakeStatusPage, sink: WebhookSink) -> None:
    use_webhooks(home, sink, ["social", "site"], languages=["en"])
    path = home / "playbooks" / f"{PLAYBOOK}.yaml"
    playbook = yaml.safe_load(path.read_text(encoding="utf-8"))
    playbook.update(reminders=None, holding=None, monitors=[{
        "name": "provider-status", "type": "statuspage", "url": page.summary_url, "component": COMPONENT}],
        watch={"every": f"{EVERY:g}s", "fails": FAILS, "recovers": FAILS, "on_detect": "trigger"})
    path.write_text(yaml.safe_dump(playbook, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _wait(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.01)


def _one(root: Path, run: int) -> float:
    with FakeStatusPage(COMPONENT) as page, WebhookSink() as sink:
        home = new_home(root, f"watch-{run}")
        _watched(home, page, sink)
        watcher = subprocess.Popen([str(BIN / "playbook"), "--home", str(home), "watch"], env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: len(page.requests()) >= 2)
            switched = time.monotonic()
            page.down()
            _wait(lambda: len(sink.requests()) >= 2)
            return max(r.at for r in sink.requests()) - switched
        finally:
            watcher.terminate()
            watcher.wait(timeout=60)


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        took = statistics.median(_one(Path(tmp), run) for run in range(RUNS))
    floor = EVERY * FAILS
    # Within one more probe period and a second of work above the floor.
    return [row(f"provider down to first notice confirmed (watch every {EVERY:g}s x {FAILS} fails)", took, floor,
                (floor + EVERY + 1) / floor)]

