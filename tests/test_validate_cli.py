"""The CLI on a user's mistakes: one exact line on stderr with file:line:column, exit 2, never a traceback."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from playbook.home.starter import starter_dir, write_starter
from tests.conftest import copy_example, run_cli, write

PLAYBOOK = "playbooks/whatsapp-outage.yaml"
TEMPLATES = "templates/whatsapp-outage"
KNOWN_KEYS = ("checklist, description, faq, holding, id, languages, monitors, name, phases, rehearse_every, "
              "reminders, timezone, update_every, vars, watch, window")
KNOWN_VARS = "brand, cause, chat_url, eta, provider, status_url, support_email, support_phone, telegram_url"
# Dummy credentials: validate and render build the X channel offline, never calling X.
X_ENV = {"X_CONSUMER_KEY": "ck-dummy", "X_CONSUMER_SECRET": "cs-dummy", "X_ACCESS_TOKEN": "at-dummy",
         "X_ACCESS_TOKEN_SECRET": "ats-dummy"}
X_CHANNEL = """\
  x:
    type: x
    consumer_key: ${X_CONSUMER_KEY}
    consumer_secret: ${X_CONSUMER_SECRET}
    access_token: ${X_ACCESS_TOKEN}
    access_token_secret: ${X_ACCESS_TOKEN_SECRET}
"""
SUMMARY = "✗ 1 problem(s)\n"
NO_SAMPLE = ", or add `sample:` to vars.ticket so that validate, render and rehearse can show it"

Setup = Callable[[Path], None]


def edit(relative: str, old: str, new: str) -> Setup:
    """A setup that replaces `old` (which must be there) by `new` in one file of the home."""
    def apply(home: Path) -> None:
        path = home / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} is not in {relative}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return apply


def remove(relative: str) -> Setup:
    def apply(home: Path) -> None:
        (home / relative).unlink()
    return apply


def with_x(*more: Setup) -> Setup:
    """The starter's `x` channel made a real X channel, which needs the `short` block and counts like X."""
    def apply(home: Path) -> None:
        channels = home / "channels.yaml"
        text = channels.read_text(encoding="utf-8")
        old = "  x:\n    type: file\n    path: outbox/x.jsonl\n"
        assert old in text
        channels.write_text(text.replace(old, X_CHANNEL), encoding="utf-8")
        for setup in more:
            setup(home)
    return apply


def bomb(home: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    write(home / "playbooks" / "bomb.yaml", "\n".join(lines) + "\n")


def replace_short(new_short: str) -> Setup:
    """Replace the short block of investigating.en.j2 by fixed text (the real one shows the current time)."""
    def apply(home: Path) -> None:
        path = home / TEMPLATES / "investigating.en.j2"
        text = path.read_text(encoding="utf-8")
        text, count = re.subn(r"\{% block short %\}.*?\{% endblock %\}", lambda _: new_short, text, flags=re.S)
        assert count == 1
        path.write_text(text, encoding="utf-8")
    return apply


def line(relative: str, needle: str) -> int:
    """The line of the starter's file where `needle` first appears: the edits below keep lines in place."""
    source = starter_dir() / relative.removeprefix("playbooks/").removeprefix("templates/")
    for number, text in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in text and (not needle.endswith(":") or text.startswith(needle)):
            return number
    raise AssertionError(f"{needle!r} is not in the starter's {relative}")


IDENTIFIED_EN = f"{TEMPLATES}/identified.en.j2"
ID_AT, NAME_AT, LANGUAGES_AT = line(PLAYBOOK, "id:"), line(PLAYBOOK, "name:"), line(PLAYBOOK, "languages:")
TIMEZONE_AT, WINDOW_AT = line(PLAYBOOK, "timezone:"), line(PLAYBOOK, "window:")
BRAND_AT, IDENTIFIED_AT = line(PLAYBOOK, "  brand:"), line(PLAYBOOK, "  identified:")
TITLE_AT = line(IDENTIFIED_EN, "{{ provider }} disruption")
CONTACT_AT = line(IDENTIFIED_EN, "Contact: {{ support_email }}")
ELSE_AT = line(f"{TEMPLATES}/identified.fr.j2", "{% else %}")
REMINDERS_AT = line(PLAYBOOK, "reminders:")
HOLDING_SAID_AT = line(IDENTIFIED_EN, "An update: we’re still working on getting things back")
DEFINED = "defined: customers, oncall, website, x"
REQUIRED_TICKET = edit(PLAYBOOK, "\nvars:\n", "\nvars:\n  ticket: {required: true, description: The ticket number}\n")

CASES: list[tuple[str, Setup | None, tuple[str, ...], str]] = [
    # -- broken YAML ------------------------------------------------------------------------------------------
    ("bad-indentation", edit(PLAYBOOK, "\ntimezone: Europe/Paris", "\n  timezone: Europe/Paris"),
     ("show", "whatsapp-outage"),
     f"error: {PLAYBOOK}:{TIMEZONE_AT}:3: invalid YAML: this line's indentation does not match the lines above it\n"),
    ("unclosed-bracket", edit(PLAYBOOK, "languages: [fr, en]", "languages: [fr, en"),
     ("show", "whatsapp-outage"),
     f"error: {PLAYBOOK}:{TIMEZONE_AT}:9: invalid YAML: expected ',' or ']', but got ':' (while "
     f"parsing a flow sequence at line {LANGUAGES_AT}, column 12)\n"),
    ("tab-indentation", edit(PLAYBOOK, "\n  brand: {default: Example,", "\n\tbrand: {default: Example,"),
     ("validate",),
     f"error: {PLAYBOOK}:{BRAND_AT}:1: invalid YAML: a tab character: indent with spaces (YAML does not allow tabs)\n"
     + SUMMARY),
    ("yaml-bomb", bomb, ("show", "bomb"),
     "error: playbooks/bomb.yaml: document expands to more than 50,000 values (aliases used as a YAML bomb?)\n"),
    ("yaml-bomb-in-validate", bomb, ("validate",),
     "error: playbooks/bomb.yaml: document expands to more than 50,000 values (aliases used as a YAML bomb?)\n"
     + SUMMARY),
    # -- the format -------------------------------------------------------------------------------------------
    ("unknown-key", edit(PLAYBOOK, "\nwindow: 30m", "\nwindwo: 30m"), ("show", "whatsapp-outage"),
     f"error: {PLAYBOOK}:{WINDOW_AT}:1: unknown key 'windwo' (did you mean 'window'?); known keys: {KNOWN_KEYS}\n"),
    ("unknown-nested-key", edit(PLAYBOOK, "  brand: {default: Example,", "  brand: {defualt: Example,"),
     ("validate",),
     f"error: {PLAYBOOK}:{BRAND_AT}:11: unknown key 'defualt' (did you mean 'default'?); known keys: default, "
     "description, required, sample, type\n" + SUMMARY),
    ("unknown-phase-key", edit(PLAYBOOK, "identified:    {channels:", "identified:    {chanels:"),
     ("show", "whatsapp-outage"),
     f"error: {PLAYBOOK}:{IDENTIFIED_AT}:19: unknown key 'chanels' (did you mean 'channels'?); known keys: channels,"
     " impact\n"),
    ("languages-not-a-list", edit(PLAYBOOK, "languages: [fr, en]", "languages: fr"), ("show", "whatsapp-outage"),
     f"error: {PLAYBOOK}:{LANGUAGES_AT}:1: languages: expected a list, such as [a, b], not 'fr'\n"),
    ("window-soon", edit(PLAYBOOK, "\nwindow: 30m", "\nwindow: soon"), ("show", "whatsapp-outage"),
     f"error: {PLAYBOOK}:{WINDOW_AT}:1: window: 'soon' is not a duration: write it like 45s, 30m, 2h or 1h30m\n"),
    ("window-without-unit", edit(PLAYBOOK, "\nwindow: 30m", "\nwindow: 30"), ("show", "whatsapp-outage"),
     f"error: {PLAYBOOK}:{WINDOW_AT}:1: window: '30' has no unit: write 30m or 30s\n"),
    ("id-not-file-name", edit(PLAYBOOK, "\nid: whatsapp-outage", "\nid: whatsapp-down"), ("show", "whatsapp-outage"),
     f"error: {PLAYBOOK}:{ID_AT}:1: id 'whatsapp-down' must match the file name 'whatsapp-outage'\n"),
    ("unknown-timezone", edit(PLAYBOOK, "timezone: Europe/Paris", "timezone: Europe/Pari"),
     ("show", "whatsapp-outage"),
     f"error: {PLAYBOOK}:{TIMEZONE_AT}:1: timezone: unknown time zone 'Europe/Pari': use an IANA name such as "
     "Europe/Paris\n"),
    ("unknown-language", edit(PLAYBOOK, "languages: [fr, en]", "languages: [fr, en, xx]"),
     ("show", "whatsapp-outage"),
     f"error: {PLAYBOOK}:{LANGUAGES_AT}:1: languages: unknown language code 'xx'\n"),
    ("norwegian-language-key", edit(PLAYBOOK, "languages: [fr, en]", "languages: [fr, en, no]"),
     ("show", "whatsapp-outage"),
     # `no` is read as the language code, not as false: the next problem found is the missing Norwegian name.
     f"error: {PLAYBOOK}:{NAME_AT}:1: name has no text in no\n"),
    # -- templates --------------------------------------------------------------------------------------------
    ("missing-template", remove(f"{TEMPLATES}/identified.en.j2"), ("validate",),
     f"error: {TEMPLATES}/identified.en.j2: missing template for phase 'identified' in 'en'\n" + SUMMARY),
    ("missing-template-at-render", remove(f"{TEMPLATES}/identified.en.j2"),
     ("render", "whatsapp-outage", "--phase", "identified", "--lang", "en"),
     f"error: {TEMPLATES}/identified.en.j2: template not found\n"),
    ("missing-block-a-channel-needs", with_x(replace_short("")), ("validate",),
     f"error: {TEMPLATES}/investigating.en.j2: no block 'short', which channel 'x' (type x) needs; the "
     "template has: body, html, title\n" + SUMMARY),
    ("undefined-variable", edit(f"{TEMPLATES}/identified.en.j2", "Contact: {{ support_email }}",
                                "Contact: {{ suport_email }}"), ("validate",),
     f"error: {TEMPLATES}/identified.en.j2:{CONTACT_AT}: undefined "
     "variable: suport_email\n" + SUMMARY),
    ("undefined-variable-at-render", edit(f"{TEMPLATES}/identified.en.j2", "Contact: {{ support_email }}",
                                          "Contact: {{ suport_email }}"),
     ("render", "whatsapp-outage", "--phase", "identified", "--lang", "en"),
     f"error: {TEMPLATES}/identified.en.j2:{CONTACT_AT}: undefined "
     "variable: suport_email\n"),
    ("template-syntax-error", edit(f"{TEMPLATES}/identified.en.j2", "{{ provider }} disruption", "{{ provider }"),
     ("validate",),
     f"error: {TEMPLATES}/identified.en.j2:{TITLE_AT}: template syntax "
     "error: unexpected '}'\n" + SUMMARY),
    ("template-unknown-tag", edit(f"{TEMPLATES}/identified.fr.j2", "{% else %}", "{% els %}"), ("validate",),
     f"error: {TEMPLATES}/identified.fr.j2:{ELSE_AT}: template syntax error: Encountered unknown tag 'els'. Jinja was "
     "looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed "
     "is 'if'.\n" + SUMMARY),
    ("over-long-x-post", with_x(replace_short("{% block short %}{{ status_url }} " + "é" * 270 + "{% endblock %}")),
     ("validate",),
     # 23 for the URL, 1 for the space, 270 for the accented letters: X weighs é 1.
     f"error: {TEMPLATES}/investigating.en.j2: block 'short' is too long for channel 'x': 294/280 weighted "
     "characters\n" + SUMMARY),
    # -- channels, reminders and holding updates --------------------------------------------------------------
    ("unknown-phase-channel", edit(PLAYBOOK, "identified:    {channels: [x, website]",
                                   "identified:    {channels: [x, websit]"),
     ("validate",),
     f"error: {PLAYBOOK}:{IDENTIFIED_AT}:33: phase 'identified' names channel 'websit', which channels.yaml does not "
     f"define (did you mean 'website'?); {DEFINED}\n" + SUMMARY),
    ("unknown-reminders-channel", edit(PLAYBOOK, "reminders: {channels: [oncall]", "reminders: {channels: [oncal]"),
     ("validate",),
     f"error: {PLAYBOOK}:{REMINDERS_AT}:24: reminders.channels names channel 'oncal', which channels.yaml does not "
     f"define (did you mean 'oncall'?); {DEFINED}\n" + SUMMARY),
    ("holding-only-template-error", edit(IDENTIFIED_EN, "An update: we’re still working",
                                         "An update: {{ progress }} we’re still working"),
     ("validate",),
     f"error: {IDENTIFIED_EN}:{HOLDING_SAID_AT}: undefined variable: progress (in a holding update)\n" + SUMMARY),
    ("holding-after-the-last-phase", None, ("render", "whatsapp-outage", "--phase", "resolved", "--holding"),
     "error: phase 'resolved' is the last: no holding update follows it\n"),
    ("holding-channel-asked", None,
     ("render", "whatsapp-outage", "--phase", "investigating", "--holding", "--channel", "customers"),
     "error: a holding update of phase 'investigating' is not sent to channel 'customers'; its channels: website, x\n"),
    ("holding-not-configured", edit(PLAYBOOK, "holding: {after: 15m, channels: [x, website]}\n", ""),
     ("render", "whatsapp-outage", "--holding"),
     "error: playbook 'whatsapp-outage' sends no holding updates: add `holding: {after: 15m, channels: [...]}` to "
     "it first\n"),
    # -- the sandbox ------------------------------------------------------------------------------------------
    ("sandbox-mro", edit(f"{TEMPLATES}/identified.en.j2", "{{ provider }} disruption: we know",
                         "{{ ''.__class__.__mro__ }} disruption: we know"),
     ("render", "whatsapp-outage", "--phase", "identified", "--lang", "en"),
     f"error: {TEMPLATES}/identified.en.j2:{TITLE_AT}: not allowed in a "
     "template: access to attribute '__class__' of 'str' object is unsafe.\n"),
    ("sandbox-incident-internals", edit(f"{TEMPLATES}/identified.en.j2", "{{ provider }} disruption: we know",
                                        "{{ incident.__class__.__base__ }} disruption: we know"),
     ("validate",),
     f"error: {TEMPLATES}/identified.en.j2:{TITLE_AT}: not allowed in a "
     "template: access to attribute '__class__' of 'mappingproxy' object is unsafe.\n" + SUMMARY),
    # -- variables --------------------------------------------------------------------------------------------
    ("required-variable-at-render", REQUIRED_TICKET, ("render", "whatsapp-outage"),
     "error: playbook 'whatsapp-outage' needs variable 'ticket' (The ticket number): give it with "
     f"--var ticket=...{NO_SAMPLE}\n"),
    ("required-variable-at-dry-run", REQUIRED_TICKET, ("trigger", "whatsapp-outage", "--dry-run"),
     "error: playbook 'whatsapp-outage' needs variable 'ticket' (The ticket number): give it with "
     f"--var ticket=...{NO_SAMPLE}\n"),
    ("unknown-var", None, ("render", "whatsapp-outage", "--var", "brnad=Acme"),
     f"error: playbook 'whatsapp-outage' has no variable 'brnad' (did you mean 'brand'?); known: {KNOWN_VARS}\n"),
    ("var-without-value", None, ("render", "whatsapp-outage", "--var", "brand"),
     "error: --var 'brand' must be written name=value\n"),
    # -- what the commands are asked for ---------------------------------------------------------------------
    ("unknown-playbook", None, ("show", "whatsapp-outgae"),
     "error: no playbook 'whatsapp-outgae' (did you mean 'whatsapp-outage'?); known: whatsapp-outage\n"),
    ("unknown-playbook-in-validate", None, ("validate", "whatsapp-outgae"),
     "error: no playbook 'whatsapp-outgae' (did you mean 'whatsapp-outage'?); known: whatsapp-outage\n"
     + SUMMARY),
    ("unknown-phase", None, ("render", "whatsapp-outage", "--phase", "resolvd"),
     "error: playbook 'whatsapp-outage' has no phase 'resolvd' (did you mean 'resolved'?); phases: "
     "investigating, identified, monitoring, resolved\n"),
    ("unknown-language-asked", None, ("faq", "whatsapp-outage", "--lang", "de"),
     "error: playbook 'whatsapp-outage' is not written in 'de'; languages: fr, en\n"),
    ("unknown-channel-asked", None, ("render", "whatsapp-outage", "--phase", "identified", "--channel", "customers"),
     "error: phase 'identified' does not publish to channel 'customers'; its channels: website, x\n"),
]


@pytest.mark.parametrize(("setup", "args", "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_a_mistake_is_one_exact_line_and_exit_2(home: Path, setup: Setup | None, args: tuple[str, ...],
                                                expected: str) -> None:
    if setup is not None:
        setup(home)
    result = run_cli(*args, home=home, env=X_ENV)
    assert result.stderr == expected
    assert result.code == 2
    assert "Traceback" not in result.output


def test_not_a_home_says_how_to_make_one(tmp_path: Path) -> None:
    result = run_cli("list", home=tmp_path)
    assert result.stderr == (f"error: {tmp_path} is not a playbook home (no playbooks/ folder): run 'playbook init "
                             "DIR', or pass --home DIR / set PLAYBOOK_HOME\n")
    assert result.code == 2


# -- validate on good homes ------------------------------------------------------------------------------------

def test_validate_passes_on_the_starter(home: Path) -> None:
    result = run_cli("validate", home=home)
    assert result.code == 0, result.output
    assert result.stderr == ""
    assert "✓ 1 playbook(s) valid: whatsapp-outage" in result.stdout


def test_validate_measures_every_phase_language_and_channel(home: Path) -> None:
    with_x()(home)
    result = run_cli("validate", home=home, env=X_ENV)
    assert result.code == 0, result.output
    rows = []
    for section in result.stdout.split("whatsapp-outage · ")[1:]:
        phase, _, table = section.partition("\n")
        rows += [(phase, lang, count) for lang, count in re.findall(r"^(\w\w) +x +short +(\d+)/280 weighted", table,
                                                                     re.MULTILINE)]
    # Every phase, then every phase but the last again as a holding update on its holding channels (x, website).
    phases = ("investigating", "identified", "monitoring", "resolved",
              "investigating (holding)", "identified (holding)", "monitoring (holding)")
    assert {(phase, lang) for phase, lang, _ in rows} == {(phase, lang) for phase in phases for lang in ("fr", "en")}
    assert all(int(count) <= 280 for _, _, count in rows)


def test_validate_warns_when_credentials_are_not_set_but_passes(home: Path) -> None:
    with_x()(home)
    result = run_cli("validate", home=home)
    assert result.code == 0, result.output
    assert ("warning: channel 'x': $X_CONSUMER_KEY, $X_CONSUMER_SECRET, $X_ACCESS_TOKEN, $X_ACCESS_TOKEN_SECRET "
            "not set; needed to publish for real (a dry-run works without)") in result.stdout


def test_validate_reports_every_problem_not_only_the_first(home: Path) -> None:
    edit(f"{TEMPLATES}/identified.en.j2", "Contact: {{ support_email }}", "Contact: {{ suport_email }}")(home)
    remove(f"{TEMPLATES}/resolved.fr.j2")(home)
    result = run_cli("validate", home=home)
    assert result.code == 2
    assert result.stderr.splitlines() == [
        f"error: {IDENTIFIED_EN}:{CONTACT_AT}: undefined variable: suport_email",
        f"error: {TEMPLATES}/resolved.fr.j2: missing template for phase 'resolved' in 'fr'",
        "✗ 2 problem(s)",
    ]


# -- render, faq, checklist ------------------------------------------------------------------------------------

def test_render_prints_the_blocks_and_their_length_against_the_limit(home: Path) -> None:
    with_x()(home)
    result = run_cli("render", "whatsapp-outage", "--phase", "investigating", "--lang", "fr", "--channel", "x",
                     home=home, env=X_ENV)
    assert result.code == 0, result.output
    assert re.search(r"^short → x \(\d{3}/280 weighted characters\)$", result.stdout, re.MULTILINE)
    assert "Notre WhatsApp est perturbé" in result.stdout
    assert "Suivi\u00a0: https://status.example.com" in result.stdout  # French: no-break space before ":"
    # Only the blocks the X channel uses.
    assert "body →" not in result.stdout


@pytest.mark.parametrize(("lang", "said", "next_update"), [
    ("fr", "Point d’étape\u00a0: nous travaillons toujours au rétablissement…",
     r"Prochain point à \d{1,2}\u00a0h\u00a0\d\d\."),
    ("en", "An update: we’re still working on getting things back to normal…",
     r"Next update at \d{1,2}:\d\d\u202f[AP]M\."),
])
def test_render_holding_shows_the_holding_update_on_the_holding_channels(home: Path, lang: str, said: str,
                                                                          next_update: str) -> None:
    result = run_cli("render", "whatsapp-outage", "--phase", "identified", "--lang", lang, "--holding", home=home)
    assert result.code == 0, result.output
    assert result.stdout.startswith("whatsapp-outage · holding update of phase identified · ")
    assert said in result.stdout
    assert re.search(next_update, result.stdout)
    assert "title → x, website\n" in result.stdout  # the holding channels, both file channels in the starter
    plain = run_cli("render", "whatsapp-outage", "--phase", "identified", "--lang", lang, home=home)
    assert plain.code == 0, plain.output
    assert said not in plain.stdout and not re.search(next_update, plain.stdout)


def test_validate_warns_that_a_holding_channel_with_a_list_sends_again_to_everyone(tmp_path: Path) -> None:
    home = copy_example(tmp_path)
    edit(PLAYBOOK, "holding: {after: 15m, channels: [x, website]}",
         "holding: {after: 15m, channels: [x, website, customers]}")(home)
    result = run_cli("validate", home=home)
    assert result.code == 0, result.output
    assert ("warning: playbook 'whatsapp-outage': holding channel 'customers' sends to a list: each holding update "
            "is sent again to every recipient on it") in result.stdout
    assert re.search(r"^fr +customers +title", result.stdout.split("investigating (holding)\n")[1], re.MULTILINE)


def test_validate_warns_of_a_holding_channel_that_no_phase_before_the_last_publishes_to(home: Path) -> None:
    edit(PLAYBOOK, "channels: [x, website]}", "channels: [x, website, customers]}")(home)  # holding's
    edit(PLAYBOOK, "investigating: {channels: [x, website, customers]", "investigating: {channels: [x, website]")(home)
    result = run_cli("validate", home=home)
    assert result.code == 0, result.output
    assert ("warning: playbook 'whatsapp-outage': holding channel 'customers' gets no holding update: no phase "
            "before 'resolved' publishes to it") in result.stdout


def test_render_shows_a_var_and_a_sample(home: Path) -> None:
    result = run_cli("render", "whatsapp-outage", "--phase", "identified", "--lang", "en", "--channel", "website",
                     "--var", "brand=Acme", home=home)
    assert result.code == 0, result.output
    assert "The Acme team" in result.stdout
    # `cause` is optional and not given: a preview shows its sample where it would go.
    assert "a network configuration issue" in result.stdout


def test_variables_carrying_jinja_or_html_are_inert(home: Path) -> None:
    result = run_cli("render", "whatsapp-outage", "--phase", "investigating", "--lang", "en", "--channel",
                     "customers", "--var", "brand={{ 7*7 }} <b>Acme</b>", home=home)
    assert result.code == 0, result.output
    assert "The {{ 7*7 }} <b>Acme</b> team" in result.stdout
    assert "<p>The {{ 7*7 }} &lt;b&gt;Acme&lt;/b&gt; team</p>" in result.stdout
    # Never evaluated (the message shows the time, whose minute may well be 49: the brand is what is checked).
    assert "The 49" not in result.stdout and "49 <b>" not in result.stdout


@pytest.mark.parametrize(("lang", "first_question"), [("fr", "Ma commande est-elle concernée\u202f?"),
                                                      ("en", "Is my order affected?")])
def test_faq_piped_is_markdown_with_at_least_six_answers_in_each_language(home: Path, lang: str,
                                                                         first_question: str) -> None:
    result = run_cli("faq", "whatsapp-outage", "--lang", lang, home=home, env={"COLUMNS": "60"})
    assert result.code == 0, result.output
    numbers = re.findall(r"^## (\d+)\. ", result.stdout, flags=re.M)
    assert len(numbers) >= 6
    assert f"## 1. {first_question}\n" in result.stdout
    # Not wrapped at the width: each answer is pasted by support agents as the playbook writes it.
    answers = json.loads(run_cli("faq", "whatsapp-outage", "--lang", lang, "--format", "json", home=home).stdout)
    assert len(answers["faq"]) == len(numbers)
    for entry in answers["faq"]:
        assert f"{entry['answer'].strip()}\n" in result.stdout
    assert any(len(line) > 60 for line in result.stdout.splitlines())


def test_faq_and_checklist_refuse_an_unknown_format(home: Path) -> None:
    result = run_cli("faq", "whatsapp-outage", "--format", "html", home=home)
    assert (result.code, result.stderr) == (2, "error: --format must be md, text or json, not 'html'\n")


def test_checklist_prints_the_steps_of_a_phase(home: Path) -> None:
    result = run_cli("checklist", "whatsapp-outage", "--phase", "resolved", "--lang", "en", home=home)
    assert result.code == 0, result.output
    assert result.stdout.startswith("## resolved\n\n- [ ] ")
    steps = re.findall(r"^- \[ \] (.+)$", result.stdout, flags=re.M)
    assert len(steps) == 7
    assert steps[0].startswith("Check that WhatsApp works normally")
    assert "investigating" not in result.stdout


def test_list_and_show_describe_the_playbook(home: Path) -> None:
    listed = run_cli("list", home=home)
    assert listed.code == 0
    assert "whatsapp-outage" in listed.stdout and "fr, en" in listed.stdout
    shown = run_cli("show", "whatsapp-outage", home=home)
    assert shown.code == 0
    assert "Languages: fr, en (default fr) · time zone Europe/Paris" in shown.stdout
    assert "First notice due 30m after detection · updates every 1h · rehearse every" in shown.stdout


# -- one rule for variables in validate, render, trigger --dry-run and rehearse --------------------------------

def test_a_required_variable_without_sample_is_reported_alike_by_every_check(home: Path, tmp_path: Path) -> None:
    REQUIRED_TICKET(home)
    said = ("playbook 'whatsapp-outage' needs variable 'ticket' (The ticket number): give it with "
            f"--var ticket=...{NO_SAMPLE}")
    validated = run_cli("validate", home=home)
    assert validated.code == 2 and re.search(rf"error: {PLAYBOOK}:\d+:\d+: {re.escape(said)}\n", validated.stderr)
    for args in (("render", "whatsapp-outage"), ("trigger", "whatsapp-outage", "--dry-run")):
        result = run_cli(*args, home=home)
        assert (result.code, result.stderr) == (2, f"error: {said}\n")
    rehearsed = run_cli("rehearse", "--offline", "--report", str(tmp_path / "r.md"), home=home)
    assert rehearsed.code == 1
    assert f"- **variables: variable 'ticket' has a value**: {said}" in (tmp_path / "r.md").read_text()


def test_an_optional_variable_without_default_or_sample_renders_absent_everywhere(home: Path,
                                                                                  tmp_path: Path) -> None:
    edit(PLAYBOOK, "\nvars:\n", "\nvars:\n  delay: {description: How long it may last}\n")(home)
    edit(f"{TEMPLATES}/investigating.en.j2", "{% block short %}",
         "{% block short %}{% if delay %}Back in {{ delay }}. {% else %}No estimate yet. {% endif %}")(home)
    assert run_cli("validate", home=home).code == 0
    rendered = run_cli("render", "whatsapp-outage", "--lang", "en", home=home)
    assert rendered.code == 0 and "No estimate yet." in rendered.stdout and "Back in" not in rendered.stdout
    rehearsed = run_cli("rehearse", "--offline", "--report", str(tmp_path / "r.md"), home=home)
    assert rehearsed.code == 0, rehearsed.output
    assert ("| pass | variables: variable 'delay' has a value | optional, no default: renders as absent unless "
            "given with --var |") in (tmp_path / "r.md").read_text()


# -- each platform's limit, exactly reached and one past it ----------------------------------------------------

FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"  # one grapheme, 25 bytes of UTF-8
CHANNEL_AS = {
    "x": X_CHANNEL,
    "mastodon": "  x: {type: mastodon, api_base: 'https://mastodon.example', access_token: '${MASTODON_TOKEN}'}\n",
    "bluesky": "  x: {type: bluesky, handle: brand.bsky.social, app_password: '${BSKY_APP_PASSWORD}'}\n",
    "sms": ("  x: {type: sms, account_sid: '${TWILIO_SID}', auth_token: '${TWILIO_TOKEN}', from: '+33700000000',\n"
            "      recipients: contacts/sms.csv, max_segments: 3}\n"),
}
LIMIT_CASES = [
    # (channel type, text at the limit, the same one character past it, what validate says past it)
    ("x", "é" * 280, "é" * 281, "281/280 weighted characters"),
    ("x", "a" * 256 + " https://status.example.com/incidents/2026/11/30/whatsapp",
     "a" * 257 + " https://status.example.com/incidents/2026/11/30/whatsapp", "281/280 weighted characters"),
    ("mastodon", "a" * 493 + " @alice@" + "b" * 30 + ".com", "a" * 494 + " @alice@" + "b" * 30 + ".com",
     "501/500 characters, remote mentions count as @user"),
    # The final full stop is text, not part of the link: 475 + 1 + 23 + 1.
    ("mastodon", "a" * 475 + " https://status.example.com/incidents/2026/11/30/whatsapp.",
     "a" * 476 + " https://status.example.com/incidents/2026/11/30/whatsapp.", "501/500 characters, URLs count 23"),
    ("bluesky", "é" * 300, "é" * 301, "301/300 graphemes, 602/3,000 bytes"),
    ("bluesky", FAMILY * 120, FAMILY * 120 + "a", "121/300 graphemes, 3,001/3,000 bytes, over 3,000 bytes"),
    ("sms", "a" * 459, "a" * 460, "4/3 segments, GSM-7, 460 units"),
    # The escape pair of € cannot straddle septets 153 and 154: it opens segment 2, so 3 segments hold 458.
    ("sms", "a" * 152 + "€" + "a" * 304, "a" * 152 + "€" + "a" * 305, "4/3 segments, GSM-7, 459 units"),
]


def with_short_everywhere(channel: str, short: str) -> Setup:
    """Channel `x` made of the given type, and the first phase's short block that text in both languages."""
    def apply(home: Path) -> None:
        channels = home / "channels.yaml"
        text = channels.read_text(encoding="utf-8")
        old = "  x:\n    type: file\n    path: outbox/x.jsonl\n"
        assert old in text
        channels.write_text(text.replace(old, CHANNEL_AS[channel]), encoding="utf-8")
        write(home / "contacts" / "sms.csv", "phone,language,name\n+33612345678,fr,Ana\n+447700900123,en,Bob\n")
        for lang in ("fr", "en"):
            path = home / TEMPLATES / f"investigating.{lang}.j2"
            template, count = re.subn(r"\{% block short %\}.*?\{% endblock %\}",
                                      lambda _: "{% block short %}" + short + "{% endblock %}",
                                      path.read_text(encoding="utf-8"), flags=re.S)
            assert count == 1
            path.write_text(template, encoding="utf-8")
    return apply


@pytest.mark.parametrize(("channel", "at_limit", "past_it", "said"), LIMIT_CASES,
                         ids=[f"{c[0]}-{n}" for n, c in enumerate(LIMIT_CASES)])
def test_validate_passes_a_text_at_the_platforms_limit_and_fails_one_past_it(
        tmp_path: Path, channel: str, at_limit: str, past_it: str, said: str) -> None:
    from playbook.commands.validate import validate_home
    from playbook.home.locate import Home

    for text, ok in ((at_limit, True), (past_it, False)):
        home = tmp_path / ("ok" if ok else "over")
        write_starter(home)
        with_short_everywhere(channel, text)(home)
        report = validate_home(Home(root=home))
        assert report.ok is ok, [str(p) for p in report.problems]
        if not ok:
            assert {str(p) for p in report.problems} == {
                f"{TEMPLATES}/investigating.{lang}.j2: block 'short' is too long for channel 'x': {said}"
                for lang in ("fr", "en")}


@pytest.mark.parametrize(("short", "said"), [
    ("{% block short %}{% endblock %}", "0/280 weighted characters, an empty post is refused"),
    # U+FEFF: U+FFFE and U+FFFF never reach a message at all (no XML, HTML or JSON output can carry them).
    ("{% block short %}Panne \ufeff en cours{% endblock %}",
     "17/280 weighted characters, holds U+FEFF, a character X refuses"),
])
def test_validate_refuses_an_x_post_that_x_would_refuse_at_any_length(home: Path, short: str, said: str) -> None:
    with_x(replace_short(short))(home)
    result = run_cli("validate", home=home, env=X_ENV)
    assert result.code == 2
    assert f"error: {TEMPLATES}/investigating.en.j2: block 'short' cannot go out on channel 'x': {said}\n" in (
        result.stderr)
