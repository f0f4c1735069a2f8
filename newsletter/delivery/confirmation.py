"""The double opt-in email: built from its own small templates, sent with aiosmtplib.

A web signup creates a *pending* subscriber and sends this message; the link in
it confirms the address. A signup for an address that is already confirmed gets
a different note (a link to its preferences) so that the web page itself never
reveals whether an address is on the list.
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

__all__ = ["Confirmation", "build_confirmation", "send_confirmation"]


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
    recipient = message["To"].addresses[0].addr_spec
    utf8 = needs_smtputf8(recipient)
    data = message.as_bytes(policy=SMTP.clone(utf8=utf8))
    attempt = await send_one(smtp_pool(settings, 1), settings.sender_address, recipient, data)
    if attempt.outcome is not DeliveryStatus.SENT:
        raise DeliveryError(f"confirmation email refused: {attempt.error}")
