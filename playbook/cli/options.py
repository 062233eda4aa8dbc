"""The options several commands share, declared once so that they read and behave the same everywhere."""

# No `from __future__ import annotations` in the CLI: typer would eval() every annotation string of every
# command at each start, which doubles the time `playbook --help` spends building the commands.
from typing import Annotated

import typer

Var = Annotated[list[str] | None, typer.Option("--var", "-v", help="A variable: name=value (repeatable).",
                                                metavar="NAME=VALUE")]
Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable result instead.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Publish without the confirmation prompt.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Render and check everything, show what would go where; "
                                                          "send nothing, record nothing.")]
Format = Annotated[str | None, typer.Option("--format", "-f", help="md, text or json (default: text on a terminal, "
                                                                  "Markdown without hard wraps otherwise).")]
IncidentId = Annotated[str, typer.Argument(metavar="INCIDENT", help="The incident id (see 'playbook status').")]
PlaybookId = Annotated[str, typer.Argument(metavar="ID", help="The playbook.")]
PlaybookIds = Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="Playbooks (default: all).")]
Lang = Annotated[str | None, typer.Option("--lang", "-l", help="The language (default: the first).")]
Wait = Annotated[bool, typer.Option("--wait", help="Keep retrying failed deliveries here until the window ends, "
                                                    "even while a worker is alive to take them over.")]
