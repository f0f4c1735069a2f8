"""A subject-line test's arms as variants: the key suffix, the subject and the links.

A subject-line test (:mod:`newsletter.delivery.subjects`) sends subject A (the
edition's own) to half of a test share of the recipients and subject B to the
other half, then the winner's subject to the rest. Which of these a reader gets is
part of their outbox row's variant key, after the content key of
:class:`newsletter.content.render.Variant`:

* ``<content>|subject:A``, ``<content>|subject:B``: the test's arms. Their article
  links' click tokens name the arm, so clicks count per arm in every tracking mode.
* ``<content>|subject:wait``: the rest, before the decision (never rendered or sent).
* ``<content>|subject:rest-A``, ``<content>|subject:rest-B``: the rest once decided,
  with the winner's subject and the plain tokens (their clicks are not the test's).

The content is rendered (Jinja2, premailer) once per content key; an arm's copy only
swaps the subject and re-signs each article's token, by substitution.
"""

from __future__ import annotations

import dataclasses

from newsletter.content.models import Edition
from newsletter.content.render import RenderedVariant
from newsletter.content.tracking import click_token
from newsletter.core.config import Settings
from newsletter.core.errors import RenderError

__all__ = ["ARMS", "REST", "WAIT", "arm_copy", "arm_key", "split_key"]

#: the test's arms: A is the edition's own subject, B the one tested against it
ARMS = ("A", "B")
#: the rest's arm once decided, by winner
REST = {"A": "rest-A", "B": "rest-B"}
#: the rest's arm before the decision
WAIT = "wait"
_MARK = "|subject:"
_KNOWN = frozenset((*ARMS, *REST.values(), WAIT))


def split_key(key: str) -> tuple[str, str | None]:
    """``(content key, arm or None)`` of a stored variant key; :class:`ValueError` for an
    unknown arm."""
    content, marker, arm = key.partition(_MARK)
    if not marker:
        return key, None
    if arm not in _KNOWN:
        raise ValueError(f"not a variant key: {key!r}")
    return content, arm


def arm_key(content: str, arm: str) -> str:
    """The stored variant key of ``arm`` over the content key ``content``."""
    if arm not in _KNOWN:
        raise ValueError(f"not a subject-test arm: {arm!r}")
    return f"{content}{_MARK}{arm}"


def arm_copy(
    rendered: RenderedVariant, edition: Edition, settings: Settings, arm: str, subject_b: str
) -> RenderedVariant:
    """The message content ``arm`` gets from the rendered ``rendered``: subject B for
    ``B`` and ``rest-B`` (else the variant's own), and in the arms ``A`` and ``B``
    every tracked article link re-signed to name the arm.

    Raises :class:`RenderError` for the waiting arm (it is never sent) or when a
    tracked link is not where the render put it.
    """
    if arm == WAIT or arm not in _KNOWN:
        raise RenderError(f"edition {edition.id}: the arm {arm!r} is not sent")
    subject = subject_b if arm.endswith("B") else rendered.subject
    html, text = rendered.html, rendered.text
    if arm in ARMS and settings.track_clicks != "off":
        secret = settings.secret()
        urls = {a.id: str(a.url) for a in edition.articles()}
        for article_id in rendered.article_ids:
            url = urls[article_id]
            plain = f"/c/{click_token(secret, edition.id, article_id, url)}"
            if plain not in html:
                raise RenderError(f"edition {edition.id}: no tracked link for {article_id!r}")
            tagged = f"/c/{click_token(secret, edition.id, article_id, url, arm=arm)}"
            html, text = html.replace(plain, tagged), text.replace(plain, tagged)
    return dataclasses.replace(rendered, subject=subject, html=html, text=text)
