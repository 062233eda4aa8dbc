"""Resolving a playbook's variables from defaults, samples and --var name=value."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from playbook.errors import VariableError, did_you_mean, one_of
from playbook.home.model import Playbook
from playbook.timeparse import parse_coming

# A terminal escape pasted with a value would reach every customer's message, and the operator's screen.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Bytes that were not UTF-8 reach Python as lone surrogates (U+DC80-U+DCFF); U+FFFE and U+FFFF are no
# characters. No message, XML feed, JSON body or mail header can carry them.
_NOT_TEXT = re.compile("[\ud800-\udfff\ufffe\uffff]")


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """`--var name=value` items -> {name: value}; the value may itself contain '='."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        not_text = _NOT_TEXT.search(item)
        if not_text is not None:
            shown = name.encode("utf-8", "backslashreplace").decode()
            raise VariableError(f"--var {shown}: {_not_text(not_text.group())}")
        if not sep or not name:
            raise VariableError(f"--var '{item}' must be written name=value")
        control = _CONTROL.search(value)
        if control is not None:
            raise VariableError(f"--var {name}: the value holds a control character (U+{ord(control.group()):04X}); "
                                "remove it (line breaks and tabs are fine)")
        values[name] = value
    return values


def _not_text(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"not UTF-8 text (a byte 0x{code - 0xDC00:02X}); set the terminal to UTF-8 or retype the value"
    return f"U+{code:04X} is not a character; retype the value"


def missing_message(playbook: Playbook, name: str) -> str:
    """What validate, render, rehearse and trigger all say of a required variable that has no value."""
    spec = playbook.vars[name]
    about = f" ({spec.description})" if spec.description else ""
    return (f"playbook '{playbook.id}' needs variable '{name}'{about}: give it with --var {name}=..., "
            f"or add `sample:` to vars.{name} so that validate, render and rehearse can show it")


def without_value(playbook: Playbook) -> list[str]:
    """Required variables with neither default nor sample: no check can render them without --var."""
    return [name for name, spec in playbook.vars.items()
            if spec.required and spec.default in (None, "") and spec.sample in (None, "")]


def resolve(playbook: Playbook, given: Mapping[str, str], *, samples: bool = False,
            placeholders: bool = False, now: datetime | None = None) -> dict[str, str | None]:
    """Each variable's value: --var, else default; a required one without a value is an error naming it.

    With `samples` (render, validate, rehearse), a variable without a value takes its sample. An optional
    variable left without a value is None, which templates see as absent (`{% if eta %}` is false).
    With `placeholders` (validate), a required one without sample reads `<name>` instead of failing, so
    the rest of the templates are still checked; validate reports it with `without_value`. A date-time
    variable given as a time of day (`--var eta=18:00`) becomes that moment in ISO 8601, in the playbook's
    zone, as of `now`.
    """
    for name in given:
        if name not in playbook.vars:
            raise VariableError(
                f"playbook '{playbook.id}' has no variable '{name}'{did_you_mean(name, playbook.vars)};"
                f" known: {one_of(playbook.vars)}"
            )
    values: dict[str, str | None] = {}
    for name, spec in playbook.vars.items():
        value = given.get(name)
        if value and spec.is_datetime:
            value = _moment(playbook, name, value, now)
        if value is None or value == "":
            value = spec.default
        if (value is None or value == "") and samples:
            value = spec.sample
        if (value is None or value == "") and spec.required:
            if not placeholders:
                raise VariableError(missing_message(playbook, name))
            value = f"<{name}>"
        values[name] = value if value != "" else None
    return values


def _moment(playbook: Playbook, name: str, value: str, now: datetime | None) -> str:
    """A date-time variable's value as ISO 8601 with the playbook's offset; the error names the --var."""
    try:
        moment = parse_coming(value, reference=now, zone=playbook.zone)
    except ValueError:
        raise VariableError(
            f"--var {name}: '{value}' is not a date-time: write a time of day such as --var {name}=18:00 (today, "
            f"or tomorrow once past, {playbook.timezone} time), or ISO 8601 such as "
            f"--var {name}=2026-11-25T18:00+01:00, or a delay such as --var {name}=+2h"
        ) from None
    return moment.astimezone(playbook.zone).isoformat(timespec="minutes")
