"""Report periods: a month (2026-11), an ISO week (2026-W47) or a range of days, in UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


class PeriodError(ValueError):
    """A period or date the user typed cannot be read; the message names it."""


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC, with the label reports and archive folders are named by."""

    start: datetime
    end: datetime
    label: str

    @property
    def days(self) -> list[str]:
        """Every UTC day the period touches, as YYYY-MM-DD."""
        first = self.start.date()
        last = (self.end - timedelta(microseconds=1)).date()
        return [(first + timedelta(days=offset)).isoformat()
                for offset in range((last - first).days + 1)]

    @property
    def description(self) -> str:
        last_day = (self.end - timedelta(days=1)).date().isoformat()
        return f"{self.start.date().isoformat()} to {last_day} (UTC)"


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def month_period(year: int, month: int) -> Period:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return Period(start, end, f"{year:04d}-{month:02d}")


def week_period(year: int, week: int) -> Period:
    start = _midnight(date.fromisocalendar(year, week, 1))
    return Period(start, start + timedelta(days=7), f"{year:04d}-W{week:02d}")


def parse_period(text: str) -> Period:
    """'2026-11' (a month) or '2026-W47' (an ISO week)."""
    text = text.strip()
    if match := re.fullmatch(r"(\d{4})-(\d{2})", text):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise PeriodError(f"period {text!r}: month must be 01 to 12")
        try:
            return month_period(year, month)
        except ValueError:  # year 0, or December 9999 (its end is in year 10000)
            raise PeriodError(f"period {text!r}: out of range") from None
    if match := re.fullmatch(r"(\d{4})-W(\d{1,2})", text, flags=re.IGNORECASE):
        try:
            return week_period(int(match[1]), int(match[2]))
        except OverflowError:
            raise PeriodError(f"period {text!r}: out of range") from None
        except ValueError:
            raise PeriodError(f"period {text!r}: no such ISO week") from None
    raise PeriodError(f"period {text!r}: use a month like 2026-11 or an ISO week like 2026-W47")


def parse_day(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(f"{what} {text!r}: use a date like 2026-11-01") from None


def range_period(first_day: str, last_day: str) -> Period:
    """From the start of `first_day` to the end of `last_day` (both included)."""
    first = parse_day(first_day, "--from")
    last = parse_day(last_day, "--to")
    if last < first:
        raise PeriodError(f"--to {last_day} is before --from {first_day}")
    try:
        end = _midnight(last + timedelta(days=1))
    except OverflowError:
        raise PeriodError(f"--to {last_day}: out of range") from None
    return Period(_midnight(first), end, f"{first.isoformat()}_{last.isoformat()}")


def previous_month(moment: datetime) -> Period:
    """The last whole month before `moment` (what the monthly job reports on)."""
    first_of_this_month = moment.date().replace(day=1)
    last_month_day = first_of_this_month - timedelta(days=1)
    return month_period(last_month_day.year, last_month_day.month)


def previous_week(moment: datetime) -> Period:
    """The last whole ISO week before `moment` (what the weekly job reports on)."""
    year, week, _ = (moment.date() - timedelta(days=7)).isocalendar()
    return week_period(year, week)


def store_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
