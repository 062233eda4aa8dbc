"""Publishing a post: every channel x language at once, each delivery retried inside the window.

The ledger holds the intent of every delivery before it is attempted and the outcome right after; a
delivery the ledger already confirms is never attempted again, whoever re-runs what. A run claims its post
and each batch of deliveries in the ledger, and renews those claims while it works: no other process
attempts them meanwhile.

runner.py runs the channels of a post, attempts.py one delivery's attempts and retries (backoff.py, how long
a retry waits), recipients.py a per-recipient channel's list (with outage.py for a server that is down),
claims.py the run's claims.
"""

from playbook.engine.attempts import Retries
from playbook.engine.results import DeliveryEvent, DeliveryResult, Observer, PostResult
from playbook.engine.runner import Engine

__all__ = ["DeliveryEvent", "DeliveryResult", "Engine", "Observer", "PostResult", "Retries"]
