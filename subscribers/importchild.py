"""An import's parsing in a child process, on the other core, while the parent writes.

Parsing a row (the csv module, the address rules, the keyed hash) is Python.
In a thread (:func:`subscribers.importrows.parsed_ahead`) it takes turns under
the GIL with the writer's own Python (binding the staged values), so on a large
file the two barely overlap. :func:`parsed_in_child` runs the same chunk
iterator in a forked child instead: the child inherits the open file, the
layout, the encoder and the hashing keys as they are (nothing about the import
is re-read or sent to it), and hands each chunk back through a pipe.

Promises:

- the same chunks, in the same order, as iterating ``chunks`` directly;
- memory stays flat: the pipe holds one chunk, so the child is at most one
  chunk ahead; a chunk crosses as its staged values only (a few plain
  tuples, or COPY text, per address);
- the child never touches the database (it writes only to the pipe), ignores
  Ctrl-C (the parent stops it), and ends when the parent closes the iterator,
  fails, or goes away (its next write to the pipe fails); an error raised
  while reading is raised in the parent, as it would be without the child;
- :func:`fork_is_safe` says when forking is sound: only a process with a
  single thread may fork (a lock held by another thread would stay held in the
  child), so the web console, which serves from threads, parses in a thread.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Generator, Iterator
from multiprocessing.connection import Connection
from typing import Any, BinaryIO

from newsletter.core.errors import SubscriberInputError
from subscribers.importrows import Chunk

__all__ = ["CHILD_THRESHOLD", "fork_is_safe", "parsed_in_child", "worth_a_child"]

#: below this many bytes of CSV a thread is enough: the child would parse one chunk or two
CHILD_THRESHOLD = 2 * 1024 * 1024


def fork_is_safe() -> bool:
    """True in a process that can fork soundly: on Linux, with only the main thread.

    (On macOS system libraries may hold threads of their own, which is why Python
    starts processes there by spawning them; an import there parses in a thread.)
    """
    return sys.platform == "linux" and threading.active_count() == 1


def worth_a_child(stream: BinaryIO) -> bool:
    """True when ``stream`` has at least :data:`CHILD_THRESHOLD` bytes left and forking is safe.

    A stream that cannot tell its size (a pipe) is read in a thread.
    """
    if not fork_is_safe():
        return False
    try:
        if not stream.seekable():
            return False
        here = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError):
        return False
    return end - here >= CHILD_THRESHOLD


def _produce(chunks: Iterator[Chunk], pipe: Connection, parents_end: Connection) -> None:
    """The child: parse and send every chunk, then ``done`` or the error met."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the copy of the reading end forked with us: while open, a write could never fail
    # for want of a reader, and a child whose parent died would wait for ever
    parents_end.close()
    # The cyclic garbage collector would run every 700 allocations and, now and then,
    # walk the whole heap forked from the parent (touching every page of it, which
    # the fork shares until written): a fifth of the parsing time. A chunk's rows
    # form no cycles, so it runs once per chunk instead, over what that chunk made.
    gc.freeze()
    gc.disable()
    try:
        try:
            for chunk in chunks:
                pipe.send_bytes(pickle.dumps(("chunk", chunk), protocol=5))
                del chunk
                gc.collect(0)
        except (BrokenPipeError, ConnectionResetError):
            return  # the parent went away or stopped reading: nothing left to do
        except BaseException as exc:  # handed to the parent, raised there
            pipe.send_bytes(_error(exc))
            return
        pipe.send_bytes(pickle.dumps(("done", None)))
    except (BrokenPipeError, ConnectionResetError):
        return
    finally:
        pipe.close()


def _error(exc: BaseException) -> bytes:
    """An error as it crosses the pipe; one that would not come back whole becomes a plain one.

    Tried both ways here: an exception class whose constructor wants other
    arguments pickles, then fails to unpickle in the parent.
    """
    try:
        blob = pickle.dumps(("error", exc))
        pickle.loads(blob)  # noqa: S301 (our own bytes, just made)
    except Exception:  # any pickling failure: the message still reaches the user
        return pickle.dumps(("error", SubscriberInputError(f"could not be read: {exc}")))
    return blob


def parsed_in_child(chunks: Iterator[Chunk]) -> Generator[Chunk, None, None]:
    """The chunks of ``chunks``, each parsed in a forked child while the caller writes the last.

    ``chunks`` must not have been started; the caller must not read the stream
    under it any more (the child reads it from here on). Call it only where
    :func:`fork_is_safe` holds, or where the caller knows no other thread holds a lock.
    """
    # what the parent buffered for stdout would otherwise be written by both processes
    sys.stdout.flush()
    sys.stderr.flush()
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_produce,
        args=(chunks, sender, receiver),
        name="newsletter-import-parser",
        daemon=True,
    )
    child.start()
    sender.close()  # the child's end: at its exit, the parent reads end-of-file
    try:
        while True:
            try:
                # bytes our own child wrote, over a pipe no one else holds
                message: tuple[str, Any] = pickle.loads(receiver.recv_bytes())  # noqa: S301
            except EOFError:
                child.join(5)
                status = child.exitcode
                raise SubscriberInputError(
                    f"the import's reading process ended unexpectedly (exit status {status}); "
                    "the chunks committed so far stay: run the same import again to finish"
                ) from None
            kind, payload = message
            if kind == "done":
                return
            if kind == "error":
                raise payload
            yield payload
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()
        child.join()
        child.close()
