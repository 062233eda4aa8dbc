"""The typer app, its global options, and the one place where errors become a line and an exit status."""

# No `from __future__ import annotations` in the CLI: typer would eval() every annotation string of every
# command at each start, which doubles the time `playbook --help` spends building the commands.
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from playbook.errors import ExitStatus

if TYPE_CHECKING:
    from playbook.commands.session import Session
    from playbook.home.locate import Home

app = typer.Typer(
    name="playbook",
    help="Get a brand's crisis messages out on every channel, inside the playbook's window.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _State:
    home: Path | None = None
    state: str | None = None
    debug: bool = False
    # The interruption was already explained, with the incident's id.
    told_interrupt: bool = False


STATE = _State()


def _version(value: bool) -> None:
    if value:
        from playbook import __version__

        typer.echo(f"crisis-playbook {__version__}")
        raise typer.Exit(ExitStatus.OK)


@app.callback()
def main_options(
    home: Annotated[Path | None, typer.Option("--home", help="The playbook home (default: $PLAYBOOK_HOME, "
                                                             "else the current folder).")] = None,
    state: Annotated[str | None, typer.Option("--state", help="The ledger: a file, or a postgresql:// URL a team "
                                                              "shares (default: $PLAYBOOK_STATE, else "
                                                              "HOME/.playbook/state.db).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (secrets still masked).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Get a brand's crisis messages out on every channel, inside the playbook's window."""
    STATE.home, STATE.state, STATE.debug = home, state, debug


def load_home() -> "Home":
    """The home the global options (or the environment, or the current folder) name."""
    from playbook.home.locate import Home

    return Home.locate(STATE.home, STATE.state)


def open_session() -> "Session":
    from playbook.commands.session import Session

    return Session(load_home())


def main() -> None:
    """Entry point: user mistakes become one line and exit 2; only bugs show a traceback (or --debug)."""
    from playbook.errors import PlaybookError

    # pydantic looks for its plugins (observability hooks, none of which this tool uses) by reading the
    # metadata of every installed package the first time a model is built: a fifth of a read-only
    # command's start-up. A user who wants a plugin sets the variable to "" (or names the ones to skip).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")
    # httpx imports its own command-line client (click, pygments, rich.progress) whenever click is installed,
    # and apprise and atproto install it: a tenth of a second on every publishing command, for a program this
    # one never runs. Marked missing (None in sys.modules, as the import system documents), that optional
    # import fails as it would without click.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        app()
    except PlaybookError as exc:
        from playbook.output.console import error, traceback

        if STATE.debug:
            traceback(exc)
        error(str(exc))
        sys.exit(exc.exit_status)
    except SystemExit as exc:
        # typer turns Ctrl-C into a silent exit 130; mid-publish, the user must learn how to finish.
        if exc.code == ExitStatus.INTERRUPTED and not STATE.told_interrupt:
            from playbook.output.console import error

            error("interrupted: run 'playbook status' to see what went out, 'playbook resume' to finish")
        raise
    except Exception as exc:
        from playbook.output.console import traceback

        traceback(exc)
        sys.exit(ExitStatus.SOFTWARE)
