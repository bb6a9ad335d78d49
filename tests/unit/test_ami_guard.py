"""The AMI guard (call_flows.ami.check_action) against a recording AMI server on localhost.

The server speaks AMI's text protocol as Asterisk does (the banner, ``Response: Success`` with the
ActionID for every action) and keeps every action block it reads, so the tests see the bytes
Asterisk would see. What matters to an operator: a value with CR, LF or NUL never becomes a second
action, whoever built it and whichever way it is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from panoramisk import Manager

from call_flows.ami import AmiClient, AmiHeaderRefused, GuardedManager, check_action

# The spy route's old hole: a seat that ends the Originate and starts a second one to a trunk.
SMUGGLED_SEAT = "1201\r\n\r\nAction: Originate\r\nChannel: PJSIP/0044123456@linkage\r\nExten: s"


class RecordingAmi:
    """A TCP AMI server: answers every action with Success, records each action block."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, list[str]]] = []
        self.raw = b""
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        buf = b""
        try:
            while data := await reader.read(65536):
                self.raw += data
                buf += data
                while b"\r\n\r\n" in buf:
                    block, buf = buf.split(b"\r\n\r\n", 1)
                    headers: dict[str, list[str]] = {}
                    for line in block.decode().split("\r\n"):
                        name, _, value = line.partition(": ")
                        headers.setdefault(name, []).append(value)
                    self.blocks.append(headers)
                    action_id = headers.get("ActionID", [""])[0]
                    writer.write(f"Response: Success\r\nActionID: {action_id}\r\nMessage: ok\r\n\r\n"
                                 .encode())
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def actions(self) -> list[str]:
        """The Action header of every block but the login."""
        return [b.get("Action", ["?"])[0] for b in self.blocks if b.get("Action") != ["Login"]]


@pytest.fixture
async def ami() -> AsyncIterator[RecordingAmi]:
    server = RecordingAmi()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(ami: RecordingAmi) -> AsyncIterator[AmiClient]:
    c = AmiClient(host="127.0.0.1", port=ami.port, username="hotline", secret="s3cret",
                  on_event=lambda _ev: None)
    await c.start(wait=5)
    yield c
    await c.close()


async def test_a_plain_action_reaches_asterisk_header_by_header(ami: RecordingAmi, client: AmiClient) -> None:
    resp = await client.action({"Action": "Originate", "Channel": "PJSIP/1001",
                                "Context": "hotline-supervisors", "Exten": "5551201", "Priority": 1,
                                "Variable": ["A=1", "B=x y"]})
    assert resp.get("Response") == "Success"
    block = ami.blocks[-1]
    assert block["Action"] == ["Originate"] and block["Channel"] == ["PJSIP/1001"]
    assert block["Priority"] == ["1"] and block["Variable"] == ["A=1", "B=x y"]


HOSTILE_ACTIONS = {
    "crlf-in-value": {"Action": "Originate", "Channel": "PJSIP/1001", "Exten": SMUGGLED_SEAT},
    "lf-in-value": {"Action": "Redirect", "Channel": "PJSIP/1201-00000001\nAction: Hangup"},
    "cr-in-value": {"Action": "Hangup", "Channel": "PJSIP/1201-00000001\r"},
    "nul-in-value": {"Action": "Setvar", "Channel": "PJSIP/trunk-1", "Variable": "X", "Value": "a\x00b"},
    "crlf-in-list-item": {"Action": "Originate", "Channel": "Local/x@y",
                          "Variable": ["A=1", "B=2\r\nAction: Originate"]},
    "crlf-in-name": {"Action": "Hangup", "Channel\r\nAction: Originate": "x"},
    "colon-in-name": {"Action": "Hangup", "Channel: x\r\nY": "x"},
    "empty-name": {"Action": "Hangup", "": "x"},
    "none-value": {"Action": "Hangup", "Channel": None},
    "bool-value": {"Action": "Hangup", "Channel": True},
    "float-value": {"Action": "Hangup", "Channel": 1.5},
    "dict-value": {"Action": "Hangup", "Channel": {"a": "b"}},
    "nested-list": {"Action": "Originate", "Variable": [["A=1"]]},
    "bytes-value": {"Action": "Hangup", "Channel": b"PJSIP/1201-1"},
    "crlf-in-action": {"Action": "Ping\r\n\r\nAction: Originate"},
}


@pytest.mark.parametrize("action", HOSTILE_ACTIONS.values(), ids=HOSTILE_ACTIONS.keys())
async def test_a_hostile_header_is_refused_before_a_byte_is_sent(
        ami: RecordingAmi, client: AmiClient, action: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    sent = ami.raw
    with caplog.at_level(logging.WARNING, logger="call_flows.ami"), pytest.raises(AmiHeaderRefused) as err:
        await client.action(action)
    assert err.value.error_id == "ami_header_refused"
    await asyncio.sleep(0.05)
    assert ami.raw == sent, "nothing reached the socket"
    assert ami.actions() == []
    # Logged, without the value (it may carry a caller's number or the attacker's text).
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused and "0044123456" not in refused[0] and "\n" not in refused[0]


async def test_the_panoramisk_manager_underneath_is_guarded_too(ami: RecordingAmi, client: AmiClient) -> None:
    """Code that reaches past AmiClient (``client.manager.send_action``) meets the same guard."""
    with pytest.raises(AmiHeaderRefused):
        client.manager.send_action({"Action": "Originate", "Channel": "PJSIP/1001", "Exten": SMUGGLED_SEAT})
    with pytest.raises(AmiHeaderRefused):
        client.manager.send_action({"Action": "Originate"}, Exten=SMUGGLED_SEAT)
    await asyncio.sleep(0.05)
    assert ami.actions() == []


async def test_a_refused_action_is_refused_also_while_disconnected() -> None:
    """The check comes first: a caller learns its value is bad, not that Asterisk is away."""
    c = AmiClient(host="127.0.0.1", port=1, username="u", secret="s", on_event=lambda _ev: None)
    with pytest.raises(AmiHeaderRefused):
        await c.action({"Action": "Hangup", "Channel": "x\r\n"})
    with pytest.raises(ConnectionError):
        await c.action({"Action": "Hangup", "Channel": "x"})
    await c.close()


async def test_without_the_guard_the_seat_becomes_a_second_originate(ami: RecordingAmi) -> None:
    """Why the guard exists: plain panoramisk writes the value as it is, and Asterisk reads two
    actions (the second one dials abroad on the linkage trunk)."""
    mgr = Manager(host="127.0.0.1", port=ami.port, username="u", secret="s", ping_delay=3600,
                  loop=asyncio.get_running_loop())
    await mgr.connect()
    try:
        await asyncio.wait_for(mgr.send_action({"Action": "Originate", "Channel": "PJSIP/1001",
                                                "Exten": SMUGGLED_SEAT}), 5)
        for _ in range(50):
            if len(ami.actions()) >= 2:
                break
            await asyncio.sleep(0.02)
        assert ami.actions() == ["Originate", "Originate"]
        assert ami.blocks[-1]["Channel"] == ["PJSIP/0044123456@linkage"]
    finally:
        mgr.close()


async def test_a_guarded_manager_of_its_own_refuses_as_well(ami: RecordingAmi) -> None:
    """The manager a one-off tool builds (a reload) gets the guard by being a GuardedManager."""
    mgr = GuardedManager(host="127.0.0.1", port=ami.port, username="u", secret="s", ping_delay=3600,
                         loop=asyncio.get_running_loop())
    await mgr.connect()
    try:
        with pytest.raises(AmiHeaderRefused):
            mgr.send_action({"Action": "Reload", "Module": "pbx_config\r\nAction: Originate"})
        resp = await asyncio.wait_for(mgr.send_action({"Action": "Reload", "Module": "pbx_config"}), 5)
        assert resp.get("Response") == "Success"
        assert ami.actions() == ["Reload"]
    finally:
        mgr.close()


@pytest.mark.parametrize("value", ["", "PJSIP/1201-0000001a", "/^Local\\/abc@hotline-tap/", "x" * 4096,
                                   "中文", "${SHELL(id)}", 0, 65535, ["A=1", "B=2"], []])
def test_values_without_line_breaks_pass(value: Any) -> None:
    """The guard is about framing only: what a value means is checked where it enters the flows."""
    check_action({"Action": "Setvar", "Value": value})
