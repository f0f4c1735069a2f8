"""Reading the mail that comes back: DSN bounces, ARF complaints and mailed unsubscribes.

Pure parsing, no database: :func:`classify` turns one message's bytes into what
it says. The email package does the MIME work; it already splits a
``message/delivery-status`` part into its per-message and per-recipient blocks
(RFC 3464). What it cannot judge (is this token genuine, who is this address)
is left to :mod:`newsletter.inbound.process`.

The parser is the forgiving ``compat32`` one on purpose: mail from remote MTAs
is often slightly broken, and a bounce with a sloppy header must still count.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value, getaddresses

__all__ = [
    "Bounce",
    "Complaint",
    "MailedUnsubscribe",
    "Malformed",
    "NotUnderstood",
    "Parsed",
    "RecipientStatus",
    "Returned",
    "classify",
    "find_token",
]

# a link token (subscribers.tokens): purpose letter, id hex, issued hex, base64url MAC
_TOKEN = r"[a-z]\.[0-9a-f]+\.[0-9a-f]+\.[A-Za-z0-9_-]+"  # noqa: S105 - a pattern
# where our List-Unsubscribe holds it: ".../unsubscribe/TOKEN", "?subject=unsubscribe%20TOKEN"
_LINK_TOKEN = re.compile(r"unsubscribe(?:/|%20)(" + _TOKEN + r")")
# a mailed unsubscribe's subject or first body line, after any "Re:" / "Fwd:" prefixes
_COMMAND = re.compile(r"(?:(?:re|fwd?|aw|sv|tr)\s*:\s*)*unsubscribe\s+(\S+)", re.IGNORECASE)
_WHOLE_TOKEN = re.compile(_TOKEN)
_STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}")
_MAX_BODY_SCAN = 64 * 1024  # a mailed unsubscribe's command sits at the top; never scan megabytes


@dataclass(frozen=True)
class Returned:
    """What the returned copy of our message (or its headers) says about its recipient."""

    to: str | None
    token: str | None  # the token found in its List-Unsubscribe, unverified


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a DSN."""

    address: str  # Original-Recipient, else Final-Recipient, without the "rfc822;" type
    action: str  # failed, delayed, delivered, relayed, expanded (lower case)
    status: str  # "5.1.1"; "" when absent or unreadable
    diagnostic: str

    @property
    def permanent(self) -> bool:
        """A hard bounce: the MTA gave up for good (Action: failed, Status 5.x.x)."""
        return self.action == "failed" and self.status.startswith("5")

    @property
    def transient(self) -> bool:
        """A soft, temporary failure (Action: delayed, or a 4.x.x status)."""
        return self.action == "delayed" or self.status.startswith("4")


@dataclass(frozen=True)
class Bounce:
    """A delivery status notification (multipart/report; report-type=delivery-status)."""

    recipients: tuple[RecipientStatus, ...]
    returned: Returned | None


@dataclass(frozen=True)
class Complaint:
    """An abuse report (multipart/report; report-type=feedback-report, RFC 5965)."""

    feedback_type: str  # lower case: abuse, fraud, not-spam, ...
    returned: Returned | None


@dataclass(frozen=True)
class MailedUnsubscribe:
    """A message asking, by our List-Unsubscribe mailto, to unsubscribe ``token``'s owner."""

    token: str  # unverified
    sender: str


@dataclass(frozen=True)
class NotUnderstood:
    """A message that is none of the above (an auto-reply, a letter to the editor...)."""

    reason: str


@dataclass(frozen=True)
class Malformed:
    """A message too broken to read, or a report missing its required parts."""

    reason: str


Parsed = Bounce | Complaint | MailedUnsubscribe | NotUnderstood | Malformed


def _text(value: object) -> str:
    """A header's value as text, RFC 2047 words decoded; never raises."""
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        return str(value)


def _typed_address(value: object) -> str:
    # "rfc822; ann@example.org" (the address type is optional in practice)
    text = _text(value).strip()
    kind, sep, rest = text.partition(";")
    address = rest if sep else kind
    return address.strip().strip("<>").strip()


def find_token(list_unsubscribe: str) -> str | None:
    """The link token in a List-Unsubscribe value (https or mailto entry), unverified."""
    match = _LINK_TOKEN.search(list_unsubscribe)
    return match.group(1) if match else None


def _returned_headers(part: Message) -> Message | None:
    # message/rfc822 carries a parsed message; text/rfc822-headers only the header text
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        return None
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return None
    return HeaderParser().parsestr(raw.decode("utf-8", "replace"))


def _returned(report: Message) -> Returned | None:
    parts = report.get_payload()
    for part in parts[1:] if isinstance(parts, list) else ():
        if not isinstance(part, Message):
            continue
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            headers = _returned_headers(part)
            if headers is None:
                return None
            found = [
                addr for _, addr in getaddresses([_text(v) for v in headers.get_all("To", [])])
            ]
            return Returned(
                to=found[0] if found and found[0] else None,
                token=find_token(_text(headers.get("List-Unsubscribe", ""))),
            )
    return None


def _blocks(text: str) -> list[Message]:
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [HeaderParser().parsestr(chunk) for chunk in chunks if chunk.strip()]


def _status_blocks(report: Message) -> list[Message] | None:
    for part in report.get_payload():
        if not isinstance(part, Message):
            continue
        if part.get_content_type() == "message/delivery-status":
            # the email package splits this one into its blocks already
            blocks = part.get_payload()
            if isinstance(blocks, list):
                return [b for b in blocks if isinstance(b, Message)]
            return _blocks(str(blocks))
        if part.get_content_type() == "message/global-delivery-status":
            # RFC 6533 (UTF-8): parsed as one embedded message; split its text ourselves
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                # as_bytes restores the raw UTF-8 the compat32 parser kept as surrogates
                return _blocks(inner[0].as_bytes().decode("utf-8", "replace"))
            return _blocks(str(inner))
    return None


def _bounce(report: Message) -> Parsed:
    blocks = _status_blocks(report)
    if blocks is None:
        return Malformed("a delivery-status report without its message/delivery-status part")
    recipients = []
    # the first block is per-message (Reporting-MTA...); the rest are per-recipient
    for block in blocks:
        address = _typed_address(block.get("Original-Recipient")) or _typed_address(
            block.get("Final-Recipient")
        )
        if not address:
            continue
        status = _STATUS.search(_text(block.get("Status")))
        recipients.append(
            RecipientStatus(
                address=address,
                action=_text(block.get("Action")).strip().lower(),
                status=status.group(0) if status else "",
                diagnostic=" ".join(_text(block.get("Diagnostic-Code")).split())[:200],
            )
        )
    if not recipients:
        return Malformed("a delivery-status report naming no recipient")
    return Bounce(tuple(recipients), _returned(report))


def _complaint(report: Message) -> Parsed:
    for part in report.get_payload():
        if isinstance(part, Message) and part.get_content_type() == "message/feedback-report":
            # the email package parses an unknown message/* part as one embedded message
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                fields: Message = inner[0]
            else:
                fields = HeaderParser().parsestr(str(part.get_payload()))
            kind = _text(fields.get("Feedback-Type")).strip().lower()
            if not kind:
                return Malformed("a feedback report without Feedback-Type")
            return Complaint(kind, _returned(report))
    return Malformed("a feedback report without its message/feedback-report part")


def _first_text_lines(message: Message) -> list[str]:
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                continue
            charset = part.get_content_charset() or "utf-8"
            try:
                text = data[:_MAX_BODY_SCAN].decode(charset, "replace")
            except LookupError:
                text = data[:_MAX_BODY_SCAN].decode("utf-8", "replace")
            return [line.strip() for line in text.splitlines() if line.strip()][:3]
    return []


def _mailed_unsubscribe(message: Message) -> Parsed:
    sender = next((a for _, a in getaddresses([_text(message.get("From"))]) if a), "")
    candidates = [_text(message.get("Subject")).strip(), *_first_text_lines(message)]
    for line in candidates:
        match = _COMMAND.fullmatch(line)
        # "unsubscribe me" is a person writing, for a human to read; only a token's shape counts
        if match and _WHOLE_TOKEN.fullmatch(match.group(1)):
            return MailedUnsubscribe(match.group(1), sender)
    return NotUnderstood("not a bounce, complaint or unsubscribe request")


def classify(raw: bytes) -> Parsed:
    """What one inbound message is; never raises (a broken message is :class:`Malformed`)."""
    try:
        message = email.message_from_bytes(raw)
        if not message.keys():
            return Malformed("no header fields (not an email message)")
        if message.get_content_type() == "multipart/report":
            if not message.is_multipart():
                return Malformed("a multipart/report without parts")
            param = message.get_param("report-type")
            kind = collapse_rfc2231_value(param).lower() if param else ""
            if kind == "delivery-status":
                return _bounce(message)
            if kind == "feedback-report":
                return _complaint(message)
            return NotUnderstood(f"a report of type {kind or 'unknown'!r}")
        return _mailed_unsubscribe(message)
    except Exception as exc:  # a hostile message must never stop the run
        return Malformed(f"unreadable ({type(exc).__name__})")
