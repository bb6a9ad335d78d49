"""The integration tier: the whole stack on real parts (Asterisk 22 in its chroot, SIPp, Redis,
SQLite/PostgreSQL), on free ports with a private state directory.

Nothing here is skipped when a part is missing: the Asterisk runtime is built if it is not cached,
and a missing SIPp or root fails loudly, because CI must prove the real path.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from e2e_support import Api

from agents.sipp import Seat
from hotline.callback_site import CallbacksTable
from hotline.contracts import Service
from hotline.settings import Settings
from operations.ports import free_port_pair
from operations.stack import Stack


def _require_real_parts() -> None:
    missing = [tool for tool in ("sipp", "mmdebstrap", "redis-server") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"integration tier needs {missing} (the README's test command installs them)")
    if os.geteuid() != 0:
        pytest.fail("integration tier needs root (chroot for the Asterisk runtime)")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    _require_real_parts()
    state = tmp_path_factory.mktemp("state")
    env = Settings.from_env()
    settings = Settings(state_dir=state, site_file=env.site_file, conf_dir=env.conf_dir,
                        database_url=os.environ.get("HOTLINE_TEST_DATABASE_URL", ""),
                        asterisk_rootfs=env.asterisk_rootfs, agi_budget_ms=400,
                        # the tests check what is heard, not the capacity (bench/bench_transcribe.py)
                        transcribe_max_streams=16)
    # Short transfer timeouts so the no-answer fallback is tested in seconds, not minutes.
    # The linkage gateway (119/120/...) is a SIPp answering on 127.0.0.3 at a free port.
    # The outbound trunk (回访, missed-call callbacks) is a SIPp phone on 127.0.0.4; missed-call
    # callbacks are off for the session (every abandoned test call would be called back) and the
    # callback tests switch them on; surveys are due the next working day unless a test says now.
    callbacks = CallbacksTable(trunk_host="127.0.0.4", trunk_port=free_port_pair("127.0.0.4"), ring_s=6,
                               retry_after_s=(2,), attempts=2, missed_within_min=0, seat_wait_s=15,
                               hours=("00:00", "23:59"))
    st = Stack.for_tests(settings, instance_name=f"test-{uuid.uuid4().hex[:6]}",
                         transfer_timeout_s=4, transfer_back_timeout_s=8,
                         linkage_trunk=("127.0.0.3", free_port_pair("127.0.0.3")), callbacks=callbacks)
    st.transcribe_required = True  # the real Vosk engine hears every call; no model fails the run
    await st.start()
    try:
        yield st
    finally:
        await st.stop()
        if st.asterisk is not None:
            shutil.rmtree(st.asterisk.paths.host, ignore_errors=True)


@pytest.fixture(scope="session")
def seats(stack: Stack) -> Iterator[dict[str, Seat]]:
    """Every operator seat of both platforms, registered (digest auth) and answering."""
    assert stack.secrets is not None
    running: dict[str, Seat] = {}
    try:
        for svc in Service:
            for seat_id in stack.site.operators[svc]:
                running[seat_id] = Seat(seat_id, stack.secrets.sip_passwords[seat_id],
                                        stack.sip_address).start()
        yield running
    finally:
        for seat in running.values():
            seat.stop()


@pytest.fixture
def api(stack: Stack) -> Api:
    return Api(stack)


@pytest.fixture(scope="session")
def rootfs_path() -> Path:
    return Settings.from_env().asterisk_rootfs
