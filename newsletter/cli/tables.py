"""Tables that stay readable in an 80-column terminal: compact borders, cut text with an ellipsis.

Long free text (a headline, a subject) gets one line each, cut with "…" at the
terminal's width, instead of wrapping one word per line; ``--wide`` prints
every column in full at its natural width (for wide terminals and pipes), and
``--json`` remains the complete, machine-readable form.
"""

from __future__ import annotations

import os
import sys

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

__all__ = ["compact_table", "fit", "print_table", "rest_of_line", "terminal_width"]

_GAP = 3  # between two columns: padding, the (blank) divider, padding


def compact_table(title: str) -> Table:
    """A table with a header rule and no side borders: every column keeps more room for text."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )


def rest_of_line(console: Console, *widths: int, least: int = 20) -> int:
    """The width left for one last column after columns of ``widths`` (at least ``least``)."""
    return max(least, console.width - sum(widths) - _GAP * len(widths))


def print_table(console: Console, table: Table, *, wide: bool = False) -> None:
    """Print ``table``; with ``wide``, at its natural width however narrow the terminal."""
    if wide:
        unbounded = console.options.update_width(100_000)
        natural = Measurement.get(console, unbounded, table).maximum
        if natural > console.width:
            # Console.print never goes past the console's width: print through a wider one
            console = Console(file=console.file, width=natural, highlight=False)
    with console.capture() as captured:
        console.print(table, markup=False)
    # cells are padded to the column's width: no trailing blanks in a pipe or a wrapped line
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def terminal_width() -> int | None:
    """The width to fit plain lines into: ``COLUMNS``, else the terminal's; None for a pipe."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return os.get_terminal_size(sys.stdout.fileno()).columns
    return None


def fit(text: str, width: int) -> str:
    """``text`` padded or cut to exactly ``width`` terminal cells, cut text ending in "…"."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"
