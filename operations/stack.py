"""The whole stack in one process tree: Asterisk (chroot), Redis, the API, FastAGI, the AMI listener.

``hotline up`` runs it until Ctrl-C; the integration tests run the same class on free ports with a
private state directory, and use its ``stop_*`` / ``start_*`` methods to take parts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from agi.server import AgiServer, start_agi_server
from app import keys
from app.factory import create_app
from call_flows.flows import ConferenceFlows, FlowService
from call_flows.listener import AmiListener
from call_flows.live_state import LiveCalls
from call_flows.mapping import MappingConfig
from call_flows.taps import TapController
from hotline.redis_client import connect
from hotline.secrets import Secrets, ensure_secrets
from hotline.settings import Settings
from hotline.sink import EventSink, transcript_sink
from hotline.site import Site, load_site
from operations.asterisk_runtime import AsteriskInstance, build_rootfs
from operations.ports import free_port, free_port_pair
from operations.prompts import render_prompts
from operations.redis_server import RedisServer
from operations.render import AMI_USER, InstancePaths
from transcription.publisher import SegmentPublisher

log = logging.getLogger(__name__)


@dataclass
class Stack:
    settings: Settings
    site: Site
    instance_name: str = "default"
    build_if_missing: bool = True
    agi_in_process: bool = False  # True: FastAGI on this loop (tests of the loop itself)
    child_log: Path | None = None  # where FastAGI's and the transcriber's log go (default: our stderr)
    secrets: Secrets | None = None
    redis_server: RedisServer | None = None
    asterisk: AsteriskInstance | None = None
    agi: AgiServer | None = None
    agi_proc: asyncio.subprocess.Process | None = None
    ami: AmiListener | None = None
    sink: EventSink | None = None
    redis: Redis | None = None
    flows: FlowService | None = None
    conference_flows: ConferenceFlows | None = None
    transcriber_proc: asyncio.subprocess.Process | None = None
    taps: TapController | None = None
    transcribe_required: bool = False  # True (tests): no model / transcriber is an error, not a warning
    _runner: web.AppRunner | None = None
    _extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> Stack:
        return cls(settings=settings, site=load_site(settings.site_file), **kw)

    @classmethod
    def for_tests(cls, settings: Settings, instance_name: str, **site_changes: Any) -> Stack:
        """Same stack on free ports, so a test run never collides with `hotline up`."""
        site = dataclasses.replace(load_site(settings.site_file), **site_changes)
        rtp = 30000 + (free_port() % 200) * 100
        site = site.with_ports(sip_port=free_port_pair(), ami_port=free_port(),
                               agi_port=free_port(), rtp_start=rtp)
        settings = settings.with_(api_port=free_port(), agi_port=site.agi_port, audiosocket_port=free_port(),
                                  asterisk_instance=instance_name)
        return cls(settings=settings, site=site, instance_name=instance_name)

    # --- parts -----------------------------------------------------------------------------------

    @property
    def sip_address(self) -> str:
        return f"{self.site.sip_bind}:{self.site.sip_port}"

    @property
    def api_url(self) -> str:
        return self.settings.effective_api_base_url

    def start_redis_server(self) -> None:
        if self.settings.redis_url and self.redis_server is None:
            return
        if self.redis_server is None:
            self.redis_server = RedisServer()
        self.redis_server.start()
        self.settings = self.settings.with_(redis_url=self.redis_server.url)

    def start_asterisk(self) -> None:
        assert self.secrets is not None
        if self.asterisk is None:
            if self.build_if_missing:
                build_rootfs(self.settings.asterisk_rootfs)
            self.asterisk = AsteriskInstance(
                rootfs=self.settings.asterisk_rootfs, name=self.instance_name,
                conf_dir=self.settings.conf_dir, site=self.site, secrets=self.secrets,
                agi_host=self.site.agi_host, agi_port=self.settings.agi_port,
                audiosocket=f"{self.settings.audiosocket_host}:{self.settings.audiosocket_port}")
        self.asterisk.start()

    async def start_api(self) -> None:
        self.flows = FlowService(lambda: self.ami.client if self.ami else None, LiveCalls(self.redis),
                                 self.site)
        self.conference_flows = ConferenceFlows(self.flows)
        app = create_app(self.settings, self.secrets, flows=self.flows,
                         conference_flows=self.conference_flows, site=self.site, redis=self.redis,
                         admin_ops=StackAdmin(self))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.api_host, self.settings.api_port).start()
        # Load the routing rules now rather than on the first operator's request.
        self._extra["router_warmup"] = asyncio.create_task(app[keys.ROUTER].get())

    async def start_agi(self) -> None:
        """FastAGI runs in its own process (``python -m agi``) unless ``agi_in_process``."""
        if self.agi_in_process:
            self.agi = await start_agi_server(self.settings, redis=self.redis, sink=self.sink,
                                              host=self.site.agi_host, port=self.settings.agi_port)
            return
        self.agi_proc = await _spawn("agi", self.settings.with_(agi_host=self.site.agi_host), "FastAGI", 20,
                                     log_to=self.child_log)

    async def start_transcriber(self) -> None:
        """The transcriber (``python -m transcription``): Vosk and the AudioSocket server, in its
        own process so decoding never competes with the call-handling loop for the GIL."""
        self.transcriber_proc = await _spawn("transcription", self.settings, "the transcriber", 120,
                                             log_to=self.child_log)

    async def stop_transcriber(self) -> None:
        proc, self.transcriber_proc = self.transcriber_proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)  # a test may have paused it
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def stop_agi(self) -> None:
        if self.agi is not None:
            await self.agi.stop()
            self.agi = None
        if self.agi_proc is not None:
            if self.agi_proc.returncode is None:
                self.agi_proc.terminate()
                try:
                    await asyncio.wait_for(self.agi_proc.wait(), 10)
                except TimeoutError:
                    self.agi_proc.kill()
                    await self.agi_proc.wait()
            self.agi_proc = None

    async def start_ami(self, wait: float = 15.0) -> None:
        assert self.secrets is not None
        numbers = {n: svc for svc, nums in self.site.numbers.items() for n in nums}
        seats = {s: svc for svc in self.site.operators
                 for s in (*self.site.operators[svc], *self.site.linkage[svc])}
        self.ami = AmiListener(host=self.site.ami_bind, port=self.site.ami_port, username=AMI_USER,
                               secret=self.secrets.ami_secret, sink=self.sink,
                               live=LiveCalls(self.redis),
                               mapping=MappingConfig(numbers=numbers, seats=seats))
        self.ami.conference_flows = self.conference_flows
        if self.taps is None:
            gaps = transcript_sink(self.settings, self.secrets.token_for("service"))
            await gaps.start()
            self._extra["gap_sink"] = gaps
            publisher = SegmentPublisher(self.redis, gaps)
            publisher.start()
            self._extra["gap_publisher"] = publisher
            self.taps = TapController(lambda: self.ami.client if self.ami else None, self.redis,
                                      publisher.emit, self.site.service_of_seat,
                                      enabled=self.site.transcribe)
            self.taps.start()
        self.ami.observers.append(self.taps.on_ami_event)
        if self._runner is not None and keys.CALLBACKS in self._runner.app:
            self.ami.observers.append(self._runner.app[keys.CALLBACKS].on_ami_event)
        self.ami.call_observers.append(self.taps.on_call_event)
        await self.ami.start(wait=wait)

    async def prepare_prompts(self) -> None:
        """The prompts (hotline/prompts.toml) rendered into this instance's sounds directory, which
        Asterisk (in its chroot) and FastAGI (on the host) see under different paths."""
        if self.settings.sounds_dir is None:
            if self.build_if_missing:
                await asyncio.to_thread(build_rootfs, self.settings.asterisk_rootfs)
            paths = InstancePaths(self.settings.asterisk_rootfs, self.instance_name)
            self.settings = self.settings.with_(sounds_dir=paths.host_dir("sounds"),
                                                asterisk_sounds_dir=str(paths.inner_dir("sounds")))
        await render_prompts(self.settings.effective_sounds_dir)

    # --- whole stack ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.secrets = ensure_secrets(self.settings.secrets_file, self.site.all_seats,
                                      *self.site.secret_needs)
        await asyncio.to_thread(self.start_redis_server)
        await self.prepare_prompts()
        # the process's one Redis client: the API, the flows, the AMI listener and the taps share it
        self.redis = connect(self.settings.redis_url, max_connections=self.settings.redis_max_connections)
        await self.start_api()
        self.sink = EventSink.from_settings(self.settings, self.secrets.token_for("service"))
        await self.sink.start()
        await self.start_agi()
        if self.site.transcribe:
            try:
                await self.start_transcriber()
            except RuntimeError as exc:
                if self.transcribe_required:
                    raise
                log.error("live transcription is off: %s", exc)
        await asyncio.to_thread(self.start_asterisk)
        await self.start_ami()
        await self.wait_healthy()

    async def wait_healthy(self, timeout: float = 20.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        last: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                try:
                    async with http.get(f"{self.api_url}/ready") as r:
                        last = await r.json()
                        if r.status == 200 and self.ami is not None and self.ami.client.connected:
                            return last
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"stack not healthy within {timeout}s: {last}")

    @property
    def app(self) -> web.Application:
        """The running API application (after :meth:`start_api`)."""
        assert self._runner is not None
        return self._runner.app

    def describe(self) -> dict[str, str]:
        return {
            "api": self.api_url,
            "console": f"{self.api_url}/console/  (accounts: `hotline user add LOGIN --role ...`)",
            "fastagi": f"agi://{self.site.agi_host}:{self.settings.agi_port}",
            "sip": f"udp/tcp {self.sip_address} (trunk from {', '.join(self.site.trunk_hosts)})",
            "ami": f"{self.site.ami_bind}:{self.site.ami_port}",
            "transcriber": (f"audiosocket {self.settings.audiosocket_host}:{self.settings.audiosocket_port}"
                            if self.transcriber_proc else "off"),
            "redis": self.settings.redis_url,
            "database": self.settings.effective_database_url,
            "asterisk": f"instance {self.instance_name} in {self.settings.asterisk_rootfs}",
            "secrets": str(self.settings.secrets_file),
        }

    async def stop(self) -> None:
        if self.ami is not None:
            await self.ami.close()
        if self.taps is not None:
            await self.taps.close()
        for key in ("gap_publisher", "gap_sink"):
            part = self._extra.pop(key, None)
            if part is not None:
                await (part.stop() if key == "gap_publisher" else part.aclose(timeout=2))
        await self.stop_transcriber()
        await self.stop_agi()
        if self.asterisk is not None:
            await asyncio.to_thread(self.asterisk.stop)
        if self.sink is not None:
            await self.sink.aclose(timeout=3)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.redis is not None:
            await self.redis.aclose()
        if self.redis_server is not None:
            await asyncio.to_thread(self.redis_server.stop)


class StackAdmin:
    """The admin page's Asterisk buttons (:class:`app.console.admin_ops.AdminOps`) for this stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def check_dialplan(self) -> list[str]:
        from operations.cli import dialplan_check

        return dialplan_check(self.stack.settings)

    async def reload(self) -> dict[str, str]:
        from operations.reload import reload_via_ami

        inst = self.stack.asterisk
        if inst is None or not inst.running():
            return {"asterisk": "not running"}
        await asyncio.to_thread(inst.prepare)  # re-render asterisk_conf/ and the site into the instance
        return await reload_via_ami(inst)


async def _spawn(module: str, settings: Settings, what: str, timeout: float, *,
                 log_to: Path | None = None) -> asyncio.subprocess.Process:
    """``python -m <module>`` with exactly these settings in its environment; returns once it prints
    ``READY`` (its log goes to our stderr, or is appended to ``log_to``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "DATABASE_URL", "REDIS_URL"))}
    env.update(settings.to_env())
    with contextlib.ExitStack() as files:
        err = files.enter_context(log_to.open("ab")) if log_to is not None else None
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", module, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{what} did not start within {timeout:.0f} s") from None
    if not line.startswith(b"READY"):
        raise RuntimeError(f"{what} failed to start (rc={await proc.wait()}); see its log above")
    return proc
