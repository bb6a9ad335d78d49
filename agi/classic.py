"""The intake route as a classic stdin/stdout AGI script (pyst2), for sites without FastAGI.

Dialplan: ``AGI(/path/to/python,-m,agi.classic,${HOTLINE_SERVICE},${CHANNEL(linkedid)})`` or a
wrapper script; the process needs ``REDIS_URL`` (and ``HOTLINE_STATE_DIR`` for the API token, and
``HOTLINE_API_URL`` when the API is not on the default address) in its environment.

It runs the same route as FastAGI (``agi.routes``), under the same budget. pyst2 quirks handled here:
- stdout is the protocol. Anything else that prints (a library, a warning) would corrupt it, so the
  protocol gets a private duplicate of fd 1 and fd 1 itself is pointed at stderr.
- pyst2 echoes every environment line and command to stderr, caller numbers unmasked; that chatter
  goes nowhere. Our own log lines (masked) go to stderr, which Asterisk shows on its console.
- pyst2 reads stdin with the locale's codec; a caller name that is not UTF-8 must not crash us.
- pyst2 does not escape quotes inside values: values are escaped here, control characters refused.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from agi.intake import IntakeService, degraded_answer
from agi.protocol import agi_args, escape_value
from agi.routes import ROUTES, AgiCall, AgiDeps, run_route, safe_variables
from hotline.names import AGI_ROUTE_INTAKE
from hotline.secrets import load_secrets
from hotline.settings import Settings

log = logging.getLogger("agi.classic")

SINK_FLUSH_S = 0.5  # how long the arrival report may hold the call up when the API is slow


class _Discard(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


def _protocol_streams() -> tuple[TextIO, TextIO]:
    """(stdin, stdout) for the AGI conversation; fd 1 is re-pointed at stderr for everyone else."""
    proto_out = open(os.dup(1), "w", encoding="utf-8", errors="replace", newline="\n", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    proto_in = open(0, encoding="utf-8", errors="replace", newline="\n", closefd=False)
    return proto_in, proto_out


def _service_token(settings: Settings) -> str | None:
    try:
        return load_secrets(settings.secrets_file).token_for("service")
    except (OSError, ValueError, KeyError) as exc:
        log.warning("no service API token (%s); arrival reports will be refused", type(exc).__name__)
        return None


async def answer(settings: Settings, env: Mapping[str, str], argv: Sequence[str],
                 reply: Callable[[dict[str, str]], None]) -> None:
    """Run the intake route once, with its own Redis client and event sink; ``reply`` with the variables.

    The reply goes out before the arrival report is flushed, so a slow API never holds up the answer.

    Imports of the I/O clients are here so that a broken install still answers with defaults.
    """
    from hotline.redis_client import connect
    from hotline.sink import EventSink

    budget_s = settings.agi_budget_ms / 1000
    args = tuple(argv) if argv else tuple(agi_args(env))
    redis = None
    if settings.redis_url:
        redis = connect(settings.redis_url, max_connections=2, timeout_s=budget_s / 2)
    sink = EventSink.from_settings(settings, _service_token(settings), request_timeout_s=SINK_FLUSH_S,
                                   backoff_initial_s=SINK_FLUSH_S)
    await sink.start()
    try:
        deps = AgiDeps(intake=IntakeService(redis=redis, sink=sink, redis_timeout_s=budget_s / 2))
        call = AgiCall(route=AGI_ROUTE_INTAKE, env=env, args=args, received_at=time.time())
        reply(await run_route(ROUTES[AGI_ROUTE_INTAKE], call, deps, budget_s))
    finally:
        await sink.aclose(timeout=SINK_FLUSH_S)
        if redis is not None:
            await redis.aclose()


def set_variables(agi: Any, variables: Mapping[str, str]) -> None:
    from asterisk.agi import AGIException

    for name, value in safe_variables(variables).items():
        try:
            agi.set_variable(name, escape_value(value))  # pyst2 adds the surrounding quotes
        except (AGIException, OSError) as exc:
            log.warning("SET VARIABLE %s failed (%s); stopping", name, type(exc).__name__)
            return


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    proto_in, proto_out = _protocol_streams()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="agi.classic[%(process)d] %(levelname)s %(name)s: %(message)s")
    try:
        from asterisk.agi import AGI

        agi = AGI(stdin=proto_in, stdout=proto_out, stderr=_Discard())
    except Exception:
        log.exception("cannot read the AGI environment")
        return 0
    replied = False

    def reply(variables: Mapping[str, str]) -> None:
        nonlocal replied
        replied = True
        set_variables(agi, variables)

    try:
        settings = Settings.from_env()
        logging.getLogger().setLevel(settings.log_level)
        asyncio.run(answer(settings, agi.env, argv, reply))
    except Exception:
        log.exception("intake failed; answering with the dialplan's defaults")
    if not replied:
        set_variables(agi, degraded_answer())
    try:
        proto_out.close()
    except OSError:  # Asterisk hung up: nothing left to tell it
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
