"""``hotline``: every command an admin (or a test, or a demo) runs.

    hotline setup                      secrets, Asterisk runtime, database
    hotline up                         the whole stack until Ctrl-C
    hotline asterisk build|start|stop|status|cli [CMD]
    hotline dialplan check|reload
    hotline db upgrade
    hotline api                        the API service alone
    hotline seat SEAT                  a SIPp softphone that registers and answers (demo)
    hotline call NUMBER                a SIPp caller on the trunk (demo)
    hotline route ...                  the routing engine (see `hotline route --help`)
    hotline user add|passwd|disable|enable|list|bootstrap   console accounts (password: stdin/tty)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hotline.settings import Settings, SettingsError
from hotline.site import SiteError, load_site

log = logging.getLogger("hotline")


def _instance(settings: Settings):  # noqa: ANN202
    from hotline.secrets import ensure_secrets
    from operations.asterisk_runtime import AsteriskInstance

    site = load_site(settings.site_file)
    secrets = ensure_secrets(settings.secrets_file, site.all_seats, *site.secret_needs)
    return AsteriskInstance(rootfs=settings.asterisk_rootfs, name=settings.asterisk_instance,
                            conf_dir=settings.conf_dir, site=site, secrets=secrets,
                            agi_host=site.agi_host, agi_port=settings.agi_port,
                            audiosocket=f"{settings.audiosocket_host}:{settings.audiosocket_port}")


def cmd_setup(settings: Settings, _args: argparse.Namespace) -> int:
    from app.db import upgrade
    from hotline.secrets import ensure_secrets
    from operations.asterisk_runtime import build_rootfs

    site = load_site(settings.site_file)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    ensure_secrets(settings.secrets_file, site.all_seats, *site.secret_needs)
    print(f"secrets: {settings.secrets_file}")
    build_rootfs(settings.asterisk_rootfs)
    print(f"asterisk runtime: {settings.asterisk_rootfs}")
    from operations.prompts import render_prompts
    from operations.render import InstancePaths

    instance = InstancePaths(settings.asterisk_rootfs, settings.asterisk_instance)
    sounds = settings.sounds_dir or instance.host_dir("sounds")
    done = asyncio.run(render_prompts(sounds))
    print(f"prompts: {sounds} ({sum(v == 'rendered' for v in done.values())} rendered, "
          f"{sum(v == 'recording' for v in done.values())} recordings kept)")
    upgrade(settings.effective_database_url)
    print(f"database: {settings.effective_database_url} (migrated)")
    return 0


def cmd_up(settings: Settings, _args: argparse.Namespace) -> int:
    from operations.stack import Stack

    async def run() -> None:
        stack = Stack.from_settings(settings, instance_name=settings.asterisk_instance)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stack.start()
            print("hotline stack is up:")
            for k, v in stack.describe().items():
                print(f"  {k:9} {v}")
            print("Ctrl-C stops everything.", flush=True)
            await stop.wait()
        finally:
            print("stopping ...", flush=True)
            await stack.stop()

    asyncio.run(run())
    return 0


def cmd_asterisk(settings: Settings, args: argparse.Namespace) -> int:
    from operations.asterisk_runtime import build_rootfs

    if args.action == "build":
        build_rootfs(settings.asterisk_rootfs, force=args.force)
        print(f"asterisk runtime ready at {settings.asterisk_rootfs}")
        return 0
    inst = _instance(settings)
    if args.action == "start":
        build_rootfs(settings.asterisk_rootfs)
        inst.start()
        print(json.dumps(inst.status(), indent=2))
    elif args.action == "stop":
        inst.stop()
        print("stopped")
    elif args.action == "status":
        st = inst.status()
        print(json.dumps(st, indent=2))
        return 0 if st["running"] else 3
    elif args.action == "cli":
        if args.command:
            print(inst.cli(" ".join(args.command)), end="")
        else:
            os.execvp(inst.interactive_cli_cmd()[0], inst.interactive_cli_cmd())
    return 0


def dialplan_check(settings: Settings) -> list[str]:
    """Lint with asterisklint, then load it in a throwaway Asterisk and read `dialplan show`."""
    from hotline.names import CTX_AGI_FAIL, CTX_FROM_TRUNK, CTX_INTAKE, CTX_SEATS, CTX_SUPERVISORS
    from hotline.secrets import ensure_secrets
    from operations import modules_policy
    from operations.asterisk_runtime import AsteriskInstance, build_rootfs
    from operations.ports import free_port, free_port_pair
    from operations.render import render

    problems: list[str] = []
    site = load_site(settings.site_file)
    secrets = ensure_secrets(settings.secrets_file, site.all_seats, *site.secret_needs)
    with tempfile.TemporaryDirectory() as tmp:
        render(settings.conf_dir, Path(tmp), site, secrets, agi_host=site.agi_host,
               agi_port=settings.agi_port)
        lint = Path(sys.executable).with_name("asterisklint")
        if not lint.exists():
            return [f"asterisklint is not installed next to {sys.executable} (pip install asterisklint)"]
        res = subprocess.run([str(lint), "dialplan-check", "extensions.conf"], cwd=tmp,
                             capture_output=True, text=True)
        lint_lines = [line for line in (res.stdout + res.stderr).splitlines() if line.strip()]
        dialplan_text = "\n".join(p.read_text(errors="replace") for p in sorted(Path(tmp).rglob("*.conf"))
                                   if p.name.startswith(("extensions", "seat_dial", "supervisor", "numbers",
                                                        "transfer_patterns", "applicationmap")))
        # Least privilege: only documented modules, none that is unused, never a shell.
        problems += modules_policy.check((Path(tmp) / "modules.conf").read_text(encoding="utf-8"),
                                         dialplan_text)
    build_rootfs(settings.asterisk_rootfs)
    check_site = site.with_ports(sip_port=free_port_pair(), ami_port=free_port(),
                                 agi_port=settings.agi_port, rtp_start=site.rtp_start)
    inst = AsteriskInstance(rootfs=settings.asterisk_rootfs, name="dialplan-check",
                            conf_dir=settings.conf_dir, site=check_site, secrets=secrets,
                            agi_host=site.agi_host, agi_port=settings.agi_port,
                            audiosocket=f"{settings.audiosocket_host}:{settings.audiosocket_port}")
    # This run's log only (the instance directory, and its log, outlive a run).
    (inst.paths.host_dir("log") / "messages.log").unlink(missing_ok=True)
    inst.start()
    try:
        # Applications the dialplan uses must be loaded (modules.conf has autoload off). This
        # also settles asterisklint's "app does not exist" for apps newer than its list.
        available = {line.split(":")[0].strip().lower()
                     for line in inst.cli("core show applications").splitlines() if ":" in line}
        used = set(re.findall(r"(?:=>\s*[^,\n]+,\s*[^,\n]+,|same\s*=>\s*n(?:\([^)]*\))?,)\s*([A-Za-z]\w*)\(",
                              dialplan_text))
        for app in sorted(used):
            if app.lower() not in available:
                problems.append(f"asterisk: application {app} is used but not loaded (modules.conf)")
        for line in lint_lines:
            m = re.search(r"E_APP_MISSING: app '(\w+)'", line)
            if m and m.group(1).lower() in available:
                continue  # newer than asterisklint's list; Asterisk itself has it
            problems.append(f"asterisklint: {line}")
        shown = inst.cli("dialplan show")
        for ctx in (CTX_FROM_TRUNK, CTX_INTAKE, CTX_SEATS, CTX_SUPERVISORS, CTX_AGI_FAIL):
            if f"[ Context '{ctx}'" not in shown:
                problems.append(f"asterisk: context {ctx!r} missing after load")
        logfile = inst.paths.host_dir("log") / "messages.log"
        for line in logfile.read_text(errors="replace").splitlines():
            if ("ERROR" in line or "WARNING" in line) and ("pbx_config" in line or "extensions" in line
                                                           or "loader.c" in line
                                                           or "config.c" in line):
                problems.append(f"asterisk: {line.strip()}")
    finally:
        inst.stop()
    return problems


def cmd_dialplan(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "check":
        problems = dialplan_check(settings)
        for p in problems:
            print(p)
        print("dialplan OK" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    inst = _instance(settings)
    if not inst.running():
        print("asterisk is not running", file=sys.stderr)
        return 3
    from operations.reload import reload_via_ami

    inst.prepare()  # re-render asterisk_conf/ and the site values into the instance
    result = asyncio.run(reload_via_ami(inst))
    print(json.dumps(result, indent=2))
    return 0 if all(v == "Success" for v in result.values()) else 1


def cmd_exchange_key(settings: Settings, args: argparse.Namespace) -> int:
    """Print the key shared with a peer platform, or (``--set``) store the one read from stdin: the
    two installations must hold the same key. Never on the command line (it would show in ps)."""
    from hotline.secrets import ensure_secrets, set_exchange_key

    site = load_site(settings.site_file)
    secrets = ensure_secrets(settings.secrets_file, site.all_seats, *site.secret_needs)
    if args.set:
        try:
            set_exchange_key(settings.secrets_file, args.peer, sys.stdin.readline().strip())
        except ValueError as exc:
            print(f"hotline: {exc}", file=sys.stderr)
            return 2
        print(f"exchange key for {args.peer} stored in {settings.secrets_file}; restart the API")
        return 0
    key = secrets.exchange_keys.get(args.peer)
    if key is None:
        print(f"hotline: no exchange key for {args.peer} (add [exchange.peers.{args.peer}] to the site, "
              "then `hotline setup`)", file=sys.stderr)
        return 1
    print(key)
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from app.db import upgrade

    upgrade(settings.effective_database_url)
    print(f"database at head: {settings.effective_database_url}")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    """The new password: one line from stdin when it is not a terminal (scripts), else typed twice."""
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.login}: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_user(settings: Settings, args: argparse.Namespace) -> int:
    from app.accounts.store import AccountError, AccountStore
    from app.db import Database, make_engine, upgrade_engine

    logging.getLogger("alembic").setLevel(logging.WARNING)

    async def run() -> int:
        engine = make_engine(settings.effective_database_url)
        try:
            await upgrade_engine(engine)
            store = AccountStore(Database(engine))
            if args.action == "bootstrap":
                code = await _bootstrap(store, settings.state_dir)
                print(f"console: {settings.effective_api_base_url}/console/  (log in as admin)")
                return code
            if args.action == "list":
                for a in await store.all():
                    state = "disabled" if a.disabled else "active"
                    print(f"{a.login}\t{a.role}\t{a.platform or '-'}\t{a.seat or '-'}\t{a.handler or '-'}"
                          f"\t{state}\t{a.display_name}")
                return 0
            if not args.login:
                raise AccountError("a login is needed")
            if args.action == "add":
                if not args.role:
                    raise AccountError("--role is needed (operator, supervisor, admin, department)")
                a = await store.add(args.login, _read_password(args), args.role, display_name=args.name,
                                    platform=args.platform, seat=args.seat, handler=args.handler)
                print(f"added {a.login} ({a.role})")
            elif args.action == "passwd":
                await store.set_password(args.login, _read_password(args))
                print(f"password changed for {args.login}; their sessions ended")
            else:
                await store.set_disabled(args.login, args.action == "disable")
                print(f"{args.login} {args.action}d")
            return 0
        except (AccountError, ValueError) as exc:
            print(f"hotline user: {exc}", file=sys.stderr)
            return 1
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def _bootstrap(store: Any, state_dir: Path) -> int:
    """The first admin: ``admin`` with a random password written to ``var/console-admin.txt`` (0600),
    made only when the console has no active admin yet."""
    import secrets as _secrets

    path = state_dir / "console-admin.txt"
    if any(a.role == "admin" and not a.disabled for a in await store.all()):
        print(f"console admin exists (first password, if still unchanged: {path})")
        return 0
    password = _secrets.token_urlsafe(12)
    await store.add("admin", password, "admin", display_name="管理员")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"login: admin\npassword: {password}\n")
    print(f"console admin created: login admin, password in {path} (change it: hotline user passwd admin)")
    return 0


def cmd_api(settings: Settings, _args: argparse.Namespace) -> int:
    from app.main import serve

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))
    return 0


def _signals_interrupt() -> None:
    """SIGTERM and SIGHUP end a demo agent as Ctrl-C does, so its cleanup (unregister, temp
    dirs) runs; a second signal during that cleanup is ignored rather than cutting it short."""
    def interrupt(_signum: int, _frame: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def cmd_seat(settings: Settings, args: argparse.Namespace) -> int:
    from agents.sipp import Seat
    from hotline.secrets import load_secrets

    site = load_site(settings.site_file)
    pw = load_secrets(settings.secrets_file).sip_passwords[args.seat]
    _signals_interrupt()
    with tempfile.TemporaryDirectory(prefix="hotline-say-") as tmp, \
            Seat(args.seat, pw, f"{site.sip_bind}:{site.sip_port}",
                 audio_pcap=_speech_pcap(args.say, args.voice, Path(tmp), lead_ms=2000)) as seat:
        try:
            seat.start()
            print(f"seat {args.seat} registered on port {seat.port}; answering calls (Ctrl-C stops)")
            assert seat.uas is not None and seat.uas.proc is not None
            seat.uas.proc.wait()
        except KeyboardInterrupt:
            print(f"seat {args.seat}: unregistering", flush=True)
    return 0


def cmd_call(settings: Settings, args: argparse.Namespace) -> int:
    from agents.sipp import place_call

    site = load_site(settings.site_file)
    _signals_interrupt()
    with tempfile.TemporaryDirectory(prefix="hotline-say-") as tmp, \
            place_call(asterisk=f"{site.sip_bind}:{site.sip_port}", service=args.number,
                       caller=args.caller, talk_ms=int(args.talk * 1000), local_ip=site.trunk_hosts[0],
                       audio_pcap=_speech_pcap(args.say, args.voice, Path(tmp), lead_ms=1000)) as run:
        try:
            rc = run.wait(args.talk + 120)
        except KeyboardInterrupt:
            return 130
        print("call completed" if rc == 0 else f"call failed (sipp rc={rc}): {run.errors()}")
        return rc


def _speech_pcap(text: str, voice: str, directory: Path, *, lead_ms: int) -> str:
    """``--say``: the words spoken (espeak-ng) as the RTP the SIPp agent plays once answered,
    written in ``directory`` (the caller removes it)."""
    if not text:
        return ""
    from agents.speech import silence, synthesize, write_speech_pcap

    path = str(directory / "say.pcap")
    write_speech_pcap(path, silence(lead_ms) + synthesize(text, voice=voice) + silence(1000))
    return path


def cmd_route(_settings: Settings, argv: list[str]) -> int:
    from routing.cli import main as route_main

    return int(route_main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup", help="generate secrets, build the Asterisk runtime, migrate the database")
    sub.add_parser("up", help="run Asterisk, Redis, API, FastAGI and the AMI listener until Ctrl-C")
    a = sub.add_parser("asterisk", help="the Asterisk 22 runtime (chroot)")
    a.add_argument("action", choices=["build", "start", "stop", "status", "cli"])
    a.add_argument("command", nargs="*", help="for cli: one CLI command to run")
    a.add_argument("--force", action="store_true", help="for build: rebuild even if cached")
    d = sub.add_parser("dialplan", help="check or reload the dialplan")
    d.add_argument("action", choices=["check", "reload"])
    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade"])
    sub.add_parser("api", help="run the API service alone")
    x = sub.add_parser("exchange-key", help="the key shared with the other platform's installation")
    x.add_argument("peer", choices=["12345", "110", "local"])
    x.add_argument("--set", action="store_true", help="store the key read from stdin")
    s = sub.add_parser("seat", help="a SIPp softphone seat that registers and answers")
    s.add_argument("seat")
    s.add_argument("--say", default="", help="what the operator says in each call (espeak-ng)")
    s.add_argument("--voice", default="ko", help="espeak-ng voice (the demo model is Korean)")
    c = sub.add_parser("call", help="place a call from the trunk (SIPp)")
    c.add_argument("number", help="dialled number, e.g. 12345 or 110")
    c.add_argument("--caller", default="13800138000")
    c.add_argument("--talk", type=float, default=10.0, help="seconds before the caller hangs up")
    c.add_argument("--say", default="", help="what the caller says once answered (espeak-ng)")
    c.add_argument("--voice", default="ko", help="espeak-ng voice (the demo model is Korean)")
    sub.add_parser("route", help="the routing engine", add_help=False)
    u = sub.add_parser("user", help="console accounts: add, change a password, disable, list")
    u.add_argument("action", choices=["add", "passwd", "disable", "enable", "list", "bootstrap"])
    u.add_argument("login", nargs="?")
    u.add_argument("--role", choices=["operator", "supervisor", "admin", "department"])
    u.add_argument("--platform", choices=["12345", "110"], help="operators (and a floor's supervisors)")
    u.add_argument("--seat", help="operators: the softphone seat they answer on")
    u.add_argument("--handler", help="department staff: the site handler id they work for")
    u.add_argument("--name", help="the name screens and the audit show (default: the login)")
    return p


COMMANDS = {"setup": cmd_setup, "up": cmd_up, "asterisk": cmd_asterisk, "dialplan": cmd_dialplan,
            "db": cmd_db, "api": cmd_api, "exchange-key": cmd_exchange_key, "seat": cmd_seat,
            "call": cmd_call, "user": cmd_user}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    if argv and argv[0] == "route":
        return cmd_route(settings, argv[1:])
    args = build_parser().parse_args(argv)
    from hotline.logs import configure

    configure(logging.DEBUG if args.verbose else settings.log_level, settings.log_format)
    try:
        return COMMANDS[args.cmd](settings, args)
    except (SiteError, SettingsError) as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
