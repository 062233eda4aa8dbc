"""The ledger's contract: what every store (a SQLite file, a PostgreSQL database) records and guarantees.

A delivery's intent is committed before it is attempted and its outcome right after, so a process killed at
any moment leaves a ledger that says exactly what was confirmed and what was in flight.

Claims are how several processes (on one machine or several, sharing one store) share work: a process claims a
post, or a batch of its deliveries, in one atomic step, under a lease it renews while it works; no other owner
attempts what is claimed under a live lease, and an expired lease (its owner was killed) is taken over by the
next claim. The guarantees below hold across processes, not only inside one: a store implements them in its
own transactions, never by trusting callers to check first.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from playbook.errors import IncidentError, LedgerError
from playbook.ledger.duties import DutyLedger
from playbook.ledger.statuses import DeliveryStatus

# A claim lives this long unless renewed; its owner renews it every third of that. Long enough that a process
# whose loop is held up by a busy ledger (SQLite waits up to 30 s for a lock) keeps it, short enough that
# `resume` takes over soon after a kill. PLAYBOOK_LEASE_SECONDS changes it (tests, tuning).
DEFAULT_LEASE = timedelta(seconds=60)
LEASE_ENV = "PLAYBOOK_LEASE_SECONDS"


def lease_from_env() -> timedelta:
    """The lease length: $PLAYBOOK_LEASE_SECONDS when set, else DEFAULT_LEASE."""
    raw = os.environ.get(LEASE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_LEASE
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0
    if not 0 < seconds < 86_400:
        raise LedgerError(f"{LEASE_ENV} must be a number of seconds above 0 (it is '{raw}')")
    return timedelta(seconds=seconds)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Incident:
    id: str
    playbook: str
    drill: bool
    open: bool
    detected_at: datetime
    opened_at: datetime
    closed_at: datetime | None
    phase: str
    vars: dict[str, str | None]
    # Who opened it: user@host (None in a ledger older than the column).
    operator: str | None = None


@dataclass(frozen=True)
class Post:
    """One publication of a phase: `trigger` makes the first, each `update`/`resolve` the next."""

    incident: str
    seq: int
    phase: str
    issued_at: datetime
    deadline: datetime
    next_update_at: datetime | None
    vars: dict[str, str | None]
    operator: str | None = None
    # What the post said, secrets masked, for the review: {"variables": {...}, "channels": {channel:
    # {per_recipient, stands_in_for, languages: {lang: {block: text}}}}}.
    texts: dict[str, Any] | None = None
    # Published by a worker because an update was overdue (incident.holding in the templates).
    holding: bool = False
    # Its failing deliveries were handed to the workers, to be retried until then.
    handed_until: datetime | None = None


@dataclass(frozen=True)
class NewPost:
    """A post about to be recorded, with the (channel, lang, recipient) intents known up front."""

    phase: str
    issued_at: datetime
    deadline: datetime
    next_update_at: datetime | None
    variables: dict[str, str | None]
    intents: tuple[tuple[str, str, str | None], ...] = ()
    operator: str | None = None
    texts: dict[str, Any] | None = None
    holding: bool = False


@dataclass(frozen=True)
class DeliveryRow:
    key: str
    incident: str
    seq: int
    phase: str
    channel: str
    lang: str
    recipient: str | None
    status: DeliveryStatus
    attempts: int
    remote_id: str | None
    url: str | None
    note: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Confirmation:
    """A delivery the remote side confirmed at `at`, and what it called it."""

    key: str
    remote_id: str | None
    url: str | None
    note: str | None
    at: datetime


def delivery_key(incident: str, seq: int, phase: str, channel: str, lang: str, recipient: str | None = None) -> str:
    """The delivery's stable key: a recipient's is their address (lower-cased), never their language.

    The language column of a list may be edited between a run and `resume`: the key must not change with it.
    """
    return f"{post_prefix(incident, seq, phase)}{channel}/{recipient.lower() if recipient else lang}"


def post_prefix(incident: str, seq: int, phase: str) -> str:
    """What every delivery key of a post starts with: the rest names the channel, language and recipient, the
    same from one post to the next (how a store finds what a later post supersedes)."""
    return f"{incident}/{seq}-{phase}/"


@dataclass(frozen=True)
class Owner:
    """Who holds a claim: a process on a host; `token` tells two holders apart (two ledgers, a reused pid)."""

    host: str
    pid: int
    token: str

    @classmethod
    def this_process(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{os.urandom(6).hex()}")

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


@dataclass(frozen=True)
class Holder:
    """Another owner's live claim on a post: who, how many unconfirmed deliveries, and until when at least."""

    owner: Owner
    seq: int
    unconfirmed: int
    until: datetime

    def describe(self) -> str:
        """'412 deliveries are being sent by pid 8812 on laptop-anna' (or the post, before any is recorded)."""
        if not self.unconfirmed:
            return f"post {self.seq} is being published by {self.owner}"
        count = f"{self.unconfirmed} deliveries are" if self.unconfirmed != 1 else "1 delivery is"
        return f"{count} being sent by {self.owner}"


class ClaimHeld(IncidentError):
    """Another process is publishing this post, under a live lease: nothing here may touch it."""

    def __init__(self, message: str, *, holder: Holder) -> None:
        super().__init__(message)
        self.holder = holder


def publishing(incident_id: str, holder: Holder) -> ClaimHeld:
    """The refusal of a new post while another process publishes one of the incident."""
    pending = (f" ({holder.unconfirmed} {'delivery' if holder.unconfirmed == 1 else 'deliveries'} not yet "
               "confirmed)" if holder.unconfirmed else "")
    return ClaimHeld(
        f"incident {incident_id}: post {holder.seq} is being published by {holder.owner}{pending}; nothing was "
        f"published here: wait for it to finish ('playbook status {incident_id}')", holder=holder)


def blocking(holders: Iterable[Holder], handed: Iterable[int]) -> Holder | None:
    """The holder a new post must wait for: any but a worker retrying a post handed to it (`handed`, the posts
    whose hand-off runs), whose failures the new post supersedes instead."""
    left_to_workers = set(handed)
    return next((h for h in holders if h.seq not in left_to_workers), None)


def post_held(incident_id: str, holder: Holder) -> ClaimHeld:
    """The refusal of a claim on a post another owner holds under a live lease."""
    return ClaimHeld(
        f"incident {incident_id}: {holder.describe()}; nothing to do here (if that process is gone, its claim "
        f"lapses at {holder.until:%H:%M:%S} UTC: run 'playbook resume {incident_id}' again then)", holder=holder)


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming deliveries: those now held by this owner, those another live owner holds, and the
    status of those that were already finished (sent or rejected)."""

    taken: frozenset[str]
    held: Mapping[str, Owner]
    finished: Mapping[str, DeliveryStatus]


class Ledger(DutyLedger, Protocol):
    """A ledger as the commands and the engine use it; each store opens as one owner (this process, unless
    a test plays two) with a clock that dates claims, and its own errors for a store it cannot read or write.

    Every write is one transaction: a process killed at any moment leaves it whole. A write the store cannot
    make is a LedgerWriteError; a store it cannot trust (damaged, emptied, of a newer schema) a LedgerError,
    raised on opening, before anything is sent, and the store is never rebuilt over what is left.
    """

    @property
    def lease(self) -> timedelta:
        """How long this owner's claims live unless renewed (the engine renews them every third of it)."""

    def close(self) -> None: ...

    def bear_with_outages_until(self, moment: datetime) -> None:
        """Let a write that finds the store gone (a database restarting, out of reach) wait for it until `moment`
        (a run's deadline: the window), and at least the store's own minimum; a file store has nothing to
        wait for."""

    # -- incidents -----------------------------------------------------------------------------------
    def open_incidents(self, playbook: str | None = None, *, drill: bool | None = None) -> list[Incident]:
        """The open incidents (of a playbook, of a kind), oldest first."""

    def all_incidents(self) -> list[Incident]:
        """Every incident, oldest first."""

    def incident(self, incident_id: str) -> Incident:
        """The incident, or IncidentError naming a few recent ones."""

    def create_incident(self, playbook: str, detected_at: datetime, first: NewPost, *, drill: bool,
                        allow_concurrent: bool, zone: tzinfo = UTC) -> tuple[Incident, Post]:
        """Open an incident with its first post and the post's intents, claimed by this owner, in one transaction.

        One open incident per playbook and kind (drill or not): unless `allow_concurrent`, IncidentError names
        the open one, even when two processes create at the same instant. The id is the playbook, then the
        detection time in `zone` (the playbook's, as the operator reads it), then -2, -3... if taken.
        """

    def close_incident(self, incident_id: str) -> None: ...

    # -- posts ---------------------------------------------------------------------------------------
    def add_post(self, incident_id: str, new: NewPost, *, again: bool = False) -> Post:
        """Record a later post of an open incident and its intents, claimed by this owner, in one transaction.

        One post per phase change, even from processes publishing at once: ClaimHeld if another owner is
        publishing a post of the incident under a live lease (a worker retrying a post handed to it excepted);
        IncidentError if the incident is closed or already in `new.phase` (unless `again`).

        In the same transaction, what earlier posts left unconfirmed (pending, failed, or interrupted mid-send)
        on a channel, language and recipient the new post also has is marked SUPERSEDED, its claim cleared:
        never sent after the newer words. An attempt under way under another owner's live claim is left to
        finish and be recorded; what the new post does not cover stays for `resume`.
        """

    def record_texts(self, incident_id: str, seq: int, texts: dict[str, Any]) -> None:
        """Replace a post's recorded texts (secrets masked), as trigger renders again with the final id."""

    def post(self, incident_id: str, seq: int) -> Post: ...

    def posts(self, incident_id: str) -> list[Post]:
        """The incident's posts in order."""

    # -- deliveries ----------------------------------------------------------------------------------
    def record_intents(self, post: Post, items: Iterable[tuple[str, str, str | None]]) -> None:
        """Write (channel, lang, recipient) intents as pending; existing rows are left as they are."""

    def mark_sending(self, key: str, *, confirmed: Confirmation | None = None) -> int | None:
        """Record an attempt as under way, before it starts; returns its number (1 for the first).

        `confirmed`, the delivery that the same sender has just seen confirmed, is recorded in the same
        transaction. Returns None, and changes nothing, when this owner no longer holds the delivery's claim
        (its lease lapsed and another owner took it over): the caller must not attempt it. Returns None too
        when a later post of the incident has the same channel, language and recipient (it came while this
        delivery was being retried): the delivery is then marked SUPERSEDED, never attempted again.
        """

    def mark_sent(self, confirmed: Confirmation) -> None:
        """Record a confirmed delivery, whoever holds its claim now: it went out, no one may send it again."""

    def mark_failed(self, key: str, error: str, *, rejected: bool = False) -> None:
        """Record the delivery as given up (or refused for good) and release its claim; only its holder can."""

    def mark_all_failed(self, keys: Sequence[str], error: str, *, rejected: bool = False) -> None:
        """mark_failed for many deliveries in one transaction (a channel that stayed down)."""

    def note_error(self, key: str, error: str) -> None:
        """The last error of a delivery that will be retried (it stays 'sending'); only its holder can."""

    # -- claims --------------------------------------------------------------------------------------
    def claim_post(self, incident_id: str, seq: int) -> None:
        """Claim a post for this owner under a fresh lease, taking it over if its owner's lease has expired.

        ClaimHeld, naming the holder, while another owner holds it under a live lease. A post is claimed by
        whoever publishes it (trigger, update, resolve, resume), for the whole run.
        """

    def claim(self, keys: Sequence[str]) -> Claim:
        """Claim recorded deliveries for this owner, in one atomic step: a delivery has one owner at a time.

        Each unfinished delivery of `keys` that is unclaimed, already this owner's, or whose lease has expired,
        is claimed until now + lease. Those another owner holds under a live lease are left to it (`held`);
        those already sent or rejected are reported with their status (`finished`), never claimed: a
        confirmed delivery is never attempted again. Keys never recorded are ignored.
        """

    def renew(self) -> int:
        """Extend every claim this owner holds to now + lease; returns how many (posts and deliveries) it holds.

        Claims another owner took over after this one's lease expired are theirs: not renewed, not counted.
        """

    def release(self, keys: Sequence[str] | None = None) -> None:
        """Give up this owner's claims on `keys`, or on everything it holds (posts too) when `keys` is None."""

    def holders(self, incident_id: str) -> list[Holder]:
        """The posts of an incident that other owners hold under a live lease, and how much is left in each."""

    # -- reading -------------------------------------------------------------------------------------
    def deliveries(self, incident_id: str, seq: int | None = None, *, recipients: bool = True) -> list[DeliveryRow]:
        """The deliveries of an incident (of one post; without per-recipient rows unless `recipients`)."""

    def delivery_counts(self, incident_id: str,
                        seq: int | None = None) -> list[tuple[int, str, str, DeliveryStatus, int]]:
        """(seq, channel, lang, status, count) for the per-recipient rows: a summary without loading them all."""

    def recipients_last_sent(self, incident_id: str) -> dict[tuple[int, str, str], datetime]:
        """When the last recipient of each (seq, channel, lang) of a per-recipient channel was confirmed."""

    def unfinished_posts(self, incident_id: str) -> list[int]:
        """The posts with deliveries pending, in flight or failed: what `resume` finishes."""

    def first_receipt(self, incident_id: str, channel: str, lang: str) -> DeliveryRow | None:
        """The first confirmed post of a channel in a language: later phases reply to it."""

    def first_sent_at(self, incident_id: str, seq: int = 1) -> datetime | None:
        """When the first delivery of a post was confirmed."""

    def channel_paces(self, sample: int = 2000) -> dict[str, tuple[str, int, float, float, datetime]]:
        """Per channel, its latest post with confirmed deliveries: (incident, messages, wall seconds from the
        first start to the last confirmation, median seconds of one delivery, when it finished)."""

    # -- rehearsals ----------------------------------------------------------------------------------
    def record_rehearsal(self, playbook: str, passed: bool, summary: dict[str, Any]) -> None:
        """Record a rehearsal's outcome, secrets masked."""

    def last_rehearsal(self, playbook: str) -> tuple[datetime, bool] | None:
        """When the playbook was last rehearsed, and whether it passed."""

    # -- posts left to the workers ------------------------------------------------------------------
    def hand_off(self, incident_id: str, seq: int, until: datetime) -> None:
        """Leave the post's unfinished deliveries to the workers, to be retried until `until` (a later time
        than the one recorded wins)."""

    def handed_off(self) -> list[Post]:
        """The posts handed to the workers whose time has not run out, whose incident is open and that still have
        unfinished deliveries, oldest first: closing an incident ends its hand-off."""
