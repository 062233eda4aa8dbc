"""The live view of a trigger: progress per channel and language, pace against the deadline."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from rich.console import Console

from playbook.engine import DeliveryEvent
from playbook.output.live import LiveView, pace


def _render(view: LiveView) -> str:
    console = Console(record=True, width=140, color_system=None)
    console.print(view._render())
    return console.export_text()


def test_an_email_row_shows_sent_of_total_with_a_bar_and_the_pace() -> None:
    view = LiveView()
    channel = SimpleNamespace(name="customers", recipients_by_lang={"fr": 5})
    view.plan = SimpleNamespace(deadline=datetime.now(UTC) + timedelta(minutes=30), channels=[channel],
                                context=SimpleNamespace(timezone="UTC"))
    view.rows[("customers", "fr")] = LiveView._row(0, 5)
    view.rows[("customers", "fr")]["since"] = datetime.now(UTC) - timedelta(seconds=2)
    for n in range(2):
        view.event(DeliveryEvent("customers", "fr", "pending", recipient=f"c{n}@example.com"))
        view.event(DeliveryEvent("customers", "fr", "sent", 1, recipient=f"c{n}@example.com"))
    text = _render(view)
    assert "2/5" in text and "sending" in text
    assert "/s, " in text and "left (before the deadline)" in text
    assert "━" in text  # the bar


def test_a_single_post_row_shows_its_time_and_link() -> None:
    view = LiveView()
    view.plan = SimpleNamespace(deadline=datetime.now(UTC) + timedelta(minutes=30), channels=[],
                                context=SimpleNamespace(timezone="UTC"))
    view.rows[("x", "en")] = LiveView._row(1)
    view.event(DeliveryEvent("x", "en", "sent", 1, url="https://x.com/i/web/status/1"))
    text = _render(view)
    assert "sent" in text and "https://x.com/i/web/status/1" in text


def test_the_pace_warns_when_the_rest_would_arrive_after_the_deadline() -> None:
    started = datetime.now(UTC) - timedelta(seconds=100)
    late = pace(100, 60_000, started, datetime.now(UTC) + timedelta(minutes=30))  # 1/s: ~16h left
    assert late.startswith("1.0/s, ") and late.endswith("(AFTER the deadline)")
    on_time = pace(100, 1_000, started, datetime.now(UTC) + timedelta(minutes=30))
    assert on_time.endswith("(before the deadline)")


def test_a_retrying_row_says_why_and_when_the_next_attempt_comes() -> None:
    view = LiveView()
    next_try = (datetime.now(UTC) + timedelta(minutes=2)).replace(microsecond=0)
    local = next_try.astimezone(ZoneInfo("Europe/Paris"))
    view.plan = SimpleNamespace(deadline=datetime.now(UTC) + timedelta(minutes=30), channels=[],
                                context=SimpleNamespace(timezone="Europe/Paris"))
    view.rows[("x", "en")] = LiveView._row(1)
    view.rows[("ops", "en")] = LiveView._row(1)
    view.event(DeliveryEvent("x", "en", "sent", 1, url="https://x.com/i/web/status/1"))
    view.event(DeliveryEvent("ops", "en", "retrying", 1, "rate limited (HTTP 429)", retry_at=next_try))
    text = _render(view)
    # In the playbook's zone, labelled, to the second: "429 until 14:05" is what the operator waits for.
    assert re.search(rf"rate limited \(HTTP 429\) · next try (\d{{4}}-\d\d-\d\d )?{local:%H:%M:%S} {local.tzname()}",
                     text), text
    assert "Publishing 1/2 · deadline " in text

    # While the next attempt runs, the reason of the last one stays on screen.
    view.event(DeliveryEvent("ops", "en", "sending", 2))
    assert "attempt 2, after: rate limited (HTTP 429)" in _render(view)
