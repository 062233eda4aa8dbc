"""`playbook rehearse`: every check there is, each a named result, and "would we make the window today?"."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

from playbook.commands.channels import run_check
from playbook.commands.monitor_checks import check_monitors
from playbook.commands.publishing import close_drill, trigger
from playbook.commands.rehearsal import ChannelTiming, Check, Recorder, Rehearsal
from playbook.commands.session import Session
from playbook.commands.validate import validate_home
from playbook.commands.window_check import check_window, measured_when
from playbook.errors import PlaybookError
from playbook.home.channel_config import Channels, load_channels
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.ledger import open_ledger
from playbook.ledger.contract import utcnow
from playbook.ledger.statuses import DeliveryStatus
from playbook.publishers.limits import URL
from playbook.rendering.messages import Composer
from playbook.rendering.variables import missing_message, resolve, without_value
from playbook.timeparse import format_duration


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
    record = Recorder(rehearsal)
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
    check_monitors(playbook, home.env, record, offline=offline)
    check_window(home, playbook, channels, record, checked)
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


def _check_variables(playbook: Playbook, record: Recorder) -> None:
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


def _check_environment(channels: Channels, used: Sequence[str], record: Recorder) -> None:
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


def _check_links(home: Home, playbook: Playbook, record: Recorder, *, fetch: bool) -> None:
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


def _check_online(channels: Channels, playbook: Playbook, used: Sequence[str], record: Recorder,
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


def _run_drill(home: Home, playbook: Playbook, record: Recorder) -> None:
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
            source = f"drill {result.incident}, {measured_when(result.finished_at)}"
            record.rehearsal.timings.append(ChannelTiming(plan.name, plan.type, taken[plan.name], True,
                                                          f"measured in drill {result.incident}", source))
    close_drill(home, result.incident)

