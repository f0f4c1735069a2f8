"""A Maildir read safely, one file at a time: never following a link, never blocking.

A FIFO, device, socket, symlink or directory in ``new/`` is described, never
opened; a regular file is read only up to a limit, so memory stays bounded
however big the file is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from newsletter.core.errors import InputError

__all__ = ["check_maildir", "file_type", "printable_name", "read_message", "seen_name"]


def check_maildir(path: Path) -> None:
    """:class:`InputError` naming ``path`` unless it is a Maildir (new/ and cur/)."""
    if not (path / "new").is_dir() or not (path / "cur").is_dir():
        raise InputError("not a Maildir (it needs new/ and cur/ folders)", source=str(path))


def printable_name(name: str) -> str:
    """A file name as it can be shown: printable, at most 200 characters."""
    # a file name may hold any byte but "/": show it printable (and never crash printing it)
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def file_type(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO", "a symbolic link")."""
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def read_message(path: Path, limit: int) -> tuple[bytes, bool] | str:
    """The file's first ``limit`` bytes and whether there is more; or why it was skipped.

    Never follows a link and never opens anything but a regular file (a FIFO
    would block the run for ever, a device could be anything).
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "vanished before it could be read"
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return f"{file_type(info.st_mode)}, not a message: left alone, not opened"
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return f"cannot be opened ({exc.strerror})"
    try:
        # swapped for something else between lstat and open: O_NOFOLLOW and
        # O_NONBLOCK kept the open harmless, this keeps it unread
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            return f"{file_type(opened.st_mode)}, not a message: left alone, not read"
        chunks: list[bytes] = []
        wanted = limit + 1
        while wanted > 0:
            chunk = os.read(fd, min(wanted, 256 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return data[:limit], len(data) > limit


def seen_name(name: str) -> str:
    """The Maildir name of a message once read: its info flags with S (Seen) added."""
    key, _, info = name.partition(":")
    flags = set(info[2:]) if info.startswith("2,") else set()
    return f"{key}:2,{''.join(sorted(flags | {'S'}))}"
