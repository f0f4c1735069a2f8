"""Readable ``--help``: plain metavars (``EDITION``, ``--at TEXT``), never ``<str>``.

Typer writes each parameter's Python type after its name (``EDITION <str>``,
``--tz <str>``, ``PATH_OR_URL... <list[str]>``). Our arguments and most options
carry a metavar that already says what to give; the rest get a word for their
type. Installed once, by the root command, before any help is printed.
"""

from __future__ import annotations

from typing import Any

import typer.core

__all__ = ["install", "readable_type"]

_WORDS = {"str": "TEXT", "int": "N", "float": "NUMBER", "bool": "", "Path": "PATH"}


def readable_type(parameter: Any, ctx: Any) -> str | None:
    """The word shown after an option without a metavar: TEXT, N, NUMBER, PATH or a|b|c."""
    metavar: str | None = getattr(parameter, "metavar", None)
    if metavar is not None:
        return metavar
    try:
        shown = str(typer.core.TyperOption.display_type(parameter, ctx))
    except Exception:
        return None
    inner = shown.strip("<>")
    if "|" in inner:
        return inner  # choices, as they are typed
    word = _WORDS.get(inner.removeprefix("list[").removesuffix("]"), "VALUE")
    return word or None


def install() -> None:
    """Use plain metavars in every command's help (idempotent)."""
    argument = getattr(typer.core, "TyperArgument", None)
    option = getattr(typer.core, "TyperOption", None)
    if argument is not None and hasattr(argument, "display_type_rich"):
        argument.display_type_rich = lambda self, ctx: None
    if option is not None and hasattr(option, "display_type_rich"):
        option.display_type_rich = readable_type
