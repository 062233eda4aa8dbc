"""`playbook rehearse`: every check there is, each a named result, and "would we make the window today?"."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from playbook.commands.channels import run_check
from playbook.commands.monitor_checks import check_monitors, detection_delay
from playbook.commands.publishing import close_drill, trigger
from playbook.commands.session import Session
from playbook.commands.validate import validate_home
from playbook.errors import PlaybookError
from playbook.home.channel_config import Channels, load_channels
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.ledger import open_existing, open_ledger
from playbook.ledger.contract import DeliveryStatus, utcnow
from playbook.publishers.base import Budget, Publisher
from playbook.publishers.limits import URL
from playbook.rendering.messages import Composer
from playbook.rendering.variables import missing_message, resolve, without_value
from playbook.timeparse import format_duration


@dataclass
class Check:
    """One named result of a rehearsal."""

    playbook: str
    group: str
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0
    skipped: bool = False


@dataclass
class ChannelTiming:
    """How long a channel needs (estimated) or took (measured in a drill) to deliver the first phase."""

    channel: str
    type: str
    seconds: float
    measured: bool
    arithmetic: str = ""
    # Where the pace comes from, and when it was measured: the ledger's latest run, a timed check, a default.
    source: str = ""


@dataclass
class Rehearsal:
    playbook: str
    name: str
    window: timedelta
    at: datetime
    checks: list[Check] = field(default_factory=list)
    timings: list[ChannelTiming] = field(default_factory=list)
    drill_incident: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok or c.skipped for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and not c.skipped]

    def summary(self) -> dict[str, Any]:
        return {
            "passed": self.ok,
            "checks": len(self.checks),
            "failed": [f"{c.group}: {c.name}: {c.detail}" for c in self.failures],
            "slowest": max(((t.channel, round(t.seconds, 1)) for t in self.timings), key=lambda t: t[1],
                           default=None),
        }


class _Recorder:
    def __init__(self, rehearsal: Rehearsal) -> None:
        self.rehearsal = rehearsal

    def add(self, group: str, name: str, ok: bool, detail: str, seconds: float = 0.0,
            skipped: bool = False) -> None:
        self.rehearsal.checks.append(Check(self.rehearsal.playbook, group, name, ok, detail, seconds, skipped))

    def timed(self, group: str, name: str, run: Callable[[], tuple[bool, str]]) -> None:
        start = time.perf_counter()
        try:
            ok, detail = run()
        except PlaybookError as exc:
            ok, detail = False, str(exc)
        self.add(group, name, ok, detail, time.perf_counter() - start)


def rehearse(home: Home, ids: Sequence[str], *, offline: bool = False, check_links: bool = False,
             drill: bool = False) -> list[Rehearsal]:
    """Rehearse each playbook (all by default) and record the outcome in the ledger."""
    home.require()
    results = []
    for playbook_id in ids or home.playbook_ids():
        results.append(_rehearse_one(home, playbook_id, offline=offline, check_links=check_links, drill=drill))
    ledger = open_ledger(home.state, create=True, environ=home.env)
    try:
        for result in results:
            ledger.record_rehearsal(result.playbook, result.ok, result.summary())
    finally:
        ledger.close()
    return results


def _rehearse_one(home: Home, playbook_id: str, *, offline: bool, check_links: bool, drill: bool) -> Rehearsal:
    try:
        playbook = home.load_playbook(playbook_id)
    except PlaybookError as exc:
        failed = Rehearsal(playbook_id, playbook_id, timedelta(0), utcnow())
        failed.checks.append(Check(playbook_id, "validate", "playbook loads", False, str(exc)))
        return failed
    rehearsal = Rehearsal(playbook.id, playbook.name[playbook.default_language], playbook.window, utcnow())
    record = _Recorder(rehearsal)
    report = validate_home(home, [playbook.id])
    record.add("validate", "playbook, templates and channels validate", report.ok,
               "; ".join(str(p) for p in report.problems) or "no problem found")
    lengths: dict[tuple[str, str, str, str], list[str]] = {}
    for check in report.checks:
        key = (check.playbook, check.phase, check.lang, check.channel)
        lengths.setdefault(key, []).append(f"{check.block} {check.measure}")
    for (_, phase, lang, channel), problem in report.renders.items():
        detail = problem or ", ".join(lengths.get((playbook.id, phase, lang, channel), [])) or "renders (no limit)"
        record.add("render", f"{phase} · {lang} · {channel} within limit", problem is None, detail)
    _check_variables(playbook, record)
    try:
        channels = load_channels(home)
    except PlaybookError as exc:
        record.add("channels", "channels.yaml loads", False, str(exc))
        return rehearsal
    used = _channels_used(playbook, channels, drill)
    _check_environment(channels, used, record)
    _check_links(home, playbook, record, fetch=check_links)
    checked = _check_online(channels, playbook, used, record, offline=offline)
    for probed in check_monitors(playbook, home.env, offline=offline):
        record.add(probed.group, probed.name, probed.ok, probed.detail, probed.seconds, probed.skipped)
    _check_window(home, playbook, channels, record, checked)
    if drill:
        live = [n for n in playbook.channel_names() if n in channels.raw]
        if not any(channels.sandbox_of(n) is not None for n in live):
            record.add("drill", "drill through the sandbox channels", False,
                       "nothing to drill: channels.yaml has no `drill:` section mapping this playbook's channels "
                       f"({', '.join(live) or 'none'}) to sandbox channels: add one (`drill:` then "
                       "`<live channel>: <sandbox channel>`), or rehearse without --drill")
        else:
            _run_drill(home, playbook, record)
    return rehearsal


def _channels_used(playbook: Playbook, channels: Channels, drill: bool) -> list[str]:
    """The channels to check: the live ones always (a drill adds to a rehearsal, it never hides a live channel's
    missing credentials), the ones reminders go through (the worker needs them the day an update is late), and
    with `drill` the sandboxes that stand in for them."""
    reminded = playbook.reminders.channels if playbook.reminders is not None else []
    names = [n for n in dict.fromkeys([*playbook.channel_names(), *reminded]) if n in channels.raw]
    if not drill:
        return names
    sandboxes = [sandbox for n in names if (sandbox := channels.sandbox_of(n)) is not None]
    return list(dict.fromkeys([*names, *sandboxes]))


def _check_variables(playbook: Playbook, record: _Recorder) -> None:
    """The same rule as validate and render: a required variable needs a default or a sample; an optional
    one without either renders as absent, as it will on the day when nobody gives it."""
    missing = set(without_value(playbook))
    for name, spec in playbook.vars.items():
        if name in missing:
            record.add("variables", f"variable '{name}' has a value", False, missing_message(playbook, name))
        elif spec.default not in (None, ""):
            record.add("variables", f"variable '{name}' has a value", True, f"default: {spec.default}")
        elif spec.sample not in (None, ""):
            record.add("variables", f"variable '{name}' has a value", True, f"sample: {spec.sample}")
        else:
            record.add("variables", f"variable '{name}' has a value", True,
                       "optional, no default: renders as absent unless given with --var")


def _check_environment(channels: Channels, used: Sequence[str], record: _Recorder) -> None:
    for name in used:
        for var in channels.env_references(name):
            present = bool(channels.home.env.get(var))
            record.add("environment", f"${var} set (channel '{name}')", present,
                       "set" if present else f"not set: export {var}=... or add it to {channels.home.root / '.env'}")


def _rendered_texts(home: Home, playbook: Playbook) -> list[tuple[str, str, str]]:
    """(phase, lang, text) of every block of every phase, rendered with defaults and samples."""
    composer = Composer(home, playbook)
    variables = resolve(playbook, {}, samples=True, placeholders=True)
    texts = []
    for phase in playbook.phases:
        context = composer.preview_context(phase)
        for lang in playbook.languages:
            try:
                message = composer.message(phase, lang, variables, context)
            except PlaybookError:
                continue  # already a failed "validate" check
            texts += [(phase, lang, text) for text in message.blocks.values()]
    return texts


def _check_links(home: Home, playbook: Playbook, record: _Recorder, *, fetch: bool) -> None:
    where: dict[str, str] = {}
    for phase, lang, text in _rendered_texts(home, playbook):
        for url in URL.findall(text):
            where.setdefault(url.rstrip(".,;:!?)»\u00a0\u202f'\""), f"{phase}/{lang}")
    for url, first_seen in sorted(where.items()):
        parts = urlsplit(url)
        host = parts.hostname or ""
        well_formed = parts.scheme in ("http", "https") and ("." in host or host == "localhost")
        if not well_formed:
            record.add("links", url, False, f"malformed link (first in {first_seen})")
        elif fetch:
            record.timed("links", url, partial(_fetch, url))
        else:
            record.add("links", url, True, f"well formed (first in {first_seen}); --check-links fetches it")


def _fetch(url: str) -> tuple[bool, str]:
    import httpx

    try:
        response = httpx.get(url, timeout=10, follow_redirects=False)
    except httpx.HTTPError as exc:
        return False, f"cannot fetch: {type(exc).__name__}"
    return response.status_code < 400, f"HTTP {response.status_code}"


def _check_online(channels: Channels, playbook: Playbook, used: Sequence[str], record: _Recorder,
                  *, offline: bool) -> dict[str, tuple[float, datetime]]:
    """Each channel's online check; returns how long each passing one took, and when, to pace the window."""
    timed: dict[str, tuple[float, datetime]] = {}
    for name in used:
        label = f"channel '{name}' ({channels.type_of(name)}) online check"
        if offline:
            record.add("channels", label, True, "skipped (--offline)", skipped=True)
            continue
        missing = channels.missing_env(name)
        if missing:
            record.add("channels", label, False, f"{', '.join('$' + v for v in missing)} not set")
            continue
        start = time.perf_counter()
        try:
            publisher = channels.publisher(name, playbook.languages)
            problems = publisher.validate()
            result = run_check(publisher) if not problems else None
        except PlaybookError as exc:
            record.add("channels", label, False, str(exc), time.perf_counter() - start)
            continue
        ok = result.ok if result else False
        detail = result.detail if result else problems[0]
        seconds = time.perf_counter() - start
        record.add("channels", label, ok, detail, seconds)
        if ok:
            timed[name] = (seconds, utcnow())
    return timed


def _check_window(home: Home, playbook: Playbook, channels: Channels, record: _Recorder,
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
        budget, source = _budget(publisher, messages or 0, pace, checked.get(name))
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


def _budget(publisher: Publisher[Any], messages: int, pace: tuple[str, Pace] | None,
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
        source = (f"{count:,} message(s) of '{channel}' in {incident} took {wall:,.1f} s, {_when(at)}: "
                  f"{lanes:g} in parallel achieved")
        return publisher.budget(messages, each, lanes=lanes, source="measured"), f"ledger: {source}"
    if check is not None:
        seconds, at = check
        source = f"timed check, {_when(at)}"
        return publisher.budget(messages, seconds, source="check"), source
    return publisher.budget(messages), f"default: {publisher.typical_latency:g} s per message for this channel type"


def _when(at: datetime) -> str:
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


def _run_drill(home: Home, playbook: Playbook, record: _Recorder) -> None:
    """Publish the first phase for real through the sandbox channels, then close the drill incident."""
    session = Session(home)
    samples = {k: v for k, v in resolve(playbook, {}, samples=True, placeholders=True).items() if v is not None}
    start = time.perf_counter()
    try:
        outcome = trigger(session, playbook.id, samples, None, drill=True, new=True)
    except PlaybookError as exc:
        record.add("drill", "drill through the sandbox channels", False, str(exc), time.perf_counter() - start)
        return
    finally:
        session.close()
    result = outcome.result
    assert result is not None
    record.rehearsal.drill_incident = result.incident
    window = playbook.window.total_seconds()
    taken: dict[str, float] = {}
    for delivery in result.deliveries:
        label = f"channel '{delivery.channel}' ({delivery.lang}) delivered through its sandbox"
        if delivery.status == DeliveryStatus.SKIPPED:
            record.add("drill", label, True, delivery.error or "skipped", skipped=True)
            continue
        seconds = ((delivery.sent_at or result.finished_at) - result.started_at).total_seconds()
        taken[delivery.channel] = max(taken.get(delivery.channel, 0.0), seconds)
        ok = delivery.status in (DeliveryStatus.SENT, DeliveryStatus.ALREADY_SENT) and seconds <= window
        record.add("drill", label, ok, f"{delivery.status} in {seconds:.1f} s of {format_duration(playbook.window)}"
                   + (f": {delivery.error}" if delivery.error else ""), seconds)
    for plan in outcome.plan.channels:
        if plan.name in taken:
            record.rehearsal.timings.append(ChannelTiming(plan.name, plan.type, taken[plan.name], True,
                                                          f"measured in drill {result.incident}",
                                                          f"drill {result.incident}, {_when(result.finished_at)}"))
    close_drill(home, result.incident)

