"""``newsletter inbound``: real DSNs, ARF reports and mailed unsubscribes in a real Maildir.

The returned messages are real personalised digests from the compose path
(MessageBuilder), so the tokens in their List-Unsubscribe are the ones a send
puts there; a DSN comes back to the reader's VERP return path (the one a send
uses as MAIL FROM) unless a test says otherwise. The forgeries are in
test_forgery.py, the hostile files in test_poison.py.
"""

from __future__ import annotations

import json
import mailbox
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from newsletter.core.errors import InputError
from newsletter.inbound.parse import (
    Bounce,
    Complaint,
    MailedUnsubscribe,
    Malformed,
    NotUnderstood,
    classify,
)
from newsletter.inbound.process import process_maildir
from subscribers import store
from subscribers.model import SubscriberStatus
from tests.inbound.mailkit import (
    add_readers,
    arf,
    digest,
    dsn,
    event_kinds,
    folder,
    mailto_unsubscribe,
    return_path,
    status_of,
)
from tests.support.cli import CLIResult

RunCLI = Callable[..., CLIResult]


def fill(box: mailbox.Maildir, settings: Settings, ids: list[int]) -> dict[str, str]:
    """One of each kind of inbound mail; the Maildir key of each, by name."""
    mail = {n: digest(settings, ids[n], f"reader{n}@example.org") for n in range(6)}
    verp = {n: return_path(settings, ids[n], f"reader{n}@example.org") for n in range(2)}
    keys = {
        # folded like the store
        "hard": box.add(dsn(mail[0], "Reader0@Example.ORG", to=verp[0])),
        "delayed": box.add(
            dsn(mail[1], "reader1@example.org", action="delayed", status="4.4.7", to=verp[1])
        ),
        "complaint": box.add(arf(mail[2])),
        "unsubscribe": box.add(mailto_unsubscribe(mail[3])),
        "forged": box.add(mailto_unsubscribe(mail[4], tamper=True)),
        "autoreply": box.add(b"From: reader5@example.org\nSubject: Out of office\n\nAway.\n"),
    }
    garbage = Path(box._path) / "new" / "1700000000.garbage.host"
    garbage.write_bytes(b"\x00\xff\xfe not an email at all\n\x00")
    keys["garbage"] = garbage.name
    return keys


def test_cli_acts_on_each_kind_once(
    run_cli: RunCLI,
    work_engine: Engine,
    settings: Settings,
    box: mailbox.Maildir,
) -> None:
    engine = work_engine
    readers = add_readers(engine, settings)
    keys = fill(box, settings, readers)

    first = run_cli("inbound", "returns", "--json")
    assert first.code == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["counts"] == {
        "bounced": 1,
        "soft_bounce": 0,
        "deferred": 1,
        "complaint": 1,
        "unsubscribed": 1,
        "unverified": 0,
        "ignored": 0,
        "forged": 1,
        "malformed": 1,
        "not_understood": 1,
        "quarantined": 0,
        "skipped": 0,
    }
    by_file = {a["file"]: a for a in report["actions"]}
    assert by_file[keys["garbage"]]["kind"] == "malformed"
    assert by_file[keys["hard"]]["address"] == "r•••@example.org"  # masked
    assert by_file[keys["hard"]]["detail"] == (
        "hard bounce 5.1.1 (VERP return path and their token in the returned message)"
    )
    assert "reader0@example.org" not in first.stdout
    assert "bounces+" not in first.stdout  # no return path (a token) in the output

    assert [status_of(engine, i) for i in readers] == [
        SubscriberStatus.BOUNCED,
        SubscriberStatus.CONFIRMED,  # a delay changes nothing...
        SubscriberStatus.COMPLAINED,  # found by the token: the To was redacted
        SubscriberStatus.UNSUBSCRIBED,
        SubscriberStatus.CONFIRMED,  # the forged token unsubscribed nobody
        SubscriberStatus.CONFIRMED,
    ]
    assert status_of(engine, readers[1]) is SubscriberStatus.CONFIRMED
    assert "deferred" in event_kinds(engine, readers[1])  # ...but is recorded
    with engine.connect() as conn:
        unsubscribed = [e for e in store.events(conn, readers[3]) if e.kind == "unsubscribed"]
    assert unsubscribed[0].detail["source"] == "mailto"

    # the understood ones moved to cur/ flagged Seen; the rest wait in new/
    assert folder(box, "new") == sorted([keys["autoreply"], keys["garbage"]])
    seen = {name.split(":")[0]: name for name in folder(box, "cur")}
    assert set(seen) == {keys[k] for k in ("hard", "delayed", "complaint", "unsubscribe", "forged")}
    assert all(name.endswith(":2,S") for name in seen.values())
    moved = mailbox.Maildir(box._path, create=False)[keys["hard"]]
    assert isinstance(classify(moved.as_bytes()), Bounce)  # still the same report

    # a second run changes nothing: nothing new but what it cannot read
    events_before = event_kinds(engine, readers[1])
    second = run_cli("inbound", "returns")
    assert second.code == 0, second.stderr
    assert "2 new messages" in second.stdout
    assert "0 bounced, 0 soft bounces, 0 deferred, 0 complaints, 0 unsubscribed" in second.stdout
    assert f"malformed: {keys['garbage']}:" in second.stdout
    assert event_kinds(engine, readers[1]) == events_before
    assert status_of(engine, readers[0]) is SubscriberStatus.BOUNCED


def test_dry_run_reports_and_changes_nothing(
    run_cli: RunCLI,
    work_engine: Engine,
    settings: Settings,
    box: mailbox.Maildir,
) -> None:
    engine = work_engine
    readers = add_readers(engine, settings)
    keys = fill(box, settings, readers)
    before = folder(box, "new")

    result = run_cli("inbound", "returns", "--dry-run")
    assert result.code == 0, result.stderr
    assert "dry run, nothing changed: 7 new messages" in result.stdout
    assert "1 bounced, 0 soft bounces, 1 deferred, 1 complaints, 1 unsubscribed" in result.stdout
    assert f"bounced: {keys['hard']} r•••@example.org: hard bounce 5.1.1 (" in result.stdout
    assert folder(box, "new") == before
    assert folder(box, "cur") == []
    assert {status_of(engine, i) for i in readers} == {SubscriberStatus.CONFIRMED}
    assert "deferred" not in event_kinds(engine, readers[1])


def test_not_a_maildir_is_one_clear_line(run_cli: RunCLI, workdir: Path) -> None:
    (workdir / "plain").mkdir()
    result = run_cli("inbound", "plain")
    assert result.code == 1
    assert result.stderr.strip() == "error: plain: not a Maildir (it needs new/ and cur/ folders)"
    assert "Traceback" not in result.stderr


def test_forwarded_address_is_found_by_the_token(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    # the final recipient is where reader0 forwards to: only the signed token names them
    original = digest(settings, readers[0], "reader0@example.org")
    box.add(dsn(original, "ann@forwarded.example.net", headers_only=True))
    report = process_maildir(engine, settings.secret(), Path(box._path))
    assert report.counts()["bounced"] == 1
    assert report.actions[0].subscriber_id == readers[0]
    assert status_of(engine, readers[0]) is SubscriberStatus.BOUNCED


def test_bounce_returning_a_tampered_token_is_forged(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    original = digest(settings, readers[0], "reader0@example.org")
    # reader0's signature on reader1's id
    mine, theirs = (f"unsubscribe/u.{i:x}.".encode() for i in readers[:2])
    tampered = original.replace(mine, theirs, 1)
    box.add(dsn(tampered, "reader0@example.org"))
    report = process_maildir(engine, settings.secret(), Path(box._path))
    assert [a.kind for a in report.actions] == ["forged"]
    assert status_of(engine, readers[0]) is SubscriberStatus.CONFIRMED


def test_bounce_returning_another_readers_message_is_only_recorded(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    # a report naming reader1 but returning reader0's message: act on neither
    original = digest(settings, readers[0], "reader0@example.org")
    box.add(dsn(original, "reader1@example.org"))
    report = process_maildir(engine, settings.secret(), Path(box._path))
    assert [a.kind for a in report.actions] == ["unverified"]
    assert report.actions[0].subscriber_id == readers[1]
    assert {status_of(engine, i) for i in readers[:2]} == {SubscriberStatus.CONFIRMED}
    assert "bounce_unverified" in event_kinds(engine, readers[1])


def test_complaint_by_the_return_path_and_other_feedback_is_ignored(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    # a returned message with no token, but the loop reports to the VERP return path
    plain = EmailMessage()
    plain["From"] = settings.sender
    plain["To"] = "redacted@example.net"
    plain["Subject"] = "An old message without List-Unsubscribe"
    plain.set_content("hello\n")
    verp = return_path(settings, readers[2], "reader2@example.org")
    box.add(arf(plain.as_bytes(), redact_to=False, to=verp))
    box.add(arf(digest(settings, readers[3], "reader3@example.org"), feedback_type="not-spam"))
    report = process_maildir(engine, settings.secret(), Path(box._path))
    assert sorted(a.kind for a in report.actions) == ["complaint", "ignored"]
    assert status_of(engine, readers[2]) is SubscriberStatus.COMPLAINED
    assert status_of(engine, readers[3]) is SubscriberStatus.CONFIRMED


def test_hard_bounce_for_an_unsubscribed_reader_keeps_their_state(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    with engine.begin() as conn:
        store.unsubscribe(conn, readers[0])
    box.add(dsn(digest(settings, readers[0], "reader0@example.org"), "reader0@example.org"))
    report = process_maildir(engine, settings.secret(), Path(box._path))
    assert [a.kind for a in report.actions] == ["ignored"]
    assert "already unsubscribed" in report.actions[0].detail
    assert status_of(engine, readers[0]) is SubscriberStatus.UNSUBSCRIBED
    assert report.moved == 1


def test_classify_reads_the_report_parts(settings: Settings) -> None:
    original = digest(settings, 7, "reader7@example.org")
    bounce = classify(dsn(original, "reader7@example.org", headers_only=True))
    assert isinstance(bounce, Bounce)
    assert bounce.recipients[0].hard
    assert bounce.returned is not None
    assert bounce.returned.to == "reader7@example.org"
    assert bounce.returned.token is not None
    assert bounce.returned.token.startswith("u.7.")

    delayed = classify(dsn(None, "x@example.org", action="delayed", status="4.4.7"))
    assert isinstance(delayed, Bounce)
    assert delayed.recipients[0].delayed
    assert not delayed.recipients[0].soft
    assert delayed.returned is None

    complaint = classify(arf(original))
    assert isinstance(complaint, Complaint)
    assert complaint.feedback_type == "abuse"

    asked = classify(mailto_unsubscribe(original))
    assert isinstance(asked, MailedUnsubscribe)
    assert asked.token.startswith("u.7.")

    body = EmailMessage()
    body["From"] = "reader7@example.org"
    body["Subject"] = "Re: please"
    body.set_content(f"\n  unsubscribe {asked.token}  \n\nthanks\n")
    in_body = classify(body.as_bytes())
    assert isinstance(in_body, MailedUnsubscribe)
    assert in_body.token == asked.token

    # a person writing is for a human to read, not a forged token
    words = EmailMessage()
    words["Subject"] = "unsubscribe me"
    words.set_content("please\n")
    assert isinstance(classify(words.as_bytes()), NotUnderstood)


def test_global_dsn_with_a_utf8_recipient() -> None:
    raw = (
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
        "--b\nContent-Type: text/plain\n\nfailed\n"
        "--b\nContent-Type: message/global-delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.org\n\n"
        "Original-Recipient: utf-8; jörg@example.org\n"
        "Final-Recipient: rfc822; joerg@example.org\nAction: failed\nStatus: 5.1.1\n"
        "--b--\n"
    ).encode()
    bounce = classify(raw)
    assert isinstance(bounce, Bounce)
    assert [(r.address, r.hard) for r in bounce.recipients] == [("jörg@example.org", True)]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\x01\x02",
        b"Content-Type: multipart/report; report-type=delivery-status\n\nno parts\n",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n"
        b"--x\nContent-Type: text/plain\n\nonly text\n--x--\n",
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\n\n"
        b"--x\nContent-Type: message/feedback-report\n\nUser-Agent: x\n--x--\n",
    ],
)
def test_broken_messages_are_malformed_never_raised(raw: bytes) -> None:
    assert isinstance(classify(raw), Malformed)


def test_not_a_maildir_from_the_library(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a Maildir"):
        process_maildir(engine, settings.secret(), tmp_path / "missing")
