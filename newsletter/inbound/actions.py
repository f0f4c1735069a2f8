"""What one understood message means, and for whom: evidence first, then the action.

:class:`Resolver` turns a parsed report into :class:`InboundAction` values. It
acts on a person only with evidence tied to them (their VERP return path, or
their own signed token in the returned message); see :mod:`newsletter.inbound.process`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy.engine import Connection

from newsletter.core.errors import (
    SubscriberInputError,
    TokenError,
    TokenExpiredError,
    TokenOwnerGoneError,
)
from newsletter.inbound.parse import (
    Bounce,
    Complaint,
    MailedUnsubscribe,
    Malformed,
    NotUnderstood,
    Parsed,
    RecipientStatus,
    Refused,
    Returned,
)
from subscribers import store
from subscribers.bounces import (
    SOFT_BOUNCE_LIMIT,
    SOFT_BOUNCE_WINDOW,
    bounce_token_owner,
    record_soft_bounce,
    verp_token,
)
from subscribers.model import Subscriber, SubscriberStatus
from subscribers.tokens import Purpose, verify_scoped_token, verify_token

__all__ = ["KINDS", "Evidence", "Forged", "InboundAction", "Kind", "Resolver"]

Kind = Literal[
    "bounced",
    "soft_bounce",
    "deferred",
    "complaint",
    "unsubscribed",
    "unverified",
    "ignored",
    "forged",
    "malformed",
    "not_understood",
    "quarantined",
    "skipped",
]
#: every kind, in the order the counts are shown
KINDS: tuple[Kind, ...] = get_args(Kind)


@dataclass(frozen=True)
class InboundAction:
    """What one message (or one recipient of a DSN) did, or would do in a dry run."""

    file: str  # the Maildir file name (its key), made printable
    kind: Kind
    detail: str
    address: str | None = None
    subscriber_id: int | None = None


# --- evidence -----------------------------------------------------------------


class Forged(Exception):
    """A token or return path that fails verification: the whole report is suspect."""


@dataclass(frozen=True)
class Evidence:
    """Whom a report's own proof names: nobody, exactly one person, or several (a conflict)."""

    owners: frozenset[int]
    how: str = ""

    @property
    def owner(self) -> int | None:
        return next(iter(self.owners)) if len(self.owners) == 1 else None


def _find(conn: Connection, address: str | None) -> Subscriber | None:
    if not address:
        return None
    try:
        return store.find_by_email(conn, address)
    except SubscriberInputError:
        return None  # not an address at all: nobody of ours


class Resolver:
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

    def find(self, subscriber_id: int) -> Subscriber | None:
        """The subscriber holding this id now, or None (erased)."""
        return store.find(self.conn, subscriber_id)

    def owner(self, token: str) -> int:
        """The subscriber id a genuine unsubscribe token names; TokenError otherwise."""
        return verify_token(self.secret, Purpose.UNSUBSCRIBE, token, self.find, self.now)

    def evidence(self, delivered_to: tuple[str, ...], returned: Returned | None) -> Evidence:
        """Who the report's signed return path and returned token name; raises Forged."""
        found: dict[int, set[str]] = {}
        paths = delivered_to + (returned.return_path if returned is not None else ())
        for address in paths:
            tag = verp_token(address)
            if tag is None:
                continue
            try:
                who = bounce_token_owner(self.secret, tag, self.find, self.now)
            except (TokenExpiredError, TokenOwnerGoneError):
                continue  # too old to prove anything now, or about someone erased
            except TokenError as exc:
                raise Forged(f"a VERP return path that is not genuine ({exc})") from None
            found.setdefault(who, set()).add("VERP return path")
        if returned is not None and returned.token:
            try:
                mine = self.owner(returned.token)
                found.setdefault(mine, set()).add("their token in the returned message")
            except TokenOwnerGoneError:
                pass  # about someone erased: nobody to act on
            except TokenError as exc:
                raise Forged(f"a returned message with a bad token: {exc}") from None
        hows = sorted({h for found_how in found.values() for h in found_how})
        return Evidence(frozenset(found), " and ".join(hows))

    def unverified(
        self, person: Subscriber, what: str, summary: str, **detail: Any
    ) -> InboundAction:
        """Record a report about ``person`` that proves nothing: history only."""
        store.record_event(
            self.conn, person.id, f"{what}_unverified", self.now, file=self.file, **detail
        )
        return self.act(
            "unverified", f"{summary} without evidence tied to them: recorded only", person
        )

    def resolve(self, parsed: Parsed) -> list[InboundAction]:
        match parsed:
            case Malformed(reason):
                return [self.act("malformed", reason)]
            case NotUnderstood(reason):
                return [self.act("not_understood", reason)]
            case Refused(reason):
                return [self.act("quarantined", reason)]
            case MailedUnsubscribe():
                return [self.unsubscribe(parsed)]
            case Complaint():
                return self.complaint(parsed)
            case Bounce():
                return self.bounce(parsed)
        raise AssertionError(parsed)  # pragma: no cover - the match is exhaustive

    def unsubscribe(self, parsed: MailedUnsubscribe) -> InboundAction:
        # the token's newsletter only (the mailto of that newsletter's message); a token
        # naming none (made before there were several) leaves every newsletter
        try:
            owner, newsletter = verify_scoped_token(
                self.secret, Purpose.UNSUBSCRIBE, parsed.token, self.find, self.now
            )
            person = store.find(self.conn, owner)
        except TokenOwnerGoneError:
            person = None
        except TokenError as exc:
            return self.act("forged", f"unsubscribe request with a bad token: {exc}", None)
        if person is None:
            return self.act("ignored", "unsubscribe request for someone since erased")
        if not person.status.is_active:
            return self.act(
                "ignored", f"unsubscribe request: already {person.status.value}", person
            )
        person = store.unsubscribe(
            self.conn, person.id, now=self.now, source="mailto", newsletter=newsletter
        )
        which = f" from {newsletter}" if newsletter else ""
        return self.act(
            "unsubscribed", f"unsubscribed{which} by mail (List-Unsubscribe mailto)", person
        )

    def complaint(self, parsed: Complaint) -> list[InboundAction]:
        if parsed.feedback_type != "abuse":
            return [self.act("ignored", f"feedback report of type {parsed.feedback_type!r}")]
        try:
            evidence = self.evidence(parsed.delivered_to, parsed.returned)
        except Forged as exc:
            return [self.act("forged", f"complaint with {exc}")]
        named = _find(self.conn, parsed.returned.to if parsed.returned else None)
        if evidence.owner is None:
            if named is None:
                return [self.act("ignored", "complaint naming none of our subscribers")]
            why = "conflicting evidence" if evidence.owners else "no evidence"
            return [self.unverified(named, "complaint", "spam complaint", evidence=why)]
        person = store.find(self.conn, evidence.owner)
        if person is None:
            return [self.act("ignored", "complaint about someone since erased")]
        if person.status is SubscriberStatus.COMPLAINED:
            return [self.act("ignored", "complaint: already complained", person)]
        # a complaint outranks any other state: never mail this person again
        store.mark_complained(self.conn, person.id, "feedback loop: abuse", self.now)
        return [self.act("complaint", f"spam complaint (feedback loop; {evidence.how})", person)]

    def bounce(self, parsed: Bounce) -> list[InboundAction]:
        try:
            evidence = self.evidence(parsed.delivered_to, parsed.returned)
        except Forged as exc:
            return [self.act("forged", f"bounce with {exc}")]
        person = store.find(self.conn, evidence.owner) if evidence.owner is not None else None
        message_id = parsed.returned.message_id if parsed.returned else None
        only = len(parsed.recipients) == 1 and not parsed.omitted
        actions: list[InboundAction] = []
        acted = False
        for r in parsed.recipients:
            code = r.status or "no status"
            if not (r.hard or r.soft or r.delayed):
                actions.append(
                    self.act(
                        "ignored", f"DSN action {r.action or 'missing'} ({code})", None, r.address
                    )
                )
                continue
            named = _find(self.conn, r.address)
            # the block is about the person the evidence names: their own address, or
            # (the only block) an address of nobody of ours, where they forward to
            ours = person is not None and (
                (named is not None and named.id == person.id) or (named is None and only)
            )
            if ours and person is not None and not acted:
                acted = True
                actions.append(self.apply(person, r, evidence.how, message_id))
            elif named is not None:
                why = "conflicting evidence" if len(evidence.owners) > 1 else "no evidence"
                if evidence.owner is not None:
                    why = "evidence for another subscriber"
                actions.append(
                    self.unverified(
                        named,
                        "bounce",
                        f"bounce ({code})",
                        action=r.action,
                        status=r.status,
                        reason=f"{code} {r.diagnostic}".strip(),
                        evidence=why,
                    )
                )
            elif evidence.owner is not None and person is None:
                actions.append(self.act("ignored", f"bounce ({code}) for someone since erased"))
            else:
                actions.append(
                    self.act("ignored", f"bounce ({code}) for an unknown address", None, r.address)
                )
        if parsed.omitted:
            actions.append(
                self.act("ignored", f"{parsed.omitted} more recipients in the report, not read")
            )
        return actions

    def apply(
        self, person: Subscriber, r: RecipientStatus, how: str, message_id: str | None
    ) -> InboundAction:
        """Act on one bounce the evidence ties to ``person``."""
        code = r.status or "no status"
        reason = f"{code} {r.diagnostic}".strip()
        if r.delayed:
            store.record_event(
                self.conn, person.id, "deferred", self.now, status=r.status, reason=reason
            )
            return self.act("deferred", f"delayed {code}, recorded only ({how})", person)
        if not person.status.is_active:
            return self.act("ignored", f"bounce ({code}): already {person.status.value}", person)
        if r.hard:
            store.mark_bounced(self.conn, person.id, f"inbound DSN: {reason}", self.now)
            return self.act("bounced", f"hard bounce {code} ({how})", person)
        score = record_soft_bounce(
            self.conn,
            person.id,
            status=r.status,
            reason=reason,
            now=self.now,
            message_id=message_id,
            file=self.file,
        )
        count = f"{score.score} of {SOFT_BOUNCE_LIMIT} within {SOFT_BOUNCE_WINDOW.days} days"
        kind: Kind = "bounced" if score.bounced else "soft_bounce"
        return self.act(kind, f"soft bounce {code}, {count} ({how})", person)


# --- the run ------------------------------------------------------------------
