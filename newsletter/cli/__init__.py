"""The ``newsletter`` command: a thin Typer layer over the library.

Every user error (a :class:`~newsletter.core.errors.NewsletterError`) becomes one
line on stderr and exit status 1; usage errors exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from newsletter.cli import (
    articles,
    audit,
    delivery,
    editions,
    inbound,
    init,
    preview,
    report,
    schedules,
    sink,
    subscribers,
    users,
    web,
)
from newsletter.cli.common import err
from newsletter.cli.helpformat import install as _readable_help
from newsletter.core.errors import InputError, NewsletterError

__all__ = ["app", "main"]

_readable_help()

app = typer.Typer(
    name="newsletter",
    help=(
        "Build a daily email digest from a newsroom's articles and deliver it to subscribers.\n\n"
        "Example:\n\n    newsletter articles import examples/articles && newsletter edition build"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
app.add_typer(articles.app, name="articles")
app.add_typer(editions.app, name="edition")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(schedules.app, name="schedule")
app.add_typer(users.app, name="users")
init.register(app)
preview.register(app)
delivery.register(app)
schedules.register(app)
web.register(app)
sink.register(app)
inbound.register(app)
audit.register(app)
report.register(app)


# Library errors name their parameters; on the command line they are these flags.
_FLAGS = {"edition": "--edition", "run_at": "--at", "cron": "--cron", "tz": "--tz",
          "subject_b": "--subject-test", "test_share": "--test-share",
          "decide_after": "--decide-after"}  # fmt: skip


def _message(exc: NewsletterError) -> str:
    if isinstance(exc, InputError) and exc.field in _FLAGS:
        return exc.with_field(_FLAGS[exc.field])
    return str(exc).replace("resubscribe=True", "--resubscribe")


def _version(value: bool) -> None:
    if value:
        from newsletter import __version__

        typer.echo(f"newsletter {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Build a daily email digest from a newsroom's articles and deliver it to subscribers."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status, turning user errors into one clean line."""
    try:
        app(args=argv, prog_name="newsletter")
    except NewsletterError as exc:
        err.print(f"error: {_message(exc)}", markup=False)
        return 1
    except KeyboardInterrupt:
        return 130  # Ctrl-C before the command took over its signals: a quiet stop
    except OSError as exc:
        # a file the user named cannot be read or written: say which, and why
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"error: {exc.strerror or type(exc).__name__}{where}", markup=False)
        return 1
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
