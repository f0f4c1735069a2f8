"""Where the templates live, and the Jinja2 environment that renders the emails.

An installed wheel carries them at ``newsletter/_templates`` (pyproject
force-includes ``templates/`` there); a source checkout uses the repository's
``templates/`` folder. The environment autoescapes HTML (never ``.txt``) and uses
``StrictUndefined`` so a missing variable fails loudly instead of leaving a hole.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

__all__ = ["email_environment", "templates_dir"]

_PACKAGE = Path(__file__).resolve().parent.parent  # the newsletter package


def templates_dir() -> Path:
    """The ``templates/`` folder: the installed copy if present, else the checkout's."""
    packaged = _PACKAGE / "_templates"
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / "templates"


def email_environment(folder: Path | None = None) -> jinja2.Environment:
    """A fresh environment over ``folder`` (default: the templates folder).

    ``auto_reload`` stays on so an edited template shows on the next render.
    """
    root = folder if folder is not None else templates_dir()
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([root / "email", root / "web"]),
        # HTML is escaped; the text part is plain text, where "&amp;" would show as is
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "xml"), default_for_string=True, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,
    )
