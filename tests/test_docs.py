"""Every command and option has help text, and the README names every command: the docs cannot drift."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.main

from playbook.cli import app
from tests.conftest import ROOT

# Typer (0.26 and later) carries its own copy of click: the group is typed loosely rather than against a click import.
GROUP: Any = typer.main.get_command(app)
COMMANDS: list[tuple[str, Any]] = sorted(GROUP.commands.items())
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_app_has_commands() -> None:
    assert {"init", "list", "show", "validate", "render", "faq", "checklist"} <= dict(COMMANDS).keys()


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_command_has_help(name: str, command: Any) -> None:
    assert command.help and command.help.strip(), f"'playbook {name}' has no help text (its docstring)"


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_option_and_argument_has_help(name: str, command: Any) -> None:
    missing = [param.name for param in command.params if not getattr(param, "help", None)]
    assert not missing, f"'playbook {name}': no help text for {', '.join(str(m) for m in missing)}"


def test_every_global_option_has_help() -> None:
    missing = [param.name for param in GROUP.params if not getattr(param, "help", None)]
    assert not missing, f"global options without help text: {missing}"


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_the_readme_names_every_command(name: str) -> None:
    assert re.search(rf"playbook {re.escape(name)}(?![\w-])", README), f"README.md never shows 'playbook {name}'"
