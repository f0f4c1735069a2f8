"""The editor's preview: an edition as one subscriber would receive it, written to files.

``write_preview`` puts ``EDITION.html``, ``EDITION.txt`` and ``EDITION.eml`` (the
complete message, every header included) into a folder. Without a subscriber the
preview is addressed to a sample reader with example links; with one, it carries
that person's name, topics and real signed links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Connection

from newsletter.content.message import MessageTemplate, Personal, new_message_id
from newsletter.content.models import Edition
from newsletter.content.render import RenderedVariant, Renderer
from newsletter.core.config import Settings
from newsletter.core.errors import InputError
from subscribers import links, store

__all__ = [
    "SAMPLE_EMAIL",
    "SAMPLE_NAME",
    "PreviewDocument",
    "PreviewFiles",
    "PreviewRecipient",
    "build_preview",
    "sample_recipient",
    "subscriber_recipient",
    "write_preview",
]

SAMPLE_NAME = "Reader"
SAMPLE_EMAIL = "reader@example.com"
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class PreviewRecipient:
    """Who the preview is for: their personal values and topics (None = everything)."""

    personal: Personal
    topics: frozenset[str] | None


@dataclass(frozen=True)
class PreviewDocument:
    """The three views of one personalised edition."""

    edition_id: str
    html: str
    text: str
    eml: bytes


@dataclass(frozen=True)
class PreviewFiles:
    """Where :func:`write_preview` put the three files."""

    html: Path
    text: Path
    eml: Path


def sample_recipient(settings: Settings) -> PreviewRecipient:
    """A sample reader ("Reader", reader@example.com) with example, non-working links."""
    base = settings.base_url
    return PreviewRecipient(
        Personal(
            email=SAMPLE_EMAIL,
            name=SAMPLE_NAME,
            unsubscribe_url=f"{base}/unsubscribe/example",
            preferences_url=f"{base}/preferences/example",
            message_id=new_message_id(settings.sender_domain),
            unsubscribe_mailto=(
                f"mailto:unsubscribe@{settings.sender_domain}?subject=unsubscribe%20example"
            ),
        ),
        None,
    )


def subscriber_recipient(settings: Settings, conn: Connection, email: str) -> PreviewRecipient:
    """The subscriber with this address, with their real links and topics.

    Raises :class:`NotFoundError` when no subscriber has that address.
    """
    found = store.get_by_email(conn, email)
    return PreviewRecipient(
        Personal(
            email=found.email,
            name=found.name or "",
            unsubscribe_url=links.unsubscribe_url(settings, found.id, found.email),
            preferences_url=links.preferences_url(settings, found.id, found.email),
            message_id=new_message_id(settings.sender_domain),
            unsubscribe_mailto=links.unsubscribe_mailto(settings, found.id, found.email),
            first_name=found.attributes.get("first_name"),  # greeted as a send greets them
        ),
        found.topics or None,
    )


def _values(personal: Personal) -> dict[str, str]:
    return {
        "name": personal.name,
        "first_name": personal.first_name or "",
        "unsubscribe_url": personal.unsubscribe_url,
        "preferences_url": personal.preferences_url,
    }


def build_preview(
    settings: Settings,
    edition: Edition,
    recipient: PreviewRecipient,
    renderer: Renderer | None = None,
) -> PreviewDocument:
    """Render ``edition`` for ``recipient``: the HTML and text they would read, and the .eml.

    The .eml is built by the same code path as a sent message.
    """
    variant: RenderedVariant = (renderer or Renderer(settings)).render(edition, recipient.topics)
    template = MessageTemplate.from_variant(variant, settings, edition)
    values = _values(recipient.personal)
    return PreviewDocument(
        edition_id=edition.id,
        html=variant.fill_html(values),
        text=variant.fill_text(values),
        eml=template.personalise(recipient.personal),
    )


def write_preview(document: PreviewDocument, out_dir: Path) -> PreviewFiles:
    """Write ``EDITION.html``, ``EDITION.txt`` and ``EDITION.eml`` into ``out_dir`` (created)."""
    stem = _UNSAFE_FILENAME.sub("_", document.edition_id).strip("._") or "edition"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        files = PreviewFiles(
            html=out_dir / f"{stem}.html",
            text=out_dir / f"{stem}.txt",
            eml=out_dir / f"{stem}.eml",
        )
        files.html.write_text(document.html, encoding="utf-8")
        # the text part keeps LF on disk; the .eml holds the exact CRLF bytes sent
        files.text.write_text(document.text, encoding="utf-8")
        files.eml.write_bytes(document.eml)
    except OSError as exc:
        raise InputError(f"cannot write the preview: {exc.strerror}", source=str(out_dir)) from None
    return files
