"""SQLite rows to the contract's records, and what the SQLite ledger writes for them."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from playbook.ledger.contract import DeliveryRow, Incident, Post
from playbook.ledger.duties import Duty, DutyKind, MonitorChange, Worker
from playbook.ledger.statuses import DeliveryStatus


def incident_of(row: sqlite3.Row) -> Incident:
    return Incident(
        id=row["id"], playbook=row["playbook"], drill=bool(row["drill"]), open=bool(row["open"]),
        detected_at=datetime.fromisoformat(row["detected_at"]),
        opened_at=datetime.fromisoformat(row["opened_at"]),
        closed_at=parse_time(row["closed_at"]), phase=row["phase"], vars=json.loads(row["vars"]),
        operator=_optional(row, "operator"),
    )


def post_of(row: sqlite3.Row) -> Post:
    return Post(
        incident=row["incident"], seq=row["seq"], phase=row["phase"],
        issued_at=datetime.fromisoformat(row["issued_at"]), deadline=datetime.fromisoformat(row["deadline"]),
        next_update_at=parse_time(row["next_update_at"]), vars=json.loads(row["vars"]),
        operator=_optional(row, "operator"),
        texts=json.loads(texts) if (texts := _optional(row, "texts")) else None,
        holding=bool(_optional(row, "holding")), handed_until=parse_time(_optional(row, "handed_until")),
    )


def worker_of(row: sqlite3.Row) -> Worker:
    return Worker(host=row["host"], pid=row["pid"], token=row["token"], home=row["home"],
                  started_at=datetime.fromisoformat(row["started_at"]),
                  seen_at=datetime.fromisoformat(row["seen_at"]), doing=row["doing"])


def duty_of(row: sqlite3.Row) -> Duty:
    return Duty(key=row["key"], kind=DutyKind(row["kind"]), incident=row["incident"], playbook=row["playbook"],
                taken_at=datetime.fromisoformat(row["taken_at"]), taken_by=row["taken_by"], attempts=row["attempts"],
                done_at=parse_time(row["done_at"]), ok=None if row["ok"] is None else bool(row["ok"]),
                outcome=row["outcome"])


def monitor_change_of(row: sqlite3.Row) -> MonitorChange:
    return MonitorChange(playbook=row["playbook"], monitor=row["monitor"], seq=row["seq"], state=row["state"],
                         since=datetime.fromisoformat(row["since"]),
                         recorded_at=datetime.fromisoformat(row["recorded_at"]), detail=row["detail"],
                         by=row["recorded_by"])


def delivery_of(row: sqlite3.Row) -> DeliveryRow:
    return DeliveryRow(
        key=row["key"], incident=row["incident"], seq=row["seq"], phase=row["phase"], channel=row["channel"],
        lang=row["lang"], recipient=row["recipient"], status=DeliveryStatus(row["status"]), attempts=row["attempts"],
        remote_id=row["remote_id"], url=row["url"], note=row["note"], error=row["error"],
        created_at=datetime.fromisoformat(row["created_at"]), started_at=parse_time(row["started_at"]),
        finished_at=parse_time(row["finished_at"]),
    )


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _optional(row: sqlite3.Row, column: str) -> Any:
    """A column a read-only ledger written before it existed lacks (it is added on the next write)."""
    try:
        return row[column]
    except IndexError:
        return None
