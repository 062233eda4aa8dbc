"""Incidents read from the ledger: the open ones with their deliveries, and the post-incident review."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from playbook.ledger.statuses import DeliveryStatus as S
from playbook.output.console import console, details, parts, table, write_json, write_markdown
from playbook.output.times import left, when, zone
from playbook.timeparse import format_duration

if TYPE_CHECKING:
    from rich.console import Console

    from playbook.commands.review import Review
    from playbook.commands.views import DeliveryView, StatusReport


def status(report: StatusReport, as_json: bool) -> None:
    """Open incidents and rehearsals, their times in each playbook's zone."""
    from rich.text import Text

    views, rehearsals, zones = report.incidents, report.rehearsals, report.zones
    if as_json:
        write_json({"incidents": [v.as_json() for v in views], "rehearsals": [r.as_json() for r in rehearsals],
                    "workers": [{"host": w.host, "pid": w.pid, "home": w.home, "started_at": w.started_at.isoformat(),
                                 "seen_at": w.seen_at.isoformat(), "doing": w.doing} for w in report.workers],
                    "monitors": [m.as_json() for m in report.monitors]})
        return
    out = console()
    for w in report.workers:
        out.print(f"worker pid {w.pid} on {w.host} ({w.home}), up since {when(w.started_at, UTC)}: {w.doing}")
    for m in report.monitors:
        since = f" since {when(m.since, zone(zones.get(m.playbook)))}" if m.since else ""
        seen = f": {m.detail}" if m.detail and m.state == "down" else ""
        out.print(Text(f"monitor {m.playbook}/{m.name}: {m.state}{since}{seen}",
                       style="bold red" if m.state == "down" else ""))
    if not views:
        out.print("No open incident.")
    for r in rehearsals:
        if r.last_at is None:
            out.print(Text(f"warning: playbook '{r.playbook}' has never been rehearsed: run "
                           f"'playbook rehearse {r.playbook}'", style="yellow"))
            continue
        result = "passed" if r.passed else "FAILED"
        line = f"playbook '{r.playbook}' last rehearsed {when(r.last_at, zone(zones.get(r.playbook)))}: {result}"
        if r.stale:
            out.print(Text(f"warning: {line}, more than {format_duration(r.every)} ago: rehearse it",
                           style="yellow"))
        else:
            out.print(Text(line, style="green" if r.passed else "bold red"))
    for v in views:
        tz = zone(zones.get(v.playbook))
        state = "open" if v.open else f"closed {when(v.closed_at, tz)}"
        parts(out, v.id, v.playbook, f"phase {v.phase}", state, "DRILL" if v.drill else "")
        if v.first_notice_at:
            verdict = "met" if v.window_met else "missed"
            window = (f"first notice at {when(v.first_notice_at, tz)}: window {verdict} "
                      f"({format_duration(v.first_notice_at - v.detected_at)} after detection, "
                      f"window {format_duration(v.window)})")
        else:
            window = f"no notice out yet: deadline {when(v.deadline, tz)} ({left(v.deadline)})"
        out.print(f"  detected {when(v.detected_at, tz)} · {window}")
        if v.next_update_due:
            late = v.next_update_due < datetime.now(UTC)
            out.print(Text(f"  next update due {when(v.next_update_due, tz)}" + (" (overdue)" if late else ""),
                           style="bold red" if late else ""))
        _delivery_table(v.id, v.deliveries, tz, out, {p["seq"]: p for p in v.posts})


def _delivery_table(incident: str, deliveries: Sequence[DeliveryView], tz: tzinfo, out: Console,
                    recorded: Mapping[int, Mapping[str, Any]]) -> None:
    """A small table per post under its number and phase: five columns fit 60, links go below each."""
    from rich.text import Text

    posts: dict[tuple[int, str], list[DeliveryView]] = {}
    for d in deliveries:
        posts.setdefault((d.seq, d.phase), []).append(d)
    for (seq, phase), rows in posts.items():
        post = recorded.get(seq, {})
        handed = post.get("handed_until")
        finished = all(d.status in (S.SENT, S.REJECTED, S.SUPERSEDED) for d in rows)
        out.print(Text(f"post {seq} · {phase}", style="bold")
                  + Text(" · holding update (worker)" if post.get("holding") else "")
                  + Text(f" · left to the worker until {when(handed, tz)}"
                         if handed is not None and not finished else "", style="yellow"))
        label = datetime.now(tz).tzname()
        drawn = table("channel", "lang", "status", f"sent at {label}", "window")
        below: list[tuple[str, str, str]] = []
        for d in rows:
            detail = d.error or d.url or d.remote_id or d.note or ""
            if d.recipients:
                detail = ", ".join(f"{n:,} {s}" for s, n in d.recipients.items() if s != "total")
            window = "" if d.within_window is None else ("met" if d.within_window else "missed")
            shown = Text("interrupted", style="yellow") if d.interrupted else Text(d.status)
            drawn.add_row(d.channel, d.lang, shown, when(d.sent_at, tz, label=False) if d.sent_at else "", window)
            if d.interrupted:
                detail = "; ".join(filter(None, [f"{d.status}, unconfirmed: nobody is at it, playbook resume "
                                                 f"{incident} finishes it", detail]))
            if detail:
                below.append((f"{seq}. {d.channel}", d.lang, detail))
        out.print(drawn)
        details(below, out)


def timeline(review: Review, fmt: str) -> None:
    """The post-incident review (playbook.commands.review) as JSON or Markdown; secrets masked either way."""
    if fmt == "json":
        write_json(review)
        return
    from playbook.commands.review import markdown

    write_markdown(markdown(review))
