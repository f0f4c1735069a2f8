"""Forged bounces and complaints: reports that prove nothing change nobody.

Each attack is performed for real: the forged message is written into a real
Maildir on disk and read by :func:`process_maildir` against a real database
(SQLite and PostgreSQL). The Return-Path and abuse addresses are public, so the
attacker may write anything to them; what they cannot make is a genuine VERP
return path or token for somebody else.
"""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from newsletter.core.config import Settings
from newsletter.delivery.engine import SendOptions, send_edition
from newsletter.inbound.process import InboundReport, process_maildir
from subscribers import store
from subscribers.bounces import bounce_token_owner, verp_token
from subscribers.model import SubscriberStatus
from tests.inbound.mailkit import (
    add_readers,
    arf,
    digest,
    dsn,
    event_kinds,
    return_path,
    status_of,
)
from tests.plugins.smtp import SMTPServer
from tests.support.sendkit import populate, with_smtp

VICTIM = "reader0@example.org"
OTHER = "reader1@example.org"
ATTACKER = "reader5@example.org"
CONFIRMED = SubscriberStatus.CONFIRMED


def run(
    engine: Engine, settings: Settings, box: mailbox.Maildir, now: datetime | None = None
) -> InboundReport:
    return process_maildir(engine, settings.secret(), Path(box._path), now=now)


def kinds(report: InboundReport) -> list[str]:
    return [a.kind for a in report.actions]


# --- the three attacks of the issue --------------------------------------------------


def test_dsn_without_returned_message_naming_a_victim_bounces_nobody(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    # no returned message, sent to the public bounce address: anyone can write this
    box.add(dsn(None, VICTIM))
    box.add(dsn(None, VICTIM, status="4.2.2"))  # a soft one, scored? never without evidence
    report = run(engine, settings, box)
    assert kinds(report) == ["unverified", "unverified"]
    assert report.counts()["unverified"] == 2
    assert status_of(engine, readers[0]) is CONFIRMED
    # recorded in the victim's history, never acted on
    with engine.connect() as conn:
        recorded = [e for e in store.events(conn, readers[0]) if e.kind == "bounce_unverified"]
    assert [e.detail["evidence"] for e in recorded] == ["no evidence", "no evidence"]
    assert "soft_bounce" not in event_kinds(engine, readers[0])
    assert report.moved == 2  # understood: a second run does not count them again


def test_arf_naming_the_victim_only_in_its_to_marks_nobody(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    returned = EmailMessage()
    returned["From"] = settings.sender
    returned["To"] = f"A Victim <{VICTIM}>"
    returned["Subject"] = "Today's news"
    returned.set_content("no token anywhere\n")
    box.add(arf(returned.as_bytes(), redact_to=False))
    report = run(engine, settings, box)
    assert kinds(report) == ["unverified"]
    assert report.actions[0].subscriber_id == readers[0]
    assert status_of(engine, readers[0]) is CONFIRMED
    assert "complaint_unverified" in event_kinds(engine, readers[0])


def test_dsn_around_the_attackers_own_message_bounces_only_the_attacker(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    # the attacker's genuine digest (their own valid token) and two more recipients
    own = digest(settings, readers[5], ATTACKER)
    box.add(dsn(own, [ATTACKER, VICTIM, OTHER]))
    report = run(engine, settings, box)
    assert kinds(report) == ["bounced", "unverified", "unverified"]
    assert status_of(engine, readers[5]) is SubscriberStatus.BOUNCED
    assert status_of(engine, readers[0]) is CONFIRMED
    assert status_of(engine, readers[1]) is CONFIRMED
    with engine.connect() as conn:
        [event] = [e for e in store.events(conn, readers[0]) if e.kind == "bounce_unverified"]
    assert event.detail["evidence"] == "evidence for another subscriber"


def test_the_attackers_own_return_path_cannot_bounce_a_victim(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    # delivered to the attacker's genuine VERP address, naming the victim alone
    box.add(dsn(None, VICTIM, to=return_path(settings, readers[5], ATTACKER)))
    # and their own genuine message returned inside a report naming the victim
    box.add(dsn(digest(settings, readers[5], ATTACKER), VICTIM, headers_only=True))
    report = run(engine, settings, box)
    assert kinds(report) == ["unverified", "unverified"]
    assert {status_of(engine, i) for i in readers} == {CONFIRMED}


def test_a_made_up_return_path_is_forged(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    genuine = return_path(settings, readers[0], VICTIM)
    local, _, domain = genuine.partition("@")
    tampered = f"{local[:-2]}{'AA' if local[-2:] != 'AA' else 'BB'}@{domain}"
    box.add(dsn(None, VICTIM, to=tampered))
    # a return path made for one person cannot be moved to another's id
    other_id = genuine.replace(f"b.{readers[0]:x}.", f"b.{readers[1]:x}.", 1)
    box.add(dsn(None, OTHER, to=other_id))
    report = run(engine, settings, box)
    assert kinds(report) == ["forged", "forged"]
    assert {status_of(engine, i) for i in readers} == {CONFIRMED}


def test_a_return_path_is_the_recipients_only(settings: Settings, engine: Engine) -> None:
    readers = add_readers(engine, settings)
    path = return_path(settings, readers[2], "reader2@example.org")
    local, _, domain = path.partition("@")
    assert local.startswith("bounces+b.")
    assert domain == settings.sender_domain
    assert len(local) <= 64
    token = verp_token(path)
    assert token is not None
    with engine.connect() as conn:
        assert (
            bounce_token_owner(settings.secret(), token, lambda i: store.find(conn, i))
            == readers[2]
        )
    assert verp_token("bounces@news.example.com") is None
    assert verp_token("ann+newsletter@example.org") is None  # a tag, but no token


# --- with evidence: hard at once, soft by score ---------------------------------------


def test_a_bounce_to_the_verp_address_needs_no_returned_message(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    box.add(dsn(None, VICTIM, to=return_path(settings, readers[0], VICTIM)))
    # a forwarding address the DSN names: the return path still says whom we mailed
    # (delivered by an MTA that folds the address to upper case)
    folded = return_path(settings, readers[1], OTHER).upper()
    box.add(dsn(None, "ann@elsewhere.example.net", to=folded))
    report = run(engine, settings, box)
    assert kinds(report) == ["bounced", "bounced"]
    assert report.actions[0].detail == "hard bounce 5.1.1 (VERP return path)"
    assert status_of(engine, readers[0]) is SubscriberStatus.BOUNCED
    assert status_of(engine, readers[1]) is SubscriberStatus.BOUNCED


def test_soft_bounces_bounce_at_the_third_within_30_days(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    start = datetime.now(UTC)
    verp = return_path(settings, readers[0], VICTIM)
    scored = []
    for day, status in ((0, "5.2.2"), (10, "4.4.1"), (20, "5.7.1")):
        box.add(dsn(digest(settings, readers[0], VICTIM), VICTIM, status=status, to=verp))
        report = run(engine, settings, box, now=start + timedelta(days=day))
        scored.append((kinds(report), status_of(engine, readers[0])))
    assert scored == [
        (["soft_bounce"], CONFIRMED),
        (["soft_bounce"], CONFIRMED),
        (["bounced"], SubscriberStatus.BOUNCED),
    ]
    assert event_kinds(engine, readers[0]).count("soft_bounce") == 3


def test_soft_bounces_spread_out_never_bounce(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    start = datetime.now(UTC)
    verp = return_path(settings, readers[0], VICTIM)
    for day in (0, 20, 40, 60):
        box.add(dsn(digest(settings, readers[0], VICTIM), VICTIM, status="5.2.2", to=verp))
        report = run(engine, settings, box, now=start + timedelta(days=day))
        assert kinds(report) == ["soft_bounce"]
    assert status_of(engine, readers[0]) is CONFIRMED
    # the same returned message reported three times counts once
    again = digest(settings, readers[1], OTHER)
    for _ in range(3):
        box.add(dsn(again, OTHER, status="4.4.7", to=return_path(settings, readers[1], OTHER)))
    assert kinds(run(engine, settings, box)) == ["soft_bounce"] * 3
    assert status_of(engine, readers[1]) is CONFIRMED


def test_a_delay_warning_is_recorded_not_scored(
    engine: Engine, settings: Settings, box: mailbox.Maildir
) -> None:
    readers = add_readers(engine, settings)
    verp = return_path(settings, readers[0], VICTIM)
    for _ in range(4):
        box.add(dsn(None, VICTIM, action="delayed", status="4.4.7", to=verp))
    assert kinds(run(engine, settings, box)) == ["deferred"] * 4
    assert status_of(engine, readers[0]) is CONFIRMED


# --- end to end: the send's own MAIL FROM is the evidence ------------------------------


async def test_a_real_send_uses_verp_and_its_bounce_acts(
    settings: Settings, smtp_server: SMTPServer, workdir: Path
) -> None:
    from newsletter.database import open_database

    engine = open_database(settings.database_url)
    edition_id = populate(engine, settings, 3)
    config = with_smtp(settings, smtp_server.url)
    report = await send_edition(config, engine, edition_id, options=SendOptions(concurrency=2))
    assert report.sent == 3
    with engine.connect() as conn:
        ids = {s.email: s.id for s in store.list_subscribers(conn)}
    received = {item.rcpt_tos[0]: item for item in smtp_server.received}
    for rcpt, item in received.items():
        token = verp_token(item.mail_from)
        assert token is not None, item.mail_from
        assert item.mail_from.endswith(f"@{settings.sender_domain}")
        with engine.connect() as conn:
            assert (
                bounce_token_owner(settings.secret(), token, lambda i: store.find(conn, i))
                == ids[rcpt]
            )
    # the remote MTA bounces reader1's message back to its MAIL FROM
    bounced = received["reader1@example.org"]
    box = mailbox.Maildir(workdir / "returns", create=True)
    box.add(dsn(bounced.data, "reader1@example.org", to=bounced.mail_from))
    box.add(dsn(None, "reader2@example.org"))  # and someone forges one for reader2
    result = process_maildir(engine, settings.secret(), workdir / "returns")
    assert kinds(result) == ["bounced", "unverified"]
    assert status_of(engine, ids["reader1@example.org"]) is SubscriberStatus.BOUNCED
    assert status_of(engine, ids["reader2@example.org"]) is CONFIRMED
    engine.dispose()


@pytest.mark.parametrize("bad", ["a@b@c", "bounces", "very-long-local-part-here@example.com"])
def test_an_unusable_bounce_address_is_one_clear_error(settings: Settings, bad: str) -> None:
    from newsletter.core.errors import ConfigError
    from subscribers.bounces import return_paths

    with pytest.raises(ConfigError, match="NEWSLETTER_BOUNCE_ADDRESS"):
        return_paths(settings.model_copy(update={"bounce_address": bad}))
