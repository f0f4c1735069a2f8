"""Inbound fixtures: a real Maildir, and the working folder's database."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from newsletter.database import open_database


@pytest.fixture
def work_engine(settings: Settings) -> Iterator[Engine]:
    """The working folder's SQLite database: the one ``run_cli`` uses too."""
    engine = open_database(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def box(workdir: Path) -> mailbox.Maildir:
    """An empty Maildir in the working folder, as the MTA would fill it."""
    return mailbox.Maildir(workdir / "returns", create=True)
