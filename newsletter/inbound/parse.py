"""Reading the mail that comes back: DSN bounces, ARF complaints and mailed unsubscribes.

Pure parsing, no database: :func:`classify` turns one message's bytes into what
it says. The email package does the MIME work; it already splits a
``message/delivery-status`` part into its per-message and per-recipient blocks
(RFC 3464). What it cannot judge (is this token genuine, who is this address)
is left to :mod:`newsletter.inbound.process`.

The parser is the forgiving ``compat32`` one on purpose: mail from remote MTAs
is often slightly broken, and a bounce with a sloppy header must still count.

Anyone can write to a bounce address, so every message is treated as hostile:
:func:`classify` never raises, and refuses (:class:`Refused`) before parsing a
message with more MIME parts than :data:`MAX_PARTS` or delimiter lines than
:data:`MAX_DELIMITERS` (bounds found by counting, without parsing), and after
parsing one nested deeper than :data:`MAX_DEPTH`; a parser crash (recursion,
memory) is a refusal too. Text taken from a message loses control characters and
unencodable bytes, so it can be stored, printed and logged safely.
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
    "MAX_DELIMITERS",
    "MAX_DEPTH",
    "MAX_PARTS",
    "MAX_RECIPIENTS",
    "Bounce",
    "Complaint",
    "MailedUnsubscribe",
    "Malformed",
    "NotUnderstood",
    "Parsed",
    "RecipientStatus",
    "Refused",
    "Returned",
    "classify",
    "find_token",
]

#: MIME entities (Content-Type fields) a message may have; ours come back with about 6
MAX_PARTS = 200
#: lines starting with "--" (multipart delimiters bound the number of parts)
MAX_DELIMITERS = 1000
#: nesting of multiparts and attached messages (a DSN returning a digest: 4)
MAX_DEPTH = 16
#: per-recipient blocks of one DSN that are looked at (ours name one recipient)
MAX_RECIPIENTS = 50
# the headers naming where a report was delivered: the VERP return path, if any
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
_MAX_ADDRESSES = 20
_CONTENT_TYPE = re.compile(rb"(?:^|[\r\n])content-type[ \t]*:", re.IGNORECASE)
_DELIMITER = re.compile(rb"(?:^|[\r\n])--")
# C0 and C1 controls (ESC sequences could repaint an operator's terminal), and lone
# surrogates (undecodable bytes): neither may reach a database, a log or a terminal
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")

# a link token (subscribers.tokens): purpose letter, id hex, issued hex, [newsletter,] MAC
_TOKEN = r"[a-z]\.[0-9a-f]+\.[0-9a-f]+(?:\.[a-z0-9-]+)?\.[A-Za-z0-9_-]+"  # noqa: S105 - a pattern
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
    return_path: tuple[str, ...] = ()  # its Return-Path, when the reporter kept it
    message_id: str | None = None


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a DSN."""

    address: str  # Original-Recipient, else Final-Recipient, without the "rfc822;" type
    action: str  # failed, delayed, delivered, relayed, expanded (lower case)
    status: str  # "5.1.1"; "" when absent or unreadable
    diagnostic: str

    @property
    def hard(self) -> bool:
        """The address is bad for good: Action failed with 5.1.x (no such mailbox, no such
        domain). One is enough to stop writing."""
        return self.action == "failed" and self.status.startswith("5.1.")

    @property
    def soft(self) -> bool:
        """The MTA gave up on this message, but not on the address for good (4.x.x, or a
        5.x.x other than 5.1.x: a full mailbox, a policy refusal). Counted, not final."""
        return self.action == "failed" and not self.hard

    @property
    def delayed(self) -> bool:
        """A warning that the message is still queued (Action: delayed): not a failure."""
        return self.action == "delayed"


@dataclass(frozen=True)
class Bounce:
    """A delivery status notification (multipart/report; report-type=delivery-status)."""

    recipients: tuple[RecipientStatus, ...]
    returned: Returned | None
    delivered_to: tuple[str, ...] = ()  # where it was delivered (Delivered-To, To...)
    omitted: int = 0  # per-recipient blocks beyond MAX_RECIPIENTS, not looked at


@dataclass(frozen=True)
class Complaint:
    """An abuse report (multipart/report; report-type=feedback-report, RFC 5965)."""

    feedback_type: str  # lower case: abuse, fraud, not-spam, ...
    returned: Returned | None
    delivered_to: tuple[str, ...] = ()


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


@dataclass(frozen=True)
class Refused:
    """A message beyond the limits (parts, nesting) or one that crashed the parser:
    hostile or hopeless, to be put aside unread."""

    reason: str


Parsed = Bounce | Complaint | MailedUnsubscribe | NotUnderstood | Malformed | Refused


def _safe(text: str, limit: int = 1000) -> str:
    return _UNSAFE.sub("", text[: limit * 2])[:limit]


def _text(value: object) -> str:
    """A header's value as text, RFC 2047 words decoded, made safe; never raises."""
    if value is None:
        return ""
    try:
        return _safe(str(make_header(decode_header(str(value)))))
    except (ValueError, LookupError, UnicodeError, AssertionError):
        return _safe(str(value))


def _addresses(message: Message, names: tuple[str, ...]) -> tuple[str, ...]:
    values = [_text(v) for name in names for v in (message.get_all(name) or [])[:_MAX_ADDRESSES]]
    found = (_safe(a, 320) for _, a in getaddresses(values))
    return tuple(dict.fromkeys(a for a in found if a))[:_MAX_ADDRESSES]


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
            found = _addresses(headers, ("To",))
            message_id = _text(headers.get("Message-ID")).strip()[:250]
            return Returned(
                to=found[0] if found else None,
                token=find_token(_text(headers.get("List-Unsubscribe", ""))),
                return_path=_addresses(headers, ("Return-Path",)),
                message_id=message_id or None,
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
    recipients: list[RecipientStatus] = []
    omitted = 0
    # the first block is per-message (Reporting-MTA...); the rest are per-recipient
    for block in blocks:
        address = _typed_address(block.get("Original-Recipient")) or _typed_address(
            block.get("Final-Recipient")
        )
        if not address:
            continue
        if len(recipients) >= MAX_RECIPIENTS:
            omitted += 1
            continue
        status = _STATUS.search(_text(block.get("Status")))
        recipients.append(
            RecipientStatus(
                address=address,
                action=_text(block.get("Action")).strip().lower(),
                status=status.group(0) if status else "",
                # a remote MTA may quote our return path: keep no token in a history
                diagnostic=_WHOLE_TOKEN.sub(
                    "[token]", " ".join(_text(block.get("Diagnostic-Code")).split())
                )[:200],
            )
        )
    if not recipients:
        return Malformed("a delivery-status report naming no recipient")
    delivered_to = _addresses(report, _ENVELOPE_HEADERS)
    return Bounce(tuple(recipients), _returned(report), delivered_to, omitted)


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
            return Complaint(kind, _returned(report), _addresses(report, _ENVELOPE_HEADERS))
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
            return [_safe(line.strip()) for line in text.splitlines() if line.strip()][:3]
    return []


def _mailed_unsubscribe(message: Message) -> Parsed:
    sender = next(iter(_addresses(message, ("From",))), "")
    candidates = [_text(message.get("Subject")).strip(), *_first_text_lines(message)]
    for line in candidates:
        match = _COMMAND.fullmatch(line)
        # "unsubscribe me" is a person writing, for a human to read; only a token's shape counts
        if match and _WHOLE_TOKEN.fullmatch(match.group(1)):
            return MailedUnsubscribe(match.group(1), sender)
    return NotUnderstood("not a bounce, complaint or unsubscribe request")


def _over_limits(raw: bytes) -> str | None:
    # counted, not parsed: each MIME entity beyond the first needs a Content-Type
    # field or a delimiter line, so these bound the parser's work before it starts
    if len(_CONTENT_TYPE.findall(raw)) > MAX_PARTS:
        return f"more than {MAX_PARTS} MIME parts"
    if len(_DELIMITER.findall(raw)) > MAX_DELIMITERS:
        return f"more than {MAX_DELIMITERS} MIME delimiter lines"
    return None


def _too_deep(message: Message) -> bool:
    # iterative: a walk of our own must not recurse either
    stack = [(message, 1)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if part.get_content_type() == "message/delivery-status":
            continue  # its payload is header blocks, not MIME parts
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((p, depth + 1) for p in payload if isinstance(p, Message))
    return False


def classify(raw: bytes) -> Parsed:
    """What one inbound message is; never raises.

    A broken message is :class:`Malformed`; one beyond the limits, or one that
    crashes the parser, is :class:`Refused`.
    """
    try:
        over = _over_limits(raw)
        if over is not None:
            return Refused(over)
        message = email.message_from_bytes(raw)
        if _too_deep(message):
            return Refused(f"MIME parts nested more than {MAX_DEPTH} levels deep")
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
    except Exception as exc:
        return Refused(f"the parser gave up on it ({type(exc).__name__})")
