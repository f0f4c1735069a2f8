"""The subscriber list's queries walk the index their order needs (SQLite's plan).

A plan that sorts (``USE TEMP B-TREE``) reads every matching row before the first
page: at a million people that is seconds, so these fail before bench/console.py does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.dialects import sqlite

from newsletter.database import open_database
from newsletter.web.admin.listing import ListQuery, page_query
from subscribers.states import SubscriberStatus

CONFIRMED = SubscriberStatus.CONFIRMED


def _plan(tmp_path: Path, query: ListQuery) -> str:
    engine = open_database(f"sqlite:///{tmp_path / 'plan.db'}")
    compiled = page_query(query, 50).compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
    )
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
    engine.dispose()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (ListQuery(q="maria.", status=CONFIRMED), "email_key"),
        (ListQuery(q="maria.", status=CONFIRMED, newsletter="daily"), "email_key"),
        (ListQuery(q="grace", by="name", status=CONFIRMED), "name_lower"),
    ],
)
def test_a_prefix_with_a_status_walks_the_prefix_index_without_sorting(
    tmp_path: Path, query: ListQuery, index: str
) -> None:
    plan = _plan(tmp_path, query)
    assert "TEMP B-TREE" not in plan, plan
    first = plan.splitlines()[0]
    assert "subscribers" in first, plan
    assert index in first, plan
