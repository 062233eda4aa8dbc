"""`playbook worker`: the process that keeps a crisis's promises after the first post.

service.py runs the passes (heartbeat, retries handed over by the commands, duties) and handles signals;
schedule.py decides, from the ledger and a clock, which duties are due; notices.py writes and sends what the
worker tells the on-call (reminders, a failed rehearsal) through the playbook's reminder channels.
"""

from playbook.worker.service import Worker

__all__ = ["Worker"]
