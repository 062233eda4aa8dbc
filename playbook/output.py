"""Everything the terminal shows: the only module that imports rich. Secrets are masked on the way out."""

from __future__ import annotations

import json
import re
import sys
import traceback as tb
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from playbook import secrets
from playbook.timeparse import format_duration


class _Masked:
    """A stream that masks every known secret in what is written to it."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(secrets.redact(text))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")


def _console(stderr: bool = False) -> Console:
    # Looked up at each call so that tests capturing sys.stdout see the output.
    stream = sys.stderr if stderr else sys.stdout
    # An error is one line whatever the terminal's width, so that it can be read, grepped and copied whole.
    return Console(file=cast(IO[str], _Masked(stream)), highlight=False, soft_wrap=stderr)


def _json(data: Any) -> None:
    sys.stdout.write(secrets.redact(json.dumps(data, ensure_ascii=False, indent=2, default=str)) + "\n")


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def error(message: str) -> None:
    # One line whatever the message quotes (a name with a line break in it), so it can be read and grepped whole.
    _console(stderr=True).print(Text(f"error: {_one_line(message)}", style="bold red"))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _inert(text: str) -> str:
    """Text from outside (a provider's answer, a file) with its control characters shown, never obeyed."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def _one_line(text: str) -> str:
    """An error as one line, however many the text it quotes has."""
    return _inert(text).replace("\n", "\\n")


def traceback(exc: BaseException) -> None:
    sys.stderr.write(secrets.redact("".join(tb.format_exception(exc))))


# -- the home --------------------------------------------------------------------------------------------

def initialised(written: list[Path], directory: Path) -> None:
    console = _console()
    console.print(f"Created a playbook home in [bold]{escape(str(directory))}[/] ({len(written)} files).")
    from playbook.starter import next_steps

    # Whole lines, never wrapped: each is a command to copy as it is.
    console.print("Next:")
    for command in next_steps(directory):
        console.print(f"  {escape(command)}", soft_wrap=True)


def playbook_list(playbooks: Sequence[Any]) -> None:
    table = Table("id", "name", "languages", "phases", "window", "updates every", title="Playbooks")
    for p in playbooks:
        table.add_row(p.id, Text(p.name[p.default_language]), ", ".join(p.languages), " → ".join(p.phases),
                      format_duration(p.window), format_duration(p.update_every))
    _console().print(table if playbooks else "No playbooks in this home (playbooks/*.yaml).")


def playbook_detail(p: Any) -> None:
    console = _console()
    console.print(f"[bold]{escape(p.id)}[/]: " + " / ".join(escape(p.name[lang]) for lang in p.languages))
    if p.description:
        console.print(escape(p.description[p.default_language]))
    console.print(f"Languages: {', '.join(p.languages)} (default {p.default_language}) · time zone {p.timezone}")
    console.print(f"First notice due {format_duration(p.window)} after detection · updates every "
                  f"{format_duration(p.update_every)} · rehearse every {format_duration(p.rehearse_every)}")
    phases = Table("phase", "channels", title="Phases (trigger publishes the first)")
    for name, phase in p.phases.items():
        phases.add_row(name, ", ".join(phase.channels))
    console.print(phases)
    if p.vars:
        variables = Table("variable", "default", "required", "description", title="Variables (--var name=value)")
        for name, spec in p.vars.items():
            variables.add_row(name, Text(spec.default or ""), "yes" if spec.required else "",
                              Text(spec.description or ""))
        console.print(variables)
    console.print(f"{len(p.faq)} FAQ entries · checklist for {', '.join(p.checklist) or 'no phase'}")


def validation(report: Any) -> None:
    console = _console()
    if report.checks:
        table = Table("playbook", "phase", "lang", "channel", "block", "length", title="Messages against limits")
        for c in report.checks:
            style = "" if c.measure.ok else "bold red"
            table.add_row(c.playbook, c.phase, c.lang, c.channel, c.block, Text(str(c.measure), style=style))
        console.print(table)
    for warning in report.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    err = _console(stderr=True)
    for problem in report.problems:
        err.print(Text(f"error: {_one_line(str(problem))}", style="bold red"))
    if report.ok:
        console.print(Text(f"✓ {len(report.playbooks)} playbook(s) valid: {', '.join(report.playbooks)}",
                           style="green"))
    else:
        err.print(Text(f"✗ {len(report.problems)} problem(s)", style="bold red"))


def _blocks(message: Any, measures: Sequence[Any] = ()) -> Group:
    by_block = {m.block: m.measure for m in measures}
    parts: list[Any] = []
    for name, text in message.blocks.items():
        measure = by_block.get(name)
        label = f"{name}" + (f"  ({measure})" if measure else "")
        style = "red" if measure and not measure.ok else "cyan"
        parts.append(Panel(Text(text), title=label, title_align="left", border_style=style))
    return Group(*parts)


def preview(p: Any) -> None:
    console = _console()
    console.print(f"[bold]{escape(p.playbook)}[/] · phase [bold]{escape(p.phase)}[/] · {p.lang} · "
                  f"{escape(p.template)}")
    if not p.channels:
        console.print(_blocks(p.message))
    for c in p.channels:
        console.print(Text(f"→ channel {c.channel} ({c.type})", style="bold"))
        console.print(_blocks(c.message, c.measures))


def faq(p: Any, lang: str) -> None:
    console = _console()
    console.print(Text(p.name[lang], style="bold"))
    for n, entry in enumerate(p.faq, start=1):
        console.print(Text(f"\n{n}. {entry.question[lang]}", style="bold"))
        console.print(Text(entry.answer[lang]))


def checklist(p: Any, phase: str | None, lang: str) -> None:
    console = _console()
    for name in [phase] if phase else list(p.phases):
        steps = p.checklist.get(name, {}).get(lang, [])
        console.print(Text(f"{name}", style="bold"))
        if not steps:
            console.print("  (no manual steps)")
        for step in steps:
            console.print(Text(f"  [ ] {step}"))


def channel_list(listing: Sequence[Any], as_json: bool) -> None:
    if as_json:
        _json({"channels": [c.as_json() for c in listing]})
        return
    table = Table("channel", "type", "languages", "limits", "recipients", "settings", "check",
                  title="Channels", show_lines=True)
    for c in listing:
        check = "" if c.check is None else ("✓ " if c.check.ok else "✗ ") + c.check.detail
        table.add_row(c.name, c.type, ", ".join(c.languages), c.limits,
                      "" if c.recipients is None else f"{c.recipients:,}",
                      Text("\n".join(f"{k}: {v}" for k, v in c.settings.items())),
                      Text(_inert(check), style="green" if c.check and c.check.ok else "red"))
    console = _console()
    console.print(table)
    # Once per type: the question an on-call marketer asks after a crash, before running `resume`.
    crashes = {c.type: c.unconfirmed for c in listing}
    if crashes:
        console.print("If publishing stops mid-send (a crash, kill -9), `playbook resume` finishes it:")
        for kind, meaning in crashes.items():
            console.print(Text(f"  {kind}: {meaning}"))


# -- publishing ------------------------------------------------------------------------------------------

def confirm_plan(plan: Any) -> bool:
    console = _console()
    _plan_table(plan, console)
    answer = console.input(f"Publish phase [bold]{escape(plan.phase)}[/] of [bold]{escape(plan.playbook)}[/]"
                           " now? [y/N] ")
    return answer.strip().lower() in ("y", "yes", "o", "oui")


def _plan_table(plan: Any, console: Console) -> None:
    title = f"{plan.playbook} · {plan.phase}" + (" · DRILL" if plan.drill else "")
    table = Table("channel", "type", "lang", "block", "length", "recipients", title=title, show_lines=True)
    for c in plan.channels:
        # In a drill, the sandbox says which live channel it rehearses.
        name = f"{c.name}\n(for {c.stands_in_for})" if c.stands_in_for else c.name
        if c.skipped:
            table.add_row(name, c.type, "-", "", Text(f"skipped: {c.skipped}", style="yellow"), "")
            continue
        for lang in c.languages:
            measures = c.measures.get(lang, [])
            lengths = "\n".join(f"{m.block}: {m.measure}" for m in measures) or "-"
            blocks = ", ".join(c.messages[lang].blocks) if lang in c.messages else ""
            per_lang = c.recipients_by_lang.get(lang)
            table.add_row(name, c.type, lang, blocks, lengths, "" if per_lang is None else f"{per_lang:,}")
    console.print(table)
    console.print(f"Deadline: {_when(plan.deadline)} ({_left(plan.deadline)})")


def _left(deadline: datetime) -> str:
    remaining = deadline - datetime.now(UTC)
    if remaining.total_seconds() < 0:
        return f"missed by {format_duration(-remaining)}"
    return f"{format_duration(remaining)} left"


class LiveView:
    """The live table of a trigger: one row per channel and language, and the countdown to the deadline.

    Events only update counters; rich draws the table four times a second (a 100,000-recipient list sends
    far more events than a terminal can show).
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.plan: Any = None
        self.live: Live | None = None

    @staticmethod
    def _row(total: int = 0, expected: int = 0) -> dict[str, Any]:
        return {"status": "pending", "attempts": 0, "error": "", "url": "", "done": 0, "total": total,
                "expected": expected, "since": datetime.now(UTC), "took": None}

    def planned(self, plan: Any, totals: dict[tuple[str, str], int]) -> None:
        self.plan = plan
        expected = {(c.name, lang): n for c in plan.channels for lang, n in c.recipients_by_lang.items()}
        for key, total in totals.items():
            self.rows[key] = self._row(total, expected.get(key, 0))
        self.live = Live(console=_console(), get_renderable=self._render, refresh_per_second=4, transient=False)
        self.live.start()

    def event(self, event: Any) -> None:
        row = self.rows.setdefault((event.channel, event.lang), self._row())
        if event.recipient is not None:
            # A recipient settled by an earlier run comes without a pending event (and 0 attempts): count it too.
            if event.status == "pending" or (event.status in ("already-sent", "rejected") and not event.attempts):
                row["total"] += 1
            if event.status in ("sent", "already-sent", "failed", "rejected"):
                row["done"] += 1
                if event.status == "failed":
                    row["error"] = event.error or ""
            row["status"] = "sending" if row["done"] < max(row["total"], row["expected"]) else "done"
        else:
            row.update(status=event.status, attempts=event.attempts, error=event.error or "", url=event.url or "")
            if event.status in ("sent", "failed", "already-sent"):
                row["took"] = datetime.now(UTC) - row["since"]

    def stop(self) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.stop()
            self.live = None

    def _render(self) -> Table:
        deadline = self.plan.deadline if self.plan else None
        title = f"Publishing · deadline {_when(deadline)} ({_left(deadline)})" if deadline else "Publishing"
        table = Table("channel", "lang", "status", "progress", "detail", title=title)
        colours = {"sent": "green", "already-sent": "green", "failed": "red", "retrying": "yellow",
                   "sending": "cyan", "done": "green"}
        for (channel, lang), row in self.rows.items():
            total = max(row["total"], row["expected"])
            if total > 1 or row["done"] > 1:
                progress: Any = Table.grid(padding=(0, 1))
                progress.add_row(ProgressBar(total=max(total, 1), completed=row["done"], width=20),
                                 f"{row['done']:,}/{total:,}")
                detail = row["error"] or _pace(row["done"], total, row["since"], deadline)
            else:
                progress = _seconds(row["took"]) if row["took"] else ""
                detail = row["error"] or row["url"] or (f"attempt {row['attempts']}" if row["attempts"] > 1 else "")
            table.add_row(channel, lang, Text(row["status"], style=colours.get(row["status"], "")), progress,
                          detail)
        return table


def _pace(done: int, total: int, since: datetime, deadline: datetime | None) -> str:
    """Messages per second so far, and whether the rest will be out before the deadline at that pace."""
    elapsed = (datetime.now(UTC) - since).total_seconds()
    if not done or elapsed <= 0:
        return ""
    rate = done / elapsed
    if done >= total:
        return f"{rate:,.1f}/s"
    left = timedelta(seconds=(total - done) / rate)
    pace = f"{rate:,.1f}/s, {format_duration(left)} left"
    if deadline is not None and done < total:
        finish = datetime.now(UTC) + left
        pace += " (before the deadline)" if finish <= deadline else " (AFTER the deadline)"
    return pace


class _Quiet:
    def planned(self, plan: Any, totals: dict[tuple[str, str], int]) -> None:
        return None

    def event(self, event: Any) -> None:
        return None

    def stop(self) -> None:
        return None


def live_observer(quiet: bool) -> Any:
    """A live view for a terminal; nothing for --json, dry-runs and pipes (the final table suffices)."""
    if quiet or not sys.stdout.isatty():
        return _Quiet()
    return LiveView()


def outcomes(items: Sequence[Any], as_json: bool) -> None:
    if as_json:
        results = [_outcome_json(o) for o in items]
        _json(results[0] if len(results) == 1 else {"posts": results})
        return
    console = _console()
    for outcome in items:
        if outcome.dry_run:
            console.print(Text("Dry run: nothing was sent and nothing recorded.", style="bold yellow"))
            _plan_table(outcome.plan, console)
            for c in outcome.plan.channels:
                for lang, message in c.messages.items():
                    sample = " · sample for one recipient" if c.publisher.per_recipient else ""
                    console.print(Text(f"→ {c.name} ({c.type}) · {lang}{sample}", style="bold"))
                    console.print(_blocks(message, c.measures.get(lang, [])))
            continue
        if outcome.cancelled:
            console.print("Cancelled: nothing was sent.")
            continue
        _result_table(outcome.result, console)
        if outcome.closed:
            console.print(Text(f"Incident {outcome.result.incident} is resolved and closed.", style="green"))


def _result_table(result: Any, console: Console) -> None:
    # "took" is counted from the start of this run: in a drill, it is what the window budget is made of.
    table = Table("channel", "lang", "status", "took", "window", "tries", "link / error",
                  title=f"{result.incident} · {result.phase}" + (" · DRILL" if result.drill else ""))
    colours = {"sent": "green", "already-sent": "green", "failed": "red", "skipped": "yellow", "rejected": "yellow"}
    for d in result.deliveries:
        window = "" if d.within_window is None else ("met" if d.within_window else "missed")
        detail = d.error or d.url or d.remote_id or d.note or ""
        if d.recipients:
            r = d.recipients
            detail = (f"{r['sent'] + r['already-sent']:,}/{r['total']:,} delivered"
                      + (f", {r['failed']:,} failed" if r["failed"] else "")
                      + (f", {r['rejected']:,} refused" if r["rejected"] else "")
                      + (f": {d.error}" if d.error else ""))
        took = _seconds(d.sent_at - result.started_at) if d.sent_at and d.status == "sent" else ""
        tries = "" if d.recipients else str(d.attempts or "")
        table.add_row(d.channel, d.lang, Text(d.status, style=colours.get(d.status, "")), took,
                      window, tries, Text(_inert(detail), overflow="fold"))
    console.print(table)
    failed = [d for d in result.deliveries if d.status == "failed"]
    took = _seconds(result.finished_at - result.started_at)
    if failed:
        console.print(Text(f"{len(failed)} delivery(ies) failed; fix the cause, then run "
                           f"'playbook resume {result.incident}' (confirmed deliveries are not repeated).",
                           style="bold red"))
    else:
        console.print(Text(f"Everything went out in {took}. Incident: {result.incident}", style="green"))


def _seconds(elapsed: timedelta) -> str:
    # Most deliveries take under a second: "0s" would read as if nothing had been timed.
    return f"{elapsed.total_seconds():.1f}s" if elapsed.total_seconds() < 60 else format_duration(elapsed)


def _outcome_json(outcome: Any) -> dict[str, Any]:
    plan = outcome.plan
    if outcome.dry_run or outcome.cancelled:
        status = "dry-run" if outcome.dry_run else "cancelled"
        return {
            "incident": plan.incident_id if not outcome.dry_run else None,
            "phase": plan.phase,
            "ok": not outcome.cancelled,
            "drill": plan.drill,
            "deliveries": [
                {"channel": c.name, "lang": lang, "status": "skipped" if c.skipped else status,
                 "remote_id": None, "url": None, "sent_at": None, "within_window": None, "attempts": 0,
                 "error": c.skipped, "blocks": dict(c.messages[lang].blocks) if lang in c.messages else None,
                 "lengths": {m.block: str(m.measure) for m in c.measures.get(lang, [])},
                 **({"stands_in_for": c.stands_in_for} if c.stands_in_for else {})}
                for c in plan.channels for lang in c.languages
            ],
        }
    result = outcome.result
    return {
        "incident": result.incident,
        "phase": result.phase,
        "ok": result.ok,
        "drill": result.drill,
        "closed": outcome.closed,
        "deadline": _iso(result.deadline),
        "deliveries": [
            {"channel": d.channel, "lang": d.lang, "status": d.status, "remote_id": d.remote_id, "url": d.url,
             "sent_at": _iso(d.sent_at), "within_window": d.within_window, "attempts": d.attempts,
             "error": d.error, **({"note": d.note} if d.note else {}),
             **({"recipients": d.recipients} if d.recipients else {})}
            for d in result.deliveries
        ],
    }


# -- the ledger ------------------------------------------------------------------------------------------

def status(views: Sequence[Any], rehearsals: Sequence[Any], as_json: bool) -> None:
    if as_json:
        _json({"incidents": [v.as_json() for v in views], "rehearsals": [r.as_json() for r in rehearsals]})
        return
    console = _console()
    if not views:
        console.print("No open incident.")
    for r in rehearsals:
        if r.last_at is None:
            console.print(Text(f"warning: playbook '{r.playbook}' has never been rehearsed: run "
                               f"'playbook rehearse {r.playbook}'", style="yellow"))
            continue
        result = "passed" if r.passed else "FAILED"
        line = f"playbook '{r.playbook}' last rehearsed {_when(r.last_at)}: {result}"
        if r.stale:
            console.print(Text(f"warning: {line}, more than {format_duration(r.every)} ago: rehearse it",
                               style="yellow"))
        else:
            console.print(Text(line, style="green" if r.passed else "bold red"))
    for v in views:
        state = "open" if v.open else f"closed {_when(v.closed_at)}"
        console.print(Text(f"{v.id} · {v.playbook} · phase {v.phase} · {state}" + (" · DRILL" if v.drill else ""),
                           style="bold"))
        if v.first_notice_at:
            verdict = "met" if v.window_met else "missed"
            window = (f"first notice at {_when(v.first_notice_at)}: window {verdict} "
                      f"({format_duration(v.first_notice_at - v.detected_at)} after detection, "
                      f"window {format_duration(v.window)})")
        else:
            window = f"no notice out yet: deadline {_when(v.deadline)} ({_left(v.deadline)})"
        console.print(f"  detected {_when(v.detected_at)} · {window}")
        if v.next_update_due:
            late = v.next_update_due < datetime.now(UTC)
            console.print(Text(f"  next update due {_when(v.next_update_due)}" + (" (overdue)" if late else ""),
                               style="bold red" if late else ""))
        _delivery_table(v.deliveries, console)


def _delivery_table(deliveries: Sequence[Any], console: Console) -> None:
    table = Table("post", "phase", "channel", "lang", "status", "sent at", "window", "link / error")
    for d in deliveries:
        detail = d.error or d.url or d.remote_id or d.note or ""
        if d.recipients:
            detail = ", ".join(f"{n:,} {s}" for s, n in d.recipients.items() if s != "total")
        window = "" if d.within_window is None else ("met" if d.within_window else "missed")
        # A provider's words are text, not markup: "[/x]" in an answer must not break the table.
        table.add_row(str(d.seq), d.phase, d.channel, d.lang, d.status, _when(d.sent_at), window, Text(_inert(detail)))
    console.print(table)


def timeline(review: dict[str, Any], fmt: str) -> None:
    """The post-incident review (playbook.review) as JSON or Markdown; secrets masked either way."""
    if fmt == "json":
        _json(review)
        return
    from playbook.review import markdown

    sys.stdout.write(secrets.redact(markdown(review)))


# -- rehearsals ------------------------------------------------------------------------------------------

def rehearsals(items: Sequence[Any], written: Sequence[Path]) -> None:
    from playbook.rehearsal_report import verdict

    console = _console()
    for r in items:
        table = Table("result", "check", "detail", title=f"Rehearsal of {r.playbook}", show_lines=False)
        order = sorted(r.checks, key=lambda c: (c.ok or c.skipped, c.skipped))
        for c in order:
            mark = Text("skip", style="dim") if c.skipped else (Text("pass", style="green") if c.ok
                                                                else Text("FAIL", style="bold red"))
            table.add_row(mark, Text(f"{c.group}: {c.name}"), Text(_inert(c.detail)))
        console.print(table)
        console.print(Text(verdict(r), style="green" if r.ok else "bold red"))
    for path in written:
        console.print(f"Wrote {escape(str(path))}")
