"""The work-order lifecycle: one enum of states, two transition tables, one function that moves.

An order (工单 at 12345, 警单 at 110) has a state; so has each of its parts, one per handler it was
dispatched to (110, a district government, a department), because each handler signs, works and
replies on its own clock (the notice's annex, part 3: one matter to 110 *and* the local government
*and* the department).

```
order: draft ──accept──> accepted ──dispatch──> dispatched ──(every live part replied)──> replied
         │                  │                     ▲                                          │
         ├─resolve_on_call──┼──> resolved_on_call  └──────────── dispatch ── reopened <──reopen┤
         └──merge───────────┴──> merged                                          ▲           ▼
                          replied/resolved_on_call ──start_callback──> callback ──close──> closed

part:  dispatched ──sign──> signed ──progress──> in_progress ──reply──> replied
           │                  │  └─request_extension─> extension_requested ──approve──> extended ──reply──┘
           └──return──────────┴──> returned (回退; re-dispatched: 改派)   └──refuse──> in_progress
       replied ──reopen──> reopened (重办) ──progress/reply/request_extension──> ...
```

Every move is appended to the order's history (who, role, when, from, to, note); nothing moves any
other way. A refused move raises :class:`InvalidTransition` (409, ``invalid_transition``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from app.errors import InvalidTransition


class State(enum.StrEnum):
    DRAFT = "draft"
    ACCEPTED = "accepted"                        # 受理
    DISPATCHED = "dispatched"                    # 派单 / 转办
    SIGNED = "signed"                            # 签收
    IN_PROGRESS = "in_progress"                  # 办理
    EXTENSION_REQUESTED = "extension_requested"  # 申请延期
    EXTENDED = "extended"                        # 延期 (approved)
    RETURNED = "returned"                        # 回退
    REPLIED = "replied"                          # 答复 / 办结
    CALLBACK = "callback"                        # 回访
    CLOSED = "closed"                            # 办结归档
    REOPENED = "reopened"                        # 重办
    MERGED = "merged"                            # 并单
    RESOLVED_ON_CALL = "resolved_on_call"        # 直接答复


class Step(enum.StrEnum):
    ACCEPT = "accept"
    RESOLVE_ON_CALL = "resolve_on_call"
    MERGE = "merge"
    DISPATCH = "dispatch"
    ALL_REPLIED = "all_replied"  # taken by the service, never asked for
    START_CALLBACK = "start_callback"
    CLOSE = "close"
    REOPEN = "reopen"
    SIGN = "sign"
    PROGRESS = "progress"
    REPLY = "reply"
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    REFUSE_EXTENSION = "refuse_extension"
    RETURN = "return"


S, T = State, Step

ORDER_MOVES: Mapping[tuple[State, Step], State] = {
    (S.DRAFT, T.ACCEPT): S.ACCEPTED,
    (S.DRAFT, T.RESOLVE_ON_CALL): S.RESOLVED_ON_CALL,
    (S.DRAFT, T.MERGE): S.MERGED,
    (S.ACCEPTED, T.MERGE): S.MERGED,
    (S.ACCEPTED, T.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, T.DISPATCH): S.DISPATCHED,      # another handler, or 改派 after a return
    (S.DISPATCHED, T.ALL_REPLIED): S.REPLIED,
    (S.REOPENED, T.DISPATCH): S.DISPATCHED,
    (S.REOPENED, T.ALL_REPLIED): S.REPLIED,        # its reopened parts answered again
    (S.REPLIED, T.START_CALLBACK): S.CALLBACK,
    (S.RESOLVED_ON_CALL, T.START_CALLBACK): S.CALLBACK,
    (S.RESOLVED_ON_CALL, T.CLOSE): S.CLOSED,
    (S.CALLBACK, T.CLOSE): S.CLOSED,
    (S.CALLBACK, T.REOPEN): S.REOPENED,            # the caller was not satisfied
    (S.REPLIED, T.REOPEN): S.REOPENED,             # a supervisor found the reply poor
}

PART_MOVES: Mapping[tuple[State, Step], State] = {
    (S.DISPATCHED, T.SIGN): S.SIGNED,
    (S.DISPATCHED, T.RETURN): S.RETURNED,
    (S.SIGNED, T.RETURN): S.RETURNED,
    (S.SIGNED, T.PROGRESS): S.IN_PROGRESS,
    (S.IN_PROGRESS, T.PROGRESS): S.IN_PROGRESS,
    (S.EXTENDED, T.PROGRESS): S.EXTENDED,
    (S.REOPENED, T.PROGRESS): S.IN_PROGRESS,
    (S.SIGNED, T.REPLY): S.REPLIED,
    (S.IN_PROGRESS, T.REPLY): S.REPLIED,
    (S.EXTENDED, T.REPLY): S.REPLIED,
    (S.REOPENED, T.REPLY): S.REPLIED,
    (S.SIGNED, T.REQUEST_EXTENSION): S.EXTENSION_REQUESTED,
    (S.IN_PROGRESS, T.REQUEST_EXTENSION): S.EXTENSION_REQUESTED,
    (S.REOPENED, T.REQUEST_EXTENSION): S.EXTENSION_REQUESTED,
    (S.EXTENSION_REQUESTED, T.APPROVE_EXTENSION): S.EXTENDED,
    (S.EXTENSION_REQUESTED, T.REFUSE_EXTENSION): S.IN_PROGRESS,
    (S.REPLIED, T.REOPEN): S.REOPENED,
}

# A part in one of these still owes an answer; a returned part was handed back, a replied one answered.
LIVE_PART_STATES = frozenset({S.DISPATCHED, S.SIGNED, S.IN_PROGRESS, S.EXTENSION_REQUESTED, S.EXTENDED,
                              S.REOPENED})
# The order is finished: no handler owes anything and no one follows it up.
FINAL_ORDER_STATES = frozenset({S.CLOSED, S.MERGED})
# Steps a handler (a department, or the other platform for its part) takes on its own part.
HANDLER_STEPS = frozenset({T.SIGN, T.PROGRESS, T.REPLY, T.REQUEST_EXTENSION, T.RETURN})


def _move(table: Mapping[tuple[State, Step], State], what: str, state: str, step: Step) -> State:
    try:
        return table[(State(state), step)]
    except (KeyError, ValueError):
        allowed = sorted(s.value for (st, s) in table if st.value == state)
        raise InvalidTransition(f"{what} in state {state!r} cannot {step.value!r}",
                                details={"state": state, "step": step.value, "allowed": allowed}) from None


def order_move(state: str, step: Step) -> State:
    return _move(ORDER_MOVES, "a work order", state, step)


def part_move(state: str, step: Step) -> State:
    return _move(PART_MOVES, "a handler's part", state, step)
