"""``newsletter subscribers ...``: add, import, export, list, show, unsubscribe, delete.

A thin layer over :mod:`subscribers`: every rule lives in the library, the
commands parse options, call it inside one transaction and print the result.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from newsletter.cli.common import get_engine, get_settings, out, plural, warn_unknown_topics
from newsletter.cli.newsletters import NewsletterOption
from newsletter.cli.prompts import YES_HELP, confirm_or_stop
from newsletter.cli.tables import GAP, Column, Lines, terminal_width
from subscribers.states import SubscriberStatus

if TYPE_CHECKING:
    from subscribers.model import Subscriber

__all__ = [
    "EXIT_REJECTED",
    "add_command",
    "app",
    "delete_command",
    "export_command",
    "import_command",
    "list_command",
    "resend_command",
    "show_command",
    "unsubscribe_command",
]

app = typer.Typer(
    help="Manage the subscriber list: add, import and export CSV, list, show, unsubscribe, erase.",
    no_args_is_help=True,
)

#: `subscribers import` exit status when some rows were rejected (the good ones went in);
#: sysexits' EX_DATAERR
EXIT_REJECTED = 65

# the argument of add, show, unsubscribe and delete
_Email = Annotated[str, typer.Argument(help="The person's email address.", show_default=False)]


@app.command("add")
def add_command(
    email: _Email,
    name: Annotated[str | None, typer.Option(help="Their name, for the greeting.")] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="A topic or section they want (repeatable; none = all)."),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Their IANA time zone, e.g. Europe/London.")
    ] = None,
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="They already confirmed: skip double opt-in.")
    ] = False,
    no_email: Annotated[
        bool,
        typer.Option("--no-email", help="Do not send the confirmation email (they stay pending)."),
    ] = False,
    resubscribe: Annotated[
        bool,
        typer.Option(
            "--resubscribe",
            "--force",
            help="Add them again although they unsubscribed, bounced or were erased.",
        ),
    ] = False,
    newsletter: Annotated[
        list[str] | None,
        typer.Option("--newsletter", metavar="ID", help="Subscribe them to it (repeatable)."),
    ] = None,
) -> None:
    """Add one subscriber, or update an existing one (--newsletter adds newsletters;
    none: a new person gets the default one; nobody is unsubscribed from anything).

    A new person is pending and is sent the confirmation email (double opt-in),
    unless --confirmed (they already agreed) or --no-email.

    Example:

        newsletter subscribers add ann@example.com --name "Ann Lee" --topic politics --topic uk
    """
    from newsletter.core.errors import DeliveryError
    from subscribers import store

    settings = get_settings()
    with get_engine().begin() as conn:
        before = store.find_by_email(conn, email)
        if not newsletter and (before is None or not before.status.is_active):
            newsletter = [settings.newsletter_list.default.id]
        subscriber = store.add(
            conn,
            email,
            secret=settings.secret(),
            name=name,
            topics=topic,
            timezone=timezone,
            confirmed=confirmed,
            consent_source="cli",
            resubscribe=resubscribe,
            newsletters=settings.newsletter_list.resolve(newsletter) if newsletter else None,
        )
        warn_unknown_topics(conn, topic)
    verb = "added" if before is None else "updated"
    out.print(f"{verb} {subscriber.email} ({subscriber.status.value})", markup=False)
    if subscriber.status is SubscriberStatus.PENDING:
        if no_email:
            out.print("no confirmation email sent (--no-email)", markup=False)
            return
        try:
            _send_confirmations([subscriber])
        except DeliveryError as exc:
            raise DeliveryError(
                f"{subscriber.email} is added (pending) but the confirmation email was not "
                f"sent: {exc}; send it later with: newsletter subscribers resend-confirmation "
                f"{subscriber.email}"
            ) from None


def _send_confirmations(people: list[Subscriber]) -> None:
    """Send each pending person their confirmation email, over the one SMTP path."""
    import asyncio

    from newsletter.delivery.confirmation import (
        Confirmation,
        build_confirmation,
        send_confirmation,
    )
    from subscribers.links import confirm_url

    settings = get_settings()

    async def send_all() -> None:
        for person in people:
            link = confirm_url(settings, person.id, person.email)
            message = build_confirmation(settings, Confirmation(person.email, person.name, link))
            await send_confirmation(settings, message)
            out.print(f"sent the confirmation email to {person.email}", markup=False)

    asyncio.run(send_all())


@app.command("resend-confirmation")
def resend_command(
    email: Annotated[
        str | None, typer.Argument(help="The pending person's address.", show_default=False)
    ] = None,
    all_pending: Annotated[
        bool, typer.Option("--all-pending", help="Everyone still pending.")
    ] = False,
) -> None:
    """Send the confirmation email again to a pending person, or to everyone pending.

    Example:

        newsletter subscribers resend-confirmation ann@example.com
    """
    from newsletter.core.errors import InputError, StateError
    from subscribers import store

    if (email is None) == (not all_pending):
        raise InputError("give an address or --all-pending (not both)", field="EMAIL")
    with get_engine().connect() as conn:
        if email is not None:
            person = store.get_by_email(conn, email)
            if person.status is not SubscriberStatus.PENDING:
                raise StateError(f"{person.email} is {person.status.value}, not pending")
            people = [person]
        else:
            people = list(store.list_subscribers(conn, status=SubscriberStatus.PENDING))
    if not people:
        out.print("nobody is pending", markup=False)
        return
    _send_confirmations(people)
    out.print(f"{plural(len(people), 'confirmation email')} sent", markup=False)


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(metavar="FILE.csv", show_default=False)],
    confirmed: Annotated[
        bool,
        typer.Option("--confirmed", help="Mark new and pending people confirmed (source: import)."),
    ] = False,
    resubscribe: Annotated[
        bool,
        typer.Option(
            "--resubscribe",
            help="Subscribe again people who unsubscribed, bounced, complained or were erased.",
        ),
    ] = False,
    column_map: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="'HEADER=COLUMN'",
            help="Read the file's HEADER as our COLUMN, e.g. 'E-Mail-Adresse=email' (repeatable).",
        ),
    ] = None,
) -> None:
    """Import subscribers from a UTF-8 CSV file; the same file twice changes nothing.

    The header row names the columns: email (required), name, topics, timezone,
    status; any other column is kept as a custom attribute. Mailchimp, listmonk
    and Substack headers (Email Address, First Name...) are recognised; --map
    names others. Commas, semicolons or tabs: the header tells. Topics are
    separated by ';' or '|'. People who unsubscribed, bounced, complained or were
    erased are skipped unless --resubscribe.
    Prints each rejected or skipped line with its number and reason, then the
    counts; on a terminal a line on stderr shows the rows committed so far. Exits
    0 when every row went in, 65 when some were rejected (the good ones are imported).

    Example:

        newsletter subscribers import examples/subscribers.csv --confirmed
    """
    from newsletter.core.errors import InputError
    from subscribers.importer import ImportReport, Problem, import_file

    settings = get_settings()

    def report(problem: Problem) -> None:
        out.print(f"{path}:{problem.line}: {problem.kind}: {problem.reason}", markup=False)

    columns: dict[str, str] = {}
    for pair in column_map or []:
        header, sep, column = pair.partition("=")
        if not sep or not header.strip() or not column.strip():
            raise InputError(f"{pair!r} is not HEADER=COLUMN", field="--map")
        columns[header.strip()] = column.strip()
    engine = get_engine()
    # on a terminal, a line that moves at each committed chunk (a million rows take a while)
    progress = None
    if sys.stderr.isatty():
        from newsletter.cli.progress import ImportProgress

        progress = ImportProgress()

    def committed(counts: ImportReport) -> None:
        if progress is not None:
            done = counts.imported + counts.updated + counts.unchanged + counts.skipped
            progress.committed(done)

    try:
        result = import_file(
            engine,
            path,
            secret=settings.secret(),
            confirmed=confirmed,
            resubscribe=resubscribe,
            on_problem=report,
            on_commit=committed,
            columns=columns,
            newsletters=[settings.newsletter_list.default.id, *settings.newsletter_list.ids],
        )
    finally:
        if progress is not None:
            progress.stop()
    out.print(result.summary(), markup=False)
    if result.rejected:
        raise typer.Exit(EXIT_REJECTED)


@app.command("export")
def export_command(
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", metavar="FILE.csv", help="Write here instead of stdout."),
    ] = None,
) -> None:
    """Write the whole list as CSV that `subscribers import` reads back to the same list.

    Erased people are never exported.

    Example:

        newsletter subscribers export -o subscribers-backup.csv
    """
    from subscribers.csvio import export_csv

    with get_engine().connect() as conn:
        if output is None:
            export_csv(conn, sys.stdout)
            return
        with output.open("w", encoding="utf-8", newline="") as handle:
            count = export_csv(conn, handle)
    out.print(f"exported {plural(count, 'subscriber')} to {output}", markup=False)


def _listing(columns: int | None, *, newsletters: bool = False) -> Lines:
    """The list's columns for a terminal ``columns`` wide (None: a pipe, nothing cut).

    Streamed, so widths come from the terminal, not from the longest value: the
    address (the row's key with the id) gets the most room and is never cut. With
    ``newsletters`` (a site running several), each person's newsletter ids follow.
    """
    room = max(40, (columns or 100) - 7 - 12 - (5 if newsletters else 4) * len(GAP))
    chosen: list[Column] = []
    if newsletters:  # ids, never cut: the room they usually need
        chosen = [Column("newsletters", min(24, max(11, room * 22 // 100)), key=True)]
        room -= chosen[0].width or 0
    email = min(40, max(20, room * 55 // 100))
    name = min(24, max(8, room * 22 // 100))
    return Lines(
        [
            Column("id", 7, right=True, key=True),
            Column("status", 12),
            Column("email", email, key=True),
            Column("name", name),
            *chosen,
            Column("topics", flex=True),
        ],
        width=columns,
    )


def _with_newsletters(
    conn: Any, found: Iterable[Subscriber], page: int = 500
) -> Iterator[tuple[Subscriber, list[str]]]:
    """Each person with the newsletter ids they receive, looked up a page at a time
    (``conn``: a DB-API connection)."""
    from subscribers.listing import newsletters_of

    people = iter(found)
    while batch := list(itertools.islice(people, page)):
        held = newsletters_of(conn, [p.id for p in batch])
        for person in batch:
            yield person, held.get(person.id, [])


@app.command("list")
def list_command(
    status: Annotated[
        SubscriberStatus | None, typer.Option(help="Only subscribers in this state.")
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(help="Only subscribers who take this topic (people with no topics take all)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    newsletter: NewsletterOption = None,
) -> None:
    """List subscribers by id, optionally by state, topic and newsletter (one line each).

    Values too long for the terminal end in "…"; piped without COLUMNS, lines
    are complete. --json prints every field.

    Example:

        newsletter subscribers list --status confirmed --topic politics
    """
    from newsletter.cli.common import read_connection
    from subscribers.listing import list_subscribers

    write = sys.stdout.write
    configured = get_settings().newsletter_list
    # the bare driver on a current SQLite file: SQLAlchemy is not loaded (a fast start)
    with read_connection() as conn:
        if newsletter is not None:
            configured.get(newsletter)  # one line, with a suggestion
        found = list_subscribers(conn, status=status, topic=topic, newsletter=newsletter)
        if as_json:
            # streamed item by item: a list of a million people never sits in memory
            write("[")
            for number, subscriber in enumerate(found):
                write(("," if number else "") + "\n  " + subscriber.model_dump_json())
            write("\n]\n")
            return
        # streamed line by line (a cut value ends in "…"; --json has everything)
        # one newsletter: the columns as ever; several: which each person receives
        several = len(configured) > 1
        lines = _listing(terminal_width(), newsletters=several)
        lines.header()
        rows = _with_newsletters(conn, found) if several else ((s, None) for s in found)
        for subscriber, held in rows:
            chosen = ",".join(sorted(subscriber.topics)) or "(all)"
            lists = [] if held is None else [",".join(held) or "-"]
            lines.row(
                str(subscriber.id), subscriber.status.value, subscriber.email,
                subscriber.name or "-", *lists, chosen,
            )  # fmt: skip
    lines.summary(plural(lines.count, "subscriber"))


@app.command("show")
def show_command(
    who: Annotated[
        str, typer.Argument(metavar="EMAIL|ID", help="The address or the subscriber id.")
    ],
) -> None:
    """Print everything held about one person as JSON (answers a GDPR access request).

    Example:

        newsletter subscribers show ann@example.com
    """
    from newsletter import privacy
    from subscribers import store

    with get_engine().connect() as conn:
        email = store.get(conn, int(who)).email if who.isdigit() else who
        report = privacy.access_report(conn, email)
    typer.echo(json.dumps(report, indent=2, ensure_ascii=False))


@app.command("unsubscribe")
def unsubscribe_command(
    email: _Email,
    newsletter: Annotated[
        str | None, typer.Option("--newsletter", metavar="ID", help="Only from this newsletter.")
    ] = None,
) -> None:
    """Unsubscribe one person from every newsletter (or only --newsletter ID).

    Example:

        newsletter subscribers unsubscribe ann@example.com
    """
    from subscribers import store

    with get_engine().begin() as conn:
        subscriber = store.get_by_email(conn, email)
        if newsletter is not None:
            get_settings().newsletter_list.get(newsletter)
        subscriber = store.unsubscribe(conn, subscriber.id, source="cli", newsletter=newsletter)
    out.print(f"unsubscribed {subscriber.email}", markup=False)


@app.command("delete")
def delete_command(
    email: _Email,
    yes: Annotated[bool, typer.Option("--yes", help=YES_HELP)] = False,
) -> None:
    """Erase a person's data; keep only a keyed hash so an import cannot re-add them unasked.

    Asks first on a terminal (--yes skips the question).

    Example:

        newsletter subscribers delete ann@example.com --yes
    """
    from newsletter import privacy

    confirm_or_stop(f"Erase everything held about {email.strip()}? This cannot be undone.", yes=yes)
    settings = get_settings()
    engine = get_engine()
    with engine.begin() as conn:
        held = privacy.erase(conn, email, secret=settings.secret())
    privacy.forget_freed(engine)
    if held:
        out.print(f"erased {email.strip()}; the address is suppressed", markup=False)
    else:
        out.print(f"no data held for {email.strip()}; the address is suppressed", markup=False)
