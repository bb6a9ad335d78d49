"""Secrets generated at setup (never committed): SIP seat passwords, the AMI secret, API tokens.

Stored as JSON in ``<state_dir>/secrets.json`` with mode 0600, in a state dir of mode 0700.
``ensure_secrets`` creates what is missing and keeps what exists, so re-running setup never changes
a softphone's password.
"""

from __future__ import annotations

import json
import secrets as _secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hotline.private import private_dir, write_private

API_ROLES = ("service", "operator", "supervisor", "admin")


@dataclass(frozen=True)
class Secrets:
    ami_secret: str
    sip_passwords: dict[str, str]  # seat/endpoint id -> password
    api_tokens: dict[str, dict[str, str]]  # token -> {"name": ..., "role": ...}
    ami_admin_secret: str = ""  # the admin CLI's AMI user; independent of ami_secret

    def token_for(self, role: str) -> str:
        for token, who in self.api_tokens.items():
            if who.get("role") == role:
                return token
        raise KeyError(f"no API token with role {role!r}")


def _new() -> str:
    return _secrets.token_urlsafe(18)


def load_secrets(path: Path) -> Secrets:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Secrets(
        ami_secret=data["ami_secret"],
        ami_admin_secret=data.get("ami_admin_secret", ""),
        sip_passwords=dict(data.get("sip_passwords", {})),
        api_tokens={k: dict(v) for k, v in data.get("api_tokens", {}).items()},
    )


def ensure_secrets(path: Path, sip_ids: Iterable[str]) -> Secrets:
    """Create or complete the secrets file; existing values are kept."""
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
    private_dir(path.parent)
    write_private(path, json.dumps(data, indent=2, sort_keys=True))
    return load_secrets(path)
