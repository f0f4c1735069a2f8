"""One edition's report: who it went to, what came back, and which stories were read.

How things are attributed to the edition:

* **bounced**: the recipients whose message the relay refused with a 5xx during
  the send (outbox ``failed`` rows with a 5xx code), plus those with a later
  ``bounced`` or ``soft_bounce`` event whose detail names this edition or the
  Message-ID of their copy of it (a DSN that came back after the 250).
* **complaints** and **unsubscribes**: a recipient's ``complained`` or
  ``unsubscribed`` event counts for this edition when it came after their copy
  was sent, within :data:`ATTRIBUTION_WINDOW` (7 days), and no later edition had
  reached them in between (the last edition they got takes the blame, so an
  unsubscribe is counted once across editions).
  Leaving only this edition's newsletter (a ``newsletter_unsubscribed`` event
  naming it, e.g. its one-click link) counts the same way, except that only a
  later edition *of that newsletter* takes the blame; a reader counts once
  even when leaving their last newsletter records both events.
* **clicks**: the ``clicks`` table's ``human`` clicks; ``scanner`` clicks (HEAD
  requests, link checkers, clicks seconds after delivery) are counted apart.
  ``unique_clicks`` counts distinct readers (per-subscriber tracking) or visitors
  (a keyed hash of address and browser, aggregate tracking).
* **delivered**: ``sent`` less the recipients whose message bounced after the 250;
  the click-through rate is unique clickers / delivered.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from newsletter.content.editions import get_edition
from newsletter.core.schema import clicks, deliveries, editions
from newsletter.delivery import outbox
from newsletter.delivery.outcomes import DeliveryStatus
from newsletter.reports.subjects import SubjectTestReport, subject_test_report
from subscribers.bounces import SOFT_BOUNCE_EVENT
from subscribers.schema import subscriber_events
from subscribers.subscriptions import UNSUBSCRIBED_EVENT

__all__ = [
    "ATTRIBUTION_WINDOW",
    "ArticleClicks",
    "EditionReport",
    "attributed",
    "clicker",
    "edition_report",
    "unsubscribes",
]

#: how long after a message a complaint or an unsubscribe is still put down to it
ATTRIBUTION_WINDOW = timedelta(days=7)

_D = deliveries.c
_E = subscriber_events.c
_SENT = DeliveryStatus.SENT.value


class ArticleClicks(BaseModel):
    """One story of the edition and how often its link was followed."""

    id: str
    url: str
    section: str
    clicks: int = 0
    unique_clicks: int = 0
    scanner_clicks: int = 0


class EditionReport(BaseModel):
    """What one edition did; see the module docstring for how each number is attributed."""

    edition_id: str
    subject: str
    status: str
    first_sent_at: datetime | None
    recipients: int
    queued: int
    sent: int
    deferred: int
    failed: int
    unknown: int
    skipped: int
    delivered: int
    bounced: int
    complaints: int
    unsubscribes: int
    clicks: int
    unique_clickers: int
    scanner_clicks: int
    click_through_rate: float | None
    articles: list[ArticleClicks]
    subject_test: SubjectTestReport | None = None  # a subject-line test's arms, if any


def clicker() -> Any:
    """The SQL expression a unique click counts: the reader if known, else the visitor."""
    return sa.func.coalesce(sa.cast(clicks.c.subscriber_id, sa.String), clicks.c.visitor)


def attributed(
    conn: Connection, edition_id: str, kind: str, *, newsletter: str | None = None
) -> set[int]:
    """The recipients whose ``kind`` event (``unsubscribed``, ``complained``) is put down
    to this edition: after their copy was sent, within the window, no later edition between.

    With ``newsletter``, only events whose ``newsletters`` detail names it count, and only
    a later edition of that newsletter comes between (``newsletter_unsubscribed``).
    """
    later = deliveries.alias("later")
    between = sa.exists().where(
        later.c.subscriber_id == _D.subscriber_id,
        later.c.status == _SENT,
        later.c.sent_at > _D.sent_at,
        later.c.sent_at <= _E.at,
    )
    if newsletter is not None:
        between = between.where(
            later.c.edition_id == editions.c.id, editions.c.newsletter_id == newsletter
        )
    query = (
        sa.select(_E.subscriber_id, _E.at, _E.detail, _D.sent_at)
        .select_from(subscriber_events.join(deliveries, _D.subscriber_id == _E.subscriber_id))
        .where(
            _D.edition_id == edition_id,
            _D.status == _SENT,
            _D.sent_at.is_not(None),
            _E.kind == kind,
            _E.at >= _D.sent_at,
            ~between,
        )
    )
    return {
        int(r.subscriber_id)
        for r in conn.execute(query)
        if r.at - r.sent_at <= ATTRIBUTION_WINDOW
        and (newsletter is None or _names(r.detail, newsletter))
    }


def _names(detail: object, newsletter: str) -> bool:
    """Does an event's detail list ``newsletter`` among its ``newsletters``?"""
    named = detail.get("newsletters") if isinstance(detail, dict) else None
    return isinstance(named, list) and newsletter in named


def unsubscribes(conn: Connection, edition_id: str, newsletter: str) -> set[int]:
    """The recipients who left after this edition: everything (``unsubscribed``) or its
    newsletter alone (``newsletter_unsubscribed`` naming ``newsletter``), each once."""
    whole = attributed(conn, edition_id, "unsubscribed")
    return whole | attributed(conn, edition_id, UNSUBSCRIBED_EVENT, newsletter=newsletter)


def _bounced(conn: Connection, edition_id: str) -> tuple[set[int], set[int]]:
    """(refused during the send, bounced after a 250): recipient ids."""
    refused = {
        int(i)
        for i in conn.execute(
            sa.select(_D.subscriber_id).where(
                _D.edition_id == edition_id,
                _D.status == DeliveryStatus.FAILED.value,
                _D.last_code >= 500,
            )
        ).scalars()
    }
    later: set[int] = set()
    query = (
        sa.select(_E.subscriber_id, _E.detail, _D.message_id)
        .select_from(subscriber_events.join(deliveries, _D.subscriber_id == _E.subscriber_id))
        .where(
            _D.edition_id == edition_id,
            _D.status == _SENT,
            _E.kind.in_(("bounced", SOFT_BOUNCE_EVENT)),
            _E.at >= _D.sent_at,
        )
    )
    for row in conn.execute(query):
        detail = row.detail if isinstance(row.detail, dict) else {}
        message_id = str(detail.get("message_id") or "")
        named = edition_id in json.dumps(detail, ensure_ascii=False)
        if named or (message_id and row.message_id and message_id.strip("<>") in row.message_id):
            later.add(int(row.subscriber_id))
    return refused, later - refused


def edition_report(conn: Connection, edition_id: str) -> EditionReport:
    """The report of edition ``edition_id``; :class:`NotFoundError` when there is none."""
    edition = get_edition(conn, edition_id)
    counts = outbox.counts(conn, edition.id)
    first_sent = conn.execute(
        sa.select(sa.func.min(_D.sent_at)).where(_D.edition_id == edition.id)
    ).scalar_one_or_none()
    refused, bounced_later = _bounced(conn, edition.id)
    sent = counts[DeliveryStatus.SENT]
    delivered = max(sent - len(bounced_later), 0)

    articles = {
        a.id: ArticleClicks(id=a.id, url=str(a.url), section=a.section) for a in edition.articles()
    }
    c = clicks.c
    per_article = sa.select(
        c.article_id, c.kind, sa.func.count(), sa.func.count(sa.distinct(clicker()))
    ).where(c.edition_id == edition.id)
    for article_id, kind, number, unique in conn.execute(
        per_article.group_by(c.article_id, c.kind)
    ):
        found = articles.get(article_id)
        if found is None:  # a story edited out after the send: still its clicks
            found = articles[article_id] = ArticleClicks(id=article_id, url="", section="")
        if kind == "human":
            found.clicks, found.unique_clicks = int(number), int(unique)
        else:
            found.scanner_clicks += int(number)
    clickers = conn.execute(
        sa.select(sa.func.count(sa.distinct(clicker()))).where(
            c.edition_id == edition.id, c.kind == "human"
        )
    ).scalar_one()
    rows = list(articles.values())
    return EditionReport(
        edition_id=edition.id,
        subject=edition.subject,
        status=edition.status.value,
        first_sent_at=first_sent,
        recipients=sum(counts.values()),
        queued=counts[DeliveryStatus.QUEUED] + counts[DeliveryStatus.SENDING],
        sent=sent,
        deferred=counts[DeliveryStatus.DEFERRED],
        failed=counts[DeliveryStatus.FAILED],
        unknown=counts[DeliveryStatus.UNKNOWN],
        skipped=counts[DeliveryStatus.SKIPPED],
        delivered=delivered,
        bounced=len(refused) + len(bounced_later),
        complaints=len(attributed(conn, edition.id, "complained")),
        unsubscribes=len(unsubscribes(conn, edition.id, edition.newsletter)),
        clicks=sum(a.clicks for a in rows),
        unique_clickers=int(clickers),
        scanner_clicks=sum(a.scanner_clicks for a in rows),
        click_through_rate=round(clickers / delivered, 4) if delivered else None,
        articles=rows,
        subject_test=subject_test_report(conn, edition.id, edition.subject),
    )
