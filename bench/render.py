"""Benchmark: one edition for 10,000 recipients across 5 topic variants.

Run alone: ``python bench/render.py [--recipients N]``. Prints, per variant, the
Jinja2 render and the premailer inlining cost (paid once per variant) and the cost
of building the MIME template; then the per-recipient cost of personalising
(substitution only) and of the whole per-recipient path a send takes (variant
lookup, three signed links, a Message-ID, personalise); half the readers have a
``first_name`` (a CSV's First Name column), which the greeting uses. Target: under 100 µs per
recipient, with premailer never on the per-recipient path (counted, must be 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from machine import machine  # noqa: E402  (bench/machine.py)

import newsletter.content.render as render_module  # noqa: E402
from newsletter.content.editions import (  # noqa: E402
    choose_top_story,
    order_sections,
)
from newsletter.content.lines import derive_preheader, derive_subject  # noqa: E402
from newsletter.content.loaders import load_many  # noqa: E402
from newsletter.content.message import MessageTemplate, Personal, new_message_id  # noqa: E402
from newsletter.content.models import Edition  # noqa: E402
from newsletter.content.render import Renderer, Variant  # noqa: E402
from newsletter.core.config import Settings, load_settings  # noqa: E402
from subscribers import links  # noqa: E402

FIRST = ["Amelia", "Oliver", "Priya", "Tom", "Siobhán", "Zoë", "James", "Grace", "Fatima",
         "Daniel", "Chloe", "Mohammed", "Isla", "Noah", "Aoife", "Ravi"]  # fmt: skip
LAST = ["Hughes", "Bennett", "Sharma", "O'Neill", "Walsh", "Müller", "Okafor", "Lee",
        "Begum", "Evans", "Khan", "Jones", "Smith", "Murphy", "Menon", "Reilly"]  # fmt: skip
DOMAINS = ["example.com", "example.co.uk", "example.org", "mail.example.net", "bücher.example"]


def example_edition() -> Edition:
    """The example articles as one daily edition, built in memory as `edition build` would."""
    articles = load_many([ROOT / "examples" / "articles"])
    top = choose_top_story(articles)
    assert top is not None
    rest = [a for a in articles if a.id != top.id]
    sections = order_sections(rest)
    from datetime import UTC, datetime

    return Edition(
        id="bench-daily",
        title="The Morning Briefing — Thursday 26 November 2026",
        subject=derive_subject(top, len(rest)),
        preheader=derive_preheader([top, *(a for s in sections for a in s.articles)]),
        intro=f"{len(articles)} stories from Britain's News Portal since yesterday morning.",
        top_story=top,
        sections=sections,
        created_at=datetime(2026, 11, 26, 6, 30, tzinfo=UTC),
    )


def variant_topics(edition: Edition) -> list[frozenset[str] | None]:
    """Five variants: everything, and four single-section choices present in the edition."""
    sections = sorted({s for a in edition.articles() for s in a.topic_set})
    picks = [frozenset({t}) for t in sections if t in {"uk", "crime", "politics", "business"}]
    while len(picks) < 4:
        picks.append(frozenset({sections[len(picks)]}))
    return [None, *picks[:4]]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    args = parser.parse_args()
    count = args.recipients

    settings = load_settings(
        Path(tempfile.mkdtemp()),
        secret_key="bench-secret-key-not-for-production-0123456789",
        base_url="https://news.example.com/newsletter",
    )
    edition = example_edition()
    choices = variant_topics(edition)
    print(f"machine: {machine()}")
    articles = len(edition.articles())
    print(f"edition: {articles} articles, {len(choices)} variants, {count:,} recipients")

    inline_seconds: list[float] = []
    real_inline = render_module.inline_css

    def timed_inline(document: str) -> str:
        seconds, result = timed(lambda: real_inline(document))
        inline_seconds.append(seconds)
        return str(result)

    render_module.inline_css = timed_inline  # type: ignore[assignment]
    renderer = Renderer(settings)
    templates: dict[str, MessageTemplate] = {}
    print("\nper variant (paid once each):")
    print(f"  {'variant':<22}{'render+inline':>14}{'premailer':>11}{'MIME':>9}{'HTML':>10}")
    for topics in choices:
        render_s, variant = timed(lambda t=topics: renderer.render(edition, t))
        mime_s, template = timed(
            lambda v=variant: MessageTemplate.from_variant(v, settings, edition)
        )
        assert isinstance(template, MessageTemplate)
        templates[template.variant_key] = template
        html_kb = len(variant.html.encode()) / 1024  # type: ignore[attr-defined]
        print(
            f"  {template.variant_key:<22}{render_s * 1e3:>11.1f} ms"
            f"{inline_seconds[-1] * 1e3:>8.1f} ms{mime_s * 1e3:>6.1f} ms{html_kb:>7.1f} KB"
        )
    # the first call pays cssutils' warm-up: measure the full variant again, warm
    warm_s, _ = timed(lambda: Renderer(settings).render(edition, None))
    print(
        f"  premailer: first call {inline_seconds[0] * 1e3:.1f} ms (cssutils warm-up); "
        f"'all' again, warm: {inline_seconds[-1] * 1e3:.1f} ms premailer, "
        f"{warm_s * 1e3:.1f} ms render+inline"
    )

    # From here on premailer must never run: count any call.
    calls_after = len(inline_seconds)
    recipients = [
        (
            n + 1,
            f"{FIRST[n % len(FIRST)].lower()}.{n}@{DOMAINS[n % len(DOMAINS)]}",
            f"{FIRST[n % len(FIRST)]} {LAST[(n // 3) % len(LAST)]}",
            choices[n % len(choices)],
            # half imported with a First Name column (a nickname), as a CSV gives it
            FIRST[(n + 5) % len(FIRST)] if n % 2 else None,
        )
        for n in range(count)
    ]
    personals = [
        Personal(
            email=email,
            name=name,
            unsubscribe_url=f"https://news.example.com/newsletter/unsubscribe/t{sid}",
            preferences_url=f"https://news.example.com/newsletter/preferences/t{sid}",
            message_id=f"<{sid}.bench@news.example.com>",
            first_name=first,
        )
        for sid, email, name, _, first in recipients
    ]
    keys = [Variant.of(edition, topics).key for *_, topics, _ in recipients]

    def personalise_only() -> int:
        size = 0
        for key, who in zip(keys, personals, strict=True):
            size += len(templates[key].personalise(who))
        return size

    def whole_path() -> int:
        size = 0
        domain = settings.sender_domain
        for sid, email, name, topics, first in recipients:
            template = templates[Variant.of(edition, topics).key]
            who = Personal(
                email=email,
                name=name,
                unsubscribe_url=links.unsubscribe_url(settings, sid, email),
                preferences_url=links.preferences_url(settings, sid, email),
                message_id=new_message_id(domain),
                unsubscribe_mailto=links.unsubscribe_mailto(settings, sid, email),
                first_name=first,
            )
            size += len(template.personalise(who))
        return size

    print(f"\nper recipient ({count:,} recipients, best and median of 3 runs):")
    for label, fn in (
        ("personalise (substitution only)", personalise_only),
        ("whole path (variant, 3 signed links, Message-ID, personalise)", whole_path),
    ):
        runs = [timed(fn) for _ in range(3)]
        seconds = [s for s, _ in runs]
        total_bytes = int(runs[0][1])  # type: ignore[call-overload]
        best, median = min(seconds) / count * 1e6, statistics.median(seconds) / count * 1e6
        verdict = "under" if median < 100 else "OVER"
        print(
            f"  {label}: best {best:.1f} µs, median {median:.1f} µs ({verdict} the 100 µs target)"
        )
    print(f"  average message: {total_bytes / count / 1024:.1f} KB")
    extra = len(inline_seconds) - calls_after
    print(f"  premailer calls on the per-recipient path: {extra}")
    if extra:
        raise SystemExit("premailer ran per recipient")
    personalisation(settings, edition, count)


def personalisation(settings: Settings, edition: Edition, count: int) -> None:
    """No story twice: variants and render cost for a realistic mix, next to today's.

    ``count`` readers in SQLite (60% take everything, the rest one of four topics);
    earlier that day a breaking alert carrying the edition's top story went to 30%
    of them. The outbox rows are written as a send writes them (history read from
    the outbox), then every distinct variant is rendered once, as a send does.
    """
    from newsletter.core.schema import deliveries, editions
    from newsletter.database import open_database
    from newsletter.delivery.compose import outbox_rows
    from subscribers.schema import subscribers, subscriptions

    folder = Path(tempfile.mkdtemp())
    engine = open_database(f"sqlite:///{folder / 'bench.db'}")
    picks = [sorted(t) for t in variant_topics(edition) if t]
    now = edition.created_at + timedelta(hours=1)
    top = edition.articles()[0]
    alert = edition.model_copy(
        update={"id": "bench-breaking", "top_story": top, "sections": [], "topics": []}
    )
    with engine.begin() as conn:
        conn.execute(
            subscribers.insert(),
            [
                {
                    "email": f"r{n}@example.org",
                    "email_key": f"r{n}@example.org",
                    "name": f"Reader {n}",
                    "status": "confirmed",
                    "topics": [] if n % 10 < 6 else picks[n % 4],
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(count)
            ],
        )
        conn.execute(  # each subscribed to the edition's newsletter, as `subscribers add` does
            subscriptions.insert(),
            [
                {
                    "subscriber_id": n + 1,
                    "newsletter_id": edition.newsletter,
                    "status": "subscribed",
                    "subscribed_at": now,
                }
                for n in range(count)
            ],
        )
        for made in (edition, alert):
            conn.execute(
                editions.insert().values(
                    id=made.id,
                    kind=made.kind.value,
                    status="draft",
                    title=made.title,
                    subject=made.subject,
                    created_at=now,
                    data=made.model_dump(mode="json"),
                )
            )
        conn.execute(
            deliveries.insert(),
            [
                {
                    "edition_id": alert.id,
                    "subscriber_id": n + 1,
                    "email": f"r{n}@example.org",
                    "variant": "all",
                    "status": "sent",
                    "attempts": 1,
                    "updated_at": now - timedelta(hours=8),
                    "sent_at": now - timedelta(hours=8),
                }
                for n in range(count)
                if n % 10 in (0, 3, 7)  # 30%
            ],
        )
    print(f"\nno story twice ({count:,} readers, an alert with the top story sent to 30%):")
    for label, window in (
        ("today (no repeat window)", None),
        ("with the 7d window", timedelta(days=7)),
    ):
        with engine.connect() as conn:
            started = time.perf_counter()
            keys: dict[str, int] = {}
            skipped = 0
            for row in outbox_rows(conn, edition, repeat_window=window, now=now):
                if row.status.value == "skipped":
                    skipped += 1
                else:
                    keys[row.variant] = keys.get(row.variant, 0) + 1
            rows_s = time.perf_counter() - started
        fresh = Renderer(settings)
        render_s, _ = timed(
            lambda r=fresh, ks=list(keys): [r.render(edition, Variant.parse(k)) for k in ks]
        )
        print(
            f"  {label:<26} {len(keys):>3} variants, {skipped:>5,} skipped; outbox rows "
            f"{rows_s * 1e3:.0f} ms, rendering every variant {render_s * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    main()
