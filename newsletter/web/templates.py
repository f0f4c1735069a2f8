"""The Jinja2 environment of the web pages (``templates/web``).

Autoescape is on for every template and ``StrictUndefined`` turns a missing
variable into an error in a test rather than an empty hole in a reader's page.
"""

from __future__ import annotations

import functools

import jinja2

from newsletter.content.templates import templates_dir

__all__ = ["web_environment"]


@functools.cache
def web_environment() -> jinja2.Environment:
    """The environment over ``templates/web``: every template autoescaped."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir() / "web"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
