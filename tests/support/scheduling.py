"""Scheduling test helpers: a settable clock, an in-memory sender, articles and fixed times,
a schedule added at CREATED, a scheduler on the in-memory sender, a scheduler process's
environment."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from newsletter.content.models import Article
from newsletter.core.config import Settings
from newsletter.scheduling.claims import (
    RunOutcome,
)
from newsletter.scheduling.scheduler import (
    Scheduler,
    SendResult,
)
from newsletter.scheduling.store import add_schedule
from newsletter.scheduling.timing import Timing

__all__ = [
    "CREATED",
    "FIRST",
    "LONDON_7AM",
    "SECOND",
    "SECRET",
    "Clock",
    "MemorySender",
    "article",
    "cli_env",
    "memory_scheduler",
    "new_schedule",
]

LONDON_7AM = Timing(kind="cron", tz="Europe/London", cron="0 7 * * *")
CREATED = datetime.fromisoformat("2026-03-27T12:00Z")
FIRST = datetime.fromisoformat("2026-03-28T07:00Z")  # 07:00 GMT
SECOND = datetime.fromisoformat("2026-03-29T06:00Z")  # 07:00 BST, after the change
SECRET = b"test-secret-key-not-for-production"


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class MemorySender:
    """Records each send; the outcome can be scripted, and a send can wait for a stop."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.result = SendResult(RunOutcome.SENT, "3 sent")
        self.wait_for_stop = False
        self.started = asyncio.Event()

    async def __call__(self, edition_id: str, stop: asyncio.Event) -> SendResult:
        self.sent.append(edition_id)
        self.started.set()
        if self.wait_for_stop:
            await stop.wait()
            return SendResult(RunOutcome.RUNNING, "stopped with 2 queued")
        return self.result


def article(
    article_id: str, published: str, section: str = "UK", topics: list[str] | None = None
) -> Article:
    return Article(
        id=article_id,
        url=f"https://news.example.com/{article_id}",
        headline=f"Headline {article_id}",
        standfirst="A standfirst.",
        section=section,
        topics=topics or [],
        published_at=datetime.fromisoformat(published),
    )


def new_schedule(db: Engine, timing: Timing = LONDON_7AM, **kwargs: Any) -> int:
    """Add a schedule created at CREATED (``kwargs`` go to ``add_schedule``); its id."""
    with db.begin() as conn:
        return add_schedule(conn, timing=timing, now=CREATED, **kwargs).id


def memory_scheduler(
    settings: Settings,
    db: Engine,
    clock: Callable[[], datetime],
    sender: MemorySender,
    worker: str = "w:1",
) -> Scheduler:
    """A scheduler that sends through ``sender`` and never finds another worker gone."""
    return Scheduler(settings, db, send=sender, clock=clock, worker=worker, is_gone=lambda _: False)


def cli_env(workdir: Path, smtp_url: str, now: str) -> dict[str, str]:
    """This process's environment without its NEWSLETTER_ settings, plus those of a CLI run
    on ``workdir``'s test.db, sending to ``smtp_url``, with its clock fixed at ``now``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        {
            "NEWSLETTER_DATABASE_URL": f"sqlite:///{workdir / 'test.db'}",
            "NEWSLETTER_SECRET_KEY": SECRET.decode(),
            "NEWSLETTER_BASE_URL": "https://news.example.com/newsletter",
            "NEWSLETTER_SMTP_URL": smtp_url,
            "NEWSLETTER_NOW": now,
        }
    )
    return env
