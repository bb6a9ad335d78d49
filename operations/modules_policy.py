"""Least privilege in Asterisk: which modules ``modules.conf`` may load, and why.

``hotline dialplan check`` fails when ``modules.conf`` loads a module this table does not know, a
module that can run a shell (``app_system``, ``func_shell``: never, whatever the dialplan says), or
an application/function module none of whose applications or functions the rendered dialplan uses;
and when the dialplan uses an application or function whose module is not loaded.

Pure: it reads text, so it is unit-tested without Asterisk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Modules that let dialplan text reach a shell. Never loaded.
FORBIDDEN = {
    "app_system.so": "System()/TrySystem() run a shell command",
    "func_shell.so": "SHELL() runs a shell command",
}


@dataclass(frozen=True)
class Module:
    why: str
    apps: frozenset[str] = frozenset()   # dialplan applications it provides
    funcs: frozenset[str] = frozenset()  # dialplan functions it provides

    @property
    def derivable(self) -> bool:
        """Its use can be read off the dialplan (it provides applications or functions)."""
        return bool(self.apps or self.funcs)


def _m(why: str, apps: str = "", funcs: str = "") -> Module:
    return Module(why, frozenset(apps.split()), frozenset(funcs.split()))


# Every module the configuration may load. Infrastructure modules (no applications or functions
# of their own) say what needs them; the others are kept only while the dialplan uses them.
ALLOWED: dict[str, Module] = {
    # core resources
    "res_timing_timerfd.so": _m("timing source for ConfBridge mixing and music on hold"),
    "res_rtp_asterisk.so": _m("RTP media of every SIP call"),
    "res_sorcery_config.so": _m("PJSIP reads pjsip.conf through sorcery"),
    "res_sorcery_memory.so": _m("PJSIP keeps transient objects through sorcery"),
    "res_sorcery_memory_cache.so": _m("PJSIP object cache"),
    "res_sorcery_astdb.so": _m("PJSIP keeps registered seat contacts in astdb"),
    "res_musiconhold.so": _m("music while a caller waits in a queue or on attended transfer"),
    "res_speech.so": _m("res_agi requires it (Asterisk will not load res_agi without it)"),
    "res_agi.so": _m("FastAGI intake (agi/)", apps="AGI"),
    # SIP
    "res_pjproject.so": _m("PJSIP stack"),
    "res_pjsip.so": _m("PJSIP stack"),
    "res_pjsip_session.so": _m("SIP calls (INVITE sessions)"),
    "res_pjsip_pubsub.so": _m("SIP REFER's implicit subscription (softphone transfers)"),
    "res_pjsip_authenticator_digest.so": _m("digest authentication of seats and supervisors"),
    "res_pjsip_endpoint_identifier_ip.so": _m("the trunk and the linkage gateway are identified by IP"),
    "res_pjsip_endpoint_identifier_user.so": _m("seats are identified by their user name"),
    "res_pjsip_registrar.so": _m("softphones register their contact"),
    "res_pjsip_sdp_rtp.so": _m("SDP offer/answer for RTP media"),
    "res_pjsip_caller_id.so": _m("caller id from the trunk's From / P-Asserted-Identity"),
    "res_pjsip_dtmf_info.so": _m("feature codes from softphones that send SIP INFO DTMF"),
    "res_pjsip_refer.so": _m("softphone-initiated transfers (REFER)"),
    "res_pjsip_nat.so": _m("rewrite_contact / force_rport for softphones behind NAT"),
    "res_pjsip_rfc3326.so": _m("hangup causes from the SIP Reason header"),
    "res_pjsip_header_funcs.so": _m("X-Hotline-Call/Ticket headers on the seat's INVITE",
                                    funcs="PJSIP_HEADER"),
    "res_pjsip_outbound_authenticator_digest.so": _m("digest auth towards an outbound trunk that asks"),
    "chan_pjsip.so": _m("the SIP channel driver"),
    # codecs and formats
    "codec_ulaw.so": _m("G.711 mu-law: seats, trunk, AudioSocket transcoding"),
    "codec_alaw.so": _m("G.711 A-law: carrier trunks in China use it"),
    "codec_gsm.so": _m("the GSM sound files (prompts, music on hold)"),
    "codec_resample.so": _m("ConfBridge mixes at other rates than the phones' 8 kHz"),
    "format_gsm.so": _m("the GSM sound files (asterisk-core-sounds-en-gsm, moh-opsound-gsm)"),
    "format_wav.so": _m("the Mandarin prompts and a callback's spoken reply (8 kHz WAV, espeak-ng)"),
    # bridging
    "bridge_simple.so": _m("two-party bridges (caller and seat)"),
    "bridge_native_rtp.so": _m("two-party bridges without transcoding"),
    "bridge_softmix.so": _m("ConfBridge mixing (three-way calls)"),
    "bridge_holding.so": _m("holding bridges (ConfBridge waiting for a marked user)"),
    # dialplan and applications
    "pbx_config.so": _m("extensions.conf"),
    "app_dial.so": _m("seat-to-seat calls, transfer fallback, linkage", apps="Dial"),
    "app_queue.so": _m("the platforms' queues", apps="Queue", funcs="QUEUE_MEMBER"),
    "app_playback.so": _m("the spy error tone", apps="Playback"),
    "app_echo.so": _m("the *43 echo test", apps="Echo"),
    "app_confbridge.so": _m("three-way bridges", apps="ConfBridge ConfKick"),
    "app_chanspy.so": _m("supervisors and media taps", apps="ChanSpy"),
    "app_stack.so": _m("Gosub for feature codes and supervisor codes", apps="Gosub Return"),
    "app_verbose.so": _m("warnings in the dialplan", apps="Log"),
    "app_exec.so": _m("conditional steps", apps="ExecIf"),
    "app_audiosocket.so": _m("media taps to the transcriber", apps="AudioSocket"),
    "res_audiosocket.so": _m("AudioSocket protocol, needed by app_audiosocket"),
    "app_channelredirect.so": _m("the one-touch key moves the caller", apps="ChannelRedirect"),
    "app_userevent.so": _m("the dialplan tells the backend what it did", apps="UserEvent"),
    "func_channel.so": _m("channel data", funcs="CHANNEL CHANNELS"),
    "func_callerid.so": _m("caller id", funcs="CALLERID"),
    "func_logic.so": _m("conditions and the spied call's id", funcs="IF IMPORT"),
    "func_cut.so": _m("seat from a channel or extension", funcs="CUT"),
}

_APP_RE = re.compile(r"(?:=>\s*[^,\n]+,\s*[^,\n]+,|same\s*=>\s*n(?:\([^)]*\))?,)\s*([A-Za-z]\w*)\(")
_INNER_APP_RE = re.compile(r"\b(ExecIf|GotoIf)\([^?]*\?\s*([A-Za-z]\w*)\(")
_FUNC_RE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\(|\bSet\(([A-Z][A-Z0-9_]*)\(|[(,]([A-Z][A-Z0-9_]*)\(")
_LOAD_RE = re.compile(r"^\s*(?:load|require)\s*=>?\s*(\S+)", re.MULTILINE)


def loaded_modules(modules_conf: str) -> list[str]:
    text = "\n".join(line.split(";", 1)[0] for line in modules_conf.splitlines())
    return _LOAD_RE.findall(text)


def used_names(dialplan: str) -> tuple[set[str], set[str]]:
    """Applications and functions the dialplan text names."""
    text = "\n".join(line.split(";", 1)[0] for line in dialplan.splitlines())
    apps = set(_APP_RE.findall(text)) | {m[1] for m in _INNER_APP_RE.findall(text)}
    funcs = {next(g for g in m if g) for m in _FUNC_RE.findall(text)}
    return apps, funcs - {"ARG1", "ARG2", "ARG3"}


def check(modules_conf: str, dialplan: str) -> list[str]:
    """Problems with the loaded module set for this dialplan (empty: least privilege holds)."""
    problems: list[str] = []
    loaded = loaded_modules(modules_conf)
    apps, funcs = used_names(dialplan)
    for mod in loaded:
        if mod in FORBIDDEN:
            problems.append(f"modules.conf: {mod} must never be loaded ({FORBIDDEN[mod]})")
            continue
        spec = ALLOWED.get(mod)
        if spec is None:
            problems.append(f"modules.conf: {mod} is loaded but nothing documents its use "
                            "(operations/modules_policy.py ALLOWED)")
        elif spec.derivable and not (spec.apps & apps or spec.funcs & funcs):
            problems.append(f"modules.conf: {mod} is loaded but the dialplan uses none of "
                            f"{', '.join(sorted(spec.apps | spec.funcs))}")
    provided_apps = {a for m in loaded if m in ALLOWED for a in ALLOWED[m].apps}
    provided_funcs = {f for m in loaded if m in ALLOWED for f in ALLOWED[m].funcs}
    known_funcs = {f for spec in ALLOWED.values() for f in spec.funcs} | {"SHELL", "SYSTEM"}
    for f in sorted(funcs & known_funcs - provided_funcs):
        problems.append(f"dialplan: function {f} is used but its module is not loaded")
    known_apps = {a for spec in ALLOWED.values() for a in spec.apps} | {"System", "TrySystem"}
    for a in sorted(apps & known_apps - provided_apps):
        problems.append(f"dialplan: application {a} is used but its module is not loaded")
    return problems
