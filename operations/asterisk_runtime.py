"""The Asterisk 22 runtime: a Debian-unstable root filesystem run with ``chroot``.

Debian 12 ships no Asterisk; unstable has 22.x. ``build_rootfs`` makes the tree once with
``mmdebstrap`` and caches it outside the repository; each *instance* (the stack, a test run) gets
its own directories inside it (``/srv/hotline/<name>``) and its own rendered configuration, so
several can run side by side on different ports.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hotline.secrets import Secrets
from hotline.site import Site
from operations.render import InstancePaths, render

log = logging.getLogger(__name__)

PACKAGES = ("asterisk", "asterisk-modules", "asterisk-moh-opsound-gsm", "asterisk-core-sounds-en-gsm")
MIRROR = "http://deb.debian.org/debian"
SUITE = "unstable"


class AsteriskRuntimeError(RuntimeError):
    """The runtime could not be built, started or reached."""


def rootfs_stamp() -> str:
    return hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:12]


def rootfs_ready(rootfs: Path) -> bool:
    stamp = rootfs / "etc" / "hotline-rootfs"
    return stamp.exists() and stamp.read_text().strip() == rootfs_stamp()


def build_rootfs(rootfs: Path, *, force: bool = False, mirror: str = MIRROR) -> Path:
    """Build (or reuse) the cached root filesystem holding Asterisk 22 from Debian unstable."""
    if rootfs_ready(rootfs) and not force:
        log.info("asterisk rootfs ready at %s", rootfs)
        return rootfs
    if shutil.which("mmdebstrap") is None:
        raise AsteriskRuntimeError("mmdebstrap is not installed: apt-get install -y mmdebstrap")
    if os.geteuid() != 0:
        raise AsteriskRuntimeError("building and running the chroot needs root")
    tmp = rootfs.with_name(rootfs.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mmdebstrap", "--variant=apt", "--mode=root", "--format=directory",
        "--include=" + ",".join(PACKAGES),
        # The unstable Release file can be past its validity date on the mirror.
        '--aptopt=Acquire::Check-Valid-Until "false"',
        "--skip=check/signed-by",
        SUITE, str(tmp), mirror,
    ]
    log.info("building asterisk rootfs: %s", " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AsteriskRuntimeError(f"mmdebstrap failed ({res.returncode}):\n{res.stderr[-4000:]}")
    (tmp / "etc" / "hotline-rootfs").write_text(rootfs_stamp() + "\n")
    if rootfs.exists():
        shutil.rmtree(rootfs)
    tmp.rename(rootfs)
    return rootfs


def write_name_service(rootfs: Path) -> None:
    """Local names only inside the runtime.

    Asterisk looks up the host's own name (and A.ROOT-SERVERS.NET, to pick a source address) for
    every call's media. With the host's resolver in the chroot those lookups go to a DNS server that
    this loopback-only runtime never needs; under load they queued behind 5 s resolver timeouts and
    held PJSIP's threads (Answer took 15 s at 20 calls at once). With these files they fail at once.
    """
    etc = rootfs / "etc"
    hosts = f"127.0.0.1\tlocalhost {socket.gethostname()}\n::1\tlocalhost ip6-localhost\n"
    if not (etc / "hosts").exists() or (etc / "hosts").read_text() != hosts:
        (etc / "hosts").write_text(hosts)
    resolv = "# hotline: loopback-only runtime, no DNS\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
    if not (etc / "resolv.conf").exists() or (etc / "resolv.conf").read_text() != resolv:
        (etc / "resolv.conf").unlink(missing_ok=True)  # may be a symlink to the host's file
        (etc / "resolv.conf").write_text(resolv)


@dataclass
class AsteriskInstance:
    """One Asterisk process inside the chroot, with its own config and directories."""

    rootfs: Path
    name: str
    conf_dir: Path
    site: Site
    secrets: Secrets
    agi_host: str
    agi_port: int
    audiosocket: str = "127.0.0.1:4574"  # where the dialplan's media taps reach the transcriber

    @property
    def paths(self) -> InstancePaths:
        return InstancePaths(self.rootfs, self.name)

    def prepare(self) -> None:
        if not rootfs_ready(self.rootfs):
            raise AsteriskRuntimeError(
                f"no Asterisk runtime at {self.rootfs}: run `hotline asterisk build` first")
        for sub in ("etc", "lib", "lib/keys", "spool", "run", "log", "cache"):
            self.paths.host_dir(sub).mkdir(parents=True, exist_ok=True)
        write_name_service(self.rootfs)
        render(self.conf_dir, self.paths.host_dir("etc"), self.site, self.secrets,
               agi_host=self.agi_host, agi_port=self.agi_port, paths=self.paths,
               system_name=f"hotline-{self.name}", audiosocket=self.audiosocket)

    def _base_cmd(self) -> list[str]:
        return ["chroot", str(self.rootfs), "/usr/sbin/asterisk", "-C", str(self.paths.asterisk_conf_inner)]

    def start(self, *, timeout: float = 30.0) -> None:
        """Start Asterisk (daemonised) and wait until it has fully booted."""
        if self.running():
            log.info("asterisk %s already running (pid %s)", self.name, self.pid())
            return
        self.prepare()
        with contextlib.suppress(FileNotFoundError):
            self.paths.ctl_socket_host.unlink()
        res = subprocess.run([*self._base_cmd(), "-n", "-q"], capture_output=True, text=True)
        if res.returncode != 0:
            raise AsteriskRuntimeError(f"asterisk failed to start: {res.stderr or res.stdout}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.cli("core waitfullybooted", check=False, timeout=5)
            if "fully booted" in out.lower():
                return
            time.sleep(0.2)
        raise AsteriskRuntimeError(
            f"asterisk {self.name} did not boot within {timeout}s; see {self.paths.host_dir('log')}")

    def pid(self) -> int | None:
        try:
            return int(self.paths.pid_file_host.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return self.paths.ctl_socket_host.exists()

    def cli(self, command: str, *, check: bool = True, timeout: float = 20.0) -> str:
        """Run one CLI command on the running instance (``asterisk -rx``)."""
        try:
            res = subprocess.run([*self._base_cmd(), "-rx", command], capture_output=True,
                                 text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            if check:
                raise AsteriskRuntimeError(f"asterisk CLI timed out: {command}") from None
            return ""
        if check and res.returncode != 0:
            raise AsteriskRuntimeError(f"asterisk CLI failed: {command}: {res.stderr or res.stdout}")
        return res.stdout

    def interactive_cli_cmd(self) -> list[str]:
        return [*self._base_cmd(), "-r", "-vvv"]

    def stop(self, *, timeout: float = 15.0) -> None:
        """Stop now (hard stop): used for tests and `hotline up` teardown."""
        pid = self.pid()
        if pid is None or not self.running():
            return
        self.cli("core stop now", check=False, timeout=5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """Kill -9, as a crash would (for restart tests)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)

    def status(self) -> dict[str, object]:
        up = self.running()
        info: dict[str, object] = {"instance": self.name, "running": up, "pid": self.pid(),
                                   "sip": f"{self.site.sip_bind}:{self.site.sip_port}",
                                   "ami": f"{self.site.ami_bind}:{self.site.ami_port}"}
        if up:
            info["version"] = self.cli("core show version", check=False).strip()
            info["uptime"] = self.cli("core show uptime seconds", check=False).strip()
        return info
