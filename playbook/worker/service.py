"""The worker's passes: a heartbeat, the retries the commands handed over, the duties that are due; and how it
stops (SIGTERM: attempts under way finish, claims are released) or reloads the home (SIGHUP).

Several workers may serve one ledger, on one machine or several: retries are shared through the posts' claims,
and each duty is taken by one worker in one atomic step (`Ledger.take_duty`), so nothing is done twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import datetime, timedelta

from playbook import logs
from playbook.commands.publishing import current_operator, plan_of, publish, sent_texts
from playbook.commands.rehearse import rehearse
from playbook.commands.session import Session
from playbook.engine import Engine, Retries
from playbook.errors import PlaybookError
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.ledger import open_ledger
from playbook.ledger.contract import ClaimHeld, Ledger, NewPost, Post, utcnow
from playbook.ledger.duties import BEAT, DutyKind
from playbook.ledger.statuses import DeliveryStatus
from playbook.planning.plan import build_plan
from playbook.worker import notices
from playbook.worker.schedule import Due, due_for_incident, rehearsal_key

log = logging.getLogger("playbook.worker")

# After SIGTERM, how long attempts under way may take to finish before what is left is cancelled (an attempt
# cancelled mid-way stays 'sending', unconfirmed: `resume` or another worker finishes it).
GRACE = timedelta(seconds=30)
# How long a worker holds a duty it took: a reminder takes seconds, a rehearsal (offline) about as long.
DUTY_HOLD = timedelta(minutes=5)


class Worker:
    """One worker process. `home` makes the home (again, on SIGHUP); `clock` dates the duties (tests drive it);
    `once` runs a single pass, where each handed-over delivery gets one attempt, for cron and tests."""

    def __init__(self, home: Callable[[], Home], *, clock: Callable[[], datetime] = utcnow,
                 every: timedelta = BEAT, once: bool = False) -> None:
        self.make_home = home
        self.home = home()
        self.session = Session(self.home)
        self.clock = clock
        self.every = every
        self.once = once
        self.stop = asyncio.Event()
        self.reload = asyncio.Event()
        self.started = utcnow()
        # The posts this process is retrying, by (incident, seq): each in a task with a ledger of its own. A run
        # that ended with deliveries still failing had them refused for good (retryable ones are retried until
        # the end handed over): it is not started again by this worker, `resume` is for after the fix.
        self.retrying: dict[tuple[str, int], asyncio.Task[bool]] = {}
        self.ledger: Ledger | None = None
        # The monitors of the home's playbooks, watched beside the passes (not by a single `--once` pass).
        self.watching: asyncio.Task[None] | None = None
        self.watch_stop = asyncio.Event()

    # -- life ------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Pass after pass until SIGTERM (or Ctrl-C), or one pass with `once`."""
        loop = asyncio.get_running_loop()
        for sig, event in ((signal.SIGTERM, self.stop), (signal.SIGHUP, self.reload)):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, event.set)
        self.ledger = open_ledger(self.home.state, create=True, environ=self.home.env)
        logs.attach(self.home.log_path)
        log.info("worker started for %s (ledger %s)", self.home.root, _shown(self.home.state))
        try:
            if not self.once:
                self._watch()
            while not self.stop.is_set():
                if self.reload.is_set():
                    self._reload()
                    await self._rewatch()
                try:
                    await self.one_pass()
                except PlaybookError as exc:
                    # The ledger is unreachable or a file unreadable: said once a pass, tried again at the next.
                    log.error("pass failed, trying again in %s: %s", self.every, exc)
                if self.once:
                    await self._finish_retries()
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.every.total_seconds()):
                        await _first(self.stop, self.reload)
        finally:
            self.stop.set()
            await self._unwatch()
            await self._finish_retries()
            with contextlib.suppress(PlaybookError):
                self.ledger.worker_stopped()
            self.ledger.close()
            self.session.close()
            log.info("worker stopped")

    def _reload(self) -> None:
        self.reload.clear()
        try:
            home = self.make_home()
        except PlaybookError as exc:
            log.error("SIGHUP: the home cannot be read again, keeping the previous one: %s", exc)
            return
        self.session.close()
        self.home, self.session = home, Session(home)
        log.info("SIGHUP: home reloaded from %s", home.root)

    def _watch(self) -> None:
        """Watch the monitors of the home as it is now, with a ledger of their own (the watcher's records are
        its own, never tied to a retry's claims)."""
        from playbook.worker.watch import Watcher

        self.watch_stop = asyncio.Event()
        ledger = open_ledger(self.home.state, create=True, environ=self.home.env)
        watcher = Watcher(self.home, ledger, stop=self.watch_stop)

        async def watch() -> None:
            try:
                await watcher.run()
            except PlaybookError as exc:
                log.error("the monitors stopped: %s", exc)
            except Exception:  # a bug: said in the log now, not when the task is collected
                log.exception("the monitors stopped")
            finally:
                ledger.close()

        self.watching = asyncio.create_task(watch(), name="watch")

    async def _unwatch(self) -> None:
        self.watch_stop.set()
        if self.watching is not None:
            await asyncio.gather(self.watching, return_exceptions=True)
            self.watching = None

    async def _rewatch(self) -> None:
        """After SIGHUP: the monitors as the home now describes them."""
        await self._unwatch()
        self._watch()

    async def _finish_retries(self) -> None:
        """Let the retries under way finish their attempts (none starts once stopping), then cancel the rest."""
        tasks = [t for t in self.retrying.values() if not t.done()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=GRACE.total_seconds())
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def doing(self) -> str:
        running = sorted(f"{incident} post {seq}" for (incident, seq), t in self.retrying.items() if not t.done())
        return f"retrying {', '.join(running)}" if running else "idle"

    # -- one pass --------------------------------------------------------------------------------------
    async def one_pass(self) -> None:
        """Beat, start the retries handed over, then do every duty that is due."""
        ledger = self._ledger()
        ledger.beat(str(self.home.root), self.started, self.doing())
        for post in ledger.handed_off():
            self._start_retry(post)
        now = self.clock()
        for incident in ledger.open_incidents():
            playbook = self._playbook(incident.playbook)
            posts = ledger.posts(incident.id)
            if playbook is None or not posts:
                continue
            for due in due_for_incident(playbook, incident, posts[-1], now):
                if ledger.take_duty(due.key, due.kind, incident=incident.id, playbook=playbook.id, hold=DUTY_HOLD):
                    await self._do(due, playbook)
        for playbook_id in self.home.playbook_ids():
            playbook = self._playbook(playbook_id)
            if playbook is None:
                continue
            key = rehearsal_key(playbook, ledger.last_rehearsal(playbook.id), now)
            if key is not None and ledger.take_duty(key, DutyKind.REHEARSAL, incident=None, playbook=playbook.id,
                                                    hold=DUTY_HOLD):
                await self._rehearse(key, playbook)
        ledger.beat(str(self.home.root), self.started, self.doing())

    def _ledger(self) -> Ledger:
        if self.ledger is None:
            self.ledger = open_ledger(self.home.state, create=True, environ=self.home.env)
        return self.ledger

    def _playbook(self, playbook_id: str) -> Playbook | None:
        try:
            return self.home.load_playbook(playbook_id)
        except PlaybookError as exc:
            log.error("playbook %s cannot be read, its duties wait for it to be fixed: %s", playbook_id, exc)
            return None

    # -- retries ---------------------------------------------------------------------------------------
    def _start_retry(self, post: Post) -> None:
        key = (post.incident, post.seq)
        task = self.retrying.get(key)
        if task is not None and (not task.done() or task.result()):
            return
        self.retrying[key] = asyncio.create_task(self._retry(post), name=f"retry {post.incident}/{post.seq}")

    async def _retry(self, post: Post) -> bool:
        """Finish a handed-over post, as `resume` would, never past the end it was handed with; True once this
        worker ran it to its end (not when another process held it, nor when this one was stopping)."""
        # A ledger of its own: its claims are this run's alone, released when it ends whatever the others do.
        ledger = open_ledger(self.home.state, create=False, environ=self.home.env)
        try:
            incident = ledger.incident(post.incident)
            playbook = self.home.load_playbook(incident.playbook)
            plan = plan_of(self.session, incident, playbook, post)
            retries = Retries(hand_off=self.once, until=post.handed_until, stop=self.stop)
            result = await Engine(ledger, post, plan, retries=retries).run()
            log.info("%s: post %d retried by the worker: %s", post.incident, post.seq,
                     "everything confirmed" if result.ok else "some deliveries still failing")
            if result.ok and post.phase == playbook.last_phase and not ledger.unfinished_posts(incident.id):
                ledger.close_incident(incident.id)
                log.info("%s: resolved and closed", incident.id)
            return not self.stop.is_set()
        except ClaimHeld:
            # Another worker (or a `resume`) is sending it: it is theirs until their lease lapses.
            return False
        except PlaybookError as exc:
            log.error("%s: post %d cannot be retried: %s", post.incident, post.seq, exc)
            return False
        except Exception:
            log.exception("%s: post %d: the retry run failed", post.incident, post.seq)
            return False
        finally:
            ledger.close()

    # -- duties ----------------------------------------------------------------------------------------
    async def _do(self, due: Due, playbook: Playbook) -> None:
        ledger = self._ledger()
        try:
            if due.kind == DutyKind.HOLDING:
                ok, outcome = await self._holding(due, playbook)
            else:
                ok, outcome = await self._remind(due, playbook)
        except PlaybookError as exc:
            ok, outcome = False, str(exc)
        except Exception as exc:  # one duty's bug must not stop the others, nor the retries
            log.exception("%s: failed", due.key)
            ok, outcome = False, f"{type(exc).__name__}: {exc}"
        ledger.finish_duty(due.key, ok=ok, outcome=outcome)
        log.log(logging.INFO if ok else logging.WARNING, "%s: %s", due.key, outcome)

    async def _remind(self, due: Due, playbook: Playbook) -> tuple[bool, str]:
        assert playbook.reminders is not None
        notice = notices.reminder(playbook, due.incident, due.post, due.reason)
        lines = await notices.tell(self.session.load_channels(), playbook.reminders.channels, notice, key=due.key,
                                   incident=due.incident, drill=due.incident.drill,
                                   deadline=self.clock() + playbook.window)
        return all(": sent" in line for line in lines), "; ".join(lines)

    async def _holding(self, due: Due, playbook: Playbook) -> tuple[bool, str]:
        """Publish the current phase again on the holding channels, marked as a holding update."""
        assert playbook.holding is not None
        ledger = self._ledger()
        incident = due.incident
        # Dated by the worker's clock, as the decision was: the next holding update is due a cadence later.
        issued = self.clock()
        plan = build_plan(self.session.load_channels(), playbook, incident.phase, dict(due.post.vars), incident.id,
                          incident.detected_at, issued + playbook.window, drill=incident.drill, offline=False,
                          next_update=issued + playbook.update_every, issued_at=issued, holding=True,
                          only=playbook.holding.channels)
        if not plan.channels:
            # validate warns about it: none of the holding channels publishes in this phase.
            return False, (f"no holding update: none of {', '.join(playbook.holding.channels)} publishes in phase "
                           f"'{incident.phase}'")

        intents = tuple((c.name, lang, None) for c in plan.channels
                        if c.skipped is None and not c.publisher.per_recipient for lang in c.languages)
        new = NewPost(plan.phase, issued, plan.deadline, plan.context.next_update_at, plan.variables, intents,
                      operator=f"worker {current_operator()}", texts=sent_texts(plan), holding=True)
        try:
            post = ledger.add_post(incident.id, new, again=True)
        except (ClaimHeld, PlaybookError) as exc:
            return False, f"no holding update: {exc}"
        # One attempt each, what fails handed to the workers (this one included): the pass goes on, and its
        # heartbeat with it, however long a channel stays down.
        outcome = await publish(ledger, post, plan, hand_off_to=("the workers",), stop=self.stop)
        assert outcome.result is not None
        sent = sum(1 for d in outcome.result.deliveries if d.status == DeliveryStatus.SENT)
        if outcome.result.ok:
            return True, f"holding update published as post {post.seq} ({sent} deliveries)"
        return True, (f"holding update recorded as post {post.seq}: {sent} deliveries confirmed, the others left "
                      "to the workers' retries")

    async def _rehearse(self, key: str, playbook: Playbook) -> None:
        """The playbook's offline rehearsal, recorded like `playbook rehearse`; a failure is told to the on-call."""
        ledger = self._ledger()
        results = await asyncio.to_thread(rehearse, self.home, [playbook.id], offline=True)
        result = results[0]
        outcome = "passed" if result.ok else f"failed: {'; '.join(f.detail for f in result.failures[:3])}"
        if not result.ok and playbook.reminders is not None:
            notice = notices.rehearsal_failed(playbook, result.at,
                                              (f"{f.group}: {f.name}: {f.detail}" for f in result.failures))
            lines = await notices.tell(self.session.load_channels(), playbook.reminders.channels, notice, key=key,
                                       incident=None, drill=False, deadline=self.clock() + playbook.window)
            outcome += f"; told {', '.join(lines)}"
        # The duty is done either way: the rehearsal is recorded, and the next one is due `rehearse_every` later.
        ledger.finish_duty(key, ok=True, outcome=outcome)
        log.log(logging.INFO if result.ok else logging.WARNING, "%s: %s", key, outcome)


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of the events is set."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _shown(state: object) -> str:
    from playbook.ledger.location import is_database_url, shown

    return shown(str(state)) if is_database_url(str(state)) else str(state)
