"""Fixtures of the scheduling tests: the settings' database, and a way to store articles."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine

from newsletter.content.articles import upsert_articles
from newsletter.content.models import Article
from newsletter.core.config import Settings
from newsletter.database import open_database
from tests.support.scheduling import CREATED


@pytest.fixture
def db(settings: Settings) -> Engine:
    """The migrated database the ``settings`` fixture names."""
    return open_database(settings.database_url)


@pytest.fixture
def store(db: Engine) -> Callable[..., None]:
    """Store articles (imported at CREATED)."""

    def put(*articles: Article) -> None:
        with db.begin() as conn:
            upsert_articles(conn, articles, CREATED)

    return put
