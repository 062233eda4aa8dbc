"""What a channel that shows a history (the status page) has published, read back from the ledger.

The ledger is shared by every machine of a team: a site rebuilt from it is the same complete site whichever
machine publishes, where a state file beside the site only knows what this machine wrote.
"""

from __future__ import annotations

from collections.abc import Mapping

from playbook.errors import PlaybookError
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.ledger.contract import Incident, Ledger, Post, delivery_key
from playbook.ledger.statuses import DeliveryStatus
from playbook.planning.plan import stage_of
from playbook.publishers.base import PastPost, Stage


def channel_history(ledger: Ledger, home: Home, channel: str, size: int, current: Post) -> tuple[PastPost, ...]:
    """Every post of `channel` the ledger holds in the open incidents and the `size` newest closed ones, oldest
    first: those with a confirmed delivery in a language (in those languages), and `current` in all of its."""
    playbooks: dict[str, Playbook | None] = {}
    chosen: list[PastPost] = []
    closed = 0
    for incident in reversed(ledger.all_incidents()):
        if not incident.open and closed >= size:
            continue
        # The languages of each post that reached the channel; the post being published shows in all of its.
        sent: dict[int, set[str]] = {}
        for row in ledger.deliveries(incident.id, recipients=False):
            if row.channel == channel and row.status == DeliveryStatus.SENT:
                sent.setdefault(row.seq, set()).add(row.lang)
        publishing = current.seq if incident.id == current.incident else None
        if not sent and publishing is None:
            continue
        closed += not incident.open
        if incident.playbook not in playbooks:
            playbooks[incident.playbook] = _playbook(home, incident.playbook)
        posts = ledger.posts(incident.id)
        last = max(p.seq for p in posts)
        for post in posts:
            if post.seq == publishing or post.seq in sent:
                languages = None if post.seq == publishing else sent[post.seq]
                chosen.append(_past(incident, post, channel, languages, playbooks[incident.playbook], last=last))
    return tuple(sorted(chosen, key=lambda p: (p.detected_at, p.incident_id, p.seq)))


def _playbook(home: Home, playbook_id: str) -> Playbook | None:
    try:
        return home.load_playbook(playbook_id)
    except PlaybookError:
        # A playbook renamed or removed since: its incidents still show, dated in UTC, their stages guessed.
        return None


def _past(incident: Incident, post: Post, channel: str, languages: set[str] | None, playbook: Playbook | None,
          *, last: int) -> PastPost:
    recorded: Mapping[str, Mapping[str, str]] = (
        ((post.texts or {}).get("channels") or {}).get(channel, {}).get("languages") or {})
    texts = {lang: blocks for lang, blocks in recorded.items() if languages is None or lang in languages}
    if playbook is not None and post.phase in playbook.phases:
        stage, zone = stage_of(playbook, post.phase), playbook.timezone
    else:
        stage, zone = Stage(first=post.seq == 1, last=not incident.open and post.seq == last), "UTC"
    return PastPost(
        incident_id=incident.id, playbook_id=incident.playbook, drill=incident.drill,
        detected_at=incident.detected_at, seq=post.seq, phase=post.phase, issued_at=post.issued_at,
        key=delivery_key(incident.id, post.seq, post.phase, channel, "-").rsplit("/", 1)[0], texts=texts,
        next_update_at=post.next_update_at, timezone=zone, stage=stage,
    )
