"""Addresses of a list and of the From and Reply-To settings: checked, international domains in ASCII."""

from __future__ import annotations

import re
from email.utils import parseaddr
from functools import lru_cache


def email_address(text: str) -> str:
    """`text` as an address to send to (an international domain in ASCII), or ValueError saying what is wrong."""
    # A list is read twice per send and checking a domain is most of the validator's time, while a list
    # holds few distinct domains: a plain local part (the validator keeps it as it is) with a domain
    # already found valid skips the rest. Anything else, errors included, goes through the validator.
    plain_local, lowered_names, max_length = _validator_rules()
    local, at, domain = text.partition("@")
    if at and plain_local.match(local) and local.lower() not in lowered_names:
        forms = _domain_forms(domain)
        if forms is not None:
            address = f"{local}@{forms[1]}"
            # The validator's length rule, on each form of the address it checks.
            if max(len(text.encode()), len(f"{local}@{forms[0]}".encode()), len(address)) <= max_length:
                return address
    return _validated(text)


@lru_cache(maxsize=1)
def _validator_rules() -> tuple[re.Pattern[str], frozenset[str], int]:
    """The validator's own rules for a plain local part, the mailbox names it lower-cases, the longest address."""
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT, EMAIL_MAX_LENGTH

    return DOT_ATOM_TEXT, frozenset(CASE_INSENSITIVE_MAILBOX_NAMES), EMAIL_MAX_LENGTH


def _validated(text: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    if not text:
        raise ValueError("no address")
    try:
        # Without SMTPUTF8 every address fits in plain headers and envelopes; non-ASCII domains become xn--.
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        reason = str(exc).rstrip(".").replace("The email address", "it")
        raise ValueError(reason[:1].lower() + reason[1:]) from None
    return str(result.ascii_email)


@lru_cache(maxsize=4096)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """The (normalized, ASCII) forms of a valid address domain; None when the validator refuses it."""
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(f"x@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return str(result.domain), str(result.ascii_domain)


def mailbox(value: str) -> tuple[str, str]:
    """("Name", "address") of a "Name <address>" or a bare address, checked."""
    name, address = parseaddr(value)
    if not address:
        raise ValueError(f"'{value}' is not an address: write \"Name <address@example.com>\" or address@example.com")
    try:
        return " ".join(name.split()), email_address(address)
    except ValueError as exc:
        raise ValueError(f"'{address}' is not an email address ({exc})") from None

