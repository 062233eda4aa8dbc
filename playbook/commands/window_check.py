"""Would the first phase be delivered within the window today? Each channel's budget from the best pace known,
after the monitors' detection delay when they start the clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from playbook.commands.monitor_checks import detection_delay
from playbook.commands.rehearsal import ChannelTiming, Recorder
from playbook.errors import PlaybookError
from playbook.home.channel_config import Channels
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.ledger import open_existing
from playbook.publishers.base import Budget, Publisher
from playbook.timeparse import format_duration


def check_window(home: Home, playbook: Playbook, channels: Channels, record: Recorder,
                  checked: dict[str, tuple[float, datetime]]) -> None:
    """Would the first phase be fully delivered within the window? From each channel's measured pace, after
    the monitors' detection delay when they start the clock."""
    detection = detection_delay(playbook)
    window = playbook.window.total_seconds()
    delay = detection.total_seconds() if detection else 0.0
    waited = (f"; monitors may take {format_duration(detection)} ({format_duration(playbook.watch.every)} x "
              f"{playbook.watch.fails} failures) to detect it" if detection else "")
    first = playbook.first_phase
    paces = _paces(home)
    slowest: tuple[float, str] = (0.0, "")
    for name in playbook.phases[first].channels:
        if name not in channels.raw:
            continue
        try:
            publisher = channels.publisher(name, playbook.languages, offline=True)
        except PlaybookError as exc:
            record.add("window", f"channel '{name}' within {format_duration(playbook.window)}", False, str(exc))
            continue
        languages = [lang for lang in playbook.languages if lang in publisher.languages()]
        messages = publisher.recipient_count() if publisher.per_recipient else len(languages)
        # A drill runs through the sandbox: its pace stands for the live channel's until a real run is newer, but
        # only a sandbox of the same type (a local SMTP server for email): writing a file says nothing of SMTP.
        sandbox = channels.sandbox_of(name)
        if sandbox is not None and channels.type_of(sandbox) != channels.type_of(name):
            sandbox = None
        known = [(channel, paces[channel]) for channel in (name, sandbox) if channel and channel in paces]
        pace = max(known, key=lambda item: item[1][4], default=None)
        budget, source = channel_budget(publisher, messages or 0, pace, checked.get(name))
        record.rehearsal.timings.append(ChannelTiming(name, channels.type_of(name), budget.seconds,
                                                      False, budget.arithmetic, source))
        ok = delay + budget.seconds <= window
        verdict = (f"needs {format_duration(timedelta(seconds=budget.seconds))}: {budget.arithmetic}; "
                   f"pace from {source}; "
                   f"the window is {format_duration(playbook.window)}{waited}")
        if not ok:
            verdict += "; to fix: " + (_fix(budget, window - delay) if delay < window else
                                       "detection alone outlasts the window: lower watch.every or watch.fails")
        record.add("window", f"channel '{name}' delivers '{first}' within {format_duration(playbook.window)}",
                   ok, verdict)
        slowest = max(slowest, (budget.seconds, name))
    if slowest[1]:
        ok = delay + slowest[0] <= window
        record.add("window", f"first phase fully delivered within {format_duration(playbook.window)}", ok,
                   f"the slowest channel, '{slowest[1]}', needs {format_duration(timedelta(seconds=slowest[0]))}"
                   f" of {format_duration(playbook.window)}{waited}"
                   + ("" if ok else ": the window would be missed"))


Pace = tuple[str, int, float, float, datetime]


def channel_budget(publisher: Publisher[Any], messages: int, pace: tuple[str, Pace] | None,
            check: tuple[float, datetime] | None) -> tuple[Budget, str]:
    """The channel's budget from the best pace known: its latest run in the ledger, else its timed check,
    else the channel type's typical latency; with the source of the figures and when they were measured."""
    if pace is not None:
        channel, (incident, count, wall, each, at) = pace
        # Deliveries in flight at once, as achieved: the time they took one by one over the run's wall time.
        # Below 1 when the run also waited between messages; either way the prediction is the run's own
        # throughput (count / wall) applied to this many messages.
        if wall > 0 and each > 0:
            lanes = max(0.01, round(count * each / wall, 2))
        else:
            each, lanes = (wall / count if count else 0.0), 1.0
        source = (f"{count:,} message(s) of '{channel}' in {incident} took {wall:,.1f} s, {measured_when(at)}: "
                  f"{lanes:g} in parallel achieved")
        return publisher.budget(messages, each, lanes=lanes, source="measured"), f"ledger: {source}"
    if check is not None:
        seconds, at = check
        source = f"timed check, {measured_when(at)}"
        return publisher.budget(messages, seconds, source="check"), source
    return publisher.budget(messages), f"default: {publisher.typical_latency:g} s per message for this channel type"


def measured_when(at: datetime) -> str:
    return f"measured {at:%Y-%m-%d %H:%M} UTC"


def _fix(budget: Budget, window: float) -> str:
    """What would bring a channel inside the window, with the figures to aim for."""
    n = budget.messages
    wave = int(n * window / budget.seconds) if budget.seconds else n
    first_wave = f"send a first wave of at most {wave:,} (the most urgent customers), the rest after"
    if budget.bound == "rate":
        return f"raise `rate` to at least {n / window:,.1f} per second, or {first_wave}"
    if budget.bound == "parallel":
        factor = budget.seconds / window
        return f"use about {factor:.1f}x more `connections`, or {first_wave}"
    return f"the provider's posting limit cannot be raised: post fewer messages, or {first_wave}"


def _paces(home: Home) -> dict[str, Pace]:
    ledger = open_existing(home.state, readonly=True, environ=home.env)
    if ledger is None:
        return {}
    try:
        return ledger.channel_paces()
    finally:
        ledger.close()
