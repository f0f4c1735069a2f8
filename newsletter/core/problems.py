"""Settings errors in plain sentences: pydantic's wording turned into one line per problem.

Kept apart from :mod:`newsletter.core.config` (which builds the settings) so that
each module holds one job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe_problem"]

# Pydantic's wording, in plain sentences: what the setting must be.
_PLAIN = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "greater_than": "must be more than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be one of {expected}",
    "time_delta_parsing": "must be a duration such as 2h or PT2H",
    "string_type": "must be text",
    "missing": "is required",
}


def describe_problem(error: Mapping[str, Any]) -> str:
    """One plain line for a pydantic settings error, naming the setting as a user writes it.

    ``NEWSLETTER_SEND_CONCURRENCY must be a whole number (got 'abc')``; an unknown
    key in newsletter.toml is named as such. Never echoes a secret's value.
    """
    loc = [str(part) for part in error.get("loc", ())]
    name = loc[0] if loc else "settings"
    if name == "newsletters":
        return _newsletter_problem(error, loc)
    setting = f"NEWSLETTER_{name.upper()}"
    kind = str(error.get("type", ""))
    if kind == "extra_forbidden":
        return f"newsletter.toml: unknown setting {name!r} (see the README's settings table)"
    template = _PLAIN.get(kind)
    if template is None:
        message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        return f"{setting}: {message}"
    context = {k: v for k, v in (error.get("ctx") or {}).items()}
    text = template.format(**context) if context else template.split(" {")[0]
    value = error.get("input")
    secret = "secret" in name or "smtp_url" in name
    if isinstance(value, str | int | float) and not secret and len(str(value)) < 80:
        text += f" (got {value!r})"
    return f"{setting} {text}"


def _newsletter_problem(error: Mapping[str, Any], loc: list[str]) -> str:
    """``newsletter.toml: [[newsletters]] entry 2, field 'id': must be a slug ...``."""
    kind = str(error.get("type", ""))
    where = "newsletter.toml: [[newsletters]]"
    if len(loc) >= 2 and loc[1].isdigit():
        where += f" entry {int(loc[1]) + 1}"
    field = loc[2] if len(loc) >= 3 else None
    if kind == "extra_forbidden" and field:
        known = "id, name, description, cron, timezone, default, list_id"
        return f"{where}: unknown field {field!r} (fields: {known})"
    if kind == "missing" and field:
        return f"{where}: field {field!r} is required"
    template = _PLAIN.get(kind)
    if template is not None:
        context = dict(error.get("ctx") or {})
        text = template.format(**context) if context else template.split(" {")[0]
    else:
        text = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    value = error.get("input")
    if field and isinstance(value, str | int | float) and len(str(value)) < 80:
        text += f" (got {value!r})"
    return f"{where}, field {field!r}: {text}" if field else f"{where}: {text}"
