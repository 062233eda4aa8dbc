"""What a publishing command did: the table of its deliveries, or its result as JSON for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING

from playbook.ledger.statuses import DeliveryStatus as S
from playbook.output.console import console, details, parts, table, write_json
from playbook.output.plans import plan_view, plan_zone
from playbook.output.times import iso, seconds, when

if TYPE_CHECKING:
    from rich.console import Console

    from playbook.commands.publishing import Outcome
    from playbook.engine import PostResult


def outcomes(items: Sequence[Outcome], as_json: bool) -> None:
    from rich.text import Text

    if as_json:
        results = [outcome_json(o) for o in items]
        write_json(results[0] if len(results) == 1 else {"posts": results})
        return
    out = console()
    for outcome in items:
        if outcome.dry_run:
            out.print(Text("Dry run: nothing was sent and nothing recorded.", style="bold yellow"))
            plan_view(outcome.plan, out)
            continue
        if outcome.cancelled or outcome.result is None:
            out.print("Declined: nothing was sent and nothing recorded.")
            continue
        result_table(outcome.result, plan_zone(outcome.plan), out, handed=outcome.handed_off is not None)
        if outcome.handed_off is not None:
            handed = outcome.handed_off
            count = f"{handed.deliveries:,} deliveries" if handed.deliveries != 1 else "1 delivery"
            out.print(Text(f"{count} left to the worker ({', '.join(handed.workers)}), which retries until "
                           f"{when(handed.until, plan_zone(outcome.plan))}.", style="bold yellow"))
            out.print(Text(f"  playbook status {outcome.result.incident}", style="bold"))
            out.print("shows how it goes; rerun with --wait to keep retrying here instead.")
        if outcome.closed:
            out.print(Text(f"Incident {outcome.result.incident} is resolved and closed.", style="green"))


def result_table(result: PostResult, tz: tzinfo, out: Console, *, handed: bool = False) -> None:
    from rich.text import Text

    parts(out, result.incident, result.phase, "DRILL" if result.drill else "", f"deadline {when(result.deadline, tz)}")
    # "took" is counted from the start of this run: in a drill, it is what the window budget is made of.
    # The zone labels the column, not each cell: a time never wraps under itself at 60 columns.
    drawn = table("channel", "lang", "status", f"at {result.deadline.astimezone(tz).tzname()}", "took", "window",
                  "tries")
    colours = {S.SENT: "green", S.ALREADY_SENT: "green", S.FAILED: "red", S.SKIPPED: "yellow", S.REJECTED: "yellow",
               S.SUPERSEDED: "yellow"}
    below: list[tuple[str, str, str]] = []
    for d in result.deliveries:
        window = "" if d.within_window is None else ("met" if d.within_window else "missed")
        detail = d.error or d.url or d.remote_id or d.note or ""
        if d.recipients:
            r = d.recipients
            detail = (f"{r['sent'] + r['already-sent']:,}/{r['total']:,} delivered"
                      + (f", {r['failed']:,} failed" if r["failed"] else "")
                      + (f", {r['rejected']:,} refused" if r["rejected"] else "")
                      + (f", {r['superseded']:,} superseded" if r.get("superseded") else "")
                      + (f": {d.error}" if d.error else ""))
        took = seconds(d.sent_at - result.started_at) if d.sent_at and d.status == S.SENT else ""
        at = when(d.sent_at, tz, label=False) if d.sent_at else ""
        tries = "" if d.recipients else str(d.attempts or "")
        drawn.add_row(d.channel, d.lang, Text(d.status, style=colours.get(d.status, "")), at, took, window, tries)
        if detail:
            below.append((d.channel, d.lang, detail))
    out.print(drawn)
    details(below, out)
    failed = [d for d in result.deliveries if d.status == S.FAILED]
    took = seconds(result.finished_at - result.started_at)
    if failed and not handed:
        out.print(Text(f"{len(failed)} delivery(ies) failed; fix the cause, then run:", style="bold red"))
        out.print(Text(f"  playbook resume {result.incident}", style="bold"))
        out.print("(confirmed deliveries are not sent again)")
    else:
        parts(out, f"Everything went out in {took}.", f"Incident: {result.incident}", style="green", sep=" ")


def outcome_json(outcome: Outcome) -> dict[str, object]:
    """One post as README's "Exit statuses" shows it: a dry-run or a declined post lists what would have gone."""
    plan = outcome.plan
    result = outcome.result
    if outcome.dry_run or outcome.cancelled or result is None:
        status = "dry-run" if outcome.dry_run else "cancelled"
        return {
            "incident": plan.incident_id if not outcome.dry_run else None,
            "phase": plan.phase,
            "ok": not outcome.cancelled,
            "drill": plan.drill,
            "supersedes": plan.supersedes,
            "deliveries": [
                {"channel": c.name, "lang": lang, "status": "skipped" if c.skipped else status,
                 "remote_id": None, "url": None, "sent_at": None, "within_window": None, "attempts": 0,
                 "error": c.skipped, "blocks": dict(c.messages[lang].blocks) if lang in c.messages else None,
                 "lengths": {m.block: str(m.measure) for m in c.measures.get(lang, [])},
                 **({"stands_in_for": c.stands_in_for} if c.stands_in_for else {})}
                for c in plan.channels for lang in c.languages
            ],
        }
    return {
        "incident": result.incident,
        "phase": result.phase,
        "ok": result.ok,
        "drill": result.drill,
        "closed": outcome.closed,
        "deadline": iso(result.deadline),
        "supersedes": plan.supersedes,
        "handed_off": None if outcome.handed_off is None else {
            "deliveries": outcome.handed_off.deliveries, "until": iso(outcome.handed_off.until),
            "workers": list(outcome.handed_off.workers)},
        "deliveries": [
            {"channel": d.channel, "lang": d.lang, "status": d.status, "remote_id": d.remote_id, "url": d.url,
             "sent_at": iso(d.sent_at), "within_window": d.within_window, "attempts": d.attempts,
             "error": d.error, **({"note": d.note} if d.note else {}),
             **({"recipients": d.recipients} if d.recipients else {})}
            for d in result.deliveries
        ],
    }
