"""The one place that reads the environment.

Everything else receives a :class:`Settings` instance (constructor or app key); nothing else calls
``os.getenv``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting has a value we cannot use."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise SettingsError(f"{name}: expected a boolean (1/0, true/false, yes/no, on/off), got {value!r}")


def parse_int(name: str, value: str, lo: int = 0, hi: int = 1 << 31) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {value!r}") from None
    if not lo <= n <= hi:
        raise SettingsError(f"{name}: {n} is outside {lo}..{hi}")
    return n


def _csv(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. Defaults are the embedded single-machine setup."""

    state_dir: Path = REPO_ROOT / "var"
    site_file: Path = REPO_ROOT / "site.toml"
    conf_dir: Path = REPO_ROOT / "asterisk_conf"
    database_url: str = ""  # empty: SQLite file in state_dir
    redis_url: str = ""  # empty: `hotline up` starts a redis-server on a free loopback port
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_base_url: str = ""  # where AGI/AMI workers reach the API; empty: http://api_host:api_port
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_allowed_hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    agi_budget_ms: int = 400  # intake answers with defaults when its work takes longer than this
    asterisk_rootfs: Path = Path("/var/cache/hotline/rootfs")
    asterisk_instance: str = "default"
    log_level: str = "INFO"
    # Live transcription: the Vosk model directory (empty: the demo model package when installed),
    # where the transcriber takes Asterisk's AudioSocket streams, and its decoding pool size.
    vosk_model: Path | None = None
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = 4574
    transcribe_workers: int = 0  # 0: one per CPU core
    transcribe_max_streams: int = 0  # 0: two per core (bench/bench_transcribe.py: 4 in real time on 2)
    transcribe_backlog_ms: int = 2000  # audio a stream may have waiting for decoding; beyond it, dropped
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.state_dir / 'hotline.db'}"

    @property
    def effective_api_base_url(self) -> str:
        return self.api_base_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.json"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        s = cls()
        changes: dict[str, object] = {}
        if v := env.get("HOTLINE_STATE_DIR"):
            changes["state_dir"] = Path(v).resolve()
        if v := env.get("HOTLINE_SITE"):
            changes["site_file"] = Path(v).resolve()
        if v := env.get("HOTLINE_CONF_DIR"):
            changes["conf_dir"] = Path(v).resolve()
        if v := env.get("DATABASE_URL"):
            changes["database_url"] = _normalise_db_url(v)
        if v := env.get("REDIS_URL"):
            changes["redis_url"] = v
        if v := env.get("HOTLINE_API_HOST"):
            changes["api_host"] = v
        if v := env.get("HOTLINE_API_PORT"):
            changes["api_port"] = parse_int("HOTLINE_API_PORT", v, 1, 65535)
        if v := env.get("HOTLINE_API_URL"):
            changes["api_base_url"] = v.rstrip("/")
        if v := env.get("HOTLINE_AGI_HOST"):
            changes["agi_host"] = v
        if v := env.get("HOTLINE_AGI_PORT"):
            changes["agi_port"] = parse_int("HOTLINE_AGI_PORT", v, 1, 65535)
        if v := env.get("HOTLINE_AGI_ALLOWED_HOSTS"):
            changes["agi_allowed_hosts"] = _csv(v)
        if v := env.get("HOTLINE_AGI_BUDGET_MS"):
            changes["agi_budget_ms"] = parse_int("HOTLINE_AGI_BUDGET_MS", v, 10, 60_000)
        if v := env.get("HOTLINE_ASTERISK_ROOTFS"):
            changes["asterisk_rootfs"] = Path(v).resolve()
        if v := env.get("HOTLINE_ASTERISK_INSTANCE"):
            changes["asterisk_instance"] = v
        if v := env.get("HOTLINE_VOSK_MODEL"):
            changes["vosk_model"] = Path(v).resolve()
        if v := env.get("HOTLINE_AUDIOSOCKET_HOST"):
            changes["audiosocket_host"] = v
        if v := env.get("HOTLINE_AUDIOSOCKET_PORT"):
            changes["audiosocket_port"] = parse_int("HOTLINE_AUDIOSOCKET_PORT", v, 1, 65535)
        if v := env.get("HOTLINE_TRANSCRIBE_WORKERS"):
            changes["transcribe_workers"] = parse_int("HOTLINE_TRANSCRIBE_WORKERS", v, 0, 256)
        if v := env.get("HOTLINE_TRANSCRIBE_MAX_STREAMS"):
            changes["transcribe_max_streams"] = parse_int("HOTLINE_TRANSCRIBE_MAX_STREAMS", v, 0, 10_000)
        if v := env.get("HOTLINE_TRANSCRIBE_BACKLOG_MS"):
            changes["transcribe_backlog_ms"] = parse_int("HOTLINE_TRANSCRIBE_BACKLOG_MS", v, 100, 3_600_000)
        if v := env.get("HOTLINE_LOG_LEVEL"):
            changes["log_level"] = v.upper()
        changes["extra"] = {k: v for k, v in env.items() if k.startswith("HOTLINE_FLAG_")}
        return s.with_(**changes)

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` rebuild these settings (for child processes)."""
        env = {
            "HOTLINE_STATE_DIR": str(self.state_dir), "HOTLINE_SITE": str(self.site_file),
            "HOTLINE_CONF_DIR": str(self.conf_dir), "HOTLINE_API_HOST": self.api_host,
            "HOTLINE_API_PORT": str(self.api_port), "HOTLINE_API_URL": self.effective_api_base_url,
            "HOTLINE_AGI_HOST": self.agi_host, "HOTLINE_AGI_PORT": str(self.agi_port),
            "HOTLINE_AGI_ALLOWED_HOSTS": ",".join(self.agi_allowed_hosts),
            "HOTLINE_AGI_BUDGET_MS": str(self.agi_budget_ms),
            "HOTLINE_ASTERISK_ROOTFS": str(self.asterisk_rootfs),
            "HOTLINE_ASTERISK_INSTANCE": self.asterisk_instance, "HOTLINE_LOG_LEVEL": self.log_level,
            "HOTLINE_AUDIOSOCKET_HOST": self.audiosocket_host,
            "HOTLINE_AUDIOSOCKET_PORT": str(self.audiosocket_port),
            "HOTLINE_TRANSCRIBE_WORKERS": str(self.transcribe_workers),
            "HOTLINE_TRANSCRIBE_BACKLOG_MS": str(self.transcribe_backlog_ms),
            "HOTLINE_TRANSCRIBE_MAX_STREAMS": str(self.transcribe_max_streams),
            **dict(self.extra),
        }
        if self.vosk_model:
            env["HOTLINE_VOSK_MODEL"] = str(self.vosk_model)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def flag(self, name: str, default: bool = False) -> bool:
        """Feature flags: HOTLINE_FLAG_<NAME>=1."""
        raw = self.extra.get(f"HOTLINE_FLAG_{name.upper()}")
        return default if raw is None else parse_bool(f"HOTLINE_FLAG_{name.upper()}", raw)


def _normalise_db_url(url: str) -> str:
    """Accept the usual spellings and pick the async driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://"):]
    if url.startswith("sqlite:///"):
        url = "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    return url
