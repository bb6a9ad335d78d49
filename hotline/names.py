"""Names shared between the Python code and ``asterisk_conf/``.

Channel variables, dialplan contexts, queues, AGI routes. A test cross-checks each of these against
the configuration files, so renaming one side without the other fails CI.
"""

from __future__ import annotations

from hotline.contracts import Service

# --- Channel variables -------------------------------------------------------------------------
VAR_SERVICE = "HOTLINE_SERVICE"        # "12345" | "110", set by the dialplan before intake
VAR_QUEUE = "HOTLINE_QUEUE"            # queue to join; dialplan default, intake may override
VAR_CALL_ID = "HOTLINE_CALL_ID"        # our call id (= linkedid)
VAR_FLAGS = "HOTLINE_FLAGS"            # comma list: repeat, harassment
VAR_REPEAT_24H = "HOTLINE_REPEAT_24H"  # calls from this number in the previous 24 h
VAR_INTAKE = "HOTLINE_INTAKE"          # ok | degraded | failed (AGISTATUS decides "failed")
VAR_PRIORITY = "HOTLINE_PRIORITY"      # queue priority intake chose (QUEUE_PRIO)

CHANNEL_VARS: tuple[str, ...] = (VAR_SERVICE, VAR_QUEUE, VAR_CALL_ID, VAR_FLAGS, VAR_REPEAT_24H, VAR_INTAKE,
                                 VAR_PRIORITY)

# --- Dialplan contexts ---------------------------------------------------------------------------
CTX_FROM_TRUNK = "from-trunk"          # inbound trunk: calls to 12345 and 110 arrive here
CTX_FROM_LINKAGE = "from-linkage"      # the 119/120/122/utility gateway: nothing it sends is taken
CTX_INTAKE = "hotline-intake"          # common intake: AGI, then queue; fails open
CTX_SEATS = "from-seats"               # what operator seats may dial
CTX_SUPERVISORS = "from-supervisors"   # what supervisor phones may dial
CTX_AGI_FAIL = "agi-fail"              # where intake failures land (still queues the caller)
CTX_SEAT_LEG = "hotline-seat-leg"      # Queue/Dial option b: arms the feature codes on a seat's leg
CTX_FLOWS = "hotline-flows"            # what the seat feature codes run
CTX_TRANSFER = "hotline-transfer"      # one-touch transfer: <platform>-<seat>, with fallback
CTX_ATXFER = "hotline-atxfer"          # attended transfer's consultation leg: <platform>-<call id>
CTX_CONF = "hotline-conf"              # three-way bridge (三方通话): join
CTX_CONF_INVITE = "hotline-conf-invite"  # ring the other platform (or a hotline) into the bridge
CTX_SPY = "hotline-spy"                # supervisor listen / whisper / barge
CTX_TAP = "hotline-tap"                # media tap: one party's voice -> AudioSocket -> transcriber

# --- Queues ---------------------------------------------------------------------------------------
QUEUE_BY_SERVICE = {Service.HOTLINE_12345: "hotline-12345", Service.POLICE_110: "police-110"}
SERVICE_BY_QUEUE = {q: s for s, q in QUEUE_BY_SERVICE.items()}
# Dedicated linkage seats (专席联动) of each platform: tried first when a call is handed over.
LINKAGE_QUEUE = {Service.HOTLINE_12345: "linkage-12345", Service.POLICE_110: "linkage-110"}

# --- Seat feature codes (applicationmap names; the keys are site configuration) ------------------
FEATURE_ONE_TOUCH = "hotline-onetouch"   # 一键转接: send the caller to the other platform
FEATURE_THREE_WAY = "hotline-threeway"   # 三方通话: caller, this seat and the other platform
SEAT_FEATURES = (FEATURE_ONE_TOUCH, FEATURE_THREE_WAY)

# --- Channel variables of the flows ---------------------------------------------------------------
VAR_LINKEDID = "HOTLINE_LINKEDID"        # inherited by every leg: the call's identity
VAR_CALL_SERVICE = "HOTLINE_CALL_SERVICE"  # inherited: the platform a leg serves (12345 | 110)
VAR_CONF = "HOTLINE_CONF"                # the three-way bridge a leg joins (= the call's linkedid)
VAR_CONF_PROFILE = "HOTLINE_CONF_PROFILE"  # confbridge user profile: party | operator

VAR_TICKET = "HOTLINE_TICKET"            # inherited: the call's work-order ticket (工单/警单), once drafted
VAR_TAP = "HOTLINE_TAP"                  # on a media tap's Local channel: the stream id (a UUID)
VAR_TAP_TARGET = "HOTLINE_TAP_TARGET"    # the channel whose voice the tap hears

CHANNEL_VARS = (*CHANNEL_VARS, VAR_LINKEDID, VAR_CALL_SERVICE, VAR_CONF, VAR_CONF_PROFILE, VAR_TAP,
                VAR_TAP_TARGET, VAR_TICKET)

# --- AMI user events the dialplan raises for the backend ------------------------------------------
UEV_TRANSFER = "HotlineTransfer"
UEV_TRANSFER_FAILED = "HotlineTransferFailed"
UEV_FLOW_REQUEST = "HotlineFlowRequest"  # a seat key asks the backend to run a flow (three-way)
UEV_SPY = "HotlineSpy"                   # a supervisor started listening / whispering / barging

# --- AGI routes -----------------------------------------------------------------------------------
AGI_ROUTE_INTAKE = "intake"
AGI_ROUTE_RATING = "rating"              # 一次一评: the caller's key after the seat hung up first
AGI_ROUTE_SURVEY = "survey"              # 回访: the two questions of a work-order callback
AGI_ROUTE_QUEUE_CALLBACK = "queue-callback"  # 排队回拨: a waiting caller asks to be called back

# --- Outbound calls: 回访 and missed-call callbacks (app/callbacks/) --------------------------------
CTX_RATING = "hotline-rating"            # the end-of-call rating prompt
CTX_CALLBACK = "hotline-callback"        # an answered outbound call: the survey, or the seat's caller
CTX_CALLBACK_SEAT = "hotline-callback-seat"  # a missed-call callback rings the platform's next free seat
CTX_CALLBACK_END = "hotline-callback-end"    # hangup handler of a seat's callback leg: the result
CTX_FROM_CALLBACK_TRUNK = "from-callback-trunk"  # the outbound trunk: nothing it sends is taken
CTX_QUEUE_EXIT = "hotline-queue-exit"    # the 12345 queue's exit key: "call me back" (排队回拨)
VAR_QUEUE_POSITION = "HOTLINE_QUEUE_POSITION"  # join the queue at this place (digits; empty: the end)
VAR_QUEUE_CALLBACK = "HOTLINE_QUEUE_CALLBACK"  # ok: the callback was registered
VAR_CALLBACK_SEAT_WAIT = "HOTLINE_CALLBACK_SEAT_WAIT"  # how long a callback waits for a free seat
CALLBACK_TRUNK = "callback-trunk"        # the PJSIP endpoint of the outbound trunk (site [callbacks])
CALLBACK_ID_PREFIX = "cb-"               # ChannelId (so linkedid) of every outbound callback call
VAR_CALLBACK_TASK = "HOTLINE_CALLBACK_TASK"      # the task id (digits) on an outbound call
VAR_CALLBACK_ATTEMPT = "HOTLINE_CALLBACK_ATTEMPT"  # which attempt (digits)
VAR_CALLBACK_NUMBER = "HOTLINE_CALLBACK_NUMBER"  # the number a seat's callback dials (digits only)
VAR_RATING = "HOTLINE_RATING"            # "off": no end-of-call rating for this call
UEV_CALLBACK = "HotlineCallback"         # the dialplan's word on a callback leg (Dial status)

CHANNEL_VARS = (*CHANNEL_VARS, VAR_CALLBACK_TASK, VAR_CALLBACK_ATTEMPT, VAR_CALLBACK_NUMBER, VAR_RATING,
                VAR_QUEUE_POSITION, VAR_QUEUE_CALLBACK, VAR_CALLBACK_SEAT_WAIT)
