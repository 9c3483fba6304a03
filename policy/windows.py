"""Maintenance, backup and snapshot windows checked against each other, as AWS applies them.

- RDS: the automated backup window must not overlap the weekly maintenance window (RDS User
  Guide, "Backup window").
- ElastiCache: the snapshot window must not overlap the maintenance window (ElastiCache User
  Guide, "Scheduling automatic backups").
- AWS Backup does not start a snapshot of an RDS instance within the hour before or during its
  maintenance window, nor during its automated backup window; a job that cannot start within
  its start window ends EXPIRED. So the whole start window must avoid them, every day.

Windows are intervals in minutes of the week (Monday 00:00 = 0), daily ones repeated seven times.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

WEEK = 7 * 24 * 60
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Interval = tuple[int, int]


def _minute(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def daily(window: str) -> list[Interval]:
    """`hh24:mi-hh24:mi` (UTC), every day; one that passes midnight runs into the next day."""
    start, end = (_minute(t) for t in window.split("-"))
    length = (end - start) % (24 * 60)
    return [(day * 1440 + start, day * 1440 + start + length) for day in range(7)]


def weekly(window: str) -> list[Interval]:
    """`ddd:hh24:mi-ddd:hh24:mi` (UTC)."""
    (d1, t1), (d2, t2) = (part.split(":", 1) for part in window.lower().split("-"))
    start = DAYS.index(d1) * 1440 + _minute(t1)
    end = DAYS.index(d2) * 1440 + _minute(t2)
    return [(start, start + (end - start) % WEEK)]


def cron_daily(expression: str, start_window_minutes: int) -> list[Interval]:
    """AWS Backup's `cron(m h * * ? *)` with its start window; other schedules are refused, so a
    new one cannot slip past this check unjudged."""
    match = re.fullmatch(r"cron\((\d+) (\d+) \* \* \? \*\)", expression)
    if not match:
        raise ValueError(f"{expression}: only daily cron(m h * * ? *) schedules are judged")
    start = int(match[2]) * 60 + int(match[1])
    return [(day * 1440 + start, day * 1440 + start + start_window_minutes) for day in range(7)]


def _overlaps(a: Iterable[Interval], b: Iterable[Interval]) -> bool:
    # Each interval also as it wraps into the next week.
    bs = [(s + shift, e + shift) for s, e in b for shift in (-WEEK, 0, WEEK)]
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in bs)


def database_problems(backup_window: str, maintenance_window: str,
                      backup_jobs: Iterable[tuple[str, int]] = ()) -> list[str]:
    maintenance = weekly(maintenance_window)
    found = []
    if _overlaps(daily(backup_window), maintenance):
        found.append(f"RDS backup window {backup_window} overlaps its maintenance window {maintenance_window}")
    blocked = [(s - 60, e) for s, e in maintenance] + daily(backup_window)
    for schedule, start_window in backup_jobs:
        if _overlaps(cron_daily(schedule, start_window), blocked):
            found.append(f"AWS Backup {schedule} (start within {start_window} min) meets RDS's maintenance "
                         f"window {maintenance_window} or the hour before it, or its backup window "
                         f"{backup_window}: that day's job cannot start and expires")
    return found


def cache_problems(snapshot_window: str, maintenance_window: str) -> list[str]:
    if _overlaps(daily(snapshot_window), weekly(maintenance_window)):
        return [f"ElastiCache snapshot window {snapshot_window} overlaps its maintenance window {maintenance_window}"]
    return []
