"""The five-field cron parser: fields, ranges, steps, lists, shorthands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stateshift.workflows.cron import CronExpression
from stateshift.workflows.schedules import slot_workflow_id


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def test_every_field_form_parses_to_the_expected_values() -> None:
    cron = CronExpression.parse("*/15 1-3,22 1,15 */6 1-5")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {1, 2, 3, 22}
    assert cron.days == {1, 15}
    assert cron.months == {1, 7}
    assert cron.weekdays == {0, 1, 2, 3, 4}  # Monday..Friday, Python numbering


def test_a_number_with_a_step_runs_to_the_end_of_the_range() -> None:
    assert CronExpression.parse("50/5 * * * *").minutes == {50, 55}
    assert CronExpression.parse("10-20/5 * * * *").minutes == {10, 15, 20}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@hourly", "2024-05-01 11:00"),
        ("@daily", "2024-05-02 00:00"),
        ("@weekly", "2024-05-05 00:00"),  # the next Sunday
        ("@monthly", "2024-06-01 00:00"),
        ("@yearly", "2025-01-01 00:00"),
        ("30 10 * * *", "2024-05-01 10:30"),
        ("0 0 29 2 *", "2028-02-29 00:00"),
        ("0 9 * * 7", "2024-05-05 09:00"),  # 7 is Sunday too
    ],
)
def test_next_slot_after_a_moment(text: str, expected: str) -> None:
    assert iso(CronExpression.parse(text).next_after(at("2024-05-01T10:20:30"))) == (
        expected
    )


def test_next_slot_is_strictly_after_a_slot_itself() -> None:
    cron = CronExpression.parse("0 * * * *")
    assert iso(cron.next_after(at("2024-05-01T10:00:00"))) == "2024-05-01 11:00"


def test_restricted_day_fields_match_either_one() -> None:
    # Classic cron: the 13th of the month or any Friday.
    cron = CronExpression.parse("0 0 13 * 5")
    assert iso(cron.next_after(at("2024-05-01T00:00"))) == "2024-05-03 00:00"
    assert iso(cron.next_after(at("2024-05-10T00:00"))) == "2024-05-13 00:00"


def test_latest_slot_at_or_before_a_moment() -> None:
    cron = CronExpression.parse("0 3 * * *")
    assert iso(cron.at_or_before(at("2024-05-01T10:00")) or 0) == "2024-05-01 03:00"
    assert iso(cron.at_or_before(at("2024-05-01T03:00")) or 0) == "2024-05-01 03:00"
    assert iso(cron.at_or_before(at("2024-05-01T02:59")) or 0) == "2024-04-30 03:00"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "* * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "*/0 * * * *",
        "5-1 * * * *",
        "a * * * *",
        "* * * 13 *",
        "* * * * 8",
        "1-x * * * *",
    ],
)
def test_malformed_expressions_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        CronExpression.parse(text)


def test_an_impossible_date_is_reported() -> None:
    with pytest.raises(ValueError, match="matches no date"):
        CronExpression.parse("0 0 30 2 *").next_after(at("2024-01-01T00:00"))


def test_slot_workflow_ids_are_readable_utc_times() -> None:
    assert slot_workflow_id("nightly", at("2024-05-01T03:00")) == (
        "schedule:nightly:2024-05-01T03:00:00Z"
    )
