"""The site's newsletters as the console shows and reads them.

Every newsletter control (a select, a column, a table) is shown only when the
site runs more than one newsletter: a one-newsletter site's console looks as it
did before newsletters existed. An id posted in a form is checked against the
configuration here, so a forged one is a 400 that names the field and changes nothing.
"""

from __future__ import annotations

from newsletter.core.config import Settings
from newsletter.core.newsletters import Newsletters

__all__ = ["chosen", "names", "names_if_several", "several"]


def several(settings: Settings) -> bool:
    """True when the site runs more than one newsletter (the console shows its controls)."""
    return len(settings.newsletter_list) > 1


def names(settings: Settings) -> dict[str, str]:
    """Each configured newsletter's name by id, in the configured order."""
    return {n.id: n.name for n in settings.newsletter_list}


def names_if_several(settings: Settings) -> dict[str, str]:
    """:func:`names` when the site runs more than one newsletter; empty otherwise, so a
    page that shows a control or column only for a non-empty mapping hides it."""
    return names(settings) if several(settings) else {}


def chosen(settings: Settings, value: str, *, field: str = "newsletter") -> str:
    """The id a form posted (empty: the default newsletter's), checked against the
    configuration; an unknown one raises :class:`UnknownNewsletterError` (a 400)."""
    configured: Newsletters = settings.newsletter_list
    if not value.strip():
        return configured.default.id
    return configured.get(value.strip()[:100], field=field).id
