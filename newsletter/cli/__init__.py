"""The ``newsletter`` command: a thin Typer layer over the library.

Every user error (a :class:`~newsletter.core.errors.NewsletterError`) becomes one
line on stderr and exit status 1; usage errors exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from typing import TYPE_CHECKING, Annotated

import typer
import typer.main
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click.core import Command, Context

from newsletter.cli.common import err
from newsletter.cli.helpformat import install as _readable_help
from newsletter.core.errors import InputError, NewsletterError

__all__ = ["app", "main"]

_readable_help()

# Each top-level name and the module of newsletter.cli that holds it, in the order
# `newsletter --help` lists them: a group's module has an `app`, a command's a `register`.
_GROUPS = {
    "articles": "articles",
    "edition": "editions",
    "subscribers": "subscribers",
    "schedule": "schedules",
    "users": "users",
}
_COMMANDS = {
    "init": "init",
    "preview": "preview",
    "send": "delivery",
    "status": "delivery",
    "scheduler": "scheduler",
    "serve": "web",
    "sink": "sink",
    "inbound": "inbound",
    "audit": "audit",
    "report": "report",
    "newsletters": "newsletters",
}


def _load(name: str) -> Command:
    """The click command for the top-level ``name``, importing only its module."""
    module = importlib.import_module(f"newsletter.cli.{_GROUPS.get(name) or _COMMANDS[name]}")
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    if name in _GROUPS:
        holder.add_typer(module.app, name=name)
    else:
        module.register(holder)
    command: Command = typer.main.get_group(holder).commands[name]
    return command


class _LazyGroup(TyperGroup):
    """The root group: a command's module is imported when that command runs (or shows
    its help), so ``subscribers list`` does not load every other command's module."""

    def list_commands(self, ctx: Context) -> list[str]:
        """Every top-level name, groups first."""
        return [*_GROUPS, *_COMMANDS]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """The command ``cmd_name``, built on first use."""
        if cmd_name not in self.commands and (cmd_name in _GROUPS or cmd_name in _COMMANDS):
            self.commands[cmd_name] = _load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        """As click resolves it; a mistyped name gets the names it is close to."""
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            close = difflib.get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if close and "Did you mean" not in exc.message:
                names = ", ".join(repr(name) for name in close)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {names}?"
            raise


app = typer.Typer(
    name="newsletter",
    help=(
        "Build a daily email digest from a newsroom's articles and deliver it to subscribers.\n\n"
        "Example:\n\n    newsletter articles import examples/articles && newsletter edition build"
    ),
    cls=_LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)


# Library errors name their parameters; on the command line they are these flags.
_FLAGS = {
    "edition": "--edition",
    "run_at": "--at",
    "cron": "--cron",
    "tz": "--tz",
    "newsletter": "--newsletter",
    "subject_b": "--subject-test",
    "test_share": "--test-share",
    "decide_after": "--decide-after",
}


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
