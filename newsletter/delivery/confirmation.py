"""The double opt-in email and the welcome that follows it, each from its own small templates.

A web signup creates a *pending* subscriber and sends this message; the link in
it confirms the address. A signup for an address that is already confirmed gets
a different note (a link to its preferences) so that the web page itself never
reveals whether an address is on the list.

Once a reader confirms, a welcome (``welcome.html`` / ``welcome.txt``) says what
they will get and carries their preferences and unsubscribe links, with
``List-Unsubscribe`` and RFC 8058 one-click; ``NEWSLETTER_WELCOME_EMAIL=false``
turns it off. Both go out over the one SMTP path (:func:`~newsletter.delivery.smtp.send_one`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

import jinja2

from newsletter.content.templates import email_environment
from newsletter.core.config import Settings
from newsletter.core.db import utcnow
from newsletter.core.errors import DeliveryError, HeaderInjectionError
from newsletter.core.text import single_line
from newsletter.delivery.outcomes import DeliveryStatus
from newsletter.delivery.smtp import needs_smtputf8, send_one, smtp_pool
from subscribers import links
from subscribers.model import Subscriber

__all__ = [
    "Confirmation",
    "Welcome",
    "build_confirmation",
    "build_welcome",
    "send_confirmation",
    "send_welcome",
    "welcome_for",
]


@dataclass(frozen=True)
class Confirmation:
    """What one confirmation email says and to whom.

    ``confirm_url`` is set for a pending signup; for an address that is already
    confirmed it is ``None`` and the note points at ``preferences_url`` instead.
    """

    email: str
    name: str | None
    confirm_url: str | None
    preferences_url: str | None = None
    topics: tuple[str, ...] = ()


@functools.cache
def _environment() -> jinja2.Environment:
    return email_environment()


def _addressed(settings: Settings, subject: str, name: str, email: str) -> EmailMessage:
    """A message with Subject, From, To, Reply-To, Date, Message-ID and Auto-Submitted."""
    message = EmailMessage(policy=SMTP)
    message["Subject"] = single_line(subject, "subject")
    message["From"] = settings.sender
    local, _, domain = email.rpartition("@")
    try:
        message["To"] = Address(display_name=name, username=local, domain=domain)
    except (ValueError, IndexError) as exc:  # the email package refuses odd addresses
        raise HeaderInjectionError(f"cannot address {email!r} ({exc})", field="email") from None
    if settings.reply_to:
        message["Reply-To"] = settings.reply_to
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=settings.sender_domain)
    # RFC 3834: an automatic reply to a person's action; autoresponders stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    return message


def build_confirmation(settings: Settings, confirmation: Confirmation) -> EmailMessage:
    """The confirmation message: text then HTML, UTF-8, headers free of CR/LF.

    Raises :class:`HeaderInjectionError` when the name or address holds a line break.
    """
    name = single_line(confirmation.name or "", "name")
    email = single_line(confirmation.email, "email")
    env = _environment()
    context = {
        "name": name,
        "email": email,
        "confirm_url": confirmation.confirm_url,
        "preferences_url": confirmation.preferences_url,
        "topics": list(confirmation.topics),
        "site_name": settings.site_name,
        "postal_address": settings.postal_address,
        "language": settings.language,
        "direction": settings.direction,
    }
    if confirmation.confirm_url is not None:
        subject = f"Please confirm your subscription to {settings.site_name}"
    else:
        subject = f"You are already subscribed to {settings.site_name}"
    message = _addressed(settings, subject, name, email)
    message.set_content(env.get_template("confirm.txt").render(context), cte="quoted-printable")
    message.add_alternative(
        env.get_template("confirm.html").render(context), subtype="html", cte="quoted-printable"
    )
    return message


async def send_confirmation(settings: Settings, message: EmailMessage) -> None:
    """Hand ``message`` to the relay the settings name, over the same SMTP path as a send.

    Raises :class:`SMTPUnavailableError` when the relay cannot be reached and
    :class:`DeliveryError` when it refuses the message (its reply, never a credential).
    """
    await _send(settings, message, "confirmation")


async def _send(
    settings: Settings, message: EmailMessage, what: str, unsubscribe: bytes | None = None
) -> None:
    recipient = message["To"].addresses[0].addr_spec
    utf8 = needs_smtputf8(recipient)
    data = message.as_bytes(policy=SMTP.clone(utf8=utf8))
    if unsubscribe is not None:
        # the email package would fold a long link into RFC 2047 words: the line is ours
        if _UNSUBSCRIBE_SLOT not in data:
            raise DeliveryError(f"{what} email has no List-Unsubscribe line to fill")
        data = data.replace(_UNSUBSCRIBE_SLOT, unsubscribe, 1)
    attempt = await send_one(smtp_pool(settings, 1), settings.sender_address, recipient, data)
    if attempt.outcome is not DeliveryStatus.SENT:
        raise DeliveryError(f"{what} email refused: {attempt.error}")


# --- welcome ------------------------------------------------------------------

_SLOT = "NLPH7list_unsubscribe7"  # stands in for the header's value until it is sent
_UNSUBSCRIBE_SLOT = f"List-Unsubscribe: {_SLOT}\r\n".encode("ascii")
_MAX_HEADER_LINE = 998


@dataclass(frozen=True)
class Welcome:
    """What one welcome email says and to whom: their links, and the topics they chose."""

    email: str
    name: str | None
    preferences_url: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    topics: tuple[str, ...] = ()


def welcome_for(
    settings: Settings, person: Subscriber, topic_labels: dict[str, str] | None = None
) -> Welcome:
    """The welcome for a confirmed ``person``: signed links, topics by their labels."""
    labels = topic_labels or {}
    unsubscribe, mailto = links.unsubscribe_links(settings, person.id, person.email)
    return Welcome(
        person.email,
        person.name,
        links.preferences_url(settings, person.id, person.email),
        unsubscribe,
        mailto,
        tuple(labels.get(topic, topic) for topic in sorted(person.topics)),
    )


def _unsubscribe_line(welcome: Welcome) -> bytes:
    """``List-Unsubscribe:`` with the https link and the mailto, each entry on its own line."""
    url = single_line(welcome.unsubscribe_url, "unsubscribe_url")
    mailto = single_line(welcome.unsubscribe_mailto, "unsubscribe_mailto")
    line = f"List-Unsubscribe:\r\n <{url}>,\r\n <{mailto}>\r\n"
    if not line.isascii() or any(len(part) > _MAX_HEADER_LINE for part in line.split("\r\n")):
        raise HeaderInjectionError(
            "an unsubscribe link must be ASCII and shorter than 990 characters",
            field="unsubscribe_url",
        )
    return line.encode("ascii")


def build_welcome(settings: Settings, welcome: Welcome) -> tuple[EmailMessage, bytes]:
    """The welcome message (text then HTML) and its ``List-Unsubscribe`` line.

    The header line is given apart (:func:`send_welcome` puts it in): the email
    package would fold a long link into encoded words. Raises
    :class:`HeaderInjectionError` when the name, address or a link holds a line break.
    """
    name = single_line(welcome.name or "", "name")
    email = single_line(welcome.email, "email")
    context = {
        "name": name if settings.greetings else "",
        "email": email,
        "preferences_url": welcome.preferences_url,
        "unsubscribe_url": welcome.unsubscribe_url,
        "topics": list(welcome.topics),
        "newsletter_name": settings.newsletter_name,
        "site_name": settings.site_name,
        "schedule_text": settings.schedule_text,
        "postal_address": settings.postal_address,
        "language": settings.language,
        "direction": settings.direction,
    }
    unsubscribe = _unsubscribe_line(welcome)
    message = _addressed(settings, f"Welcome to {settings.newsletter_name}", name, email)
    message["List-Unsubscribe"] = _SLOT
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    env = _environment()
    message.set_content(env.get_template("welcome.txt").render(context), cte="quoted-printable")
    message.add_alternative(
        env.get_template("welcome.html").render(context), subtype="html", cte="quoted-printable"
    )
    return message, unsubscribe


async def send_welcome(settings: Settings, welcome: Welcome) -> None:
    """Build and send the welcome over the one SMTP path; errors as :func:`send_confirmation`."""
    message, unsubscribe = build_welcome(settings, welcome)
    await _send(settings, message, "welcome", unsubscribe)
