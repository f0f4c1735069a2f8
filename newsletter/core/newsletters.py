"""The newsletters (lists) a site runs: ``[[newsletters]]`` in ``newsletter.toml``.

A news site may run several newsletters (a daily briefing, breaking-news alerts,
a weekly); readers choose which they receive. Each is configured by an ``id`` (a
slug: lower-case letters, digits and ``-``, at most 40), a ``name``, a one-line
``description``, and optionally a default schedule (``cron`` and ``timezone``,
used by ``schedule add --newsletter ID`` when no time is given) and its own
``list_id``. One entry may say ``default = true``; else the first is the default.

With none configured there is exactly one newsletter, :data:`DEFAULT_NEWSLETTER_ID`
(``daily``), named after the site, and every message keeps the List-Id it had
before newsletters existed. Migration ``0011_newsletters`` puts every existing
subscriber, edition and schedule in ``daily``: a site that adds ``[[newsletters]]``
keeps ``id = "daily"`` for the newsletter its readers signed up for (any name).

Ids never contain a ``.``: a link token carries one as a field of its own.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from newsletter.core.errors import InputError

__all__ = [
    "DEFAULT_NEWSLETTER_ID",
    "NEWSLETTER_ID_RE",
    "Newsletter",
    "Newsletters",
    "UnknownNewsletterError",
]

#: the one newsletter of a site that configures none, and where migrated data goes
DEFAULT_NEWSLETTER_ID = "daily"
NEWSLETTER_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
_LIST_ID_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,200}[A-Za-z0-9])?")


class UnknownNewsletterError(InputError):
    """An id that names no configured newsletter (the message suggests a close one)."""


class Newsletter(BaseModel):
    """One configured newsletter (an entry of ``[[newsletters]]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=200)
    cron: str | None = None  # the default schedule: `schedule add --newsletter ID`
    timezone: str | None = None
    default: bool = False
    list_id: str | None = None  # else "<id>.<NEWSLETTER_LIST_ID or the From domain>"

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not NEWSLETTER_ID_RE.fullmatch(value):
            raise ValueError(
                "must be a slug: lower-case letters, digits and '-', 1 to 40 characters "
                "(e.g. 'daily' or 'breaking-news')"
            )
        return value

    @field_validator("name", "description")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\t\0") or (value and not value.strip()):
            raise ValueError("must be one line of text")
        return value.strip()

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, value: str | None) -> str | None:
        if value is not None and not _LIST_ID_RE.fullmatch(value):
            raise ValueError("must be a dot-atom such as 'daily.news.example.com'")
        return value

    @field_validator("cron")
    @classmethod
    def _cron_shape(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError("must be a cron expression of five fields, e.g. '0 7 * * *'")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from newsletter.core.times import zone_info

        try:
            zone_info(value, error=InputError)
        except InputError:
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/London") from None
        return value


class Newsletters(Sequence[Newsletter]):
    """The site's newsletters in the order configured; never empty; one is the default."""

    def __init__(self, entries: Iterable[Newsletter], *, implicit: bool = False) -> None:
        self._entries = tuple(entries)
        if not self._entries:
            raise ValueError("a site has at least one newsletter")
        self._by_id = {n.id: n for n in self._entries}
        self.default = next((n for n in self._entries if n.default), self._entries[0])
        #: True when newsletter.toml configures none (the site's one newsletter)
        self.implicit = implicit

    def __getitem__(self, index: int) -> Newsletter:  # type: ignore[override]
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Newsletter]:
        return iter(self._entries)

    def __contains__(self, item: object) -> bool:
        return item in self._by_id or item in self._entries

    @property
    def ids(self) -> list[str]:
        """Every id, in the configured order."""
        return [n.id for n in self._entries]

    def get(self, newsletter_id: str, *, field: str = "newsletter") -> Newsletter:
        """The newsletter ``newsletter_id``; else :class:`UnknownNewsletterError`, with a hint."""
        found = self._by_id.get(newsletter_id)
        if found is not None:
            return found
        shown = repr(newsletter_id[:60])
        close = difflib.get_close_matches(newsletter_id.strip().lower(), self.ids, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownNewsletterError(
            f"no newsletter {shown}{hint} (configured: {', '.join(self.ids)})", field=field
        )

    def resolve(self, ids: Iterable[str] | None, *, field: str = "newsletter") -> list[str]:
        """The ids given (checked, duplicates dropped, in order), or the default's when none."""
        chosen = list(dict.fromkeys(i.strip() for i in ids or () if i.strip()))
        for newsletter_id in chosen:
            self.get(newsletter_id, field=field)
        return chosen or [self.default.id]
