"""Every secret of a home, through every command, then looked for everywhere the tool writes.

test_secrets.py proves it for a webhook's signing secret and URL token; this sweep adds the SMTP password
and the four X credentials, providers that echo secrets back in their errors, `channels --check`,
`validate`, `rehearse --junit --report`, an unexpected exception under --debug, the log file, the status
page and every other file the tool leaves in the home.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbook.channels.webhook import WebhookPublisher
from playbook.output import results
from tests.conftest import Result, run_cli, run_main, write
from tests.fakes.http import Reply, WebhookSink
from tests.fakes.smtp import USERNAME, SmtpServer
from tests.fakes.x_api import Answer, Credentials, FakeXApi
from tests.test_secrets import ledger_text

PLAYBOOK = "whatsapp-outage"
X = Credentials(consumer_key="ck-SWEEP-4Fq8Lm2Zx7", consumer_secret="cs-SWEEP-9Rt3Yu6Io1Pa5Sd8",
                access_token="at-SWEEP-1860-Gh2Jk5Lz8", access_token_secret="ats-SWEEP-Qw7Er0Ty3Ui6")
SIGNING = "whsec-SWEEP-3c8e1f0a9b"
TOKEN = "tok-SWEEP-77d2e4a6"
PASSWORD = "smtp-SWEEP-5b9c2d7e"
SECRETS = (SIGNING, TOKEN, PASSWORD, *X.values())
ENV = {"WEBHOOK_SECRET": SIGNING, "HOOK_TOKEN": TOKEN, "SMTP_PASSWORD": PASSWORD, "X_CONSUMER_KEY": X.consumer_key,
       "X_CONSUMER_SECRET": X.consumer_secret, "X_ACCESS_TOKEN": X.access_token,
       "X_ACCESS_TOKEN_SECRET": X.access_token_secret}
ECHOED = f"no route for {TOKEN}, key {SIGNING}, password {PASSWORD}, app {X.consumer_secret}"


@pytest.fixture
def servers() -> Iterator[tuple[WebhookSink, SmtpServer, FakeXApi]]:
    with WebhookSink() as sink, SmtpServer(login=(USERNAME, PASSWORD)) as smtp, FakeXApi(X) as x_api:
        yield sink, smtp, x_api


def configure(home: Path, sink: WebhookSink, smtp: SmtpServer, x_api: FakeXApi) -> None:
    """Every secret-bearing setting there is, read from the home's .env; receivers that echo them back."""
    channels = {
        "x": {"type": "x", "consumer_key": "${X_CONSUMER_KEY}", "consumer_secret": "${X_CONSUMER_SECRET}",
              "access_token": "${X_ACCESS_TOKEN}", "access_token_secret": "${X_ACCESS_TOKEN_SECRET}",
              "api_base": x_api.url},
        "hook": {"type": "webhook", "url": sink.url("hook/${HOOK_TOKEN}"), "secret": "${WEBHOOK_SECRET}"},
        "echo": {"type": "webhook", "url": sink.url("echo/${HOOK_TOKEN}"), "secret": "${WEBHOOK_SECRET}",
                 "retry_for": "1s"},
        "customers": {"type": "email", "host": smtp.host, "port": smtp.port, "security": "none",
                      "username": USERNAME, "password": "${SMTP_PASSWORD}", "from": "Support <support@example.com>",
                      "recipients": "contacts/customers.csv", "retry_for": "1s"},
        "status": {"type": "status-page", "output_dir": "public", "url": "https://status.example.com/"},
        "website": {"type": "file", "path": "outbox/website.jsonl"},
    }
    write(home / "channels.yaml", yaml.safe_dump({"channels": channels}, sort_keys=False))
    path = home / "playbooks" / f"{PLAYBOOK}.yaml"
    playbook = yaml.safe_load(path.read_text(encoding="utf-8"))
    playbook["phases"] = {phase: {"channels": list(channels)} for phase in playbook["phases"]}
    playbook["reminders"] = {"channels": ["hook"]}  # the team's reminders through a secret-bearing channel too
    write(path, yaml.safe_dump(playbook, allow_unicode=True, sort_keys=False))
    write(home / ".env", "".join(f"{name}={value}\n" for name, value in ENV.items()))
    write(home / "contacts" / "customers.csv", "email,language,name\nana@example.com,fr,Ana\nbob@example.com,en,Bob\n")
    # Providers that quote what they were sent in their refusals.
    sink.script(f"echo/{TOKEN}", *[Reply(400, body={"error": ECHOED, "url": sink.url(f"echo/{TOKEN}")})] * 30)
    smtp.refuse("bob@example.com", 550, f"5.7.1 relay denied for {USERNAME}:{PASSWORD}")
    x_api.script("/2/tweets", Answer(403, {"title": "Forbidden", "status": 403,
                                          "detail": f"token {X.access_token} secret {X.access_token_secret}"}))


@pytest.fixture
def log_handlers() -> Iterator[None]:
    """In-process runs attach the home's log file to the `playbook` logger: detach it afterwards."""
    logger = logging.getLogger("playbook")
    before = list(logger.handlers)
    yield
    for handler in logger.handlers[len(before):]:
        handler.close()
        logger.removeHandler(handler)


def written_files(home: Path) -> list[Path]:
    """Every file in the home the tool may have written: all of them but the .env that holds the secrets."""
    return sorted(p for p in home.rglob("*") if p.is_file() and p.name != ".env")


@pytest.mark.timeout(240)
def test_no_configured_secret_appears_in_any_output_or_any_file_the_tool_writes(
        home: Path, servers: tuple[WebhookSink, SmtpServer, FakeXApi], monkeypatch: pytest.MonkeyPatch,
        log_handlers: None) -> None:
    sink, smtp, x_api = servers
    configure(home, sink, smtp, x_api)
    outputs: list[Result] = []

    def run(*args: str, code: int | None = None) -> Result:
        result = run_cli(*args, home=home)
        outputs.append(result)
        assert "Traceback" not in result.stderr or "--debug" in args, result.output
        if code is not None:
            assert result.code == code, (args, result.output)
        return result

    run("validate", code=0)
    run("channels", code=0)
    run("channels", "--json", code=0)
    run("channels", "--check", code=0)
    run("channels", "--check", "--json", code=0)
    run("trigger", PLAYBOOK, "--yes", code=1)
    incident = run("status", "--json").stdout.split('"id": "')[1].split('"')[0]
    run("trigger", PLAYBOOK, "--new", "--json", code=1)
    run("status", code=0)
    run("status", incident, code=0)
    run("status", "--json", code=0)
    run("timeline", incident, code=0)
    run("timeline", incident, "--format", "json", code=0)
    run("--debug", "update", incident, "--phase", "nope", code=2)
    run("--debug", "resume", incident, code=1)
    reports = home / "reports"
    run("rehearse", "--junit", str(reports / "rehearsal.xml"), "--report", str(reports / "rehearsal.md"))

    # The echoes did arrive, and the deliveries that could go out did.
    posts = [r for r in sink.requests() if r.method == "POST"]
    assert posts and all(r.signed_with(SIGNING) for r in posts)
    assert len([r for r in posts if r.path == f"/hook/{TOKEN}"]) >= 2 and any(r.path == f"/echo/{TOKEN}" for r in posts)
    assert smtp.refused and smtp.to("ana@example.com") and x_api.tweets
    assert any("***" in r.stdout for r in outputs), "no echoed secret was masked: the sweep proved nothing"
    assert any("Traceback" in r.stderr for r in outputs)

    # A bug (a publisher raising with its tokened URL), and an unexpected exception while showing the result.
    async def buggy(self: WebhookPublisher, delivery: Any) -> Any:
        raise RuntimeError(f"bug while posting to {self.config.url} signed with {self.config.secret.get_secret_value()}"
                           if self.config.secret else "bug")

    monkeypatch.setattr(WebhookPublisher, "publish", buggy)
    monkeypatch.setenv("COLUMNS", "200")
    bug = run_main("--home", str(home), "trigger", PLAYBOOK, "--new", "--yes")
    outputs.append(bug)
    assert bug.code == 1, bug.output
    assert "RuntimeError: bug while posting to http://127.0.0.1:" in bug.stdout

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"cannot show the result of {sink.url('hook/' + TOKEN)} ({PASSWORD})")

    monkeypatch.setattr(results, "outcomes", crash)
    crashed = run_main("--home", str(home), "--debug", "trigger", PLAYBOOK, "--new", "--yes")
    outputs.append(crashed)
    assert crashed.code == 70
    assert "Traceback (most recent call last)" in crashed.stderr and "RuntimeError: cannot show the result" in \
        crashed.stderr

    for result in outputs:
        for secret in SECRETS:
            assert secret not in result.stdout and secret not in result.stderr, (secret, result)
    files = written_files(home)
    for name in ("state.db", "playbook.log", "rehearsal.xml", "rehearsal.md", "index.html", "website.jsonl"):
        assert any(p.name == name for p in files), name
    assert "bug while posting to" in (home / ".playbook" / "playbook.log").read_text(encoding="utf-8")
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        for secret in SECRETS:
            assert secret not in text, (secret, path)
    for text in ledger_text(home / ".playbook"):
        for secret in SECRETS:
            assert secret not in text
