"""A small stand-in for Asterisk's side of AGI, for tests and benchmarks.

It does what ``res_agi`` does: write the ``agi_*`` block and a blank line, then read command lines
and answer each with ``200 result=1`` until the other side closes. FastAGI over TCP; classic AGI over
the stdin/stdout pipes of a spawned ``python -m agi.classic``, one process per call. The variables it
reports are parsed from ``SET VARIABLE`` lines exactly as Asterisk would parse them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agi.protocol import format_env, parse_command_args

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class AgiSession:
    """What happened in one AGI session, seen from Asterisk."""

    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    stderr: str = ""
    returncode: int | None = None

    def _record(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        self.commands.append(line)
        args = parse_command_args(line)
        if len(args) >= 3 and args[0].upper() == "SET" and args[1].upper() == "VARIABLE":
            self.variables[args[2]] = args[3] if len(args) > 3 else ""


def call_env(
    *,
    route: str | None,
    service: str,
    linkedid: str,
    callerid: str = "13800138000",
    calleridname: str = "",
    uniqueid: str | None = None,
    extension: str | None = None,
    channel: str = "PJSIP/trunk-00000001",
) -> dict[str, str]:
    """The environment Asterisk 22 sends for ``AGI(agi://host/<route>,<service>,<linkedid>)``.

    ``route=None`` gives a classic AGI environment (no ``agi_network*`` lines).
    """
    env = {
        "agi_request": f"agi://127.0.0.1/{route}" if route is not None else "agi.classic",
        "agi_channel": channel,
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid or linkedid,
        "agi_version": "22.0.0",
        "agi_callerid": callerid,
        "agi_calleridname": calleridname,
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": extension or service,
        "agi_rdnis": "unknown",
        "agi_context": "hotline-intake",
        "agi_extension": extension or service,
        "agi_priority": "3",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140000000000000",
        "agi_arg_1": service,
        "agi_arg_2": linkedid,
    }
    if route is not None:
        env = {"agi_network": "yes", "agi_network_script": route, **env}
    return env


async def _converse(reader: asyncio.StreamReader, write, session: AgiSession) -> None:
    while True:
        line = await reader.readline()
        if not line:
            return
        session._record(line)
        await write(b"200 result=1\n")


async def fastagi_call(host: str, port: int, env: Mapping[str, str], *, within_s: float = 10.0,
                       raw_env: bytes | None = None) -> AgiSession:
    """One FastAGI session over TCP. ``raw_env`` sends those bytes instead of ``env`` (for abuse)."""
    session = AgiSession()
    t0 = time.perf_counter()
    async with asyncio.timeout(within_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(raw_env if raw_env is not None else format_env(env))
            await writer.drain()

            async def write(data: bytes) -> None:
                writer.write(data)
                await writer.drain()

            with contextlib.suppress(ConnectionError):
                await _converse(reader, write, session)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    session.elapsed_s = time.perf_counter() - t0
    return session


async def classic_call(env: Mapping[str, str], argv: Sequence[str], *, proc_env: Mapping[str, str],
                       within_s: float = 30.0, python: str = sys.executable) -> AgiSession:
    """One classic AGI call: spawn ``python -m agi.classic <argv>`` and talk over its pipes.

    Like Asterisk, the call is over when the script closes stdout and has exited.
    """
    session = AgiSession()
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        python, "-m", "agi.classic", *argv,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=str(REPO_ROOT), env=dict(proc_env),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    err_task = asyncio.create_task(stderr.read())
    try:
        async with asyncio.timeout(within_s):
            stdin.write(format_env(env))
            await stdin.drain()

            async def write(data: bytes) -> None:
                stdin.write(data)
                await stdin.drain()

            with contextlib.suppress(ConnectionError):
                await _converse(stdout, write, session)
            session.returncode = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        stdin.close()
        session.stderr = (await err_task).decode("utf-8", errors="replace")
    session.elapsed_s = time.perf_counter() - t0
    return session
