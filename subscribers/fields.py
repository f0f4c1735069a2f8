"""Checks and normal forms for a subscriber's fields other than the address.

Each function takes what a person typed (a form, a CSV cell, a flag) and returns
the stored form, or raises :class:`SubscriberInputError` naming the field.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterable

from newsletter.core.errors import SubscriberInputError
from newsletter.core.topics import normalise_topic

__all__ = [
    "MAX_ATTRIBUTE",
    "MAX_NAME",
    "clean_attribute",
    "clean_name",
    "clean_timezone",
    "clean_topics",
    "split_topics",
]

MAX_NAME = 200
MAX_ATTRIBUTE = 2000
# names end up in To: headers and greetings: no line breaks or other controls
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# invisible direction controls (embeddings, overrides, isolates, marks) turn
# "Ann\u202egnp.exe" into a different-looking name in a mail client: dropped
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# an RFC 2047 encoded word: a mail client would decode it into a name nobody typed
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")
_TOPIC_SEPARATORS = re.compile(r"[;|]")


def clean_name(value: str | None) -> str | None:
    """A display name, stripped; None when blank. No control characters, at most 200 characters.

    Bidirectional controls (U+202E and the like) are removed; a name that holds
    an RFC 2047 encoded word (``=?utf-8?b?...?=``) is refused.
    """
    if value is None:
        return None
    value = _BIDI.sub("", value).strip()
    if not value:
        return None
    if len(value) > MAX_NAME:
        raise SubscriberInputError(
            f"is {len(value)} characters long (at most {MAX_NAME})", field="name"
        )
    if not value.isprintable() and _CONTROL.search(value):
        raise SubscriberInputError("contains a line break or control character", field="name")
    if _ENCODED_WORD.search(value):
        raise SubscriberInputError("looks like an encoded mail header (=?...?=)", field="name")
    return value


def clean_topics(values: Iterable[str]) -> frozenset[str]:
    """Topic slugs folded by :func:`newsletter.core.topics.normalise_topic`; empty = everything."""
    folded = set()
    for value in values:
        if not value.strip():
            continue
        slug = normalise_topic(value)
        if not slug:
            raise SubscriberInputError(f"{value!r} is not a topic", field="topics")
        folded.add(slug)
    return frozenset(folded)


@functools.lru_cache(maxsize=4096)  # an import repeats the same few topic cells
def split_topics(cell: str) -> frozenset[str]:
    """The topics of a CSV cell, separated by ``;`` or ``|``."""
    return clean_topics(_TOPIC_SEPARATORS.split(cell)) if cell else frozenset()


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def clean_timezone(value: str | None) -> str | None:
    """An IANA zone name such as ``Europe/London``; None when blank."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value not in _zones():
        raise SubscriberInputError(f"{value!r} is not an IANA time zone", field="timezone")
    return value


def clean_attribute(name: str, value: str) -> str:
    """A custom attribute's value, at most 2000 characters."""
    if len(value) > MAX_ATTRIBUTE:
        raise SubscriberInputError(
            f"is {len(value)} characters long (at most {MAX_ATTRIBUTE})", field=name
        )
    return value
