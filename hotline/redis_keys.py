"""Every Redis key and channel the project uses, in one place."""

from __future__ import annotations

PREFIX = "hotline"

# Sorted set per caller: member = linkedid, score = arrival time (epoch seconds).
def caller_history(number: str) -> str:
    return f"{PREFIX}:caller:{number}:calls"


# Set of numbers flagged for harassment (notice part 四(五), order maintenance). Admin/operator managed.
HARASSMENT_SET = f"{PREFIX}:harassment"

# Hash per live call: state, service, caller, seat, timestamps. Expires after the call ends.
def live_call(linkedid: str) -> str:
    return f"{PREFIX}:live:{linkedid}"


# Set of linkedids currently live.
LIVE_CALLS = f"{PREFIX}:live"


# String per call while a transfer (blind or attended) or a three-way of it is being set up: who
# claimed it. SET NX with an expiry, so two requests at once cannot both act; deleted when the
# transfer is over (a seat answers the caller again, the call ends, the consultation is completed or
# cancelled, Asterisk refused the action).
def transfer_claim(linkedid: str) -> str:
    return f"{PREFIX}:live:{linkedid}:claim"

# Pub/sub channel carrying every call event as JSON.
EVENTS_CHANNEL = f"{PREFIX}:events"

# Pub/sub channel of the closed loop: every work-order transition and deadline alert (warning,
# overdue, 催办/督办), as JSON with ``type`` "work_order_step" or "deadline_alert".
WORK_ORDERS_CHANNEL = f"{PREFIX}:work_orders"

# Counters.
COUNTERS = f"{PREFIX}:counters"

# List of recent FastAGI session durations in ms (newest first, capped), from every AGI instance.
AGI_SESSION_MS = f"{PREFIX}:metrics:agi_session_ms"
AGI_SESSION_KEEP = 20_000


# --- Live transcription ---------------------------------------------------------------------------
# Pub/sub: every transcript message (segments, work-order updates, alerts) of one call, and of all.
def transcript_channel(linkedid: str) -> str:
    return f"{PREFIX}:transcript:{linkedid}"


TRANSCRIPTS_CHANNEL = f"{PREFIX}:transcripts"


# Hash per media tap (stream id): call, speaker, seat, channel. Written by the tap controller before
# it starts the tap; read by the transcriber when Asterisk connects with that id. Expires.
def media_tap(tap_id: str) -> str:
    return f"{PREFIX}:tap:{tap_id}"


# The hash's "state": starting (controller) -> streaming (transcriber) -> call_ended (controller); or
# refused_full: the transcriber had no room for the stream (the controller waits as overload).
TAP_STATE_REFUSED_FULL = "refused_full"


# Set by the transcriber every second with a short expiry: present = it is up and its loop answers.
TRANSCRIBER_ALIVE = f"{PREFIX}:transcriber:alive"
