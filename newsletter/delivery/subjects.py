"""A subject-line test: subject B against the edition's own (A) on a test share of its
recipients, then the subject with the higher unique click rate to the rest.

``newsletter send EDITION --subject-test "B" --test-share 20% --decide-after 1h``:

1. :func:`prepare`, in the transaction that writes the outbox, records the test and
   splits the recipients (those not skipped) by a keyed hash of (edition, reader):
   the ``share`` percent (rounded half up) with the lowest hashes are the test share,
   its lower half (A gets the odd one) in arm A, the other in arm B. Everybody else's
   row waits as ``deferred`` with no retry time under the arm ``wait``
   (:mod:`newsletter.content.arms`), which no claim takes. The split is exact in size,
   deterministic, and written once, with the outbox: a restart or a second worker
   finds it there, and no row ever changes arm.
2. The arms go out like any rows; the run then ends with the rest waiting
   (``SendReport.decision_at``; ``send`` exits 75, as for rows deferred far ahead).
3. At the start of every later run (``send`` or the scheduler), once the clock has
   reached ``decide_at`` (``started_at`` + the wait), :func:`prepare` decides: each
   arm's unique click rate is its unique human clickers over its messages sent,
   and B wins only when its rate is strictly higher (:func:`winner`: a tie, no
   clicks at all included, keeps A, the edition's own subject). The decision is
   written by an update that only an undecided test matches, so one worker decides
   and any other finds it decided; in the same transaction the waiting rows become
   ``queued`` with the arm ``rest-A`` or ``rest-B``, and are sent in that run.

Functions take a connection inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection

from newsletter.content.arms import ARMS, REST, WAIT, split_key
from newsletter.content.models import Edition
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.core.errors import InputError, StateError
from newsletter.core.schema import clicks, deliveries, subject_tests
from newsletter.core.text import has_line_break
from newsletter.core.times import parse_span
from newsletter.delivery.outcomes import DeliveryStatus

__all__ = [
    "MAX_SUBJECT",
    "ArmResult",
    "SubjectTest",
    "SubjectTestSpec",
    "arm_results",
    "check_for",
    "check_sizes",
    "get",
    "is_waiting",
    "prepare",
    "split_sizes",
    "waiting",
    "winner",
]

#: the longest subject B (RFC 5322's line limit, in characters)
MAX_SUBJECT = 998
_MIN_WAIT, _MAX_WAIT = timedelta(minutes=1), timedelta(days=7)
_D = deliveries.c
_T = subject_tests.c
_PAGE = 5000
_SHIFT = 48  # a histogram of the hashes' top 16 bits finds each cut in two passes
_CONTEXT = b"newsletter subject test arms v1"


@dataclass(frozen=True)
class SubjectTestSpec:
    """What the editor asked for; built by :meth:`parse`, which checks every part."""

    subject_b: str
    share: int  # percent of the recipients in the test, 1 to 50
    decide_after: timedelta

    @classmethod
    def parse(cls, subject_b: str, share: str, decide_after: str) -> SubjectTestSpec:
        """The spec from the editor's text; :class:`InputError` naming the parameter
        (``subject_b``, ``test_share``, ``decide_after``) for anything else."""
        subject = subject_b.strip()
        if not subject:
            raise InputError("the subject to test is empty", field="subject_b")
        if has_line_break(subject) or not subject.isprintable():
            raise InputError("the subject to test must be one line of text", field="subject_b")
        if len(subject) > MAX_SUBJECT:
            raise InputError(
                f"the subject to test is {len(subject)} characters; at most {MAX_SUBJECT}",
                field="subject_b",
            )
        number = share.strip().removesuffix("%").strip()
        if not number.isdigit() or not 1 <= int(number) <= 50:
            raise InputError(
                f"{share!r} is not a test share: a whole percentage from 1% to 50%, e.g. 20%",
                field="test_share",
            )
        wait = parse_span(decide_after)
        if wait is None or not _MIN_WAIT <= wait <= _MAX_WAIT:
            raise InputError(
                f"{decide_after!r} is not a wait before the decision: "
                "a span from 1m to 7d, e.g. 30m, 1h, 4h",
                field="decide_after",
            )
        return cls(subject, int(number), wait)


class ArmResult(BaseModel):
    """One arm's figures: its readers, messages sent, unique human clickers and their rate."""

    model_config = ConfigDict(frozen=True)

    arm: str
    subject: str
    recipients: int
    sent: int
    unique_clicks: int

    @property
    def rate(self) -> Fraction:
        """Unique clickers per message sent (0 when none was sent)."""
        return Fraction(self.unique_clicks, self.sent) if self.sent else Fraction(0)


class SubjectTest(BaseModel):
    """An edition's recorded test: what was asked, the arms' sizes, and the decision."""

    model_config = ConfigDict(frozen=True)

    edition_id: str
    subject_b: str
    share: int
    started_at: datetime
    decide_at: datetime
    arm_a: int
    arm_b: int
    rest: int
    winner: str | None
    decided_at: datetime | None
    decision: dict[str, dict[str, int]] | None  # arm -> sent, unique_clicks (when decided)

    @property
    def sizes(self) -> tuple[int, int, int]:
        """Readers in arm A, in arm B and in the rest."""
        return self.arm_a, self.arm_b, self.rest


def winner(a: ArmResult, b: ArmResult) -> str:
    """``"B"`` when B's unique click rate is strictly higher than A's, else ``"A"``: a tie
    (no clicks in either included) keeps the edition's own subject."""
    return "B" if b.rate > a.rate else "A"


def split_sizes(recipients: int, share: int) -> tuple[int, int, int]:
    """``(arm A, arm B, rest)`` for ``recipients`` readers and a ``share`` percent test:
    the test share rounded half up, split in half with A taking the odd one."""
    test = (recipients * share * 2 + 100) // 200
    return (test + 1) // 2, test // 2, recipients - test


def get(conn: Connection, edition_id: str) -> SubjectTest | None:
    """The edition's subject-line test, or ``None`` when it has none."""
    row = conn.execute(sa.select(subject_tests).where(_T.edition_id == edition_id)).first()
    return None if row is None else SubjectTest.model_validate(dict(row._mapping))


def is_waiting(key: str) -> bool:
    """True for the variant key of a row that waits for the decision (never rendered)."""
    return split_key(key)[1] == WAIT


def _waiting_rows() -> tuple[sa.ColumnElement[bool], ...]:
    return (_D.status == DeliveryStatus.DEFERRED.value, _D.variant.like(f"%|subject:{WAIT}"))


def waiting(conn: Connection, edition_id: str) -> int:
    """How many of the edition's rows wait for the test's decision."""
    query = sa.select(sa.func.count()).where(_D.edition_id == edition_id, *_waiting_rows())
    return int(conn.execute(query).scalar_one())


def check_for(settings: Settings, edition: Edition, spec: SubjectTestSpec) -> None:
    """Refuse a test that cannot decide anything: click tracking off, or B is A."""
    if settings.track_clicks == "off":
        raise StateError(
            "a subject-line test decides on clicks, and click tracking is off: "
            "set NEWSLETTER_TRACK_CLICKS to aggregate or per-subscriber"
        )
    if spec.subject_b == edition.subject:
        raise InputError("the subject to test is the edition's own subject", field="subject_b")


def check_sizes(edition_id: str, recipients: int, spec: SubjectTestSpec) -> tuple[int, int, int]:
    """:func:`split_sizes`, refusing a test share with fewer than one reader per arm."""
    sizes = split_sizes(recipients, spec.share)
    if sizes[1] < 1:
        raise InputError(
            f"edition {edition_id}: {spec.share}% of {recipients} recipients is "
            f"{sizes[0] + sizes[1]}; a subject-line test needs at least one reader in each arm",
            field="test_share",
        )
    return sizes


def prepare(
    conn: Connection,
    settings: Settings,
    edition: Edition,
    spec: SubjectTestSpec | None,
    *,
    fresh: bool,
    now: datetime,
) -> SubjectTest | None:
    """Start the test asked for (``fresh``: the outbox was just written in this
    transaction), or check it is the one already running; then decide it if due.

    Raises :class:`StateError` for a test asked of an edition whose send began without
    it (or with another one) and when click tracking is off.
    """
    found = get(conn, edition.id)
    if spec is not None:
        check_for(settings, edition, spec)
        if fresh and found is None:
            found = _start(conn, settings, edition, spec, now)
        elif found is None or (found.subject_b, found.share) != (spec.subject_b, spec.share):
            raise StateError(
                f"edition {edition.id} began sending "
                + ("without this subject-line test" if found is None else "with another test")
                + f"; a test starts with the first send (resume with: newsletter send {edition.id})"
            )
    if found is None or found.winner is not None or now < found.decide_at:
        return found
    return _decide(conn, found, now)


def _ranks(key: bytes, edition_id: str, ids: list[int]) -> Iterator[tuple[int, int]]:
    prefix = f"{edition_id}\n".encode()
    for sid in ids:
        digest = hmac.digest(key, prefix + str(sid).encode("ascii"), hashlib.sha256)
        yield int.from_bytes(digest[:8], "big"), sid


def _pages(conn: Connection, edition_id: str) -> Iterator[list[int]]:
    """The ids of the edition's queued rows, in keyset pages (no cursor held open)."""
    last = -1
    while True:
        page = list(
            conn.execute(
                sa.select(_D.subscriber_id)
                .where(
                    _D.edition_id == edition_id,
                    _D.status == DeliveryStatus.QUEUED.value,
                    _D.subscriber_id > last,
                )
                .order_by(_D.subscriber_id)
                .limit(_PAGE)
            ).scalars()
        )
        if page:
            yield page
        if len(page) < _PAGE:
            return
        last = page[-1]


def _cuts(
    conn: Connection, key: bytes, edition_id: str, wanted: list[int]
) -> list[tuple[int, int]]:
    """The ``n``-th lowest ``(hash, id)`` for each ``n`` in ``wanted``, in flat memory:
    a histogram of the hashes' top bits, then a sort of the few in each cut's bucket."""
    shift = _SHIFT
    counts = [0] * (1 << (64 - shift))
    for page in _pages(conn, edition_id):
        for rank, _ in _ranks(key, edition_id, page):
            counts[rank >> shift] += 1
    places: list[tuple[int, int]] = []  # (bucket, position within it) per wanted
    for n in wanted:
        below = 0
        for bucket, number in enumerate(counts):
            if below + number >= n:
                places.append((bucket, n - below - 1))
                break
            below += number
    members: dict[int, list[tuple[int, int]]] = {b: [] for b, _ in places}
    for page in _pages(conn, edition_id):
        for rank, sid in _ranks(key, edition_id, page):
            if rank >> shift in members:
                members[rank >> shift].append((rank, sid))
    return [sorted(members[bucket])[at] for bucket, at in places]


def _start(
    conn: Connection, settings: Settings, edition: Edition, spec: SubjectTestSpec, now: datetime
) -> SubjectTest:
    recipients = int(
        conn.execute(
            sa.select(sa.func.count()).where(
                _D.edition_id == edition.id, _D.status == DeliveryStatus.QUEUED.value
            )
        ).scalar_one()
    )
    a, b, rest = check_sizes(edition.id, recipients, spec)
    key = hmac.digest(bytes(settings.secret()), _CONTEXT, hashlib.sha256)
    cut_a, cut_b = _cuts(conn, key, edition.id, [a, a + b])
    for page in _pages(conn, edition.id):
        arms: dict[str, list[int]] = {"A": [], "B": []}
        for rank, sid in _ranks(key, edition.id, page):
            if (rank, sid) <= cut_a:
                arms["A"].append(sid)
            elif (rank, sid) <= cut_b:
                arms["B"].append(sid)
        for arm, ids in arms.items():
            for at in range(0, len(ids), 500):
                conn.execute(
                    deliveries.update()
                    .where(_D.edition_id == edition.id, _D.subscriber_id.in_(ids[at : at + 500]))
                    .values(variant=_D.variant + f"|subject:{arm}")
                )
    conn.execute(
        deliveries.update()
        .where(
            _D.edition_id == edition.id,
            _D.status == DeliveryStatus.QUEUED.value,
            _D.variant.not_like("%|subject:%"),
        )
        .values(
            variant=_D.variant + f"|subject:{WAIT}",
            status=DeliveryStatus.DEFERRED.value,
            next_attempt_at=None,
            updated_at=utcnow(),
        )
    )
    conn.execute(
        subject_tests.insert().values(
            edition_id=edition.id,
            subject_b=spec.subject_b,
            share=spec.share,
            started_at=now,
            decide_at=now + spec.decide_after,
            arm_a=a,
            arm_b=b,
            rest=rest,
        )
    )
    found = get(conn, edition.id)
    assert found is not None  # written just above
    return found


def arm_results(conn: Connection, test: SubjectTest, subject_a: str) -> list[ArmResult]:
    """Each arm's figures now: readers, messages sent, unique human clickers."""
    counted: dict[str, dict[str, int]] = {arm: {"recipients": 0, "sent": 0} for arm in ARMS}
    rows = conn.execute(
        sa.select(_D.variant, _D.status, sa.func.count())
        .where(_D.edition_id == test.edition_id, _D.variant.like("%|subject:_"))
        .group_by(_D.variant, _D.status)
    )
    for key, status, number in rows:
        arm = split_key(key)[1]
        if arm in counted:
            counted[arm]["recipients"] += int(number)
            counted[arm]["sent"] += int(number) if status == DeliveryStatus.SENT.value else 0
    # a unique click: the reader if known (per-subscriber tracking), else the visitor
    clicker = sa.func.coalesce(sa.cast(clicks.c.subscriber_id, sa.String), clicks.c.visitor)
    unique: dict[str, int] = dict(
        conn.execute(
            sa.select(clicks.c.arm, sa.func.count(sa.distinct(clicker)))
            .where(
                clicks.c.edition_id == test.edition_id,
                clicks.c.kind == "human",
                clicks.c.arm.in_(ARMS),
            )
            .group_by(clicks.c.arm)
        ).all()
    )
    subjects = {"A": subject_a, "B": test.subject_b}
    return [
        ArmResult(
            arm=arm,
            subject=subjects[arm],
            recipients=c["recipients"],
            sent=c["sent"],
            unique_clicks=int(unique.get(arm, 0)),
        )
        for arm, c in counted.items()
    ]


def _decide(conn: Connection, test: SubjectTest, now: datetime) -> SubjectTest:
    a, b = arm_results(conn, test, "")
    won = winner(a, b)
    decision = {r.arm: {"sent": r.sent, "unique_clicks": r.unique_clicks} for r in (a, b)}
    taken = conn.execute(
        subject_tests.update()
        .where(_T.edition_id == test.edition_id, _T.winner.is_(None))
        .values(winner=won, decided_at=now, decision=decision)
    ).rowcount
    if taken == 1:  # this worker decided: the rest goes out with the winner's subject
        conn.execute(
            deliveries.update()
            .where(_D.edition_id == test.edition_id, *_waiting_rows())
            .values(
                variant=sa.func.replace(_D.variant, f"|subject:{WAIT}", f"|subject:{REST[won]}"),
                status=DeliveryStatus.QUEUED.value,
                updated_at=utcnow(),
            )
        )
    found = get(conn, test.edition_id)
    assert found is not None  # decided, by this worker or another
    return found
