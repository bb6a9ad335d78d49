"""办理时限 (time limits) on the Chinese working-day calendar, checked on real 2026 dates.

The State Council's 2026 holidays as chinese_calendar 1.11.0 has them: Spring Festival Feb 15-23 with
Sat Feb 14 and Sat Feb 28 worked; National Day Oct 1-7 with Sun Sep 20 and Sat Oct 10 worked.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

import pytest

from app.work_orders.deadlines import Limit, Limits, RequestKind, WorkCalendar, due_at, request_kind

SHANGHAI = ZoneInfo("Asia/Shanghai")
WD: Final = "working_days"


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> float:
    """Epoch seconds of a local (Shanghai) wall-clock time."""
    return datetime(y, mo, d, h, mi, tzinfo=SHANGHAI).timestamp()


def local(t: float) -> datetime:
    """The local wall-clock time of epoch seconds, naive so that a wrong zone cannot compare equal."""
    return datetime.fromtimestamp(t, SHANGHAI).replace(tzinfo=None)


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar()


def test_weekends_are_skipped(cal: WorkCalendar) -> None:
    assert local(cal.add(at(2026, 3, 13, 15), Limit(2, WD))) == datetime(2026, 3, 17, 15)  # Fri -> Tue
    # Saturday counts nothing: Monday 00:00 on, 48 h of working days end at Wednesday 00:00
    assert local(cal.add(at(2026, 3, 14, 10), Limit(2, WD))) == datetime(2026, 3, 18, 0)


def test_days_are_judged_in_shanghai_time_not_utc(cal: WorkCalendar) -> None:
    # Friday 17:00 UTC is Saturday 01:00 in Shanghai: nothing counts until Monday
    start = datetime(2026, 3, 13, 17, tzinfo=ZoneInfo("UTC")).timestamp()
    assert local(cal.add(start, Limit(1, WD))) == datetime(2026, 3, 17, 0)


def test_spring_festival_2026_days(cal: WorkCalendar) -> None:
    assert cal.is_workday(date(2026, 2, 14)) and cal.is_workday(date(2026, 2, 28))  # adjusted Saturdays
    assert not any(cal.is_workday(date(2026, 2, d)) for d in range(15, 24))
    assert cal.is_workday(date(2026, 2, 24)) and not cal.is_workday(date(2026, 3, 1))


def test_spring_festival_2026_deadlines(cal: WorkCalendar) -> None:
    # Fri 10:00: 14 h left that day, all of Saturday the 14th (worked), then the holiday to the 23rd
    assert local(cal.add(at(2026, 2, 13, 10), Limit(2, WD))) == datetime(2026, 2, 24, 10)
    # A complaint from Tue Feb 10 09:00 counts both adjusted Saturdays (Feb 14 and Feb 28)
    complaint = due_at(RequestKind.COMPLAINT, at(2026, 2, 10, 9), Limits.defaults(), cal)
    assert local(complaint) == datetime(2026, 3, 9, 9)


def test_starting_inside_a_holiday_counts_from_the_first_working_day(cal: WorkCalendar) -> None:
    consultation = due_at(RequestKind.CONSULTATION, at(2026, 2, 17, 14, 30), Limits.defaults(), cal)
    assert local(consultation) == datetime(2026, 2, 26, 0)  # Tue Feb 24 00:00 + 48 h


def test_national_day_2026(cal: WorkCalendar) -> None:
    assert not any(cal.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert cal.is_workday(date(2026, 10, 8)) and cal.is_workday(date(2026, 10, 10))  # Thu; Sat worked
    # Wed Sep 30 12:00 + 4 wd: 12 h, Oct 8, 9, 10 (Saturday, worked), skip Sunday, Mon Oct 12 12:00
    assert local(cal.add(at(2026, 9, 30, 12), Limit(4, WD))) == datetime(2026, 10, 12, 12)
    # Fri Sep 18 18:00 + 1 wd: 6 h on Friday, Saturday off, Sunday Sep 20 worked
    assert local(cal.add(at(2026, 9, 18, 18), Limit(1, WD))) == datetime(2026, 9, 20, 18)
    # Time running out at the end of Sep 30 is due then, not when work resumes on Oct 8
    assert local(cal.add(at(2026, 9, 29), Limit(2, WD))) == datetime(2026, 10, 1, 0)


def test_hours_limits_run_through_holidays(cal: WorkCalendar) -> None:
    limits = Limits.defaults()
    assert local(due_at(RequestKind.EMERGENCY, at(2026, 9, 30, 23), limits, cal)) == datetime(2026, 10, 1, 1)
    assert local(due_at(RequestKind.UTILITIES, at(2026, 2, 15, 20), limits, cal)) == datetime(2026, 2, 16, 20)
    assert local(cal.add(at(2026, 2, 14, 23), limits.sign)) == datetime(2026, 2, 15, 1)


def test_fractional_working_days(cal: WorkCalendar) -> None:
    assert local(cal.add(at(2026, 3, 13, 18), Limit(0.5, WD))) == datetime(2026, 3, 16, 6)  # 6 h Fri, 6 h Mon
    assert local(cal.add(at(2026, 3, 17, 9), Limit(0.25, WD))) == datetime(2026, 3, 17, 15)
    assert cal.add(at(2026, 2, 17, 9), Limit(0, WD)) == at(2026, 2, 17, 9)


def test_beyond_2026_falls_back_to_monday_to_friday_and_says_so(cal: WorkCalendar) -> None:
    assert cal.covered(date(2026, 12, 31)) and not cal.covered(date(2027, 1, 1))
    assert not cal.covered(date(2003, 12, 31))
    assert cal.is_workday(date(2027, 1, 1)) and not cal.is_workday(date(2027, 1, 2))  # Fri; Sat
    start = at(2026, 12, 30, 10)
    # 14 h Wed + Thu Dec 31 + Fri Jan 1 (a weekday, guessed working) + Mon + Tue, 10 h on Wed Jan 6
    due = cal.add(start, Limit(5, WD))
    assert local(due) == datetime(2027, 1, 6, 10)
    assert cal.beyond_coverage(start, due)
    assert not cal.beyond_coverage(start, at(2026, 12, 31, 23, 59))
    assert cal.beyond_coverage(at(2026, 12, 31, 9), at(2027, 1, 1, 8))  # the last day counts too


def test_site_holidays_and_workdays_override_the_library() -> None:
    site = WorkCalendar(
        extra_holidays=[date(2026, 3, 16), date(2026, 2, 14)],  # a local holiday; a worked Saturday taken off
        extra_workdays=[date(2026, 3, 14), date(2026, 10, 2)],  # a Saturday; a statutory holiday worked
    )
    assert not site.is_workday(date(2026, 2, 14)) and site.is_workday(date(2026, 10, 2))
    assert local(site.add(at(2026, 3, 13, 15), Limit(1, WD))) == datetime(2026, 3, 14, 15)  # Saturday worked
    # 1 h of Saturday, Sunday off, Monday the local holiday, 23 h of Tuesday
    assert local(site.add(at(2026, 3, 14, 23), Limit(1, WD))) == datetime(2026, 3, 17, 23)
    assert local(site.add(at(2026, 2, 13, 10), Limit(1, WD))) == datetime(2026, 2, 24, 10)


def test_site_days_make_a_later_year_covered() -> None:
    site = WorkCalendar(extra_holidays=[date(2027, 1, 1)])  # the site has read the 2027 notice
    assert site.covered(date(2027, 1, 1)) and not site.covered(date(2027, 1, 4))
    assert local(site.add(at(2026, 12, 30, 10), Limit(5, WD))) == datetime(2027, 1, 7, 10)
    assert site.beyond_coverage(at(2026, 12, 31, 9), at(2027, 1, 1, 20)) is False


def test_a_day_cannot_be_both_a_site_holiday_and_a_site_workday() -> None:
    with pytest.raises(ValueError, match="2026-05-06"):
        WorkCalendar(extra_holidays=[date(2026, 5, 6)], extra_workdays=[date(2026, 5, 6)])


@pytest.mark.parametrize(("start", "amount"), [
    (at(2026, 2, 13, 10), 2),
    (at(2026, 2, 17, 14, 30), 15),
    (at(2026, 9, 30, 12), 4),
    (at(2026, 3, 13, 18), 0.5),
    (at(2026, 12, 30, 10), 5.3),
])
def test_working_days_between_inverts_add(cal: WorkCalendar, start: float, amount: float) -> None:
    due = cal.add(start, Limit(amount, WD))
    assert cal.working_days_between(start, due) == pytest.approx(amount, abs=1e-9)
    assert cal.working_days_between(due, start) == pytest.approx(-amount, abs=1e-9)


def test_return_window_is_measured_in_working_days(cal: WorkCalendar) -> None:
    dispatched = at(2026, 2, 13, 15)  # Friday before the Spring Festival
    assert cal.working_days_between(dispatched, at(2026, 2, 23, 23)) == pytest.approx(33 / 24)
    window = Limits.defaults().return_window.amount
    assert cal.working_days_between(dispatched, at(2026, 2, 24, 14, 59)) < window
    assert cal.working_days_between(dispatched, at(2026, 2, 24, 15, 1)) > window


def test_default_limits_and_partial_site_overrides(cal: WorkCalendar) -> None:
    defaults = Limits.defaults()
    assert defaults.for_kind(RequestKind.REPORT) == Limit(15, WD)
    assert defaults.for_kind(RequestKind.UTILITIES) == Limit(24, "hours")
    assert defaults.sign == Limit(2, "hours") and defaults.extension_max == Limit(10, WD)
    site = Limits(by_kind={RequestKind.COMPLAINT: Limit(10, WD)}, warn_before=0.25)
    assert site.for_kind(RequestKind.COMPLAINT) == Limit(10, WD)
    assert site.for_kind(RequestKind.HELP) == Limit(10, WD)
    assert site.for_kind(RequestKind.EMERGENCY) == Limit(2, "hours")
    assert local(due_at(RequestKind.COMPLAINT, at(2026, 3, 2, 9), site, cal)) == datetime(2026, 3, 16, 9)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Limit(-1, WD)
    with pytest.raises(ValueError):
        Limit(float("nan"), "hours")
    with pytest.raises(ValueError):
        Limits(warn_before=1.5)


@pytest.mark.parametrize(("text", "kind"), [
    ("我要投诉街道办的工作人员态度很差", RequestKind.COMPLAINT),
    ("我想反映一下城管不作为的问题", RequestKind.COMPLAINT),
    ("我 要 举报 一家 饭店 无证 经营", RequestKind.REPORT),  # a recognizer's words, spaced, no punctuation
    ("我 想 问 一下 护照 怎么 办理", RequestKind.CONSULTATION),  # keywords split across its words
    ("我要检举村干部挪用补助款", RequestKind.REPORT),
    ("我举报他们之前也投诉过好几次都没人管", RequestKind.REPORT),  # report beats complaint
    ("投诉一下顺便建议你们多装几个路灯", RequestKind.COMPLAINT),  # complaint beats suggestion
    ("希望能在小区门口加个公交站", RequestKind.SUGGESTION),
    ("我有个提议请问能不能延长图书馆开放时间", RequestKind.SUGGESTION),  # suggestion beats consultation
    ("你好我想问一下社保卡怎么办理需要什么材料", RequestKind.CONSULTATION),
    ("咨询一下公积金提取", RequestKind.CONSULTATION),
    ("请问，居住证在哪里办？", RequestKind.CONSULTATION),
    ("我家老人走丢了能不能帮忙找一下", RequestKind.HELP),
    ("", RequestKind.HELP),
])
def test_request_kind_from_the_callers_words(text: str, kind: RequestKind) -> None:
    assert request_kind(text, life_threat=False, linkage=[]) is kind


def test_danger_and_outages_come_before_the_words() -> None:
    kind = request_kind("我要投诉楼上有人要跳楼", life_threat=True, linkage=["power"])
    assert kind is RequestKind.EMERGENCY
    assert request_kind("我要投诉停电三天了", False, ["police", " Power "]) is RequestKind.UTILITIES
    assert request_kind("我要投诉噪音", False, ["police", "fire"]) is RequestKind.COMPLAINT
