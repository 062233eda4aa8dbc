"""The live progress view of a publishing command: a row per channel and language, and the deadline."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypedDict

from playbook.ledger.statuses import DeliveryStatus as S
from playbook.output.console import console, inert
from playbook.output.plans import plan_zone
from playbook.output.times import left, seconds, when
from playbook.timeparse import format_duration

if TYPE_CHECKING:
    from rich.console import Group, RenderableType
    from rich.live import Live

    from playbook.engine import DeliveryEvent
    from playbook.planning.plan import PostPlan


class ProgressView(Protocol):
    """An engine observer the command can stop, and that knows the incident once publishing has started."""

    incident: str | None

    def planned(self, plan: PostPlan, totals: dict[tuple[str, str], int]) -> None: ...

    def event(self, event: DeliveryEvent) -> None: ...

    def stop(self) -> None: ...


class Row(TypedDict):
    """What the view knows of one channel and language: counters, the last error, when it started."""

    status: str
    attempts: int
    error: str
    url: str
    done: int
    total: int
    expected: int
    since: datetime
    took: timedelta | None
    retry_at: datetime | None


_SETTLED = (S.SENT, S.ALREADY_SENT, S.FAILED, S.REJECTED, S.SUPERSEDED, "done")


class LiveView:
    """The live table of a trigger: one row per channel and language, and the countdown to the deadline.

    Events only update counters; rich draws the table four times a second (a 100,000-recipient list sends
    far more events than a terminal can show). The view is transient: the final table replaces it. What a
    `console` channel prints goes through rich's redirection of stdout and stderr, above the view.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}
        self.plan: PostPlan | None = None
        self.live: Live | None = None
        self.incident: str | None = None

    @staticmethod
    def _row(total: int = 0, expected: int = 0) -> Row:
        return {"status": "pending", "attempts": 0, "error": "", "url": "", "done": 0, "total": total,
                "expected": expected, "since": datetime.now(UTC), "took": None, "retry_at": None}

    def planned(self, plan: PostPlan, totals: dict[tuple[str, str], int]) -> None:
        from rich.live import Live

        self.plan = plan
        self.incident = plan.incident_id
        expected = {(c.name, lang): n for c in plan.channels for lang, n in c.recipients_by_lang.items()}
        for key, total in totals.items():
            self.rows[key] = self._row(total, expected.get(key, 0))
        self.live = Live(console=console(), get_renderable=self._render, refresh_per_second=4, transient=True,
                         redirect_stdout=True, redirect_stderr=True)
        self.live.start()

    def event(self, event: DeliveryEvent) -> None:
        row = self.rows.setdefault((event.channel, event.lang), self._row())
        if event.recipient is not None:
            # A recipient settled by an earlier run comes without a pending event (and 0 attempts): count it too.
            if event.status == S.PENDING or (event.status in (S.ALREADY_SENT, S.REJECTED, S.SUPERSEDED)
                                             and not event.attempts):
                row["total"] += 1
            if event.status in (S.SENT, S.ALREADY_SENT, S.FAILED, S.REJECTED, S.SUPERSEDED):
                row["done"] += 1
                if event.status == S.FAILED:
                    row["error"] = event.error or ""
            if event.status == S.RETRYING:
                row["error"], row["retry_at"] = event.error or "", event.retry_at
            row["status"] = "sending" if row["done"] < max(row["total"], row["expected"]) else "done"
        else:
            # The reason of the last failed attempt stays shown while the next one runs.
            row["error"] = event.error or (row["error"] if event.status == "sending" else "")
            row["status"], row["attempts"], row["url"] = event.status, event.attempts, event.url or ""
            row["retry_at"] = event.retry_at
            if event.status in (S.SENT, S.FAILED, S.ALREADY_SENT):
                row["took"] = datetime.now(UTC) - row["since"]

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _render(self) -> Group:
        from rich import box
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        deadline = self.plan.deadline if self.plan else None
        tz = plan_zone(self.plan)
        totals = [(min(row["done"], max(row["total"], row["expected"], 1)), max(row["total"], row["expected"], 1))
                  if row["total"] > 1 or row["expected"] > 1 or row["done"] > 1
                  else (int(row["status"] in _SETTLED), 1) for row in self.rows.values()]
        done, total = sum(d for d, _ in totals), sum(t for _, t in totals)
        title = f"Publishing {done:,}/{total:,}"
        if deadline:
            title += f" · deadline {when(deadline, tz)} ({left(deadline)})"
        # The title is a line of its own: as a table's title it would wrap to the width of a narrow table.
        table = Table("channel", "lang", "status", "progress", "detail", box=box.SIMPLE_HEAD)
        colours = {S.SENT: "green", S.ALREADY_SENT: "green", S.FAILED: "red", S.RETRYING: "yellow",
                   "sending": "cyan", "done": "green"}
        for (channel, lang), row in self.rows.items():
            total = max(row["total"], row["expected"])
            progress: RenderableType
            if total > 1 or row["done"] > 1:
                bar = Table.grid(padding=(0, 1))
                bar.add_row(ProgressBar(total=max(total, 1), completed=row["done"], width=12),
                            f"{row['done']:,}/{total:,}")
                progress = bar
                detail = row["error"] or pace(row["done"], total, row["since"], deadline)
            else:
                took = row["took"]
                progress = seconds(took) if took else ""
                detail = row["error"] or row["url"]
                if row["attempts"] > 1 and row["status"] == "sending":
                    detail = f"attempt {row['attempts']}, after: {detail}" if detail else f"attempt {row['attempts']}"
            if row["status"] == "retrying" and row["retry_at"] is not None:
                detail = f"{detail} · next try {when(row['retry_at'], tz, seconds=True)}"
            table.add_row(channel, lang, Text(row["status"], style=colours.get(row["status"], "")), progress,
                          Text(inert(detail)))
        return Group(Text(title, style="bold"), table)


def pace(done: int, total: int, since: datetime, deadline: datetime | None) -> str:
    """Messages per second so far, and whether the rest will be out before the deadline at that pace."""
    elapsed = (datetime.now(UTC) - since).total_seconds()
    if not done or elapsed <= 0:
        return ""
    rate = done / elapsed
    if done >= total:
        return f"{rate:,.1f}/s"
    remaining = timedelta(seconds=(total - done) / rate)
    shown = f"{rate:,.1f}/s, {format_duration(remaining)} left"
    if deadline is not None and done < total:
        finish = datetime.now(UTC) + remaining
        shown += " (before the deadline)" if finish <= deadline else " (AFTER the deadline)"
    return shown


class _Quiet:
    """No view: the final table (or the JSON) is all that is shown."""

    def __init__(self) -> None:
        self.incident: str | None = None

    def planned(self, plan: PostPlan, totals: dict[tuple[str, str], int]) -> None:
        self.incident = plan.incident_id

    def event(self, event: DeliveryEvent) -> None:
        return None

    def stop(self) -> None:
        return None


def live_observer(quiet: bool) -> ProgressView:
    """A live view for a terminal; nothing for --json, dry-runs and pipes (the final table suffices)."""
    if quiet or not sys.stdout.isatty():
        return _Quiet()
    return LiveView()
