"""When each static access key is replaced: two keys per identity, rotated half a period apart.

The host's containers cannot take an IAM role (IMDS is out of their reach, hop limit 1), so the
API and the backup writer hold access keys. Each identity has two slots, `a` and `b`, each an
IAM user of its own with one key (a user may hold two keys, which a create-first replacement
needs for a moment). Slot `a` gets a new key every `period` days, slot `b` half a period later;
the containers use the newer one. So the key a rotation replaces has been idle for half a
period — a backup or upload that started with it has long finished — and no key is older than
`period` days as long as `pulumi up` runs at least once between two rotation days.

Pure date arithmetic: the program turns a slot's generation into Pulumi's `replacement_trigger`.
"""

from __future__ import annotations

import datetime as dt

SLOTS = ("a", "b")
# Days are counted from here; any fixed day works, a moving one would rotate on every run.
ORIGIN = dt.date(2026, 1, 1)


def _offsets(period: int) -> dict[str, int]:
    if period < 2:
        raise ValueError("a rotation period has at least two days (one per slot)")
    return {"a": 0, "b": period // 2}


def generations(today: dt.date, period: int) -> dict[str, int]:
    """Slot -> how many times its key has been due for replacement since ORIGIN."""
    day = (today - ORIGIN).days
    return {slot: (day - offset) // period for slot, offset in _offsets(period).items()}


def active_slot(today: dt.date, period: int) -> str:
    """The slot replaced most recently: the one the containers use."""
    day = (today - ORIGIN).days
    return "a" if day % period < _offsets(period)["b"] else "b"


def next_rotation(today: dt.date, period: int) -> tuple[str, dt.date]:
    """The next slot to be replaced and the day it is due."""
    day = (today - ORIGIN).days
    upcoming = []
    for slot, offset in _offsets(period).items():
        steps = (day - offset) // period + 1
        upcoming.append((ORIGIN + dt.timedelta(days=offset + steps * period), slot))
    when, slot = min(upcoming)
    return slot, when
