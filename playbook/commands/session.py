"""What a command opens once and shares: the home, its channels and its ledger."""

from __future__ import annotations

from dataclasses import dataclass, field

from playbook import logs
from playbook.home.channel_config import Channels, load_channels
from playbook.home.locate import Home
from playbook.ledger import open_ledger
from playbook.ledger.contract import Ledger


@dataclass
class Session:
    """A home, its channels and its ledger, opened once per command."""

    home: Home
    channels: Channels | None = None
    _ledger: Ledger | None = field(default=None, repr=False)

    def ledger(self, *, create: bool = False, readonly: bool = False) -> Ledger:
        """The ledger; a writable one also opens the log file beside it (`playbook.log`)."""
        if self._ledger is None:
            self._ledger = open_ledger(self.home.state_path, create=create, readonly=readonly)
            if not readonly:
                logs.attach(self.home.state_path.with_name("playbook.log"))
        return self._ledger

    def load_channels(self) -> Channels:
        if self.channels is None:
            self.channels = load_channels(self.home)
        return self.channels

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
