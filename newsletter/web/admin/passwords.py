"""Console passwords: the policy (length, not a common one) and argon2id hashing.

Hashing is argon2-cffi's ``PasswordHasher`` with its defaults (argon2id, RFC 9106
low-memory profile); a stored hash made under older parameters is re-hashed at
the next successful login (:func:`needs_rehash`).
"""

from __future__ import annotations

import functools
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from newsletter.core.errors import InputError

__all__ = [
    "MIN_LENGTH",
    "check_password",
    "hash_password",
    "needs_rehash",
    "verify_password",
]

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 takes any length; a megabyte "password" is a denial of service

_hasher = PasswordHasher()


@functools.cache
def _common() -> frozenset[str]:
    text = resources.files(__package__).joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def check_password(password: str, email: str = "") -> None:
    """Raise :class:`InputError` (field ``password``) unless ``password`` is acceptable.

    At least 12 characters, not one of the most common passwords (in any case),
    not one character repeated, and not the account's own address or its name part.
    """
    if len(password) < MIN_LENGTH:
        raise InputError(f"must be at least {MIN_LENGTH} characters long", field="password")
    if len(password) > MAX_LENGTH:
        raise InputError(f"must be at most {MAX_LENGTH} characters long", field="password")
    folded = password.strip().lower()
    if folded in _common() or len(set(folded)) <= 2:
        raise InputError("is one of the most common passwords; choose another", field="password")
    local = email.lower().partition("@")[0]
    if email and (folded == email.lower() or (len(local) >= 4 and local in folded)):
        raise InputError("must not contain the account's address", field="password")


def hash_password(password: str) -> str:
    """The argon2id hash to store for ``password``."""
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when ``password`` matches the ``stored`` hash (never raises for a mismatch)."""
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True
