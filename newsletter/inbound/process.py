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
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from newsletter.core.db import utcnow
from newsletter.inbound.actions import KINDS, InboundAction, Kind, Resolver
from newsletter.inbound.maildir import (
    check_maildir,
    printable_name,
    read_message,
    seen_name,
)
from newsletter.inbound.parse import (
    Parsed,
    classify,
)

__all__ = [
    "KINDS",
    "QUARANTINE",
    "READ_LIMIT",
    "InboundAction",
    "InboundReport",
    "Kind",
    "process_maildir",
]

#: bytes read of each message; the rest of a bigger file is never read
READ_LIMIT = 1024 * 1024
#: the Maildir++ folder (inside the Maildir) where refused messages are put aside
QUARANTINE = ".Quarantine"
# left in new/ for a human to read
_UNHANDLED = frozenset({"malformed", "not_understood", "skipped"})


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
        report, label = self.report, printable_name(name)
        report.messages += 1
        path = self.root / "new" / name
        read = read_message(path, self.limit)
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
            os.rename(path, self.root / "cur" / seen_name(name))
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
                actions = Resolver(conn, self.secret, label, self.now or utcnow()).resolve(parsed)
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
    check_maildir(path)
    report = InboundReport(str(path), dry_run)
    run = _Run(engine, secret, path, report, now, read_limit)
    for name in run.names():
        run.one(name)
    return report
