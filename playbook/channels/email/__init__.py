"""`type: email`: one message per customer of a CSV list, over SMTP through a pool of reused connections.

The package's face: `addresses` checks addresses, `mime` builds the message's bytes, `smtp` speaks the
protocol over connections aiosmtplib opened, `publisher` holds the channel's settings and the publisher.
"""

from playbook.channels.email.addresses import email_address
from playbook.channels.email.publisher import EmailConfig, EmailPublisher

__all__ = ["EmailConfig", "EmailPublisher", "email_address"]
