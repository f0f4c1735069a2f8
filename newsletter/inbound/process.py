"""Acting on the mail that comes back: bounces, complaints and mailed unsubscribes.

:func:`process_maildir` reads every message in a Maildir's ``new/`` (the mailbox
the MTA fills for the Return-Path and ``unsubscribe@`` addresses), asks
:mod:`newsletter.inbound.parse` what it is, and applies it through the
subscriber store's own transitions:

* a DSN's permanent failure (Action: failed, Status 5.x.x) -> ``store.mark_bounced``;
  a delay or 4.x.x is recorded in the person's history (event ``deferred``) only;
* an ARF abuse report -> ``store.mark_complained``, the person named by the
  unsubscribe token in the returned message's List-Unsubscribe, else its To;
* ``unsubscribe TOKEN`` (our List-Unsubscribe mailto) -> ``store.unsubscribe``
  with source ``mailto``.

A token that fails verification is *forged*: nobody is changed. A message
understood (even when it changes nobody) moves to ``cur/`` flagged Seen, after
its transaction commits, so a second run changes nothing; anything else stays in
``new/`` for a human. Each message has its own transaction; a dry run rolls
every one back, so it reports exactly what a real run would do.
"""

from __future__ import annotations

import mailbox
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

from sqlalchemy.engine import Connection, Engine

from newsletter.core.db import utcnow
from newsletter.core.errors import InputError, SubscriberInputError, TokenError
from newsletter.inbound.parse import (
    Bounce,
    Complaint,
    MailedUnsubscribe,
    Malformed,
    NotUnderstood,
    Parsed,
    RecipientStatus,
    classify,
)
from subscribers import store
from subscribers.addresses import normalise_address
from subscribers.model import Subscriber, SubscriberStatus
from subscribers.tokens import Purpose, verify_token

__all__ = ["KINDS", "InboundAction", "InboundReport", "Kind", "process_maildir"]

Kind = Literal[
    "bounced",
    "deferred",
    "complaint",
    "unsubscribed",
    "ignored",
    "forged",
    "malformed",
    "not_understood",
]
#: every kind, in the order the counts are shown
KINDS: tuple[Kind, ...] = get_args(Kind)
# left in new/ for a human to read
_UNHANDLED = frozenset({"malformed", "not_understood"})
_ACTIVE = (SubscriberStatus.PENDING, SubscriberStatus.CONFIRMED)


@dataclass(frozen=True)
class InboundAction:
    """What one message (or one recipient of a DSN) did, or would do in a dry run."""

    file: str  # the Maildir file name (its key)
    kind: Kind
    detail: str
    address: str | None = None
    subscriber_id: int | None = None


@dataclass
class InboundReport:
    """Everything one run did, message by message."""

    maildir: str
    dry_run: bool
    actions: list[InboundAction] = field(default_factory=list)
    messages: int = 0
    moved: int = 0  # messages moved to cur/ (0 in a dry run)

    def counts(self) -> dict[Kind, int]:
        """How many actions of each kind (every kind present, zero included)."""
        found = Counter(a.kind for a in self.actions)
        return {kind: found[kind] for kind in KINDS}

    def as_json(self) -> dict[str, Any]:
        """The report as plain data for ``--json`` (addresses left to the caller to mask)."""
        return {
            "maildir": self.maildir,
            "dry_run": self.dry_run,
            "messages": self.messages,
            "moved": self.moved,
            "counts": self.counts(),
            "actions": [asdict(a) for a in self.actions],
        }


def _open(path: Path) -> mailbox.Maildir:
    if not (path / "new").is_dir() or not (path / "cur").is_dir():
        raise InputError("not a Maildir (it needs new/ and cur/ folders)", source=str(path))
    return mailbox.Maildir(path, factory=None, create=False)


def _find(conn: Connection, address: str | None) -> Subscriber | None:
    if not address:
        return None
    try:
        return store.find_by_email(conn, address)
    except SubscriberInputError:
        return None  # not an address at all: nobody of ours


def _same_address(one: str | None, other: str) -> bool:
    if not one:
        return False
    try:
        return normalise_address(one).key == normalise_address(other).key
    except SubscriberInputError:
        return False


class _Resolver:
    """Turns one parsed message into store changes inside the caller's transaction."""

    def __init__(self, conn: Connection, secret: bytes, file: str, now: datetime) -> None:
        self.conn, self.secret, self.file, self.now = conn, secret, file, now

    def act(
        self, kind: Kind, detail: str, person: Subscriber | None = None, address: str | None = None
    ) -> InboundAction:
        return InboundAction(
            self.file,
            kind,
            detail,
            address=person.email if person else address,
            subscriber_id=person.id if person else None,
        )

    def owner(self, token: str) -> int:
        """The subscriber id a genuine unsubscribe token names; TokenError otherwise."""
        return verify_token(self.secret, Purpose.UNSUBSCRIBE, token, now=self.now)

    def resolve(self, parsed: Parsed) -> list[InboundAction]:
        match parsed:
            case Malformed(reason):
                return [self.act("malformed", reason)]
            case NotUnderstood(reason):
                return [self.act("not_understood", reason)]
            case MailedUnsubscribe():
                return [self.unsubscribe(parsed)]
            case Complaint():
                return [self.complaint(parsed)]
            case Bounce():
                return self.bounce(parsed)
        raise AssertionError(parsed)  # pragma: no cover - the match is exhaustive

    def unsubscribe(self, parsed: MailedUnsubscribe) -> InboundAction:
        try:
            person = store.find(self.conn, self.owner(parsed.token))
        except TokenError as exc:
            return self.act("forged", f"unsubscribe request with a bad token: {exc}", None)
        if person is None:
            return self.act("ignored", "unsubscribe request for someone since erased")
        if person.status not in _ACTIVE:
            return self.act(
                "ignored", f"unsubscribe request: already {person.status.value}", person
            )
        person = store.unsubscribe(self.conn, person.id, now=self.now, source="mailto")
        return self.act("unsubscribed", "unsubscribed by mail (List-Unsubscribe mailto)", person)

    def complaint(self, parsed: Complaint) -> InboundAction:
        if parsed.feedback_type != "abuse":
            return self.act("ignored", f"feedback report of type {parsed.feedback_type!r}")
        returned = parsed.returned
        if returned is not None and returned.token:
            try:
                person = store.find(self.conn, self.owner(returned.token))
            except TokenError as exc:
                return self.act("forged", f"complaint with a bad token: {exc}")
        else:
            person = _find(self.conn, returned.to if returned else None)
        if person is None:
            return self.act("ignored", "complaint naming none of our subscribers")
        if person.status is SubscriberStatus.COMPLAINED:
            return self.act("ignored", "complaint: already complained", person)
        # a complaint outranks any other state: never mail this person again
        store.mark_complained(self.conn, person.id, "feedback loop: abuse", self.now)
        return self.act("complaint", "spam complaint (feedback loop)", person)

    def bounce(self, parsed: Bounce) -> list[InboundAction]:
        returned = parsed.returned
        token_owner: int | None = None
        if returned is not None and returned.token:
            try:
                token_owner = self.owner(returned.token)
            except TokenError as exc:
                # a returned message we never sent: the whole report is suspect
                return [self.act("forged", f"bounce whose returned message has a bad token: {exc}")]
        only = len(parsed.recipients) == 1
        return [self.recipient(r, returned, token_owner, only) for r in parsed.recipients]

    def recipient(
        self,
        r: RecipientStatus,
        returned: Any,
        token_owner: int | None,
        only: bool,
    ) -> InboundAction:
        code = r.status or "no status"
        if not (r.permanent or r.transient):
            return self.act(
                "ignored", f"DSN action {r.action or 'missing'} ({code})", None, r.address
            )
        person = _find(self.conn, r.address)
        if person is None and token_owner is not None and only:
            # forwarded or rewritten address: the signed token says whom we mailed
            person = store.find(self.conn, token_owner)
        if person is None:
            return self.act("ignored", f"bounce ({code}) for an unknown address", None, r.address)
        returned_to = returned.to if returned is not None else None
        if token_owner is not None and token_owner != person.id and only:
            return self.act("ignored", f"bounce ({code}) for another subscriber's message", person)
        confirmed = token_owner == person.id or _same_address(returned_to, person.email)
        if returned_to and not confirmed and only:
            return self.act("ignored", f"bounce ({code}) returning someone else's message", person)
        how = " (confirmed by the returned message)" if confirmed else ""
        reason = f"{code} {r.diagnostic}".strip()
        if r.permanent:
            if person.status not in _ACTIVE:
                return self.act(
                    "ignored", f"hard bounce ({code}): already {person.status.value}", person
                )
            store.mark_bounced(self.conn, person.id, f"inbound DSN: {reason}", self.now)
            return self.act("bounced", f"hard bounce {code}{how}", person)
        store.record_event(
            self.conn, person.id, "deferred", self.now, status=r.status, reason=reason
        )
        return self.act("deferred", f"delayed {code}, recorded only{how}", person)


def process_maildir(
    engine: Engine,
    secret: bytes,
    path: Path,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> InboundReport:
    """Read every message in the Maildir's ``new/`` and act on the bounces, complaints
    and mailed unsubscribes; return what was done.

    Understood messages move to ``cur/`` flagged Seen after their changes commit
    (so running twice changes nothing); the rest stay in ``new/``. A broken
    message is reported as ``malformed``, never raised. With ``dry_run`` nothing
    in the database or the Maildir changes. Raises :class:`InputError` when
    ``path`` is not a Maildir.
    """
    box = _open(path)
    report = InboundReport(str(path), dry_run)
    for key in sorted(box.keys()):
        try:
            message = box.get_message(key)
            raw = box.get_bytes(key)
        except (OSError, KeyError) as exc:
            # vanished or unreadable between listing and reading: name it, go on
            report.messages += 1
            report.actions.append(InboundAction(key, "malformed", f"unreadable file ({exc})"))
            continue
        if message.get_subdir() != "new":
            continue
        report.messages += 1
        parsed = classify(raw)
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                actions = _Resolver(conn, secret, key, now or utcnow()).resolve(parsed)
            finally:
                if dry_run:
                    transaction.rollback()
            if not dry_run:
                transaction.commit()
        report.actions.extend(actions)
        if dry_run or any(a.kind in _UNHANDLED for a in actions):
            continue
        message.set_subdir("cur")
        message.add_flag("S")
        box[key] = message
        report.moved += 1
    return report
