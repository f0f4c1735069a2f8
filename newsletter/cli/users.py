"""``newsletter users ...``: the editor's console accounts (add, list, remove, reset-password)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from newsletter.cli.common import get_engine, out, plural
from newsletter.cli.prompts import YES_HELP, confirm_or_stop
from newsletter.cli.tables import Column, print_list
from newsletter.core.errors import InputError
from newsletter.web.admin.roles import Role

__all__ = [
    "add_command",
    "app",
    "list_command",
    "remove_command",
    "reset_password_command",
]

app = typer.Typer(
    help="Console accounts: who may sign in at /admin, and as what (admin, editor, viewer).",
    no_args_is_help=True,
)

_STDIN_HELP = "Read the password from the first line of standard input (for scripts)."


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise InputError("standard input held no password", field="password")
        return password
    if not sys.stdin.isatty():
        raise InputError(
            "no terminal to ask for a password on; pass --password-stdin", field="password"
        )
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@app.command("add")
def add_command(
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The editor's address.")],
    role: Annotated[
        Role, typer.Option("--role", case_sensitive=False, help="admin, editor or viewer.")
    ],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=_STDIN_HELP)] = False,
) -> None:
    """Create a console account. The password is asked twice, unseen (12 characters or more).

    Example:

        newsletter users add editor@example.com --role editor
    """
    from newsletter.web.admin.accounts import add_user
    from newsletter.web.admin.audit import record

    password = _password(password_stdin)
    with get_engine().begin() as conn:
        user = add_user(conn, email, role, password)
        record(conn, "cli", "user.add", user.email, f"role {user.role.value}")
    out.print(f"added {user.email} ({user.role.value})", markup=False)


@app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the console accounts with their role and last sign-in.

    Example:

        newsletter users list --json
    """
    from newsletter.web.admin.accounts import list_users

    with get_engine().connect() as conn:
        users = list_users(conn)
    if as_json:
        rows = [
            {
                "email": u.email,
                "role": u.role.value,
                "created_at": u.created_at.isoformat(),
                "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            }
            for u in users
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not users:
        out.print("no console accounts (add one: newsletter users add EMAIL --role admin)")
        return
    lines = [
        [
            u.email,
            u.role.value,
            f"{u.last_login_at:%Y-%m-%d %H:%M} UTC" if u.last_login_at else "never",
        ]
        for u in users
    ]
    columns = [Column("email", key=True), Column("role"), Column("last sign-in")]
    print_list(columns, lines, plural(len(lines), "account"))


@app.command("remove")
def remove_command(
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The account's address.")],
    yes: Annotated[bool, typer.Option("--yes", help=YES_HELP)] = False,
) -> None:
    """Delete a console account; its sessions end at once.

    Example:

        newsletter users remove editor@example.com --yes
    """
    from newsletter.web.admin.accounts import remove_user
    from newsletter.web.admin.audit import record

    confirm_or_stop(f"remove the console account {email}?", yes=yes)
    with get_engine().begin() as conn:
        user = remove_user(conn, email)
        record(conn, "cli", "user.remove", user.email)
    out.print(f"removed {user.email}", markup=False)


@app.command("reset-password")
def reset_password_command(
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The account's address.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=_STDIN_HELP)] = False,
) -> None:
    """Set a new password for an account; its sessions end at once.

    Example:

        newsletter users reset-password editor@example.com
    """
    from newsletter.web.admin.accounts import set_password
    from newsletter.web.admin.audit import record

    password = _password(password_stdin)
    with get_engine().begin() as conn:
        user = set_password(conn, email, password)
        record(conn, "cli", "user.reset-password", user.email)
    out.print(f"new password set for {user.email}; their sessions have ended", markup=False)
