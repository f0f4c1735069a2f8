"""A cron expression read aloud: ``0 7 * * 1-5`` is "at 07:00, Monday to Friday"."""

from __future__ import annotations

__all__ = ["describe_cron"]

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = [
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _word(number: str, names: list[str] | None) -> str:
    return names[int(number)] if names else number


def _list(field: str, names: list[str] | None = None) -> str | None:
    """``1-5`` -> "Monday to Friday", ``1,3`` -> "Monday and Wednesday"; None if not simple."""
    parts = []
    for item in field.split(","):
        low, dash, high = item.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            return None
        if int(low) >= len(names or range(60)) or (dash and int(high) >= len(names or range(60))):
            return None
        parts.append(f"{_word(low, names)} to {_word(high, names)}" if dash else _word(low, names))
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_cron(expr: str) -> str:
    """Plain words for a valid five-field cron expression (the expression itself if unusual)."""
    text = _ALIASES.get(expr.strip().lower(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        return text
    minute, hour, day, month, weekday = fields
    if minute.isdigit() and hour.isdigit():
        when = f"at {int(hour):02d}:{int(minute):02d}"
    elif minute.isdigit() and hour == "*":
        when = f"at {int(minute)} minutes past every hour"
    elif minute.startswith("*/") and minute[2:].isdigit() and hour == "*":
        when = f"every {int(minute[2:])} minutes"
    elif minute.isdigit() and (hours := _list(hour)) is not None:
        when = f"at {int(minute):02d} past {hours} o'clock"
    else:
        return f"cron {text}"
    parts = [when]
    if weekday != "*":
        days = _list(weekday, _DAYS)
        if days is None:
            return f"cron {text}"
        parts.append(f"on {days}")
    if day != "*":
        days_of_month = _list(day)
        if days_of_month is None:
            return f"cron {text}"
        parts.append(f"on day {days_of_month} of the month")
    if month != "*":
        months = _list(month, _MONTHS)
        if months is None:
            return f"cron {text}"
        parts.append(f"in {months}")
    if weekday == "*" and day == "*":
        parts.append("every day")
    return ", ".join(parts)
