"""A subject-line test's rules and its outbox work, on SQLite and PostgreSQL: the decision
rule, the split's sizes, the editor's input, the arms written once and the decision."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter.content.editions import get_edition
from newsletter.content.tracking import click_token, read_click_token
from newsletter.core.config import Settings
from newsletter.core.errors import InputError, StateError
from newsletter.core.schema import clicks, deliveries
from newsletter.delivery import outbox, subjects
from newsletter.delivery.compose import outbox_rows
from newsletter.delivery.subjects import ArmResult, SubjectTestSpec, split_sizes, winner
from tests.support.sendkit import populate

NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
SPEC = SubjectTestSpec("Subject B", 10, timedelta(hours=1))


def arm(name: str, sent: int, unique: int) -> ArmResult:
    return ArmResult(arm=name, subject=name, recipients=sent, sent=sent, unique_clicks=unique)


@pytest.mark.parametrize(
    ("a", "b", "won"),
    [
        ((4, 0), (4, 1), "B"),
        ((4, 1), (4, 1), "A"),  # a tie keeps the edition's own subject
        ((0, 0), (0, 0), "A"),  # nothing sent, nothing clicked: a tie
        ((4, 0), (4, 0), "A"),
        ((4, 1), (8, 2), "A"),  # the same rate, exactly (no float rounding)
        ((3, 1), (300, 101), "B"),  # 0.3333 < 0.3367
        ((4, 2), (1, 1), "B"),  # the rate, not the count
        ((4, 3), (4, 2), "A"),
        ((4, 1), (0, 0), "A"),  # B sent nothing: its rate is 0
        ((0, 0), (4, 1), "B"),
    ],
)
def test_the_higher_unique_click_rate_wins_and_a_tie_keeps_a(
    a: tuple[int, int], b: tuple[int, int], won: str
) -> None:
    assert winner(arm("A", *a), arm("B", *b)) == won


@pytest.mark.parametrize(
    ("recipients", "share", "sizes"),
    [
        (40, 20, (4, 4, 32)),
        (10, 25, (2, 1, 7)),  # 2.5 rounds half up to 3: A takes the odd one
        (7, 20, (1, 0, 6)),  # 1.4 -> 1: too few for two arms (refused by check_sizes)
        (3, 50, (1, 1, 1)),
        (1000, 1, (5, 5, 990)),
        (0, 20, (0, 0, 0)),
    ],
)
def test_the_test_share_is_rounded_half_up_and_split_in_half(
    recipients: int, share: int, sizes: tuple[int, int, int]
) -> None:
    assert split_sizes(recipients, share) == sizes


def test_the_editors_input_is_checked_part_by_part() -> None:
    good = SubjectTestSpec.parse("  Subject B ", " 20% ", "90m")
    assert good == SubjectTestSpec("Subject B", 20, timedelta(minutes=90))
    assert SubjectTestSpec.parse("B", "50", "4h").share == 50
    for args, field in [
        (("", "20%", "1h"), "subject_b"),
        (("   ", "20%", "1h"), "subject_b"),
        (("one\ntwo", "20%", "1h"), "subject_b"),
        (("a\u2028b", "20%", "1h"), "subject_b"),
        (("x" * 999, "20%", "1h"), "subject_b"),
        (("B", "0%", "1h"), "test_share"),
        (("B", "51%", "1h"), "test_share"),
        (("B", "12.5%", "1h"), "test_share"),
        (("B", "-5", "1h"), "test_share"),
        (("B", "20%", "soon"), "decide_after"),
        (("B", "20%", "0m"), "decide_after"),
        (("B", "20%", "30s"), "decide_after"),
        (("B", "20%", "8d"), "decide_after"),
    ]:
        with pytest.raises(InputError) as caught:
            SubjectTestSpec.parse(*args)
        assert caught.value.field == field, args
    assert len(SubjectTestSpec.parse("x" * 998, "1%", "1m").subject_b) == 998


def test_a_click_token_names_its_arm_and_nothing_else_passes() -> None:
    secret = b"a-secret-key-of-at-least-32-bytes!!"
    token = click_token(secret, "e1", "a1", "https://n.example/a", arm="B")
    found = read_click_token(secret, token)
    assert found is not None
    assert (found.edition_id, found.article_id, found.arm) == ("e1", "a1", "B")
    plain = read_click_token(secret, click_token(secret, "e1", "a1", "https://n.example/a"))
    assert plain is not None
    assert plain.arm is None
    assert read_click_token(secret, click_token(secret, "e1", "a1", "u", arm="C")) is None
    reader = click_token(secret, "e1", "a1", "u", 7, arm="A")
    found = read_click_token(secret, reader)
    assert found is not None
    assert (found.subscriber_id, found.arm) == (7, "A")


def _arms(engine: Engine, edition_id: str) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.subscriber_id, deliveries.c.variant).where(
                deliveries.c.edition_id == edition_id
            )
        )
        for sid, key in rows:
            found.setdefault(key.partition("|subject:")[2], set()).add(sid)
    return found


def _start(engine: Engine, settings: Settings, edition_id: str, *, keep: bool = True) -> None:
    conn = engine.connect()
    try:
        with conn.begin() as transaction:
            edition = get_edition(conn, edition_id)
            outbox.enqueue(conn, edition_id, outbox_rows(conn, edition), NOW)
            subjects.prepare(conn, settings, edition, SPEC, fresh=True, now=NOW)
            if not keep:
                transaction.rollback()
    finally:
        conn.close()


def test_the_arms_are_exact_deterministic_and_written_once(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subjects, "_PAGE", 37)  # several keyset pages, on a small list
    edition_id = populate(engine, settings, 300)
    _start(engine, settings, edition_id, keep=False)
    assert not _arms(engine, edition_id)  # rolled back: all or nothing
    _start(engine, settings, edition_id)
    arms = _arms(engine, edition_id)
    assert {k: len(v) for k, v in arms.items()} == {"A": 15, "B": 15, "wait": 270}
    assert sorted(arms["A"] | arms["B"]) != list(range(1, 31))  # not the first readers
    with engine.begin() as conn:  # the same split when it is made again (a keyed hash)
        conn.execute(deliveries.delete())
        conn.execute(sa.text("DELETE FROM subject_tests"))
    _start(engine, settings, edition_id)
    assert _arms(engine, edition_id) == arms

    with engine.begin() as conn:  # a worker claims the arms only: the rest waits
        claimed = outbox.claim(conn, edition_id, "worker-1", 1000, NOW + timedelta(days=9))
        assert {c.subscriber_id for c in claimed} == arms["A"] | arms["B"]
        assert subjects.waiting(conn, edition_id) == 270
        assert outbox.next_retry_at(conn, edition_id) is None
        outbox.release(conn, edition_id, "worker-1")

    with engine.begin() as conn:  # asking again (a restart) never moves a row
        edition = get_edition(conn, edition_id)
        test = subjects.prepare(conn, settings, edition, SPEC, fresh=False, now=NOW)
        assert test is not None
        assert test.sizes == (15, 15, 270)
        other = SubjectTestSpec("Another B", 10, timedelta(hours=1))
        with pytest.raises(StateError, match="with another test"):
            subjects.prepare(conn, settings, edition, other, fresh=False, now=NOW)
    assert _arms(engine, edition_id) == arms


def test_decided_once_when_due_and_the_rest_gets_the_winner(
    engine: Engine, settings: Settings
) -> None:
    edition_id = populate(engine, settings, 40)
    _start(engine, settings, edition_id)
    arms = _arms(engine, edition_id)
    with engine.begin() as conn:
        sent = deliveries.update().where(deliveries.c.status == "queued").values(status="sent")
        conn.execute(sent)  # the arms went out
        conn.execute(
            clicks.insert(),
            [  # one reader's click in arm B; a link scanner's fetch in arm A does not count
                {"edition_id": edition_id, "article_id": "x", "visitor": "v1", "kind": "human",
                 "at": NOW, "arm": "B"},
                {"edition_id": edition_id, "article_id": "x", "visitor": "v2", "kind": "scanner",
                 "at": NOW, "arm": "A"},
            ],
        )  # fmt: skip
    with engine.begin() as conn:
        edition = get_edition(conn, edition_id)
        early = subjects.prepare(conn, settings, edition, None, fresh=False, now=NOW)
        assert early is not None
        assert early.winner is None  # not due yet
        due = NOW + timedelta(hours=1)
        test = subjects.prepare(conn, settings, edition, None, fresh=False, now=due)
        assert test is not None
        assert (test.winner, test.decided_at) == ("B", due)
        assert test.decision == {
            "A": {"sent": 2, "unique_clicks": 0},
            "B": {"sent": 2, "unique_clicks": 1},
        }
        again = subjects.prepare(
            conn, settings, edition, None, fresh=False, now=due + timedelta(hours=5)
        )
        assert again == test  # recorded once: a later run finds it decided
        assert subjects.waiting(conn, edition_id) == 0
    after = _arms(engine, edition_id)
    assert after == {"A": arms["A"], "B": arms["B"], "rest-B": arms["wait"]}
    assert {k: len(v) for k, v in after.items()} == {"A": 2, "B": 2, "rest-B": 36}


def test_two_workers_deciding_at_once_decide_once(engine: Engine, settings: Settings) -> None:
    edition_id = populate(engine, settings, 40)
    _start(engine, settings, edition_id)
    due = NOW + timedelta(hours=2)
    barrier = threading.Barrier(2)
    found: list[object] = []

    def worker(n: int) -> None:
        barrier.wait()
        try:
            with engine.begin() as conn:
                edition = get_edition(conn, edition_id)
                at = due + timedelta(seconds=n)  # each its own time: only one is recorded
                test = subjects.prepare(conn, settings, edition, None, fresh=False, now=at)
                found.append(None if test is None else (test.winner, test.decided_at))
        except Exception as exc:  # reported by the assertion below
            found.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(found) == 2
    assert found[0] == found[1], found  # one decision, seen by both
    assert found[0] in {("A", due), ("A", due + timedelta(seconds=1))}  # no clicks: a tie: A
    assert {k: len(v) for k, v in _arms(engine, edition_id).items()} == {
        "A": 2,
        "B": 2,
        "rest-A": 36,
    }
