"""What every command shares: the settings, the database, consoles and error lines."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from newsletter.core.config import Settings, load_settings
from newsletter.core.text import plural
from newsletter.database import open_database

__all__ = ["ArticleTopics", "err", "get_engine", "get_settings", "out", "plural"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# the same filter in `articles list` and `edition build`: one definition keeps their help alike
ArticleTopics = Annotated[
    list[str] | None,
    typer.Option(
        "--topic",
        metavar="TOPIC",
        help="Only articles with this topic or section (repeatable).",
    ),
]


@functools.cache
def get_settings() -> Settings:
    """The settings for this process, built once from the environment and ``newsletter.toml``."""
    return load_settings(Path.cwd())


@functools.cache
def get_engine() -> Engine:
    """The migrated database engine named by the settings."""
    return open_database(get_settings().database_url)
