"""Small text rules shared by every layer: one-line messages, counts, header-safe values."""

from __future__ import annotations

from newsletter.core.errors import HeaderInjectionError

__all__ = ["has_line_break", "one_line", "plural", "single_line"]


def one_line(text: str) -> str:
    """``text`` with every run of white space (line breaks included) folded to one space."""
    return " ".join(text.split())


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` and ``noun``, singular for exactly one: "1 edition", "3 editions", "2 stories"."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_form or noun + 's'}"


def has_line_break(value: str) -> bool:
    """True when ``value`` holds a CR or LF: what a header value (or a one-line field) must not."""
    return "\r" in value or "\n" in value


def single_line(value: str, field: str, what: str = "a header value") -> str:
    """``value`` unchanged; :class:`HeaderInjectionError` naming ``field`` if it holds CR or LF."""
    if has_line_break(value):
        raise HeaderInjectionError(f"a line break is not allowed in {what}", field=field)
    return value
