"""Console accounts: add, list, remove, reset a password, change a role, and log in.

A password is checked against the policy (:func:`~.passwords.check_password`)
and stored only as an argon2 hash. Every change bumps the account's
``session_epoch``, which ends the sessions signed before it. Logging in with an
unknown address costs the same hash verification as a wrong password, so the
timing does not say which addresses have accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.db import utcnow
from newsletter.core.errors import InputError, NotFoundError, StateError
from newsletter.core.schema import console_users
from newsletter.web.admin.passwords import (
    check_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from newsletter.web.admin.roles import Role
from subscribers.addresses import normalise_address

__all__ = [
    "User",
    "add_user",
    "authenticate",
    "find_user",
    "get_user",
    "list_users",
    "remove_user",
    "set_password",
    "set_role",
]

_U = console_users.c
# verified against when the address is unknown, so that both cases cost one argon2 run
_DUMMY_HASH = hash_password("not a real password, only a timing twin")


@dataclass(frozen=True)
class User:
    """One console account (never its hash)."""

    id: int
    email: str
    role: Role
    session_epoch: int
    created_at: datetime
    last_login_at: datetime | None


def _user(row: sa.Row[tuple[object, ...]]) -> User:
    m = row._mapping
    return User(
        id=int(m["id"]),
        email=str(m["email"]),
        role=Role(str(m["role"])),
        session_epoch=int(m["session_epoch"]),
        created_at=m["created_at"],
        last_login_at=m["last_login_at"],
    )


def _account_email(email: str) -> str:
    try:
        return normalise_address(email).key
    except InputError as exc:
        raise InputError(exc.reason, field="email") from None


def add_user(
    conn: Connection, email: str, role: Role, password: str, *, now: datetime | None = None
) -> User:
    """Create an account; :class:`StateError` when the address has one already."""
    address = _account_email(email)
    check_password(password, address)
    if find_user(conn, address) is not None:
        raise StateError(f"there is already a console account for {address}")
    now = now or utcnow()
    result = conn.execute(
        console_users.insert().values(
            email=address,
            role=role.value,
            password_hash=hash_password(password),
            session_epoch=0,
            created_at=now,
            updated_at=now,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return get_user(conn, int(key[0]))


def get_user(conn: Connection, user_id: int) -> User:
    """The account ``user_id``; :class:`NotFoundError` when there is none."""
    row = conn.execute(sa.select(console_users).where(_U.id == user_id)).first()
    if row is None:
        raise NotFoundError(f"no console account {user_id}")
    return _user(row)


def find_user(conn: Connection, email: str) -> User | None:
    """The account with this address, or None."""
    try:
        address = normalise_address(email).key
    except InputError:
        return None
    row = conn.execute(sa.select(console_users).where(_U.email == address)).first()
    return _user(row) if row is not None else None


def _existing(conn: Connection, email: str) -> User:
    found = find_user(conn, email)
    if found is None:
        raise NotFoundError(f"no console account for {email.strip()}")
    return found


def list_users(conn: Connection) -> list[User]:
    """Every account, by address."""
    return [_user(r) for r in conn.execute(sa.select(console_users).order_by(_U.email))]


def remove_user(conn: Connection, email: str) -> User:
    """Delete the account (its sessions end with it) and return what it was."""
    user = _existing(conn, email)
    conn.execute(console_users.delete().where(_U.id == user.id))
    return user


def set_password(
    conn: Connection, email: str, password: str, *, now: datetime | None = None
) -> User:
    """Replace the account's password and end its sessions."""
    user = _existing(conn, email)
    check_password(password, user.email)
    conn.execute(
        console_users.update()
        .where(_U.id == user.id)
        .values(
            password_hash=hash_password(password),
            session_epoch=_U.session_epoch + 1,
            updated_at=now or utcnow(),
        )
    )
    return get_user(conn, user.id)


def set_role(conn: Connection, email: str, role: Role, *, now: datetime | None = None) -> User:
    """Change the account's role and end its sessions."""
    user = _existing(conn, email)
    conn.execute(
        console_users.update()
        .where(_U.id == user.id)
        .values(role=role.value, session_epoch=_U.session_epoch + 1, updated_at=now or utcnow())
    )
    return get_user(conn, user.id)


def authenticate(
    conn: Connection, email: str, password: str, *, now: datetime | None = None
) -> User | None:
    """The account when ``password`` is its password (and the login is stamped), else None."""
    if len(password) > 1024:
        return None
    try:
        address = normalise_address(email).key
    except InputError:
        address = ""
    row = (
        conn.execute(sa.select(console_users).where(_U.email == address)).first()
        if address
        else None
    )
    stored = str(row._mapping["password_hash"]) if row is not None else _DUMMY_HASH
    if not verify_password(stored, password) or row is None:
        return None
    values: dict[str, object] = {"last_login_at": now or utcnow()}
    if needs_rehash(stored):
        values["password_hash"] = hash_password(password)
    conn.execute(console_users.update().where(_U.id == row._mapping["id"]).values(**values))
    return get_user(conn, int(row._mapping["id"]))
