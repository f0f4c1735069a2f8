"""A subject-line test's results (:mod:`newsletter.delivery.subjects`), for ``report``.

Each arm's figures are as they stand now (readers, messages sent, unique human
clickers, and their rate: unique clickers per message sent); ``decided_on`` keeps
the figures the winner was chosen on, at ``decided_at``. Clicks from the rest's
messages are not an arm's: their links name no arm.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.engine import Connection

from newsletter.delivery import subjects

__all__ = ["ArmReport", "SubjectTestReport", "subject_test_report"]


class ArmReport(BaseModel):
    """One arm of the test."""

    arm: str  # A (the edition's own subject) | B
    subject: str
    recipients: int
    sent: int
    unique_clicks: int
    rate: float | None  # unique clickers per message sent; None before any was sent
    won: bool


class SubjectTestReport(BaseModel):
    """The test: what was tried, on how many, when it is or was decided, and who won."""

    share: int  # percent of the recipients in the test
    started_at: datetime
    decide_at: datetime
    rest: int  # recipients sent the winner's subject (or waiting for it)
    winner: str | None  # None until decided
    decided_at: datetime | None
    decided_on: dict[str, dict[str, int]] | None  # arm -> sent, unique_clicks then
    arms: list[ArmReport]


def subject_test_report(
    conn: Connection, edition_id: str, subject_a: str
) -> SubjectTestReport | None:
    """The edition's subject-line test and each arm's results, or ``None`` without one."""
    test = subjects.get(conn, edition_id)
    if test is None:
        return None
    arms = [
        ArmReport(
            arm=r.arm,
            subject=r.subject,
            recipients=r.recipients,
            sent=r.sent,
            unique_clicks=r.unique_clicks,
            rate=round(float(r.rate), 4) if r.sent else None,
            won=r.arm == test.winner,
        )
        for r in subjects.arm_results(conn, test, subject_a)
    ]
    return SubjectTestReport(
        share=test.share,
        started_at=test.started_at,
        decide_at=test.decide_at,
        rest=test.rest,
        winner=test.winner,
        decided_at=test.decided_at,
        decided_on=test.decision,
        arms=arms,
    )
