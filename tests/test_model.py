"""The playbook format: YAML read safely with positions, pydantic models that refuse what they do not know."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from playbook.errors import ConfigError, PlaybookError, VariableError
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.home.yamlfile import MAX_NODES, load_yaml
from playbook.rendering.variables import parse_assignments, resolve
from playbook.timeparse import parse_duration
from tests.conftest import write

PLAYBOOK = """\
id: outage
name: {fr: Panne, en: Outage}
languages: [fr, en]
timezone: Europe/Paris
window: 30m
update_every: 1h
vars:
  brand: {default: Acme}
  ticket: {required: true, description: The ticket number}
  eta: {sample: "2026-11-25T18:00:00+01:00"}
phases:
  investigating: {channels: [x]}
  resolved: {channels: [x]}
"""


def load(tmp_path: Path, text: str, playbook_id: str = "outage") -> Playbook:
    write(tmp_path / "playbooks" / f"{playbook_id}.yaml", text)
    return Home(tmp_path).load_playbook(playbook_id)


def error_of(tmp_path: Path, text: str, playbook_id: str = "outage") -> str:
    with pytest.raises(PlaybookError) as caught:
        load(tmp_path, text, playbook_id)
    return str(caught.value)


# -- durations ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("45s", timedelta(seconds=45)),
    ("30m", timedelta(minutes=30)),
    ("2h", timedelta(hours=2)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1d", timedelta(days=1)),
    (" 1H 30M ", timedelta(hours=1, minutes=30)),
])
def test_durations_as_users_write_them(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "30", "m", "1.5h", "-5m", "30m1h"])
def test_what_is_not_a_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: write it like 45s, 30m, 2h or 1h30m"):
        parse_duration(text)


def test_a_playbook_reads_its_durations(tmp_path: Path) -> None:
    playbook = load(tmp_path, PLAYBOOK.replace("window: 30m", "window: 1h30m"))
    assert playbook.window == timedelta(hours=1, minutes=30)
    assert playbook.update_every == timedelta(hours=1)
    assert playbook.rehearse_every == timedelta(days=30)


# -- the model: exact one-line errors at the file, line and column of the mistake ------------------------

@pytest.mark.parametrize(("old", "new", "expected"), [
    ("window: 30m", "windwo: 30m",
     "playbooks/outage.yaml:5:1: unknown key 'windwo' (did you mean 'window'?); known keys: checklist, "
     "description, faq, holding, id, languages, monitors, name, phases, rehearse_every, reminders, timezone, "
     "update_every, vars, watch, window"),
    ("brand: {default: Acme}", "brand: {defualt: Acme}",
     "playbooks/outage.yaml:8:11: unknown key 'defualt' (did you mean 'default'?); known keys: default, "
     "description, required, sample, type"),
    ("investigating: {channels: [x]}", "investigating: {chanels: [x]}",
     "playbooks/outage.yaml:12:19: unknown key 'chanels' (did you mean 'channels'?); known keys: channels, impact"),
    ("languages: [fr, en]", "languages: fr",
     "playbooks/outage.yaml:3:1: languages: expected a list, such as [a, b], not 'fr'"),
    ("languages: [fr, en]", "languages: []", "playbooks/outage.yaml:3:1: languages: must not be empty"),
    ("languages: [fr, en]", "languages: [fr, en, xx]",
     "playbooks/outage.yaml:3:1: languages: unknown language code 'xx'"),
    ("languages: [fr, en]", "languages: [fr, en, fr]",
     "playbooks/outage.yaml:3:1: languages: a language is listed twice"),
    ("window: 30m", "window: soon",
     "playbooks/outage.yaml:5:1: window: 'soon' is not a duration: write it like 45s, 30m, 2h or 1h30m"),
    ("window: 30m", "window: 30", "playbooks/outage.yaml:5:1: window: '30' has no unit: write 30m or 30s"),
    ("window: 30m", "window: [30m]",
     "playbooks/outage.yaml:5:1: window: expected a duration such as 45s, 30m, 2h or 1h30m, not ['30m']"),
    ("window: 30m\n", "",  "playbooks/outage.yaml:1:1: missing required key 'window'"),
    ("window: 30m", "window: 0s", "playbooks/outage.yaml:5:1: window: must be longer than 0s, e.g. 30m"),
    ("window: 30m", "window: 0h0m", "playbooks/outage.yaml:5:1: window: must be longer than 0s, e.g. 30m"),
    ("update_every: 1h", "update_every: 0m",
     "playbooks/outage.yaml:6:1: update_every: must be longer than 0s, e.g. 30m"),
    ("timezone: Europe/Paris", "timezone: Europe/Pariss",
     "playbooks/outage.yaml:4:1: timezone: unknown time zone 'Europe/Pariss': use an IANA name such as "
     "Europe/Paris"),
    ("id: outage", "id: outages", "playbooks/outage.yaml:1:1: id 'outages' must match the file name 'outage'"),
    ("id: outage", "id: Outage",
     "playbooks/outage.yaml:1:1: id: 'Outage' is not a valid id: lower-case letters, digits, - and _"),
    ("name: {fr: Panne, en: Outage}", "name: {fr: Panne}", "playbooks/outage.yaml:2:1: name has no text in en"),
    ("brand: {default: Acme}", "brand: Acme",
     "playbooks/outage.yaml:8:3: vars.brand: expected a mapping of keys (key: value), not 'Acme'"),
    ("brand: {default: Acme}", "brand: {required: maybe}",
     "playbooks/outage.yaml:8:11: vars.brand.required: expected true or false, not 'maybe'"),
    ("brand: {default: Acme}", "incident: {default: Acme}",
     "playbooks/outage.yaml:7:1: vars: variable 'incident' clashes with a name templates already see"),
    ("investigating: {channels: [x]}", "investigating: {channels: []}",
     "playbooks/outage.yaml:12:19: phases.investigating.channels: must not be empty"),
])
def test_a_mistake_in_a_playbook_is_one_line_at_its_place(tmp_path: Path, old: str, new: str,
                                                          expected: str) -> None:
    assert old in PLAYBOOK
    assert error_of(tmp_path, PLAYBOOK.replace(old, new, 1)) == expected



# -- reminders and holding updates: what the worker does between updates ------------------------------------

WORKER = "reminders: {channels: [team], before: 5m}\nholding: {after: 20m, channels: [x], drills: true}\n"


def test_reminders_and_holding_read_their_channels_durations_and_drills(tmp_path: Path) -> None:
    playbook = load(tmp_path, PLAYBOOK + WORKER)
    assert playbook.reminders is not None and playbook.holding is not None
    assert (playbook.reminders.channels, playbook.reminders.before) == (["team"], timedelta(minutes=5))
    assert (playbook.holding.channels, playbook.holding.after, playbook.holding.drills) == (
        ["x"], timedelta(minutes=20), True)


def test_reminders_and_holding_are_optional_and_default_to_10m_15m_and_no_drills(tmp_path: Path) -> None:
    assert load(tmp_path, PLAYBOOK).reminders is None and load(tmp_path, PLAYBOOK).holding is None
    playbook = load(tmp_path, PLAYBOOK + "reminders: {channels: [team]}\nholding: {channels: [x]}\n")
    assert playbook.reminders is not None and playbook.reminders.before == timedelta(minutes=10)
    assert playbook.holding is not None and playbook.holding.after == timedelta(minutes=15)
    assert playbook.holding.drills is False


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("before: 5m", "befor: 5m",
     "playbooks/outage.yaml:14:31: unknown key 'befor' (did you mean 'before'?); known keys: before, channels"),
    ("drills: true", "drill: true",
     "playbooks/outage.yaml:15:38: unknown key 'drill' (did you mean 'drills'?); known keys: after, channels, "
     "drills"),
    ("before: 5m", "before: 0s", "playbooks/outage.yaml:14:31: reminders.before: must be longer than 0s, e.g. 30m"),
    ("after: 20m", "after: 20", "playbooks/outage.yaml:15:11: holding.after: '20' has no unit: write 20m or 20s"),
    ("after: 20m", "after: later",
     "playbooks/outage.yaml:15:11: holding.after: 'later' is not a duration: write it like 45s, 30m, 2h or 1h30m"),
    ("channels: [team]", "channels: []", "playbooks/outage.yaml:14:13: reminders.channels: must not be empty"),
    ("channels: [team]", "channels: team",
     "playbooks/outage.yaml:14:13: reminders.channels: expected a list, such as [a, b], not 'team'"),
    ("after: 20m, channels: [x], ", "", "playbooks/outage.yaml:15:1: holding: missing required key 'channels'"),
    ("drills: true", "drills: maybe",
     "playbooks/outage.yaml:15:38: holding.drills: expected true or false, not 'maybe'"),
    ("channels: [team]", "channels: [team, team]",
     "playbooks/outage.yaml:14:30: reminders.channels lists 'team' twice"),
])
def test_a_mistake_in_reminders_or_holding_is_one_line_at_its_place(tmp_path: Path, old: str, new: str,
                                                                    expected: str) -> None:
    assert old in WORKER
    assert error_of(tmp_path, PLAYBOOK + WORKER.replace(old, new, 1)) == expected


def test_a_checklist_for_an_unknown_phase_suggests_the_right_one(tmp_path: Path) -> None:
    text = PLAYBOOK + "checklist:\n  resolvd: {fr: [a], en: [b]}\n"
    assert error_of(tmp_path, text) == (
        "playbooks/outage.yaml:15:3: checklist names phase 'resolvd', which is not in phases "
        "(did you mean 'resolved'?)"
    )


def test_an_faq_entry_missing_a_language_is_named(tmp_path: Path) -> None:
    text = PLAYBOOK + "faq:\n  - question: {fr: \"Quand ?\", en: \"When?\"}\n    answer: {fr: Bientôt.}\n"
    assert error_of(tmp_path, text) == "playbooks/outage.yaml:16:5: faq[0].answer has no text in en"


def test_an_unknown_playbook_suggests_a_close_one(tmp_path: Path) -> None:
    load(tmp_path, PLAYBOOK)
    with pytest.raises(PlaybookError) as caught:
        Home(tmp_path).load_playbook("outgae")
    assert str(caught.value) == "no playbook 'outgae' (did you mean 'outage'?); known: outage"


# -- YAML: safe, positioned, bounded ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("id: outage\n  name: x\n",
     "p.yaml:2:7: invalid YAML: unexpected ':': check the indentation, or put the value in quotes if it "
     "contains ': '"),
    ("id: outage\nname:\n    fr: a\n  en: b\n",
     "p.yaml:4:3: invalid YAML: this line's indentation does not match the lines above it"),
    ("languages: [fr, en\nwindow: 30m\n",
     "p.yaml:2:7: invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence at line 1, "
     "column 12)"),
    ("name: {fr: a\n", "p.yaml:2:1: invalid YAML: expected ',' or '}', but got '<stream end>' (while parsing "
                       "a flow mapping at line 1, column 7)"),
    ("faq:\n  - question: {fr: Quand ?, en: When?}\n",
     "p.yaml:2:26: invalid YAML: a '?' inside [ ] or { }: put the text that contains it in quotes"),
    ("id:\n\t- a\n", "p.yaml:2:1: invalid YAML: a tab character: indent with spaces (YAML does not allow tabs)"),
    ("id: x\nid: y\n", "p.yaml:2:1: duplicate key 'id'"),
    ("id: !!python/object/apply:os.system [ls]\n",
     "p.yaml:1:5: invalid value: could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object/apply:os.system'"),
])
def test_broken_yaml_is_one_line_with_line_and_column(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "p.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_yaml(path, display=Path("p.yaml"))
    assert str(caught.value) == expected


def test_a_yaml_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = write(tmp_path / "bomb.yaml", "\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path, display=Path("bomb.yaml"))
    assert str(caught.value) == (
        f"bomb.yaml: document expands to more than {MAX_NODES:,} values (aliases used as a YAML bomb?)"
    )


def test_a_file_too_big_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "big.yaml", "a: " + "x" * 1_000_001 + "\n")
    with pytest.raises(ConfigError, match=r"^big.yaml: file is 1,000,005 bytes; the limit is 1,000,000$"):
        load_yaml(path, display=Path("big.yaml"))


def test_yes_no_on_off_stay_text_while_true_false_are_booleans(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "languages: [en, no]\nname: {en: a, no: b}\nx: yes\ny: off\nz: true\nw: False\n")
    assert load_yaml(path).data == {
        "languages": ["en", "no"], "name": {"en": "a", "no": "b"}, "x": "yes", "y": "off", "z": True, "w": False,
    }


def test_norwegian_is_a_language_not_a_boolean(tmp_path: Path) -> None:
    text = PLAYBOOK.replace("name: {fr: Panne, en: Outage}", "name: {en: Outage, no: Driftsavbrudd}").replace(
        "languages: [fr, en]", "languages: [en, no]")
    playbook = load(tmp_path, text)
    assert playbook.languages == ["en", "no"]
    assert playbook.name == {"en": "Outage", "no": "Driftsavbrudd"}


def test_a_boolean_written_yes_still_reads_as_true(tmp_path: Path) -> None:
    playbook = load(tmp_path, PLAYBOOK.replace("ticket: {required: true,", "ticket: {required: yes,"))
    assert playbook.vars["ticket"].required is True


def test_a_numeric_default_keeps_the_text_the_user_typed(tmp_path: Path) -> None:
    playbook = load(tmp_path, PLAYBOOK.replace("brand: {default: Acme}", "brand: {default: 3}"))
    assert playbook.vars["brand"].default == "3"


# -- variables ----------------------------------------------------------------------------------------------

def test_variables_take_var_then_default(tmp_path: Path) -> None:
    playbook = load(tmp_path, PLAYBOOK)
    assert resolve(playbook, {"ticket": "T-1"}) == {"brand": "Acme", "ticket": "T-1", "eta": None}
    assert resolve(playbook, {"ticket": "T-1", "brand": "Zed"})["brand"] == "Zed"


def test_a_required_variable_not_given_is_an_error_naming_it(tmp_path: Path) -> None:
    playbook = load(tmp_path, PLAYBOOK)
    with pytest.raises(VariableError) as caught:
        resolve(playbook, {})
    assert str(caught.value) == (
        "playbook 'outage' needs variable 'ticket' (The ticket number): give it with --var ticket=..., "
        "or add `sample:` to vars.ticket so that validate, render and rehearse can show it"
    )
    # A preview fills optional variables with their samples, but never invents a required value.
    with pytest.raises(VariableError):
        resolve(playbook, {}, samples=True)


def test_validate_renders_with_samples_and_placeholders(tmp_path: Path) -> None:
    playbook = load(tmp_path, PLAYBOOK)
    assert resolve(playbook, {}, samples=True, placeholders=True) == {
        "brand": "Acme", "ticket": "<ticket>", "eta": "2026-11-25T18:00:00+01:00",
    }


def test_an_unknown_var_suggests_a_close_one(tmp_path: Path) -> None:
    playbook = load(tmp_path, PLAYBOOK)
    with pytest.raises(VariableError) as caught:
        resolve(playbook, {"tiket": "T-1"})
    assert str(caught.value) == (
        "playbook 'outage' has no variable 'tiket' (did you mean 'ticket'?); known: brand, eta, ticket"
    )


def test_var_assignments_split_on_the_first_equals() -> None:
    assert parse_assignments(["eta=2026-11-25T18:00", "cause=a=b", "brand="]) == {
        "eta": "2026-11-25T18:00", "cause": "a=b", "brand": "",
    }
    with pytest.raises(VariableError, match=r"^--var 'brand' must be written name=value$"):
        parse_assignments(["brand"])
