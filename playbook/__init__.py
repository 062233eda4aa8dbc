"""crisis-playbook: get a brand's crisis messages out on every channel, inside the playbook's window.

The names below are the API for publisher plugins. They are imported on first use so that
`playbook --help` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ChannelConfig",
    "CheckResult",
    "Delivery",
    "Failure",
    "Limit",
    "Measure",
    "Message",
    "PlaybookError",
    "Publisher",
    "Receipt",
    "Recipient",
]

_WHERE = {
    "ChannelConfig": "playbook.publishers.base",
    "CheckResult": "playbook.publishers.base",
    "Delivery": "playbook.publishers.base",
    "Failure": "playbook.publishers.base",
    "Publisher": "playbook.publishers.base",
    "Receipt": "playbook.publishers.base",
    "Recipient": "playbook.publishers.base",
    "Limit": "playbook.limits",
    "Measure": "playbook.limits",
    "Message": "playbook.templates",
    "PlaybookError": "playbook.errors",
}

if TYPE_CHECKING:
    from playbook.errors import PlaybookError
    from playbook.limits import Limit, Measure
    from playbook.publishers.base import (
        ChannelConfig,
        CheckResult,
        Delivery,
        Failure,
        Publisher,
        Receipt,
        Recipient,
    )
    from playbook.templates import Message


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'playbook' has no attribute '{name}'")
