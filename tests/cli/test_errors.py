"""Bad configuration and bad paths are one plain line on stderr, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import CLIResult

Run = Callable[..., CLIResult]


def one_line(result: CLIResult) -> str:
    assert result.code == 1, result
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"NEWSLETTER_SEND_CONCURRENCY": "abc"},
            "error: NEWSLETTER_SEND_CONCURRENCY must be a whole number (got 'abc')",
        ),
        (
            {"NEWSLETTER_SEND_CONCURRENCY": "0"},
            "error: NEWSLETTER_SEND_CONCURRENCY must be at least 1 (got '0')",
        ),
        (
            {"NEWSLETTER_DATABASE_URL": "mysql://user@db/news"},
            "error: NEWSLETTER_DATABASE_URL: mysql databases are not supported; "
            "use sqlite:///FILE.db or postgresql://USER@HOST/NAME",
        ),
        (
            {"NEWSLETTER_DIRECTION": "up"},
            "error: NEWSLETTER_DIRECTION must be one of 'ltr' or 'rtl' (got 'up')",
        ),
    ],
)
def test_settings_errors_are_plain_sentences(
    run_cli: Run, env: dict[str, str], expected: str
) -> None:
    line = one_line(run_cli("subscribers", "list", env=env))
    assert line == expected
    for pydantic_wording in ("Input should", "Value error", "Extra inputs"):
        assert pydantic_wording not in line


def test_a_malformed_toml_names_line_and_column(run_cli: Run, workdir: Path) -> None:
    (workdir / "newsletter.toml").write_text('site_name = "News\n[brand\n')
    line = one_line(run_cli("articles", "list"))
    assert line.startswith("error: newsletter.toml: ")
    assert "line 1, column" in line


def test_an_unknown_toml_setting_is_named(run_cli: Run, workdir: Path) -> None:
    (workdir / "newsletter.toml").write_text("sned_rate = 5\n")
    line = one_line(run_cli("articles", "list"))
    assert (
        line
        == "error: newsletter.toml: unknown setting 'sned_rate' (see the README's settings table)"
    )


def test_an_unwritable_export_path_is_one_line(run_cli: Run, workdir: Path) -> None:
    assert run_cli("init").code == 0
    line = one_line(run_cli("subscribers", "export", "-o", "/nonexistent/dir/x.csv"))
    assert line == "error: No such file or directory: /nonexistent/dir/x.csv"
