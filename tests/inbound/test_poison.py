"""Poison messages: whatever one file in ``new/`` is, the run goes on with the next.

Each hostile file is written for real into a Maildir on disk: a multipart nested
1,000 levels deep, 20,000 parts, a 30 MB message, broken charsets and control
characters, a FIFO, a symlink, a directory. The command runs in a subprocess with
a timeout (a FIFO opened for reading would block it for ever).
"""

from __future__ import annotations

import json
import mailbox
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from newsletter.inbound.parse import MAX_DEPTH, Bounce, MailedUnsubscribe, Refused, classify
from newsletter.inbound.process import QUARANTINE, process_maildir
from subscribers import store
from subscribers.model import SubscriberStatus
from tests.inbound.mailkit import (
    add_readers,
    digest,
    dsn,
    folder,
    mailto_unsubscribe,
    return_path,
    status_of,
)
from tests.support.cli import CLIResult

RunCLI = Callable[..., CLIResult]
MB = 1024 * 1024


def deep(levels: int) -> bytes:
    """A multipart nested ``levels`` deep (1,000 levels: about 60 KB)."""
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(levels)
    )
    tail = b"".join(b"\n--b%d--\n" % i for i in reversed(range(levels)))
    return b"From: x@example.net\nSubject: deep\n" + head + b"\nbottom\n" + tail


def deep_messages(levels: int) -> bytes:
    """Attached messages (message/rfc822) inside each other, ``levels`` deep."""
    head = b"Content-Type: message/rfc822\n\n" * levels
    return b"From: x@example.net\nSubject: nested\n" + head + b"Subject: inner\n\nbottom\n"


def many_parts(count: int, *, typed: bool = False) -> bytes:
    """One multipart of ``count`` parts (with or without their own Content-Type)."""
    part = b"--b\nContent-Type: text/plain\n\nx\n" if typed else b"--b\n\nx\n"
    return (
        b"From: x@example.net\nSubject: parts\nContent-Type: multipart/mixed; boundary=b\n\n"
        + part * count
        + b"--b--\n"
    )


def huge(report: bytes, size: int) -> bytes:
    """``report`` with an attachment of ``size`` bytes added as its last part."""
    match = re.search(rb'boundary="([^"]+)"', report)
    assert match, report[:300]
    closing = b"--" + match.group(1) + b"--"
    attachment = (
        b"--" + match.group(1) + b"\nContent-Type: application/octet-stream\n\n"
        b"" + (b"A" * 76 + b"\n") * (size // 77) + b"\n"
    )
    return report.replace(closing, attachment + closing)


def bad_charsets(settings: Settings, recipient: str) -> bytes:
    """A DSN naming ``recipient`` whose text is every kind of broken."""
    raw = dsn(None, recipient, status="5.1.1")
    raw = raw.replace(
        b"Subject: Undelivered Mail Returned to Sender",
        b"Subject: =?x-no-such-charset?Q?caf=E9?= \xff\xfe\x1b[2J =?utf-8?B?////?=",
    )
    raw = raw.replace(
        b"mailbox problem",
        b"mailbox \x1b]0;pwned\x07 \xc3\x28 \x00 problem =?bogus?q?x?=",
    )
    return raw.replace(
        b'Content-Type: text/plain; charset="us-ascii"',
        b'Content-Type: text/plain; charset="x-bogus-\xff"',
    )


def test_one_run_survives_every_poison_and_acts_on_the_rest(
    run_cli: RunCLI, work_engine: Engine, settings: Settings, box: mailbox.Maildir, workdir: Path
) -> None:
    engine = work_engine
    readers = add_readers(engine, settings)
    new = Path(box._path) / "new"
    outside = workdir / "outside.eml"
    outside.write_bytes(mailto_unsubscribe(digest(settings, readers[4], "reader4@example.org")))
    reader2 = "reader2@example.org"
    files = {
        "0001.deep": deep(1000),
        "0002.parts": many_parts(20_000),
        "0003.typed-parts": many_parts(20_000, typed=True),
        "0004.nested-messages": deep_messages(100),
        # a genuine bounce for reader2, 30 MB long: only its first MiB is read
        "0005.huge": huge(
            dsn(None, reader2, to=return_path(settings, readers[2], reader2)), 30 * MB
        ),
        "0006.charsets": bad_charsets(settings, "reader3@example.org"),
        "0007.empty": b"",
    }
    for name, data in files.items():
        (new / name).write_bytes(data)
    os.mkfifo(new / "0008.fifo")
    (new / "0009.link").symlink_to(outside)  # a message, but not one of this Maildir's files
    (new / "0010.dir").mkdir()
    last = mailto_unsubscribe(digest(settings, readers[1], "reader1@example.org"))
    (new / "9999.unsubscribe").write_bytes(last)

    dry = run_cli("inbound", "returns", "--dry-run", timeout=120)
    assert dry.code == 0, dry.stderr
    assert len(folder(box, "new")) == 11

    result = run_cli("inbound", "returns", "--json", timeout=120)
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    by_file = {a["file"]: a for a in report["actions"]}
    assert report["messages"] == 11
    assert {name: by_file[name]["kind"] for name in by_file} == {
        "0001.deep": "quarantined",
        "0002.parts": "quarantined",
        "0003.typed-parts": "quarantined",
        "0004.nested-messages": "quarantined",
        "0005.huge": "bounced",
        "0006.charsets": "unverified",
        "0007.empty": "malformed",
        "0008.fifo": "skipped",
        "0009.link": "skipped",
        "0010.dir": "skipped",
        "9999.unsubscribe": "unsubscribed",
    }
    assert "more than 1000 MIME delimiter lines" in by_file["0002.parts"]["detail"]
    assert "more than 200 MIME parts" in by_file["0003.typed-parts"]["detail"]
    assert "a FIFO" in by_file["0008.fifo"]["detail"]
    assert "a symbolic link" in by_file["0009.link"]["detail"]
    assert "a directory" in by_file["0010.dir"]["detail"]
    assert report["quarantined"] == 4
    assert report["partly_read"] == 1
    assert "\x1b" not in result.stdout

    # the rest was acted on: what came after the poison, and the big genuine bounce
    assert status_of(engine, readers[1]) is SubscriberStatus.UNSUBSCRIBED
    assert status_of(engine, readers[2]) is SubscriberStatus.BOUNCED
    assert status_of(engine, readers[3]) is SubscriberStatus.CONFIRMED
    assert status_of(engine, readers[4]) is SubscriberStatus.CONFIRMED  # the link was not read
    with engine.connect() as conn:
        [event] = [e for e in store.events(conn, readers[3]) if e.kind == "bounce_unverified"]
    # stored clean: no control character, no undecodable byte
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]", json.dumps(event.detail))

    # put aside for good; the special files stay where they are, unopened
    quarantine = Path(box._path) / QUARANTINE
    assert sorted(p.name for p in (quarantine / "new").iterdir()) == [
        "0001.deep",
        "0002.parts",
        "0003.typed-parts",
        "0004.nested-messages",
    ]
    assert all((quarantine / sub).is_dir() for sub in ("cur", "tmp"))
    assert folder(box, "new") == ["0007.empty", "0008.fifo", "0009.link", "0010.dir"]

    again = run_cli("inbound", "returns", timeout=120)
    assert again.code == 0, again.stderr
    assert "4 new messages" in again.stdout
    assert "0 quarantined, 3 skipped" in again.stdout


def test_a_30_mb_message_costs_little_memory(
    sqlite_engine: Engine, sqlite_url: str, settings: Settings, tmp_path: Path
) -> None:
    box = mailbox.Maildir(tmp_path / "big", create=True)
    (Path(box._path) / "new" / "1.huge").write_bytes(huge(dsn(None, "x@example.org"), 30 * MB))
    script = textwrap.dedent(
        f"""
        import resource
        from pathlib import Path
        from newsletter.database import open_database
        from newsletter.inbound.process import process_maildir
        engine = open_database({sqlite_url!r})
        with engine.connect() as conn:
            pass
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = process_maildir(engine, b"k" * 32, Path({str(box._path)!r}))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024, getattr(report, "partly_read", None))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    grown_mb, partly = done.stdout.split()
    assert int(grown_mb) < 40, f"a 30 MB message cost {grown_mb} MB"  # it cost 364 MB before
    assert partly == "1"  # read in part


def test_classify_refuses_what_would_exhaust_the_parser() -> None:
    assert classify(deep(1000)) == Refused("more than 200 MIME parts")
    assert classify(deep(150)) == Refused(f"MIME parts nested more than {MAX_DEPTH} levels deep")
    assert classify(deep_messages(100)) == Refused(
        f"MIME parts nested more than {MAX_DEPTH} levels deep"
    )
    assert classify(many_parts(20_000)) == Refused("more than 1000 MIME delimiter lines")
    # ordinary depth and size pass
    assert not isinstance(classify(deep(8)), Refused)
    assert not isinstance(classify(many_parts(50, typed=True)), Refused)


def test_broken_charsets_are_read_not_raised(settings: Settings) -> None:
    bounce = classify(bad_charsets(settings, "reader3@example.org"))
    assert isinstance(bounce, Bounce)
    assert "\x1b" not in bounce.recipients[0].diagnostic
    assert "\x00" not in bounce.recipients[0].diagnostic
    asked = classify(
        b"From: \xff\xfe <r@example.org>\nSubject: unsubscribe u.1.2.AAAAAAAAAAAAAAAAAAAAAA\n"
        b"Content-Type: text/plain; charset=utf-7\n\n+ZeVnLIqe-\n"
    )
    assert isinstance(asked, MailedUnsubscribe)


def test_a_file_that_vanishes_or_a_hidden_one_is_no_error(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    new = Path(box._path) / "new"
    (new / ".hidden").write_bytes(b"Subject: half-written\n")
    (new / "dangling").symlink_to(new / "nowhere")
    report = process_maildir(engine, settings.secret(), Path(box._path))
    assert [(a.file, a.kind) for a in report.actions] == [("dangling", "skipped")]
    assert report.messages == 1
