"""``--since`` values: a span back from now (``90m``, ``24h``, ``7d``, ``2w``) or a date/time.

A date or time without a zone is read in the newsroom's time zone, as an
editor would mean it; the result is always an aware datetime. Where a time
must carry its own offset (a CSV's consent time, an injected clock),
:func:`parse_aware` reads it.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.core.errors import ConfigError, InputError

__all__ = ["parse_aware", "parse_since", "parse_span", "zone_info"]

_SPAN = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def zone_info(
    name: str, *, field: str | None = None, error: type[ConfigError | InputError] = ConfigError
) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/London``).

    Raises ``error`` (a setting's :class:`ConfigError` unless the caller names an
    input error such as :class:`ScheduleError`) naming ``field`` when it does not exist.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"unknown time zone {name!r} (use an IANA name such as Europe/London)"
        if issubclass(error, InputError):
            raise error(message, field=field) from None
        raise error(f"{field}: {message}" if field else message) from None


def parse_span(text: str) -> timedelta | None:
    """``"24h"`` -> 24 hours, ``"1d12h"`` -> 36 hours; ``None`` when ``text`` is not a span."""
    compact = text.strip().lower()
    if not compact or _SPAN.sub("", compact).strip():
        return None
    total = timedelta()
    for amount, unit in _SPAN.findall(compact):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return total


def parse_aware(text: str) -> datetime | None:
    """``text`` as an ISO 8601 date-time with a UTC offset; ``None`` when it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def parse_since(text: str, now: datetime, timezone: str = "Europe/London") -> datetime:
    """The moment ``text`` names: ``now`` minus a span, or an ISO date/time (local if naive).

    Raises :class:`InputError` naming ``--since`` for anything else.
    """
    span = parse_span(text)
    if span is not None:
        if span <= timedelta():
            raise InputError("the span must be longer than zero", field="--since")
        return now - span
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{text!r} is neither a span (90m, 24h, 7d) nor an ISO date/time", field="--since"
        ) from None
    if moment.tzinfo is None:
        zone = zone_info(timezone)
        if len(text.strip()) == 10:  # a bare date means from its midnight
            moment = datetime.combine(moment.date(), time(), zone)
        else:
            moment = moment.replace(tzinfo=zone)
    return moment
