"""MIME messages built once per variant and personalised per recipient by substitution.

:meth:`MessageTemplate.from_variant` builds the whole message with the ``email``
package (``policy.SMTP``: CRLF line ends) once per variant: ``multipart/alternative``
with ``text/plain`` first and ``text/html`` second, both UTF-8 quoted-printable.
Each body is QP-encoded in literal segments split at the per-recipient slots, and
every slot is framed by soft line breaks (``=\\r\\n``), so a recipient's value can
be QP-encoded alone and dropped in without re-encoding the body or passing 76
characters a line. :meth:`MessageTemplate.personalise` then only escapes, encodes
and joins a handful of short strings: no Jinja2, no premailer, no ``EmailMessage``.
No body line starts with "." (QP writes it "=2E"), so SMTP's dot-stuffing, the
one pass over each message's bytes a sender would make, finds nothing to do.
"""

from __future__ import annotations

import binascii
import hashlib
import html
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from newsletter.content.models import Edition
from newsletter.content.render import BODY_SLOTS, SLOT_RE, RenderedVariant, greeting, slot
from newsletter.content.tracking import CLICK_SLOT, ReaderSigner
from newsletter.core.config import Settings
from newsletter.core.errors import (
    HeaderInjectionError,
    InputError,
    RenderError,
    SubscriberInputError,
)
from newsletter.core.text import single_line

__all__ = ["MessageTemplate", "Personal", "feedback_id", "list_id_header", "new_message_id"]

_SLOT_BYTES = re.compile(rb"NLPH7([a-z_]+)7")
_HEADERS = "headers"
_SPECIALS = frozenset('<>()[]"\\ ,;:')
_MAX_HEADER_LINE = 998
# RFC 5322 2.1.1: header lines SHOULD stay within 78 characters (folded where possible)
_FOLD_AT = 78
_FOLD_POINT = re.compile(r"(?<=[^ ])(?= )")
_FEEDBACK_FIELD = re.compile(r"[^A-Za-z0-9._-]+")
# An RFC 2047 encoded word may be at most 75 characters long.
_MAX_ENCODED_WORD = 75


@dataclass(frozen=True, slots=True)
class Personal:
    """What differs per recipient: address, name, their links and their Message-ID.

    ``date`` defaults to the moment of personalisation; ``unsubscribe_mailto``
    adds the ``mailto:`` form to List-Unsubscribe; ``first_name``, when known,
    is the name the greeting uses (else the first word of ``name``);
    ``subscriber_id`` signs their article links in per-subscriber click tracking.
    """

    email: str
    name: str
    unsubscribe_url: str
    preferences_url: str
    message_id: str
    unsubscribe_mailto: str | None = None
    date: datetime | None = None
    first_name: str | None = None
    subscriber_id: int | None = None


def new_message_id(domain: str) -> str:
    """A fresh, globally unique Message-ID on ``domain``, e.g. ``<17...@news.example.com>``."""
    return make_msgid(domain=domain)


def _qp(data: bytes) -> bytes:
    """A slot's value QP-encoded: lines within 75 characters before the slot's closing
    soft break ("="), none starting with a dot, CRLF line ends."""
    encoded = binascii.b2a_qp(data)  # soft breaks as a bare LF
    if len(encoded) - encoded.rfind(b"\n") > 76:  # 76 with the closing "=" would be 77
        cut = len(encoded) - (3 if encoded[-3:-2] == b"=" else 1)  # never inside "=XX"
        encoded = encoded[:cut] + b"=\n" + encoded[cut:]
    if b"\n." in encoded or encoded.startswith(b"."):  # a long value wrapped before a dot
        encoded = _no_leading_dots(encoded.decode("ascii")).encode("ascii")
    return encoded.replace(b"\n", b"\r\n")


def _no_leading_dots(encoded: str) -> str:
    """QP ``encoded`` ("\\n" line ends) with every line-leading "." written "=2E".

    So no body line starts with a dot: SMTP's dot-stuffing then has nothing to do
    (the sender checks and skips it) and no relay can mistake one for the end of
    data. A line that would pass 76 characters keeps its "=2E" on a line of its own.
    """
    out: list[str] = []
    for line in encoded.split("\n"):
        while line.startswith(".") and len(line) + 2 > 76:
            out.append("=2E=")  # then a soft break
            line = line[1:]
        if line.startswith("."):
            line = "=2E" + line[1:]
        out.append(line)
    return "\n".join(out)


def _encode_body(text: str, part: str) -> str:
    """QP-encode ``text`` segment by segment, leaving each slot framed by soft breaks."""
    pieces: list[str] = []
    position = 0
    for match in SLOT_RE.finditer(text):
        name = match.group(1)
        if name not in BODY_SLOTS:
            raise RenderError(f"unknown placeholder {match.group()!r} in the {part} part")
        literal = text[position : match.start()].encode("utf-8")
        pieces.append(binascii.b2a_qp(literal).decode("ascii"))
        pieces.append(f"=\n{slot(f'{part}_{name}')}=\n")
        position = match.end()
    pieces.append(binascii.b2a_qp(text[position:].encode("utf-8")).decode("ascii"))
    return _no_leading_dots("".join(pieces))


def _header_address(email: str) -> str:
    """The address as the To header carries it: IDN domains in ASCII (punycode).

    A UTF-8 local part is kept as is (RFC 6532): such a message must travel with
    SMTPUTF8, which the SMTP client asks for when an address is not ASCII.
    """
    local, at, domain = email.rpartition("@")
    # a cheap guard on the hot path; the subscriber store validated the address fully
    if not at or not local or not domain or "@" in local or any(c in email for c in _SPECIALS):
        raise SubscriberInputError("not a deliverable address", field="email")
    if not local.isascii():
        return email
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise SubscriberInputError("the domain is not a valid IDN", field="email") from None
    return f"{local}@{domain}"


def _to_header(name: str, email: str) -> bytes:
    """The whole ``To:`` line, RFC 2047 for non-ASCII names, folded when long."""
    address = _header_address(single_line(email, "email"))
    name = single_line(name, "name").strip()
    if not name:
        return f"To: {address}\r\n".encode()
    # formataddr quotes and encodes the name; the address is added after, since
    # formataddr refuses a UTF-8 local part
    phrase = formataddr((name, "x@x")).removesuffix(" <x@x>")
    line = f"To: {phrase} <{address}>\r\n".encode()
    encoded_word = phrase.find("=?")
    fits = len(line) <= _MAX_HEADER_LINE and (
        encoded_word < 0 or len(phrase) - encoded_word <= _MAX_ENCODED_WORD
    )
    if fits:
        return line
    # Long or very non-ASCII names: RFC 2047 words, folded between words. (The email
    # package's own address folder re-parses to spurious spaces inside long names.)
    words = Header(name, "utf-8", header_name="To").encode(linesep="\r\n", maxlinelen=76)
    return f"To: {words}\r\n <{address}>\r\n".encode()


def _bracketed(message_id: str) -> str:
    value = single_line(message_id, "message_id").strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    if value.count("@") != 1 or not value.endswith(">") or not value.isascii() or " " in value:
        raise HeaderInjectionError("a Message-ID looks like <unique@domain>", field="message_id")
    return value


def _list_unsubscribe(url: str, mailto: str | None) -> bytes:
    """The ``List-Unsubscribe:`` line, folded between its entries (RFC 5322 folds only
    at white space; a URL is never broken). The https link stays on the name's line
    only when that line fits in 78 characters; otherwise it starts a line of its own,
    the shortest line it can have, and the mailto entry always has its own. An entry
    longer than 76 characters gives a line over 78, never over 998 (checked here).
    """
    entries = [f"<{single_line(url, 'unsubscribe_url')}>"]
    if mailto:
        entries.append(f"<{single_line(mailto, 'unsubscribe_mailto')}>")
    first = entries[0] + ("," if len(entries) > 1 else "")
    lead = "List-Unsubscribe: "
    if len(lead) + len(first) > _FOLD_AT:
        lead = "List-Unsubscribe:\r\n "
    line = lead + ",\r\n ".join(entries) + "\r\n"
    if not line.isascii() or any(len(part) > _MAX_HEADER_LINE for part in line.split("\r\n")):
        raise HeaderInjectionError(
            "an unsubscribe link must be ASCII and shorter than 990 characters",
            field="unsubscribe_url",
        )
    return line.encode("ascii")


def _subject_header(subject: str) -> bytes:
    """The ``Subject:`` line: as is when ASCII and short enough, else RFC 2047 words.

    Written here rather than by the email package, whose folder may move the whole
    value to a continuation line and so change the parsed subject by a space.
    Folded before a space at 78 characters; unfolding gives the subject back exactly.
    """
    if subject.isascii():
        line = _fold(f"Subject: {subject}")
        if all(len(part) <= _MAX_HEADER_LINE for part in line.split("\r\n")):
            return f"{line}\r\n".encode("ascii")
    encoded = Header(subject, "utf-8", header_name="Subject").encode(
        linesep="\r\n", maxlinelen=_FOLD_AT - 2
    )
    return f"Subject: {encoded}\r\n".encode("ascii")


def _fold(line: str) -> str:
    """``line`` folded before spaces so that each piece stays within 78 characters
    where a word allows; never before the first word of the value."""
    pieces = _FOLD_POINT.split(line)
    if len(line) <= _FOLD_AT or len(pieces) < 3:
        return line
    out, current = [], pieces[0] + pieces[1]
    for piece in pieces[2:]:
        if len(current) + len(piece) > _FOLD_AT and piece.strip():
            out.append(current)
            current = piece
        else:
            current += piece
    out.append(current)
    return "\r\n".join(out)


_date_cache: tuple[int, str] = (0, "")


def _now_date() -> str:
    # The Date header now, with "+0000" (not the obsolete "GMT"); formatted once a second.
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, format_datetime(datetime.fromtimestamp(second, UTC)))
    return _date_cache[1]


def feedback_id(variant: RenderedVariant, settings: Settings) -> str:
    """The Feedback-ID value Gmail's Postmaster Tools groups spam rates by:
    ``<edition kind>:<variant>:<newsletter id>:<sender id>``, each field without colons
    (a site that configures no newsletters keeps its List-Id value as the third field)."""
    key = variant.key
    tag = _FEEDBACK_FIELD.sub("-", key)
    if len(tag) > 32:  # many topics: a short stable digest instead
        tag = "topics-" + hashlib.sha256(key.encode()).hexdigest()[:12]
    fields = (
        variant.kind.value,
        tag,
        settings.effective_list_id if settings.newsletter_list.implicit else variant.newsletter,
        settings.feedback_id_sender or settings.sender_domain,
    )
    return ":".join(_FEEDBACK_FIELD.sub("-", field) for field in fields)


def list_id_header(settings: Settings, newsletter_id: str) -> str:
    """The List-Id header (RFC 2919) of one newsletter: ``"Daily Briefing" <daily.example.com>``.

    The one newsletter of a site that configures none keeps the value it always had
    (``<site name> <digest.domain>``), so readers' mail filters keep working.
    Raises :class:`RenderError` for a newsletter no longer configured.
    """
    try:
        entry = settings.newsletter_list.get(newsletter_id)
    except InputError:
        raise RenderError(
            f"the edition belongs to the newsletter {newsletter_id!r}, which newsletter.toml "
            "does not configure (any more)"
        ) from None
    value = settings.newsletter_list_id(newsletter_id)
    if settings.newsletter_list.implicit:
        return f"{single_line(settings.site_name, 'site_name')} <{value}>"
    name = single_line(entry.name, "newsletter name").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{name}" <{value}>'


class MessageTemplate:
    """A variant's complete message as byte segments and named per-recipient slots."""

    __slots__ = ("_pieces", "_reader", "edition_id", "subject", "variant_key")

    def __init__(
        self,
        pieces: tuple[bytes | str, ...],
        *,
        variant_key: str,
        edition_id: str,
        subject: str,
        reader: ReaderSigner | None = None,
    ) -> None:
        self._pieces = pieces
        self._reader = reader  # signs the reader part of tracked links (per-subscriber)
        self.variant_key = variant_key
        self.edition_id = edition_id
        self.subject = subject

    @classmethod
    def from_variant(
        cls, variant: RenderedVariant, settings: Settings, edition: Edition | None = None
    ) -> MessageTemplate:
        """Build the variant's MIME message once; raises on a header with CR or LF."""
        if edition is not None and edition.id != variant.edition_id:
            raise RenderError(f"variant of {variant.edition_id} given with edition {edition.id}")
        subject = single_line(variant.subject, "subject")
        text_body = _encode_body(variant.text, "text")
        html_body = _encode_body(variant.html, "html")

        root = EmailMessage(policy=policy.SMTP)
        root["From"] = single_line(settings.sender, "from")
        # replies go to a read mailbox, never to the VERP bounce address
        root["Reply-To"] = single_line(settings.reply_address, "reply_to")
        root["MIME-Version"] = "1.0"
        root["Precedence"] = "bulk"  # auto-responders stay quiet
        root["Feedback-ID"] = feedback_id(variant, settings)
        root["List-Id"] = list_id_header(settings, variant.newsletter)
        root["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        root["Content-Type"] = "multipart/alternative"
        # A boundary derived from the content keeps the bytes reproducible; QP bodies
        # always encode "=" as "=3D", so "=_" can never occur inside them.
        digest = hashlib.sha256(f"{variant.text}\0{variant.html}".encode()).hexdigest()[:32]
        root.set_boundary(f"=_nl_{digest}")
        for subtype, encoded in (("plain", text_body), ("html", html_body)):
            part = EmailMessage(policy=policy.SMTP)
            part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
            part["Content-Transfer-Encoding"] = "quoted-printable"
            part.set_payload(encoded)
            root.attach(part)
        # Only the bodies hold slots: header values (a subject quoting a token) are text.
        head, _, body = root.as_bytes(policy=policy.SMTP).partition(b"\r\n\r\n")
        return cls(
            (_HEADERS, _subject_header(subject) + head + b"\r\n\r\n", *_split(body)),
            variant_key=variant.key,
            edition_id=variant.edition_id,
            subject=subject,
            reader=(
                ReaderSigner(settings.secret(), variant.edition_id)
                if CLICK_SLOT in variant.html or CLICK_SLOT in variant.text
                else None
            ),
        )

    def personalise(self, recipient: Personal) -> bytes:
        """The message for one recipient: headers and body slots filled, CRLF, QP intact.

        Raises :class:`HeaderInjectionError` for a CR or LF in any per-recipient
        header value and :class:`SubscriberInputError` for an unusable address.
        """
        name = recipient.name
        date = format_datetime(recipient.date) if recipient.date else _now_date()
        headers = b"".join(
            (
                b"Date: ",
                date.encode("ascii"),
                b"\r\nMessage-ID: ",
                _bracketed(recipient.message_id).encode("ascii"),
                b"\r\n",
                _to_header(name, recipient.email),
                _list_unsubscribe(recipient.unsubscribe_url, recipient.unsubscribe_mailto),
            )
        )
        shown = greeting(name, recipient.first_name)
        unsubscribe = recipient.unsubscribe_url
        preferences = recipient.preferences_url
        # one HMAC: the reader part every tracked link of theirs ends with; a leading "."
        # after the slot's soft break is written "=2E" (a line never starts with a dot)
        reader, who = self._reader, recipient.subscriber_id
        click = b"=2E" + reader.suffix(who)[1:].encode() if reader and who is not None else b""
        values = {
            _HEADERS: headers,
            "text_greeting": _qp(shown.encode("utf-8")),
            "text_unsubscribe_url": _qp(unsubscribe.encode("utf-8")),
            "text_preferences_url": _qp(preferences.encode("utf-8")),
            "html_greeting": _qp(html.escape(shown).encode("utf-8")),
            "html_unsubscribe_url": _qp(html.escape(unsubscribe).encode("utf-8")),
            "html_preferences_url": _qp(html.escape(preferences).encode("utf-8")),
            "text_click": click,
            "html_click": click,
        }
        return b"".join([p if type(p) is bytes else values[p] for p in self._pieces])  # type: ignore[index]


def _split(message: bytes) -> tuple[bytes | str, ...]:
    pieces: list[bytes | str] = []
    position = 0
    for match in _SLOT_BYTES.finditer(message):
        pieces.append(message[position : match.start()])
        pieces.append(match.group(1).decode("ascii"))
        position = match.end()
    pieces.append(message[position:])
    known = {_HEADERS, *(f"{part}_{name}" for part in ("text", "html") for name in BODY_SLOTS)}
    unknown = {p for p in pieces if isinstance(p, str)} - known
    if unknown:
        raise RenderError(f"unknown placeholders in the message: {sorted(unknown)}")
    return tuple(pieces)
