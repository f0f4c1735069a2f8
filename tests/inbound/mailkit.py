"""Inbound mail as it really arrives: real digests, DSNs, ARF reports, mailed unsubscribes.

The returned messages are real personalised digests from the compose path
(MessageBuilder), so the tokens in their List-Unsubscribe are the ones a send puts
there; :func:`return_path` is the VERP return path a send uses as MAIL FROM.
"""

from __future__ import annotations

import mailbox
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.engine import Engine

from newsletter.content.message import new_message_id
from newsletter.core.config import Settings
from newsletter.delivery.compose import MessageBuilder
from subscribers import store
from subscribers.bounces import return_paths
from subscribers.model import SubscriberStatus
from tests.support.sample_editions import daily_edition

__all__ = [
    "add_readers",
    "arf",
    "digest",
    "dsn",
    "event_kinds",
    "folder",
    "mailto_unsubscribe",
    "return_path",
    "status_of",
]


def add_readers(engine: Engine, settings: Settings) -> list[int]:
    """Six confirmed readers, reader0@example.org ... reader5@example.org; their ids."""
    with engine.begin() as conn:
        return [
            store.add(conn, f"reader{n}@example.org", secret=settings.secret(), confirmed=True).id
            for n in range(6)
        ]


def digest(settings: Settings, subscriber_id: int, email: str) -> bytes:
    """The real personalised digest this reader was sent."""
    builder = MessageBuilder(settings, daily_edition())
    message_id = new_message_id(settings.sender_domain)
    return builder.build("all", subscriber_id, email, "A Reader", message_id)


def return_path(settings: Settings, subscriber_id: int, email: str) -> str:
    """The VERP return path a send gives this reader's message (its MAIL FROM)."""
    return return_paths(settings)(subscriber_id, email)


def dsn(
    original: bytes | None,
    recipient: str | list[str],
    *,
    action: str = "failed",
    status: str = "5.1.1",
    headers_only: bool = False,
    to: str = "bounces@news.example.com",
) -> bytes:
    """An RFC 3464 delivery status notification about ``recipient`` (or several),
    returning ``original``, as the MTA delivers it to ``to`` (Delivered-To and To)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["Delivered-To"] = to
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.org>"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.attach(MIMEText("This is the mail system at host mx.example.org.\n"))
    per_message = Message()
    per_message["Reporting-MTA"] = "dns; mx.example.org"
    blocks: list[Message | str] = [per_message]
    for address in [recipient] if isinstance(recipient, str) else recipient:
        per_recipient = Message()
        per_recipient["Final-Recipient"] = f"rfc822; {address}"
        per_recipient["Action"] = action
        per_recipient["Status"] = status
        per_recipient["Diagnostic-Code"] = f"smtp; {status[0]}50 {status} mailbox problem"
        blocks.append(per_recipient)
    delivery = Message()
    delivery["Content-Type"] = "message/delivery-status"
    delivery.set_payload(blocks)
    report.attach(delivery)
    if original is not None:
        if headers_only:
            head = original.split(b"\r\n\r\n", 1)[0].decode("ascii")
            report.attach(MIMEText(head, "rfc822-headers"))
        else:
            report.attach(MIMEMessage(message_from_bytes(original)))
    return report.as_bytes()


def arf(
    original: bytes,
    *,
    feedback_type: str = "abuse",
    redact_to: bool = True,
    to: str = "abuse@news.example.com",
) -> bytes:
    """An RFC 5965 abuse report from a mailbox provider's feedback loop, sent to ``to``."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "feedback@fbl.example.net"
    report["To"] = to
    report["Subject"] = "Complaint about message"
    report.attach(MIMEText("This is an email abuse report.\n"))
    feedback = Message()
    feedback["Content-Type"] = "message/feedback-report"
    feedback.set_payload(f"Feedback-Type: {feedback_type}\nUser-Agent: FBL/1.0\nVersion: 1\n")
    report.attach(feedback)
    returned = message_from_bytes(original)
    if redact_to:
        # providers often redact the complainer's address: the token must identify them
        del returned["To"]
        returned["To"] = "redacted@example.net"
    report.attach(MIMEMessage(returned))
    return report.as_bytes()


def mailto_unsubscribe(original: bytes, *, tamper: bool = False) -> bytes:
    """What a mail client sends when the reader picks the List-Unsubscribe mailto."""
    header = message_from_bytes(original)["List-Unsubscribe"]
    mailto = next(p.strip(" <>\r\n\t") for p in header.split(",") if "mailto:" in p)
    parts = urlsplit(mailto)
    subject = parse_qs(parts.query)["subject"][0]
    if tamper:
        # point someone else's genuine-looking token at subscriber 1
        code, _id, *rest = subject.split()[1].split(".")  # rest: issued, [newsletter,] MAC
        subject = f"unsubscribe {code}.1.{'.'.join(rest)}"
    message = EmailMessage()
    message["From"] = "reader@example.org"
    message["To"] = parts.path
    message["Subject"] = subject
    message.set_content("Sent from my phone\n")
    return message.as_bytes()


def status_of(engine: Engine, subscriber_id: int) -> SubscriberStatus:
    with engine.connect() as conn:
        return store.get(conn, subscriber_id).status


def event_kinds(engine: Engine, subscriber_id: int) -> list[str]:
    with engine.connect() as conn:
        return [e.kind for e in store.events(conn, subscriber_id)]


def folder(box: mailbox.Maildir, subdir: str) -> list[str]:
    return sorted(p.name for p in (Path(box._path) / subdir).iterdir())
