"""Everything the terminal shows: the only module that imports rich. Secrets are masked on the way out."""

from __future__ import annotations

import json
import re
import sys
import traceback as tb
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import IO, Any, cast

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
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
    # Lines are never wrapped by us (the terminal folds them on screen): an id, a URL, a command or an error
    # stays whole, to be copied or grepped. Tables still fit the width; their links are printed below them.
    return Console(file=cast(IO[str], _Masked(stream)), highlight=False, soft_wrap=True)


def _json(data: Any) -> None:
    sys.stdout.write(secrets.redact(json.dumps(data, ensure_ascii=False, indent=2, default=str)) + "\n")


def zone(name: str | None) -> tzinfo:
    """The playbook's time zone, in which the terminal shows every time; UTC when it is unknown."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _when(moment: datetime | None, tz: tzinfo = UTC, seconds: bool = False, *, label: bool = True) -> str:
    """`05:32 CET` today, `2026-11-29 05:32 CET` another day: the playbook's clock, labelled (unless a table's
    heading carries the label)."""
    if moment is None:
        return "-"
    local = moment.astimezone(tz)
    shown = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    if local.date() != datetime.now(tz).date():
        shown = f"{local:%Y-%m-%d} {shown}"
    return f"{shown} {local.tzname()}" if label else shown


def _plan_zone(plan: Any) -> tzinfo:
    context = getattr(plan, "context", None)
    return zone(getattr(context, "timezone", None))


def _parts(console: Console, *parts: str, style: str = "bold", sep: str = " · ") -> None:
    """Parts joined by `sep`, a line broken only between two parts: an id or a time is never cut in two."""
    lines: list[str] = []
    for part in (p for p in parts if p):
        if lines and len(lines[-1]) + len(sep) + len(part) <= console.width:
            lines[-1] += sep + part
        else:
            lines.append(part)
    for line in lines:
        console.print(Text(_inert(line), style=style))


def _table(*columns: str) -> Table:
    """A compact table that fits 60 columns; whatever must stay whole (links, errors) goes below it."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
    for name in columns:
        # Words that wrap read as two (a time under its zone, "already-" over "sent"): only free text may.
        table.add_column(name, no_wrap=name not in ("length", "detail"))
    return table


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def error(message: str) -> None:
    # One line whatever the message quotes (a name with a line break in it), so it can be read and grepped whole.
    _console(stderr=True).print(Text(f"error: {_one_line(message)}", style="bold red"))


# Controls but tab and line feed (ESC would start a sequence that retitles or clears the terminal, CR would
# overwrite the line), and what no terminal can print: lone surrogates, U+FFFE and U+FFFF.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _inert(text: str) -> str:
    """Text from outside (a file, a CSV cell, a template, a provider): control characters shown, never obeyed."""
    return _CONTROL.sub(lambda found: ascii(found.group())[1:-1], text)


def _one_line(text: str) -> str:
    """An error as one line, however many the text it quotes has."""
    return _inert(text).replace("\n", "\\n")


def traceback(exc: BaseException) -> None:
    sys.stderr.write(secrets.redact(_inert("".join(tb.format_exception(exc)))))


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
    console = _console()
    if not playbooks:
        console.print("No playbooks in this home (playbooks/*.yaml).")
    # A block per playbook, not a table: the id is what the operator types next, and a table would cut it.
    for p in playbooks:
        _parts(console, p.id, p.name[p.default_language])
        console.print(Text(f"  {', '.join(p.languages)} · window {format_duration(p.window)} · updates every "
                           f"{format_duration(p.update_every)}"))
        console.print(Text(f"  phases: {' → '.join(p.phases)}"))


def playbook_detail(p: Any) -> None:
    console = _console()
    console.print(f"[bold]{escape(p.id)}[/]: " + " / ".join(escape(_inert(p.name[lang])) for lang in p.languages))
    if p.description:
        console.print(Text(_inert(p.description[p.default_language])))
    console.print(f"Languages: {', '.join(p.languages)} (default {p.default_language}) · time zone {p.timezone}")
    console.print(f"First notice due {format_duration(p.window)} after detection · updates every "
                  f"{format_duration(p.update_every)} · rehearse every {format_duration(p.rehearse_every)}")
    phases = Table("phase", "channels", title="Phases (trigger publishes the first)")
    for name, phase in p.phases.items():
        phases.add_row(name, ", ".join(phase.channels))
    console.print(phases)
    if p.vars:
        console.print("Variables (--var name=value):")
        for name, spec in p.vars.items():
            line = Text(f"  {name}", style="bold")
            line += Text((" (required)" if spec.required else "")
                         + (f" = {_inert(spec.default)}" if spec.default else "")
                         + (f": {_inert(spec.description)}" if spec.description else ""))
            console.print(line)
    console.print(f"{len(p.faq)} FAQ entries · checklist for {', '.join(p.checklist) or 'no phase'}")


def validation(report: Any) -> None:
    console = _console()
    if report.checks:
        console.print(Text("Messages against limits", style="bold"))
        # One table per playbook and phase, under its name: five columns fit 60, the ids stay whole.
        groups: dict[tuple[str, str], list[Any]] = {}
        for c in report.checks:
            groups.setdefault((c.playbook, c.phase), []).append(c)
        for (playbook, phase), checks in groups.items():
            _parts(console, playbook, phase)
            table = _table("lang", "channel", "block", "length")
            for c in checks:
                style = "" if c.measure.ok else "bold red"
                table.add_row(c.lang, c.channel, c.block, Text(str(c.measure), style=style))
            console.print(table)
    for warning in report.warnings:
        console.print(Text(f"warning: {_inert(warning)}", style="yellow"))
    err = _console(stderr=True)
    for problem in report.problems:
        err.print(Text(f"error: {_one_line(str(problem))}", style="bold red"))
    if report.ok:
        console.print(Text(f"✓ {len(report.playbooks)} playbook(s) valid: {', '.join(report.playbooks)}",
                           style="green"))
    else:
        err.print(Text(f"✗ {len(report.problems)} problem(s)", style="bold red"))


def _said(entries: Sequence[tuple[str, Any, Sequence[Any]]], console: Console, *, html: bool) -> None:
    """Each distinct text once per language, with the channels that send it and its length against each limit.

    `entries` are (channel label, message, measures). Without `html`, an HTML block is named, not printed: it is
    the body again, in markup.
    """
    said: dict[tuple[str, str, str], list[tuple[str, Any]]] = {}
    for label, message, measures in entries:
        by_block = {m.block: m.measure for m in measures}
        for block, text in message.blocks.items():
            said.setdefault((message.lang, block, text), []).append((label, by_block.get(block)))
    languages = list(dict.fromkeys(lang for lang, _, _ in said))
    lang = None
    for (text_lang, block, text), receivers in sorted(said.items(), key=lambda item: languages.index(item[0][0])):
        if text_lang != lang:
            lang = text_lang
            console.print(Text(f"── {lang} ──", style="bold"))
        names = ", ".join(f"{label} ({measure})" if measure else label for label, measure in receivers)
        too_long = any(measure is not None and not measure.ok for _, measure in receivers)
        console.print(Text(f"{block} → {names}", style="bold red" if too_long else "cyan"))
        if block == "html" and not html:
            console.print(Text(f"  (the body as HTML, {len(text):,} characters)", style="dim"))
            continue
        console.print(Text("\n".join(f"  {_inert(line)}" if line else "" for line in text.split("\n"))))


def preview(p: Any) -> None:
    console = _console()
    console.print(Text(f"{p.playbook} · phase {p.phase} · {p.lang} · {p.template}", style="bold"))
    if not p.channels:
        _said([("(every block)", p.message, [])], console, html=True)
        return
    _said([(f"{c.channel}", c.message, c.measures) for c in p.channels], console, html=True)


def _format(fmt: str | None) -> str:
    """md when the output goes to a file or a pipe (pasted elsewhere), text on a terminal."""
    return fmt or ("text" if sys.stdout.isatty() else "md")


def faq(p: Any, lang: str, fmt: str | None = None) -> None:
    fmt = _format(fmt)
    if fmt == "json":
        _json({"playbook": p.id, "lang": lang, "faq": [
            {"question": e.question[lang], "answer": e.answer[lang]} for e in p.faq]})
        return
    if fmt == "md":
        parts = [f"# {p.name[lang]}"]
        parts += [f"## {n}. {e.question[lang]}\n\n{e.answer[lang].strip()}" for n, e in enumerate(p.faq, start=1)]
        sys.stdout.write(secrets.redact(_inert("\n\n".join(parts)) + "\n"))
        return
    console = _console()
    console.print(Text(_inert(p.name[lang]), style="bold"))
    for n, entry in enumerate(p.faq, start=1):
        console.print(Text(f"\n{n}. {_inert(entry.question[lang])}", style="bold"))
        console.print(Text(_inert(entry.answer[lang])))


def checklist(p: Any, phase: str | None, lang: str, fmt: str | None = None) -> None:
    fmt = _format(fmt)
    phases = {name: p.checklist.get(name, {}).get(lang, []) for name in ([phase] if phase else list(p.phases))}
    if fmt == "json":
        _json({"playbook": p.id, "lang": lang, "phases": phases})
        return
    if fmt == "md":
        parts = [f"## {name}\n\n" + ("\n".join(f"- [ ] {step}" for step in steps) or "(no manual steps)")
                 for name, steps in phases.items()]
        sys.stdout.write(secrets.redact(_inert("\n\n".join(parts)) + "\n"))
        return
    console = _console()
    for name, steps in phases.items():
        console.print(Text(f"{name}", style="bold"))
        if not steps:
            console.print("  (no manual steps)")
        for step in steps:
            console.print(Text(_inert(f"  [ ] {step}")))


def channel_list(listing: Sequence[Any], as_json: bool) -> None:
    if as_json:
        _json({"channels": [c.as_json() for c in listing]})
        return
    console = _console()
    # One block per channel rather than a table: settings hold URLs and paths, which a table would cut.
    for c in listing:
        _parts(console, c.name, c.type, ", ".join(c.languages))
        console.print(Text(f"  limits: {c.limits}"))
        if c.recipients is not None:
            console.print(Text(f"  {c.recipients:,} recipient(s)"))
        for key, value in c.settings.items():
            console.print(Text(f"  {key}: {_inert(str(value))}"))
        if c.check is not None:
            console.print(Text(f"  check: {'✓' if c.check.ok else '✗'} {_inert(c.check.detail)}",
                               style="green" if c.check.ok else "red"))
    # Once per type: the question an on-call marketer asks after a crash, before running `resume`.
    crashes = {c.type: c.unconfirmed for c in listing}
    if crashes:
        console.print("If publishing stops mid-send (a crash, kill -9), `playbook resume` finishes it:")
        for kind, meaning in crashes.items():
            console.print(Text(f"  {kind}: {meaning}"))


# -- publishing ------------------------------------------------------------------------------------------

def confirm_plan(plan: Any) -> bool:
    """The words about to go out, where, to how many and by when; then `Publish? [y/N]` (Enter is no)."""
    console = _console()
    _plan_view(plan, console)
    # "[y/N]" is written escaped: as rich markup it would vanish.
    try:
        answer = console.input(f"[bold]{escape('Publish? [y/N]')}[/] ")
    except EOFError:  # Ctrl-D: no answer is a no
        console.print()
        return False
    return answer.strip().lower() in ("y", "yes", "o", "oui")


def _plan_view(plan: Any, console: Console) -> None:
    tz = _plan_zone(plan)
    _parts(console, plan.playbook, f"phase {plan.phase}", "DRILL" if plan.drill else "")
    console.print(f"Deadline: {_when(plan.deadline, tz)} ({_left(plan.deadline)})")
    entries: list[tuple[str, Any, Sequence[Any]]] = []
    for c in plan.channels:
        # In a drill, the sandbox says which live channel it rehearses.
        label = f"{c.name} (for {c.stands_in_for})" if c.stands_in_for else c.name
        if c.skipped:
            console.print(Text(f"Skipped: {label}: {c.skipped}", style="yellow"))
            continue
        if c.recipients_by_lang:
            counts = ", ".join(f"{lang} {n:,}" for lang, n in c.recipients_by_lang.items())
            total = sum(c.recipients_by_lang.values())
            console.print(f"{label} ({c.type}): {total:,} recipient(s): {counts}")
        sample = " (sample)" if c.publisher.per_recipient else ""
        entries += [(label + sample, c.messages[lang], c.measures.get(lang, [])) for lang in c.languages
                    if lang in c.messages]
    _said(entries, console, html=False)


def _left(deadline: datetime) -> str:
    remaining = deadline - datetime.now(UTC)
    if remaining.total_seconds() < 0:
        return f"missed by {format_duration(-remaining)}"
    return f"{format_duration(remaining)} left"


class LiveView:
    """The live table of a trigger: one row per channel and language, and the countdown to the deadline.

    Events only update counters; rich draws the table four times a second (a 100,000-recipient list sends
    far more events than a terminal can show). The view is transient: the final table replaces it. What a
    `console` channel prints goes through rich's redirection of stdout and stderr, above the view.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.plan: Any = None
        self.live: Live | None = None

    @staticmethod
    def _row(total: int = 0, expected: int = 0) -> dict[str, Any]:
        return {"status": "pending", "attempts": 0, "error": "", "url": "", "done": 0, "total": total,
                "expected": expected, "since": datetime.now(UTC), "took": None, "retry_at": None}

    def planned(self, plan: Any, totals: dict[tuple[str, str], int]) -> None:
        self.plan = plan
        self.incident: str | None = plan.incident_id
        expected = {(c.name, lang): n for c in plan.channels for lang, n in c.recipients_by_lang.items()}
        for key, total in totals.items():
            self.rows[key] = self._row(total, expected.get(key, 0))
        self.live = Live(console=_console(), get_renderable=self._render, refresh_per_second=4, transient=True,
                         redirect_stdout=True, redirect_stderr=True)
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
            if event.status == "retrying":
                row.update(error=event.error or "", retry_at=event.retry_at)
            row["status"] = "sending" if row["done"] < max(row["total"], row["expected"]) else "done"
        else:
            # The reason of the last failed attempt stays shown while the next one runs.
            error = event.error or (row["error"] if event.status == "sending" else "")
            row.update(status=event.status, attempts=event.attempts, error=error, url=event.url or "",
                       retry_at=event.retry_at)
            if event.status in ("sent", "failed", "already-sent"):
                row["took"] = datetime.now(UTC) - row["since"]

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _render(self) -> Group:
        deadline = self.plan.deadline if self.plan else None
        tz = _plan_zone(self.plan)
        totals = [(min(row["done"], max(row["total"], row["expected"], 1)), max(row["total"], row["expected"], 1))
                  if row["total"] > 1 or row["expected"] > 1 or row["done"] > 1
                  else (int(row["status"] in _SETTLED), 1) for row in self.rows.values()]
        done, total = sum(d for d, _ in totals), sum(t for _, t in totals)
        title = f"Publishing {done:,}/{total:,}"
        if deadline:
            title += f" · deadline {_when(deadline, tz)} ({_left(deadline)})"
        # The title is a line of its own: as a table's title it would wrap to the width of a narrow table.
        table = Table("channel", "lang", "status", "progress", "detail", box=box.SIMPLE_HEAD)
        colours = {"sent": "green", "already-sent": "green", "failed": "red", "retrying": "yellow",
                   "sending": "cyan", "done": "green"}
        for (channel, lang), row in self.rows.items():
            total = max(row["total"], row["expected"])
            if total > 1 or row["done"] > 1:
                progress: Any = Table.grid(padding=(0, 1))
                progress.add_row(ProgressBar(total=max(total, 1), completed=row["done"], width=12),
                                 f"{row['done']:,}/{total:,}")
                detail = row["error"] or _pace(row["done"], total, row["since"], deadline)
            else:
                progress = _seconds(row["took"]) if row["took"] else ""
                detail = row["error"] or row["url"]
                if row["attempts"] > 1 and row["status"] == "sending":
                    detail = f"attempt {row['attempts']}, after: {detail}" if detail else f"attempt {row['attempts']}"
            if row["status"] == "retrying" and row["retry_at"] is not None:
                detail = f"{detail} · next try {_when(row['retry_at'], tz, seconds=True)}"
            table.add_row(channel, lang, Text(row["status"], style=colours.get(row["status"], "")), progress,
                          Text(_inert(detail)))
        return Group(Text(title, style="bold"), table)


_SETTLED = ("sent", "already-sent", "failed", "rejected", "done")


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
    incident: str | None = None

    def planned(self, plan: Any, totals: dict[tuple[str, str], int]) -> None:
        self.incident = plan.incident_id

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
            _plan_view(outcome.plan, console)
            continue
        if outcome.cancelled:
            console.print("Declined: nothing was sent and nothing recorded.")
            continue
        _result_table(outcome.result, _plan_zone(outcome.plan), console)
        if outcome.closed:
            console.print(Text(f"Incident {outcome.result.incident} is resolved and closed.", style="green"))


def _result_table(result: Any, tz: tzinfo, console: Console) -> None:
    _parts(console, result.incident, result.phase, "DRILL" if result.drill else "",
           f"deadline {_when(result.deadline, tz)}")
    # "took" is counted from the start of this run: in a drill, it is what the window budget is made of.
    # The zone labels the column, not each cell: a time never wraps under itself at 60 columns.
    table = _table("channel", "lang", "status", f"at {result.deadline.astimezone(tz).tzname()}", "took", "window",
                   "tries")
    colours = {"sent": "green", "already-sent": "green", "failed": "red", "skipped": "yellow", "rejected": "yellow"}
    details: list[tuple[str, str, str]] = []
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
        at = _when(d.sent_at, tz, label=False) if d.sent_at else ""
        tries = "" if d.recipients else str(d.attempts or "")
        table.add_row(d.channel, d.lang, Text(d.status, style=colours.get(d.status, "")), at, took, window, tries)
        if detail:
            details.append((d.channel, d.lang, detail))
    console.print(table)
    _details(details, console)
    failed = [d for d in result.deliveries if d.status == "failed"]
    took = _seconds(result.finished_at - result.started_at)
    if failed:
        console.print(Text(f"{len(failed)} delivery(ies) failed; fix the cause, then run:", style="bold red"))
        console.print(Text(f"  playbook resume {result.incident}", style="bold"))
        console.print("(confirmed deliveries are not sent again)")
    else:
        _parts(console, f"Everything went out in {took}.", f"Incident: {result.incident}", style="green", sep=" ")


def _details(details: Sequence[tuple[str, str, str]], console: Console) -> None:
    """Links and errors below a table, each on one line of its own: never cut, so they can be copied."""
    for channel, lang, detail in details:
        console.print(Text(f"{channel} {lang}: ", style="bold") + Text(_inert(detail)))


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

def status(views: Sequence[Any], rehearsals: Sequence[Any], as_json: bool,
           zones: dict[str, str] | None = None) -> None:
    """Open incidents and rehearsals; `zones` gives each playbook's time zone, in which times are shown."""
    if as_json:
        _json({"incidents": [v.as_json() for v in views], "rehearsals": [r.as_json() for r in rehearsals]})
        return
    zones = zones or {}
    console = _console()
    if not views:
        console.print("No open incident.")
    for r in rehearsals:
        if r.last_at is None:
            console.print(Text(f"warning: playbook '{r.playbook}' has never been rehearsed: run "
                               f"'playbook rehearse {r.playbook}'", style="yellow"))
            continue
        result = "passed" if r.passed else "FAILED"
        line = f"playbook '{r.playbook}' last rehearsed {_when(r.last_at, zone(zones.get(r.playbook)))}: {result}"
        if r.stale:
            console.print(Text(f"warning: {line}, more than {format_duration(r.every)} ago: rehearse it",
                               style="yellow"))
        else:
            console.print(Text(line, style="green" if r.passed else "bold red"))
    for v in views:
        tz = zone(zones.get(v.playbook))
        state = "open" if v.open else f"closed {_when(v.closed_at, tz)}"
        _parts(console, v.id, v.playbook, f"phase {v.phase}", state, "DRILL" if v.drill else "")
        if v.first_notice_at:
            verdict = "met" if v.window_met else "missed"
            window = (f"first notice at {_when(v.first_notice_at, tz)}: window {verdict} "
                      f"({format_duration(v.first_notice_at - v.detected_at)} after detection, "
                      f"window {format_duration(v.window)})")
        else:
            window = f"no notice out yet: deadline {_when(v.deadline, tz)} ({_left(v.deadline)})"
        console.print(f"  detected {_when(v.detected_at, tz)} · {window}")
        if v.next_update_due:
            late = v.next_update_due < datetime.now(UTC)
            console.print(Text(f"  next update due {_when(v.next_update_due, tz)}" + (" (overdue)" if late else ""),
                               style="bold red" if late else ""))
        _delivery_table(v.deliveries, tz, console)


def _delivery_table(deliveries: Sequence[Any], tz: tzinfo, console: Console) -> None:
    """A small table per post under its number and phase: five columns fit 60, links go below each."""
    posts: dict[tuple[int, str], list[Any]] = {}
    for d in deliveries:
        posts.setdefault((d.seq, d.phase), []).append(d)
    for (seq, phase), rows in posts.items():
        console.print(Text(f"post {seq} · {phase}", style="bold"))
        label = datetime.now(tz).tzname()
        table = _table("channel", "lang", "status", f"sent at {label}", "window")
        details: list[tuple[str, str, str]] = []
        for d in rows:
            detail = d.error or d.url or d.remote_id or d.note or ""
            if d.recipients:
                detail = ", ".join(f"{n:,} {s}" for s, n in d.recipients.items() if s != "total")
            window = "" if d.within_window is None else ("met" if d.within_window else "missed")
            table.add_row(d.channel, d.lang, d.status, _when(d.sent_at, tz, label=False) if d.sent_at else "", window)
            if detail:
                details.append((f"{seq}. {d.channel}", d.lang, detail))
        console.print(table)
        _details(details, console)


def timeline(review: dict[str, Any], fmt: str) -> None:
    """The post-incident review (playbook.review) as JSON or Markdown; secrets masked either way."""
    if fmt == "json":
        _json(review)
        return
    from playbook.review import markdown

    sys.stdout.write(secrets.redact(_inert(markdown(review))))


# -- rehearsals ------------------------------------------------------------------------------------------

def rehearsals(items: Sequence[Any], written: Sequence[Path]) -> None:
    """Failures in full; passing and skipped checks summed up, one line per kind."""
    from playbook.rehearsal_report import verdict

    console = _console()
    for r in items:
        console.print(Text(f"Rehearsal of {r.playbook}", style="bold"))
        kinds: dict[str, list[int]] = {}
        for c in r.checks:
            counts = kinds.setdefault(c.group, [0, 0])
            if c.skipped:
                counts[1] += 1
            elif c.ok:
                counts[0] += 1
        for kind, (passed, skipped) in kinds.items():
            if passed or skipped:
                reasons = sorted({c.detail.removeprefix("skipped ").strip("()") for c in r.checks
                                  if c.group == kind and c.skipped})
                line = Text(f"✓ {kind}: {passed} passed", style="green") if passed else Text(f"- {kind}: ")
                if skipped:
                    line += Text(f"{', ' if passed else ''}{skipped} skipped ({'; '.join(reasons)})", style="dim")
                console.print(line)
        for c in r.checks:
            if not c.ok and not c.skipped:
                console.print(Text("✗ FAIL ", style="bold red") + Text(f"{c.group}: {c.name}: ", style="bold")
                              + Text(_inert(c.detail)))
        console.print(Text(verdict(r), style="green" if r.ok else "bold red"))
    for path in written:
        console.print(f"Wrote {escape(str(path))}")
