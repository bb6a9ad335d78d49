"""Hostile values through each dialplan entry point of a real Asterisk 22: nothing beyond the
intended action happens (no shell, no dial, no spy, no event for a made-up seat), and Asterisk
stays up.

The values are sent as raw AMI Originate actions straight through panoramisk (bypassing our AMI
guard, which refuses CR/LF/NUL before anything is sent: tests/unit/test_ami_guard.py), so what is
tested here is the dialplan itself: its strict extension patterns, and that it never evaluates
outside text twice.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from operations.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MARK = f"/tmp/PWNED-{uuid.uuid4().hex[:8]}"
HOSTILE = [
    f"1${{SHELL(touch {MARK})}}",
    f"1$[1+1]${{SHELL(touch {MARK})}}",
    "1201,qE,listen)",
    "1201)",
    "1201|1202",
    '1201"',
    "1201&PJSIP/00861234567@linkage-trunk",
    "9" * 1024,
]


def _entry_points(stack: Stack, value: str) -> list[tuple[str, str]]:
    """(context, extension) pairs as the backend or a phone would reach them with ``value``."""
    codes = stack.site.supervisor_codes
    return [
        ("from-supervisors", codes["listen"] + value),     # a supervisor dials *70 + seat
        ("from-supervisors", codes["barge"] + value),
        ("from-seats", value),                             # a seat dials a number
        ("from-seats", "##" + value),
        ("from-trunk", value),                             # the carrier sends a dialled number
        ("hotline-transfer", f"110-{value}"),              # AMI Redirect of a one-touch transfer
        ("hotline-transfer", f"12345-{value}"),
        ("hotline-conf-invite", f"hl-{value}"),            # a linkage invitation
        ("hotline-tap", value),                            # a media tap with no target
    ]


async def test_hostile_extensions_do_nothing_beyond_the_intended_action(stack: Stack) -> None:
    assert stack.ami is not None and stack.asterisk is not None
    shells = stack.asterisk.cli("module show like shell") + stack.asterisk.cli("module show like system")
    assert "func_shell" not in shells and "app_system" not in shells, shells
    seen: list[dict] = []

    def observe(ev: dict) -> None:
        if ev.get("Event") == "DialBegin" and str(ev.get("DestChannel", "")).startswith("Local/"):
            return  # the Originate below dialling its own Local channel
        if ev.get("Event") in ("DialBegin", "UserEvent", "ChanSpyStart", "ConfbridgeJoin", "AgentCalled"):
            seen.append(ev)

    stack.ami.observers.append(observe)
    manager = stack.ami.client.manager  # raw panoramisk: no guard of ours in the way
    answers = []
    try:
        for value in HOSTILE:
            for context, exten in _entry_points(stack, value):
                resp = await asyncio.wait_for(manager.send_action({
                    "Action": "Originate", "Channel": f"Local/{exten}@{context}",
                    "Application": "Wait", "Data": "1", "Async": "true", "Timeout": "3000"}), 10)
                first = resp[0] if isinstance(resp, list) else resp
                answers.append((context, exten[:40], first.get("Response"), first.get("Message")))
        await asyncio.sleep(5)  # the async originations run their dialplan meanwhile
    finally:
        stack.ami.observers.remove(observe)
    marks = (Path(MARK), stack.settings.asterisk_rootfs / MARK.lstrip("/"))  # host, chroot
    assert not any(await asyncio.to_thread(lambda: [m.exists() for m in marks])), "a shell ran"
    # No hostile value rang anyone, spied on anyone, joined a bridge or spoke for a made-up seat.
    assert seen == [], [(e.get("Event"), e.get("Channel"), e.get("DestChannel"), e.get("UserEvent"))
                        for e in seen]
    # Every one was refused or ended without effect; Asterisk still answers.
    assert all(a[2] in ("Error", "Success") for a in answers), answers
    assert "Asterisk" in stack.asterisk.cli("core show version")
