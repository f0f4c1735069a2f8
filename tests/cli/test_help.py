"""Every command has help with an example, and user errors are one clean line."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import typer
from typer._click.core import Context
from typer.core import TyperGroup
from typer.main import get_command

from newsletter.cli import app
from tests.support.cli import CLIResult


def _walk(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    yield path, command
    if not isinstance(command, TyperGroup):
        return
    # list_commands/get_command, as click itself asks: the root group loads its commands lazily
    context = Context(command)
    for name in command.list_commands(context):
        yield from _walk(command.get_command(context, name), (*path, name))


def _commands() -> list[tuple[tuple[str, ...], object]]:
    return list(_walk(get_command(app)))


def test_design_commands_exist() -> None:
    names = {" ".join(path) for path, _ in _commands()}
    expected = {
        "articles import", "articles list", "edition build", "edition list", "preview",
        "send", "status", "schedule add", "schedule list", "schedule show", "schedule pause",
        "schedule resume", "schedule cancel", "scheduler", "subscribers add",
        "subscribers import", "subscribers export", "subscribers list", "subscribers show",
        "subscribers unsubscribe", "subscribers delete", "serve", "sink", "inbound",
        "init", "edition show", "edition edit", "edition delete", "edition duplicate",
        "subscribers resend-confirmation", "report", "users add", "users list", "users remove",
        "users reset-password", "audit",
    }  # fmt: skip
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=lambda p: " ".join(p) or "root")
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    command = dict(_commands())[path]
    help_text = getattr(command, "help", None) or ""
    if getattr(command, "commands", None):
        assert help_text.strip(), f"{' '.join(path)} has no help"
        return
    assert "Example" in help_text, f"'newsletter {' '.join(path)} --help' shows no example"
    assert "newsletter " in help_text


def test_unknown_command_is_a_usage_error(run_cli: Callable[..., CLIResult]) -> None:
    result = run_cli("no-such-command")
    assert result.code == 2
    assert "Traceback" not in result.stderr


def test_typer_app_is_typer() -> None:
    assert isinstance(app, typer.Typer)


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=lambda p: " ".join(p) or "root")
def test_help_shows_readable_metavars(path: tuple[str, ...]) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*path, "--help"], prog_name="newsletter")
    assert result.exit_code == 0, result.output
    for python_type in ("<str>", "<int>", "<float>", "<path>", "<list", "[[", "...}..."):
        assert python_type not in result.output, (
            f"'newsletter {' '.join(path)} --help' shows {python_type}"
        )
