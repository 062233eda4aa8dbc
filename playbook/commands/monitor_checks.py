"""The rehearsal's monitor checks: each monitor probed once, and the detection delay the window has to allow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from playbook.errors import PlaybookError
from playbook.home.model import Playbook
from playbook.home.monitors import Monitor
from playbook.monitoring.settings import env_references

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class MonitorCheck:
    group: str
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0
    skipped: bool = False


def check_monitors(playbook: Playbook, env: Mapping[str, str], *, offline: bool) -> list[MonitorCheck]:
    """Each monitor's ${NAME} settings set, even offline (the worker's rehearsals are), then each monitor probed
    once: it passes when its answer can be read, even one saying the provider is down."""
    found = [MonitorCheck("environment", f"${var} set (monitor '{m.name}')", bool(env.get(var)),
                          "set" if env.get(var) else f"not set: export {var}=... or add it to the home's .env")
             for m in playbook.monitors for var in env_references(m)]
    if offline:
        return found + [MonitorCheck("monitors", _label(m), True, "skipped (--offline)", skipped=True)
                        for m in playbook.monitors]
    if not playbook.monitors:
        return found
    return found + asyncio.run(_probe_all(playbook.monitors, env))


def detection_delay(playbook: Playbook) -> timedelta | None:
    """How long monitors may take to call an outage (`every` x `fails`); None without monitors."""
    if not playbook.monitors:
        return None
    return playbook.watch.every * playbook.watch.fails


def _label(monitor: Monitor) -> str:
    return f"monitor '{monitor.name}' ({monitor.type}) reachable and readable"


async def _probe_all(monitors: list[Monitor], env: Mapping[str, str]) -> list[MonitorCheck]:
    import httpx

    async with httpx.AsyncClient() as client:
        return list(await asyncio.gather(*(_probe_one(m, env, client) for m in monitors)))


async def _probe_one(monitor: Monitor, env: Mapping[str, str], client: httpx.AsyncClient) -> MonitorCheck:
    from playbook.monitoring.probes import probe

    start = time.perf_counter()
    try:
        finding = await probe(monitor, env, client)
    except PlaybookError as exc:
        return MonitorCheck("monitors", _label(monitor), False, str(exc), time.perf_counter() - start)
    detail = finding.detail
    if finding.readable and not finding.ok:
        detail += ": down today, yet read as it should be (playbook watch would count a failure)"
    return MonitorCheck("monitors", _label(monitor), finding.readable, detail, time.perf_counter() - start)
