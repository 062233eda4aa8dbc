"""What the worker tells the on-call (an update due soon or overdue, a scheduled rehearsal that failed), in the
playbook's first language, and how it reaches them: every channel the playbook's `reminders` names, whatever
its type (a team chat, email to an on-call list, a webhook, the console).

A notice is not a post: it is recorded as the duty that sent it (ledger/duties.py), never as a delivery to the
public.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from playbook import secrets
from playbook.home.channel_config import Channels
from playbook.home.model import Playbook
from playbook.ledger.contract import Incident, Post
from playbook.publishers.base import Delivery, Failure, Message, Publisher, Receipt, Stage
from playbook.publishers.listed import ListedPublisher

log = logging.getLogger("playbook.worker")

# A reminder to a per-recipient channel goes to each address of its list: an on-call list, not customers.
MAX_LISTED = 50

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "soon": "Update due at {time}: {incident}",
        "overdue": "Update overdue since {time}: {incident}",
        "soon_body": "The next update of {incident} ({name}, phase “{phase}”) is due at {time}.",
        "overdue_body": "The next update of {incident} ({name}, phase “{phase}”) was due at {time} and nothing "
                        "has been published since.",
        "holding": "If nobody publishes it, the worker publishes a holding update at {time}.",
        "last": "Last said ({channel}, {when}):",
        "publish": "To publish the next phase:",
        "again": "To say where things stand in the same phase:",
        "drill": "[DRILL] ",
        "rehearsal": "Scheduled rehearsal failed: {playbook}",
        "rehearsal_body": "The scheduled rehearsal of {name} ({playbook}) failed at {time}:",
        "rehearsal_fix": "Fix it, then check with:",
        "down": "Outage detected by {monitor}: {playbook}",
        "down_body": "Monitor {monitor} of {name} sees the outage since {time}: {finding}.",
        "preview": "The first notice would say ({lang}):",
        "publish_first": "To publish it (detection at the first failed probe):",
        "triggered": "Outage detected by {monitor}: {incident} triggered",
        "triggered_body": "Monitor {monitor} of {name} sees the outage since {time}: {finding}. The first notice "
                          "was published as approved in advance: {incident}.",
        "open": "Incident {incident} is already open: follow it with:",
        "up": "Recovery seen by {monitor}: {playbook}",
        "up_body": "Monitor {monitor} of {name} sees the service back since {time}: {finding}.",
        "resolve": "To publish the last phase and close the incident:",
        "resolved": "Recovery seen by {monitor}: {incident} resolved",
        "nothing_open": "No incident of this playbook is open.",
        "outcome": "Outcome: {outcome}",
    },
    "fr": {
        "soon": "Point d’étape attendu à {time}\u202f: {incident}",
        "overdue": "Point d’étape en retard depuis {time}\u202f: {incident}",
        "soon_body": "Le prochain point d’étape de {incident} ({name}, phase «\u00a0{phase}\u00a0») est attendu "
                     "à {time}.",
        "overdue_body": "Le prochain point d’étape de {incident} ({name}, phase «\u00a0{phase}\u00a0») était "
                        "attendu à {time}, et rien n’a été publié depuis.",
        "holding": "Si personne ne le publie, le worker publiera un message d’attente à {time}.",
        "last": "Dernier message ({channel}, {when})\u00a0:",
        "publish": "Pour publier la phase suivante\u00a0:",
        "again": "Pour faire le point dans la même phase\u00a0:",
        "drill": "[EXERCICE] ",
        "rehearsal": "Échec de la répétition programmée\u202f: {playbook}",
        "rehearsal_body": "La répétition programmée de {name} ({playbook}) a échoué à {time}\u00a0:",
        "rehearsal_fix": "Corrigez, puis vérifiez avec\u00a0:",
        "down": "Panne détectée par {monitor}\u202f: {playbook}",
        "down_body": "La sonde {monitor} de {name} constate la panne depuis {time}\u00a0: {finding}.",
        "preview": "Le premier message dirait ({lang})\u00a0:",
        "publish_first": "Pour le publier (détection à la première sonde en échec)\u00a0:",
        "triggered": "Panne détectée par {monitor}\u202f: {incident} déclenché",
        "triggered_body": "La sonde {monitor} de {name} constate la panne depuis {time}\u00a0: {finding}. Le "
                          "premier message, approuvé à l’avance, a été publié\u00a0: {incident}.",
        "open": "L’incident {incident} est déjà ouvert\u00a0; suivez-le avec\u00a0:",
        "up": "Rétablissement constaté par {monitor}\u202f: {playbook}",
        "up_body": "La sonde {monitor} de {name} constate le retour du service depuis {time}\u00a0: {finding}.",
        "resolve": "Pour publier la dernière phase et clore l’incident\u00a0:",
        "resolved": "Rétablissement constaté par {monitor}\u202f: {incident} résolu",
        "nothing_open": "Aucun incident de ce playbook n’est ouvert.",
        "outcome": "Résultat\u00a0: {outcome}",
    },
}


@dataclass(frozen=True)
class Notice:
    """A message to the on-call: a one-line title and a body (plain text, one fact per line)."""

    lang: str
    title: str
    body: str

    def message(self, publisher: Publisher[Any]) -> Message:
        """The notice as the blocks the channel asks for: the title for a title, the body under it when the
        channel shows a title (a chat, an email), the whole text in one block otherwise (a text message)."""
        whole = f"{self.title}\n\n{self.body}"
        names = set(publisher.blocks) | set(getattr(publisher, "optional_blocks", ()))
        titled = "title" in names
        blocks = {name: self.title if name == "title" else self.body if titled and name == "body" else whole
                  for name in names if name != "html"}
        return Message(self.lang, blocks)


def words(playbook: Playbook) -> tuple[str, dict[str, str]]:
    """The language notices are written in (the playbook's first, English when it has no words for it)."""
    lang = playbook.default_language
    return (lang, _WORDS[lang]) if lang in _WORDS else ("en", _WORDS["en"])


def clock_time(moment: datetime, playbook: Playbook, lang: str) -> str:
    """The time in the playbook's zone, as its language writes it in a sentence (« à 15 h 05 CET », "at 3:05 PM
    CET"): French prose puts an h where CLDR's short format has a colon, as the example templates do."""
    from babel.dates import format_time

    zone = ZoneInfo(playbook.timezone)
    pattern = "H' h 'mm" if lang.split("_")[0].split("-")[0] == "fr" else "short"
    return f"{format_time(moment.astimezone(zone), pattern, tzinfo=zone, locale=lang)} {moment.astimezone(zone):%Z}"


def reminder(playbook: Playbook, incident: Incident, last: Post, reason: str) -> Notice:
    """An update due soon or overdue: the incident, its phase, the time due, what was last said, and the exact
    commands that publish the next update."""
    lang, w = words(playbook)
    assert last.next_update_at is not None
    due = clock_time(last.next_update_at, playbook, lang)
    name = playbook.name.get(lang) or playbook.name[playbook.default_language]
    drill = w["drill"] if incident.drill else ""
    title = drill + w[reason].format(time=due, incident=incident.id)
    lines = [w[f"{reason}_body"].format(incident=incident.id, name=name, phase=incident.phase, time=due)]
    if playbook.holding is not None and (playbook.holding.drills or not incident.drill):
        lines.append(w["holding"].format(time=clock_time(last.next_update_at + playbook.holding.after, playbook,
                                                         lang)))
    said = last_said(last, lang)
    if said is not None:
        channel, text = said
        lines += ["", w["last"].format(channel=channel, when=clock_time(last.issued_at, playbook, lang)), text]
    phases = list(playbook.phases)
    following = phases[phases.index(incident.phase) + 1:] if incident.phase in phases else []
    lines += ["", w["publish"]]
    if following and following[0] != playbook.last_phase:
        lines.append(f"  playbook update {incident.id} --phase {following[0]}")
    else:
        lines.append(f"  playbook resolve {incident.id}")
    lines += [w["again"], f"  playbook update {incident.id} --phase {incident.phase} --again"]
    return Notice(lang, title, "\n".join(lines))


def rehearsal_failed(playbook: Playbook, at: datetime, failures: Iterable[str]) -> Notice:
    lang, w = words(playbook)
    name = playbook.name.get(lang) or playbook.name[playbook.default_language]
    lines = [w["rehearsal_body"].format(name=name, playbook=playbook.id, time=clock_time(at, playbook, lang))]
    lines += [f"- {failure}" for failure in failures]
    lines += ["", w["rehearsal_fix"], f"  playbook rehearse {playbook.id}"]
    return Notice(lang, w["rehearsal"].format(playbook=playbook.id), "\n".join(lines))


def last_said(post: Post, lang: str) -> tuple[str, str] | None:
    """The shortest complete text the post recorded (in `lang` if it was said in it): the gist for a chat."""
    return gist(post.texts or {}, lang)


def gist(texts: Mapping[str, Any], lang: str) -> tuple[str, str] | None:
    """The shortest complete text of a post's texts (as `sent_texts` makes them), in `lang` if said in it: a
    short social post rather than an email body."""
    found: list[tuple[int, str, str]] = []
    for channel, said in (texts.get("channels") or {}).items():
        languages = said.get("languages") or {}
        blocks = languages.get(lang) or next(iter(languages.values()), None)
        for name in ("short", "body", "title"):
            text = (blocks or {}).get(name, "").strip()
            if text:
                found.append((name != "short", channel, text))
                break
    if not found:
        return None
    _, channel, text = min(found, key=lambda f: (f[0], len(f[2])))
    return channel, text


async def tell(channels: Channels, names: Iterable[str], notice: Notice, *, key: str, incident: Incident | None,
               drill: bool, deadline: datetime) -> list[str]:
    """Send the notice through each named channel at once; one line per channel saying how it went (a channel
    that fails never stops the others). Raises nothing: the worker records the lines as the duty's outcome."""
    names = list(names)
    outcomes = await asyncio.gather(*(_tell_one(channels, name, notice, key=key, incident=incident, drill=drill,
                                                 deadline=deadline) for name in names))
    return [f"{name}: {outcome}" for name, outcome in zip(names, outcomes, strict=True)]


async def _tell_one(channels: Channels, name: str, notice: Notice, *, key: str, incident: Incident | None,
                    drill: bool, deadline: datetime) -> str:
    try:
        publisher = channels.publisher(name, [notice.lang])
    except Exception as exc:  # a channel that cannot be built is this channel's failure, reported
        return f"failed: {secrets.redact(str(exc))}"
    try:
        await publisher.open()
        message = notice.message(publisher)
        base = Delivery(key=f"{key}/{name}", incident_id=incident.id if incident else "-",
                        playbook_id=incident.playbook if incident else "-",
                        phase=incident.phase if incident else "-", channel=name, lang=notice.lang, message=message,
                        deadline=deadline, drill=drill, stage=Stage())
        if isinstance(publisher, ListedPublisher):
            recipients = list(islice(publisher.recipients(), MAX_LISTED))
            for done, recipient in enumerate(recipients):
                result = await _attempt(publisher, _to(base, recipient.address, recipient))
                if isinstance(result, Failure):
                    # A server that refuses one is likely down for all: the next pass tries them again.
                    return (f"failed at {done + 1} of {len(recipients)} ({recipient.address}): "
                            f"{secrets.redact(result.reason)}")
            return f"sent to {len(recipients)}"
        result = await _attempt(publisher, base)
        if isinstance(result, Failure):
            return f"failed: {secrets.redact(result.reason)}"
        return "sent" + (f" ({result.url})" if result.url else "")
    finally:
        with contextlib.suppress(Exception):
            await publisher.close()


def _to(base: Delivery, address: str, recipient: Any) -> Delivery:
    from dataclasses import replace

    return replace(base, key=f"{base.key}/{address.lower()}", recipient=recipient)


async def _attempt(publisher: Publisher[Any], delivery: Delivery) -> Receipt | Failure:
    timeout = publisher.config.timeout.total_seconds()
    try:
        async with asyncio.timeout(timeout):
            return await publisher.publish(delivery)
    except TimeoutError:
        return Failure(f"no answer within {timeout:g}s", retryable=True)
    except Exception as exc:  # a plugin's bug is this notice's failure, not the worker's end
        log.exception("%s: the publisher raised instead of returning a Failure", delivery.key)
        return Failure(f"{type(exc).__name__}: {exc}", retryable=False)


def detected(playbook: Playbook, monitor: str, since: datetime, finding: str, *, incident: str | None,
             previews: Mapping[str, str], triggered: str | None = None) -> Notice:
    """An outage a monitor detected: its finding and, unless the playbook triggered itself, what the first notice
    would say in each language and the exact command that publishes it; or the incident already open."""
    lang, w = words(playbook)
    name = playbook.name.get(lang) or playbook.name[playbook.default_language]
    time = clock_time(since, playbook, lang)
    if triggered is not None:
        title = w["triggered"].format(monitor=monitor, incident=triggered)
        lines = [w["triggered_body"].format(monitor=monitor, name=name, time=time, finding=finding,
                                            incident=triggered), "", f"  playbook status {triggered}"]
        return Notice(lang, title, "\n".join(lines))
    lines = [w["down_body"].format(monitor=monitor, name=name, time=time, finding=finding)]
    if incident is not None:
        lines += ["", w["open"].format(incident=incident), f"  playbook update {incident} --phase ..."]
    else:
        for shown_lang, text in previews.items():
            lines += ["", w["preview"].format(lang=shown_lang), text]
        at = since.astimezone(ZoneInfo(playbook.timezone)).isoformat(timespec="seconds")
        lines += ["", w["publish_first"], f"  playbook trigger {playbook.id} --detected-at {at}"]
    return Notice(lang, w["down"].format(monitor=monitor, playbook=playbook.id), "\n".join(lines))


def recovered(playbook: Playbook, monitor: str, since: datetime, finding: str, *, incident: str | None,
              resolved: str | None = None) -> Notice:
    """A monitor that sees the service back: the `resolve` command for the open incident, or what resolving
    it did."""
    lang, w = words(playbook)
    name = playbook.name.get(lang) or playbook.name[playbook.default_language]
    lines = [w["up_body"].format(monitor=monitor, name=name, time=clock_time(since, playbook, lang),
                                 finding=finding)]
    if resolved is not None:
        lines += ["", w["outcome"].format(outcome=resolved)]
        title = w["resolved"].format(monitor=monitor, incident=incident)
        return Notice(lang, title, "\n".join(lines))
    if incident is not None:
        lines += ["", w["resolve"], f"  playbook resolve {incident}"]
    else:
        lines += ["", w["nothing_open"]]
    return Notice(lang, w["up"].format(monitor=monitor, playbook=playbook.id), "\n".join(lines))
