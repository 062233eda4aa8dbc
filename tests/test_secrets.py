"""Secrets from ${ENV} never show: not on the terminal, in --json, in errors, tracebacks, nor in the ledger."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbook import secrets
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


# -- the forms a provider echoes a secret in, and truncation ---------------------------------------------

# A signing secret with the characters that percent-encoding, form encoding and JSON each write differently.
ODD_SECRET = 'sk-live/"Q+9 z~7'
FORMS = {
    "as-is": ODD_SECRET,
    "percent-encoded": quote(ODD_SECRET, safe=""),
    "percent-encoded-lower-case": "sk-live%2f%22Q%2b9%20z~7",
    "form-encoded": quote_plus(ODD_SECRET),
    "url-path": quote(ODD_SECRET),
    "json-escaped": json.dumps(ODD_SECRET)[1:-1],
    "json-escaped-slashes": json.dumps(ODD_SECRET)[1:-1].replace("/", "\\/"),
    "basic-auth": base64.b64encode(f"bot:{ODD_SECRET}".encode()).decode(),
    "basic-auth-url-safe": base64.urlsafe_b64encode(f"a-longer-user-name:{ODD_SECRET}".encode()).decode(),
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_a_secret_is_masked_in_every_form_a_provider_echoes(form: str) -> None:
    secrets.register(ODD_SECRET)
    assert secrets.redact(f"denied for {form}, try again") == "denied for ***, try again"


def test_ordinary_text_and_base64_of_other_things_are_left_alone() -> None:
    secrets.register(ODD_SECRET)
    text = f"Basic {base64.b64encode(b'bot:another-password').decode()} for customer1234@example.com"
    assert secrets.redact(text) == text


@pytest.mark.parametrize("at", range(185, 201))
def test_a_secret_across_the_cut_is_masked_before_the_excerpt_is_cut(at: int) -> None:
    secrets.register(ODD_SECRET)
    said = secrets.excerpt("x" * at + ODD_SECRET + " and more")
    assert said == ("x" * at + "*** and more")[:200]
    assert "sk-" not in said


def test_provider_errors_never_show_a_part_or_an_encoding_of_a_secret(home: Path, webhook_sink: WebhookSink) -> None:
    use_webhooks(home, webhook_sink, ["edge", "encoded"], secret=None, languages=["en"])
    # The secret straddles the 200th character of the answer, where the error is cut.
    webhook_sink.script("edge", Reply(400, body="x" * 190 + ODD_SECRET + " was refused"))
    webhook_sink.script("encoded", Reply(400, body={
        "error": f"bad key {FORMS['form-encoded']} ({FORMS['percent-encoded']})",
        "echo": ODD_SECRET, "authorization": f"Basic {FORMS['basic-auth']}"}))
    result = run_cli("trigger", PLAYBOOK, "--yes", "--json", home=home, env={"WEBHOOK_SECRET": ODD_SECRET})

    assert result.code == 1, result.output
    errors = {d["channel"]: d["error"] for d in json.loads(result.stdout)["deliveries"]}
    assert errors["edge"] == "rejected (HTTP 400): " + ("x" * 190 + "*** was refused")[:200]
    assert errors["encoded"] == ('rejected (HTTP 400): {"error": "bad key *** (***)", "echo": "***", '
                                 '"authorization": "Basic ***"}')
    shown = result.stdout + result.stderr + "".join(ledger_text(home / ".playbook"))
    for form in (*FORMS.values(), ODD_SECRET[:6], FORMS["percent-encoded"][:10]):
        assert form not in shown, form


def test_validate_warns_when_the_env_file_is_readable_by_others(home: Path) -> None:
    dotenv = home / ".env"
    dotenv.write_text("WEBHOOK_SECRET=whsec-x\n", encoding="utf-8")
    dotenv.chmod(0o644)
    warning = (f"warning: .env can be read by other users (mode 0644) and holds the channels' secrets: chmod 600 "
               f"{dotenv}")
    exposed = run_cli("validate", home=home)
    assert exposed.code == 0, exposed.output
    assert warning in exposed.stdout.splitlines(), exposed.stdout

    dotenv.chmod(0o600)
    private = run_cli("validate", home=home)
    assert private.code == 0, private.output
    assert ".env" not in private.stdout


ENCODINGS = {
    "as-is": lambda s: s,
    "percent": lambda s: quote(s, safe=""),
    "form": quote_plus,
    "json": lambda s: json.dumps(s)[1:-1],
    "basic-auth": lambda s: base64.b64encode(f"user:{s}".encode()).decode(),
}
# "*" is the mask's own character: a secret made of it could reappear from the mask itself.
SECRET_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="*"), min_size=8,
                      max_size=24)


@settings(max_examples=300, deadline=None)
@given(secret=SECRET_TEXT, before=st.text(max_size=260), after=st.text(max_size=40),
       encoding=st.sampled_from(sorted(ENCODINGS)))
def test_no_echoed_secret_survives_masking_and_cutting(secret: str, before: str, after: str, encoding: str) -> None:
    secrets.forget_all()
    secrets.register(secret)
    echoed = ENCODINGS[encoding](secret)
    masked = secrets.redact(before + echoed + after)
    assert echoed not in masked and secret not in masked
    said = secrets.excerpt(before + echoed + after)
    assert said == " ".join(masked.split())[:secrets.EXCERPT]
