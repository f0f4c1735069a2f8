"""The console's audit log: who changed what, when, written inside the change's transaction.

Entries name people by subscriber id, never by address, so an erasure leaves
nothing personal behind here; the actor is a console account or ``cli``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from newsletter.core.db import utcnow
from newsletter.core.schema import audit_log
from newsletter.core.text import one_line

__all__ = ["AuditEntry", "list_entries", "record"]


@dataclass(frozen=True)
class AuditEntry:
    """One change: when, by whom, what (``edition.send``), on what, and a short detail."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: str | None

    def as_json(self) -> dict[str, object]:
        """The entry as plain JSON values."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
        }


def record(
    conn: Connection,
    actor: str,
    action: str,
    target: str | None = None,
    detail: str | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Write one entry in the caller's transaction (so it commits with the change)."""
    conn.execute(
        audit_log.insert().values(
            at=now or utcnow(),
            actor=actor[:320],
            action=action[:60],
            target=target[:200] if target else None,
            detail=one_line(detail)[:2000] if detail else None,
        )
    )


def list_entries(
    conn: Connection, *, limit: int = 100, before: int | None = None, actor: str | None = None
) -> list[AuditEntry]:
    """The newest entries first, ``limit`` of them, older than id ``before`` when given."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(audit_log.c.id < before)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    return [
        AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.detail) for r in conn.execute(query)
    ]
