"""A holding update's plan: the phase again, on the holding channels only, with `incident.holding` true."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from playbook.home.channel_config import load_channels
from playbook.home.locate import Home
from playbook.planning.plan import PostPlan, build_plan
from playbook.rendering.variables import resolve

DETECTED = datetime(2026, 11, 25, 13, 5, tzinfo=UTC)
NEXT_UPDATE = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # 15:00 in Paris, the playbook's zone


def plan(home: Path, phase: str, *, holding: bool = False, only: list[str] | None = None) -> PostPlan:
    """The starter's whatsapp-outage `phase`, planned offline as a trigger or the worker would."""
    channels = load_channels(Home(home, environ={}))
    playbook = Home(home, environ={}).load_playbook("whatsapp-outage")
    return build_plan(channels, playbook, phase, resolve(playbook, {}, samples=True), "whatsapp-outage-1",
                      DETECTED, NEXT_UPDATE, drill=False, offline=True, next_update=NEXT_UPDATE,
                      holding=holding, only=only)


def test_only_plans_those_channels_and_leaves_the_others_out_entirely(home: Path) -> None:
    planned = plan(home, "investigating", holding=True, only=["x", "website"])
    assert [(c.name, c.skipped) for c in planned.channels] == [("x", None), ("website", None)]
    assert planned.context.holding


def test_only_leaves_out_a_channel_the_phase_does_not_publish_to(home: Path) -> None:
    planned = plan(home, "identified", only=["customers", "x"])
    assert [c.name for c in planned.channels] == ["x"]


def test_without_only_every_channel_of_the_phase_is_planned_as_an_update(home: Path) -> None:
    planned = plan(home, "investigating")
    assert [c.name for c in planned.channels] == ["x", "website", "customers"]
    assert not planned.context.holding


@pytest.mark.parametrize(("lang", "holding_said", "update_said"), [
    ("fr", "Point d’étape\u00a0: la perturbation se poursuit et nous en cherchons toujours la cause. Nous "
           "travaillons toujours au rétablissement de notre service client sur WhatsApp…\nProchain point à "
           "15\u00a0h\u00a000.",
     "Nous ferons un nouveau point à 15:00."),
    ("en", "An update: the disruption is still going on and we’re still looking for the cause. We’re working to "
           "get our WhatsApp customer service back…\nNext update at 3:00\u202fPM.",
     "We’ll post our next update at 3:00\u202fPM."),
])
def test_a_holding_update_says_so_and_when_the_next_update_is_in_each_language(
        home: Path, lang: str, holding_said: str, update_said: str) -> None:
    holding = plan(home, "investigating", holding=True, only=["website"]).channels[0].messages[lang]
    update = plan(home, "investigating", only=["website"]).channels[0].messages[lang]
    assert holding_said in holding.block("body") and update_said not in holding.block("body")
    assert update_said in update.block("body") and holding_said not in update.block("body")
    assert holding.block("title") != update.block("title")
