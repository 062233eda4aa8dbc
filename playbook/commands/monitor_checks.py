"""The rehearsal's monitor checks: each monitor probed once, and the detection delay the window has to allow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from playbook.commands.rehearsal import Recorder
from playbook.errors import PlaybookError
from playbook.home.model import Playbook
from playbook.home.monitors import Monitor
from playbook.monitoring.settings import env_references

if TYPE_CHECKING:
    import httpx


def check_monitors(playbook: Playbook, env: Mapping[str, str], record: Recorder, *, offline: bool) -> None:
    """Each monitor's ${NAME} settings set, even offline (the worker's rehearsals are), then each monitor probed
    once: it passes when its answer can be read, even one saying the provider is down."""
    for monitor in playbook.monitors:
        for var in env_references(monitor):
            record.add("environment", f"${var} set (monitor '{monitor.name}')", bool(env.get(var)),
                       "set" if env.get(var) else f"not set: export {var}=... or add it to the home's .env")
    if offline:
        for monitor in playbook.monitors:
            record.add("monitors", _label(monitor), True, "skipped (--offline)", skipped=True)
    elif playbook.monitors:
        for probed in asyncio.run(_probe_all(playbook.monitors, env)):
            record.add("monitors", *probed)


def detection_delay(playbook: Playbook) -> timedelta | None:
    """How long monitors may take to call an outage (`every` x `fails`); None without monitors."""
    if not playbook.monitors:
        return None
    return playbook.watch.every * playbook.watch.fails


def _label(monitor: Monitor) -> str:
    return f"monitor '{monitor.name}' ({monitor.type}) reachable and readable"


# What one probe found: the check's name, whether it passed, its detail and how long it took.
Probed = tuple[str, bool, str, float]


async def _probe_all(monitors: list[Monitor], env: Mapping[str, str]) -> list[Probed]:
    import httpx

    async with httpx.AsyncClient() as client:
        return list(await asyncio.gather(*(_probe_one(m, env, client) for m in monitors)))


async def _probe_one(monitor: Monitor, env: Mapping[str, str], client: httpx.AsyncClient) -> Probed:
    from playbook.monitoring.probes import probe

    start = time.perf_counter()
    try:
        finding = await probe(monitor, env, client)
    except PlaybookError as exc:
        return _label(monitor), False, str(exc), time.perf_counter() - start
    detail = finding.detail
    if finding.readable and not finding.ok:
        detail += ": down today, yet read as it should be (playbook watch would count a failure)"
    return _label(monitor), finding.readable, detail, time.perf_counter() - start
