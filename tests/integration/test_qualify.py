"""Qualifying seats (``[sip] qualify_s``) on a real Asterisk 22 of its own: a phone switched off
without unregistering keeps its contact but stops answering OPTIONS, and Asterisk stops counting it
as there (the queue does not ring an unavailable endpoint); when it answers again it is back."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import uuid
from pathlib import Path

import pytest

from agents.sipp import Seat
from hotline.contracts import Service
from hotline.secrets import ensure_secrets
from hotline.settings import Settings
from hotline.site import load_site
from operations.asterisk_runtime import AsteriskInstance
from operations.ports import free_port, free_port_pair

pytestmark = [pytest.mark.integration]


def _status(asterisk: AsteriskInstance, seat: str) -> str:
    asterisk.cli(f"pjsip qualify {seat}")
    out = asterisk.cli(f"pjsip show contacts like {seat}")
    line = next((ln for ln in out.splitlines() if "Contact:" in ln and f"{seat}/" in ln), "")
    return "Avail" if " Avail " in line else ("Unavail" if "Unavail" in line else line.strip())


async def _becomes(asterisk: AsteriskInstance, seat: str, want: str, within_s: float = 15.0) -> str:
    seen = ""
    for _ in range(int(within_s)):
        seen = await asyncio.to_thread(_status, asterisk, seat)
        if seen == want:
            return seen
        await asyncio.sleep(1.0)
    return seen


async def test_a_phone_that_vanished_without_unregistering_is_marked_unavailable(tmp_path: Path) -> None:
    env = Settings.from_env()
    rtp = 30000 + (free_port() % 200) * 100
    site = load_site(env.site_file).with_ports(sip_port=free_port_pair(), ami_port=free_port(),
                                               agi_port=free_port(), rtp_start=rtp)
    site = dataclasses.replace(site, qualify_s=2)
    secrets = ensure_secrets(tmp_path / "secrets.json", site.all_seats)
    asterisk = AsteriskInstance(rootfs=env.asterisk_rootfs, name=f"qualify-{uuid.uuid4().hex[:6]}",
                                conf_dir=env.conf_dir, site=site, secrets=secrets,
                                agi_host=site.agi_host, agi_port=site.agi_port)
    seat_id = site.operators[Service.HOTLINE_12345][0]
    seat = Seat(seat_id, secrets.sip_passwords[seat_id], f"{site.sip_bind}:{site.sip_port}")
    await asyncio.to_thread(asterisk.start)
    try:
        await asyncio.to_thread(seat.start)
        assert await _becomes(asterisk, seat_id, "Avail") == "Avail", "registered and answering OPTIONS"
        seat.stop()  # killed: no unregister, the contact stays
        assert await _becomes(asterisk, seat_id, "Unavail") == "Unavail"
        state = await asyncio.to_thread(asterisk.cli, f"pjsip show endpoint {seat_id}")
        assert "Unavailable" in state, state[:400]
        await asyncio.to_thread(seat.reregister)  # switched on again
        assert await _becomes(asterisk, seat_id, "Avail") == "Avail"
    finally:
        await asyncio.to_thread(seat.close)
        await asyncio.to_thread(asterisk.stop)
        shutil.rmtree(asterisk.paths.host, ignore_errors=True)
