"""Fakes of what monitors watch, on 127.0.0.1: a provider's Statuspage summary, our number's Cloud API health,
a plain HTTP health URL.

Each is switched by the test: `down()` and `up()` (the provider's outage and its end), `slow(seconds)` (every
answer that much later, for timeouts; `slow(0)` to stop); a one-off broken answer is scripted as with any
ProviderFake (`fake.script(fake.path, Answer(200, "<html>"))`).
"""

from __future__ import annotations

from typing import Any

from tests.fakes.provider import Answer, ProviderFake, Received
from tests.fakes.whatsapp_api import VERSION, graph_error

SUMMARY_PATH = "/api/v2/summary.json"


class _Switchable(ProviderFake):
    """A fake whose answers are up or down, and all late by `delay` seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.is_up = True
        self.delay = 0.0

    def up(self) -> None:
        with self._lock:
            self.is_up = True

    def down(self) -> None:
        with self._lock:
            self.is_up = False

    def slow(self, seconds: float) -> None:
        with self._lock:
            self.delay = seconds

    def answer(self, request: Received) -> Answer:
        with self._lock:
            up, delay = self.is_up, self.delay
        found = self.healthy(request) if up else self.outage(request)
        return Answer(found.status, found.body, found.headers, delay)

    def healthy(self, request: Received) -> Answer:
        raise NotImplementedError

    def outage(self, request: Received) -> Answer:
        raise NotImplementedError


class FakeStatusPage(_Switchable):
    """An Atlassian Statuspage: `component` is operational when up, `outage` (major_outage) when down; the other
    components stay operational."""

    def __init__(self, component: str, others: tuple[str, ...] = ("Facebook Login", "Marketing API"),
                 outage: str = "major_outage") -> None:
        super().__init__()
        self.component = component
        self.others = others
        self.outage_status = outage

    @property
    def path(self) -> str:
        return SUMMARY_PATH

    @property
    def summary_url(self) -> str:
        return self.url + SUMMARY_PATH

    def healthy(self, request: Received) -> Answer:
        return self._summary(request, "operational")

    def outage(self, request: Received) -> Answer:
        return self._summary(request, self.outage_status)

    def _summary(self, request: Received, status: str) -> Answer:
        if request.path != SUMMARY_PATH:
            return Answer(404, {"error": "Not found"})
        components = [_component(name, "operational") for name in self.others]
        components.insert(1, _component(self.component, status))
        indicator = "none" if status == "operational" else "major"
        return Answer(200, {
            "page": {"id": "y2j98763l56x", "name": "Provider", "url": self.url, "time_zone": "Etc/UTC",
                     "updated_at": "2026-11-30T16:00:00.000Z"},
            "components": components,
            "incidents": [],
            "scheduled_maintenances": [],
            "status": {"indicator": indicator, "description": "All Systems Operational" if indicator == "none"
                       else "Partial System Outage"},
        })


def _component(name: str, status: str) -> dict[str, Any]:
    return {"id": name.lower().replace(" ", "")[:12], "name": name, "status": status,
            "created_at": "2020-01-01T00:00:00.000Z", "updated_at": "2026-11-30T16:00:00.000Z", "position": 1,
            "description": None, "showcase": True, "group_id": None, "page_id": "y2j98763l56x", "group": False,
            "only_show_if_degraded": False}


class FakeCloudHealth(_Switchable):
    """The Graph API's GET /v21.0/<phone_number_id>?fields=health_status, reached with `token`: the number
    can send (AVAILABLE) when up, `outage` (BLOCKED or LIMITED) when down. A wrong token is Graph's error 190."""

    def __init__(self, token: str, phone_number_id: str, outage: str = "BLOCKED") -> None:
        super().__init__()
        self.token = token
        self.phone_number_id = phone_number_id
        self.outage_status = outage

    @property
    def api_base(self) -> str:
        return f"{self.url}/{VERSION}"

    @property
    def path(self) -> str:
        return f"/{VERSION}/{self.phone_number_id}"

    def healthy(self, request: Received) -> Answer:
        return self._health(request, "AVAILABLE")

    def outage(self, request: Received) -> Answer:
        return self._health(request, self.outage_status)

    def _health(self, request: Received, can_send: str) -> Answer:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if request.path != self.path:
            return graph_error(400, 100, "Unsupported get request.", kind="GraphMethodException", subcode=33)
        if request.query.get("fields") != "health_status":
            return Answer(200, {"id": self.phone_number_id})
        errors = [] if can_send == "AVAILABLE" else [{
            "error_code": 141006,
            "error_description": "There is an error with the payment method.",
            "possible_solution": "Add a valid payment method to the WhatsApp Business Account.",
        }]
        entities = [
            {"entity_type": "PHONE_NUMBER", "id": self.phone_number_id, "can_send_message": can_send},
            {"entity_type": "WABA", "id": "102290129340398", "can_send_message": can_send,
             **({"errors": errors} if errors else {})},
            {"entity_type": "BUSINESS", "id": "215589313241560883", "can_send_message": "AVAILABLE"},
            {"entity_type": "APP", "id": "334457123331222", "can_send_message": "AVAILABLE"},
        ]
        return Answer(200, {"health_status": {"can_send_message": can_send, "entities": entities},
                            "id": self.phone_number_id})


class FakeHealthUrl(_Switchable):
    """A service's health URL: 200 `{"ok": true}` when up, 503 `{"ok": false}` when down."""

    @property
    def path(self) -> str:
        return "/health"

    @property
    def health_url(self) -> str:
        return self.url + self.path

    def healthy(self, request: Received) -> Answer:
        return Answer(200, {"ok": True, "checks": {"db": "ok", "queue": "ok"}})

    def outage(self, request: Received) -> Answer:
        return Answer(503, {"ok": False, "checks": {"db": "ok", "queue": "unreachable"}})
