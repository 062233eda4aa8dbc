"""Secrets from ${ENV} never show: not on the terminal, in --json, in errors, tracebacks, nor in the ledger."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import Result, run_cli
from tests.fakes.http import Reply, WebhookSink, use_webhooks

PLAYBOOK = "whatsapp-outage"
SIGNING_SECRET = "sk-live-SIGNING-7d1e0c4b"
URL_TOKEN = "tok-URL-93ab57f2e1"
SECRETS = (SIGNING_SECRET, URL_TOKEN)


def ledger_text(folder: Path) -> list[str]:
    """Every text value of every table of the ledger, and the raw bytes of its files."""
    found: list[str] = []
    db = sqlite3.connect(folder / "state.db")
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
        for row in db.execute(f"SELECT * FROM {table}"):
            found.extend(value for value in row if isinstance(value, str))
    db.close()
    found.extend(path.read_bytes().decode("utf-8", "replace") for path in sorted(folder.iterdir()))
    return found


def test_no_secret_appears_in_any_output_or_in_the_ledger(home: Path, webhook_sink: WebhookSink) -> None:
    env = {"WEBHOOK_SECRET": SIGNING_SECRET, "HOOK_TOKEN": URL_TOKEN}
    secret_url = webhook_sink.url("hook/${HOOK_TOKEN}")
    real_url = webhook_sink.url(f"hook/{URL_TOKEN}")
    use_webhooks(home, webhook_sink, ["tokened", "ops"], secret=None, settings={"tokened": {"url": secret_url}})
    # Receivers that echo what they were sent: the URL with its token, and even the signing secret.
    webhook_sink.script(f"hook/{URL_TOKEN}", *[Reply(body={"id": f"{URL_TOKEN}-1", "url": f"{real_url}/1"})] * 4)
    webhook_sink.script("ops", *[Reply(400, body={"error": f"no route {real_url} for key {SIGNING_SECRET}"})] * 4)
    outputs: list[Result] = []

    def run(*args: str) -> Result:
        result = run_cli(*args, home=home, env=env)
        outputs.append(result)
        return result

    run("channels", "--json")
    run("trigger", PLAYBOOK, "--dry-run")
    run("trigger", PLAYBOOK, "--dry-run", "--json")
    first = run("trigger", PLAYBOOK)
    assert first.code == 1, first.output
    second = run("trigger", PLAYBOOK, "--new", "--json")
    assert second.code == 1, second.output
    incident = json.loads(second.stdout)["incident"]
    run("status")
    run("status", "--json")
    run("timeline", incident)
    run("timeline", incident, "--format", "json")
    run("--debug", "update", incident, "--phase", "nope")
    run("--debug", "resume", incident)

    assert len(webhook_sink.requests(f"hook/{URL_TOKEN}")) == 4
    assert all(r.signed_with(SIGNING_SECRET) for r in webhook_sink.requests())
    failed = json.loads(second.stdout)["deliveries"]
    assert any(d["error"] == 'rejected (HTTP 400): {"error": "no route http://127.0.0.1:' f'{webhook_sink.port}'
               '/hook/*** for key ***"}' for d in failed), failed
    assert any(d["url"] == f"http://127.0.0.1:{webhook_sink.port}/hook/***/1" for d in failed), failed
    assert "Traceback" in outputs[-2].stderr
    for result in outputs:
        for secret in SECRETS:
            assert secret not in result.stdout and secret not in result.stderr, (secret, result)
    for text in ledger_text(home / ".playbook"):
        for secret in SECRETS:
            assert secret not in text
