"""The base of channels that send one message per row of a recipient list: email, SMS, WhatsApp."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar, cast

from playbook.publishers.base import ChannelConfig, Publisher, Recipient
from playbook.publishers.recipients import Audience, ListReading, RecipientList

C = TypeVar("C", bound=ChannelConfig)


class _ListSettings(Protocol):
    """The settings every listed channel's config has."""

    recipients: str
    connections: int


class ListedPublisher(Publisher[C]):
    """Reads `recipients:` (a CSV file, relative to the home) and sends to `connections` rows at a time.

    A subclass names the list's address column and what an address is, and checks one in `address`.
    """

    address_column: ClassVar[str]
    # What an address is, in the words of the error for a row that has none or a wrong one.
    address_kind: ClassVar[str]

    def address(self, text: str) -> str:
        """`text` as the address to send to, or ValueError saying what is wrong with it."""
        raise NotImplementedError

    @property
    def _listed(self) -> _ListSettings:
        return cast(_ListSettings, self.config)

    @property
    def per_recipient(self) -> bool:
        return True

    @property
    def concurrency(self) -> int:
        return int(self._listed.connections)

    @property
    def rate(self) -> float | None:
        """Messages per second at most, for the engine's rate limiter: the `rate` setting where the type has one."""
        rate = getattr(self.config, "rate", None)
        return None if rate is None else float(rate)

    def recipient_list(self) -> RecipientList:
        shown = str(self._listed.recipients)
        path = Path(shown)
        return RecipientList(path if path.is_absolute() else self.context.home / path, shown, self.address_column,
                             self.address, self.address_kind)

    def recipients(self) -> Iterator[Recipient]:
        return iter(self.recipient_list())

    def recipient_count(self) -> int | None:
        return self.reading.count

    def audience(self, languages: list[str]) -> Audience:
        return self.reading.audience(languages)

    def validate(self) -> list[str]:
        """The list's problems: missing file or column, bad addresses with their line numbers."""
        return list(self.reading.problems)

    def warnings(self) -> list[str]:
        return list(self.reading.warnings)

    @cached_property
    def reading(self) -> ListReading:
        """The list read once for all a plan asks of it (problems, warnings, counts, samples); sending streams it."""
        return self.recipient_list().read()
