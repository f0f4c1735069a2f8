"""The one style of every list the command line prints: plain aligned columns.

A header row of lower-case column names, one line per item, two spaces between
columns, then a count on its own line (``12 subscribers``), all on stdout::

    id  status     email              name         topics
     1  confirmed  ada@example.com    Ada Lovelace  science
    1 subscriber

No borders, no colour, no wrapping: every item is one line that ``grep``, ``cut``
and ``sort`` can take. On a terminal (or with ``COLUMNS``) the lines fit its
width: free text (a headline, a subject, a name) is cut with "…", while
identifiers (ids, addresses) are never cut, so what is printed can be pasted
into the next command. Piped without ``COLUMNS``, nothing is cut. ``--json``
remains the complete, machine-readable form.

:class:`Lines` prints as it goes (``subscribers list`` at a million rows holds
one row at a time); :func:`print_list` measures a short list first, so its
columns are as wide as their widest value.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from rich.cells import cell_len, set_cell_size

__all__ = ["GAP", "Column", "Lines", "fit", "print_list", "terminal_width"]

GAP = "  "  # between two columns
_LEAST = 10  # a cut column keeps at least this many cells


@dataclass(frozen=True)
class Column:
    """One column: its name (the header), and how its cells are laid out.

    ``width`` is in terminal cells (None: the name's width, or for :func:`print_list`
    the widest value); ``right`` aligns numbers; a ``key`` (an identifier) is never
    cut, even when it overflows its width; a ``flex`` column (free text) takes the
    rest of the line on a terminal and is cut there with "…".
    """

    name: str
    width: int | None = None
    right: bool = False
    key: bool = False
    flex: bool = False


def terminal_width() -> int | None:
    """The width to fit lines into: ``COLUMNS``, else the terminal's; None for a pipe."""
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
    return set_cell_size(text, max(width - 1, 0)) + "…"


class Lines:
    """A list printed line by line as its rows arrive: header, rows, then a count.

    ``width`` is the line's width in cells (default: :func:`terminal_width`; None:
    no limit, nothing is cut). Flex columns share what the others leave; without a limit
    they are printed whole.
    """

    def __init__(
        self, columns: Sequence[Column], *, width: int | Literal["terminal"] | None = "terminal"
    ) -> None:
        self.columns = list(columns)
        self.limit = terminal_width() if width == "terminal" else width
        self.count = 0
        self.widths = self._layout()

    def _layout(self) -> list[int | None]:
        fixed = [None if c.flex else max(c.width or 0, cell_len(c.name)) for c in self.columns]
        if self.limit is None:
            # nothing is cut: a flex column is as wide as measured (print_list), else unpadded
            return [c.width if c.flex else fixed[i] for i, c in enumerate(self.columns)]
        flexible = [i for i, c in enumerate(self.columns) if c.flex]
        used = sum(w for w in fixed if w is not None) + len(GAP) * (len(self.columns) - 1)
        widths: list[int | None] = list(fixed)
        room = max(_LEAST * len(flexible), self.limit - used)
        # the narrowest first: what a short column does not need goes to the longer ones
        waiting = sorted(flexible, key=lambda i: self.columns[i].width or self.limit or 0)
        while waiting:
            share = room // len(waiting)
            i = waiting.pop(0)
            measured = self.columns[i].width
            fitted = share if measured is None else min(share, measured)
            widths[i] = max(fitted, cell_len(self.columns[i].name))  # a header is never cut
            room -= widths[i] or 0
        return widths

    def _cell(self, text: str, index: int) -> str:
        column, width = self.columns[index], self.widths[index]
        if width is None:
            return text
        size = cell_len(text)
        if size > width:
            # an identifier is never cut, and a pipe (no width) gets whole values
            return text if column.key or self.limit is None else fit(text, width)
        padding = " " * (width - size)
        return padding + text if column.right else text + padding

    def _write(self, cells: Sequence[str]) -> None:
        line = GAP.join(self._cell(str(cell), i) for i, cell in enumerate(cells))
        sys.stdout.write(line.rstrip() + "\n")

    def header(self) -> None:
        """Print the row of column names."""
        self._write([c.name for c in self.columns])

    def row(self, *cells: str) -> None:
        """Print one item's line."""
        self._write(cells)
        self.count += 1

    def summary(self, text: str) -> None:
        """Print the closing line (the count, or a summary) after the rows."""
        sys.stdout.write(text + "\n")


def print_list(
    columns: Sequence[Column],
    rows: Iterable[Sequence[str]],
    summary: str,
    *,
    wide: bool = False,
) -> None:
    """Print a short list in the one style, its columns as wide as their widest values.

    With ``wide``, nothing is cut, whatever the terminal's width. An empty list
    prints the summary alone.
    """
    held = [list(map(str, row)) for row in rows]
    if held:
        measured = [
            replace(
                c,
                width=max([cell_len(c.name), *(cell_len(row[i]) for row in held)]),
            )
            for i, c in enumerate(columns)
        ]
        lines = Lines(measured, width=None if wide else "terminal")
        lines.header()
        for row in held:
            lines.row(*row)
    sys.stdout.write(summary + "\n")
