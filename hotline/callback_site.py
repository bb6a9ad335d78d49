"""The outbound side's part of ``site.toml``: the end-of-call rating, and callbacks (回访, missed calls).

```toml
[survey]                       # 一次一评: the caller rates the call after the operator hangs up
enabled = true
timeout_s = 6                  # no key this long after the prompt: recorded as no_key
tries = 2                      # a wrong key: the prompt once more; wrong again: recorded as invalid
[survey.scale]                 # key -> rating (the prompt "rating" says the same words)
"1" = "very_satisfied"
"2" = "satisfied"
"3" = "unsatisfied"
"4" = "very_unsatisfied"

[callbacks]
trunk_host = "127.0.0.4"       # the outbound trunk (carrier SBC): PJSIP endpoint "callback-trunk"
trunk_port = 5060
caller_id = "12345"            # what the called phone shows
hours = ["08:30", "20:00"]     # calling hours (local time): nothing is dialled outside them
max_outbound = 2               # outbound calls at once per platform, so inbound keeps its seats
attempts = 3                   # then callback_failed
retry_after_s = [600, 3600]    # backoff before the 2nd, 3rd... attempt (the last value repeats)
ring_s = 30                    # ring the caller this long
survey_after = "next_working_day"   # or "now": when a replied order's 回访 is due
missed_within_min = 30         # a missed call is called back within this time, or not at all
seat_wait_s = 120              # a missed-call callback waits this long for a free seat
queue_callback_key = "9"       # 排队回拨: a caller waiting in the queue presses it to be called back
```
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from hotline.types import IpAddress, Port

Rating = Literal["very_satisfied", "satisfied", "unsatisfied", "very_unsatisfied"]
SATISFIED_RATINGS = frozenset({"very_satisfied", "satisfied"})
DtmfKey = Annotated[str, Field(strict=True, pattern=r"^[0-9*#]$")]
ClockTime = Annotated[str, Field(strict=True, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
CallerIdNumber = Annotated[str, Field(strict=True, pattern=r"^[0-9]{3,20}$")]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


DEFAULT_SCALE: dict[str, Rating] = {"1": "very_satisfied", "2": "satisfied", "3": "unsatisfied",
                                    "4": "very_unsatisfied"}


class SurveyTable(_Table):
    enabled: StrictBool = True
    timeout_s: Annotated[StrictInt, Field(ge=1, le=30)] = 6
    tries: Annotated[StrictInt, Field(ge=1, le=3)] = 2
    scale: dict[DtmfKey, Rating] = Field(default_factory=lambda: dict(DEFAULT_SCALE))

    @model_validator(mode="after")
    def _both_sides(self) -> SurveyTable:
        values = set(self.scale.values())
        if not values & SATISFIED_RATINGS or not values - SATISFIED_RATINGS:
            raise ValueError("survey.scale needs at least one satisfied and one unsatisfied key")
        return self


class CallbacksTable(_Table):
    trunk_host: IpAddress = "127.0.0.4"
    trunk_port: Port = 5060
    caller_id: CallerIdNumber = "12345"
    hours: tuple[ClockTime, ClockTime] = ("08:30", "20:00")
    max_outbound: Annotated[StrictInt, Field(ge=0, le=500)] = 2
    attempts: Annotated[StrictInt, Field(ge=1, le=10)] = 3
    retry_after_s: tuple[Annotated[StrictInt, Field(ge=1, le=7 * 86400)], ...] = (600, 3600)
    ring_s: Annotated[StrictInt, Field(ge=5, le=120)] = 30
    survey_after: Literal["next_working_day", "now"] = "next_working_day"
    missed_within_min: Annotated[StrictInt, Field(ge=0, le=24 * 60)] = 30
    seat_wait_s: Annotated[StrictInt, Field(ge=10, le=3600)] = 120
    queue_callback_key: DtmfKey | None = "9"

    @model_validator(mode="after")
    def _hours(self) -> CallbacksTable:
        if self.hours[0] >= self.hours[1]:
            raise ValueError("callbacks.hours: the first time must be before the second")
        if not self.retry_after_s:
            raise ValueError("callbacks.retry_after_s: at least one delay")
        return self

    def within_hours(self, local: dt.datetime) -> bool:
        return self.hours[0] <= local.strftime("%H:%M") < self.hours[1]

    def retry_delay(self, attempt: int) -> int:
        """Seconds to wait after attempt number ``attempt`` (1-based) before the next."""
        return self.retry_after_s[min(attempt - 1, len(self.retry_after_s) - 1)]
