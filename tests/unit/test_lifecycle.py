"""The work-order lifecycle tables, pair by pair, plus the product's rules written out by name.

The pairwise tests check that ``order_move`` / ``part_move`` do exactly what ``ORDER_MOVES`` /
``PART_MOVES`` say (and refuse the rest with a stable, explained error); the named tests check the
tables themselves against the rules of the closed loop, so a wrong edit of a table fails by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from app.errors import InvalidTransition
from app.work_orders.lifecycle import (
    FINAL_ORDER_STATES,
    LIVE_PART_STATES,
    ORDER_MOVES,
    PART_MOVES,
    State,
    Step,
    order_move,
    part_move,
)

S, T = State, Step
Table = Mapping[tuple[State, Step], State]
Move = Callable[[str, Step], State]

ALL_PAIRS = [(state, step) for state in State for step in Step]
PAIR_IDS = [f"{state.value}-{step.value}" for state, step in ALL_PAIRS]
ERROR_ID = "work_order.invalid_transition"


def allowed_from(table: Table, state: State) -> list[str]:
    return sorted(step.value for (st, step) in table if st is state)


def refused(move: Move, state: str, step: Step) -> InvalidTransition:
    with pytest.raises(InvalidTransition) as info:
        move(state, step)
    return info.value


def can(table: Table, state: State, step: Step) -> bool:
    return (state, step) in table


# --- every pair, both tables -------------------------------------------------------------------------


@pytest.mark.parametrize(("table", "move"), [(ORDER_MOVES, order_move), (PART_MOVES, part_move)],
                         ids=["order", "part"])
@pytest.mark.parametrize(("state", "step"), ALL_PAIRS, ids=PAIR_IDS)
def test_every_pair(table: Table, move: Move, state: State, step: Step) -> None:
    if (state, step) in table:
        assert move(state.value, step) is table[(state, step)]
        return
    err = refused(move, state.value, step)
    assert err.status_code == 409 and err.status == 409
    assert err.id == ERROR_ID and err.error_id == ERROR_ID
    assert err.details == {"state": state.value, "step": step.value, "allowed": allowed_from(table, state)}
    assert err.to_json()["error_id"] == ERROR_ID
    assert state.value in err.message and step.value in err.message


def test_the_tables_hold_only_states_and_steps() -> None:
    for table in (ORDER_MOVES, PART_MOVES):
        for (state, step), to in table.items():
            assert isinstance(state, State) and isinstance(step, Step) and isinstance(to, State)


def test_allowed_is_sorted_and_matches_what_the_table_allows() -> None:
    # signed parts: four ways on, listed alphabetically (not in table order)
    err = refused(part_move, "signed", T.SIGN)
    assert err.details["allowed"] == ["progress", "reply", "request_extension", "return"]
    err = refused(order_move, "draft", T.DISPATCH)
    assert err.details["allowed"] == ["accept", "merge", "resolve_on_call"]
    err = refused(order_move, "callback", T.DISPATCH)
    assert err.details["allowed"] == ["close", "reopen"]


# --- the product's rules, by name ---------------------------------------------------------------------


def test_a_draft_cannot_be_dispatched_it_is_accepted_first() -> None:
    assert not can(ORDER_MOVES, S.DRAFT, T.DISPATCH)
    assert order_move("draft", T.ACCEPT) is S.ACCEPTED
    assert order_move("accepted", T.DISPATCH) is S.DISPATCHED


def test_a_draft_or_accepted_order_can_be_merged_but_not_a_dispatched_one() -> None:
    assert order_move("draft", T.MERGE) is S.MERGED
    assert order_move("accepted", T.MERGE) is S.MERGED
    for state in (S.DISPATCHED, S.REPLIED, S.CALLBACK, S.CLOSED, S.REOPENED):
        assert not can(ORDER_MOVES, state, T.MERGE), state


@pytest.mark.parametrize("state", [S.CLOSED, S.MERGED])
def test_closed_and_merged_orders_have_no_way_out(state: State) -> None:
    assert allowed_from(ORDER_MOVES, state) == []
    assert allowed_from(PART_MOVES, state) == []
    for step in Step:
        assert refused(order_move, state.value, step).details["allowed"] == []
    assert state in FINAL_ORDER_STATES


def test_the_final_order_states_are_exactly_closed_and_merged() -> None:
    assert FINAL_ORDER_STATES == {S.CLOSED, S.MERGED}


def test_a_returned_part_has_no_way_out_the_dispatcher_dispatches_a_new_part() -> None:
    assert allowed_from(PART_MOVES, S.RETURNED) == []
    for step in Step:
        err = refused(part_move, "returned", step)
        assert err.details == {"state": "returned", "step": step.value, "allowed": []}
    # 改派: the order itself takes another dispatch while dispatched
    assert order_move("dispatched", T.DISPATCH) is S.DISPATCHED
    assert S.RETURNED not in LIVE_PART_STATES


def test_a_part_is_returned_only_before_work_starts() -> None:
    returnable = {state for (state, step) in PART_MOVES if step is T.RETURN}
    assert returnable == {S.DISPATCHED, S.SIGNED}
    assert all(PART_MOVES[(state, T.RETURN)] is S.RETURNED for state in returnable)


def test_an_extension_is_asked_once_work_started_not_before_signing() -> None:
    askers = {state for (state, step) in PART_MOVES if step is T.REQUEST_EXTENSION}
    assert askers == {S.SIGNED, S.IN_PROGRESS, S.REOPENED}
    for state in askers:
        assert part_move(state.value, T.REQUEST_EXTENSION) is S.EXTENSION_REQUESTED
    err = refused(part_move, "dispatched", T.REQUEST_EXTENSION)
    assert err.details["allowed"] == ["return", "sign"]
    # nor twice at once, nor again after one was granted
    assert not can(PART_MOVES, S.EXTENSION_REQUESTED, T.REQUEST_EXTENSION)
    assert not can(PART_MOVES, S.EXTENDED, T.REQUEST_EXTENSION)


def test_an_extension_request_is_only_approved_or_refused() -> None:
    assert allowed_from(PART_MOVES, S.EXTENSION_REQUESTED) == ["approve_extension", "refuse_extension"]
    assert part_move("extension_requested", T.APPROVE_EXTENSION) is S.EXTENDED
    assert part_move("extension_requested", T.REFUSE_EXTENSION) is S.IN_PROGRESS
    approvable = {state for (state, step) in PART_MOVES if step in (T.APPROVE_EXTENSION, T.REFUSE_EXTENSION)}
    assert approvable == {S.EXTENSION_REQUESTED}


def test_an_extended_part_keeps_its_state_while_worked_and_replies() -> None:
    assert part_move("extended", T.PROGRESS) is S.EXTENDED
    assert part_move("extended", T.REPLY) is S.REPLIED


def test_a_part_must_be_signed_before_it_is_worked_or_answered() -> None:
    assert allowed_from(PART_MOVES, S.DISPATCHED) == ["return", "sign"]
    assert part_move("dispatched", T.SIGN) is S.SIGNED
    assert not can(PART_MOVES, S.DISPATCHED, T.REPLY)
    assert not can(PART_MOVES, S.DISPATCHED, T.PROGRESS)
    signable = {state for (state, step) in PART_MOVES if step is T.SIGN}
    assert signable == {S.DISPATCHED}


def test_only_replied_parts_reopen() -> None:
    reopenable = {state for (state, step) in PART_MOVES if step is T.REOPEN}
    assert reopenable == {S.REPLIED}
    assert part_move("replied", T.REOPEN) is S.REOPENED
    assert allowed_from(PART_MOVES, S.REPLIED) == ["reopen"]


def test_a_reopened_part_is_worked_again() -> None:
    assert allowed_from(PART_MOVES, S.REOPENED) == ["progress", "reply", "request_extension"]
    assert part_move("reopened", T.PROGRESS) is S.IN_PROGRESS
    assert part_move("reopened", T.REPLY) is S.REPLIED


def test_resolved_on_call_can_start_a_callback_or_close() -> None:
    assert allowed_from(ORDER_MOVES, S.RESOLVED_ON_CALL) == ["close", "start_callback"]
    assert order_move("resolved_on_call", T.START_CALLBACK) is S.CALLBACK
    assert order_move("resolved_on_call", T.CLOSE) is S.CLOSED
    assert order_move("draft", T.RESOLVE_ON_CALL) is S.RESOLVED_ON_CALL


def test_a_callback_closes_or_reopens() -> None:
    assert allowed_from(ORDER_MOVES, S.CALLBACK) == ["close", "reopen"]
    assert order_move("callback", T.CLOSE) is S.CLOSED
    assert order_move("callback", T.REOPEN) is S.REOPENED


def test_a_replied_order_is_followed_up_or_reopened_never_closed_directly() -> None:
    assert allowed_from(ORDER_MOVES, S.REPLIED) == ["reopen", "start_callback"]
    assert not can(ORDER_MOVES, S.REPLIED, T.CLOSE)


def test_an_order_is_replied_only_by_the_service_when_every_part_answered() -> None:
    into_replied = {(state, step) for (state, step), to in ORDER_MOVES.items() if to is S.REPLIED}
    assert into_replied == {(S.DISPATCHED, T.ALL_REPLIED), (S.REOPENED, T.ALL_REPLIED)}
    assert not any(step is T.REPLY for (_, step) in ORDER_MOVES)


def test_a_reopened_order_is_dispatched_again() -> None:
    assert order_move("reopened", T.DISPATCH) is S.DISPATCHED
    assert order_move("reopened", T.ALL_REPLIED) is S.REPLIED


def test_handler_steps_are_part_steps_only() -> None:
    order_steps = {step for (_, step) in ORDER_MOVES}
    part_steps = {step for (_, step) in PART_MOVES}
    assert {T.SIGN, T.PROGRESS, T.REPLY, T.REQUEST_EXTENSION, T.RETURN} <= part_steps
    assert not order_steps & {T.SIGN, T.PROGRESS, T.REPLY, T.REQUEST_EXTENSION, T.RETURN,
                              T.APPROVE_EXTENSION, T.REFUSE_EXTENSION}


@pytest.mark.parametrize("state", ["confirmed", "", "DRAFT", " draft", "closed ", "unknown"])
@pytest.mark.parametrize("move", [order_move, part_move], ids=["order", "part"])
def test_unknown_state_strings_are_refused(move: Move, state: str) -> None:
    err = refused(move, state, T.ACCEPT)
    assert err.status_code == 409 and err.id == ERROR_ID
    assert err.details == {"state": state, "step": "accept", "allowed": []}


# --- the graph -----------------------------------------------------------------------------------------


def successors(tables: tuple[Table, ...], state: State) -> set[State]:
    return {to for table in tables for (st, _), to in table.items() if st is state}


def reachable(tables: tuple[Table, ...], start: State) -> set[State]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in successors(tables, todo.pop()) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_every_state_is_reachable_from_draft_by_order_and_part_moves() -> None:
    assert reachable((ORDER_MOVES, PART_MOVES), S.DRAFT) == set(State)


def test_order_moves_alone_do_not_reach_the_part_states() -> None:
    # a part's states are the part's: the walk above needs both tables
    only_orders = reachable((ORDER_MOVES,), S.DRAFT)
    assert S.SIGNED not in only_orders and S.RETURNED not in only_orders
    assert {S.CLOSED, S.MERGED, S.CALLBACK, S.REOPENED} <= only_orders


FINAL_STATES = FINAL_ORDER_STATES | {S.RETURNED}


@pytest.mark.parametrize("state", sorted(set(State) - FINAL_STATES), ids=str)
def test_every_state_but_the_final_ones_has_a_way_out(state: State) -> None:
    assert successors((ORDER_MOVES, PART_MOVES), state), state


@pytest.mark.parametrize("state", sorted(FINAL_STATES), ids=str)
def test_the_final_states_have_no_way_out(state: State) -> None:
    assert successors((ORDER_MOVES, PART_MOVES), state) == set()


@pytest.mark.parametrize("state", sorted({st for (st, _) in ORDER_MOVES}), ids=str)
def test_every_open_order_state_can_still_be_closed(state: State) -> None:
    assert S.CLOSED in reachable((ORDER_MOVES,), state) or S.MERGED in reachable((ORDER_MOVES,), state)


@pytest.mark.parametrize("state", sorted(LIVE_PART_STATES), ids=str)
def test_every_live_part_can_still_be_answered(state: State) -> None:
    assert S.REPLIED in reachable((PART_MOVES,), state)


def test_the_live_part_states_are_those_that_owe_an_answer() -> None:
    part_states = {st for (st, _) in PART_MOVES} | set(PART_MOVES.values())
    assert LIVE_PART_STATES == part_states - {S.REPLIED, S.RETURNED}
