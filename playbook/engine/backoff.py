"""How long a retry waits: shared by one delivery's retries (attempts.py) and a channel's probes while it is
down as a whole (outage.py)."""

from __future__ import annotations

import random

BACKOFF_FIRST = 0.5
BACKOFF_CAP = 30.0


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: retries of many clients do not arrive together."""
    # The floor is half the first wait: uniform(0.5, 0.5) would send every first retry at the same instant.
    return random.uniform(BACKOFF_FIRST / 2, min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (attempt - 1)))
