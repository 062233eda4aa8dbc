"""Publishing commands: trigger, update, resolve and resume, each planned in full before anything is sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from playbook.commands.session import Session
from playbook.engine import Engine, Observer, PostResult, Retries
from playbook.errors import IncidentError, PlaybookError, did_you_mean
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.ledger import open_ledger
from playbook.ledger.contract import ClaimHeld, Incident, Ledger, NewPost, Post, blocking, publishing, utcnow
from playbook.ledger.duties import ALIVE
from playbook.ledger.statuses import UNFINISHED, DeliveryStatus
from playbook.planning.plan import PostPlan, build_plan
from playbook.rendering.variables import resolve
from playbook.timeparse import parse_detection

# Called with the plan before anything is recorded or sent; returning False cancels.
Confirm = Callable[[PostPlan], bool]


@dataclass(frozen=True)
class HandOff:
    """Deliveries a command left to a live worker after their first attempt."""

    deliveries: int
    until: datetime
    # The worker(s) alive when it was handed: "pid N on host".
    workers: tuple[str, ...]


@dataclass
class Outcome:
    """What a publishing command did: the plan always, the result unless it was a dry-run or cancelled."""

    plan: PostPlan
    result: PostResult | None = None
    dry_run: bool = False
    cancelled: bool = False
    closed: bool = False
    handed_off: HandOff | None = None


def _run(ledger: Ledger, post: Post, plan: PostPlan, observer: Observer | None, *, wait: bool) -> Outcome:
    """Publish the post. While a worker is alive (and unless `wait`), each delivery is attempted once and what
    still fails is handed to the workers, which retry it until the channel's own end, as this run would have."""
    workers = () if wait else tuple(f"pid {w.pid} on {w.host}" for w in ledger.workers(ALIVE))
    return asyncio.run(publish(ledger, post, plan, observer, hand_off_to=workers))


async def publish(ledger: Ledger, post: Post, plan: PostPlan, observer: Observer | None = None, *,
                  hand_off_to: tuple[str, ...] = (), stop: asyncio.Event | None = None) -> Outcome:
    """Publish a recorded post; with `hand_off_to` (the live workers), each delivery once, what still fails
    recorded as theirs to retry until the channel's own end."""
    engine = Engine(ledger, post, plan, observer, retries=Retries(hand_off=bool(hand_off_to), stop=stop))
    result = await engine.run()
    if result.ok or not hand_off_to:
        return Outcome(plan, result)
    failed = {d.channel for d in result.deliveries if d.status == DeliveryStatus.FAILED}
    ends = [end for channel, end in engine.sender.ends.items() if channel in failed]
    left = sum(1 for row in ledger.deliveries(post.incident, post.seq) if row.status in UNFINISHED)
    if not ends or not left:
        return Outcome(plan, result)
    until = max(ends)
    ledger.hand_off(post.incident, post.seq, until)
    return Outcome(plan, result, handed_off=HandOff(left, until, hand_off_to))


def trigger(session: Session, playbook_id: str, given: Mapping[str, str], detected_at: datetime | str | None,
            *, dry_run: bool = False, drill: bool = False, new: bool = False, wait: bool = False,
            confirm: Confirm | None = None, observer: Observer | None = None) -> Outcome:
    """Open an incident; `detected_at` as the user wrote it (`05:20`, `-15m`) is read in the playbook's zone."""
    playbook = session.home.load_playbook(playbook_id)
    variables = resolve(playbook, given)
    if isinstance(detected_at, str):
        try:
            detected_at = parse_detection(detected_at, zone=playbook.zone)
        except ValueError as exc:
            raise PlaybookError(f"--detected-at: {exc}") from None
    detected = detected_at or utcnow()
    if detected > utcnow() + timedelta(minutes=1):
        raise PlaybookError("--detected-at is in the future")
    phase = playbook.first_phase
    deadline = detected + playbook.window
    provisional = f"{playbook.id}-{'drill-' if drill else ''}{detected.astimezone(playbook.zone):%Y%m%d-%H%M}"
    if dry_run:
        plan = build_plan(session.load_channels(), playbook, phase, variables, provisional, detected, deadline,
                          drill=drill, offline=True)
        return Outcome(plan, dry_run=True)
    plan = build_plan(session.load_channels(), playbook, phase, variables, provisional, detected, deadline,
                      drill=drill, offline=False)
    # A declined confirmation leaves no trace, not even an empty ledger: it is created only once confirmed.
    if not new and (existing := session.existing_ledger()) is not None:
        _refuse_if_open(existing, playbook.id, drill)
    if confirm is not None and not confirm(plan):
        return Outcome(plan, cancelled=True)
    ledger = session.ledger(create=True)
    incident, post = ledger.create_incident(playbook.id, detected, _new_post(plan, utcnow()), drill=drill,
                                            allow_concurrent=new, zone=playbook.zone)
    if incident.id != provisional:
        plan = build_plan(session.load_channels(), playbook, phase, variables, incident.id, detected, deadline,
                          drill=drill, offline=False, next_update=plan.context.next_update_at or False)
        ledger.record_texts(incident.id, post.seq, sent_texts(plan))
    return _run(ledger, post, plan, observer, wait=wait)


def _new_post(plan: PostPlan, issued_at: datetime) -> NewPost:
    """The post as the ledger records it, with the intent of every single-target delivery."""
    intents = tuple((c.name, lang, None) for c in plan.channels
                    if c.skipped is None and not c.publisher.per_recipient for lang in c.languages)
    return NewPost(plan.phase, issued_at, plan.deadline, plan.context.next_update_at, plan.variables, intents,
                   operator=current_operator(), texts=sent_texts(plan))


def current_operator() -> str:
    """user@host of whoever runs the command: the review says who published what."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        # No login name in the environment nor in the password database (some containers).
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def sent_texts(plan: PostPlan) -> dict[str, Any]:
    """What a post said, for the review: its variables and, per channel and language, the blocks given.

    A per-recipient channel's text is rendered for the sample recipient (marked so): the review needs the
    words, not one customer's name and address.
    """
    texts: dict[str, Any] = {}
    for channel in plan.channels:
        if channel.skipped is not None:
            continue
        by_lang: dict[str, Any] = {}
        for lang in channel.languages:
            message = channel.messages[lang]
            if channel.publisher.per_recipient:
                message = plan.composer.message(plan.phase, lang, plan.variables, plan.context, channel.publisher)
            by_lang[lang] = dict(message.blocks)
        texts[channel.name] = {"per_recipient": channel.publisher.per_recipient, "stands_in_for":
                               channel.stands_in_for, "languages": by_lang}
    # The variables again, beside the `vars` that resume renders from: this copy is masked when recorded.
    return {"variables": plan.variables, "channels": texts}


def _refuse_if_open(ledger: Ledger, playbook_id: str, drill: bool) -> None:
    existing = ledger.open_incidents(playbook_id, drill=drill)
    if existing:
        kind = "drill" if drill else "incident"
        raise IncidentError(
            f"playbook '{playbook_id}' already has an open {kind}: {existing[0].id}; follow it with "
            f"'playbook update {existing[0].id} --phase ...', or pass --new to open a second one"
        )


def _open_incident(ledger: Ledger, incident_id: str) -> Incident:
    incident = ledger.incident(incident_id)
    if not incident.open:
        raise IncidentError(f"incident {incident_id} is closed (resolved at {incident.closed_at:%Y-%m-%d %H:%M} UTC)")
    return incident


def publish_phase(session: Session, incident_id: str, phase: str | None, given: Mapping[str, str],
                  *, resolve_it: bool = False, again: bool = False, dry_run: bool = False, wait: bool = False,
                  confirm: Confirm | None = None, observer: Observer | None = None) -> Outcome:
    """`update` (a later phase) or `resolve` (the last phase, then close the incident)."""
    ledger = session.ledger(readonly=dry_run)
    incident = _open_incident(ledger, incident_id)
    playbook = session.home.load_playbook(incident.playbook)
    phase = playbook.last_phase if resolve_it else phase
    if phase is None or phase not in playbook.phases:
        raise PlaybookError(
            f"playbook '{playbook.id}' has no phase '{phase}'{did_you_mean(str(phase), playbook.phases)};"
            f" phases: {', '.join(playbook.phases)}"
        )
    # Checked early so that nothing is rendered or asked for nothing; add_post checks again, atomically.
    now = utcnow()
    posts = ledger.posts(incident.id)
    holder = blocking(ledger.holders(incident.id),
                      [p.seq for p in posts if p.handed_until is not None and p.handed_until > now])
    if holder is not None and not dry_run:
        raise publishing(incident.id, holder)
    if phase == incident.phase and not again and not dry_run:
        raise IncidentError(
            f"incident {incident.id} is already in phase '{phase}'; pass --again to publish a new update "
            "of the same phase"
        )
    merged = {k: v for k, v in incident.vars.items() if k in playbook.vars}
    merged.update({k: v for k, v in resolve(playbook, {**{k: v or "" for k, v in merged.items()}, **given}).items()})
    issued = utcnow()
    deadline = issued + playbook.window
    plan = build_plan(session.load_channels(), playbook, phase, merged, incident.id, incident.detected_at, deadline,
                      drill=incident.drill, offline=dry_run)
    plan.supersedes = superseding(ledger, incident.id, plan)
    if dry_run:
        return Outcome(plan, dry_run=True)
    if confirm is not None and not confirm(plan):
        return Outcome(plan, cancelled=True)
    post = ledger.add_post(incident.id, _new_post(plan, issued), again=again)
    outcome = _run(ledger, post, plan, observer, wait=wait)
    if resolve_it and outcome.result is not None and outcome.result.ok:
        ledger.close_incident(incident.id)
        outcome.closed = True
    return outcome


def superseding(ledger: Ledger, incident_id: str, plan: PostPlan) -> list[str]:
    """What earlier posts left unconfirmed where `plan` publishes (its channels, in its languages): the new post
    supersedes it (add_post marks it, atomically, as it records the post)."""
    sent = [c for c in plan.channels if c.skipped is None]
    covered = {(c.name, lang) for c in sent for lang in c.languages}
    lists = {c.name for c in sent if c.publisher.per_recipient}
    found = [f"post {row.seq} · {row.channel} {row.lang}: {row.status}" + (f" ({row.error})" if row.error else "")
             for row in ledger.deliveries(incident_id, recipients=False)
             if row.status in UNFINISHED and (row.channel, row.lang) in covered]
    found += [f"post {seq} · {channel} {lang}: {count:,} recipient(s) {status}"
              for seq, channel, lang, status, count in ledger.delivery_counts(incident_id)
              if status in UNFINISHED and channel in lists]
    return found


def close_drill(home: Home, incident_id: str) -> None:
    """A rehearsal's drill is over once published: close it so it never blocks the next one."""
    ledger = open_ledger(home.state, create=False, environ=home.env)
    try:
        if ledger.incident(incident_id).drill:
            ledger.close_incident(incident_id)
    finally:
        ledger.close()


def plan_of(session: Session, incident: Incident, playbook: Playbook, post: Post) -> PostPlan:
    """The plan of a recorded post, rendered again from what it recorded: what resume and the worker send."""
    # A holding update went to some channels only: the ones it recorded (by their live names, a drill's
    # sandboxes standing in for them), whatever the playbook says now.
    recorded = ((post.texts or {}).get("channels") or {}).items()
    only = [entry.get("stands_in_for") or name for name, entry in recorded] if post.holding else None
    return build_plan(session.load_channels(), playbook, post.phase, post.vars, incident.id, incident.detected_at,
                      post.deadline, drill=incident.drill, offline=False, next_update=post.next_update_at or False,
                      issued_at=post.issued_at, holding=post.holding, only=only)


def resume(session: Session, incident_id: str, observer: Observer | None = None,
           confirm: Confirm | None = None, *, wait: bool = False) -> list[Outcome]:
    """Finish every post of the incident that has failed or unconfirmed deliveries."""
    ledger = session.ledger()
    incident = ledger.incident(incident_id)
    playbook = session.home.load_playbook(incident.playbook)
    posts = [ledger.post(incident.id, seq) for seq in ledger.unfinished_posts(incident.id)]
    plans = [plan_of(session, incident, playbook, post) for post in posts]
    # Every post is confirmed before any is sent: a "no" to the second must not follow a first already out.
    if confirm is not None and plans and not all(confirm(plan) for plan in plans):
        return [Outcome(plan, cancelled=True) for plan in plans]
    outcomes = []
    held: list[ClaimHeld] = []
    for post, plan in zip(posts, plans, strict=True):
        try:
            outcomes.append(_run(ledger, post, plan, observer, wait=wait))
        except ClaimHeld as exc:
            # Another process is sending this post right now: it is left to it, never sent a second time.
            held.append(exc)
    if held:
        raise held[0]
    if (incident.open and outcomes and all(o.result and o.result.ok for o in outcomes)
            and incident.phase == playbook.last_phase):
        ledger.close_incident(incident.id)
        outcomes[-1].closed = True
    if not outcomes:
        raise IncidentError(f"incident {incident.id} has nothing left to send: every delivery is confirmed")
    return outcomes
