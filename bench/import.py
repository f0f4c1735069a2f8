"""Benchmark: import a generated CSV of subscribers into SQLite; rows/s and peak memory.

Run alone: ``python bench/import.py`` (default 100,000 and 1,000,000 rows; ``--rows N``
for one size, ``--postgresql URL`` to import into an empty PostgreSQL database instead;
the sizes share their first addresses, so there the larger run finds some already held).
Each size runs in a fresh process, so its peak resident memory (``ru_maxrss``) is
its own: a flat memory profile shows as nearly the same peak for 100k and 1M rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST = ["Amelia", "Oliver", "Priya", "Tom", "Siobhán", "Zoë", "James", "Grace", "Hamish",
         "Fatima", "Daniel", "Chloe", "Mohammed", "Isla", "Noah", "Aoife", "Ravi",
         "Eleanor"]  # fmt: skip
LAST = ["Hughes", "Bennett", "Sharma", "O'Neill", "Walsh", "Müller", "Okafor", "Lee", "MacLeod",
        "Begum", "Evans", "Martin", "Khan", "Jones", "Smith", "Murphy", "Menon",
        "Reilly"]  # fmt: skip
DOMAINS = [f"mail{i}.example.com" for i in range(40)] + [
    "example.co.uk", "example.org", "example.net", "example.ie", "example.de", "bücher.example",
]  # fmt: skip
TOPICS = ["uk", "politics", "crime", "business", "money", "world", "science", "technology",
          "sport", "health", "culture"]  # fmt: skip


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write ``rows`` realistic subscribers (unique addresses, about 1% invalid) to ``path``."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "topics", "timezone", "status", "plan"])
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            surname = last.lower().replace("'", "")
            if i % 1000 != 500:  # most people spell Müller as mueller in an address
                surname = surname.replace("ü", "ue")
            local = f"{first[0].lower()}.{surname}{i}"
            email = f"{local}@{rng.choice(DOMAINS)}"
            if i % 100 == 99:
                email = email.replace("@", "@@")  # an invalid address, to be rejected
            topics = ";".join(rng.sample(TOPICS, rng.randint(0, 3)))
            writer.writerow(
                [email, f"{first} {last}", topics, "Europe/London", "", rng.choice(["", "premium"])]
            )


def run_one(rows: int, database_url: str | None) -> dict[str, object]:
    """Generate and import ``rows`` rows in this process; return the figures."""
    from newsletter.database import open_database
    from subscribers.importer import import_file

    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "subscribers.csv"
        started = time.perf_counter()
        generate(csv_path, rows)
        generated = time.perf_counter() - started
        url = database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = open_database(url)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu = time.process_time()
        started = time.perf_counter()
        report = import_file(engine, csv_path, secret=b"bench-secret", confirmed=True)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size = csv_path.stat().st_size
        engine.dispose()
    return {
        "rows": rows,
        "bytes": size,
        "generate_s": round(generated, 2),
        "import_s": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "cpu_s": round(cpu, 2),
        "rows_per_cpu_s": round(rows / cpu),
        "imported": report.imported,
        "unchanged": report.unchanged + report.updated,
        "rejected": report.rejected,
        "peak_rss_mb_before_import": round(rss_before / 1024, 1),
        "peak_rss_mb": round(peak / 1024, 1),
    }


def token_figures(count: int = 200_000) -> str:
    """Microseconds per unsubscribe token made and verified (made per recipient per send).

    Verifying is timed with the subscriber already loaded: the web page's one-row
    lookup is a database cost, not the token's.
    """
    from datetime import UTC, datetime

    from subscribers.model import Subscriber, SubscriberStatus
    from subscribers.tokens import make_token, verify_token

    secret = b"bench-secret-key-of-a-usual-length-0123456789"
    address = "amelia.hughes@example.co.uk"
    started = time.perf_counter()
    for i in range(count):
        make_token(secret, "unsubscribe", i, address)
    made = (time.perf_counter() - started) / count * 1e6
    token = make_token(secret, "unsubscribe", 123_456, address)
    now = datetime.now(UTC)
    person = Subscriber(
        id=123_456, email=address, status=SubscriberStatus.CONFIRMED, created_at=now, updated_at=now
    )
    started = time.perf_counter()
    for _ in range(count):
        verify_token(secret, "unsubscribe", token, lambda _id: person)
    verified = (time.perf_counter() - started) / count * 1e6
    return f"link tokens: {made:.2f} µs to make, {verified:.2f} µs to verify (mean of {count:,})"


def main() -> None:
    """Run each size in its own process and print one line per size, plus the machine."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--postgresql", metavar="URL", help="import into this database")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.rows[0], args.postgresql)))
        return
    print(f"machine: {machine()}")
    target = "PostgreSQL" if args.postgresql else "SQLite (file, WAL)"
    print(token_figures())
    print(f"subscriber CSV import into {target}, one transaction, batches of 5000")
    for rows in args.rows or [100_000, 1_000_000]:
        command = [sys.executable, __file__, "--child", "--rows", str(rows)]
        if args.postgresql:
            command += ["--postgresql", args.postgresql]
        result = json.loads(
            subprocess.run(command, capture_output=True, text=True, check=True).stdout
        )
        print(
            f"{result['rows']:>9,} rows ({result['bytes'] / 1e6:.0f} MB): "
            f"{result['import_s']:.2f} s, {result['rows_per_s']:,} rows/s "
            f"({result['rows_per_cpu_s']:,} rows per CPU second); "
            f"imported {result['imported']:,}, already held {result['unchanged']:,}, "
            f"rejected {result['rejected']:,}; "
            f"peak RSS {result['peak_rss_mb']} MB "
            f"(before the import {result['peak_rss_mb_before_import']} MB)"
        )


if __name__ == "__main__":
    main()
