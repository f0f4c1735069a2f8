"""The newsletter's brand and the signup page's choices: the ``[brand]`` table and
``signup_sections`` of ``newsletter.toml``, parts of :class:`newsletter.core.config.Settings`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Brand", "SignupSection", "contrast_with_white"]

_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_with_white(colour: str) -> float:
    """The WCAG contrast ratio of white text on ``colour`` (``#rrggbb``)."""
    return 1.05 / (_luminance(colour) + 0.05)


class Brand(BaseModel):
    """The newsletter's look, shared by the email and the readers' pages (``[brand]``).

    ``colour`` is the masthead and button background (white text on it must reach
    4.5:1); ``accent`` marks labels and rules; ``font`` is a headline font stack
    that ends in a web-safe family.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None  # the newsletter's own name; default: "<site name> Briefing"
    logo_url: str | None = None
    logo_width: int = Field(default=160, ge=16, le=560)
    logo_height: int = Field(default=40, ge=8, le=200)
    logo_alt: str | None = None
    colour: str = "#14213d"
    accent: str = "#b3261e"
    font: str = 'Georgia, "Times New Roman", serif'
    footer_text: str = ""

    @field_validator("colour", "accent")
    @classmethod
    def _dark_enough(cls, value: str) -> str:
        if not _HEX_COLOUR.fullmatch(value):
            raise ValueError("must be a colour like #14213d")
        ratio = contrast_with_white(value)
        if ratio < 4.5:
            raise ValueError(f"white text on it has contrast {ratio:.1f}:1, under 4.5:1")
        return value.lower()

    @field_validator("logo_url")
    @classmethod
    def _logo_https(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("https://") or len(value) < 12):
            raise ValueError("must be an absolute https:// URL")
        return value

    @field_validator("font")
    @classmethod
    def _font_stack(cls, value: str) -> str:
        if any(c in value for c in ";{}<>\\"):
            raise ValueError("must be a CSS font stack such as 'Georgia, serif'")
        if value.rsplit(",", 1)[-1].strip().strip('"') not in _GENERIC_FONTS:
            raise ValueError("must end with a generic family (serif, sans-serif)")
        return value


_GENERIC_FONTS = frozenset({"serif", "sans-serif", "system-ui", "monospace"})


class SignupSection(BaseModel):
    """One choice on the signup page: a topic with its one-line description."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(min_length=1, max_length=40)
    label: str = Field(min_length=1, max_length=40)
    description: str = Field(min_length=1, max_length=120)
