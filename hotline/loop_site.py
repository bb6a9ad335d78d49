"""The closed loop's part of ``site.toml``: handlers (承办单位), time limits, and the exchange with the
other platform's installation.

```toml
[[handlers]]                 # one per department or local government
id = "linhe"                 # the API name (lower case); its staff's tokens carry it
kind = "local_government"    # local_government | department
name = "临河区人民政府"
district = "临河区"           # local governments: the district, county or banner they govern
categories = []              # departments: the annex codes they handle (A01 ...)
contacts = ["0478-8210000"]

[deadlines]                  # hours (_h) or working days (_wd) on the Chinese calendar
complaint_wd = 15
extra_holidays = ["2027-01-01"]   # the State Council's days the calendar library does not know yet

[exchange]
platforms = ["12345"]        # what this installation takes calls for: "12345", "110" or both
[exchange.peers.110]
url = "https://110.example.gov.cn/api/exchange/v1/messages"
```
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from hotline.platforms import Service
from hotline.types import CategoryCode, HandlerId, Text

HandlerKind = Literal["local_government", "department"]
PLATFORM_KIND = "platform"  # the other platform as a handler of one part (not in [[handlers]])
Hours = Annotated[float, Field(gt=0, le=24 * 60, allow_inf_nan=False)]
WorkingDays = Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)]
Url = Annotated[str, Field(strict=True, pattern=r"^https?://[A-Za-z0-9.:\[\]-]{1,255}(/[A-Za-z0-9._~/-]*)?$")]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HandlerTable(_Table):
    id: HandlerId
    kind: HandlerKind
    name: Text(128, min_length=1)  # type: ignore[valid-type]
    district: Text(32, min_length=2) | None = None  # type: ignore[valid-type]
    categories: tuple[CategoryCode, ...] = ()
    contacts: tuple[Annotated[str, Field(strict=True, pattern=r"^[0-9+-]{3,24}$")], ...] = ()

    @model_validator(mode="after")
    def _kind_fits(self) -> HandlerTable:
        if self.kind == "local_government" and not self.district:
            raise ValueError(f"handler {self.id}: a local government names its district")
        if self.kind == "department" and not self.categories:
            raise ValueError(f"handler {self.id}: a department lists the categories it handles")
        return self


class DeadlinesTable(_Table):
    """Defaults: the published 12345 rules (emergency 2 h, utilities 24 h, consultation 2 working
    days, help and suggestion 10, complaint and report 15; sign within 2 h; return within 2 working
    days; an extension of at most 10 working days)."""

    emergency_h: Hours = 2
    utilities_h: Hours = 24
    consultation_wd: WorkingDays = 2
    help_wd: WorkingDays = 10
    suggestion_wd: WorkingDays = 10
    complaint_wd: WorkingDays = 15
    report_wd: WorkingDays = 15
    sign_h: Hours = 2
    return_wd: WorkingDays = 2
    extension_max_wd: WorkingDays = 10
    warn_before: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.2  # of the time allowed
    # 督办 levels after the deadline: the handler, then its supervisor, then the leading group.
    urge_after_h: tuple[Annotated[float, Field(ge=0, le=24 * 60)], ...] = (0, 24, 72)
    sweep_s: Annotated[float, Field(ge=0.05, le=3600)] = 30
    repeat_window_h: Annotated[float, Field(gt=0, le=24 * 365)] = 720  # 并单: a repeat within 30 days
    extra_holidays: tuple[dt.date, ...] = ()
    extra_workdays: tuple[dt.date, ...] = ()

    @model_validator(mode="after")
    def _levels(self) -> DeadlinesTable:
        if list(self.urge_after_h) != sorted(set(self.urge_after_h)) or not self.urge_after_h:
            raise ValueError("deadlines.urge_after_h: rising hours, at least one")
        if both := sorted(set(self.extra_holidays) & set(self.extra_workdays)):
            raise ValueError(f"deadlines: {both} listed as holiday and as working day")
        return self


class PeerTable(_Table):
    url: Url
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5
    retry_max_s: Annotated[float, Field(ge=0.1, le=3600)] = 60  # backoff ceiling between attempts


class ExchangeTable(_Table):
    # The platforms whose calls this installation takes; the other one is a peer (or, when both are
    # here, the same exchange path runs through this installation's own endpoint).
    platforms: tuple[Service, ...] = (Service.HOTLINE_12345, Service.POLICE_110)
    peers: dict[Service, PeerTable] = Field(default_factory=dict)
    window_s: Annotated[int, Field(ge=10, le=3600)] = 300  # a signed message older or newer is refused
    enabled: StrictBool = True

    @model_validator(mode="after")
    def _consistent(self) -> ExchangeTable:
        if not self.platforms or len(set(self.platforms)) != len(self.platforms):
            raise ValueError("exchange.platforms: one or both of 12345, 110, each once")
        return self


def check_handlers(handlers: tuple[HandlerTable, ...]) -> None:
    ids = [h.id for h in handlers]
    if dup := sorted({i for i in ids if ids.count(i) > 1}):
        raise ValueError(f"handlers listed twice: {dup}")
    districts = [h.district for h in handlers if h.kind == "local_government"]
    if dup := sorted({d for d in districts if d and districts.count(d) > 1}):
        raise ValueError(f"two local governments for {dup}")
