"""The console's subscriber list at a million rows: page and search time against the query's own.

Generates PEOPLE subscribers (1,000,000 by default; ``--people N``) in a fresh
SQLite file, signs in to the console in process, and times, for each case, the
whole request (routing, session check, query, template) next to the database's
own time for the same page (:func:`newsletter.web.admin.listing.list_page`,
the SQL the handler runs). Target (issue 14): p95 of every case under 150 ms.
Everyone receives the newsletter ``daily``; one person in ten also ``breaking``
(the newsletter filter's cases). Prints p50/p95 of both, per case, the SQLite
plan of the newsletter filter's page, the machine and its load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.machine import machine
from newsletter.core.config import load_settings
from newsletter.core.newsletters import Newsletter
from newsletter.database import open_database
from newsletter.web.admin.accounts import add_user
from newsletter.web.admin.listing import ListQuery, list_page, page_query
from newsletter.web.admin.roles import Role
from newsletter.web.app import create_app
from subscribers.states import SubscriberStatus

RUNS = 60
TARGET_MS = 150.0
PASSWORD = "quiet-harbour-lantern-7"
FIRST = [
    "maria", "james", "olivia", "noah", "amelia", "oliver", "isla", "george", "ava", "harry",
    "mia", "jack", "ivy", "leo", "freya", "arthur", "lily", "oscar", "grace", "charlie",
    "sofia", "theo", "emily", "henry", "ella", "alfie", "rosie", "archie", "poppy", "finley",
]  # fmt: skip
LAST = [
    "smith", "jones", "taylor", "brown", "williams", "wilson", "johnson", "davies", "patel",
    "wright", "robinson", "wood", "thompson", "evans", "walker", "white", "roberts", "green",
    "hall", "khan", "lewis", "clarke", "jackson", "harris", "martin", "cooper", "king", "lee",
]  # fmt: skip
DOMAINS = ["example.com", "example.org", "mail.example.net", "post.example.co.uk"]


def generate(url: str, people: int) -> None:
    """``people`` subscribers, mostly confirmed, written straight into the table."""
    engine = open_database(url)
    rng = random.Random(14)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    statuses = [SubscriberStatus.CONFIRMED.value] * 8 + ["unsubscribed", "pending"]
    sql = (
        "INSERT INTO subscribers (email, email_key, name, status, topics, attributes, "
        "created_at, updated_at, confirmed_at) VALUES (?, ?, ?, ?, ?, '{}', ?, ?, ?)"
    )
    batch: list[tuple[object, ...]] = []
    with engine.begin() as conn:
        for n in range(people):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = f"{first}.{last}{n}@{rng.choice(DOMAINS)}"
            when = (start + timedelta(seconds=n * 30)).strftime("%Y-%m-%d %H:%M:%S.%f")
            status = rng.choice(statuses)
            batch.append(
                (
                    email,
                    email,
                    f"{first.title()} {last.title()}",
                    status,
                    rng.choice(["[]", '["politics"]', '["uk", "crime"]']),
                    when,
                    when,
                    when if status == "confirmed" else None,
                )
            )
            if len(batch) == 50_000:
                conn.exec_driver_sql(sql, batch)
                batch.clear()
        if batch:
            conn.exec_driver_sql(sql, batch)
        for newsletter, every in (("daily", 1), ("breaking", 10)):
            conn.exec_driver_sql(
                "INSERT INTO subscriptions (subscriber_id, newsletter_id, status, subscribed_at) "
                f"SELECT id, '{newsletter}', 'subscribed', created_at FROM subscribers "
                f"WHERE id % {every} = 0"
            )
        add_user(conn, "bench@example.com", Role.VIEWER, PASSWORD)
    engine.dispose()


def percentile(times: list[float], share: float) -> float:
    """The ``share`` percentile of ``times``, in milliseconds."""
    ordered = sorted(times)
    return 1000 * ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed(call: Callable[[], object]) -> list[float]:
    """Wall times of RUNS calls of ``call`` after two warm-up calls."""
    call()
    call()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


async def measure(url: str, people: int) -> list[tuple[str, list[float], list[float]]]:
    """For each case, the request times and the database's times for the same page."""
    settings = load_settings(
        Path.cwd(),
        database_url=url,
        secret_key="bench-secret-key-not-for-production-0123",
        base_url="http://testserver",
        newsletters=[
            Newsletter(id="daily", name="Daily"),
            Newsletter(id="breaking", name="Breaking"),
        ],
    )
    engine = open_database(url)
    app = create_app(settings, engine)
    middle = str(people // 2)
    cases = [
        ("first page, newest first", {}, ListQuery()),
        ("a page in the middle (keyset)", {"after": middle}, ListQuery(after=middle)),
        ("status filter, middle page", {"status": "confirmed", "after": middle},
         ListQuery(status=SubscriberStatus.CONFIRMED, after=middle)),
        ("address prefix 'oliver.k'", {"q": "oliver.k"}, ListQuery(q="oliver.k")),
        ("address prefix, next page", {"q": "maria.", "after": "maria.smith"},
         ListQuery(q="maria.", after="maria.smith")),
        ("name prefix 'grace wi'", {"q": "grace wi", "by": "name"},
         ListQuery(q="grace wi", by="name")),
        ("newsletter 'breaking', first page", {"newsletter": "breaking"},
         ListQuery(newsletter="breaking")),
        ("newsletter 'breaking', middle page", {"newsletter": "breaking", "after": middle},
         ListQuery(newsletter="breaking", after=middle)),
        ("newsletter + status + prefix", {"newsletter": "breaking", "status": "confirmed",
         "q": "maria."}, ListQuery(newsletter="breaking", status=SubscriberStatus.CONFIRMED,
         q="maria.")),
    ]  # fmt: skip
    results = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/admin/login")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        signed = await client.post(
            "/admin/login",
            data={"csrf_token": token, "email": "bench@example.com", "password": PASSWORD},
        )
        assert signed.status_code == 303, signed.status_code
        for label, params, query in cases:
            web: list[float] = []
            await client.get("/admin/subscribers", params=params)
            for _ in range(RUNS):
                started = time.perf_counter()
                response = await client.get("/admin/subscribers", params=params)
                web.append(time.perf_counter() - started)
                assert response.status_code == 200, response.status_code
                assert "Nobody matches" not in response.text, label

            def database(query: ListQuery = query) -> None:
                with engine.connect() as conn:
                    list_page(conn, query)
                    conn.rollback()

            results.append((label, web, timed(database)))
    with engine.connect() as conn:
        plan = page_query(ListQuery(newsletter="breaking", after=middle), 51)
        sql = str(plan.compile(conn, compile_kwargs={"literal_binds": True}))
        print("plan of 'newsletter breaking, middle page' (SQLite EXPLAIN QUERY PLAN):")
        for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql):
            print("   ", row[-1])
    return results


def main() -> None:
    """Generate, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{os.path.join(folder, 'console.db')}"
        started = time.perf_counter()
        generate(url, args.people)
        print(f"generated {args.people:,} subscribers in {time.perf_counter() - started:.1f} s")
        results = asyncio.run(measure(url, args.people))
    print(f"{'case':34} {'page p50':>9} {'page p95':>9} {'query p50':>10} {'query p95':>10}")
    worst = 0.0
    for label, web, db in results:
        p95 = percentile(web, 0.95)
        worst = max(worst, p95)
        print(
            f"{label:34} {percentile(web, 0.5):7.1f}ms {p95:7.1f}ms "
            f"{percentile(db, 0.5):8.1f}ms {percentile(db, 0.95):8.1f}ms"
        )
    verdict = "under" if worst < TARGET_MS else "OVER"
    print(f"worst page p95 {worst:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    print("load average at the end: " + " ".join(f"{n:.2f}" for n in os.getloadavg()))


if __name__ == "__main__":
    main()
