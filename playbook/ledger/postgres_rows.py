"""PostgreSQL rows to the contract's records (psycopg already reads times, flags and JSON as Python values)."""

from __future__ import annotations

from psycopg.rows import DictRow

from playbook.ledger.contract import DeliveryRow, Incident, Post
from playbook.ledger.duties import Duty, DutyKind, MonitorChange, Worker
from playbook.ledger.statuses import DeliveryStatus


def incident_of(row: DictRow) -> Incident:
    return Incident(id=row["id"], playbook=row["playbook"], drill=row["drill"], open=row["open"],
                    detected_at=row["detected_at"], opened_at=row["opened_at"], closed_at=row["closed_at"],
                    phase=row["phase"], vars=row["vars"], operator=row["operator"])


def post_of(row: DictRow) -> Post:
    return Post(incident=row["incident"], seq=row["seq"], phase=row["phase"], issued_at=row["issued_at"],
                deadline=row["deadline"], next_update_at=row["next_update_at"], vars=row["vars"],
                operator=row["operator"], texts=row["texts"],
                # A reader of a schema 1 database reads it as it is: it has neither column.
                holding=bool(row.get("holding")), handed_until=row.get("handed_until"))


def worker_of(row: DictRow) -> Worker:
    return Worker(host=row["host"], pid=row["pid"], token=row["token"], home=row["home"],
                  started_at=row["started_at"], seen_at=row["seen_at"], doing=row["doing"])


def duty_of(row: DictRow) -> Duty:
    return Duty(key=row["key"], kind=DutyKind(row["kind"]), incident=row["incident"], playbook=row["playbook"],
                taken_at=row["taken_at"], taken_by=row["taken_by"], attempts=row["attempts"], done_at=row["done_at"],
                ok=row["ok"], outcome=row["outcome"])


def monitor_change_of(row: DictRow) -> MonitorChange:
    return MonitorChange(playbook=row["playbook"], monitor=row["monitor"], seq=row["seq"], state=row["state"],
                         since=row["since"], recorded_at=row["recorded_at"], detail=row["detail"],
                         by=row["recorded_by"])


def delivery_of(row: DictRow) -> DeliveryRow:
    return DeliveryRow(
        key=row["key"], incident=row["incident"], seq=row["seq"], phase=row["phase"], channel=row["channel"],
        lang=row["lang"], recipient=row["recipient"], status=DeliveryStatus(row["status"]), attempts=row["attempts"],
        remote_id=row["remote_id"], url=row["url"], note=row["note"], error=row["error"],
        created_at=row["created_at"], started_at=row["started_at"], finished_at=row["finished_at"],
    )
