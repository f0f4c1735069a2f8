"""Email addresses: validation and the normal form that makes one person one row.

email-validator does the checking (syntax only, no DNS; SMTPUTF8 allowed, so
internationalised domains and UTF-8 local parts pass). The comparison *key* is
the whole address case-folded with its domain in IDNA (ASCII) form, as the big
mailbox providers treat addresses: ``John@Example.COM`` and ``john@example.com``
are one person.

Validating a domain costs email-validator some 13 µs (IDNA and label checks), which
would dominate a million-row import; addresses with a plain ASCII local part
therefore take a fast path: the local part is a strict subset of what
email-validator accepts, and email-validator's verdict on the domain (and its
normal forms) is computed once per domain spelling and cached. Anything
else goes through ``validate_email`` in full. A property test holds both paths
to the same answers.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from email_validator import EmailNotValidError, validate_email

from newsletter.core.errors import SubscriberInputError

__all__ = ["Address", "mask_address", "normalise_address"]

# a dot-atom of safe ASCII characters (no leading, trailing or doubled dots), then
# a domain: email-validator judges and normalises the domain, once per spelling
_FAST = re.compile(r"([A-Za-z0-9_+\-]+(?:\.[A-Za-z0-9_+\-]+)*)@([^@\s\[\]\"\\]+)")
# email-validator lower-cases these role names (RFC 2142); leave them to it
_ROLE_NAMES = frozenset(
    ["postmaster", "abuse", "hostmaster", "webmaster", "mailer-daemon", "noc", "security"]
)
_MAX_LOCAL = 64
_MAX_ADDRESS = 254


class Address(NamedTuple):
    """A valid address: ``email`` to show and send to, ``key`` to compare and index."""

    email: str
    key: str
    ascii_email: str | None  # None when the local part needs SMTPUTF8


@functools.lru_cache(maxsize=16384)
def _domain(domain: str) -> tuple[str, str, int] | None:
    """The unicode and ascii forms of a valid domain and its longest form in UTF-8 octets."""
    try:
        checked = validate_email("a@" + domain, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    longest = max(len(domain.encode()), len(checked.domain.encode()), len(checked.ascii_domain))
    return checked.domain, checked.ascii_domain, longest


_new = tuple.__new__


def _slow(raw: str) -> Address:
    try:
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise SubscriberInputError(f"{raw!r} is not a valid email address: {exc}") from None
    key = checked.local_part.casefold() + "@" + checked.ascii_domain.lower()
    return Address(checked.normalized, key, checked.ascii_email)


def normalise_address(raw: str) -> Address:
    """Validate ``raw`` (syntax only) and return its normal form and comparison key.

    Raises :class:`SubscriberInputError` with email-validator's reason when invalid.
    """
    text = raw.strip()
    match = _FAST.fullmatch(text)
    if match is None:
        return _slow(text)
    local, domain = match.groups()
    folded = local.lower()
    verdict = _domain(domain)
    # email-validator's length rule (every form, in UTF-8 octets) and role names go the
    # full way; an invalid domain too, so that the reason names the whole address
    if (
        verdict is None
        or len(local) > _MAX_LOCAL
        or len(local) + 1 + verdict[2] > _MAX_ADDRESS
        or folded in _ROLE_NAMES
    ):
        return _slow(text)
    unicode_domain, ascii_domain, _ = verdict
    # tuple.__new__: a NamedTuple's own constructor costs twice as much, per address imported
    return _new(
        Address,
        (local + "@" + unicode_domain, folded + "@" + ascii_domain, local + "@" + ascii_domain),
    )


def mask_address(email: str) -> str:
    """``j•••@example.com``: recognisable to its owner, useless to a harvester."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}•••@{domain}"
