"""A fixed edition on a schedule: the library's rules, whoever calls it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine

from newsletter.content.editions import build_edition, get_edition
from newsletter.content.models import EditionStatus
from newsletter.core.errors import ScheduleError
from newsletter.scheduling.store import (
    set_schedule_status,
)
from newsletter.scheduling.timing import Timing
from tests.support.scheduling import (
    CREATED,
    FIRST,
    LONDON_7AM,
    article,
    new_schedule,
)


def test_the_library_refuses_an_edition_on_a_recurring_schedule(
    db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-27T10:00Z"))
    with db.begin() as conn:
        fixed = build_edition(conn, now=CREATED, site_name="News").id
    with pytest.raises(ScheduleError, match="sent once") as caught:
        new_schedule(db, LONDON_7AM, edition_id=fixed)
    assert caught.value.field == "edition"  # a parameter, not a CLI flag


async def test_cancelling_in_the_library_puts_the_edition_back_to_draft(
    db: Engine, store: Callable[..., None]
) -> None:
    store(article("a", "2026-03-27T10:00Z"))
    with db.begin() as conn:
        fixed = build_edition(conn, now=CREATED, site_name="News").id
    schedule_id = new_schedule(
        db, Timing(kind="once", tz="Europe/London", run_at=FIRST), edition_id=fixed
    )
    with db.begin() as conn:
        assert get_edition(conn, fixed).status is EditionStatus.SCHEDULED
        set_schedule_status(conn, schedule_id, "cancel", CREATED)
        assert get_edition(conn, fixed).status is EditionStatus.DRAFT
