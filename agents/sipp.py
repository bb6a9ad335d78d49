"""SIPp user agents for tests, benchmarks and demos: a caller on the trunk, softphone seats.

Scenarios are generated (times are baked in, SIPp's recv timeouts are literals). A seat registers
with digest auth from its own port (one SIPp run), then a UAS on the same port answers the calls
Asterisk sends to its registered contact.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from agents.rtp_dtmf import check_keys, write_dtmf_pcap

log = logging.getLogger(__name__)

# Our answer to a request the other side sent (its BYE): echo its dialog headers.
OK_TO_REQUEST = """  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
"""

SAMPLE_AUDIO_PCAP = "/usr/share/sip-tester/g711a.pcap"  # shipped by sip-tester: G.711 A-law speech
DTMF_DURATION_MS = 40  # SIP INFO key press length; Asterisk plays it out before acting on the key
DTMF_MODES = ("info", "rfc4733")  # how a seat sends keys: SIP INFO, or RTP telephone-events

SDP = """v=0
o=hotline 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv"""


def caller_scenario(talk_ms: int, unique_callers: bool = False, audio_pcap: str = "") -> str:
    """Trunk caller: INVITE [service], wait for 200, talk, BYE (or answer a BYE from Asterisk).

    ``unique_callers`` appends SIPp's call number to the caller id, so load runs look like many
    different callers rather than one number calling hundreds of times. ``audio_pcap``: RTP the
    caller plays once answered (SIPp ``play_pcap_audio``; its own thread, so a BYE still ends it).
    """
    scenario = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="hotline trunk caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "[caller]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "[caller]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
{_play(audio_pcap)}  <recv request="BYE" timeout="{talk_ms}" ontimeout="hangup"/>
{OK_TO_REQUEST}  <nop next="end"/>
  <label id="hangup"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "[caller]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200" crlf="true"/>
  <label id="end"/>
</scenario>
"""
    return scenario.replace("[caller]", "[caller][call_number]") if unique_callers else scenario


def _play(pcap: str) -> str:
    if not pcap:
        return ""
    return f'  <nop><action><exec play_pcap_audio="{escape(pcap, {chr(34): "&quot;"})}"/></action></nop>\n'


def unregister_scenario() -> str:
    """REGISTER with ``Expires: 0`` for the same contact: Asterisk drops the binding, so a seat
    that went away is not rung any more (RFC 3261 10.2.2)."""
    return register_scenario(expires=0)


def register_scenario(expires: int = 3600) -> str:
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="seat register">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[seat]@[remote_ip]>;tag=[pid]reg[call_number]
To: <sip:[seat]@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[seat]@[local_ip]:[local_port]>
Expires: {expires}
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[seat]@[remote_ip]>;tag=[pid]reg[call_number]
To: <sip:[seat]@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[seat]@[local_ip]:[local_port]>
[authentication]
Expires: {expires}
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
</scenario>
"""


# A UAS's answer to the INVITE it received: echo its dialog headers, our tag and contact.
UAS_RESPONSE_HEADERS = """[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>"""


def _invite_recv(*, capture: bool) -> str:
    """Receive the INVITE; ``capture``: keep its Contact, From and To for a request of our own in
    the dialog (SIP INFO keys, our BYE)."""
    if not capture:
        return '<recv request="INVITE" crlf="true"/>'
    return """<recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="sip:[^&gt;;]*" search_in="hdr" header="Contact:" assign_to="remote_contact"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_party"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_party"/>
    </action>
  </recv>"""


def seat_scenario(ring_ms: int = 100, dtmf: str = "", dtmf_after_ms: int = 800, dtmf_mode: str = "info",
                  dtmf_pcap: str = "", audio_pcap: str = "", hangup_after_ms: int = 0) -> str:
    """Seat UAS: ring, answer, optionally press ``dtmf`` after ``dtmf_after_ms``, then wait for the
    BYE (the caller or Asterisk ends the call).

    ``dtmf_mode`` "info" sends one SIP INFO a key; "rfc4733" plays ``dtmf_pcap`` (written by
    ``write_dtmf_pcap`` for the same keys) as RTP telephone-events to the media address in
    Asterisk's SDP, as a phone does."""
    if dtmf_mode not in DTMF_MODES:
        raise ValueError(f"dtmf_mode is one of {DTMF_MODES}, not {dtmf_mode!r}")
    if dtmf and dtmf_mode == "rfc4733" and not dtmf_pcap:
        raise ValueError("dtmf_mode rfc4733 needs the pcap of the keys (dtmf_pcap)")
    if audio_pcap and dtmf and dtmf_mode == "rfc4733":
        raise ValueError("a seat plays one pcap: speech (audio_pcap) or RFC 4733 keys, not both")
    resp_hdrs = UAS_RESPONSE_HEADERS
    keys = ""
    if dtmf:
        keys = f'  <pause milliseconds="{dtmf_after_ms}"/>\n'
    if dtmf and dtmf_mode == "rfc4733":
        check_keys(dtmf)
        pcap_attr = escape(dtmf_pcap, {'"': "&quot;"})
        # SIPp plays the pcap in a thread of its own, from the media port in our SDP to the one in
        # Asterisk's; no pause after it, as the BYE that a transfer brings may come while it plays
        # and SIPp aborts a call on a message that arrives during a pause.
        keys += f'  <nop><action><exec play_pcap_audio="{pcap_attr}"/></action></nop>\n'
    elif dtmf:
        for n, digit in enumerate(dtmf):
            body = f"Signal={digit}\nDuration={DTMF_DURATION_MS}"
            keys += f"""  <send retrans="500"><![CDATA[
INFO [$remote_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$local_party];tag=[pid]SIPpTag01[call_number]
To:[$remote_party]
[last_Call-ID:]
CSeq: {10 + n} INFO
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

{body}
]]></send>
  <recv response="200" crlf="true"/>
  <pause milliseconds="60"/>
"""
    if hangup_after_ms and dtmf:
        raise ValueError("a seat that hangs up first presses no keys here")
    invite_recv = _invite_recv(capture=bool(dtmf and dtmf_mode == "info") or bool(hangup_after_ms))
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="seat answers">
  {invite_recv}
  <send><![CDATA[
SIP/2.0 180 Ringing
{resp_hdrs}
Content-Length: 0
]]></send>
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
{resp_hdrs}
Content-Type: application/sdp
Content-Length: [len]

{SDP}
]]></send>
  <recv request="ACK" rtd="true" crlf="true"/>
{_play(audio_pcap)}{keys}{_seat_ends(hangup_after_ms)}</scenario>
"""


def _seat_ends(hangup_after_ms: int) -> str:
    """Wait for the BYE, or (``hangup_after_ms``) hang up first, as an operator does."""
    if not hangup_after_ms:
        return f'  <recv request="BYE"/>\n{OK_TO_REQUEST}'
    return f"""  <pause milliseconds="{hangup_after_ms}"/>
  <send retrans="500"><![CDATA[
BYE [$remote_contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$local_party];tag=[pid]SIPpTag01[call_number]
To:[$remote_party]
[last_Call-ID:]
CSeq: 20 BYE
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200" crlf="true"/>
"""


def phone_scenario(mode: str = "answer", ring_ms: int = 300, hangup_after_ms: int = 0) -> str:
    """A caller's phone on the outbound trunk (a UAS for any INVITE): ``answer`` (then waits for
    the BYE, or hangs up itself after ``hangup_after_ms``), ``busy`` (486 Busy Here), or ``ring``
    (rings until Asterisk gives up: CANCEL)."""
    hdrs = UAS_RESPONSE_HEADERS
    if mode == "busy":
        body = f"""  <send><![CDATA[
SIP/2.0 486 Busy Here
{hdrs}
Content-Length: 0
]]></send>
  <recv request="ACK" crlf="true"/>
"""
    elif mode == "ring":
        body = f"""  <send><![CDATA[
SIP/2.0 180 Ringing
{hdrs}
Content-Length: 0
]]></send>
  <recv request="CANCEL"/>
{OK_TO_REQUEST}  <send><![CDATA[
SIP/2.0 487 Request Terminated
{hdrs}
Content-Length: 0
]]></send>
  <recv request="ACK" crlf="true"/>
"""
    elif mode == "answer":
        body = f"""  <send><![CDATA[
SIP/2.0 180 Ringing
{hdrs}
Content-Length: 0
]]></send>
  <pause milliseconds="{ring_ms}"/>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
{hdrs}
Content-Type: application/sdp
Content-Length: [len]

{SDP}
]]></send>
  <recv request="ACK" crlf="true"/>
{_seat_ends(hangup_after_ms)}"""
    else:
        raise ValueError(f"mode is answer, busy or ring, not {mode!r}")
    invite = _invite_recv(capture=bool(hangup_after_ms))  # our own BYE needs the dialog's addresses
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="phone {mode}">
  {invite}
{body}</scenario>
"""


@dataclass
class Phone:
    """The called party of outbound callbacks: SIPp answering every INVITE on ``ip:port`` (the
    outbound trunk's contact) the same way. ``media_port``: the RTP port its SDP names (a test socket
    that counts what it hears and sends the keys, as the phone's own audio would)."""

    ip: str
    port: int
    mode: str = "answer"
    media_port: int = 0
    hangup_after_ms: int = 0
    run: SippRun | None = None

    def start(self) -> Phone:
        scenario = phone_scenario(self.mode, hangup_after_ms=self.hangup_after_ms)
        if self.media_port:
            scenario = scenario.replace("m=audio [media_port] ", f"m=audio {self.media_port} ")
        self.run = SippRun(["127.0.0.1", "-i", self.ip, "-p", str(self.port), "-mi", self.ip, "-mp", "0",
                            "-nostdin", "-aa", "-trace_msg", "-message_file", "messages.log"],
                           scenario).start()
        time.sleep(0.2)
        return self

    def invites(self) -> int:
        """How many INVITEs reached this phone (from SIPp's message log)."""
        assert self.run is not None
        log_file = self.run.workdir / "messages.log"
        if not log_file.exists():
            return 0
        return log_file.read_text(errors="replace").count("INVITE sip:")

    def close(self) -> None:
        if self.run is not None:
            self.run.close()


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise RuntimeError("SIPp is not installed: apt-get install -y sip-tester")
    return path


_OPEN_RUNS: set[SippRun] = set()


@atexit.register
def _close_open_runs() -> None:
    """Runs a caller waited for but never closed (a test reading their logs, a benchmark) are
    stopped and their temp dirs removed when the process exits."""
    for run in list(_OPEN_RUNS):
        run.close()


@dataclass(eq=False)
class SippRun:
    """A SIPp process with its scenario file and logs in a private temp dir."""

    args: list[str]
    scenario: str
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sipp-")))
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        _OPEN_RUNS.add(self)  # closed at exit at the latest: no sipp-* dir outlives its process

    def start(self) -> SippRun:
        sf = self.workdir / "scenario.xml"
        sf.write_text(self.scenario)
        cmd = [sipp_binary(), *self.args, "-sf", str(sf), "-bg", "-trace_err",
               "-error_file", str(self.workdir / "errors.log")]
        # -bg forks; we want to own the process, so run in foreground with no stdin instead.
        cmd.remove("-bg")
        with open(self.workdir / "stderr.log", "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        return self

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        """Stop SIPp and remove its temp dir (scenario, logs, pcaps)."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        _OPEN_RUNS.discard(self)

    def __enter__(self) -> SippRun:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def errors(self) -> str:
        out = []
        for name in ("errors.log", "stderr.log"):
            p = self.workdir / name
            if p.exists():
                out.append(p.read_text(errors="replace")[-3000:])
        return "\n".join(out)


def place_call(*, asterisk: str, service: str, caller: str, talk_ms: int = 2000,
               local_ip: str = "127.0.0.2", local_port: int = 0, calls: int = 1,
               concurrency: int = 1, rate: float | None = None,
               unique_callers: bool = False, audio_pcap: str = "", media_port: int = 0) -> SippRun:
    """Start a caller run from the trunk address (returns at once; call ``wait``). ``media_port``:
    the RTP port the caller's SDP names (a test socket that hears the prompts and sends keys)."""
    args = [asterisk, "-i", local_ip, "-p", str(local_port), "-s", service, "-key", "caller", caller,
            "-m", str(calls), "-l", str(concurrency), "-mi", local_ip, "-mp", "0",
            "-timeout_error", "-recv_timeout", "600000", "-nostdin"]
    if rate is not None:
        args += ["-r", str(rate)]
    else:
        args += ["-r", str(max(1, concurrency))]
    scenario = caller_scenario(talk_ms, unique_callers, audio_pcap)
    if media_port:
        scenario = scenario.replace("m=audio [media_port] ", f"m=audio {media_port} ")
    return SippRun(args, scenario).start()


def _free_udp_port(ip: str) -> int:
    import socket

    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


@dataclass
class Seat:
    """A softphone seat played by SIPp: registers with digest auth, then answers calls."""

    seat: str
    password: str
    asterisk: str  # "host:port"
    local_ip: str = "127.0.0.1"
    ring_ms: int = 100
    port: int = 0
    uas: SippRun | None = None
    dtmf: str = ""            # keys this seat presses after answering
    dtmf_after_ms: int = 800
    dtmf_mode: str = "info"   # "info" (SIP INFO) or "rfc4733" (RTP telephone-events, as phones send)
    media_port: int = 0       # announce this RTP port instead of SIPp's (a test listens on it)
    audio_pcap: str = ""      # what the operator says once answered (agents.speech.write_speech_pcap)
    hangup_after_ms: int = 0  # the operator hangs up first, this long after answering

    def register(self, timeout: float = 10.0, *, scenario: str = "") -> None:
        if not self.port:
            self.port = _free_udp_port(self.local_ip)
        with SippRun([self.asterisk, "-i", self.local_ip, "-p", str(self.port), "-m", "1",
                      "-key", "seat", self.seat, "-au", self.seat, "-ap", self.password, "-nostdin",
                      "-timeout", "8s", "-timeout_error"],
                     scenario or register_scenario()).start() as run:
            rc = run.wait(timeout)
            if rc != 0:
                raise RuntimeError(f"seat {self.seat} failed to register (rc={rc}): {run.errors()}")

    def unregister(self, timeout: float = 10.0) -> None:
        """Remove this seat's contact from Asterisk (from the same port, once the UAS is stopped)."""
        self.register(timeout, scenario=unregister_scenario())

    def start(self) -> Seat:
        self.register()
        return self._start_uas()

    def reregister(self) -> None:
        """Register again from the same port (as a phone does after a PBX restart)."""
        self.stop()
        self.register()
        self._start_uas()

    def _start_uas(self) -> Seat:
        if self.uas is not None:
            self.uas.close()  # the previous registration's UAS (reregister)
        workdir = Path(tempfile.mkdtemp(prefix="sipp-"))
        pcap = ""
        if self.dtmf and self.dtmf_mode == "rfc4733":
            pcap = str(workdir / "dtmf.pcap")
            write_dtmf_pcap(pcap, self.dtmf)
        scenario = seat_scenario(self.ring_ms, self.dtmf, self.dtmf_after_ms, self.dtmf_mode, pcap,
                                 self.audio_pcap, self.hangup_after_ms)
        if self.media_port:
            # Only the answer's SDP (the 200 OK) carries it: Asterisk then sends this seat's audio
            # to a socket the caller of this class owns, where it can be counted.
            scenario = scenario.replace("m=audio [media_port] ", f"m=audio {self.media_port} ")
        self.uas = SippRun([self.asterisk, "-i", self.local_ip, "-p", str(self.port), "-key", "seat",
                            self.seat, "-mi", self.local_ip, "-mp", "0", "-nostdin", "-aa"],
                           scenario, workdir).start()
        time.sleep(0.2)  # let the UAS bind before Asterisk sends it anything
        return self

    def stop(self) -> None:
        """Stop answering (the contact stays registered; its logs stay readable)."""
        if self.uas:
            self.uas.stop()

    def close(self) -> None:
        """Stop answering, unregister, remove the temp dirs: what a phone being switched off does."""
        started = self.uas is not None
        self.stop()
        try:
            if started:
                self.unregister()
        except RuntimeError as exc:
            log.warning("seat %s: unregister failed, Asterisk keeps the contact: %s", self.seat, exc)
        finally:
            if self.uas is not None:
                self.uas.close()

    def __enter__(self) -> Seat:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass
class SeatBank:
    """Many seats behind one SIPp UAS (for load tests): each seat registers from the same port,
    so Asterisk sends every seat's calls to one process that answers them all concurrently."""

    passwords: dict[str, str]  # seat id -> password
    asterisk: str
    local_ip: str = "127.0.0.1"
    ring_ms: int = 50
    port: int = 0
    uas: SippRun | None = None

    def start(self) -> SeatBank:
        self.port = self.port or _free_udp_port(self.local_ip)
        for seat_id, pw in self.passwords.items():
            Seat(seat_id, pw, self.asterisk, self.local_ip, port=self.port).register()
        self.uas = SippRun([self.asterisk, "-i", self.local_ip, "-p", str(self.port), "-key", "seat",
                            "bank", "-mi", self.local_ip, "-mp", "0", "-nostdin", "-aa",
                            "-max_socket", "4096"],
                           seat_scenario(self.ring_ms)).start()
        time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.uas:
            self.uas.close()
