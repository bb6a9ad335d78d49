"""The one place that reads the environment.

Everything else receives a :class:`Settings` instance (constructor or app key); nothing else calls
``os.getenv``. Each setting is a field of one pydantic model whose alias is its environment
variable: values from the environment are parsed (booleans from words, never ``bool(str)``;
integers bounded), and a bad one is a :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
)

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


# --- how a variable's text becomes a value (Python callers pass the value itself) ----------------

def _int_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value.strip())  # "4573.0" and "0x10" are refused, as a typo would be
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
    return value


def _path_text(value: Any) -> Any:
    return Path(value).resolve() if isinstance(value, str) else value


def _csv_text(value: Any) -> Any:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if isinstance(value, str) else value


def _normalise_db_url(url: Any) -> Any:
    """Accept the usual spellings and pick the async driver."""
    if not isinstance(url, str):
        return url
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://"):]
    if url.startswith("sqlite:///"):
        url = "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    return url


EnvInt = Annotated[int, BeforeValidator(_int_text), Field(strict=True)]  # bounds: on each field
EnvPath = Annotated[Path, BeforeValidator(_path_text)]
EnvStr = Annotated[str, Field(strict=True, max_length=2048)]


def _port(value: int, info: ValidationInfo) -> int:
    # Port 0 (any free port) is for a test's own Settings; from the environment it is a mistake:
    # the workers could never find a server listening on a random port.
    if value == 0 and info.context and info.context.get("environment"):
        raise ValueError("expected a port (1..65535), got 0")
    return value


EnvPort = Annotated[EnvInt, Field(ge=0, le=65535), AfterValidator(_port)]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v)]


def _env(default: Any, var: str, *, ge: int | None = None, le: int | None = None) -> Any:
    return Field(default, validation_alias=var, ge=ge, le=le)


class Settings(BaseModel):
    """Process-wide settings. Defaults are the embedded single-machine setup."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    state_dir: EnvPath = _env(REPO_ROOT / "var", "HOTLINE_STATE_DIR")
    site_file: EnvPath = _env(REPO_ROOT / "site.toml", "HOTLINE_SITE")
    conf_dir: EnvPath = _env(REPO_ROOT / "asterisk_conf", "HOTLINE_CONF_DIR")
    # empty: SQLite file in state_dir
    database_url: Annotated[EnvStr, BeforeValidator(_normalise_db_url)] = _env("", "DATABASE_URL")
    redis_url: EnvStr = _env("", "REDIS_URL")  # empty: `hotline up` starts a redis-server on a free port
    # the one Redis client of each process: at most this many connections (hotline/redis_client.py)
    redis_max_connections: EnvInt = _env(32, "HOTLINE_REDIS_MAX_CONNECTIONS", ge=2, le=10_000)
    # live WebSockets (app/transcripts/sockets.py): per app process, per API token, and the messages
    # one socket may have waiting before it is closed as too slow (4008)
    live_max_sockets: EnvInt = _env(2000, "HOTLINE_LIVE_MAX_SOCKETS", ge=1, le=1_000_000)
    live_max_per_token: EnvInt = _env(200, "HOTLINE_LIVE_MAX_PER_TOKEN", ge=1, le=1_000_000)
    live_queue_max: EnvInt = _env(1000, "HOTLINE_LIVE_QUEUE_MAX", ge=10, le=1_000_000)
    api_host: EnvStr = _env("127.0.0.1", "HOTLINE_API_HOST")
    api_port: EnvPort = _env(8080, "HOTLINE_API_PORT")
    # where AGI/AMI workers reach the API; empty: http://api_host:api_port
    api_base_url: Annotated[EnvStr, BeforeValidator(lambda v: v.rstrip("/") if isinstance(v, str) else v)] = (
        _env("", "HOTLINE_API_URL"))
    agi_host: EnvStr = _env("127.0.0.1", "HOTLINE_AGI_HOST")
    agi_port: EnvPort = _env(4573, "HOTLINE_AGI_PORT")
    agi_allowed_hosts: Annotated[tuple[EnvStr, ...], BeforeValidator(_csv_text)] = (
        _env(("127.0.0.1", "::1"), "HOTLINE_AGI_ALLOWED_HOSTS"))
    # intake answers with defaults when its work takes longer than this
    agi_budget_ms: EnvInt = _env(400, "HOTLINE_AGI_BUDGET_MS", ge=10, le=60_000)
    asterisk_rootfs: EnvPath = _env(Path("/var/cache/hotline/rootfs"), "HOTLINE_ASTERISK_ROOTFS")
    asterisk_instance: EnvStr = _env("default", "HOTLINE_ASTERISK_INSTANCE")
    log_level: LogLevel = _env("INFO", "HOTLINE_LOG_LEVEL")
    # text, or json: one JSON object per line (hotline/logs.py)
    log_format: Literal["text", "json"] = _env("text", "HOTLINE_LOG_FORMAT")
    # Live transcription: the Vosk model directory (empty: the demo model package when installed),
    # where the transcriber takes Asterisk's AudioSocket streams, and its decoding pool size.
    vosk_model: EnvPath | None = _env(None, "HOTLINE_VOSK_MODEL")
    audiosocket_host: EnvStr = _env("127.0.0.1", "HOTLINE_AUDIOSOCKET_HOST")
    audiosocket_port: EnvPort = _env(4574, "HOTLINE_AUDIOSOCKET_PORT")
    # 0: one per CPU core
    transcribe_workers: EnvInt = _env(0, "HOTLINE_TRANSCRIBE_WORKERS", ge=0, le=256)
    # 0: two per core (bench/bench_transcribe.py: 4 in real time on 2)
    transcribe_max_streams: EnvInt = _env(0, "HOTLINE_TRANSCRIBE_MAX_STREAMS", ge=0, le=10_000)
    # audio a stream may have waiting for decoding; beyond it, dropped
    transcribe_backlog_ms: EnvInt = _env(2000, "HOTLINE_TRANSCRIBE_BACKLOG_MS", ge=100, le=3_600_000)
    # Where the prompts and a callback's spoken reply are written (empty: state_dir/sounds), and the
    # same directory as Asterisk sees it (empty: the same path; the stack's chroot sets both).
    sounds_dir: EnvPath | None = _env(None, "HOTLINE_SOUNDS_DIR")
    asterisk_sounds_dir: EnvStr = _env("", "HOTLINE_ASTERISK_SOUNDS_DIR")
    # the callback scheduler's tick (app/callbacks/): how soon a due task is seen
    callback_tick_ms: EnvInt = _env(500, "HOTLINE_CALLBACK_TICK_MS", ge=20, le=60_000)
    # The console's logins (app/accounts/): a session ends after this many idle minutes or hours in
    # all; this many wrong passwords in a row lock the account for the lockout's minutes.
    session_idle_min: EnvInt = _env(480, "HOTLINE_SESSION_IDLE_MIN", ge=1, le=10_080)
    session_max_h: EnvInt = _env(16, "HOTLINE_SESSION_MAX_H", ge=1, le=720)
    login_max_failures: EnvInt = _env(5, "HOTLINE_LOGIN_MAX_FAILURES", ge=1, le=100)
    login_lockout_min: EnvInt = _env(15, "HOTLINE_LOGIN_LOCKOUT_MIN", ge=1, le=10_080)
    extra: dict[str, str] = Field(default_factory=dict)  # HOTLINE_FLAG_* (see flag())

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.state_dir / 'hotline.db'}"

    @property
    def effective_api_base_url(self) -> str:
        return self.api_base_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def cookie_secure(self) -> bool:
        """Session cookies are ``Secure`` unless the console is served over plain HTTP (loopback,
        tests); a site serving it to desks puts TLS in front and sets ``HOTLINE_API_BASE_URL``."""
        return not self.effective_api_base_url.startswith("http://")

    @property
    def effective_sounds_dir(self) -> Path:
        return self.sounds_dir or self.state_dir / "sounds"

    @property
    def effective_asterisk_sounds_dir(self) -> str:
        return self.asterisk_sounds_dir or str(self.effective_sounds_dir)

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.json"

    def with_(self, **changes: object) -> Settings:
        """A copy with some settings changed, validated as the environment's values are."""
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise SettingsError(_describe(exc)) from None

    @classmethod
    def env_vars(cls) -> dict[str, str]:
        """Field name -> the environment variable that sets it."""
        return {name: str(f.validation_alias) for name, f in cls.model_fields.items() if f.validation_alias}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        # An empty variable is unset (the default applies), as a shell's `X= cmd` means.
        values: dict[str, Any] = {var: env[var] for var in cls.env_vars().values() if env.get(var)}
        values["extra"] = {k: v for k, v in env.items() if k.startswith("HOTLINE_FLAG_")}
        try:
            return cls.model_validate(values, context={"environment": True})
        except ValidationError as exc:
            raise SettingsError(_describe(exc)) from None

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` rebuild these settings (for child processes)."""
        env: dict[str, str] = {}
        for name, var in self.env_vars().items():
            value = getattr(self, name)
            if value is None or value == "":
                continue
            env[var] = ",".join(value) if isinstance(value, tuple) else str(value)
        env["HOTLINE_API_URL"] = self.effective_api_base_url
        env.update(self.extra)
        return env

    def flag(self, name: str, default: bool = False) -> bool:
        """Feature flags: HOTLINE_FLAG_<NAME>=1."""
        raw = self.extra.get(f"HOTLINE_FLAG_{name.upper()}")
        return default if raw is None else parse_bool(f"HOTLINE_FLAG_{name.upper()}", raw)


def _describe(exc: ValidationError) -> str:
    """``HOTLINE_API_PORT: Input should be less than or equal to 65535 (got '65536')``, each problem."""
    aliases = Settings.env_vars()
    out = []
    for err in exc.errors(include_url=False):
        head = str(err["loc"][0]) if err["loc"] else "settings"
        var = aliases.get(head, head)  # a Python caller's field name -> its variable
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] != "value_error":
            msg += f" (got {err.get('input')!r:.80})"
        out.append(f"{var}: {msg}")
    return "; ".join(out)
