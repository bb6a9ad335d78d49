"""Secrets generated at setup (never committed): SIP seat passwords, the AMI secret, API tokens.

Stored as JSON in ``<state_dir>/secrets.json`` with mode 0600, in a state dir of mode 0700.
``ensure_secrets`` creates what is missing and keeps what exists, so re-running setup never changes
a softphone's password.
"""

from __future__ import annotations

import json
import secrets as _secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hotline.private import private_dir, write_private

API_ROLES = ("service", "operator", "supervisor", "admin")
DEPARTMENT = "department"  # one handler's staff: a token per handler, carrying the handler's id
LOCAL_EXCHANGE = "local"   # the key of the exchange path an installation holding both platforms runs itself


@dataclass(frozen=True)
class Secrets:
    ami_secret: str
    sip_passwords: dict[str, str]  # seat/endpoint id -> password
    api_tokens: dict[str, dict[str, str]]  # token -> {"name": ..., "role": ..., "handler": (departments)}
    ami_admin_secret: str = ""  # the admin CLI's AMI user; independent of ami_secret
    # peer platform ("110", "12345") or "local" -> the HMAC key both installations hold
    exchange_keys: dict[str, str] = field(default_factory=dict)

    def token_for(self, role: str, handler: str | None = None) -> str:
        for token, who in self.api_tokens.items():
            if who.get("role") == role and (handler is None or who.get("handler") == handler):
                return token
        raise KeyError(f"no API token with role {role!r}" + (f" for handler {handler!r}" if handler else ""))


def _new() -> str:
    return _secrets.token_urlsafe(18)


def load_secrets(path: Path) -> Secrets:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Secrets(
        ami_secret=data["ami_secret"],
        ami_admin_secret=data.get("ami_admin_secret", ""),
        sip_passwords=dict(data.get("sip_passwords", {})),
        api_tokens={k: dict(v) for k, v in data.get("api_tokens", {}).items()},
        exchange_keys=dict(data.get("exchange_keys", {})),
    )


def ensure_secrets(path: Path, sip_ids: Iterable[str], handlers: Iterable[str] = (),
                   exchange_peers: Iterable[str] = ()) -> Secrets:
    """Create or complete the secrets file; existing values are kept.

    ``handlers``: a department token for each (role ``department``); ``exchange_peers``: an exchange
    key for each peer platform and the local path. A key made here for a real peer must be given to
    the peer's installation too (``hotline exchange-key``): both sides sign with the same key."""
    data: dict = {}
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("ami_secret", _new())
    data.setdefault("ami_admin_secret", _new())  # independent: the listener's secret gives nothing more
    pw = data.setdefault("sip_passwords", {})
    for sid in sip_ids:
        pw.setdefault(sid, _new())
    tokens = data.setdefault("api_tokens", {})
    have = {v.get("role") for v in tokens.values()}
    for role in API_ROLES:
        if role not in have:
            tokens[_new()] = {"name": f"default-{role}", "role": role}
    have_handlers = {v.get("handler") for v in tokens.values() if v.get("role") == DEPARTMENT}
    for handler in handlers:
        if handler not in have_handlers:
            tokens[_new()] = {"name": f"{handler}-clerk", "role": DEPARTMENT, "handler": handler}
    keys = data.setdefault("exchange_keys", {})
    for peer in (LOCAL_EXCHANGE, *exchange_peers):
        keys.setdefault(peer, _secrets.token_urlsafe(32))
    private_dir(path.parent)
    write_private(path, json.dumps(data, indent=2, sort_keys=True))
    return load_secrets(path)


def set_exchange_key(path: Path, peer: str, key: str) -> None:
    """Store the exchange key shared with ``peer`` (the peer's installation holds the same one)."""
    if not (32 <= len(key) <= 256) or not key.isascii() or not key.isprintable() or " " in key:
        raise ValueError("an exchange key is 32-256 printable ASCII characters without spaces")
    data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("exchange_keys", {})[peer] = key
    write_private(path, json.dumps(data, indent=2, sort_keys=True))
