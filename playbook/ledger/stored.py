"""How every store writes what the contract records: a post's texts as JSON with secrets masked, and the schema
version it reads back checked against the versions this code knows."""

from __future__ import annotations

import json
from typing import Any

from playbook import secrets
from playbook.errors import LedgerError


def texts_json(texts: dict[str, Any] | None) -> str | None:
    """What a post said, as every store keeps it: JSON, secrets masked."""

    # A secret can reach a message through a variable or a template: the record must not keep it. Masked
    # before encoding, as JSON would escape a secret's quotes or backslashes out of recognition.
    def masked(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: masked(v) for k, v in value.items()}
        return secrets.redact(value) if isinstance(value, str) else value

    return json.dumps(masked(texts), ensure_ascii=False) if texts is not None else None


def known_schema(raw: str, where: str, newest: int, *, recover: str = "") -> int:
    """The schema version `raw` read from a store's meta table, if this code knows it; LedgerError otherwise.

    A newer version is refused, never altered: the code that wrote it may rely on what this one would undo.
    """
    version = int(raw) if raw.isdigit() else 0
    if version > newest:
        raise LedgerError(
            f"the ledger {where} was written by a newer crisis-playbook (ledger schema {version}; this version "
            f"knows 1 to {newest}): upgrade crisis-playbook to use it; nothing was sent, nothing changed"
        )
    if version < 1:
        raise LedgerError(
            f"the ledger {where} has an unknown schema version '{raw}' (this crisis-playbook knows 1 to {newest}): "
            f"it is damaged, or not a crisis-playbook ledger; nothing was sent{'. ' + recover if recover else ''}"
        )
    return version
