"""Settings as one pydantic model (hotline/settings.py): the environment variables it reads, how each
value is parsed and bounded, and that nothing else in the product reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hotline.settings import REPO_ROOT, Settings, SettingsError

# The variables the README documents: renaming one breaks every deployment that sets it.
ENV_VARS = {
    "state_dir": "HOTLINE_STATE_DIR", "site_file": "HOTLINE_SITE", "conf_dir": "HOTLINE_CONF_DIR",
    "database_url": "DATABASE_URL", "redis_url": "REDIS_URL", "api_host": "HOTLINE_API_HOST",
    "api_port": "HOTLINE_API_PORT", "api_base_url": "HOTLINE_API_URL", "agi_host": "HOTLINE_AGI_HOST",
    "agi_port": "HOTLINE_AGI_PORT", "agi_allowed_hosts": "HOTLINE_AGI_ALLOWED_HOSTS",
    "agi_budget_ms": "HOTLINE_AGI_BUDGET_MS", "asterisk_rootfs": "HOTLINE_ASTERISK_ROOTFS",
    "asterisk_instance": "HOTLINE_ASTERISK_INSTANCE", "log_level": "HOTLINE_LOG_LEVEL",
    "vosk_model": "HOTLINE_VOSK_MODEL", "audiosocket_host": "HOTLINE_AUDIOSOCKET_HOST",
    "audiosocket_port": "HOTLINE_AUDIOSOCKET_PORT", "transcribe_workers": "HOTLINE_TRANSCRIBE_WORKERS",
    "transcribe_max_streams": "HOTLINE_TRANSCRIBE_MAX_STREAMS",
    "transcribe_backlog_ms": "HOTLINE_TRANSCRIBE_BACKLOG_MS",
}

# (variable, lowest, highest) for every integer setting.
INTS = [
    ("HOTLINE_API_PORT", 1, 65535), ("HOTLINE_AGI_PORT", 1, 65535), ("HOTLINE_AUDIOSOCKET_PORT", 1, 65535),
    ("HOTLINE_AGI_BUDGET_MS", 10, 60_000), ("HOTLINE_TRANSCRIBE_WORKERS", 0, 256),
    ("HOTLINE_TRANSCRIBE_MAX_STREAMS", 0, 10_000), ("HOTLINE_TRANSCRIBE_BACKLOG_MS", 100, 3_600_000),
]


def test_the_variable_names_and_defaults_are_unchanged() -> None:
    assert {k: v for k, v in Settings.env_vars().items() if k in ENV_VARS} == ENV_VARS
    s = Settings()
    assert (s.state_dir, s.site_file, s.conf_dir) == (REPO_ROOT / "var", REPO_ROOT / "site.toml",
                                                      REPO_ROOT / "asterisk_conf")
    assert (s.api_host, s.api_port, s.agi_port, s.audiosocket_port) == ("127.0.0.1", 8080, 4573, 4574)
    assert (s.agi_allowed_hosts, s.agi_budget_ms, s.log_level) == (("127.0.0.1", "::1"), 400, "INFO")
    assert (s.transcribe_workers, s.transcribe_max_streams, s.transcribe_backlog_ms) == (0, 0, 2000)
    assert (s.database_url, s.redis_url, s.vosk_model, s.extra) == ("", "", None, {})


def test_an_empty_variable_is_unset() -> None:
    assert Settings.from_env({var: "" for var in ENV_VARS.values()}) == Settings()


@pytest.mark.parametrize(("var", "lo", "hi"), INTS, ids=[v for v, _, _ in INTS])
def test_every_integer_is_parsed_and_bounded(var: str, lo: int, hi: int) -> None:
    name = next(k for k, v in Settings.env_vars().items() if v == var)
    assert getattr(Settings.from_env({var: f" {max(lo, 1)} "}), name) == max(lo, 1)
    assert getattr(Settings.from_env({var: str(hi)}), name) == hi
    for bad in (str(lo - 1), str(hi + 1), "1.5", "ten", "0x10", "1e3"):
        with pytest.raises(SettingsError) as err:
            Settings.from_env({var: bad})
        assert str(err.value).startswith(f"{var}: ") and bad in str(err.value)


def test_port_zero_is_for_tests_only() -> None:
    """A test's own Settings binds any free port; from the environment, port 0 is refused."""
    assert Settings(agi_port=0).agi_port == 0
    assert Settings().with_(api_port=0).api_port == 0
    with pytest.raises(SettingsError, match="HOTLINE_AGI_PORT: expected a port"):
        Settings.from_env({"HOTLINE_AGI_PORT": "0"})


def test_python_callers_get_the_same_checks() -> None:
    with pytest.raises(SettingsError, match="HOTLINE_API_PORT"):
        Settings().with_(api_port=True)   # a bool is not a port
    with pytest.raises(SettingsError, match="HOTLINE_AGI_BUDGET_MS"):
        Settings().with_(agi_budget_ms=5)
    with pytest.raises(SettingsError, match="no_such_setting"):
        Settings().with_(no_such_setting=1)
    with pytest.raises(ValueError, match="transcribe_workers"):
        Settings(transcribe_workers=-1)


@pytest.mark.parametrize(("raw", "level"), [("debug", "DEBUG"), (" Warning ", "WARNING"), ("ERROR", "ERROR")])
def test_log_level_is_one_of_the_logging_levels(raw: str, level: str) -> None:
    assert Settings.from_env({"HOTLINE_LOG_LEVEL": raw}).log_level == level


def test_an_unknown_log_level_is_refused() -> None:
    with pytest.raises(SettingsError, match="HOTLINE_LOG_LEVEL"):
        Settings.from_env({"HOTLINE_LOG_LEVEL": "chatty"})


def test_paths_from_the_environment_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env({"HOTLINE_STATE_DIR": "state", "HOTLINE_VOSK_MODEL": "model"})
    assert s.state_dir == tmp_path.resolve() / "state" and s.vosk_model == tmp_path.resolve() / "model"
    assert s.secrets_file == tmp_path.resolve() / "state" / "secrets.json"


def test_to_env_rebuilds_the_same_settings(tmp_path: Path) -> None:
    s = Settings.from_env({
        "HOTLINE_STATE_DIR": str(tmp_path), "DATABASE_URL": "postgres://u@db/hotline",
        "REDIS_URL": "redis://127.0.0.1:6390/0", "HOTLINE_API_URL": "http://api:9000/",
        "HOTLINE_AGI_ALLOWED_HOSTS": "10.0.0.1,::1", "HOTLINE_VOSK_MODEL": str(tmp_path / "m"),
        "HOTLINE_TRANSCRIBE_WORKERS": "3", "HOTLINE_FLAG_TRANSCRIBE": "on",
    })
    env = s.to_env()
    assert Settings.from_env(env) == s
    assert env["DATABASE_URL"] == "postgresql+asyncpg://u@db/hotline"
    assert env["HOTLINE_FLAG_TRANSCRIBE"] == "on"


def test_to_env_leaves_out_what_is_unset() -> None:
    env = Settings().to_env()
    assert "DATABASE_URL" not in env and "REDIS_URL" not in env and "HOTLINE_VOSK_MODEL" not in env
    assert env["HOTLINE_API_URL"] == "http://127.0.0.1:8080"  # children reach this API


def test_settings_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        Settings().api_port = 1  # type: ignore[misc]


PRODUCT = ("hotline", "agi", "call_flows", "transcription", "routing", "app", "operations")


def _reads_environment(tree: ast.AST) -> list[int]:
    """Lines calling os.getenv, os.environ.get/[...] or os.environ.setdefault: reading settings.
    Copying the whole environment for a child process (os.environ.items()) is not reading one."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in ("getenv", "getenvb"):
            lines.append(node.lineno)
        is_environ = isinstance(node, ast.Attribute | ast.Subscript) and isinstance(
            getattr(node, "value", None), ast.Attribute) and getattr(node.value, "attr", "") == "environ"
        if is_environ and (isinstance(node, ast.Subscript) or node.attr in ("get", "setdefault", "pop")):
            lines.append(node.lineno)
    return sorted(lines)


def test_nothing_else_in_the_product_reads_the_environment() -> None:
    offenders = []
    for package in PRODUCT:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if path == REPO_ROOT / "hotline" / "settings.py":
                continue
            for line in _reads_environment(ast.parse(path.read_text(encoding="utf-8"))):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}")
    assert offenders == [], "read settings through hotline.settings.Settings (STYLE rule 7)"


def test_the_environment_check_finds_a_reader() -> None:
    tree = ast.parse("import os\na = os.getenv('X')\nb = os.environ.get('Y')\nc = os.environ['Z']\n"
                     "d = dict(os.environ.items())\n")
    assert _reads_environment(tree) == [2, 3, 4]
