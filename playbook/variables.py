"""Resolving a playbook's variables from defaults, samples and --var name=value."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from playbook.errors import VariableError, did_you_mean, one_of
from playbook.model import Playbook
from playbook.timeparse import parse_coming

# A terminal escape pasted with a value would reach every customer's message, and the operator's screen.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """`--var name=value` items -> {name: value}; the value may itself contain '='."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise VariableError(f"--var '{item}' must be written name=value")
        control = _CONTROL.search(value)
        if control is not None:
            raise VariableError(f"--var {name}: the value holds a control character (U+{ord(control.group()):04X}); "
                                "remove it (line breaks and tabs are fine)")
        values[name] = value
    return values


def resolve(playbook: Playbook, given: Mapping[str, str], *, samples: bool = False,
            placeholders: bool = False, now: datetime | None = None) -> dict[str, str | None]:
    """Each variable's value: --var, else default; a required one without a value is an error naming it.

    With `samples`, an optional variable without a value takes its sample, so a preview shows where the
    value goes. With `placeholders` (validate), a required one takes its sample, else reads `<name>`, so
    that every template renders without anything given. A date-time variable given as a time of day
    (`--var eta=18:00`) becomes that moment in ISO 8601, in the playbook's zone, as of `now`.
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
        if (value is None or value == "") and samples and (placeholders or not spec.required):
            value = spec.sample
        if (value is None or value == "") and spec.required:
            if not placeholders:
                about = f" ({spec.description})" if spec.description else ""
                raise VariableError(
                    f"playbook '{playbook.id}' needs variable '{name}'{about}: give it with --var {name}=..."
                )
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
