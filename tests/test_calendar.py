"""The business calendar: bank holidays per region, deadline conventions, clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine import settings
from engine.calendar import REGIONS, BusinessCalendar, calendar_from_settings, iso, parse_instant

LONDON = ZoneInfo("Europe/London")
ALL_REGIONS = ("GB-ENG", "GB-WLS", "GB-SCT", "GB-NIR")


def london(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=LONDON, fold=fold)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def business_days(cal: BusinessCalendar, start: date, end: date) -> list[date]:
    days = (start + timedelta(days=i) for i in range((end - start).days + 1))
    return [day for day in days if cal.is_business_day(day)]


@pytest.fixture
def england() -> BusinessCalendar:
    return BusinessCalendar("GB-ENG")


# -- regions and bank holidays ----------------------------------------------------------


def test_regions_are_the_four_uk_calendars_the_settings_accept():
    assert REGIONS == ALL_REGIONS == settings.CALENDAR_REGIONS


def test_unknown_region_is_refused_naming_the_valid_regions():
    with pytest.raises(ValueError) as error:
        BusinessCalendar("GB-XYZ")
    for region in ALL_REGIONS:
        assert region in str(error.value)


def test_unknown_time_zone_is_refused():
    with pytest.raises(ValueError, match="time zone"):
        BusinessCalendar(timezone="Europe/Atlantis")


def test_weekends_are_not_business_days(england):
    assert england.is_business_day(date(2026, 6, 12))  # Friday
    assert not england.is_business_day(date(2026, 6, 13))  # Saturday
    assert not england.is_business_day(date(2026, 6, 14))  # Sunday


# Business days between Christmas Eve and 6 January. Scotland adds 2 January (moved
# to the next free weekday when it falls at the weekend).
CHRISTMAS_NEW_YEAR = {
    # 2026: Christmas Friday, Boxing Day Saturday -> Monday 28th; New Year Friday.
    2026: {
        "GB-ENG": ["12-24", "12-29", "12-30", "12-31", "01-04", "01-05", "01-06"],
        "GB-SCT": ["12-24", "12-29", "12-30", "12-31", "01-05", "01-06"],
    },
    # 2027: Christmas Saturday -> Monday 27th, Boxing Day Sunday -> Tuesday 28th;
    # 1 January 2028 Saturday -> Monday 3rd (and 2 January Sunday -> Tuesday 4th in SCT).
    2027: {
        "GB-ENG": ["12-24", "12-29", "12-30", "12-31", "01-04", "01-05", "01-06"],
        "GB-SCT": ["12-24", "12-29", "12-30", "12-31", "01-05", "01-06"],
    },
    # 2021: Christmas Saturday, Boxing Day Sunday -> 27th and 28th substitutes;
    # 1 January 2022 Saturday -> Monday 3rd (and 2 January Sunday -> Tuesday 4th in SCT).
    2021: {
        "GB-ENG": ["12-24", "12-29", "12-30", "12-31", "01-04", "01-05", "01-06"],
        "GB-SCT": ["12-24", "12-29", "12-30", "12-31", "01-05", "01-06"],
    },
}


@pytest.mark.parametrize("region", ALL_REGIONS)
@pytest.mark.parametrize("year", sorted(CHRISTMAS_NEW_YEAR))
def test_christmas_and_new_year_substitute_days_are_not_business_days(region, year):
    expected_by_region = CHRISTMAS_NEW_YEAR[year]
    expected = expected_by_region.get(region, expected_by_region["GB-ENG"])
    cal = BusinessCalendar(region)
    found = business_days(cal, date(year, 12, 24), date(year + 1, 1, 6))
    assert [day.strftime("%m-%d") for day in found] == expected


@pytest.mark.parametrize(
    ("region", "day", "name"),
    [
        ("GB-ENG", date(2026, 12, 28), "Boxing Day (observed)"),
        ("GB-ENG", date(2027, 12, 27), "Christmas Day (observed)"),
        ("GB-ENG", date(2027, 12, 28), "Boxing Day (observed)"),
        ("GB-ENG", date(2028, 1, 3), "New Year's Day (observed)"),
        ("GB-SCT", date(2028, 1, 4), "New Year Holiday (observed)"),
    ],
)
def test_substitute_days_are_named_as_observed(region, day, name):
    assert BusinessCalendar(region).holiday_name(day) == name


@pytest.mark.parametrize("region", ALL_REGIONS)
def test_second_of_january_is_a_bank_holiday_only_in_scotland(region):
    # Friday 2 January 2026.
    assert BusinessCalendar(region).is_business_day(date(2026, 1, 2)) is (region != "GB-SCT")


@pytest.mark.parametrize(
    ("holiday", "following_monday"),
    [
        (date(2026, 11, 30), None),  # Monday
        (date(2027, 11, 30), None),  # Tuesday
        (date(2025, 11, 30), date(2025, 12, 1)),  # Sunday -> Monday substitute
        (date(2024, 11, 30), date(2024, 12, 2)),  # Saturday -> Monday substitute
    ],
)
def test_st_andrews_day_is_a_scottish_holiday_with_a_substitute_at_the_weekend(
    holiday, following_monday
):
    scotland, england = BusinessCalendar("GB-SCT"), BusinessCalendar("GB-ENG")
    assert scotland.holiday_name(holiday) == "Saint Andrew's Day"
    assert england.holiday_name(holiday) is None
    if following_monday is None:
        assert not scotland.is_business_day(holiday)
        assert england.is_business_day(holiday)
    else:
        assert scotland.holiday_name(following_monday) == "Saint Andrew's Day (observed)"
        assert not scotland.is_business_day(following_monday)
        assert england.is_business_day(following_monday)


@pytest.mark.parametrize("region", ALL_REGIONS)
@pytest.mark.parametrize(
    ("good_friday", "easter_monday"),
    [(date(2026, 4, 3), date(2026, 4, 6)), (date(2027, 3, 26), date(2027, 3, 29))],
)
def test_good_friday_everywhere_easter_monday_everywhere_but_scotland(
    region, good_friday, easter_monday
):
    cal = BusinessCalendar(region)
    assert cal.holiday_name(good_friday) == "Good Friday"
    assert not cal.is_business_day(good_friday)
    assert cal.is_business_day(easter_monday) is (region == "GB-SCT")


@pytest.mark.parametrize("region", ALL_REGIONS)
@pytest.mark.parametrize(
    "day",
    [
        date(2026, 3, 17),  # St Patrick's Day, Tuesday
        date(2027, 3, 17),  # Wednesday
        date(2027, 7, 12),  # Battle of the Boyne, Monday
        date(2026, 7, 13),  # 12 July 2026 is a Sunday: Monday substitute
    ],
)
def test_northern_ireland_has_st_patricks_day_and_twelfth_of_july(region, day):
    assert BusinessCalendar(region).is_business_day(day) is (region != "GB-NIR")


def test_any_year_is_loaded_on_demand(england):
    assert england.holiday_name(date(2040, 12, 25)) == "Christmas Day"
    assert england.holiday_name(date(1999, 12, 28)) == "Boxing Day (observed)"


# -- company closure days -----------------------------------------------------------------


def test_closure_day_is_not_a_business_day_and_is_named():
    cal = BusinessCalendar(closure_days=[date(2026, 12, 29)])
    assert not cal.is_business_day(date(2026, 12, 29))
    assert cal.holiday_name(date(2026, 12, 29)) == "Company closure"
    assert cal.holiday_name(date(2026, 12, 30)) is None
    assert cal.closure_days == frozenset({date(2026, 12, 29)})


def test_closure_day_on_a_bank_holiday_shows_both_names():
    cal = BusinessCalendar(closure_days=[date(2026, 12, 25)])
    assert cal.holiday_name(date(2026, 12, 25)) == "Christmas Day; Company closure"


def test_holidays_between_lists_bank_holidays_and_closures_inclusive_and_sorted():
    cal = BusinessCalendar(closure_days=[date(2026, 12, 31), date(2027, 2, 1)])
    assert cal.holidays_between(date(2026, 12, 25), date(2027, 1, 1)) == [
        (date(2026, 12, 25), "Christmas Day"),
        (date(2026, 12, 26), "Boxing Day"),
        (date(2026, 12, 28), "Boxing Day (observed)"),
        (date(2026, 12, 31), "Company closure"),
        (date(2027, 1, 1), "New Year's Day"),
    ]
    assert cal.holidays_between(date(2027, 1, 2), date(2027, 1, 31)) == []


def test_datetimes_are_refused_where_a_day_is_expected(england):
    with pytest.raises(TypeError, match="must be a date"):
        england.is_business_day(london(2026, 12, 25, 12, 0))
    with pytest.raises(TypeError, match="must be a date"):
        BusinessCalendar(closure_days=[london(2026, 12, 29, 0, 0)])


# -- business days ----------------------------------------------------------------------


def test_acknowledgement_due_three_working_days_after_receipt_worked_example(england):
    due = england.add_business_days(london(2026, 12, 21, 14, 30), 3)
    assert due == london(2026, 12, 24, 14, 30)
    assert iso(due) == "2026-12-24T14:30:00+00:00"


def test_business_days_skip_christmas_weekend_and_observed_boxing_day(england):
    due = england.add_business_days(london(2026, 12, 23, 10, 0), 3)
    assert due == london(2026, 12, 30, 10, 0)


def test_log_within_one_business_day_is_same_time_next_business_day(england):
    assert england.add_business_days(london(2026, 6, 12, 16, 45), 1) == london(2026, 6, 15, 16, 45)


def test_zero_business_days_is_the_effective_receipt(england):
    assert england.add_business_days(london(2026, 12, 21, 14, 30), 0) == london(
        2026, 12, 21, 14, 30
    )
    assert england.add_business_days(london(2026, 12, 26, 14, 30), 0) == london(2026, 12, 29, 9, 0)


def test_negative_business_days_are_refused(england):
    with pytest.raises(ValueError, match="negative"):
        england.add_business_days(london(2026, 12, 21, 14, 30), -1)


def test_receipt_on_saturday_counts_as_monday_0900(england):
    received = london(2026, 12, 19, 11, 15)
    assert england.next_business_day_start(received) == london(2026, 12, 21, 9, 0)
    assert england.add_business_days(received, 1) == london(2026, 12, 22, 9, 0)
    assert england.add_business_days(received, 3) == london(2026, 12, 24, 9, 0)


def test_receipt_on_a_business_day_is_kept_as_is(england):
    received = london(2026, 12, 21, 23, 59)
    assert england.next_business_day_start(received) == received


@pytest.mark.parametrize(
    ("region", "effective", "due"),
    [
        # Good Friday, then Easter Monday (not in Scotland).
        ("GB-ENG", london(2026, 4, 7, 9, 0), london(2026, 4, 8, 9, 0)),
        ("GB-SCT", london(2026, 4, 6, 9, 0), london(2026, 4, 7, 9, 0)),
    ],
)
def test_receipt_on_a_bank_holiday_counts_as_next_business_day_0900(region, effective, due):
    cal = BusinessCalendar(region)
    received = london(2026, 4, 3, 15, 0)
    assert cal.next_business_day_start(received) == effective
    assert cal.add_business_days(received, 1) == due


def test_receipt_on_a_closure_day_counts_as_next_business_day_0900():
    closures = [date(2026, 12, 29), date(2026, 12, 30), date(2026, 12, 31)]
    cal = BusinessCalendar(closure_days=closures)
    received = london(2026, 12, 29, 10, 0)
    assert cal.next_business_day_start(received) == london(2027, 1, 4, 9, 0)
    assert cal.add_business_days(received, 1) == london(2027, 1, 5, 9, 0)


def test_closure_days_are_skipped_when_counting():
    cal = BusinessCalendar(closure_days=[date(2026, 12, 22)])
    assert cal.add_business_days(london(2026, 12, 21, 14, 30), 3) == london(2026, 12, 29, 14, 30)


def test_day_start_is_configurable():
    cal = BusinessCalendar(day_start=time(8, 30))
    assert cal.next_business_day_start(london(2026, 12, 19, 11, 0)) == london(2026, 12, 21, 8, 30)


@pytest.mark.parametrize("region", ["GB-ENG", "GB-SCT"])
@pytest.mark.parametrize("n", [1, 3])
def test_business_day_deadline_is_nth_business_day_at_same_local_time(region, n):
    """For every receipt at 14:30 over two years (clock changes included)."""
    cal = BusinessCalendar(region)
    day = date(2026, 1, 1)
    while day < date(2028, 1, 1):
        received = datetime.combine(day, time(14, 30), tzinfo=LONDON)
        effective = cal.local(cal.next_business_day_start(received))
        due = cal.local(cal.add_business_days(received, n))
        assert cal.is_business_day(effective.date())
        assert cal.is_business_day(due.date())
        assert due.time() == effective.time()
        assert len(business_days(cal, effective.date() + timedelta(days=1), due.date())) == n
        day += timedelta(days=1)


# -- clock changes ----------------------------------------------------------------------
# Clocks go forward at 01:00 GMT on 29 March 2026 and 28 March 2027, and back at
# 01:00 GMT on 25 October 2026 and 31 October 2027.


@pytest.mark.parametrize(
    ("received", "due"),
    [
        # Friday before the spring change, due Monday at the same wall-clock time.
        (london(2026, 3, 27, 14, 30), utc(2026, 3, 30, 13, 30)),
        # Thursday before Easter 2027, which spans the spring change.
        (london(2027, 3, 25, 14, 30), utc(2027, 3, 30, 13, 30)),
        # Friday before the autumn change.
        (london(2026, 10, 23, 10, 0), utc(2026, 10, 26, 10, 0)),
        (london(2027, 10, 29, 10, 0), utc(2027, 11, 1, 10, 0)),
    ],
)
def test_business_day_deadline_keeps_wall_clock_time_across_clock_change(england, received, due):
    assert england.add_business_days(received, 1) == due


@pytest.mark.parametrize(
    ("received", "effective", "due"),
    [
        # 01:30 on the autumn-change Sunday happens twice: 00:30 UTC (BST) and 01:30 UTC.
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 9, 0), utc(2026, 10, 29, 9, 0)),
        (utc(2026, 10, 25, 1, 30), utc(2026, 10, 26, 9, 0), utc(2026, 10, 29, 9, 0)),
        (utc(2027, 10, 31, 0, 30), utc(2027, 11, 1, 9, 0), utc(2027, 11, 4, 9, 0)),
        (utc(2027, 10, 31, 1, 30), utc(2027, 11, 1, 9, 0), utc(2027, 11, 4, 9, 0)),
        # Spring-change Sunday, after the gap.
        (utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 8, 0), utc(2026, 4, 2, 8, 0)),
    ],
)
def test_receipt_at_0130_on_clock_change_sunday_counts_as_monday_0900(
    england, received, effective, due
):
    assert england.next_business_day_start(received) == effective
    assert england.add_business_days(received, 3) == due


def test_ambiguous_autumn_times_are_shown_with_the_right_offset(england):
    assert england.local(utc(2026, 10, 25, 0, 30)).isoformat() == "2026-10-25T01:30:00+01:00"
    assert england.local(utc(2026, 10, 25, 1, 30)).isoformat() == "2026-10-25T01:30:00+00:00"


def test_72_hours_is_elapsed_time_across_the_spring_clock_change(england):
    due = england.add_hours(utc(2027, 3, 27, 12, 0), 72)
    assert due == utc(2027, 3, 30, 12, 0)
    assert england.local(due) == london(2027, 3, 30, 13, 0)


def test_72_hours_counts_weekends_and_bank_holidays(england):
    # Aware of a breach on Christmas Eve 2026 at 17:00: nothing is skipped.
    assert england.add_hours(london(2026, 12, 24, 17, 0), 72) == london(2026, 12, 27, 17, 0)


def test_hours_across_the_autumn_clock_change_are_elapsed(england):
    due = england.add_hours(london(2026, 10, 24, 12, 0), 24)
    assert england.local(due) == london(2026, 10, 25, 11, 0)
    assert england.add_hours(utc(2026, 1, 5, 9, 0), 0.5) == utc(2026, 1, 5, 9, 30)


def test_calendar_days_keep_local_time_across_the_clock_change(england):
    due = england.add_calendar_days(london(2026, 3, 20, 14, 0), 30)
    assert due == utc(2026, 4, 19, 13, 0)
    assert england.local(due) == london(2026, 4, 19, 14, 0)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (london(2026, 3, 28, 1, 30), london(2026, 3, 29, 2, 30)),
        (london(2027, 3, 27, 1, 45), london(2027, 3, 28, 2, 45)),
    ],
)
def test_calendar_day_landing_in_the_spring_gap_moves_forward_by_the_gap(england, received, due):
    result = england.add_calendar_days(received, 1)
    assert result == due
    assert england.local(result).utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (london(2026, 10, 24, 1, 30), utc(2026, 10, 25, 0, 30)),
        (london(2027, 10, 30, 1, 15), utc(2027, 10, 31, 0, 15)),
    ],
)
def test_calendar_day_landing_on_a_repeated_autumn_time_takes_the_first(england, received, due):
    assert england.add_calendar_days(received, 1) == due


def test_zero_calendar_days_or_months_is_the_instant_itself(england):
    second_0130 = utc(2026, 10, 25, 1, 30)
    assert england.add_calendar_days(second_0130, 0) == second_0130
    assert england.add_months(second_0130, 0) == second_0130


def test_calendar_days_are_not_moved_off_weekends_or_holidays(england):
    assert england.add_calendar_days(london(2026, 11, 25, 11, 0), 30) == london(2026, 12, 25, 11, 0)


# -- months -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "months", "due"),
    [
        (london(2027, 1, 31, 10, 0), 1, london(2027, 2, 28, 10, 0)),
        (london(2028, 1, 31, 10, 0), 1, london(2028, 2, 29, 10, 0)),  # leap year
        (london(2026, 8, 31, 10, 0), 1, london(2026, 9, 30, 10, 0)),
        (london(2026, 11, 30, 10, 0), 3, london(2027, 2, 28, 10, 0)),
        (london(2026, 12, 15, 10, 0), 1, london(2027, 1, 15, 10, 0)),
        (london(2026, 12, 31, 10, 0), 3, london(2027, 3, 31, 10, 0)),  # 1 month + 2 extension
        (london(2027, 3, 31, 10, 0), -1, london(2027, 2, 28, 10, 0)),
    ],
)
def test_add_months_keeps_day_of_month_clipped_to_month_end(england, received, months, due):
    assert england.add_months(received, months) == due


def test_add_months_keeps_local_time_across_clock_change(england):
    due = england.add_months(london(2026, 2, 15, 14, 0), 1)
    assert due == utc(2026, 3, 15, 14, 0)
    due = england.add_months(london(2026, 3, 15, 14, 0), 1)
    assert due == utc(2026, 4, 15, 13, 0)


def test_add_months_landing_on_a_clock_change_uses_the_same_rules(england):
    assert england.add_months(london(2027, 2, 28, 1, 30), 1) == london(2027, 3, 28, 2, 30)
    assert england.add_months(london(2026, 9, 25, 1, 30), 1) == utc(2026, 10, 25, 0, 30)


# -- instants -----------------------------------------------------------------------------


def test_results_are_aware_utc(england):
    received = london(2026, 7, 1, 12, 0)
    for result in (
        england.add_business_days(received, 1),
        england.add_hours(received, 1),
        england.add_calendar_days(received, 1),
        england.add_months(received, 1),
        england.next_business_day_start(received),
    ):
        assert result.tzinfo is UTC


@pytest.mark.parametrize(
    "call",
    [
        lambda cal, t: cal.add_business_days(t, 1),
        lambda cal, t: cal.add_hours(t, 72),
        lambda cal, t: cal.add_calendar_days(t, 30),
        lambda cal, t: cal.add_months(t, 1),
        lambda cal, t: cal.next_business_day_start(t),
        lambda cal, t: cal.local(t),
        lambda cal, t: iso(t),
        lambda cal, t: parse_instant(t),
        lambda cal, t: parse_instant(t.isoformat()),
    ],
)
def test_naive_datetimes_are_refused(england, call):
    with pytest.raises(ValueError, match="has no time zone"):
        call(england, datetime(2026, 12, 21, 14, 30))


def test_iso_is_utc_with_explicit_offset_and_whole_seconds():
    assert iso(london(2026, 7, 1, 15, 30, 12, 999999)) == "2026-07-01T14:30:12+00:00"
    assert iso(london(2026, 12, 24, 14, 30)) == "2026-12-24T14:30:00+00:00"


@pytest.mark.parametrize(
    "text",
    ["2026-07-01T15:30:00+01:00", "2026-07-01T14:30:00Z", "2026-07-01T14:30:00+00:00"],
)
def test_parse_instant_reads_any_offset_as_utc(text):
    parsed = parse_instant(text)
    assert parsed == utc(2026, 7, 1, 14, 30)
    assert parsed.tzinfo is UTC
    assert iso(parsed) == "2026-07-01T14:30:00+00:00"


def test_parse_instant_accepts_an_aware_datetime():
    assert parse_instant(london(2026, 7, 1, 15, 30)) == utc(2026, 7, 1, 14, 30)


def test_parse_instant_refuses_text_that_is_not_iso():
    with pytest.raises(ValueError, match="not an ISO-8601"):
        parse_instant("next Tuesday")


# -- settings -----------------------------------------------------------------------------


def test_calendar_from_settings_defaults_to_england_and_london(monkeypatch):
    monkeypatch.delenv("COMPLAINTS_CALENDAR", raising=False)
    monkeypatch.delenv("COMPLAINTS_TIMEZONE", raising=False)
    cal = calendar_from_settings()
    assert cal.region == "GB-ENG"
    assert cal.tz == LONDON


def test_calendar_from_settings_honours_complaints_timezone(monkeypatch):
    monkeypatch.setenv("COMPLAINTS_TIMEZONE", "America/New_York")
    monkeypatch.setenv("COMPLAINTS_CALENDAR", "GB-SCT")
    cal = calendar_from_settings(closure_days=[date(2026, 12, 29)])
    assert cal.tz == ZoneInfo("America/New_York")
    assert cal.region == "GB-SCT"
    assert cal.closure_days == frozenset({date(2026, 12, 29)})
    # Saturday in London and New York: Monday 09:00 in New York (EDT) is 13:00 UTC.
    assert cal.next_business_day_start(utc(2026, 6, 20, 12, 0)) == utc(2026, 6, 22, 13, 0)
    # 03:00 UTC on Monday is still Sunday evening in New York.
    assert cal.next_business_day_start(utc(2026, 6, 22, 3, 0)) == utc(2026, 6, 22, 13, 0)
