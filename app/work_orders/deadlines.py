"""Time limits (办理时限) of 12345 work orders on the Chinese working-day calendar.

Working days follow the State Council's statutory holidays and adjusted working days (调休, weekend days
that are worked) as published in ``chinese_calendar``; a site adds its own local holidays or workdays.
Times are epoch seconds (UTC); days are judged in the hotline's local time zone.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar

from hotline.loop_site import DeadlinesTable

DAY_SECONDS = 86_400.0
UTILITY_LINKAGE = frozenset({"water", "power", "gas", "heating"})  # 水电气暖 outages


class RequestKind(StrEnum):
    """诉求类型 (kind of request): decides the time limit."""

    EMERGENCY = "emergency"  # 紧急: danger to life
    UTILITIES = "utilities"  # 水电气暖 (water, power, gas, heating) outages
    CONSULTATION = "consultation"  # 咨询
    HELP = "help"  # 求助
    SUGGESTION = "suggestion"  # 建议
    COMPLAINT = "complaint"  # 投诉
    REPORT = "report"  # 举报


@dataclass(frozen=True)
class Limit:
    amount: float
    unit: Literal["hours", "working_days"]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.amount) and self.amount >= 0):
            raise ValueError(f"a time limit is a finite amount >= 0, not {self.amount!r}")
        if self.unit not in ("hours", "working_days"):
            raise ValueError(f"unknown unit {self.unit!r}")


def _default_by_kind() -> Mapping[RequestKind, Limit]:
    # Published 12345 rules: emergencies and outages run on natural time, the rest on working days.
    return MappingProxyType({
        RequestKind.EMERGENCY: Limit(2, "hours"),
        RequestKind.UTILITIES: Limit(24, "hours"),
        RequestKind.CONSULTATION: Limit(2, "working_days"),
        RequestKind.HELP: Limit(10, "working_days"),
        RequestKind.SUGGESTION: Limit(10, "working_days"),
        RequestKind.COMPLAINT: Limit(15, "working_days"),
        RequestKind.REPORT: Limit(15, "working_days"),
    })


@dataclass(frozen=True)
class Limits:
    """Defaults from the published 12345 rules; a site overrides any of them (``by_kind`` partially too)."""

    by_kind: Mapping[RequestKind, Limit] = field(default_factory=_default_by_kind)
    sign: Limit = Limit(2, "hours")  # 签收 (sign for) within 2 h of dispatch
    return_window: Limit = Limit(2, "working_days")  # 回退 (send back) only within 2 working days of dispatch
    extension_max: Limit = Limit(10, "working_days")  # 延期 (extension): one at most this long
    warn_before: float = 0.2  # 预警 (warn) when this fraction of the time allowed remains

    def __post_init__(self) -> None:
        # A site listing only the kinds it changes keeps the published limits for the others.
        object.__setattr__(self, "by_kind", MappingProxyType({**_default_by_kind(), **self.by_kind}))
        if not 0 <= self.warn_before <= 1:
            raise ValueError(f"warn_before is a fraction in [0, 1], not {self.warn_before!r}")

    @classmethod
    def defaults(cls) -> Limits:
        return cls()

    def for_kind(self, kind: RequestKind) -> Limit:
        return self.by_kind[kind]


class WorkCalendar:
    """Working days: site overrides, then the State Council's calendar, then Monday-Friday beyond it."""

    def __init__(
        self,
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
        tz: str = "Asia/Shanghai",
    ) -> None:
        self._holidays = frozenset(extra_holidays)
        self._workdays = frozenset(extra_workdays)
        if clash := self._holidays & self._workdays:
            raise ValueError(f"both extra holidays and extra workdays: {', '.join(map(str, sorted(clash)))}")
        self._tz = ZoneInfo(tz)

    def _official(self, day: date) -> bool | None:
        """The library's answer, or None for a year it has no data for."""
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return None

    def is_workday(self, day: date) -> bool:
        if day in self._holidays:
            return False
        if day in self._workdays:
            return True
        official = self._official(day)
        return day.weekday() < 5 if official is None else official

    def covered(self, day: date) -> bool:
        """False where the working days are only guessed (Monday-Friday): the holidays are not known yet."""
        return day in self._holidays or day in self._workdays or self._official(day) is not None

    def _day_of(self, at: float) -> date:
        return datetime.fromtimestamp(at, self._tz).date()

    def _midnight(self, day: date) -> float:
        return datetime.combine(day, time(), self._tz).timestamp()

    def _segments(self, start: float) -> Iterator[tuple[float, float, bool]]:
        """(from, to, is_workday) for each local day from ``start`` on; the first begins at ``start``."""
        day, cursor = self._day_of(start), start
        while True:
            end = self._midnight(day + timedelta(days=1))
            yield cursor, end, self.is_workday(day)
            day, cursor = day + timedelta(days=1), end

    def add(self, start: float, limit: Limit) -> float:
        """The deadline: hours run on natural time (emergencies do not wait for Monday); working days count
        only time inside working days, 24 h of it per working day."""
        if limit.unit == "hours":
            return start + limit.amount * 3600
        remaining = limit.amount * DAY_SECONDS
        if remaining == 0:
            return start
        for begin, end, working in self._segments(start):
            if not working:
                continue
            if remaining <= end - begin:
                return begin + remaining
            remaining -= end - begin
        raise AssertionError("unreachable: _segments never ends")

    def working_days_between(self, start: float, end: float) -> float:
        """Working time elapsed from ``start`` to ``end`` in days (negative if ``end`` is earlier)."""
        if end < start:
            return -self.working_days_between(end, start)
        total = 0.0
        for begin, stop, working in self._segments(start):
            if begin >= end:
                break
            if working:
                total += min(stop, end) - begin
        return total / DAY_SECONDS

    def beyond_coverage(self, start: float, end: float) -> bool:
        """Whether any local day in [start, end] has guessed working days, so the deadline may move."""
        first, last = sorted((self._day_of(start), self._day_of(end)))
        return any(not self.covered(first + timedelta(days=n)) for n in range((last - first).days + 1))


def due_at(kind: RequestKind, start: float, limits: Limits, calendar: WorkCalendar) -> float:
    return calendar.add(start, limits.for_kind(kind))


# Caller's words per kind, strongest first: a report (举报) of wrongdoing beats a complaint (投诉), which
# beats a suggestion (建议), which beats a question (咨询); anything else asks for help (求助).
_WORDS: tuple[tuple[RequestKind, re.Pattern[str]], ...] = (
    (RequestKind.REPORT, re.compile(r"举报|检举")),
    (RequestKind.COMPLAINT, re.compile(r"投诉|不作为|态度.{0,2}差")),
    (RequestKind.SUGGESTION, re.compile(r"建议|希望能|提议")),
    (RequestKind.CONSULTATION, re.compile(r"咨询|请问|问一下|想问|怎么办理|需要什么材料")),
)


def request_kind(text: str, life_threat: bool, linkage: Iterable[str]) -> RequestKind:
    """诉求类型 from the call: danger to life first, then utility outages, then the caller's words."""
    if life_threat:
        return RequestKind.EMERGENCY
    if UTILITY_LINKAGE & {name.strip().lower() for name in linkage}:
        return RequestKind.UTILITIES
    # Speech recognizers give words split by spaces and no punctuation; full-width forms fold too.
    words = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    return next((kind for kind, pattern in _WORDS if pattern.search(words)), RequestKind.HELP)


def limits_of(table: DeadlinesTable) -> Limits:
    """The site's ``[deadlines]`` as :class:`Limits`."""
    wd: Literal["working_days"] = "working_days"
    h: Literal["hours"] = "hours"
    k = RequestKind
    by_kind = {k.EMERGENCY: Limit(table.emergency_h, h), k.UTILITIES: Limit(table.utilities_h, h),
               k.CONSULTATION: Limit(table.consultation_wd, wd), k.HELP: Limit(table.help_wd, wd),
               k.SUGGESTION: Limit(table.suggestion_wd, wd), k.COMPLAINT: Limit(table.complaint_wd, wd),
               k.REPORT: Limit(table.report_wd, wd)}
    return Limits(by_kind=by_kind, sign=Limit(table.sign_h, h), return_window=Limit(table.return_wd, wd),
                  extension_max=Limit(table.extension_max_wd, wd), warn_before=table.warn_before)


def calendar_of(table: DeadlinesTable) -> WorkCalendar:
    return WorkCalendar(extra_holidays=table.extra_holidays, extra_workdays=table.extra_workdays)
