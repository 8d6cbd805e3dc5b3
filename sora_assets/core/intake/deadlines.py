"""Batch deadlines: a row's `deadline` field, or 08:00 the next morning in the studio's time zone."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_DEADLINE_HOUR = 8
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def next_clock_time(after: datetime, clock: time, zone: ZoneInfo) -> datetime:
    """The first moment strictly after `after` when the wall clock in `zone` shows `clock`."""
    local = after.astimezone(zone)
    candidate = datetime.combine(local.date(), clock, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), clock, tzinfo=zone)
    return candidate


def default_deadline(submitted_at: datetime, zone: ZoneInfo) -> datetime:
    return next_clock_time(submitted_at, time(DEFAULT_DEADLINE_HOUR), zone)


def parse_deadline(value: str, submitted_at: datetime, zone: ZoneInfo) -> datetime:
    """ISO 8601 date-time (no offset = the studio's zone) or "HH:MM" (the next such time after submission)."""
    text = value.strip()
    match = _CLOCK.match(text)
    if match:
        return next_clock_time(submitted_at, time(int(match.group(1)), int(match.group(2))), zone)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"deadline must be an ISO 8601 date-time or HH:MM, got {text[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def deadline_error(value: str) -> str | None:
    """Validation's view: None if the text is a usable deadline, else the reason."""
    try:
        parse_deadline(value, datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC")), ZoneInfo("UTC"))
    except ValueError as exc:
        return str(exc)
    return None
