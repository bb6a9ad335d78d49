"""Render ``asterisk_conf/`` into an instance's configuration directory.

The files in ``asterisk_conf/`` are plain Asterisk configuration and are copied as they are. The
site-specific parts (ports, trunk hosts, numbers, seats, secrets) are written into ``generated/``
beside them and pulled in with ``#include``, so a site with its own Asterisk can use the same tree.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from hotline.contracts import Service
from hotline.names import (
    CALLBACK_TRUNK,
    CTX_FLOWS,
    CTX_FROM_CALLBACK_TRUNK,
    CTX_INTAKE,
    CTX_QUEUE_EXIT,
    CTX_SPY,
    FEATURE_ONE_TOUCH,
    FEATURE_THREE_WAY,
    LINKAGE_QUEUE,
    QUEUE_BY_SERVICE,
    SEAT_FEATURES,
)
from hotline.private import write_private
from hotline.secrets import Secrets
from hotline.site import Site

AMI_USER = "hotline"
AMI_ADMIN_USER = "hotline-admin"
# AMI classes, least privilege (Asterisk's manager docs name the class each action needs).
# The backend (event listener, flows, taps):
AMI_USER_READ = (
    "call",       # Newchannel, Hangup, Bridge*, DialBegin/End, transfers, Confbridge*, VarSet
    "agent",      # Queue* and Agent* events (queued, ringing, answered, abandoned)
    "user",       # the dialplan's UserEvent(Hotline...)
    "dtmf",       # DTMFBegin/End (the feature-code latency the benchmarks read)
    "reporting",  # the answers of CoreShowChannels / Getvar during a resync
)
AMI_USER_WRITE = (
    "call",       # Redirect, Setvar, Getvar, Hangup, Atxfer, BlindTransfer
    "originate",  # Originate: three-way invitations, linkage, supervisor phones, media taps
    "agent",      # QueuePause (a paused seat is not rung)
    "reporting",  # CoreShowChannels, ConfbridgeList (resync after a login)
)
# The admin CLI: `dialplan reload` through the Reload action, which needs only `system`
# (no `config` write: it never edits a file through AMI).
AMI_ADMIN_READ = ("system",)
AMI_ADMIN_WRITE = ("system",)


@dataclass(frozen=True)
class InstancePaths:
    """Where an Asterisk instance keeps its files, as seen inside the chroot and from the host."""

    rootfs: Path
    name: str

    @property
    def inner(self) -> Path:  # path inside the chroot
        return Path("/srv/hotline") / self.name

    @property
    def host(self) -> Path:  # same directory from the host
        return self.rootfs / str(self.inner).lstrip("/")

    def inner_dir(self, sub: str) -> Path:
        return self.inner / sub

    def host_dir(self, sub: str) -> Path:
        return self.host / sub

    @property
    def asterisk_conf_inner(self) -> Path:
        return self.inner / "etc" / "asterisk.conf"

    @property
    def ctl_socket_host(self) -> Path:
        return self.host_dir("run") / "asterisk.ctl"

    @property
    def pid_file_host(self) -> Path:
        return self.host_dir("run") / "asterisk.pid"


def _endpoint_block(seat: str, template: str, label: str, password: str, qualify_s: int = 0) -> str:
    # A phone that vanished without unregistering stops answering OPTIONS: not rung any more.
    qualify = f"qualify_frequency = {qualify_s}\nqualify_timeout = 3.0\n" if qualify_s else ""
    return (
        f"[{seat}]({template})\n"
        f"auth = {seat}\naors = {seat}\ncallerid = \"{label}\" <{seat}>\n\n"
        f"[{seat}](seat-auth)\nusername = {seat}\npassword = {password}\n\n"
        f"[{seat}](seat-aor)\n{qualify}\n"
    )


def generated_files(site: Site, secrets: Secrets, agi_host: str, agi_port: int, *,
                    audiosocket: str = "127.0.0.1:4574",
                    sounds: str = "/var/lib/hotline/sounds") -> dict[str, str]:
    """The contents of ``generated/*.conf`` for this site (pure: easy to test)."""
    files: dict[str, str] = {}
    files["pjsip_transport.conf"] = (
        "[transport-udp]\ntype = transport\nprotocol = udp\n"
        f"bind = {site.sip_bind}:{site.sip_port}\n\n"
        "[transport-tcp]\ntype = transport\nprotocol = tcp\n"
        f"bind = {site.sip_bind}:{site.sip_port}\n"
    )
    files["pjsip_trunk.conf"] = (
        "[trunk](trunk-endpoint)\naors = trunk\n\n[trunk]\ntype = aor\n\n"
        "[trunk-identify]\ntype = identify\nendpoint = trunk\n"
        + "".join(f"match = {h}\n" for h in site.trunk_hosts)
    )
    seats = []
    for svc in Service:
        for seat in site.operators[svc]:
            seats.append(_endpoint_block(seat, "seat-endpoint", f"{svc.value} seat {seat}",
                                         secrets.sip_passwords[seat], site.qualify_s))
        for seat in site.linkage[svc]:
            seats.append(_endpoint_block(seat, "seat-endpoint", f"{svc.value} linkage {seat}",
                                         secrets.sip_passwords[seat], site.qualify_s))
    for seat in site.supervisors:
        seats.append(_endpoint_block(seat, "supervisor-endpoint", f"supervisor {seat}",
                                     secrets.sip_passwords[seat], site.qualify_s))
    files["pjsip_seats.conf"] = "".join(seats)
    files["rtp_ports.conf"] = f"rtpstart = {site.rtp_start}\nrtpend = {site.rtp_end}\n"
    files["manager_general.conf"] = f"bindaddr = {site.ami_bind}\nport = {site.ami_port}\n"
    acl = "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
    if not secrets.ami_secret or not secrets.ami_admin_secret:
        raise ValueError("AMI secrets missing: run `hotline setup` (ensure_secrets) first")
    files["manager_users.conf"] = (
        f"[{AMI_USER}]\nsecret = {secrets.ami_secret}\n{acl}"
        f"read = {','.join(AMI_USER_READ)}\nwrite = {','.join(AMI_USER_WRITE)}\n\n"
        f"[{AMI_ADMIN_USER}]\nsecret = {secrets.ami_admin_secret}\n{acl}"
        f"read = {','.join(AMI_ADMIN_READ)}\nwrite = {','.join(AMI_ADMIN_WRITE)}\n"
    )
    files["queue_timing.conf"] = f"timeout = {site.ring_seat_s}\nretry = {site.retry_s}\n"
    key = site.callbacks.queue_callback_key
    files["queue_callback_hotline-12345.conf"] = (
        f"context = {CTX_QUEUE_EXIT}\nperiodic-announce = {sounds}/queue-callback-offer\n"
        "periodic-announce-frequency = 30\n" if key else "")
    files["queue_exit.conf"] = f"exten => {key},1,Goto(request,1)\n" if key else ""
    for svc in Service:
        files[f"queue_members_{QUEUE_BY_SERVICE[svc]}.conf"] = "".join(
            f"member => PJSIP/{s},0,{s}\n" for s in site.operators[svc]
        )
        files[f"queue_members_{LINKAGE_QUEUE[svc]}.conf"] = "".join(
            f"member => PJSIP/{s},0,{s}\n" for s in site.linkage[svc]
        )
    files["applicationmap.conf"] = (
        f"{FEATURE_ONE_TOUCH} => {site.feature_codes['one_touch_transfer']},self,"
        f"Gosub({CTX_FLOWS},onetouch,1)\n"
        f"{FEATURE_THREE_WAY} => {site.feature_codes['three_way']},self,"
        f"Gosub({CTX_FLOWS},threeway,1)\n"
    )
    spy_opts = {"listen": "qE", "whisper": "qEw", "barge": "qEB"}
    # One pattern per seat length: only digits match, so what a supervisor (or the API) dials
    # after the code can only ever be a seat number when it reaches the dialplan.
    seat_lengths = sorted({len(s) for s in site.all_seats})
    files["supervisor_codes.conf"] = "".join(
        f"exten => _{code}{'X' * n},1,Gosub({CTX_SPY},s,1(${{EXTEN:{len(code)}}},{spy_opts[mode]},{mode}))\n"
        " same => n,Hangup()\n"
        for mode, code in site.supervisor_codes.items() for n in seat_lengths
    )
    files["transfer_patterns.conf"] = "".join(
        f"exten => _{svc.value}-{'X' * n},1,Set(XFER_FROM=${{EXTEN:{len(svc.value) + 1}}})\n"
        f" same => n,Goto(to-{svc.value},1)\n"
        for svc in Service for n in seat_lengths
    )
    if site.linkage_trunk:
        host, port = site.linkage_trunk
        files["pjsip_trunk.conf"] += (
            "\n[linkage-trunk](trunk-endpoint)\naors = linkage-trunk\ncontext = from-linkage\n\n"
            f"[linkage-trunk]\ntype = aor\ncontact = sip:{host}:{port}\n\n"
            f"[linkage-trunk-identify]\ntype = identify\nendpoint = linkage-trunk\nmatch = {host}\n"
        )
    cb = site.callbacks
    files["pjsip_trunk.conf"] += (
        f"\n[{CALLBACK_TRUNK}](trunk-endpoint)\naors = {CALLBACK_TRUNK}\n"
        f"context = {CTX_FROM_CALLBACK_TRUNK}\n\n"
        f"[{CALLBACK_TRUNK}]\ntype = aor\ncontact = sip:{cb.trunk_host}:{cb.trunk_port}\n\n"
        f"[{CALLBACK_TRUNK}-identify]\ntype = identify\nendpoint = {CALLBACK_TRUNK}\n"
        f"match = {cb.trunk_host}\n"
    )
    files["globals.conf"] = (
        f"HOTLINE_AGI={agi_host}:{agi_port}\n"
        f"HOTLINE_RATING={'on' if site.survey.enabled else 'off'}\n"
        f"HOTLINE_CALLBACK_CID={cb.caller_id}\n"
        f"HOTLINE_CALLBACK_RING={cb.ring_s}\n"
        f"HOTLINE_CALLBACK_SEAT_WAIT={cb.seat_wait_s}\n"
        f"HOTLINE_SOUNDS={sounds}\n"
        f"HOTLINE_TRANSCRIBER={audiosocket}\n"
        f"HOTLINE_SEAT_FEATURES={'#'.join(SEAT_FEATURES)}\n"
        f"HOTLINE_XFER_TIMEOUT={site.transfer_timeout_s}\n"
        f"HOTLINE_XFER_BACK_TIMEOUT={site.transfer_back_timeout_s}\n"
    )
    numbers = []
    for svc in Service:
        for num in site.numbers[svc]:
            numbers.append(f"exten => {num},1,Goto({CTX_INTAKE},{svc.value},1)\n")
    files["numbers.conf"] = "".join(numbers)
    files["seat_dial.conf"] = "".join(
        f"exten => {s},1,Dial(PJSIP/{s},30)\n same => n,Hangup()\n" for s in site.all_seats
    )
    return files


def render(conf_dir: Path, dest_etc: Path, site: Site, secrets: Secrets, *, agi_host: str,
           agi_port: int, paths: InstancePaths | None = None, system_name: str = "hotline",
           audiosocket: str = "127.0.0.1:4574", sounds: str | None = None) -> None:
    """Copy the static tree and write ``generated/`` (and ``asterisk.conf`` for an instance)."""
    dest_etc.mkdir(parents=True, exist_ok=True)
    for src in sorted(conf_dir.glob("*.conf")):
        shutil.copy2(src, dest_etc / src.name)
    gen = dest_etc / "generated"
    gen.mkdir(exist_ok=True)
    if sounds is None:
        sounds = str(paths.inner_dir("sounds")) if paths is not None else "/var/lib/hotline/sounds"
    for name, text in generated_files(site, secrets, agi_host, agi_port, audiosocket=audiosocket,
                                      sounds=sounds).items():
        write_private(gen / name, text)  # seat passwords, AMI secrets: Asterisk runs as root
    if paths is not None:
        tpl = (conf_dir / "asterisk.conf.in").read_text(encoding="utf-8")
        subs = {
            "@ETC@": str(paths.inner_dir("etc")), "@LIB@": str(paths.inner_dir("lib")),
            "@SPOOL@": str(paths.inner_dir("spool")), "@RUN@": str(paths.inner_dir("run")),
            "@LOG@": str(paths.inner_dir("log")), "@CACHE@": str(paths.inner_dir("cache")),
            "@SYSTEMNAME@": system_name,
        }
        for k, v in subs.items():
            tpl = tpl.replace(k, v)
        (dest_etc / "asterisk.conf").write_text(tpl, encoding="utf-8")
