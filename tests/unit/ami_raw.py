"""Raw AMI sessions recorded from the real Asterisk 22 (``tests/fixtures/ami/*.txt``), parsed by
panoramisk's own protocol class, as the listener receives them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from panoramisk.ami_protocol import AMIProtocol

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"


class _Collect(AMIProtocol):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []

    def handle_message(self, message: Any) -> None:
        if "Event" in message:
            self.messages.append(dict(message))


class _Transport:
    def write(self, _data: bytes) -> None:  # pragma: no cover - nothing is sent
        pass


def ami_events(name: str) -> list[dict[str, Any]]:
    """The events of one recorded session, split into TCP-sized pieces as a socket delivers them."""
    proto = _Collect()
    proto.connection_made(_Transport())
    raw = (FIXTURES / f"{name}.txt").read_bytes()
    for i in range(0, len(raw), 1400):  # messages split anywhere
        proto.data_received(raw[i:i + 1400])
    assert proto.messages, f"{name}: no AMI events parsed"
    return proto.messages
