"""A live call's state and its transfer's state: closed sets with their transition functions.

The live hash in Redis stores the ``.value`` strings (readers elsewhere keep working); the code
compares enums. :func:`transition` says what a call event does to a call's state: it moves it,
leaves it alone (an event that arrives after the call has moved past it: the resync's ``arrived``
for a call already talking, a consultation leg ringing while the caller talks to its seat), or
raises :class:`InvalidTransition` for an event that cannot happen from there (a seat answering a
call that has ended).
"""

from __future__ import annotations

import enum

from hotline.contracts import CallEventType


class CallState(enum.StrEnum):
    ARRIVED = "arrived"            # the call reached a platform's number
    QUEUED = "queued"              # the caller waits in a queue
    RINGING = "ringing"            # a seat is being rung for the caller
    TALKING = "talking"            # the caller is connected to a seat
    TRANSFERRING = "transferring"  # the caller is on its way to the other platform (or coming back)
    CONFERENCE = "conference"      # caller, seat and others in the call's own bridge (三方通话/联动)
    ABANDONED = "abandoned"        # the caller hung up while waiting
    ENDED = "ended"                # the caller's channel is gone


class TransferState(enum.StrEnum):
    """The ``transfer`` field of the live hash: who holds the call's one transfer claim."""

    NONE = ""                  # nobody: a transfer, three-way or linkage may start
    CLAIMED = "claimed"        # a flow holds the claim while it moves the call (three-way, linkage)
    PENDING = "pending"        # the caller is being transferred (a Redirect, a seat's key)
    ATTENDED = "attended"      # the seat consults the other platform; the caller holds


class TransferKind(enum.StrEnum):
    BLIND = "blind"
    ATTENDED = "attended"


class SpyMode(enum.StrEnum):
    """What a supervisor does to a seat's call (班长监听/耳语/强插)."""

    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


class CallLeg(enum.StrEnum):
    """Legs of a call that are not the caller's own (``data.leg`` of an ``answered`` event)."""

    CONSULTATION = "consultation"  # an attended transfer's seat-to-other-side leg
    INVITED = "invited"            # a party invited into a three-way or linkage bridge


class InvalidTransition(ValueError):
    status = 409
    error_id = "invalid_transition"

    def __init__(self, current: enum.StrEnum | None, trigger: str) -> None:
        super().__init__(f"{trigger} cannot happen to a call in state {current.value if current else 'none'}")
        self.current = current
        self.trigger = trigger


S = CallState
E = CallEventType
_LIVE = frozenset({S.ARRIVED, S.QUEUED, S.RINGING, S.TALKING, S.TRANSFERRING, S.CONFERENCE})
_WAITING = frozenset({S.ARRIVED, S.QUEUED, S.RINGING, S.TRANSFERRING})

# event -> (new state, the states it moves from, the states it leaves alone). ``None`` is "no live
# state yet": the listener may have started in the middle of a call.
_CALL_RULES: dict[CallEventType, tuple[CallState, frozenset[CallState | None], frozenset[CallState]]] = {
    E.ARRIVED: (S.ARRIVED, frozenset({None, S.ARRIVED}), _LIVE - {S.ARRIVED}),
    E.QUEUED: (S.QUEUED, frozenset({None, *_WAITING}), frozenset({S.TALKING, S.CONFERENCE})),
    E.RINGING: (S.RINGING, frozenset({None, *_WAITING}), frozenset({S.TALKING, S.CONFERENCE})),
    E.ANSWERED: (S.TALKING, frozenset({None, *_WAITING, S.TALKING}), frozenset({S.CONFERENCE})),
    E.BRIDGED: (S.TALKING, frozenset({None, *_WAITING, S.TALKING}), frozenset({S.CONFERENCE})),
    E.TRANSFERRED: (S.TRANSFERRING, frozenset({None, *_LIVE}), frozenset()),
    E.TRANSFER_FAILED: (S.TRANSFERRING, frozenset({None, *_LIVE}), frozenset()),
    E.CONFERENCE_JOINED: (S.CONFERENCE, frozenset({None, S.TALKING, S.TRANSFERRING, S.CONFERENCE}),
                          frozenset()),
    E.ABANDONED: (S.ABANDONED, frozenset({None, *_WAITING, S.ABANDONED}), frozenset()),
    E.HANGUP: (S.ENDED, frozenset({None, *_LIVE, S.ABANDONED, S.ENDED}), frozenset()),
}


def changes_call_state(event_type: CallEventType) -> bool:
    """Whether the event is about where the call is (the others: routing, alerts, outcomes...)."""
    return event_type in _CALL_RULES


def transition(current: CallState | None, event_type: CallEventType) -> CallState | None:
    """The call's state after ``event_type``. Events that say nothing about where the call is
    (``routed``, ``alert``, ``outcome``, ...) leave it as it is. Raises :class:`InvalidTransition`."""
    rule = _CALL_RULES.get(event_type)
    if rule is None:
        return current
    new, moves_from, leaves = rule
    if current in moves_from:
        return new
    if current in leaves:
        return current
    raise InvalidTransition(current, event_type.value)


def parse_call_state(value: str | None) -> CallState | None:
    """The state stored in the live hash (``None`` when absent). Raises on a value we never write."""
    if not value:
        return None
    try:
        return CallState(value)
    except ValueError:
        raise InvalidTransition(None, f"unknown stored state {value[:32]!r}") from None


T = TransferState


def transfer_after(current: TransferState, event_type: CallEventType, *,
                   own_leg: bool = True) -> TransferState:
    """The transfer state after a call event: the outcome of a transfer releases the claim.

    A transfer seen by Asterisk (``transferred``, ``transfer_failed``) is pending until a seat answers
    the caller itself again (the other side, or the first seat when nobody answered there); the end
    of the call ends any transfer."""
    if event_type in (E.TRANSFERRED, E.TRANSFER_FAILED):
        return T.PENDING
    if (event_type is E.ANSWERED and own_leg) or event_type in (E.HANGUP, E.ABANDONED):
        return T.NONE
    return current


def parse_transfer_state(value: str | None) -> TransferState:
    try:
        return TransferState(value or "")
    except ValueError:
        raise InvalidTransition(None, f"unknown stored transfer state {str(value)[:32]!r}") from None


# Which call states a flow may claim the call's transfer from.
CLAIMABLE_FOR_TRANSFER = frozenset({S.TALKING})
CLAIMABLE_FOR_CONFERENCE = frozenset({S.TALKING, S.CONFERENCE})
