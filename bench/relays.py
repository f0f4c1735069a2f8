"""The misbehaving-relay scenarios of ``bench/send.py``: pacing that recovers.

Each scenario sends a fresh edition through a real aiosmtpd relay in its own
process (``python -m tests.plugins.smtp``, the tests' misbehaving server) and
checks from the relay's own log that everybody got the message exactly once:

* **421 on every 50th connection**: the relay answers ``421 4.7.0 closing`` at
  EHLO and hangs up on every 50th connection, and caps each session at 20
  messages (``421`` at the next MAIL), so connections come and go all the
  time. Its rate is compared with a clean relay's in the same run (target:
  at least 0.5 of it).
* **tempfail storm**: 20% of RCPTs get ``451 4.7.1`` and every 37th connection
  is dropped at its first RCPT (target: all delivered exactly once within 90 s).

The send runs with default settings (no tuning flags).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["RelayRun", "relay_scenarios"]

# the relay's command-line flags for each scenario
CLEAN: tuple[str, ...] = ()
EVERY_50TH_421 = ("--refuse-every", "50", "--session-limit", "20")
STORM = ("--tempfail-share", "0.2", "--drop-every", "37", "--seed", "7")


@dataclass
class RelayRun:
    """One send through one relay: how long, what arrived, what the pacer did."""

    recipients: int
    elapsed: float
    copies: Counter[str]
    arrivals: list[float]  # seconds since the send started, one per message
    report: dict[str, Any]

    @property
    def rate(self) -> float:
        """Messages that arrived per second."""
        return sum(self.copies.values()) / self.elapsed if self.elapsed else 0.0

    @property
    def exactly_once(self) -> bool:
        """Every recipient got one copy, nobody two."""
        return len(self.copies) == self.recipients and set(self.copies.values()) == {1}

    def rate_by_second(self, width: float = 1.0) -> str:
        """Messages arrived in each ``width``-second slice, as one compact line."""
        if not self.arrivals:
            return "-"
        slices = Counter(int(at // width) for at in self.arrivals)
        return " ".join(str(slices.get(n, 0)) for n in range(max(slices) + 1))


def _start_relay(folder: Path, flags: tuple[str, ...]) -> tuple[subprocess.Popen[bytes], int, Path]:
    port_file, log = folder / "relay.port", folder / "relay.jsonl"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.plugins.smtp"),
            *("--port-file", str(port_file), "--log", str(log), *flags),
        ],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit("the relay process did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text()), log


def _relay_sender(folder: str, config: dict[str, Any], edition_id: str, out: Any) -> None:
    """One sending process with default options; reports its summary."""
    from newsletter.core.config import load_settings
    from newsletter.database import open_database
    from newsletter.delivery.engine import SendOptions, send_edition

    settings = load_settings(Path(folder), **config)
    engine = open_database(settings.database_url)
    started = time.time()
    report = asyncio.run(send_edition(settings, engine, edition_id, options=SendOptions()))
    out.put(
        {
            "started": started,
            "finished": time.time(),
            "sent": report.sent,
            "deferred": report.deferred,
            "failed": report.failed,
            "unknown": report.unknown,
            "remaining": report.remaining,
            "slowdowns": report.slowdowns,
            "pace": [(round(c.at, 2), c.rate, c.concurrency) for c in report.pace],
        }
    )


def _send_through(
    prepare: Any, recipients: int, flags: tuple[str, ...], config_for: Any
) -> RelayRun:
    """A fresh edition for ``recipients`` readers, sent through a relay run with ``flags``."""
    folder = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    proc, port, log = _start_relay(folder, flags)
    try:
        config = config_for(folder, port)
        edition_id = prepare(folder, config, recipients)
        context = mp.get_context("spawn")
        out = context.Queue()
        worker = context.Process(target=_relay_sender, args=(str(folder), config, edition_id, out))
        worker.start()
        report = out.get()
        worker.join()
        time.sleep(0.2)  # the relay's log is written as each message lands
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    copies = Counter(rcpt for line in lines for rcpt in line["rcpt"])
    arrivals = sorted(line["at"] - report["started"] for line in lines)
    elapsed = report["finished"] - report["started"]
    return RelayRun(recipients, elapsed, copies, arrivals, report)


def relay_scenarios(prepare: Any, config_for: Any, recipients: int, storm: int) -> None:
    """Run and print both scenarios; ``prepare(folder, config, n)`` returns an edition id."""
    clean = _send_through(prepare, recipients, CLEAN, config_for)
    faulty = _send_through(prepare, recipients, EVERY_50TH_421, config_for)
    ratio = faulty.rate / clean.rate if clean.rate else 0.0
    print(
        f"clean relay (aiosmtpd): {sum(clean.copies.values()):,} messages in "
        f"{clean.elapsed:.1f}s = {clean.rate:,.0f}/s"
    )
    print(
        f"relay with 421 on every 50th connection (sessions capped at 20 messages): "
        f"{sum(faulty.copies.values()):,} messages in {faulty.elapsed:.1f}s = "
        f"{faulty.rate:,.0f}/s, exactly once: {faulty.exactly_once}, "
        f"slow-downs: {faulty.report['slowdowns']}"
    )
    print(f"  messages per second over time: {faulty.rate_by_second()}")
    verdict = "meets" if ratio >= 0.5 and faulty.exactly_once else "BELOW"
    print(f"ratio 421-every-50th / clean relay: {ratio:.2f} ({verdict} the 0.5 target)")

    stormy = _send_through(prepare, storm, STORM, config_for)
    report = stormy.report
    delivered = len(stormy.copies)
    met = stormy.exactly_once and stormy.elapsed <= 90
    print(
        f"tempfail storm (20% 451, every 37th connection dropped): {delivered}/{storm} "
        f"delivered, exactly once: {stormy.exactly_once}, in {stormy.elapsed:.1f}s "
        f"({report['deferred']} deferrals retried, {report['failed']} failed, "
        f"slow-downs: {report['slowdowns']}) ({'meets' if met else 'MISSES'} the "
        "all-within-90s target)"
    )
    print(f"  messages per second over time: {stormy.rate_by_second()}")
