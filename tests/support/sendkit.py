"""Helpers for the delivery tests: a database with articles, an edition and subscribers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy.engine import Engine

from newsletter.content.articles import upsert_articles
from newsletter.content.editions import build_edition
from newsletter.content.loaders import load_articles
from newsletter.core.config import Settings
from newsletter.delivery import outbox
from newsletter.delivery.outcomes import DeliveryStatus
from subscribers import store

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def address(n: int) -> str:
    """The address of test reader number ``n``."""
    return f"reader{n}@example.org"


def states(engine: Engine, edition_id: str) -> dict[DeliveryStatus, int]:
    """How many of the edition's outbox rows are in each state (states with none left out)."""
    with engine.connect() as conn:
        return {k: v for k, v in outbox.counts(conn, edition_id).items() if v}


def with_smtp(settings: Settings, url: str, **more: object) -> Settings:
    """The settings pointed at the SMTP server ``url``."""
    return settings.model_copy(update={"smtp_url": SecretStr(url), **more})


def populate(
    engine: Engine,
    settings: Settings,
    readers: int,
    *,
    topics: Callable[[int], Sequence[str]] | None = None,
    edition_topics: Sequence[str] = (),
) -> str:
    """Import the example articles, add ``readers`` confirmed readers, build an edition.

    Returns the edition id. Reader ``n`` is ``address(n)``, named "Reader n".
    """
    articles = load_articles(EXAMPLES / "articles")
    now = max(a.published_at for a in articles) + timedelta(hours=1)
    with engine.begin() as conn:
        upsert_articles(conn, articles, now)
        for n in range(readers):
            store.add(
                conn,
                address(n),
                secret=settings.secret(),
                name=f"Reader {n}",
                topics=topics(n) if topics else None,
                confirmed=True,
                now=now,
            )
        edition = build_edition(
            conn,
            now=now,
            since=now - timedelta(days=30),
            topics=edition_topics,
            site_name=settings.site_name,
        )
    return edition.id
