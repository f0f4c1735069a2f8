"""``newsletter send`` and ``newsletter status``: the delivery engine at the command line."""

from __future__ import annotations

import json
import os
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter.cli.common import err, get_engine, get_settings, out, plural
from newsletter.cli.prompts import YES_HELP, confirm_or_stop, on_terminal
from newsletter.cli.tables import Column, print_list
from newsletter.core.errors import InputError, SendPausedError

if TYPE_CHECKING:
    from newsletter.cli.progress import SendBar
    from newsletter.delivery.engine import SendOptions, SendReport
    from newsletter.delivery.subjects import SubjectTestSpec

__all__ = [
    "register",
    "send",
    "status",
]


# Exit statuses of a send stopped by a signal (the shell's 128 + signal number):
# scripts and cron see that it did not finish. Documented in the README's Send section.
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM


async def _run_send(
    edition: str,
    options: SendOptions,
    bar: SendBar | None,
    stopped_by: list[str],
    loop_used: list[str],
) -> SendReport:
    import asyncio

    from newsletter.delivery.engine import send_edition
    from newsletter.delivery.eventloop import running_loop_name

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(name: str, number: int) -> None:
        if stop.is_set():
            # Second time: the default behaviour (KeyboardInterrupt or exit). The
            # messages in flight stay `sending` and become `unknown` next run.
            err.print(f"{name} again: aborting now", markup=False)
            _abandon_in_flight(edition)
            for each in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(each)
            os.kill(os.getpid(), number)
            return
        err.print(
            f"{name}: stopping; finishing the messages in flight (again to abort)", markup=False
        )
        stopped_by.append(name)
        stop.set()

    for number, name in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        loop.add_signal_handler(number, on_signal, name, number)
    loop_used.append(running_loop_name())
    try:
        return await send_edition(
            get_settings(), get_engine(), edition, options=options, progress=bar, stop=stop
        )
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)


def _dry_run_line(report: SendReport) -> str | None:
    """What a real send would do now, once the edition has an outbox."""
    if report.mode != "dry-run" or not report.counts:
        return None
    counts = report.counts
    still = counts.get("queued", 0) + counts.get("deferred", 0) + counts.get("sending", 0)
    line = (
        f"dry run of {report.edition_id}: {counts.get('sent', 0):,} already sent, "
        f"{still:,} still to send"
    )
    if counts.get("unknown"):
        line += f", {counts['unknown']:,} unknown (sent again only with --resend-unknown)"
    if counts.get("failed"):
        line += f", {counts['failed']:,} failed"
    return line + "; nothing was sent"


def _abandon_in_flight(edition_id: str) -> None:
    """Before an abort, this process's rows in ``sending`` become ``unknown`` (they may
    have arrived) and its reservations are released, so ``status`` tells the truth at
    once rather than after the next run. Best effort: the next run settles them anyway."""
    from newsletter.core.db import utcnow
    from newsletter.delivery import recovery
    from newsletter.delivery.lease import is_this_process

    try:
        with get_engine().begin() as conn:
            found = recovery.recover(
                conn,
                edition_id,
                me="",
                is_alive=lambda worker: not is_this_process(worker),
                now=utcnow(),
            )
    except Exception:  # an abort must not fail on the way out
        return
    if found.unknown:
        err.print(
            f"{plural(found.unknown, 'message')} in flight marked 'unknown' "
            "(newsletter send --resend-unknown sends them again)",
            markup=False,
        )


def _summary(report: SendReport) -> None:
    dry = _dry_run_line(report)
    if dry is not None:
        out.print(dry, markup=False)
        _subject_test_line(report)
        return
    out.print(str(report), markup=False)
    if report.counts:
        shown = ", ".join(f"{state} {n}" for state, n in report.counts.items() if n)
        out.print(f"outbox: {shown}", markup=False)
    if report.recovered_unknown:
        one = report.recovered_unknown == 1
        out.print(
            f"{plural(report.recovered_unknown, 'message')} caught mid-send by an earlier run "
            f"{'is' if one else 'are'} 'unknown' and {'was' if one else 'were'} not sent again "
            f"(use --resend-unknown to send {'it' if one else 'them'})",
            markup=False,
        )
    if report.stopped:
        out.print(
            f"stopped: {report.remaining} still to send; resume with: "
            f"newsletter send {report.edition_id}",
            markup=False,
        )
    _subject_test_line(report)


def _subject_test_line(report: SendReport) -> None:
    """A subject-line test's split, and when it is (or was) decided."""
    if report.arms is None:
        return
    a, b, rest = report.arms
    line = f"subject-line test: {a:,} in arm A, {b:,} in arm B, {rest:,} in the rest"
    if report.winner is not None:
        line += f"; {report.winner} won: the rest gets subject {report.winner}"
    elif report.decision_at is not None:
        line += f", decided at {report.decision_at:%Y-%m-%d %H:%M:%S} UTC"
    out.print(line, markup=False)


def send(
    edition: Annotated[str, typer.Argument(metavar="EDITION", help="The edition id.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build every message, send none, change nothing.")
    ] = False,
    test_to: Annotated[
        str | None,
        typer.Option(
            "--test-to", metavar="EMAIL", help="Send one message to EMAIL; the outbox is untouched."
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", min=1, max=256, metavar="K", help="SMTP connections (default 8)."
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.01, metavar="MSGS_PER_S", help="At most this many a second."),
    ] = None,
    resend_unknown: Annotated[
        bool,
        typer.Option(
            "--resend-unknown",
            help="Also send the messages a crashed run may or may not have delivered.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help=YES_HELP)] = False,
    subject_test: Annotated[
        str | None,
        typer.Option(
            "--subject-test",
            metavar="SUBJECT",
            help="Test this subject against the edition's own on a share of the readers; "
            "the one with more unique clicks per message goes to the rest.",
        ),
    ] = None,
    test_share: Annotated[
        str | None,
        typer.Option(
            "--test-share", metavar="PERCENT", help="With --subject-test: 1% to 50% (default 20%)."
        ),
    ] = None,
    decide_after: Annotated[
        str | None,
        typer.Option(
            "--decide-after", metavar="SPAN", help="With --subject-test: 30m, 1h (default), 4h."
        ),
    ] = None,
) -> None:
    """Send an edition to every confirmed subscriber it is for, exactly once.

    The outbox is written first; re-running the command resumes where a stopped,
    paused or crashed run left off. On a terminal it asks first (--yes skips the
    question). Ctrl-C or SIGTERM stops cleanly (exit 130 or 143); exit 75 means
    some messages wait for a retry later, or for a subject-line test's decision.

    Example:

        newsletter send 2026-11-26-daily --concurrency 8 --rate 50
        newsletter send 2026-11-26-daily --subject-test "Budget: what it means for you"
            --test-share 20% --decide-after 1h
    """
    from newsletter.cli.progress import SendBar
    from newsletter.cli.schedules import clock  # NEWSLETTER_NOW, the testing aid
    from newsletter.delivery import eventloop
    from newsletter.delivery.engine import SendOptions, SendReport
    from newsletter.delivery.report import EXIT_DEFERRED

    options = SendOptions(
        concurrency=concurrency,
        rate=rate,
        dry_run=dry_run,
        test_to=test_to,
        resend_unknown=resend_unknown,
        subject_test=_subject_test(subject_test, test_share, decide_after),
        clock=clock(),  # a subject-line test starts and is decided by it
    )
    if not (dry_run or test_to):
        _confirm_send(edition, yes=yes)
    bar = None if dry_run or test_to else SendBar()
    stopped_by: list[str] = []
    loop_used: list[str] = []
    choice = get_settings().event_loop  # a bad setting stops here, before any coroutine
    try:
        try:
            report = eventloop.run(_run_send(edition, options, bar, stopped_by, loop_used), choice)
        finally:
            if bar is not None:
                bar.stop()
    except SendPausedError as exc:
        if isinstance(exc.report, SendReport):
            _summary(exc.report)
        raise
    _summary(report)
    if report.mode == "send" and report.sent:
        _print_rate(edition)
        out.print(f"event loop: {loop_used[0]}", markup=False)  # NEWSLETTER_EVENT_LOOP
    if report.stopped:
        raise typer.Exit(EXIT_TERMINATED if stopped_by == ["SIGTERM"] else EXIT_INTERRUPTED)
    if report.deferred_until is not None:
        raise typer.Exit(EXIT_DEFERRED)  # rows wait for a retry later: not an error, not done


def _subject_test(
    subject: str | None, share: str | None, decide_after: str | None
) -> SubjectTestSpec | None:
    """The --subject-test options as the library's spec (checked there)."""
    if subject is None:
        if share is not None or decide_after is not None:
            flag = "--test-share" if share is not None else "--decide-after"
            raise InputError(f"{flag} goes with --subject-test SUBJECT", field=flag)
        return None
    from newsletter.delivery.subjects import SubjectTestSpec

    return SubjectTestSpec.parse(subject, share or "20%", decide_after or "1h")


def _confirm_send(edition_id: str, *, yes: bool) -> None:
    """On a terminal, ask before sending: which edition, its subject, to how many."""
    if yes or not on_terminal():
        return
    from newsletter.content.editions import get_edition
    from newsletter.delivery import outbox
    from newsletter.delivery.compose import variant_counts
    from newsletter.delivery.outcomes import OPEN_STATES

    with get_engine().connect() as conn:
        edition = get_edition(conn, edition_id)
        if outbox.exists(conn, edition_id):
            counts = outbox.counts(conn, edition_id)
            recipients = sum(counts[s] for s in OPEN_STATES)
        else:
            recipients = sum(variant_counts(conn, edition).values())
    noun = "recipient" if recipients == 1 else "recipients"
    question = f'Send {edition.id} "{edition.subject}" to {recipients:,} {noun}?'
    confirm_or_stop(question, yes=False)


def _rate_text(rate: float) -> str:
    """The one way ``send`` and ``status`` state an edition's rate."""
    return f"rate: {rate:.1f} messages/s (between the first and the last message accepted)"


def _print_rate(edition_id: str) -> None:
    """After a send, the edition's rate exactly as ``status`` reports it."""
    from newsletter.delivery import outbox

    with get_engine().connect() as conn:
        rate = outbox.status(conn, edition_id).rate
    if rate is not None:
        out.print(_rate_text(rate), markup=False)


def status(
    edition: Annotated[str, typer.Argument(metavar="EDITION", help="The edition id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an edition's delivery: messages per state, the rate and the last errors.

    Example:

        newsletter status 2026-11-26-daily --json
    """
    from newsletter.content.editions import get_edition
    from newsletter.delivery import outbox
    from newsletter.scheduling.waves import waves_of_edition

    with get_engine().connect() as conn:
        found = get_edition(conn, edition)
        report = outbox.status(conn, edition)
        waves = waves_of_edition(conn, edition)  # sent in each reader's zone: the day's waves
    if as_json:
        data = report.model_dump(mode="json")
        data = {"edition_status": found.status.value, "reason": found.status_reason, **data}
        data["waves"] = [w.model_dump(mode="json") for w in waves]
        out.print_json(json.dumps(data))
        return
    line = f"{edition}: {found.status.value}"
    if found.status_reason:
        line += f" ({found.status_reason})"
    out.print(line, markup=False)
    rows = [[state.value, f"{number:,}"] for state, number in report.counts.items()]
    print_list(
        [Column("state"), Column("messages", right=True)],
        rows,
        f"{plural(report.total, 'message')} in all",
    )
    if report.rate is not None:
        out.print(_rate_text(report.rate), markup=False)
    for wave in waves:
        out.print(f"wave {wave.describe()}", markup=False)
    for error in report.last_errors:
        out.print(
            f"{error.at:%H:%M:%S} {error.email} {error.status.value}: {error.error}", markup=False
        )


def register(root: typer.Typer) -> None:
    """Add ``send`` and ``status`` to ``root``."""
    root.command("send")(send)
    root.command("status")(status)
