"""Quiet hours: whether an instant falls in a person's quiet hours, when they end, and what
that does to a planned delivery (defer, drop, deliver; see ``docs/recipients.md``).

Pure: no I/O, no clock (``now`` is passed in). Windows are wall-clock times in an IANA zone,
so a 19:00–08:00 window on the night of a DST change holds until 08:00 local time (12 or 14
real hours). A wall-clock time that does not exist (02:30 on a spring-forward day) resolves to
the first instant after the gap (03:00); an ambiguous one (02:30 on a fall-back day) to its
first occurrence (``fold=0``). Windows that touch or overlap form one quiet period:
Mon–Fri 19:00–08:00 plus weekends all day is one period from Friday 19:00 to Monday 08:00.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from ..config.people import Policy, ProjectSettings, QuietHours, Window
    from ..message import Message
    from ..routing import Target
    from .model import People, Person

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK = 7 * 1440
_HORIZON = 8 * 86400.0
"""No quiet period lasts longer than a week (validation refuses windows covering the whole week);
a chain of windows is never followed further than this."""


@lru_cache(maxsize=512)
def parse_days(days: str) -> frozenset[int]:
    """The weekdays (Monday 0) a window's ``days`` names: ``daily``, ``weekdays``, ``weekends``,
    or a comma list of days and ranges (``mon-fri``, ``sat,sun``, ``fri-mon`` wraps over the
    weekend). ValueError on anything else."""
    text = days.strip().lower().replace(" ", "")
    if text == "daily":
        return frozenset(range(7))
    if text == "weekdays":
        return frozenset(range(5))
    if text == "weekends":
        return frozenset((5, 6))
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"days {days!r}: write 'daily', 'weekdays', 'weekends', 'mon-fri' or 'sat,sun'")
        a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        out.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(out)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _span(window: Window) -> tuple[int, int]:
    """Start and end of ``window`` in minutes from the start of its day; the end is on the next
    day (> 1440 possible) when it is not after the start: overnight windows, and 00:00–00:00."""
    start, end = _minutes(window.start), _minutes(window.end)
    return start, end if end > start else end + 1440


def covers_whole_week(windows: Iterable[Window]) -> bool:
    """Whether the windows leave no minute of the week free (nothing would ever be sent)."""
    spans: list[tuple[int, int]] = []
    for w in windows:
        start, end = _span(w)
        for day in parse_days(w.days):
            a, b = day * 1440 + start, day * 1440 + end
            spans += [(a, min(b, _WEEK))] + ([(0, b - _WEEK)] if b > _WEEK else [])
    reached = 0
    for a, b in sorted(spans):
        if a > reached:
            return False
        reached = max(reached, b)
    return reached >= _WEEK


def describe_window(window: Window) -> str:
    """``Mon–Fri 19:00–08:00``, ``Sat–Sun all day``, ``daily 22:00–07:00``."""
    named = {"weekdays": "mon-fri", "weekends": "sat-sun"}.get(window.days, window.days)
    days = "daily" if named == "daily" else ", ".join(p.replace("-", "–").title() for p in named.split(","))
    start, end = _span(window)
    hours = "all day" if (start, end) == (0, 1440) else f"{window.start}–{window.end}"
    return f"{days} {hours}"


# -- wall clock to instants ------------------------------------------------------------------------

@lru_cache(maxsize=256)
def zone_of(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def instant(local: dt.datetime, zone: ZoneInfo) -> float:
    """The epoch time of the naive wall-clock ``local`` in ``zone``: a time in a spring-forward
    gap is the first instant after the gap; an ambiguous fall-back time its first occurrence."""
    after = local.replace(tzinfo=zone, fold=0).timestamp()
    if dt.datetime.fromtimestamp(after, zone).replace(tzinfo=None) == local:
        return after
    # In a gap: fold=0 read ``local`` with the offset before the change (an instant after it),
    # fold=1 with the offset after (an instant before it). Find the change between them.
    lo, hi = int(local.replace(tzinfo=zone, fold=1).timestamp()), int(after)
    before = dt.datetime.fromtimestamp(lo, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return float(hi)


@dataclass(frozen=True, slots=True)
class _Interval:
    start: float
    end: float
    window: Window


def _intervals(windows: Sequence[Window], day: dt.date, zone: ZoneInfo) -> list[_Interval]:
    """The windows that start on local date ``day``, as instants."""
    out = []
    midnight = dt.datetime.combine(day, dt.time())
    for w in windows:
        if day.weekday() not in parse_days(w.days):
            continue
        start, end = _span(w)
        a = instant(midnight + dt.timedelta(minutes=start), zone)
        b = instant(midnight + dt.timedelta(minutes=end), zone)
        if b > a:  # a window entirely inside a spring-forward gap lasts no time
            out.append(_Interval(a, b, w))
    return out


@dataclass(frozen=True, slots=True)
class Period:
    """The quiet period an instant is in: until when, and the windows that hold it then."""

    end: float
    windows: tuple[Window, ...]


def quiet_period(quiet_hours: QuietHours, zone: str | ZoneInfo, now: float) -> Period | None:
    """The quiet period ``now`` is in (None: not quiet). Its ``end`` is the first instant that is
    not quiet any more; a window is entered at its start and left at its end
    (``start <= now < end``); touching and overlapping windows form one period."""
    return _remembered_period(quiet_hours, zone_of(zone) if isinstance(zone, str) else zone, now)[0]


_Known = tuple["QuietHours", float, float, Any]
_remembered: dict[tuple[Any, ...], _Known] = {}
"""Answers remembered per quiet hours, zone (and priority) for the instants they hold for (from the
instant asked to the next one a window starts or ends, at most the next local midnight): planning
asks for every recipient of every message."""


def _recall(key: tuple[Any, ...], quiet_hours: QuietHours, now: float) -> Any:
    hit = _remembered.get(key)
    if hit is not None and hit[0] is quiet_hours and hit[1] <= now < hit[2]:
        return hit
    return None


def _remember(key: tuple[Any, ...], value: _Known) -> None:
    if len(_remembered) >= 4096:
        _remembered.clear()
    _remembered[key] = value


def _remembered_period(quiet_hours: QuietHours, tz: ZoneInfo, now: float) -> tuple[Period | None, float, float]:
    key = (id(quiet_hours), tz.key)
    hit = _recall(key, quiet_hours, now)
    if hit is not None:
        return hit[3], hit[1], hit[2]
    period, valid_until = _quiet_period(quiet_hours, tz, now)
    _remember(key, (quiet_hours, now, valid_until, period))
    return period, now, valid_until


def _quiet_period(quiet_hours: QuietHours, tz: ZoneInfo, now: float) -> tuple[Period | None, float]:
    """The period ``now`` is in, and until when that answer holds (no window starts or ends before)."""
    windows = quiet_hours.windows
    today = dt.datetime.fromtimestamp(now, tz).date()
    # A window lasts at most a day of wall clock, so one holding ``now`` started yesterday or today.
    intervals = _intervals(windows, today - dt.timedelta(days=1), tz) + _intervals(windows, today, tz)
    holding = [iv for iv in intervals if iv.start <= now < iv.end]
    tomorrow = instant(dt.datetime.combine(today + dt.timedelta(days=1), dt.time()), tz)
    valid_until = min([tomorrow, *(iv.end for iv in holding), *(iv.start for iv in intervals if iv.start > now)])
    if not holding:
        return None, valid_until
    end = max(iv.end for iv in holding)
    fetched = today
    while end - now < _HORIZON:
        # Windows that can extend the period start on the local date of its end, or before.
        last = dt.datetime.fromtimestamp(end, tz).date()
        while fetched < last:
            fetched += dt.timedelta(days=1)
            intervals += _intervals(windows, fetched, tz)
        further = max((iv.end for iv in intervals if iv.start <= end < iv.end), default=None)
        if further is None:
            break
        end = further
    return Period(end, tuple(dict.fromkeys(iv.window for iv in holding))), valid_until


# -- decisions -------------------------------------------------------------------------------------

def format_until(until: float, zone: str, now: float) -> str:
    """``07:00 Europe/Berlin`` today (in that zone), ``Mon 08:00 Europe/Berlin`` within a week."""
    tz = zone_of(zone)
    local, today = dt.datetime.fromtimestamp(until, tz), dt.datetime.fromtimestamp(now, tz).date()
    days = (local.date() - today).days
    when = local.strftime("%H:%M") if days == 0 else local.strftime("%a %H:%M" if days < 7 else "%a %Y-%m-%d %H:%M")
    return f"{when} {zone}"


def decide_quiet(
    quiet_hours: QuietHours, zone: str, priority: str, now: float
) -> tuple[Policy, float | None, str | None]:
    """What quiet hours do to a message of ``priority`` at ``now``: the policy (``deliver`` when
    not quiet), when the quiet period ends (None when not quiet) and why, for the delivery."""
    key = (id(quiet_hours), zone, priority)
    hit = _recall(key, quiet_hours, now)
    if hit is not None:
        return hit[3]  # type: ignore[no-any-return]
    period, _, valid_until = _remembered_period(quiet_hours, zone_of(zone), now)
    decision = _decide(quiet_hours, zone, priority, now, period)
    # The same until the period's answer changes, which is at the next local midnight at the latest
    # (when "until 07:00" would become "until Tue 07:00").
    _remember(key, (quiet_hours, now, valid_until, decision))
    return decision


def _decide(
    quiet_hours: QuietHours, zone: str, priority: str, now: float, period: Period | None
) -> tuple[Policy, float | None, str | None]:
    if period is None:
        return "deliver", None, None
    policy = quiet_hours.policy_for(priority)
    if policy == "defer":
        return policy, period.end, f"held by quiet hours until {format_until(period.end, zone, now)}"
    windows = ", ".join(describe_window(w) for w in period.windows)
    if policy == "drop":
        return policy, period.end, f"dropped by quiet hours ({windows} {zone})"
    return policy, period.end, f"sent during quiet hours ({windows} {zone}): {priority} messages are delivered"


def quiet_hours_for(person: Person | None, project: QuietHours | None) -> tuple[QuietHours | None, str]:
    """The quiet hours that apply to ``person`` and the zone they are read in: the person's own in
    their zone; else the project's, in the person's zone, or the project's ``timezone`` when the
    person's is UTC (the default when none was given)."""
    if person is not None and person.quiet_hours is not None:
        return person.quiet_hours, person.timezone or "UTC"
    if project is None:
        return None, "UTC"
    own = person.timezone if person is not None else None
    if own and (own != "UTC" or project.timezone is None):
        return project, own
    return project, project.timezone or "UTC"


DIGEST_NOTE = "for the quiet-hours digest"


def apply_quiet_hours(
    targets: list[Target], people: People, settings: ProjectSettings | None, message: Message, now: float
) -> list[Target]:
    """Planned deliveries with quiet hours applied to those addressed to a recipient: ``defer`` sets
    ``due`` to the end of the period (with ``digest``: ``grouped``, folded into one message per
    person and channel when it ends), ``drop`` makes them ``suppressed``, ``deliver`` leaves them.
    Deliveries already decided (a preference turned them off) are left as they are."""
    if not any(t.recipient is not None and t.status is None for t in targets):
        return targets
    project = settings.quiet_hours if settings is not None else None
    persons = {p.id: p for p in people.persons.values()}
    decided: dict[str, tuple[QuietHours | None, Policy, float | None, str | None]] = {}
    out = []
    for t in targets:
        if t.recipient is None or t.status is not None:
            out.append(t)
            continue
        if t.recipient not in decided:
            quiet_hours, zone = quiet_hours_for(persons.get(t.recipient), project)
            if not _known_zone(zone):  # a zone this machine's tz database lacks: UTC rather than fail
                zone = "UTC"
            if quiet_hours is None:
                decided[t.recipient] = (None, "deliver", None, None)
            else:
                decided[t.recipient] = (quiet_hours, *decide_quiet(quiet_hours, zone, message.priority.value, now))
        quiet_hours, policy, until, reason = decided[t.recipient]
        why = f"{t.reason}; {reason}" if t.reason else reason
        if policy == "defer" and until is not None and quiet_hours is not None:
            due = max(until, t.due or until)
            if quiet_hours.digest:
                t = _decided(t, "grouped", f"{why} {DIGEST_NOTE}", due)
            else:
                t = _decided(t, None, why, due)
        elif policy == "drop":
            t = _decided(t, "suppressed", why, t.due)
        out.append(t)
    return out


def _known_zone(name: str) -> bool:
    try:
        zone_of(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError; a malformed name a ValueError
        return False
    return True


def _decided(t: Target, status: str | None, reason: str | None, due: float | None) -> Target:
    return dataclasses.replace(t, status=status, reason=reason, due=due)
