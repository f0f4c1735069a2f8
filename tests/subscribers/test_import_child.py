"""Parsing an import in a forked child: the same chunks, errors raised in the parent, and a
child that never outlives the import (closed early, failed, or its parent killed)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.core.errors import SubscriberInputError
from subscribers import importchild, suppressions
from subscribers.bulk import Encoder
from subscribers.csvio import read_records
from subscribers.importer import _header
from subscribers.importrows import Chunk, Layout, read_chunks

SECRET = b"test-secret-key-of-a-usual-length-0123456789"
ROOT = Path(__file__).resolve().parents[2]
WAIT = 30  # seconds: only reached when something is broken


def _csv(count: int) -> bytes:
    lines = ["email,name,topics,status,plan"]
    for i in range(count):
        email = f"Reader{i}@Example.com" if i % 50 else f"not-an-address-{i}"
        lines.append(f"{email},Reader {i},uk;world,{'confirmed' if i % 3 else ''},p{i % 4}")
        if i == 7:
            lines.append("reader7@example.com,Again,sport,,")  # a duplicate, merged in its chunk
    return ("\n".join(lines) + "\n").encode()


def _chunks(data: bytes, dialect: sa.Dialect, size: int = 700) -> Iterator[Chunk]:
    records = read_records(io.BytesIO(data), "list.csv")
    header = next(records)
    layout = Layout.from_header(_header(header.fields, "list.csv", header.line))
    encoder = Encoder(dialect, datetime(2026, 3, 1, tzinfo=UTC))
    hashes = suppressions.hashers(SECRET)
    return read_chunks(records, layout, size=size, confirmed=False, encoder=encoder, hashes=hashes)


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + WAIT
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql+psycopg"])
def test_the_child_hands_back_the_very_chunks_the_reader_makes(dialect: str) -> None:
    data = _csv(2500)
    engine_dialect = sa.create_engine(f"{dialect}://").dialect
    direct = list(_chunks(data, engine_dialect))
    with_child = list(importchild.parsed_in_child(_chunks(data, engine_dialect)))
    assert len(with_child) == len(direct) == 4
    for ours, theirs in zip(with_child, direct, strict=True):
        assert ours == theirs  # count, staged values (or COPY text), rejected lines, duplicates
    assert sum(c.duplicates for c in with_child) == 1
    assert sum(len(c.rejected) for c in with_child) == 50


def _failing(error: BaseException) -> Iterator[Chunk]:
    yield Chunk(count=1, staged=[("a@example.com",)])
    raise error


def test_an_error_met_in_the_child_is_raised_in_the_parent_with_its_message() -> None:
    error = SubscriberInputError("is not UTF-8", source="list.csv", line=7)
    ahead = importchild.parsed_in_child(_failing(error))
    assert next(ahead).count == 1  # the chunk read before the error still arrives first
    with pytest.raises(SubscriberInputError, match=r"^list\.csv:7: is not UTF-8$"):
        next(ahead)


class _Unpicklable(Exception):
    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("cannot pickle this")


class _WantsTwo(Exception):
    def __init__(self, what: str, where: str) -> None:
        super().__init__(f"{what} at {where}")  # pickles, but cannot be rebuilt from its args


@pytest.mark.parametrize(
    "error", [_Unpicklable("the disk went away"), _WantsTwo("the disk went away", "sector 7")]
)
def test_an_error_that_cannot_cross_the_pipe_still_ends_the_import_with_its_message(
    error: Exception,
) -> None:
    with pytest.raises(SubscriberInputError, match="could not be read: the disk went away"):
        list(importchild.parsed_in_child(_failing(error)))


def _endless() -> Iterator[Chunk]:
    while True:
        yield Chunk(count=1, staged=[("a@example.com",)])


def test_closing_the_import_early_stops_the_child() -> None:
    ahead = importchild.parsed_in_child(_endless())
    next(ahead)
    children = [p for p in __import__("multiprocessing").active_children()]
    assert [p.name for p in children] == ["newsletter-import-parser"]
    pid = children[0].pid
    assert pid is not None
    assert not _gone(pid)
    ahead.close()
    assert _gone(pid)


def test_a_child_killed_mid_import_ends_the_import_with_one_clear_error() -> None:
    ahead = importchild.parsed_in_child(_endless())
    next(ahead)
    pid = __import__("multiprocessing").active_children()[0].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    # the chunks already in the pipe may still come first, then the error
    with pytest.raises(SubscriberInputError, match=r"reading process ended unexpectedly"):
        list(ahead)
    assert _gone(pid)


def test_the_child_ends_by_itself_when_its_parent_is_killed(tmp_path: Path) -> None:
    # a parent that takes one chunk and then hangs, holding the child's next chunk unread
    script = textwrap.dedent(
        f"""
        import multiprocessing, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from tests.subscribers.test_import_child import _endless
        from subscribers import importchild
        ahead = importchild.parsed_in_child(_endless())
        next(ahead)
        print(multiprocessing.active_children()[0].pid, flush=True)
        time.sleep({WAIT})
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert not _gone(child)
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(WAIT)
            assert _wait_gone(child), "the parsing child outlived its killed parent"
        finally:
            parent.kill()


def test_a_child_is_worth_it_only_for_a_large_seekable_stream_in_a_single_thread() -> None:
    big = io.BytesIO(b"email\n" + b"reader@example.com\n" * (importchild.CHILD_THRESHOLD // 19))
    big.seek(6)  # what is left counts, from where the stream stands
    small = io.BytesIO(b"email\nreader@example.com\n")
    probe = textwrap.dedent(
        f"""
        import io, os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from subscribers import importchild
        size = importchild.CHILD_THRESHOLD
        big, small = io.BytesIO(b"x" * size), io.BytesIO(b"x" * (size - 1))
        read, write = os.pipe()
        pipe = os.fdopen(read, "rb")
        print(importchild.worth_a_child(big), importchild.worth_a_child(small),
              importchild.worth_a_child(pipe))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    # in a fresh single-threaded process: the large stream only, never a pipe
    assert done.stdout.split() == ["True", "False", "False"]
    # a process with another thread running never forks
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not importchild.fork_is_safe()
        assert not importchild.worth_a_child(big)
        assert not importchild.worth_a_child(small)
    finally:
        stop.set()
        other.join()
    assert big.tell() == 6  # the stream is left where it stood
