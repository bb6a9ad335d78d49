"""The AGI wire format, shared by the FastAGI server, the classic script and the fake Asterisk.

Asterisk starts a session with ``agi_<name>: <value>`` lines and a blank line, then reads one command
per line and answers each with ``200 result=...``. Asterisk splits a command line into arguments
like a shell-lite (``res_agi.c`` ``parse_args``): whitespace separates, double quotes group, a
backslash makes the next character literal. A newline always ends the command, so a value that
contains one cannot be sent at all; we refuse it rather than let it inject a second command.
"""

from __future__ import annotations

from collections.abc import Mapping

MAX_ENV_BYTES = 64 * 1024   # the whole agi_* block; a 10,000-character caller id still fits
MAX_COMMAND_BYTES = 2048    # Asterisk's AGI_BUF_LEN: longer command lines are cut


class AgiValueError(ValueError):
    """A value cannot be carried safely in an AGI command."""

    error_id = "agi.value_unsafe"


def escape_value(value: str) -> str:
    """Escape ``value`` for use inside double quotes in an AGI command.

    Backslashes and double quotes get a backslash; control characters (newline, carriage return,
    NUL, ...) are refused because they end or corrupt the command line.
    """
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise AgiValueError("control character in AGI value")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def quote_value(value: str) -> str:
    """``value`` as one AGI argument: escaped and double-quoted (an empty value stays an argument)."""
    return f'"{escape_value(value)}"'


def set_variable_command(name: str, value: str) -> str:
    """The ``SET VARIABLE`` command line (without the newline) for one channel variable."""
    if not name or not all(ch.isalnum() or ch in "_()" for ch in name):
        raise AgiValueError(f"unsafe channel variable name {name!r}")
    line = f"SET VARIABLE {name} {quote_value(value)}"
    if len(line.encode("utf-8")) + 1 > MAX_COMMAND_BYTES:
        raise AgiValueError(f"value for {name} too long for one AGI command")
    return line


def parse_env(block: bytes) -> dict[str, str]:
    """Parse the ``agi_*`` header block Asterisk sends (up to and including the blank line).

    Undecodable bytes are replaced, not fatal: a caller name in Latin-1 must not end the call.
    Lines without ``: `` are ignored; later duplicates win, as in Asterisk's own order.
    """
    env: dict[str, str] = {}
    for raw in block.decode("utf-8", errors="replace").split("\n"):
        line = raw.rstrip("\r")
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key.startswith("agi_"):
            env[key] = value[1:] if value.startswith(" ") else value
    return env


def route_name(env: Mapping[str, str]) -> str:
    """The route of a FastAGI request: ``agi://host:port/intake?x`` -> ``intake``."""
    script = env.get("agi_network_script", "")
    return script.split("?", 1)[0].strip("/")


def agi_args(env: Mapping[str, str]) -> list[str]:
    """``agi_arg_1``, ``agi_arg_2``, ... in order."""
    args: list[str] = []
    while (v := env.get(f"agi_arg_{len(args) + 1}")) is not None:
        args.append(v)
    return args


def format_env(env: Mapping[str, str]) -> bytes:
    """The header block as Asterisk writes it (for the fake Asterisk in tests and benchmarks)."""
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode("utf-8") + b"\n"


def parse_command_args(line: str) -> list[str]:
    """Split a command line the way Asterisk does (``res_agi.c`` ``parse_args``).

    Used by the fake Asterisk in tests and benchmarks, so that they check what Asterisk would read.
    """
    args: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    in_word = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                in_word = True
            continue
        if ch in " \t" and not quoted and not escaped:
            if in_word:
                args.append("".join(cur))
                cur = []
                in_word = False
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        escaped = False
        in_word = True
        cur.append(ch)
    if in_word:
        args.append("".join(cur))
    return args
