"""Sending an edition: outbox first, then a pool of connections draining it.

:func:`send_edition` is the whole delivery engine behind ``newsletter send``:

1. settle what a dead run left (``sending`` -> ``unknown``), write one ``queued``
   outbox row per recipient not yet in it, render each variant once;
2. open the first SMTP connection (a relay that is down fails fast here, with
   every row left ``queued``);
3. a claimer reserves due rows in batches; K workers, one connection each,
   take them one by one: personalise the variant's bytes, ``MAIL``/``RCPT``
   while the journal makes the row ``sending``, then ``DATA``;
4. results go back through the journal in group commits; 4xx and drops are
   retried later with backoff, 5xx fail (and bounce), the pacer adapts the rate
   and connections (:mod:`newsletter.delivery.pacing`), and a run of failures
   pauses the edition; rows deferred far ahead end the run (``deferred_until``);
5. on a stop request nothing new is taken, in-flight messages finish, and the
   untouched reservations are released, so the next run resumes.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.engine import Engine

from newsletter.content.editions import get_edition
from newsletter.content.message import new_message_id
from newsletter.content.models import Edition
from newsletter.content.render import Variant
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.core.errors import DeliveryError
from newsletter.delivery import outbox, subjects
from newsletter.delivery.compose import MessageBuilder, outbox_rows
from newsletter.delivery.outcomes import DeliveryStatus
from newsletter.delivery.report import SendOptions, SendProgress, SendReport
from newsletter.delivery.run import SendRun
from newsletter.delivery.smtp import SMTPPool, send_one, smtp_pool
from subscribers import store

__all__ = [
    "MessageBuilder",
    "SendOptions",
    "SendProgress",
    "SendReport",
    "as_test",
    "send_edition",
]
# MessageBuilder (delivery.compose) and the option/report types (delivery.report)
# are re-exported: this module is where callers of the delivery engine look.


async def send_edition(
    settings: Settings,
    engine: Engine,
    edition_id: str,
    *,
    options: SendOptions | None = None,
    progress: SendProgress | None = None,
    stop: asyncio.Event | None = None,
    pool: SMTPPool | None = None,
) -> SendReport:
    """Deliver ``edition_id`` to every recipient exactly once, resuming any earlier run.

    Returns the run's report (``stopped`` when ``stop`` was set). Raises
    :class:`SMTPUnavailableError` when the relay is down at the start (every
    row stays ``queued``) and :class:`SendPausedError` when too many failures
    in a row paused the edition. ``pool`` replaces the one built from the settings.
    """
    options = options or SendOptions()
    if options.dry_run:
        return _dry_run(settings, engine, edition_id, options)
    settings.check_links_reachable()  # dead unsubscribe links count as complaints
    if options.test_to:
        spec = options.subject_test
        return await _test_send(
            settings, engine, edition_id, options.test_to, pool, spec.subject_b if spec else None
        )
    return await SendRun(settings, engine, edition_id, options, progress, stop, pool).execute()


def _dry_run(
    settings: Settings, engine: Engine, edition_id: str, options: SendOptions
) -> SendReport:
    """Build every message as a real send would, send none and write nothing (with a
    subject-line test: say how the recipients would be split, and when decided)."""
    started = time.perf_counter()
    report = SendReport(edition_id, mode="dry-run")
    spec = options.subject_test
    now = options.clock() if options.clock else utcnow()
    with engine.connect() as conn:
        edition = get_edition(conn, edition_id)
        if spec is not None:
            subjects.check_for(settings, edition, spec)
        if outbox.exists(conn, edition_id):
            # a send has begun: what a real send would do now is in the outbox
            report.counts = {state.value: n for state, n in outbox.counts(conn, edition_id).items()}
            test = subjects.prepare(conn, settings, edition, spec, fresh=False, now=now)
            if test is not None and test.winner is None:
                report.arms, report.decision_at = test.sizes, test.decide_at
            conn.rollback()  # a decision a real send would make now is not kept
            report.elapsed = time.perf_counter() - started
            return report
        builder = MessageBuilder(settings, edition)
        domain = settings.sender_domain
        rows = outbox_rows(conn, edition, repeat_window=settings.repeat_window, now=utcnow())
        for row in rows:
            if row.status is DeliveryStatus.SKIPPED:  # already had every story lately
                continue
            data = builder.build(
                row.variant, row.subscriber_id, row.email, row.name, new_message_id(domain)
            )
            report.built += 1
            report.built_bytes += len(data)
        conn.rollback()
    if spec is not None:
        report.arms = subjects.check_sizes(edition_id, report.built, spec)
        report.decision_at = now + spec.decide_after
    report.variants = builder.variants
    report.elapsed = time.perf_counter() - started
    return report


def as_test(edition: Edition, address: str) -> Edition:
    """The edition as a test copy shows it: ``[TEST]`` before the subject and a banner
    first in the intro, in both parts, so nobody takes it for the real send."""
    banner = f"TEST COPY for {address}: subscribers have not been sent this edition."
    return edition.model_copy(
        update={
            "subject": f"[TEST] {edition.subject}",
            "intro": f"{banner}\n\n{edition.intro}",
            "generated": [g for g in edition.generated if g not in ("subject", "intro")],
        }
    )


async def _test_send(
    settings: Settings,
    engine: Engine,
    edition_id: str,
    address: str,
    pool: SMTPPool | None,
    subject_b: str | None = None,
) -> SendReport:
    """One message of the edition to ``address`` (with ``subject_b``, a second one with
    that subject: both sides of a subject-line test); the outbox is not touched."""
    with engine.connect() as conn:
        original = get_edition(conn, edition_id)
        known = store.find_by_email(conn, address)
        conn.rollback()
    report = SendReport(edition_id, mode="test", test_to=address)
    subjects_shown = [original.subject] + ([subject_b] if subject_b is not None else [])
    pool = pool or smtp_pool(settings, len(subjects_shown))
    for subject in subjects_shown:
        edition = as_test(original.model_copy(update={"subject": subject}), address)
        builder = MessageBuilder(settings, edition)
        variant = Variant.of(edition, known.topics if known else None)
        data = builder.build(
            "all" if variant.is_empty else variant.key,
            known.id if known else 0,
            address,
            known.name if known else None,
            new_message_id(settings.sender_domain),
            known.attributes.get("first_name") if known else None,
        )
        attempt = await send_one(pool, settings.sender_address, address, data)
        if attempt.outcome is not DeliveryStatus.SENT:
            raise DeliveryError(f"the test message to {address} was not accepted: {attempt.error}")
        report.sent += 1
        report.built += 1
        report.built_bytes += len(data)
    return report
