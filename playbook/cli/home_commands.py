"""Commands that read the home: create one, list and show its playbooks, preview, FAQ and checklists."""

# No `from __future__ import annotations` in the CLI: typer would eval() every annotation string of every
# command at each start, which doubles the time `playbook --help` spends building the commands.
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from playbook.cli.app import load_home
from playbook.cli.options import Format, Lang, PlaybookId, Var

if TYPE_CHECKING:
    from playbook.home.model import Playbook


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the home in.")],
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty.")] = False,
) -> None:
    """Create a working home: the whatsapp-outage playbook, its templates and a commented channels.yaml."""
    from playbook.home.starter import write_starter
    from playbook.output.home import initialised

    initialised(write_starter(directory, force=force), directory)


def list_playbooks() -> None:
    """List the home's playbooks: name, languages, phases and window."""
    from playbook.output.home import playbook_list

    home = load_home()
    playbook_list([home.load_playbook(i) for i in home.playbook_ids()])


def show(playbook_id: PlaybookId) -> None:
    """Show one playbook: variables, phases and their channels, window and cadence."""
    from playbook.output.home import playbook_detail

    playbook_detail(load_home().load_playbook(playbook_id))


def render(
    playbook_id: PlaybookId,
    phase: Annotated[str | None, typer.Option("--phase", "-p", help="The phase (default: the first).")] = None,
    lang: Lang = None,
    channel: Annotated[str | None, typer.Option("--channel", "-c", help="Only this channel.")] = None,
    var: Var = None,
    drill: Annotated[bool, typer.Option("--drill", help="Show the drill marker.")] = False,
    holding: Annotated[bool, typer.Option("--holding", help="As a holding update, on the holding channels.")] = False,
) -> None:
    """Preview what a phase says in one language, on each of its channels, with lengths against limits."""
    from playbook.commands.preview import render_preview
    from playbook.output.messages import preview
    from playbook.rendering.variables import parse_assignments

    home = load_home()
    chosen = phase or home.load_playbook(playbook_id).first_phase
    preview(render_preview(home, playbook_id, chosen, lang, channel, parse_assignments(var or []), drill,
                           holding))


def faq(playbook_id: PlaybookId, lang: Lang = None, format: Format = None) -> None:
    """Print the canned answers for support agents."""
    from playbook.output.home import faq as show_faq

    playbook = load_home().load_playbook(playbook_id)
    show_faq(playbook, _language(playbook, lang), _format(format))


def checklist(
    playbook_id: PlaybookId,
    phase: Annotated[str | None, typer.Option("--phase", "-p", help="The phase (default: every phase).")] = None,
    lang: Lang = None,
    format: Format = None,
) -> None:
    """Print the operator's manual steps for a phase."""
    from playbook.errors import PlaybookError, did_you_mean
    from playbook.output.home import checklist as show_checklist

    playbook = load_home().load_playbook(playbook_id)
    if phase is not None and phase not in playbook.phases:
        raise PlaybookError(f"playbook '{playbook.id}' has no phase '{phase}'{did_you_mean(phase, playbook.phases)}")
    show_checklist(playbook, phase, _language(playbook, lang), _format(format))


def _format(chosen: str | None) -> str | None:
    from playbook.errors import PlaybookError

    if chosen is not None and chosen not in ("md", "text", "json"):
        raise PlaybookError(f"--format must be md, text or json, not '{chosen}'")
    return chosen


def _language(playbook: "Playbook", lang: str | None) -> str:
    from playbook.errors import PlaybookError

    chosen = lang or playbook.default_language
    if chosen not in playbook.languages:
        raise PlaybookError(f"playbook '{playbook.id}' is not written in '{chosen}'; languages: "
                            f"{', '.join(playbook.languages)}")
    return chosen
