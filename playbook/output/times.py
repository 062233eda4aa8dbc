"""Times as the terminal shows them: in the playbook's zone, labelled, and durations people read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from playbook.timeparse import format_duration


def zone(name: str | None) -> tzinfo:
    """The playbook's time zone, in which the terminal shows every time; UTC when it is unknown."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def when(moment: datetime | None, tz: tzinfo = UTC, seconds: bool = False, *, label: bool = True) -> str:
    """`05:32 CET` today, `2026-11-29 05:32 CET` another day: the playbook's clock, labelled (unless a table's
    heading carries the label)."""
    if moment is None:
        return "-"
    local = moment.astimezone(tz)
    shown = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    if local.date() != datetime.now(tz).date():
        shown = f"{local:%Y-%m-%d} {shown}"
    return f"{shown} {local.tzname()}" if label else shown


def left(deadline: datetime) -> str:
    remaining = deadline - datetime.now(UTC)
    if remaining.total_seconds() < 0:
        return f"missed by {format_duration(-remaining)}"
    return f"{format_duration(remaining)} left"


def seconds(elapsed: timedelta) -> str:
    # Most deliveries take under a second: "0s" would read as if nothing had been timed.
    return f"{elapsed.total_seconds():.1f}s" if elapsed.total_seconds() < 60 else format_duration(elapsed)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None
