"""The `playbook` command: parse options, call the core, hand the result to output. Nothing else."""

# No `from __future__ import annotations` here: typer would eval() every annotation string of every
# command at each start, which doubles the time `playbook --help` spends building the commands.
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

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
    state: Path | None = None
    debug: bool = False
    # The interruption was already explained, with the incident's id.
    told_interrupt: bool = False


STATE = _State()

Var = Annotated[list[str] | None, typer.Option("--var", "-v", help="A variable: name=value (repeatable).",
                                                metavar="NAME=VALUE")]
Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable result instead.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Publish without the confirmation prompt.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Render and check everything, show what would go where; "
                                                          "send nothing, record nothing.")]
Format = Annotated[str | None, typer.Option("--format", "-f", help="md, text or json (default: text on a terminal, "
                                                                  "Markdown without hard wraps otherwise).")]
IncidentId = Annotated[str, typer.Argument(metavar="INCIDENT", help="The incident id (see 'playbook status').")]


def _version(value: bool) -> None:
    if value:
        from playbook import __version__

        typer.echo(f"crisis-playbook {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    home: Annotated[Path | None, typer.Option("--home", help="The playbook home (default: $PLAYBOOK_HOME, "
                                                             "else the current folder).")] = None,
    state: Annotated[Path | None, typer.Option("--state", help="The ledger file (default: $PLAYBOOK_STATE, "
                                                               "else HOME/.playbook/state.db).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (secrets still masked).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Get a brand's crisis messages out on every channel, inside the playbook's window."""
    STATE.home, STATE.state, STATE.debug = home, state, debug


def _home() -> Any:
    from playbook.home import Home

    return Home.locate(STATE.home, STATE.state)


def _session() -> Any:
    from playbook.session import Session

    return Session(_home())


def _exit(code: int) -> None:
    raise typer.Exit(code)


# -- the home and its playbooks ------------------------------------------------------------------------

@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the home in.")],
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty.")] = False,
) -> None:
    """Create a working home: the whatsapp-outage playbook, its templates and a commented channels.yaml."""
    from playbook import output
    from playbook.starter import write_starter

    output.initialised(write_starter(directory, force=force), directory)


@app.command("list")
def list_playbooks() -> None:
    """List the home's playbooks: name, languages, phases and window."""
    from playbook import output

    home = _home()
    output.playbook_list([home.load_playbook(i) for i in home.playbook_ids()])


@app.command()
def show(playbook_id: Annotated[str, typer.Argument(metavar="ID", help="The playbook.")]) -> None:
    """Show one playbook: variables, phases and their channels, window and cadence."""
    from playbook import output

    output.playbook_detail(_home().load_playbook(playbook_id))


@app.command()
def validate(
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="Playbooks (default: all).")] = None,
) -> None:
    """Check playbooks, templates and channels, and every message against its channel's limit."""
    from playbook import output
    from playbook.validate import validate_home

    report = validate_home(_home(), ids or [])
    output.validation(report)
    _exit(0 if report.ok else 2)


@app.command()
def render(
    playbook_id: Annotated[str, typer.Argument(metavar="ID", help="The playbook.")],
    phase: Annotated[str | None, typer.Option("--phase", "-p", help="The phase (default: the first).")] = None,
    lang: Annotated[str | None, typer.Option("--lang", "-l", help="The language (default: the first).")] = None,
    channel: Annotated[str | None, typer.Option("--channel", "-c", help="Only this channel.")] = None,
    var: Var = None,
    drill: Annotated[bool, typer.Option("--drill", help="Show the drill marker.")] = False,
) -> None:
    """Preview what a phase says in one language, on each of its channels, with lengths against limits."""
    from playbook import output
    from playbook.preview import render_preview
    from playbook.variables import parse_assignments

    home = _home()
    chosen = phase or home.load_playbook(playbook_id).first_phase
    output.preview(render_preview(home, playbook_id, chosen, lang, channel, parse_assignments(var or []), drill))


@app.command()
def faq(
    playbook_id: Annotated[str, typer.Argument(metavar="ID", help="The playbook.")],
    lang: Annotated[str | None, typer.Option("--lang", "-l", help="The language (default: the first).")] = None,
    format: Format = None,
) -> None:
    """Print the canned answers for support agents."""
    from playbook import output

    playbook = _home().load_playbook(playbook_id)
    output.faq(playbook, _language(playbook, lang), _format(format))


@app.command()
def checklist(
    playbook_id: Annotated[str, typer.Argument(metavar="ID", help="The playbook.")],
    phase: Annotated[str | None, typer.Option("--phase", "-p", help="The phase (default: every phase).")] = None,
    lang: Annotated[str | None, typer.Option("--lang", "-l", help="The language (default: the first).")] = None,
    format: Format = None,
) -> None:
    """Print the operator's manual steps for a phase."""
    from playbook import output
    from playbook.errors import PlaybookError, did_you_mean

    playbook = _home().load_playbook(playbook_id)
    if phase is not None and phase not in playbook.phases:
        raise PlaybookError(f"playbook '{playbook.id}' has no phase '{phase}'{did_you_mean(phase, playbook.phases)}")
    output.checklist(playbook, phase, _language(playbook, lang), _format(format))


def _format(chosen: str | None) -> str | None:
    from playbook.errors import PlaybookError

    if chosen is not None and chosen not in ("md", "text", "json"):
        raise PlaybookError(f"--format must be md, text or json, not '{chosen}'")
    return chosen


def _language(playbook: Any, lang: str | None) -> str:
    from playbook.errors import PlaybookError

    chosen = lang or playbook.default_language
    if chosen not in playbook.languages:
        raise PlaybookError(f"playbook '{playbook.id}' is not written in '{chosen}'; languages: "
                            f"{', '.join(playbook.languages)}")
    return str(chosen)


@app.command()
def channels(
    check: Annotated[bool, typer.Option("--check", help="Also run each channel's online check "
                                                        "(credentials, reachability; nothing is published).")] = False,
    json_: Json = False,
) -> None:
    """List the home's channels: type, languages, limits, recipients and settings (secrets masked)."""
    from playbook import output
    from playbook.channel_list import list_channels

    listing = list_channels(_home(), check=check)
    output.channel_list(listing, as_json=json_)
    _exit(0 if all(c.check is None or c.check.ok for c in listing) else 1)


# -- incidents ---------------------------------------------------------------------------------------

def _confirm(yes: bool, as_json: bool) -> Any:
    from playbook import output

    if yes or as_json or not sys.stdin.isatty():
        return None
    return output.confirm_plan


def _publish(run: Callable[[Any], Any], *, as_json: bool, quiet: bool) -> None:
    """Run a publishing command under the live view, show its outcome(s) and exit 0 only if all went out."""
    from playbook import output
    from playbook.errors import ExitStatus

    observer = output.live_observer(as_json or quiet)
    try:
        result = run(observer)
    except KeyboardInterrupt:
        observer.stop()
        # Once the publishing has started, the hint names the incident: the commands work as printed.
        incident = getattr(observer, "incident", None)
        if incident is not None:
            STATE.told_interrupt = True
            output.error(f"interrupted: 'playbook status {incident}' shows what went out; "
                         f"'playbook resume {incident}' finishes")
        _exit(ExitStatus.INTERRUPTED)
    finally:
        observer.stop()

    outcomes = result if isinstance(result, list) else [result]
    output.outcomes(outcomes, as_json=as_json)
    if any(o.cancelled for o in outcomes):
        _exit(ExitStatus.DECLINED)
    _exit(ExitStatus.OK if all(o.result is None or o.result.ok for o in outcomes) else ExitStatus.DELIVERY_FAILED)


@app.command()
def trigger(
    playbook_id: Annotated[str, typer.Argument(metavar="ID", help="The playbook to run.")],
    var: Var = None,
    detected_at: Annotated[str | None, typer.Option(
        "--detected-at", metavar="WHEN", help="When the outage was detected: a time (05:20, 5h20: "
                                              "the latest past one, in the playbook's time zone), relative (-15m)"
                                              " or ISO 8601. Default: now.")] = None,
    dry_run: DryRun = False,
    drill: Annotated[bool, typer.Option("--drill", help="Publish for real through the sandbox channels of "
                                                        "channels.yaml 'drill:', marked as a drill.")] = False,
    new: Annotated[bool, typer.Option("--new", help="Open a second incident even if one is open.")] = False,
    yes: Yes = False,
    json_: Json = False,
) -> None:
    """Open an incident and publish the playbook's first phase on every channel."""
    from playbook.publishing import trigger as run_trigger
    from playbook.variables import parse_assignments

    given = parse_assignments(var or [])
    _publish(lambda observer: run_trigger(_session(), playbook_id, given, detected_at, dry_run=dry_run, drill=drill,
                                          new=new, confirm=_confirm(yes, json_), observer=observer),
             as_json=json_, quiet=dry_run)


@app.command()
def update(
    incident: IncidentId,
    phase: Annotated[str, typer.Option("--phase", "-p", help="The phase to publish.")],
    var: Var = None,
    again: Annotated[bool, typer.Option("--again", help="Publish the current phase once more (a new update).")]
    = False,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_: Json = False,
) -> None:
    """Publish a later phase of an open incident."""
    from playbook.publishing import publish_phase
    from playbook.variables import parse_assignments

    given = parse_assignments(var or [])
    _publish(lambda observer: publish_phase(_session(), incident, phase, given, again=again, dry_run=dry_run,
                                            confirm=_confirm(yes, json_), observer=observer),
             as_json=json_, quiet=dry_run)


@app.command()
def resolve(
    incident: IncidentId,
    var: Var = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_: Json = False,
) -> None:
    """Publish the playbook's last phase and close the incident."""
    from playbook.publishing import publish_phase
    from playbook.variables import parse_assignments

    given = parse_assignments(var or [])
    _publish(lambda observer: publish_phase(_session(), incident, None, given, resolve_it=True, dry_run=dry_run,
                                            confirm=_confirm(yes, json_), observer=observer),
             as_json=json_, quiet=dry_run)


@app.command()
def resume(
    incident: IncidentId,
    yes: Yes = False,
    json_: Json = False,
) -> None:
    """Retry what failed or was left unconfirmed; confirmed deliveries are never sent again."""
    from playbook.publishing import resume as run_resume

    _publish(lambda observer: run_resume(_session(), incident, observer=observer, confirm=_confirm(yes, json_)),
             as_json=json_, quiet=False)


@app.command()
def status(
    incident: Annotated[str | None, typer.Argument(metavar="[INCIDENT]", help="One incident (default: all open).")]
    = None,
    json_: Json = False,
) -> None:
    """Show open incidents: phase, deliveries, the window, the next update due."""
    from playbook import output
    from playbook.views import rehearsal_status
    from playbook.views import status as incident_status

    home = _home()
    views = incident_status(home, incident)
    rehearsals = rehearsal_status(home) if incident is None else []
    output.status(views, rehearsals, as_json=json_,
                  zones=_zones(home, {v.playbook for v in views} | {r.playbook for r in rehearsals}))


def _zones(home: Any, playbook_ids: set[str]) -> dict[str, str]:
    """Each playbook's time zone; a playbook that no longer loads is shown in UTC rather than not at all."""
    from playbook.errors import PlaybookError

    zones = {}
    for playbook_id in playbook_ids:
        try:
            zones[playbook_id] = str(home.load_playbook(playbook_id).timezone)
        except PlaybookError:
            continue
    return zones


@app.command()
def timeline(
    incident: IncidentId,
    format: Annotated[str, typer.Option("--format", "-f", help="md or json.")] = "md",
) -> None:
    """The post-incident review: who published what, the texts, variables, deadlines, cadence and the window."""
    from playbook import output
    from playbook.errors import PlaybookError
    from playbook.views import review

    if format not in ("md", "json"):
        raise PlaybookError(f"--format must be md or json, not '{format}'")
    output.timeline(review(_home(), incident), format)


@app.command()
def rehearse(
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="Playbooks (default: all).")] = None,
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
    from playbook import output
    from playbook.rehearsal_report import write_junit, write_report
    from playbook.rehearse import rehearse as run_rehearsal

    rehearsals = run_rehearsal(_home(), ids or [], offline=offline, check_links=check_links, drill=drill)
    written = []
    if junit is not None:
        write_junit(rehearsals, junit)
        written.append(junit)
    if report is not None:
        written += write_report(rehearsals, report)
    output.rehearsals(rehearsals, written)
    _exit(0 if all(r.ok for r in rehearsals) else 1)


def main() -> None:
    """Entry point: user mistakes become one line and exit 2; only bugs show a traceback (or --debug)."""
    from playbook.errors import PlaybookError

    try:
        app()
    except PlaybookError as exc:
        from playbook import output

        if STATE.debug:
            output.traceback(exc)
        output.error(str(exc))
        sys.exit(int(exc.exit_status))
    except SystemExit as exc:
        # typer turns Ctrl-C into a silent exit 130; mid-publish, the user must learn how to finish.
        if exc.code == 130 and not STATE.told_interrupt:
            from playbook import output

            output.error("interrupted: run 'playbook status' to see what went out, 'playbook resume' to finish")
        raise
    except Exception as exc:
        from playbook import output

        output.traceback(exc)
        sys.exit(70)
