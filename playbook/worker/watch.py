"""The monitors at work: each playbook's monitors probed every `watch.every`, their state changes recorded, and
what a change calls for done once, by the watcher that recorded it (`playbook watch`, or a worker).

A change is recorded in the ledger before anything is done about it, atomically across processes: of several
watchers seeing the same outage (a team runs more than one worker), one records it and acts, the others see
their record refused and stay quiet. An open incident of the playbook is never triggered again: a second
detection alerts with the incident to follow instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from playbook.commands.publishing import publish_phase, sent_texts, trigger
from playbook.commands.session import Session
from playbook.errors import IncidentError, PlaybookError
from playbook.home.locate import Home
from playbook.home.model import Monitor, Playbook
from playbook.ledger.contract import Ledger, utcnow
from playbook.monitoring.tracker import Change, Tracker
from playbook.planning.plan import build_plan
from playbook.rendering.variables import resolve
from playbook.worker import notices

if TYPE_CHECKING:
    import httpx

    from playbook.commands.publishing import Outcome

log = logging.getLogger("playbook.worker")


class Watcher:
    """The monitors of the home's playbooks (or of `ids`), until `stop` is set."""

    def __init__(self, home: Home, ledger: Ledger, *, ids: Sequence[str] = (), stop: asyncio.Event,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.home = home
        self.session = Session(home)
        self.ledger = ledger
        self.ids = list(ids)
        self.stop = stop
        self.clock = clock

    def playbooks(self) -> list[Playbook]:
        """The playbooks to watch: those named (an error if one has no monitors), else every one that has some."""
        if self.ids:
            found = [self.home.load_playbook(i) for i in self.ids]
            bare = [p.id for p in found if not p.monitors]
            if bare:
                raise PlaybookError(f"playbook '{bare[0]}' has no monitors to watch: add `monitors:` to it "
                                    "(see README: Monitors)")
            return found
        watched = []
        for playbook_id in self.home.playbook_ids():
            try:
                playbook = self.home.load_playbook(playbook_id)
            except PlaybookError as exc:
                log.error("playbook %s cannot be read, its monitors are not watched: %s", playbook_id, exc)
                continue
            if playbook.monitors:
                watched.append(playbook)
        return watched

    async def run(self, playbooks: Sequence[Playbook] | None = None) -> None:
        """Watch until `stop`: one task per playbook, each probing its monitors at once."""
        import httpx

        chosen = list(playbooks if playbooks is not None else self.playbooks())
        if not chosen:
            return
        async with httpx.AsyncClient(follow_redirects=True) as client, asyncio.TaskGroup() as group:
            for playbook in chosen:
                group.create_task(self._watch(playbook, client))
        self.session.close()

    async def _watch(self, playbook: Playbook, client: httpx.AsyncClient) -> None:
        from playbook.monitoring.probes import probe

        latest = {(c.playbook, c.monitor): c.state for c in self.ledger.monitor_states()}
        trackers = {m.name: Tracker(playbook.watch.fails, playbook.watch.recovers,
                                    state="down" if latest.get((playbook.id, m.name)) == "down" else "up")
                    for m in playbook.monitors}
        log.info("watching %s: %s every %s", playbook.id, ", ".join(m.name for m in playbook.monitors),
                 playbook.watch.every)
        while not self.stop.is_set():
            at = self.clock()
            try:
                findings = await asyncio.gather(*(probe(m, self.home.env, client) for m in playbook.monitors))
                for monitor, finding in zip(playbook.monitors, findings, strict=True):
                    change = trackers[monitor.name].heard(finding, at)
                    if change is not None:
                        await self._changed(playbook, monitor, change)
            except PlaybookError as exc:
                # A setting unset, the ledger unreachable: said once a round, tried again at the next.
                log.error("%s: monitors not probed: %s", playbook.id, exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(playbook.watch.every.total_seconds()):
                    await self.stop.wait()

    async def _changed(self, playbook: Playbook, monitor: Monitor, change: Change) -> None:
        recorded = self.ledger.record_monitor_change(playbook.id, monitor.name, change.state, change.since,
                                                     change.finding.detail)
        if recorded is None:
            # Another watcher recorded this change first: it acts on it.
            return
        log.warning("%s/%s: %s since %s: %s", playbook.id, monitor.name, change.state,
                    change.since.isoformat(timespec="seconds"), change.finding.detail)
        if change.state == "down":
            notice = await self._detected(playbook, monitor, change)
        else:
            notice = await self._recovered(playbook, monitor, change)
        if playbook.watch.alert:
            key = f"monitor/{playbook.id}/{monitor.name}/{recorded.seq}"
            lines = await notices.tell(self.session.load_channels(), playbook.watch.alert, notice, key=key,
                                       incident=None, drill=False, deadline=self.clock() + playbook.window)
            log.info("%s: alert %s", key, "; ".join(lines))

    def _open_incident(self, playbook: Playbook) -> str | None:
        found = self.ledger.open_incidents(playbook.id, drill=False)
        return found[0].id if found else None

    async def _detected(self, playbook: Playbook, monitor: Monitor, change: Change) -> notices.Notice:
        """Trigger the playbook (`on_detect: trigger`, no incident open) or prepare the alert that asks a human to."""
        incident = self._open_incident(playbook)
        if incident is None and playbook.watch.on_detect == "trigger":
            try:
                outcome = await asyncio.to_thread(_in_session, self.home, trigger, playbook.id, {}, change.since)
            except IncidentError:
                # Opened meanwhile, by a person or another tool: it is theirs to follow.
                incident = self._open_incident(playbook)
            except PlaybookError as exc:
                log.error("%s: the first notice could not be published: %s", playbook.id, exc)
            else:
                return notices.detected(playbook, monitor.name, change.since, change.finding.detail, incident=None,
                                        previews={}, triggered=_incident_of(outcome))
        return notices.detected(playbook, monitor.name, change.since, change.finding.detail, incident=incident,
                                previews=self._previews(playbook, change.since))

    async def _recovered(self, playbook: Playbook, monitor: Monitor, change: Change) -> notices.Notice:
        incident = self._open_incident(playbook)
        if incident is not None and playbook.watch.on_recover == "resolve":
            try:
                outcome = await asyncio.to_thread(_in_session, self.home, partial(publish_phase, resolve_it=True),
                                                  incident, None, {})
            except PlaybookError as exc:
                # Someone is publishing it right now, or it cannot be rendered: the alert says so.
                done = f"not resolved: {exc}"
            else:
                done = "closed" if outcome.closed else "published, not every delivery confirmed yet"
            return notices.recovered(playbook, monitor.name, change.since, change.finding.detail,
                                     incident=incident, resolved=done)
        return notices.recovered(playbook, monitor.name, change.since, change.finding.detail, incident=incident)

    def _previews(self, playbook: Playbook, since: datetime) -> Mapping[str, str]:
        """What the first notice would say, in each language: the shortest text of a dry run."""
        try:
            plan = build_plan(self.session.load_channels(), playbook, playbook.first_phase, resolve(playbook, {}),
                              playbook.id, since, since + playbook.window, drill=False, offline=True)
        except PlaybookError as exc:
            return {playbook.default_language: f"(cannot be rendered: {exc})"}
        texts = sent_texts(plan)
        shown = {}
        for lang in playbook.languages:
            said = notices.gist(texts, lang)
            if said is not None:
                shown[lang] = said[1]
        return shown


def _in_session(home: Home, command: Callable[..., Outcome], *args: Any) -> Outcome:
    """A publishing command with a session of its own (its ledger and log), closed once it is done."""
    session = Session(home)
    try:
        return command(session, *args)
    finally:
        session.close()


def _incident_of(outcome: Outcome) -> str:
    return outcome.result.incident if outcome.result is not None else outcome.plan.incident_id


async def watch_in_foreground(home: Home, ids: Sequence[str]) -> None:
    """`playbook watch`: the monitors until SIGTERM or Ctrl-C."""
    import signal

    from playbook.ledger import open_ledger

    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    ledger = open_ledger(home.state, create=True, environ=home.env)
    try:
        watcher = Watcher(home, ledger, ids=ids, stop=stop)
        playbooks = watcher.playbooks()
        if not playbooks:
            raise PlaybookError("no playbook of this home has monitors to watch: add `monitors:` to one "
                                "(see README: Monitors)")
        await watcher.run(playbooks)
    finally:
        ledger.close()
