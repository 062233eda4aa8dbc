"""The post-incident review document: what was said, where, when, by whom, against which deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NotRequired, TypedDict
from zoneinfo import ZoneInfo

from playbook.errors import PlaybookError
from playbook.home.locate import Home
from playbook.home.model import Playbook
from playbook.ledger.contract import Ledger, Post
from playbook.ledger.statuses import DeliveryStatus, list_status
from playbook.timeparse import format_duration


class ReviewDelivery(TypedDict):
    """One delivery of a post against the post's deadline; a recipient list's as counts per status."""

    post: int
    phase: str
    channel: str
    lang: str
    status: str
    sent_at: str | None
    deadline: str | None
    within_window: bool | None
    margin_seconds: int | None
    attempts: int
    remote_id: str | None
    url: str | None
    error: str | None
    note: str | None
    recipients: NotRequired[dict[str, int]]


class ReviewPost(TypedDict):
    """One post: when and by whom, its cadence against the promise of the previous one, what it said."""

    seq: int
    phase: str
    issued_at: str | None
    operator: str | None
    deadline: str | None
    next_update_at: str | None
    variables: dict[str, str | None]
    # As the ledger records them: {channel: {per_recipient, stands_in_for, languages: {lang: {block: text}}}}.
    texts: dict[str, Any]
    since_previous_seconds: int | None
    promised_by: str | None
    late_seconds: int | None
    # Published by a worker because the update was overdue.
    holding: bool
    # Its failing deliveries were left to the workers until then.
    handed_until: str | None


class ReviewDuty(TypedDict):
    """Something a worker did for the incident: a reminder to the on-call, a holding update."""

    kind: str
    key: str
    at: str | None
    by: str
    attempts: int
    ok: bool | None
    outcome: str | None


class ReviewChange(TypedDict):
    """A monitor's change of state around the incident: where the review's clock starts."""

    monitor: str
    state: str
    since: str | None
    recorded_at: str | None
    detail: str
    by: str


class Review(TypedDict):
    """The review of one incident, JSON-ready: times in ISO 8601 with the playbook's offset."""

    id: str
    playbook: str
    name: dict[str, str] | None
    drill: bool
    open: bool
    phase: str
    timezone: str
    detected_at: str | None
    triggered_at: str | None
    triggered_by: str | None
    closed_at: str | None
    window: str
    deadline: str | None
    first_notice_at: str | None
    window_met: bool | None
    window_margin_seconds: int | None
    update_every: str | None
    next_update_overdue_seconds: int | None
    as_of: str | None
    posts: list[ReviewPost]
    deliveries: list[ReviewDelivery]
    worker: list[ReviewDuty]
    detection: list[ReviewChange]


def _local(moment: datetime, zone: ZoneInfo) -> str:
    """`2026-11-25 05:32:10 CET`: the playbook's zone, labelled, as the operators lived it."""
    shown = moment.astimezone(zone)
    return f"{shown:%Y-%m-%d %H:%M:%S} {shown.tzname()}"


def _iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return moment.astimezone(zone).isoformat(timespec="seconds") if moment else None


def _seconds(delta: timedelta | None) -> int | None:
    return int(delta.total_seconds()) if delta is not None else None


def build_review(home: Home, ledger: Ledger, incident_id: str, now: datetime | None = None) -> Review:
    """Everything the review needs, as JSON-ready data: times in ISO 8601 with the playbook's offset."""
    incident = ledger.incident(incident_id)
    try:
        playbook: Playbook | None = home.load_playbook(incident.playbook)
    except PlaybookError:
        playbook = None
    zone = playbook.zone if playbook else ZoneInfo("UTC")
    now = now or datetime.now(UTC)
    posts = ledger.posts(incident.id)
    window = playbook.window if playbook else (posts[0].deadline - posts[0].issued_at if posts else timedelta())
    deadline = incident.detected_at + window
    first = ledger.first_sent_at(incident.id, 1)
    if first is not None:
        met: bool | None = first <= deadline
        margin: timedelta | None = deadline - first
    elif now > deadline:
        met, margin = False, deadline - now
    else:
        met, margin = None, None
    update_every = playbook.update_every if playbook else None

    by_post: dict[int, list[ReviewDelivery]] = {p.seq: [] for p in posts}
    deadlines = {p.seq: p.deadline for p in posts}
    for row in ledger.deliveries(incident.id, recipients=False):
        sent_at = row.finished_at if row.status == DeliveryStatus.SENT else None
        by_post[row.seq].append(_delivery(row.seq, row.phase, row.channel, row.lang, row.status, sent_at,
                                          deadlines[row.seq], zone, attempts=row.attempts, remote_id=row.remote_id,
                                          url=row.url, error=row.error, note=row.note))
    grouped: dict[tuple[int, str, str, str], dict[str, int]] = {}
    phases = {p.seq: p.phase for p in posts}
    for seq, channel, lang, status, count in ledger.delivery_counts(incident.id):
        grouped.setdefault((seq, phases[seq], channel, lang), {})[status] = count
    last_sent = ledger.recipients_last_sent(incident.id)
    for (seq, phase, channel, lang), counts in grouped.items():
        status = list_status(counts)
        sent_at = (last_sent.get((seq, channel, lang))
                   if status in (DeliveryStatus.SENT, DeliveryStatus.SUPERSEDED) else None)
        by_post[seq].append(_delivery(seq, phase, channel, lang, status, sent_at, deadlines[seq], zone,
                                      recipients={"total": sum(counts.values()), **counts}))

    post_data: list[ReviewPost] = []
    previous: Post | None = None
    for post in posts:
        post_data.append(_post(post, previous, update_every, zone))
        previous = post
    overdue: timedelta | None = None
    if incident.open and posts and playbook is not None and posts[-1].phase != playbook.last_phase:
        due = posts[-1].next_update_at or posts[-1].issued_at + playbook.update_every
        overdue = now - due if now > due else None
    deliveries = sorted((d for ds in by_post.values() for d in ds), key=lambda d: (d["post"], d["channel"], d["lang"]))
    return {
        "id": incident.id,
        "playbook": incident.playbook,
        "name": playbook.name if playbook else None,
        "drill": incident.drill,
        "open": incident.open,
        "phase": incident.phase,
        "timezone": str(zone.key),
        "detected_at": _iso(incident.detected_at, zone),
        "triggered_at": _iso(incident.opened_at, zone),
        "triggered_by": incident.operator,
        "closed_at": _iso(incident.closed_at, zone),
        "window": format_duration(window),
        "deadline": _iso(deadline, zone),
        "first_notice_at": _iso(first, zone),
        "window_met": met,
        # Positive: the first notice went out this many seconds before the deadline; negative: this late.
        "window_margin_seconds": _seconds(margin),
        "update_every": format_duration(update_every) if update_every else None,
        "next_update_overdue_seconds": _seconds(overdue),
        "as_of": _iso(now, zone),
        "posts": post_data,
        "deliveries": deliveries,
        "detection": [{"monitor": c.monitor, "state": c.state, "since": _iso(c.since, zone),
                       "recorded_at": _iso(c.recorded_at, zone), "detail": c.detail, "by": c.by}
                      for c in ledger.monitor_changes(incident.playbook, since=incident.detected_at - window)
                      if incident.closed_at is None or c.since <= incident.closed_at],
        "worker": [{"kind": d.kind, "key": d.key, "at": _iso(d.done_at or d.taken_at, zone), "by": d.taken_by,
                    "attempts": d.attempts, "ok": d.ok, "outcome": d.outcome}
                   for d in ledger.duties(incident.id)],
    }


def _post(post: Post, previous: Post | None, update_every: timedelta | None, zone: ZoneInfo) -> ReviewPost:
    late: timedelta | None = None
    gap: timedelta | None = None
    promised: datetime | None = None
    if previous is not None:
        gap = post.issued_at - previous.issued_at
        # The previous message told customers when to expect this one: that is the promise to keep.
        promised = previous.next_update_at or (previous.issued_at + update_every if update_every else None)
        if promised is not None and post.issued_at > promised:
            late = post.issued_at - promised
    record = post.texts or {}
    return {
        "seq": post.seq,
        "phase": post.phase,
        "issued_at": _iso(post.issued_at, zone),
        "operator": post.operator,
        "deadline": _iso(post.deadline, zone),
        "next_update_at": _iso(post.next_update_at, zone),
        # The masked copy when there is one: `vars` keeps the real values, for resume to render from.
        "variables": record.get("variables", post.vars),
        "texts": record.get("channels", {}),
        "since_previous_seconds": _seconds(gap),
        "promised_by": _iso(promised, zone),
        "late_seconds": _seconds(late),
        "holding": post.holding,
        "handed_until": _iso(post.handed_until, zone),
    }


def _delivery(seq: int, phase: str, channel: str, lang: str, status: DeliveryStatus, sent_at: datetime | None,
              deadline: datetime, zone: ZoneInfo, *, attempts: int = 0, remote_id: str | None = None,
              url: str | None = None, error: str | None = None, note: str | None = None,
              recipients: dict[str, int] | None = None) -> ReviewDelivery:
    margin = deadline - sent_at if sent_at else None
    data: ReviewDelivery = {
        "post": seq, "phase": phase, "channel": channel, "lang": lang, "status": status,
        "sent_at": _iso(sent_at, zone), "deadline": _iso(deadline, zone),
        "within_window": (margin >= timedelta()) if margin is not None else None,
        "margin_seconds": _seconds(margin), "attempts": attempts, "remote_id": remote_id, "url": url,
        "error": error, "note": note,
    }
    if recipients is not None:
        data["recipients"] = recipients
    return data


# -- Markdown --------------------------------------------------------------------------------------------------

def _margin(seconds: int | None) -> str:
    if seconds is None:
        return ""
    delta = timedelta(seconds=abs(seconds))
    return f"{format_duration(delta)} early" if seconds >= 0 else f"{format_duration(delta)} late"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def markdown(review: Review) -> str:
    """The review as Markdown: headings, one table of deliveries per post, the texts quoted once each."""
    zone = ZoneInfo(review["timezone"])

    def at(value: str | None) -> str:
        return _local(datetime.fromisoformat(value), zone) if value else "-"

    drill = " (drill)" if review["drill"] else ""
    met = review["window_met"]
    margin = review["window_margin_seconds"]
    # The margin is known exactly when the window is decided (met or missed).
    if met is None or margin is None:
        verdict = f"still open: due by {at(review['deadline'])}"
    elif met:
        verdict = f"met, {_margin(margin).replace('early', 'to spare')}"
    else:
        verdict = f"missed by {format_duration(timedelta(seconds=-margin))}" + (
            "" if review["first_notice_at"] else " (no notice confirmed yet)")
    lines = [f"# Timeline of {review['id']}{drill}", ""]
    if review["drill"]:
        lines += ["> A drill: every message went to the sandbox channels of channels.yaml `drill:`, "
                  "marked as a drill.", ""]
    lines += [
        f"- Playbook: {review['playbook']}" + (f" ({review['name'].get('en') or next(iter(review['name'].values()))})"
                                               if review["name"] else ""),
        f"- Detected: {at(review['detected_at'])}",
        f"- Triggered: {at(review['triggered_at'])}" + (f" by {review['triggered_by']}"
                                                         if review["triggered_by"] else ""),
        f"- First notice: {at(review['first_notice_at'])} (window {review['window']}, deadline "
        f"{at(review['deadline'])}: {verdict})",
        f"- Updates every: {review['update_every'] or '-'}",
        f"- Closed: {at(review['closed_at']) if review['closed_at'] else 'still open'}",
    ]
    overdue = review["next_update_overdue_seconds"]
    if overdue:
        lines.append(f"- Next update overdue by {format_duration(timedelta(seconds=overdue))} (as of "
                     f"{at(review['as_of'])})")
    lines.append("")
    if review["detection"]:
        # The monitors' view: from the first failed probe (the detection the window counts from) to recovery.
        lines += ["## Detection", ""]
        for change in review["detection"]:
            lines.append(f"- {at(change['since'])}: {change['monitor']} {change['state']}: {_cell(change['detail'])} "
                         f"(recorded {at(change['recorded_at'])} by {change['by']})")
        lines.append("")
    for post in review["posts"]:
        holding = ", a holding update" if post["holding"] else ""
        lines += [f"## {post['seq']}. {post['phase']} (issued {at(post['issued_at'])}{holding})", ""]
        lines.append(f"- By: {post['operator'] or 'not recorded'}")
        if post["handed_until"]:
            lines.append(f"- Failing deliveries left to the worker until {at(post['handed_until'])}")
        # A promise comes from the previous post: the gap since it is then known.
        if post["promised_by"] and post["since_previous_seconds"] is not None:
            gap = format_duration(timedelta(seconds=post["since_previous_seconds"]))
            cadence = (f"{format_duration(timedelta(seconds=post['late_seconds']))} later than promised"
                       if post["late_seconds"] else "on time")
            lines.append(f"- Cadence: {gap} after the previous post; promised by {at(post['promised_by'])}: {cadence}")
        lines.append(f"- Deadline: {at(post['deadline'])}")
        if post["next_update_at"]:
            lines.append(f"- Next update promised by: {at(post['next_update_at'])}")
        values = {k: v for k, v in post["variables"].items() if v not in (None, "")}
        if values:
            lines.append("- Variables: " + ", ".join(f"`{k}` = {_cell(str(v))}" for k, v in values.items()))
        lines += ["", "| channel | lang | status | sent at | against deadline | link or detail |",
                  "|---|---|---|---|---|---|"]
        for d in (d for d in review["deliveries"] if d["post"] == post["seq"]):
            if d.get("recipients"):
                detail = ", ".join(f"{n:,} {s}" for s, n in d["recipients"].items() if s != "total")
            elif d["url"]:
                detail = f"<{d['url']}>"
            else:
                detail = d["error"] or d["remote_id"] or d["note"] or ""
            lines.append(f"| {d['channel']} | {d['lang']} | {d['status']} | {at(d['sent_at']) if d['sent_at'] else ''}"
                         f" | {_margin(d['margin_seconds'])} | {_cell(detail)} |")
        lines.append("")
        lines += _texts(post["texts"])
    if review["worker"]:
        lines += ["## What the worker did", ""]
        for duty in review["worker"]:
            result = "done" if duty["ok"] else "failed" if duty["ok"] is False else "under way"
            lines.append(f"- {at(duty['at'])}: {duty['kind']} `{duty['key']}` by {duty['by']}: {result}"
                         + (f" ({_cell(duty['outcome'])})" if duty["outcome"] else ""))
        lines.append("")
    return "\n".join(lines)


def _texts(texts: dict[str, Any]) -> list[str]:
    """Each distinct text once per language, with the channels that were given it."""
    if not texts:
        return ["_No texts recorded for this post (ledger older than the record)._", ""]
    distinct: dict[str, list[tuple[dict[str, str], list[str]]]] = {}
    for channel, entry in texts.items():
        label = channel + (f" (standing in for {entry['stands_in_for']})" if entry.get("stands_in_for") else "")
        label += " (per recipient, shown for a sample one)" if entry.get("per_recipient") else ""
        for lang, blocks in entry.get("languages", {}).items():
            # The HTML part repeats the body as markup: the plain blocks say what was said.
            shown = {b: t for b, t in blocks.items() if b != "html" and t.strip()}
            groups = distinct.setdefault(lang, [])
            for known, channels in groups:
                if known == shown:
                    channels.append(label)
                    break
            else:
                groups.append((shown, [label]))
    lines: list[str] = []
    for lang, groups in distinct.items():
        lines += [f"### Texts in {lang}", ""]
        for blocks, channels in groups:
            lines += [f"{', '.join(channels)}:", ""]
            for block, text in blocks.items():
                lines.append(f"> **{block}**")
                lines += [f"> {line}".rstrip() for line in text.strip().splitlines()]
                lines.append(">")
            if lines[-1] == ">":
                lines.pop()
            lines.append("")
    return lines
