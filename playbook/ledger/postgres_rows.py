"""PostgreSQL rows to the contract's records (psycopg already reads times, flags and JSON as Python values)."""

from __future__ import annotations

from psycopg.rows import DictRow

from playbook.ledger.contract import DeliveryRow, DeliveryStatus, Incident, Post


def incident_of(row: DictRow) -> Incident:
    return Incident(id=row["id"], playbook=row["playbook"], drill=row["drill"], open=row["open"],
                    detected_at=row["detected_at"], opened_at=row["opened_at"], closed_at=row["closed_at"],
                    phase=row["phase"], vars=row["vars"], operator=row["operator"])


def post_of(row: DictRow) -> Post:
    return Post(incident=row["incident"], seq=row["seq"], phase=row["phase"], issued_at=row["issued_at"],
                deadline=row["deadline"], next_update_at=row["next_update_at"], vars=row["vars"],
                operator=row["operator"], texts=row["texts"])


def delivery_of(row: DictRow) -> DeliveryRow:
    return DeliveryRow(
        key=row["key"], incident=row["incident"], seq=row["seq"], phase=row["phase"], channel=row["channel"],
        lang=row["lang"], recipient=row["recipient"], status=DeliveryStatus(row["status"]), attempts=row["attempts"],
        remote_id=row["remote_id"], url=row["url"], note=row["note"], error=row["error"],
        created_at=row["created_at"], started_at=row["started_at"], finished_at=row["finished_at"],
    )
