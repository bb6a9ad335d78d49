"""Secrets, the database and the rendered Asterisk files belong to the service user only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from app.db import make_engine
from hotline.private import private_dir, private_file, write_private
from hotline.secrets import ensure_secrets
from hotline.site import load_site
from operations.render import render

REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def loose_umask() -> object:
    """The usual 022 umask: what a file gets when nobody chooses its mode."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_state_dir_and_secrets_file_are_private(tmp_path: Path) -> None:
    state = tmp_path / "var"
    ensure_secrets(state / "secrets.json", ["1201"])
    assert mode(state) == 0o700
    assert mode(state / "secrets.json") == 0o600
    assert [p.name for p in state.iterdir()] == ["secrets.json"]  # no temp file left


def test_an_old_loose_install_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / "var"
    state.mkdir(mode=0o755)
    (state / "secrets.json").write_text("{}")
    (state / "secrets.json").chmod(0o644)
    (state / "secrets.json.tmp").write_text("stale")
    (state / "secrets.json.tmp").chmod(0o666)
    ensure_secrets(state / "secrets.json", ["1201"])
    assert (mode(state), mode(state / "secrets.json")) == (0o700, 0o600)


def test_a_shared_sticky_directory_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    private_dir(shared)
    assert mode(shared) == 0o1777


def test_write_private_never_exposes_the_text(tmp_path: Path) -> None:
    p = tmp_path / "x.conf"
    write_private(p, "secret = 1")
    assert mode(p) == 0o600 and p.read_text() == "secret = 1"
    p.chmod(0o644)
    write_private(p, "secret = 2")
    assert mode(p) == 0o600 and p.read_text() == "secret = 2"


def test_private_file_creates_and_tightens(tmp_path: Path) -> None:
    p = tmp_path / "f"
    private_file(p)
    assert mode(p) == 0o600 and p.read_bytes() == b""
    p.write_text("data")
    p.chmod(0o664)
    private_file(p)
    assert mode(p) == 0o600 and p.read_text() == "data"


async def test_the_sqlite_database_and_its_wal_are_private(tmp_path: Path) -> None:
    db = tmp_path / "var" / "hotline.db"
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        side = [db.with_name(db.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in side)  # WAL mode: the files an attacker would read
        assert [mode(p) for p in (db, *side)] == [0o600, 0o600, 0o600]
        assert mode(db.parent) == 0o700
    finally:
        await engine.dispose()


async def test_an_existing_loose_database_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "hotline.db"
    for p in (db, db.with_name("hotline.db-wal")):
        p.write_bytes(b"")
        p.chmod(0o644)
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    await engine.dispose()
    assert mode(db) == 0o600 and mode(db.with_name("hotline.db-wal")) == 0o600


def test_rendered_files_holding_secrets_are_private(tmp_path: Path) -> None:
    site = load_site(REPO / "site.toml")
    secrets = ensure_secrets(tmp_path / "var" / "secrets.json", site.all_seats)
    render(REPO / "asterisk_conf", tmp_path / "etc", site, secrets, agi_host="127.0.0.1", agi_port=4573)
    gen = tmp_path / "etc" / "generated"
    for name in ("manager_users.conf", "pjsip_seats.conf"):
        assert mode(gen / name) == 0o600, name
    assert secrets.ami_secret in (gen / "manager_users.conf").read_text()
    assert not list(gen.glob("*.tmp"))
