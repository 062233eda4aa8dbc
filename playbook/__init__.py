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
    "ChannelContext",
    "CheckResult",
    "Delivery",
    "DeliveryStatus",
    "Failure",
    "HttpPublisher",
    "Limit",
    "Link",
    "ListedPublisher",
    "Measure",
    "Message",
    "PlaybookError",
    "Publisher",
    "Receipt",
    "Recipient",
    "Stage",
    "failure_from_exception",
    "failure_from_response",
    "host_of",
    "json_of",
]

_WHERE = {
    "ChannelConfig": "playbook.publishers.base",
    "ChannelContext": "playbook.publishers.base",
    "CheckResult": "playbook.publishers.base",
    "Delivery": "playbook.publishers.base",
    "Failure": "playbook.publishers.base",
    "Link": "playbook.publishers.base",
    "Publisher": "playbook.publishers.base",
    "Receipt": "playbook.publishers.base",
    "Recipient": "playbook.publishers.base",
    "Stage": "playbook.publishers.base",
    "host_of": "playbook.publishers.base",
    # The HTTP kit imports httpx: only a plugin that asks for it pays for it.
    "HttpPublisher": "playbook.publishers.http",
    "failure_from_exception": "playbook.publishers.http",
    "failure_from_response": "playbook.publishers.http",
    "json_of": "playbook.publishers.http",
    "ListedPublisher": "playbook.publishers.listed",
    "DeliveryStatus": "playbook.ledger.statuses",
    "Limit": "playbook.publishers.limits",
    "Measure": "playbook.publishers.limits",
    "Message": "playbook.publishers.base",
    "PlaybookError": "playbook.errors",
}

if TYPE_CHECKING:
    from playbook.errors import PlaybookError
    from playbook.ledger.statuses import DeliveryStatus
    from playbook.publishers.base import (
        ChannelConfig,
        ChannelContext,
        CheckResult,
        Delivery,
        Failure,
        Link,
        Message,
        Publisher,
        Receipt,
        Recipient,
        Stage,
        host_of,
    )
    from playbook.publishers.http import (
        HttpPublisher,
        failure_from_exception,
        failure_from_response,
        json_of,
    )
    from playbook.publishers.limits import Limit, Measure
    from playbook.publishers.listed import ListedPublisher


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'playbook' has no attribute '{name}'")
