"""Durations such as `1h30m` and moments such as `-15m` or ISO 8601, as users write them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo

# Past this, a duration is a typo; larger ones would also overflow the dates they are added to.
LONGEST = timedelta(days=3650)
# An outage detected longer ago than this is a typo (a wrong month or year), not one to announce now; one in
# the future is too, past the clock skew between the monitoring that saw it and this machine.
OLDEST_DETECTION = timedelta(days=7)
CLOCK_SKEW = timedelta(minutes=1)
_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """`45s`, `30m`, `2h`, `1h30m`, `1d` -> timedelta; ValueError with a readable reason otherwise."""
    cleaned = text.strip().replace(" ", "").lower()
    match = _DURATION.match(cleaned)
    if not cleaned or not match or not any(match.groupdict().values()):
        raise ValueError(f"'{text}' is not a duration: write it like 45s, 30m, 2h or 1h30m")
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    seconds = ((parts["d"] * 24 + parts["h"]) * 60 + parts["m"]) * 60 + parts["s"]
    if seconds > LONGEST.total_seconds():
        raise ValueError(f"'{text}' is too long: at most {LONGEST.days}d")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Compact English form for the terminal (`1h30m`, `45s`); messages use Babel instead."""
    seconds = int(abs(delta.total_seconds()))
    sign = "-" if delta.total_seconds() < 0 else ""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes:02d}m" if minutes else f"{sign}{hours}h"
    if minutes:
        return f"{sign}{minutes}m{secs:02d}s" if secs else f"{sign}{minutes}m"
    return f"{sign}{secs}s"


def now() -> datetime:
    return datetime.now(UTC)


# A time of day as people type it at 2 a.m.: 05:20, 5:20, 5h20, 5h, 17h05.
_CLOCK = re.compile(r"^(?P<h>[01]?\d|2[0-3])(?::(?P<m>[0-5]\d)|h(?P<hm>[0-5]\d)?)$")


def parse_clock(text: str) -> time | None:
    """`05:20`, `5h20`, `5h` -> 05:20; None when `text` is not a time of day."""
    match = _CLOCK.match(text.strip().lower())
    if match is None:
        return None
    return time(int(match["h"]), int(match["m"] or match["hm"] or 0))


def _on(day: date, clock: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def parse_moment(text: str, *, reference: datetime | None = None, zone: tzinfo = UTC) -> datetime:
    """A past moment: ISO 8601 (naive means in `zone`), `now`, relative such as `-15m`, or a time of day.

    A time of day (`05:20`, `5h20`) is today's in `zone`, or yesterday's when today's is still to come: a
    detection is always in the past.
    """
    ref = reference or now()
    cleaned = text.strip()
    if cleaned.lower() == "now":
        return ref
    if cleaned[:1] in "+-":
        delta = parse_duration(cleaned[1:])
        return ref - delta if cleaned[0] == "-" else ref + delta
    clock = parse_clock(cleaned)
    if clock is not None:
        today = ref.astimezone(zone).date()
        moment = _on(today, clock, zone)
        return moment if moment <= ref else _on(today - timedelta(days=1), clock, zone)
    return _iso_moment(text, zone, "write a time (05:20), ISO 8601 (2026-11-25T14:05+01:00) or relative (-15m)")


def parse_coming(text: str, *, reference: datetime | None = None, zone: tzinfo = UTC) -> datetime:
    """A moment ahead, such as an expected recovery: ISO 8601 (naive means in `zone`), `+2h`, or a time of day.

    A time of day is today's in `zone`, or tomorrow's when today's has passed.
    """
    ref = reference or now()
    cleaned = text.strip()
    if cleaned[:1] == "+":
        return ref + parse_duration(cleaned[1:])
    clock = parse_clock(cleaned)
    if clock is not None:
        today = ref.astimezone(zone).date()
        moment = _on(today, clock, zone)
        return moment if moment > ref else _on(today + timedelta(days=1), clock, zone)
    return _iso_moment(text, zone, "write a time (18:00), ISO 8601 (2026-11-25T18:00+01:00) or relative (+2h)")


def _iso_moment(text: str, zone: tzinfo, advice: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{text}' is not a moment: {advice}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def parse_detection(text: str, *, reference: datetime | None = None, zone: tzinfo = UTC) -> datetime:
    """`parse_moment` in `zone`, within the last OLDEST_DETECTION and not in the future; ValueError saying which."""
    ref = reference or now()
    moment = parse_moment(text, reference=ref, zone=zone)
    shown = f"{moment.astimezone(zone):%Y-%m-%d %H:%M} {moment.astimezone(zone).tzname()}"
    if moment > ref + CLOCK_SKEW:
        raise ValueError(f"'{text}' is {format_duration(moment - ref)} in the future ({shown}); "
                         "give when the outage was detected")
    if moment < ref - OLDEST_DETECTION:
        raise ValueError(f"'{text}' is more than {OLDEST_DETECTION.days} days ago ({shown}); check the date")
    return moment
