"""Commands that check the plan before a crisis: validate, the channels' online checks, and rehearse."""

# No `from __future__ import annotations` in the CLI: typer would eval() every annotation string of every
# command at each start, which doubles the time `playbook --help` spends building the commands.
from pathlib import Path
from typing import Annotated

import typer

from playbook.cli.app import load_home
from playbook.cli.options import Json, PlaybookIds
from playbook.errors import ExitStatus


def validate(ids: PlaybookIds = None) -> None:
    """Check playbooks, templates and channels, and every message against its channel's limit."""
    from playbook.commands.validate import validate_home
    from playbook.output.messages import validation

    report = validate_home(load_home(), ids or [])
    validation(report)
    raise typer.Exit(ExitStatus.OK if report.ok else ExitStatus.INVALID_INPUT)


def channels(
    check: Annotated[bool, typer.Option("--check", help="Also run each channel's online check "
                                                        "(credentials, reachability; nothing is published).")] = False,
    json_: Json = False,
) -> None:
    """List the home's channels: type, languages, limits, recipients and settings (secrets masked)."""
    from playbook.commands.channels import list_channels
    from playbook.output.home import channel_list

    listing = list_channels(load_home(), check=check)
    channel_list(listing, as_json=json_)
    passed = all(c.check is None or c.check.ok for c in listing)
    raise typer.Exit(ExitStatus.OK if passed else ExitStatus.CHECK_FAILED)


def rehearse(
    ids: PlaybookIds = None,
    offline: Annotated[bool, typer.Option("--offline", help="Skip the channels' online checks.")] = False,
    check_links: Annotated[bool, typer.Option("--check-links", help="Also fetch every link in the messages "
                                                                    "(2xx/3xx expected).")] = False,
    drill: Annotated[bool, typer.Option("--drill", help="Also publish the first phase for real through the "
                                                        "sandbox channels, and time it.")] = False,
    junit: Annotated[Path | None, typer.Option("--junit", metavar="FILE", help="Write JUnit XML "
                                                                               "(one test case per check).")] = None,
    report: Annotated[Path | None, typer.Option("--report", metavar="FILE.md", help="Write a Markdown report "
                                                                                    "with an SVG chart beside it.")]
    = None,
) -> None:
    """Test the whole plan: templates, variables, secrets, links, channels, and whether the window holds."""
    from playbook.commands.rehearsal_report import verdict, write_junit, write_report
    from playbook.commands.rehearse import rehearse as run_rehearsal
    from playbook.output.rehearsals import rehearsals as show_rehearsals

    rehearsals = run_rehearsal(load_home(), ids or [], offline=offline, check_links=check_links, drill=drill)
    written = []
    if junit is not None:
        write_junit(rehearsals, junit)
        written.append(junit)
    if report is not None:
        written += write_report(rehearsals, report)
    show_rehearsals([(r, verdict(r)) for r in rehearsals], written)
    raise typer.Exit(ExitStatus.OK if all(r.ok for r in rehearsals) else ExitStatus.CHECK_FAILED)
