"""What a command opens once and shares: the home, its channels and its ledger."""

from __future__ import annotations

from dataclasses import dataclass, field

from playbook import logs
from playbook.home.channel_config import Channels, load_channels
from playbook.home.locate import Home
from playbook.ledger import open_existing, open_ledger
from playbook.ledger.contract import Ledger


@dataclass
class Session:
    """A home, its channels and its ledger, opened once per command."""

    home: Home
    channels: Channels | None = None
    _ledger: Ledger | None = field(default=None, repr=False)

    def ledger(self, *, create: bool = False, readonly: bool = False) -> Ledger:
        """The ledger; a writable one also opens the log file (`playbook.log`, beside a ledger file)."""
        if self._ledger is None:
            self._ledger = open_ledger(self.home.state, create=create, readonly=readonly, environ=self.home.env)
            if not readonly:
                logs.attach(self.home.log_path)
        return self._ledger

    def existing_ledger(self) -> Ledger | None:
        """The ledger, writable, if anything was ever recorded in it; None before the first trigger."""
        if self._ledger is None:
            self._ledger = open_existing(self.home.state, environ=self.home.env)
            if self._ledger is not None:
                logs.attach(self.home.log_path)
        return self._ledger

    def load_channels(self) -> Channels:
        if self.channels is None:
            self.channels = load_channels(self.home)
        return self.channels

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
