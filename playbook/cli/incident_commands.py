"""Commands about incidents: publish (trigger, update, resolve, resume) and read (status, timeline)."""

# No `from __future__ import annotations` in the CLI: typer would eval() every annotation string of every
# command at each start, which doubles the time `playbook --help` spends building the commands.
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from playbook.cli.app import STATE, load_home, open_session
from playbook.cli.options import DryRun, IncidentId, Json, Var, Wait, Yes
from playbook.errors import ExitStatus

if TYPE_CHECKING:
    from playbook.commands.publishing import Outcome
    from playbook.output.live import ProgressView
    from playbook.planning.plan import PostPlan


def _confirm(yes: bool, as_json: bool) -> "Callable[[PostPlan], bool] | None":
    """The question before publishing, unless it was answered (--yes) or nobody is there to answer it."""
    from playbook.output.plans import confirm_plan

    if yes or as_json or not sys.stdin.isatty():
        return None
    return confirm_plan


def _publish(run: "Callable[[ProgressView], Outcome | list[Outcome]]", *, as_json: bool, quiet: bool) -> None:
    """Run a publishing command under the live view, show its outcome(s) and exit 0 only if all went out."""
    from playbook.output import results
    from playbook.output.console import error
    from playbook.output.live import live_observer

    observer = live_observer(as_json or quiet)
    try:
        result = run(observer)
    except KeyboardInterrupt:
        observer.stop()
        # Once the publishing has started, the hint names the incident: the commands work as printed.
        if observer.incident is not None:
            STATE.told_interrupt = True
            error(f"interrupted: 'playbook status {observer.incident}' shows what went out; "
                  f"'playbook resume {observer.incident}' finishes")
        raise typer.Exit(ExitStatus.INTERRUPTED) from None
    finally:
        observer.stop()

    outcomes = result if isinstance(result, list) else [result]
    results.outcomes(outcomes, as_json=as_json)
    if any(o.cancelled for o in outcomes):
        raise typer.Exit(ExitStatus.DECLINED)
    delivered = all(o.result is None or o.result.ok for o in outcomes)
    if delivered:
        raise typer.Exit(ExitStatus.OK)
    # Handed off only when everything that failed was: a failure nobody retries is a failure.
    handed = all(o.result is None or o.result.ok or o.handed_off is not None for o in outcomes)
    raise typer.Exit(ExitStatus.HANDED_OFF if handed else ExitStatus.DELIVERY_FAILED)


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
    wait: Wait = False,
    yes: Yes = False,
    json_: Json = False,
) -> None:
    """Open an incident and publish the playbook's first phase on every channel."""
    from playbook.commands.publishing import trigger as run_trigger
    from playbook.rendering.variables import parse_assignments

    given = parse_assignments(var or [])
    _publish(lambda observer: run_trigger(open_session(), playbook_id, given, detected_at, dry_run=dry_run,
                                          drill=drill, new=new, wait=wait, confirm=_confirm(yes, json_),
                                          observer=observer),
             as_json=json_, quiet=dry_run)


def update(
    incident: IncidentId,
    phase: Annotated[str, typer.Option("--phase", "-p", help="The phase to publish.")],
    var: Var = None,
    again: Annotated[bool, typer.Option("--again", help="Publish the current phase once more (a new update).")]
    = False,
    dry_run: DryRun = False,
    wait: Wait = False,
    yes: Yes = False,
    json_: Json = False,
) -> None:
    """Publish a later phase of an open incident."""
    _next_phase(incident, phase, var, again=again, resolve_it=False, dry_run=dry_run, wait=wait, yes=yes,
                json_=json_)


def resolve(
    incident: IncidentId,
    var: Var = None,
    dry_run: DryRun = False,
    wait: Wait = False,
    yes: Yes = False,
    json_: Json = False,
) -> None:
    """Publish the playbook's last phase and close the incident."""
    _next_phase(incident, None, var, again=False, resolve_it=True, dry_run=dry_run, wait=wait, yes=yes,
                json_=json_)


def _next_phase(incident: str, phase: str | None, var: list[str] | None, *, again: bool, resolve_it: bool,
                dry_run: bool, wait: bool, yes: bool, json_: bool) -> None:
    from playbook.commands.publishing import publish_phase
    from playbook.rendering.variables import parse_assignments

    given = parse_assignments(var or [])
    _publish(lambda observer: publish_phase(open_session(), incident, phase, given, again=again,
                                            resolve_it=resolve_it, dry_run=dry_run, wait=wait,
                                            confirm=_confirm(yes, json_),
                                            observer=observer),
             as_json=json_, quiet=dry_run)


def resume(
    incident: IncidentId,
    wait: Wait = False,
    yes: Yes = False,
    json_: Json = False,
) -> None:
    """Retry what failed or was left unconfirmed; confirmed deliveries are never sent again."""
    from playbook.commands.publishing import resume as run_resume

    _publish(lambda observer: run_resume(open_session(), incident, observer=observer, confirm=_confirm(yes, json_),
                                         wait=wait),
             as_json=json_, quiet=False)


def status(
    incident: Annotated[str | None, typer.Argument(metavar="[INCIDENT]", help="One incident (default: all open).")]
    = None,
    json_: Json = False,
) -> None:
    """Show open incidents: phase, deliveries, the window, the next update due."""
    from playbook.commands.views import status_report
    from playbook.output.incidents import status as show_status

    show_status(status_report(load_home(), incident), as_json=json_)


def timeline(
    incident: IncidentId,
    format: Annotated[str, typer.Option("--format", "-f", help="md or json.")] = "md",
) -> None:
    """The post-incident review: who published what, the texts, variables, deadlines, cadence and the window."""
    from playbook.commands.views import review
    from playbook.errors import PlaybookError
    from playbook.output.incidents import timeline as show_timeline

    if format not in ("md", "json"):
        raise PlaybookError(f"--format must be md or json, not '{format}'")
    show_timeline(review(load_home(), incident), format)
