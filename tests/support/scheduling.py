"""Scheduling test helpers: a settable clock, an in-memory sender, articles and fixed times."""

from __future__ import annotations

import asyncio
from datetime import datetime

from newsletter.content.models import Article
from newsletter.scheduling.claims import (
    RunOutcome,
)
from newsletter.scheduling.scheduler import (
    SendResult,
)
from newsletter.scheduling.timing import Timing

__all__ = ["CREATED", "FIRST", "LONDON_7AM", "SECOND", "SECRET", "Clock", "MemorySender", "article"]

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
