"""Acting on the mail that comes back: bounces, complaints and mailed unsubscribes.

:func:`process_maildir` reads every message in a Maildir's ``new/`` (the mailbox
the MTA fills for the VERP bounce address, the abuse address and ``unsubscribe@``),
asks :mod:`newsletter.inbound.parse` what it is, and applies it through the
subscriber store's own transitions, **only on evidence tied to the person**:

* the report was delivered to that person's VERP return path
  (``bounces+<signed tag>@domain``, see :mod:`subscribers.bounces`), or
* the returned message carries that person's own signed unsubscribe token.

The Return-Path and abuse addresses are public, so anything else proves nothing:
a report naming a subscriber without such evidence is recorded in their history
(``bounce_unverified`` / ``complaint_unverified``) and counted as ``unverified``,
never acted on. A DSN's other recipients, and evidence naming two different
people, are unverified too. With evidence:

* a hard bounce (Action failed, 5.1.x) -> ``store.mark_bounced`` at once;
* a soft bounce (any other failure) -> a ``soft_bounce`` event; the person is
  bounced at the third within 30 days (:func:`subscribers.bounces.record_soft_bounce`);
* a delay warning -> a ``deferred`` event only;
* an ARF abuse report -> ``store.mark_complained``;
* ``unsubscribe TOKEN`` (our List-Unsubscribe mailto) -> ``store.unsubscribe``,
  source ``mailto`` (the token is the evidence).

A token or return path that fails verification is *forged*: nobody is changed.

Every message is handled alone and none can stop the run. ``new/`` is listed
without following anything: a symlink, FIFO, device or directory there is
*skipped* (reported, never opened, left in place). A regular file is opened
without following links or blocking, and only its first :data:`READ_LIMIT` bytes
are read (what we need sits at the top; memory stays bounded however big the
file). A message the parser refuses (too many parts, nested too deep, a parser
crash) or that fails while being applied is *quarantined*: moved to the Maildir++
folder ``.Quarantine/new/`` so later runs never meet it again, and named in the
report. An understood message (even one that changes nobody) moves to ``cur/``
flagged Seen, after its transaction commits, so a second run changes nothing;
a malformed or not-understood one stays in ``new/`` for a human. Each message has
its own transaction; a dry run rolls every one back and moves nothing, so it
reports exactly what a real run would do.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from newsletter.core.db import utcnow
from newsletter.core.errors import (
    InputError,
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
    classify,
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
from subscribers.tokens import Purpose, verify_token

__all__ = [
    "KINDS",
    "QUARANTINE",
    "READ_LIMIT",
    "InboundAction",
    "InboundReport",
    "Kind",
    "process_maildir",
]

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
#: bytes read of each message; the rest of a bigger file is never read
READ_LIMIT = 1024 * 1024
#: the Maildir++ folder (inside the Maildir) where refused messages are put aside
QUARANTINE = ".Quarantine"
# left in new/ for a human to read
_UNHANDLED = frozenset({"malformed", "not_understood", "skipped"})
_ACTIVE = (SubscriberStatus.PENDING, SubscriberStatus.CONFIRMED)


@dataclass(frozen=True)
class InboundAction:
    """What one message (or one recipient of a DSN) did, or would do in a dry run."""

    file: str  # the Maildir file name (its key), made printable
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
    quarantined: int = 0  # messages moved to .Quarantine/new/ (0 in a dry run)
    partly_read: int = 0  # messages bigger than READ_LIMIT: only their start was read

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
            "quarantined": self.quarantined,
            "partly_read": self.partly_read,
            "counts": self.counts(),
            "actions": [asdict(a) for a in self.actions],
        }


# --- the Maildir, one file at a time ------------------------------------------


def _check(path: Path) -> None:
    if not (path / "new").is_dir() or not (path / "cur").is_dir():
        raise InputError("not a Maildir (it needs new/ and cur/ folders)", source=str(path))


def _label(name: str) -> str:
    # a file name may hold any byte but "/": show it printable (and never crash printing it)
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _read(path: Path, limit: int) -> tuple[bytes, bool] | str:
    """The file's first ``limit`` bytes and whether there is more; or why it was skipped.

    Never follows a link and never opens anything but a regular file (a FIFO
    would block the run for ever, a device could be anything).
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "vanished before it could be read"
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return f"{_file_type(info.st_mode)}, not a message: left alone, not opened"
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return f"cannot be opened ({exc.strerror})"
    try:
        # swapped for something else between lstat and open: O_NOFOLLOW and
        # O_NONBLOCK kept the open harmless, this keeps it unread
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return f"{_file_type(opened.st_mode)}, not a message: left alone, not read"
        chunks: list[bytes] = []
        wanted = limit + 1
        while wanted > 0:
            chunk = os.read(fd, min(wanted, 256 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return data[:limit], len(data) > limit


def _seen_name(name: str) -> str:
    key, _, info = name.partition(":")
    flags = set(info[2:]) if info.startswith("2,") else set()
    return f"{key}:2,{''.join(sorted(flags | {'S'}))}"


# --- evidence -----------------------------------------------------------------


class _Forged(Exception):
    """A token or return path that fails verification: the whole report is suspect."""


@dataclass(frozen=True)
class _Evidence:
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

    def find(self, subscriber_id: int) -> Subscriber | None:
        """The subscriber holding this id now, or None (erased)."""
        return store.find(self.conn, subscriber_id)

    def owner(self, token: str) -> int:
        """The subscriber id a genuine unsubscribe token names; TokenError otherwise."""
        return verify_token(self.secret, Purpose.UNSUBSCRIBE, token, self.find, self.now)

    def evidence(self, delivered_to: tuple[str, ...], returned: Returned | None) -> _Evidence:
        """Who the report's signed return path and returned token name; raises _Forged."""
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
                raise _Forged(f"a VERP return path that is not genuine ({exc})") from None
            found.setdefault(who, set()).add("VERP return path")
        if returned is not None and returned.token:
            try:
                mine = self.owner(returned.token)
                found.setdefault(mine, set()).add("their token in the returned message")
            except TokenOwnerGoneError:
                pass  # about someone erased: nobody to act on
            except TokenError as exc:
                raise _Forged(f"a returned message with a bad token: {exc}") from None
        hows = sorted({h for found_how in found.values() for h in found_how})
        return _Evidence(frozenset(found), " and ".join(hows))

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
        try:
            person = store.find(self.conn, self.owner(parsed.token))
        except TokenOwnerGoneError:
            person = None
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

    def complaint(self, parsed: Complaint) -> list[InboundAction]:
        if parsed.feedback_type != "abuse":
            return [self.act("ignored", f"feedback report of type {parsed.feedback_type!r}")]
        try:
            evidence = self.evidence(parsed.delivered_to, parsed.returned)
        except _Forged as exc:
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
        except _Forged as exc:
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
        if person.status not in _ACTIVE:
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


class _Run:
    def __init__(
        self,
        engine: Engine,
        secret: bytes,
        root: Path,
        report: InboundReport,
        now: datetime | None,
        limit: int,
    ) -> None:
        self.engine, self.secret, self.root, self.report = engine, secret, root, report
        self.now, self.limit = now, limit

    def names(self) -> list[str]:
        # names only: nothing is stat-ed, followed or opened here
        with os.scandir(self.root / "new") as entries:
            return sorted(e.name for e in entries if not e.name.startswith("."))

    def one(self, name: str) -> None:
        report, label = self.report, _label(name)
        report.messages += 1
        path = self.root / "new" / name
        read = _read(path, self.limit)
        if isinstance(read, str):
            report.actions.append(InboundAction(label, "skipped", read))
            return
        raw, more = read
        report.partly_read += more
        parsed = classify(raw)
        try:
            actions = self.apply(parsed, label)
        except SQLAlchemyError:
            raise  # the database, not the message: stop and say so
        except Exception as exc:
            actions = [InboundAction(label, "quarantined", f"failed ({type(exc).__name__})")]
        report.actions.extend(actions)
        if report.dry_run or any(a.kind in _UNHANDLED for a in actions):
            return
        if any(a.kind == "quarantined" for a in actions):
            self.quarantine(path, name, label)
            return
        try:
            os.rename(path, self.root / "cur" / _seen_name(name))
        except OSError as exc:
            report.actions.append(
                InboundAction(label, "skipped", f"handled, but not moved to cur/ ({exc.strerror})")
            )
            return
        report.moved += 1

    def apply(self, parsed: Parsed, label: str) -> list[InboundAction]:
        with self.engine.connect() as conn:
            transaction = conn.begin()
            try:
                actions = _Resolver(conn, self.secret, label, self.now or utcnow()).resolve(parsed)
            except BaseException:
                transaction.rollback()
                raise
            if self.report.dry_run:
                transaction.rollback()
            else:
                transaction.commit()
        return actions

    def quarantine(self, path: Path, name: str, label: str) -> None:
        folder = self.root / QUARANTINE
        try:
            for sub in ("tmp", "new", "cur"):
                (folder / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            os.rename(path, folder / "new" / name)
        except OSError as exc:
            self.report.actions.append(
                InboundAction(label, "skipped", f"could not be quarantined ({exc.strerror})")
            )
            return
        self.report.quarantined += 1


def process_maildir(
    engine: Engine,
    secret: bytes,
    path: Path,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    read_limit: int = READ_LIMIT,
) -> InboundReport:
    """Read every message in the Maildir's ``new/`` and act on the bounces, complaints
    and mailed unsubscribes that carry evidence; return what was done.

    Understood messages move to ``cur/`` flagged Seen after their changes commit
    (so running twice changes nothing); refused ones move to ``.Quarantine/new/``;
    the rest stay in ``new/``. No message can stop the run: each is read (at most
    ``read_limit`` bytes), parsed and applied on its own, and reported. With
    ``dry_run`` nothing in the database or the Maildir changes. Raises
    :class:`InputError` when ``path`` is not a Maildir.
    """
    _check(path)
    report = InboundReport(str(path), dry_run)
    run = _Run(engine, secret, path, report, now, read_limit)
    for name in run.names():
        run.one(name)
    return report
