"""The pure time logic of schedules: next runs, --at times, the DST policy, what is due.

The expected instants were worked out by hand from the zones' rules (2026):
London GMT/BST changes on 29 March (01:00 GMT -> 02:00 BST) and 25 October
(02:00 BST -> 01:00 GMT); Adelaide +09:30/+10:30 changes on 5 April (03:00 ->
02:00) and 4 October (02:00 -> 03:00); Lord Howe +10:30/+11:00 shifts by 30
minutes on 5 April (02:00 -> 01:30) and 4 October (02:00 -> 02:30); Kolkata
is +05:30 all year; New York springs forward on 8 March (02:00 -> 03:00).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.core.errors import ScheduleError
from newsletter.scheduling.timing import (
    Timing,
    describe_local,
    format_delta,
    is_ambiguous,
    is_nonexistent,
    next_run,
    parse_at,
    parse_cron,
    parse_duration,
    plan_due,
    resolve_local,
)

L = "Europe/London"
KOL = "Asia/Kolkata"
ADL = "Australia/Adelaide"
LH = "Australia/Lord_Howe"
NY = "America/New_York"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


NEXT_RUN_CASES = [
    # a 07:00 London digest: 07:00 GMT in winter, 07:00 BST in summer
    ("0 7 * * *", L, "2026-01-15T12:00Z", "2026-01-16T07:00Z", "winter"),
    ("0 7 * * *", L, "2026-07-15T12:00Z", "2026-07-16T06:00Z", "summer"),
    ("0 7 * * *", L, "2026-03-28T07:00Z", "2026-03-29T06:00Z", "spring day after GMT run"),
    ("0 7 * * *", L, "2026-03-29T05:59Z", "2026-03-29T06:00Z", "spring day just before"),
    ("0 7 * * *", L, "2026-03-29T06:00Z", "2026-03-30T06:00Z", "strictly after"),
    ("0 7 * * *", L, "2026-10-24T06:00Z", "2026-10-25T07:00Z", "autumn day"),
    ("0 7 * * *", L, "2026-10-25T00:30Z", "2026-10-25T07:00Z", "autumn overlap to 07:00 GMT"),
    ("0 7 * * *", L, "2026-10-25T06:30Z", "2026-10-25T07:00Z", "autumn morning"),
    ("0 7 * * *", L, "2026-07-15T08:00+02:00", "2026-07-16T06:00Z", "after in another offset"),
    # spring-forward gap in London: wall times 01:00-01:59 do not exist
    ("30 1 * * *", L, "2026-03-28T12:00Z", "2026-03-29T01:30Z", "gap 01:30 -> 02:30 BST"),
    ("30 1 * * *", L, "2026-03-29T01:30Z", "2026-03-30T00:30Z", "day after the gap"),
    ("0 1 * * *", L, "2026-03-28T12:00Z", "2026-03-29T01:00Z", "gap 01:00 -> 02:00 BST"),
    ("30 2 * * *", L, "2026-03-28T12:00Z", "2026-03-29T01:30Z", "02:30 BST exists"),
    ("*/30 * * * *", L, "2026-03-29T00:45Z", "2026-03-29T01:00Z", "half-hourly into gap"),
    ("*/30 * * * *", L, "2026-03-29T01:00Z", "2026-03-29T01:30Z", "half-hourly after gap"),
    ("15,45 1,2 * * *", L, "2026-03-29T00:00Z", "2026-03-29T01:15Z", "gap 01:15 -> 02:15"),
    ("15,45 1,2 * * *", L, "2026-03-29T01:15Z", "2026-03-29T01:45Z", "shifted 01:45 is 02:45"),
    ("15,45 1,2 * * *", L, "2026-03-29T01:45Z", "2026-03-30T00:15Z", "no extra run"),
    # fall-back overlap in London: wall times 01:00-01:59 happen twice; first one runs
    ("30 1 * * *", L, "2026-10-24T12:00Z", "2026-10-25T00:30Z", "overlap first (BST)"),
    ("30 1 * * *", L, "2026-10-25T00:30Z", "2026-10-26T01:30Z", "overlap not twice"),
    ("30 1 * * *", L, "2026-10-25T01:10Z", "2026-10-26T01:30Z", "from the second pass"),
    ("0 * * * *", L, "2026-10-24T23:30Z", "2026-10-25T00:00Z", "hourly 01:00 BST"),
    ("0 * * * *", L, "2026-10-25T00:00Z", "2026-10-25T02:00Z", "hourly skips 01:00 GMT"),
    ("0 2 * * *", L, "2026-10-24T12:00Z", "2026-10-25T02:00Z", "02:00 GMT after overlap"),
    # Kolkata, +05:30 all year
    ("0 7 * * *", KOL, "2026-03-29T00:00Z", "2026-03-29T01:30Z", "kolkata morning"),
    ("0 7 * * *", KOL, "2026-03-29T01:30Z", "2026-03-30T01:30Z", "kolkata next day"),
    ("30 23 * * *", KOL, "2026-06-30T12:00Z", "2026-06-30T18:00Z", "kolkata late"),
    ("0 0 1 * *", KOL, "2026-01-31T18:29Z", "2026-01-31T18:30Z", "kolkata month start"),
    # Adelaide, half-hour zone with a one-hour DST
    ("0 7 * * *", ADL, "2026-01-15T00:00Z", "2026-01-15T20:30Z", "adelaide summer"),
    ("0 7 * * *", ADL, "2026-07-15T00:00Z", "2026-07-15T21:30Z", "adelaide winter"),
    ("30 2 * * *", ADL, "2026-10-03T12:00Z", "2026-10-03T17:00Z", "adelaide gap -> 03:30"),
    ("30 2 * * *", ADL, "2026-04-04T12:00Z", "2026-04-04T16:00Z", "adelaide overlap first"),
    ("30 2 * * *", ADL, "2026-04-04T16:00Z", "2026-04-05T17:00Z", "adelaide not twice"),
    # Lord Howe, whose clocks move by 30 minutes
    ("0 7 * * *", LH, "2026-01-15T00:00Z", "2026-01-15T20:00Z", "lord howe summer"),
    ("0 7 * * *", LH, "2026-07-15T00:00Z", "2026-07-15T20:30Z", "lord howe winter"),
    ("15 2 * * *", LH, "2026-10-03T12:00Z", "2026-10-03T15:45Z", "lord howe gap 02:15->02:45"),
    ("20,40 2 * * *", LH, "2026-10-03T14:00Z", "2026-10-03T15:40Z", "02:40 before shifted 02:20"),
    ("20,40 2 * * *", LH, "2026-10-03T15:40Z", "2026-10-03T15:50Z", "shifted 02:20 is 02:50"),
    ("20,40 2 * * *", LH, "2026-10-03T15:50Z", "2026-10-04T15:20Z", "then the next day"),
    ("45 1 * * *", LH, "2026-04-04T12:00Z", "2026-04-04T14:45Z", "lord howe overlap first"),
    ("45 1 * * *", LH, "2026-04-04T14:45Z", "2026-04-05T15:15Z", "lord howe not twice"),
    # New York
    ("0 7 * * *", NY, "2026-03-07T12:00Z", "2026-03-08T11:00Z", "new york EDT day"),
    ("30 2 * * *", NY, "2026-03-08T05:00Z", "2026-03-08T07:30Z", "new york gap -> 03:30"),
    # month ends, leap days, weekdays, aliases
    ("0 9 31 * *", L, "2026-04-01T00:00Z", "2026-05-31T08:00Z", "skips April"),
    ("0 9 29 2 *", L, "2026-03-01T00:00Z", "2028-02-29T09:00Z", "leap day"),
    ("0 6 L * *", L, "2026-02-10T00:00Z", "2026-02-28T06:00Z", "last day of February"),
    ("0 6 L * *", L, "2028-02-10T00:00Z", "2028-02-29T06:00Z", "last day, leap year"),
    ("59 23 31 12 *", L, "2026-12-31T23:59Z", "2027-12-31T23:59Z", "year end"),
    ("0 0 1 * *", L, "2026-03-31T23:30Z", "2026-04-30T23:00Z", "month start in BST"),
    ("0 0 1 * *", L, "2026-10-31T12:00Z", "2026-11-01T00:00Z", "month start in GMT"),
    ("0 7 * * 1-5", L, "2026-03-27T07:00Z", "2026-03-30T06:00Z", "weekdays over the change"),
    ("@daily", L, "2026-06-01T12:00Z", "2026-06-01T23:00Z", "alias at BST midnight"),
]


@pytest.mark.parametrize(
    ("cron", "tz", "after", "expected"),
    [case[:4] for case in NEXT_RUN_CASES],
    ids=[case[4] for case in NEXT_RUN_CASES],
)
def test_next_run(cron: str, tz: str, after: str, expected: str) -> None:
    result = next_run(cron, tz, t(after))
    assert result == t(expected)
    assert result.tzinfo == UTC


def test_london_digest_is_0700_local_all_year() -> None:
    after = t("2026-01-01T00:00Z")
    seen: list[datetime] = []
    for _ in range(365):
        after = next_run("0 7 * * *", L, after)
        seen.append(after)
    local = {describe_local(moment, L)[11:16] for moment in seen}
    assert local == {"07:00"}
    assert len({moment.date() for moment in seen}) == 365
    assert describe_local(t("2026-03-29T06:00Z"), L) == "2026-03-29 07:00 BST"


def test_next_run_refuses_naive() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_run("0 7 * * *", L, datetime(2026, 1, 1))


AT_CASES = [
    ("2026-03-29 07:00", L, "2026-03-29T06:00Z"),
    ("2026-01-10 07:00", L, "2026-01-10T07:00Z"),
    ("2026-03-29 01:30", L, "2026-03-29T01:30Z"),  # gap: runs 02:30 BST
    ("2026-03-29 01:00", L, "2026-03-29T01:00Z"),  # gap: runs 02:00 BST
    ("2026-10-25 01:30", L, "2026-10-25T00:30Z"),  # overlap: first (BST)
    ("2026-10-25T01:30:00", L, "2026-10-25T00:30Z"),
    ("2026-10-25 01:30+00:00", L, "2026-10-25T01:30Z"),  # an offset picks the second
    ("2026-06-01 09:00Z", KOL, "2026-06-01T09:00Z"),
    ("2026-06-01 09:00", KOL, "2026-06-01T03:30Z"),
    ("2026-10-04 02:15", LH, "2026-10-03T15:45Z"),  # 30-minute gap
    ("2026-04-05 01:45", LH, "2026-04-04T14:45Z"),  # 30-minute overlap, first
    ("2026-02-28 23:30", ADL, "2026-02-28T13:00Z"),
    (" 2026-12-31 23:59:30 ", L, "2026-12-31T23:59:30Z"),
]


@pytest.mark.parametrize(("text", "tz", "expected"), AT_CASES)
def test_parse_at(text: str, tz: str, expected: str) -> None:
    assert parse_at(text, tz) == t(expected)


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01 07:00", "", "07:00"])
def test_parse_at_rejects(text: str) -> None:
    with pytest.raises(ScheduleError, match="--at"):
        parse_at(text, L)


def test_unknown_zone_is_one_clear_line() -> None:
    with pytest.raises(ScheduleError) as info:
        parse_at("2026-03-29 07:00", "Europe/Atlantis")
    assert str(info.value) == (
        "field '--tz': unknown time zone 'Europe/Atlantis' (use an IANA name such as Europe/London)"
    )


@pytest.mark.parametrize(
    ("wall", "tz", "gap", "twice"),
    [
        ("2026-03-29 01:30", L, True, False),
        ("2026-03-29 00:59", L, False, False),
        ("2026-03-29 02:00", L, False, False),
        ("2026-10-25 01:30", L, False, True),
        ("2026-10-25 02:00", L, False, False),
        ("2026-10-25 00:59", L, False, False),
        ("2026-10-04 02:10", LH, True, False),
        ("2026-10-04 02:30", LH, False, False),
        ("2026-04-05 01:40", LH, False, True),
        ("2026-06-01 01:30", KOL, False, False),
    ],
)
def test_gap_and_overlap_detection(wall: str, tz: str, gap: bool, twice: bool) -> None:
    assert is_nonexistent(t(wall), tz) is gap
    assert is_ambiguous(t(wall), tz) is twice


def test_resolve_local_refuses_aware() -> None:
    with pytest.raises(ValueError, match="naive"):
        resolve_local(t("2026-01-01T00:00Z"), L)


@pytest.mark.parametrize(
    ("text", "tidy"),
    [("0 7 * * *", "0 7 * * *"), ("  0   7 * *  1-5 ", "0 7 * * 1-5"), ("@DAILY", "@daily")],
)
def test_parse_cron_accepts(text: str, tidy: str) -> None:
    assert parse_cron(text) == tidy


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0 25 * * *", "not a cron expression"),
        ("* * * *", "not a cron expression"),
        ("0 7 * * * *", "not a cron expression"),
        ("hello", "not a cron expression"),
        ("0 0 30 2 *", "never matches"),
    ],
)
def test_parse_cron_rejects(text: str, why: str) -> None:
    with pytest.raises(ScheduleError, match=why):
        parse_cron(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("24h", timedelta(hours=24)), ("90m", timedelta(minutes=90)), ("1d12h", timedelta(hours=36))],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0h", "yesterday", "-3h", ""])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ScheduleError, match="--since"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(hours=2), "2h00m"),
        (timedelta(hours=2, minutes=5), "2h05m"),
        (timedelta(minutes=45), "45m"),
        (timedelta(days=3, hours=4, minutes=9), "3d4h"),
        (timedelta(seconds=20), "20s"),
    ],
)
def test_format_delta(delta: timedelta, text: str) -> None:
    assert format_delta(delta) == text


# --- what is due -------------------------------------------------------------

DAILY = Timing(kind="cron", tz=L, cron="0 7 * * *")
TWO_HOURS = timedelta(hours=2)


def test_nothing_due_before_the_first_occurrence() -> None:
    plan = plan_due(
        DAILY,
        handled_until=None,
        created_at=t("2026-03-28T08:00Z"),
        now=t("2026-03-29T05:59Z"),
        max_lateness=TWO_HOURS,
    )
    assert plan.run is None
    assert plan.skipped == []
    assert plan.handled_until is None


def test_due_across_the_spring_change_runs_at_0700_bst() -> None:
    plan = plan_due(
        DAILY,
        handled_until=None,
        created_at=t("2026-03-28T08:00Z"),
        now=t("2026-03-29T06:00:05Z"),
        max_lateness=TWO_HOURS,
    )
    assert plan.run == t("2026-03-29T06:00Z")
    assert plan.skipped == []
    assert plan.handled_until == t("2026-03-29T06:00Z")


def test_occurrence_created_exactly_then_is_not_due() -> None:
    plan = plan_due(
        DAILY,
        handled_until=None,
        created_at=t("2026-01-10T07:00Z"),
        now=t("2026-01-10T07:30Z"),
        max_lateness=TWO_HOURS,
    )
    assert plan.run is None


@pytest.mark.parametrize(
    ("now", "runs"),
    [
        ("2026-01-10T07:00Z", True),  # on time
        ("2026-01-10T08:59:59Z", True),  # 1h59m59s late: less than the limit
        ("2026-01-10T09:00Z", False),  # exactly the limit: too late
        ("2026-01-10T16:00Z", False),  # tea-time
    ],
)
def test_lateness_limit(now: str, runs: bool) -> None:
    plan = plan_due(
        DAILY,
        handled_until=t("2026-01-09T07:00Z"),
        created_at=t("2026-01-01T00:00Z"),
        now=t(now),
        max_lateness=TWO_HOURS,
    )
    assert plan.handled_until == t("2026-01-10T07:00Z")
    if runs:
        assert plan.run == t("2026-01-10T07:00Z")
        assert plan.skipped == []
    else:
        assert plan.run is None
        [skip] = plan.skipped
        assert skip.occurrence_at == t("2026-01-10T07:00Z")
        assert skip.reason.startswith("missed: ")
        assert "limit 2h00m" in skip.reason


def test_downtime_skips_old_occurrences_and_runs_the_latest() -> None:
    plan = plan_due(
        DAILY,
        handled_until=t("2026-01-07T07:00Z"),
        created_at=t("2026-01-01T00:00Z"),
        now=t("2026-01-10T07:30Z"),
        max_lateness=TWO_HOURS,
    )
    assert plan.run == t("2026-01-10T07:00Z")
    assert [s.occurrence_at for s in plan.skipped] == [
        t("2026-01-08T07:00Z"),
        t("2026-01-09T07:00Z"),
    ]
    assert plan.skipped[0].reason == "missed: 2d0h late (limit 2h00m)"


def test_earlier_occurrences_within_the_limit_are_superseded() -> None:
    half_hourly = Timing(kind="cron", tz=L, cron="*/30 * * * *")
    plan = plan_due(
        half_hourly,
        handled_until=t("2026-07-01T06:30Z"),
        created_at=t("2026-07-01T00:00Z"),
        now=t("2026-07-01T07:40Z"),
        max_lateness=TWO_HOURS,
    )
    assert plan.run == t("2026-07-01T07:30Z")
    assert [(s.occurrence_at, s.reason) for s in plan.skipped] == [
        (t("2026-07-01T07:00Z"), "superseded by the occurrence at 2026-07-01 08:30 BST")
    ]


def test_one_off() -> None:
    once = Timing(kind="once", tz=L, run_at=t("2026-03-29T01:30Z"))
    common: dict[str, Any] = {"created_at": t("2026-03-01T00:00Z"), "max_lateness": TWO_HOURS}
    assert plan_due(once, handled_until=None, now=t("2026-03-29T01:29Z"), **common).run is None
    due = plan_due(once, handled_until=None, now=t("2026-03-29T01:31Z"), **common)
    assert due.run == t("2026-03-29T01:30Z")
    stale = plan_due(once, handled_until=None, now=t("2026-03-29T04:00Z"), **common)
    assert stale.run is None
    assert stale.skipped[0].reason == "missed: 2h30m late (limit 2h00m)"
    done = plan_due(
        once, handled_until=t("2026-03-29T01:30Z"), now=t("2026-03-30T00:00Z"), **common
    )
    assert done.handled_until is None


def test_long_downtime_is_planned_in_batches() -> None:
    minutely = Timing(kind="cron", tz=L, cron="* * * * *")
    plan = plan_due(
        minutely,
        handled_until=t("2026-01-01T00:00Z"),
        created_at=t("2026-01-01T00:00Z"),
        now=t("2026-01-02T00:00Z"),
        max_lateness=TWO_HOURS,
        limit=100,
    )
    assert not plan.complete
    assert plan.run is None
    assert len(plan.skipped) == 100
    assert plan.handled_until == t("2026-01-01T01:40Z")
    assert plan.skipped[-1].reason.startswith("missed: 22h20m late")


# --- a property over wide inputs: daily schedules in zones with odd rules ----------

ZONES = [L, KOL, ADL, LH, NY, "Europe/Dublin", "Pacific/Chatham", "America/St_Johns"]


@settings(max_examples=300, deadline=None)
@given(
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 1, 15, 29, 30, 45, 59]),
    zone=st.sampled_from(ZONES),
    after=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
)
def test_daily_next_run_is_the_wall_time_or_its_documented_shift(
    hour: int, minute: int, zone: str, after: datetime
) -> None:
    result = next_run(f"{minute} {hour} * * *", zone, after)
    assert result > after
    assert result - after <= timedelta(hours=27)
    local = result.astimezone(ZoneInfo(zone))
    wall = local.replace(tzinfo=None, hour=hour, minute=minute, second=0, microsecond=0)
    if is_nonexistent(wall, zone):
        # shifted forward by the gap: same instant as reading the wall time at fold=0
        assert result == resolve_local(wall, zone)
        assert (local.hour, local.minute) != (hour, minute)
    else:
        assert (local.hour, local.minute) == (hour, minute)
        assert result == resolve_local(wall, zone)  # the first of a repeated time
    # nothing of the schedule was skipped between after and result
    day_before = wall - timedelta(days=1)
    assert resolve_local(day_before, zone) <= after
