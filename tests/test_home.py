"""Homes: the starter, the example and one the tests never shipped all validate and render in every language."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from playbook.commands.preview import render_preview
from playbook.commands.validate import validate_home
from playbook.errors import HomeError
from playbook.home.locate import Home
from playbook.home.starter import GITIGNORE, starter_dir, write_starter
from playbook.rendering.messages import Composer
from playbook.rendering.variables import resolve
from tests.conftest import EXAMPLE_HOME, copy_example, run_cli, write

X_ENV = {"X_CONSUMER_KEY": "ck-dummy", "X_CONSUMER_SECRET": "cs-dummy", "X_ACCESS_TOKEN": "at-dummy",
         "X_ACCESS_TOKEN_SECRET": "ats-dummy"}


def assert_validates_and_renders_everything(home: Home) -> None:
    """validate finds nothing wrong, and render previews every phase in every language on every channel."""
    report = validate_home(home)
    assert report.ok, [str(p) for p in report.problems]
    for playbook_id in home.playbook_ids():
        playbook = home.load_playbook(playbook_id)
        for phase in playbook.phases:
            for lang in playbook.languages:
                preview = render_preview(home, playbook_id, phase, lang, None, {})
                assert preview.message.block("body"), (phase, lang)
                # A channel restricted to other languages is left out of this language's preview.
                assert preview.channels
                assert {c.channel for c in preview.channels} <= set(playbook.phases[phase].channels)
                for channel in preview.channels:
                    assert all(m.measure.ok for m in channel.measures), (phase, lang, channel.channel)


# -- the starter and the example ---------------------------------------------------------------------------

def test_the_starter_validates_and_renders_every_phase_in_every_language(home: Path) -> None:
    assert_validates_and_renders_everything(Home(home))


def test_the_example_home_validates_and_renders_every_phase_in_every_language(tmp_path: Path) -> None:
    assert_validates_and_renders_everything(Home(copy_example(tmp_path), environ={}))


def test_the_example_home_validates_from_the_cli(tmp_path: Path) -> None:
    result = run_cli("validate", home=copy_example(tmp_path))
    assert result.code == 0, result.output


def test_the_starter_and_the_example_tell_the_same_playbook() -> None:
    """`playbook init` and examples/home must not drift apart: the whatsapp-outage files are identical."""
    starter = starter_dir()
    assert (starter / "whatsapp-outage.yaml").read_text(encoding="utf-8") == (
        EXAMPLE_HOME / "playbooks" / "whatsapp-outage.yaml").read_text(encoding="utf-8")
    ours = {p.name: p.read_text(encoding="utf-8") for p in (starter / "whatsapp-outage").glob("*.j2")}
    theirs = {p.name: p.read_text(encoding="utf-8")
              for p in (EXAMPLE_HOME / "templates" / "whatsapp-outage").glob("*.j2")}
    assert sorted(ours) == sorted(theirs)
    for name, text in ours.items():
        assert text == theirs[name], f"templates/whatsapp-outage/{name} differs between the starter and the example"


# -- playbook init -------------------------------------------------------------------------------------------

def test_init_writes_a_working_home(tmp_path: Path) -> None:
    target = tmp_path / "comms"
    result = run_cli("init", str(target))
    assert result.code == 0, result.output
    assert (target / "playbooks" / "whatsapp-outage.yaml").is_file()
    assert (target / "channels.yaml").is_file()
    assert sorted(p.name for p in (target / "templates" / "whatsapp-outage").iterdir()) == [
        f"{phase}.{lang}.j2" for phase in ("identified", "investigating", "monitoring", "resolved")
        for lang in ("en", "fr")
    ]
    assert (target / ".gitignore").read_text() == GITIGNORE
    assert run_cli("validate", home=target).code == 0


@pytest.mark.parametrize("on_path", [True, False], ids=["playbook-on-path", "playbook-off-path"])
def test_the_next_steps_init_prints_work_as_printed(tmp_path: Path, on_path: bool) -> None:
    import subprocess
    import sys

    installed = Path(sys.executable).parent / "playbook"
    path = os.pathsep.join([str(installed.parent)] * on_path + ["/usr/bin", "/bin"])
    env = {k: v for k, v in os.environ.items() if k not in ("PLAYBOOK_HOME", "PLAYBOOK_STATE")}
    env |= {"PATH": path, "COLUMNS": "60", "NO_COLOR": "1"}
    done = subprocess.run([str(installed), "init", "my comms"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    steps = done.stdout.split("Next:\n", 1)[1].splitlines()
    assert steps[0].startswith("  cd 'my comms' && ")
    assert ("playbook validate" in steps[0]) and (steps[0].endswith(" validate"))
    assert steps[0].split("&& ")[1].startswith("playbook " if on_path else str(installed.resolve()))
    script = "set -e\n" + "\n".join(line.strip() for line in steps)
    ran = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "whatsapp-outage" in ran.stdout


def test_init_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", "mine")
    result = run_cli("init", str(tmp_path))
    assert result.stderr == (f"error: {tmp_path} is not empty: choose a new folder, or pass --force to write "
                             "into it\n")
    assert result.code == 2
    assert not (tmp_path / "playbooks").exists()
    assert run_cli("init", str(tmp_path), "--force").code == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_init_keeps_an_existing_gitignore(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "secrets/\n")
    write_starter(tmp_path, force=True)
    assert (tmp_path / ".gitignore").read_text() == "secrets/\n"


# -- where the home is ---------------------------------------------------------------------------------------

def test_home_is_the_option_then_the_environment_then_the_current_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given, from_env, cwd = tmp_path / "given", tmp_path / "env", tmp_path / "cwd"
    for folder in (given, from_env, cwd):
        folder.mkdir()
    monkeypatch.chdir(cwd)
    assert Home.locate().root == cwd
    monkeypatch.setenv("PLAYBOOK_HOME", str(from_env))
    assert Home.locate().root == from_env
    assert Home.locate(given).root == given


def test_the_home_is_found_from_any_folder_inside_it(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(home / "templates" / "whatsapp-outage")
    assert Home.locate().root == home.resolve()


def test_commands_work_from_the_playbooks_folder_of_a_home(home: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("PLAYBOOK_HOME", "PLAYBOOK_STATE")} | {"COLUMNS": "200"}
    listed = subprocess.run([sys.executable, "-m", "playbook", "list"], capture_output=True, text=True, env=env,
                            cwd=home / "playbooks", timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "whatsapp-outage" in listed.stdout
    validated = subprocess.run([sys.executable, "-m", "playbook", "validate"], capture_output=True, text=True,
                               env=env, cwd=home / "playbooks", timeout=60)
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_an_explicit_home_wins_over_the_folder_it_is_run_from(home: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    (other / "playbooks").mkdir(parents=True)
    monkeypatch.chdir(home / "playbooks")
    assert Home.locate(other).root == other.resolve()
    monkeypatch.setenv("PLAYBOOK_HOME", str(other))
    assert Home.locate().root == other.resolve()


def test_the_cli_finds_the_home_in_playbook_home_and_the_current_folder(home: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PLAYBOOK_HOME"} | {"COLUMNS": "200"}
    by_env = subprocess.run([sys.executable, "-m", "playbook", "list"], capture_output=True, text=True,
                            env=env | {"PLAYBOOK_HOME": str(home)}, cwd=tmp_path, timeout=60)
    assert by_env.returncode == 0, by_env.stderr
    assert "whatsapp-outage" in by_env.stdout
    by_cwd = subprocess.run([sys.executable, "-m", "playbook", "list"], capture_output=True, text=True, env=env,
                            cwd=home, timeout=60)
    assert by_cwd.returncode == 0, by_cwd.stderr
    assert "whatsapp-outage" in by_cwd.stdout


def test_a_folder_without_playbooks_is_not_a_home(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match=r"is not a playbook home \(no playbooks/ folder\)"):
        Home(tmp_path).playbook_ids()


# -- a home the tests never shipped: another outage, in German and English ----------------------------------

EMAIL_OUTAGE = """\
id: email-provider-outage
name: {de: Ausfall des E-Mail-Anbieters, en: Email provider outage}
languages: [de, en]
timezone: Europe/Berlin
window: 45m
update_every: 2h
vars:
  brand: {default: Beispiel GmbH}
  provider: {default: MailCo}
  status_url: {default: https://status.example.de}
  workaround: {description: What customers can do meanwhile, sample: "Rufen Sie uns an: +49 30 1234567"}
  expected_for: {description: "How long the provider expects it to last, e.g. 1h30m"}
phases:
  investigating: {channels: [social, ops, archive]}
  resolved: {channels: [social, archive]}
checklist:
  investigating:
    de: [Anbieter kontaktieren, Kunden informieren]
    en: [Contact the provider, Tell customers]
faq:
  - question: {de: "Sind meine E-Mails verloren?", en: "Are my emails lost?"}
    answer: {de: Nein. Sie werden zugestellt., en: No. They will be delivered.}
"""

CHANNELS = """\
channels:
  social:
    type: x
    consumer_key: ${X_CONSUMER_KEY}
    consumer_secret: ${X_CONSUMER_SECRET}
    access_token: ${X_ACCESS_TOKEN}
    access_token_secret: ${X_ACCESS_TOKEN_SECRET}
    languages: [en]
  ops:
    type: webhook
    url: http://127.0.0.1:9/hooks/ops
    languages: [de]
  archive:
    type: file
    path: outbox/archive.jsonl
"""

TEMPLATES = {
    "investigating.de.j2": """\
{% block title %}{{ provider }} gestört{% endblock %}
{% block short %}E-Mails an {{ brand }} kommen verspätet an. Mehr: {{ status_url }}{% endblock %}
{% block body %}
Seit {{ incident.detected_at | datetime }} ist unser E-Mail-Anbieter {{ provider }} gestört.
{% if expected_for %}
Voraussichtliche Dauer: {{ expected_for | duration }}.
{% endif %}
{% if workaround %}
{{ workaround }}
{% endif %}
Nächstes Update: {{ incident.next_update_at | time }} · {{ playbook.name }}
{% endblock %}
""",
    "investigating.en.j2": """\
{% block title %}{{ provider }} disrupted{% endblock %}
{% block short %}Emails to {{ brand }} are delayed. More: {{ status_url }}{% endblock %}
{% block body %}
Since {{ incident.detected_at | datetime }}, our email provider {{ provider }} has been disrupted.
{% if expected_for %}
Expected to last: {{ expected_for | duration }}.
{% endif %}
Next update: {{ incident.next_update_at | time }} · {{ playbook.name }}
{% endblock %}
""",
    "resolved.de.j2": """\
{% block title %}{{ provider }} läuft wieder{% endblock %}
{% block short %}E-Mails an {{ brand }} funktionieren wieder.{% endblock %}
{% block body %}Seit {{ incident.detected_at | date }} gestört, jetzt behoben.{% endblock %}
""",
    "resolved.en.j2": """\
{% block title %}{{ provider }} is back{% endblock %}
{% block short %}Emails to {{ brand }} work again. Thank you for your patience.{% endblock %}
{% block body %}Disrupted since {{ incident.detected_at | date }}, now fixed.{% endblock %}
""",
}


@pytest.fixture
def email_home(tmp_path: Path) -> Path:
    root = tmp_path / "email-home"
    write(root / "playbooks" / "email-provider-outage.yaml", EMAIL_OUTAGE)
    write(root / "channels.yaml", CHANNELS)
    for name, text in TEMPLATES.items():
        write(root / "templates" / "email-provider-outage" / name, text)
    return root


def test_another_playbook_validates_and_renders_everything(email_home: Path) -> None:
    assert_validates_and_renders_everything(Home(email_home, environ=X_ENV))


def test_another_playbook_speaks_german_with_its_own_time_zone(email_home: Path) -> None:
    home = Home(email_home, environ=X_ENV)
    playbook = home.load_playbook("email-provider-outage")
    composer = Composer(home, playbook)
    detected = datetime(2026, 3, 2, 8, 40, tzinfo=UTC)  # 09:40 in Berlin (UTC+1 in March, before DST)
    context = composer.context("email-provider-outage-20260302-0940", detected, "investigating",
                               datetime(2026, 3, 2, 10, 40, tzinfo=UTC))
    variables = resolve(playbook, {"expected_for": "1h30m"}, samples=True)
    german = composer.message("investigating", "de", variables, context)
    assert german.block("body") == (
        "Seit 2. März 2026 um 09:40 ist unser E-Mail-Anbieter MailCo gestört.\n"
        "Voraussichtliche Dauer: 1 Stunde und 30 Minuten.\n"
        "Rufen Sie uns an: +49 30 1234567\n"
        "Nächstes Update: 11:40 · Ausfall des E-Mail-Anbieters"
    )
    english = composer.message("investigating", "en", variables, context)
    assert english.block("body") == (
        "Since March 2, 2026 at 9:40\u202fAM, our email provider MailCo has been disrupted.\n"
        "Expected to last: 1 hour and 30 minutes.\n"
        "Next update: 11:40\u202fAM · Email provider outage"
    )


def test_another_playbook_from_the_cli(email_home: Path) -> None:
    validated = run_cli("validate", home=email_home, env=X_ENV)
    assert validated.code == 0, validated.output
    # Each channel is measured only in the languages it publishes.
    assert "email-provider-outage · investigating\n" in validated.stdout
    rows = [line.split()[:3] for line in validated.stdout.splitlines()]
    assert ["en", "social", "short"] in rows
    assert ["de", "social", "short"] not in rows
    rendered = run_cli("render", "email-provider-outage", "--phase", "investigating", "--lang", "de", home=email_home,
                       env=X_ENV)
    assert rendered.code == 0, rendered.output
    receivers = re.findall(r"^\w+ → (.+)$", rendered.stdout, re.MULTILINE)
    assert receivers and all(r.startswith("ops") for r in receivers)  # social speaks English only
    assert "Rufen Sie uns an: +49 30 1234567" in rendered.stdout
    listed = run_cli("checklist", "email-provider-outage", "--phase", "investigating", "--lang", "de", home=email_home)
    assert "- [ ] Anbieter kontaktieren\n" in listed.stdout
    asked = run_cli("faq", "email-provider-outage", "--lang", "en", home=email_home)
    assert "## 1. Are my emails lost?\n\nNo. They will be delivered.\n" in asked.stdout
