"""Accounts and sessions, in the database (every app instance sees the same logins).

- Passwords are hashed with argon2id (``argon2-cffi``'s defaults, RFC 9106's second recommended
  profile); a hash made with older parameters is upgraded at the next successful login.
- A login that fails ``max_failures`` times in a row locks the account for ``lockout_s``; a locked
  account refuses even the right password until then. An unknown login costs the same hashing time
  as a known one and answers the same message, so the form does not tell which logins exist.
- A session is a random 256-bit token in an HttpOnly cookie; only its SHA-256 is stored. It ends
  after ``idle_s`` without a request or ``max_s`` after the login, at logout, when the password is
  changed and when the account is disabled. Each session has its own CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update

from app.auth import ADMIN, DEPARTMENT, OPERATOR, SUPERVISOR, Principal
from app.db import Database
from app.models import SessionRow, UserRow
from hotline.types import HANDLER_RE, SEAT_RE

PERSON_ROLES = (OPERATOR, SUPERVISOR, ADMIN, DEPARTMENT)
PLATFORMS = ("12345", "110")
LOGIN_RE = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MIN_PASSWORD = 10
MAX_PASSWORD = 256  # argon2 takes any length; a bound keeps a huge body from costing hashing time
TOUCH_EVERY_S = 60.0  # a session's seen_at is written at most this often (not on every request)


class AccountError(ValueError):
    """A request about an account that cannot be done; the message says why (shown to the admin)."""


class LoginRefused(Exception):
    """Wrong login or password, a disabled or a locked account: one message for all of them, except
    that a locked account says until when (the person must wait, not guess again)."""

    def __init__(self, message: str, locked_until: float | None = None) -> None:
        super().__init__(message)
        self.locked_until = locked_until


@dataclass(frozen=True)
class Account:
    login: str
    display_name: str
    role: str
    platform: str | None
    seat: str | None
    handler: str | None
    disabled: bool
    locked_until: float | None
    last_login_at: float | None

    def principal(self) -> Principal:
        return Principal(self.login, self.role, self.handler, platform=self.platform, seat=self.seat,
                         display_name=self.display_name, session=True)

    def to_json(self) -> dict[str, Any]:
        return {"login": self.login, "display_name": self.display_name, "role": self.role,
                "platform": self.platform, "seat": self.seat, "handler": self.handler,
                "disabled": self.disabled, "locked_until": self.locked_until,
                "last_login_at": self.last_login_at}


@dataclass(frozen=True)
class Session:
    token: str  # the cookie's value (only at login; never stored)
    csrf: str
    account: Account
    expires_at: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"a password has at most {MAX_PASSWORD} characters")
    if len(set(password)) < 4:
        raise AccountError("a password needs at least 4 different characters")


def check_binding(role: str, platform: str | None, seat: str | None, handler: str | None) -> None:
    """Operators need a platform and a seat; departments a handler; supervisors a platform (or none:
    the whole floor); admins nothing. Anything not needed must be absent."""
    if role not in PERSON_ROLES:
        raise AccountError(f"role must be one of {', '.join(PERSON_ROLES)}")
    if platform is not None and platform not in PLATFORMS:
        raise AccountError("platform must be 12345 or 110")
    if seat is not None and not SEAT_RE.fullmatch(seat):
        raise AccountError("seat must be 2-8 digits")
    if handler is not None and not HANDLER_RE.fullmatch(handler):
        raise AccountError("handler must be a site handler id ([a-z][a-z0-9_-]{1,31})")
    if role == OPERATOR and (platform is None or seat is None):
        raise AccountError("an operator is bound to a platform and a seat (--platform, --seat)")
    if role == DEPARTMENT and handler is None:
        raise AccountError("department staff are bound to a handler (--handler)")
    if role != OPERATOR and seat is not None and role != SUPERVISOR:
        raise AccountError(f"a {role} has no seat")
    if role != DEPARTMENT and handler is not None:
        raise AccountError(f"a {role} has no handler")
    if role in (ADMIN, DEPARTMENT) and platform is not None:
        raise AccountError(f"a {role} has no platform")


class AccountStore:
    def __init__(self, db: Database, *, idle_s: float = 8 * 3600, max_s: float = 16 * 3600,
                 max_failures: int = 5, lockout_s: float = 15 * 60,
                 hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.idle_s, self.max_s = idle_s, max_s
        self.max_failures, self.lockout_s = max_failures, lockout_s
        self.hasher = hasher or PasswordHasher()
        self._dummy = self.hasher.hash(secrets.token_hex(16))  # verified for unknown logins

    # --- accounts (the CLI and the admin page) -------------------------------------------------
    async def add(self, login: str, password: str, role: str, *, display_name: str | None = None,
                  platform: str | None = None, seat: str | None = None, handler: str | None = None,
                  ) -> Account:
        if not LOGIN_RE.fullmatch(login or ""):
            raise AccountError("a login is 2-32 of a-z 0-9 . _ - and starts with a letter")
        check_binding(role, platform, seat, handler)
        check_password(password)
        name = (display_name or login).strip()[:64] or login
        now = time.time()
        pw = self.hasher.hash(password)
        async with self.db.write() as conn:
            if (await conn.execute(select(UserRow.id).where(UserRow.login == login))).first():
                raise AccountError(f"login {login!r} exists")
            if seat is not None:
                taken = (await conn.execute(select(UserRow.login).where(
                    UserRow.seat == seat, UserRow.disabled.is_(False)))).scalar()
                if taken:
                    raise AccountError(f"seat {seat} is bound to {taken}")
            await conn.execute(insert(UserRow), {
                "login": login, "display_name": name, "role": role, "platform": platform, "seat": seat,
                "handler": handler, "password_hash": pw, "disabled": False, "failed_logins": 0,
                "locked_until": None, "last_login_at": None, "password_changed_at": now,
                "created_at": now, "updated_at": now})
        found = await self.get(login)
        assert found is not None
        return found

    async def get(self, login: str) -> Account | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(UserRow).where(UserRow.login == login))).mappings().first()
        return _account(row) if row else None

    async def all(self) -> list[Account]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(UserRow).order_by(UserRow.role, UserRow.login))).mappings()
            return [_account(r) for r in rows]

    async def set_password(self, login: str, password: str) -> None:
        """A new password; every session of the account ends and a lockout is lifted."""
        check_password(password)
        pw = self.hasher.hash(password)
        now = time.time()
        async with self.db.write() as conn:
            n = (await conn.execute(update(UserRow).where(UserRow.login == login).values(
                password_hash=pw, password_changed_at=now, failed_logins=0, locked_until=None,
                updated_at=now))).rowcount
            if not n:
                raise AccountError(f"no login {login!r}")
            await conn.execute(delete(SessionRow).where(SessionRow.login == login))

    async def set_disabled(self, login: str, disabled: bool) -> None:
        now = time.time()
        async with self.db.write() as conn:
            n = (await conn.execute(update(UserRow).where(UserRow.login == login).values(
                disabled=disabled, updated_at=now, failed_logins=0, locked_until=None))).rowcount
            if not n:
                raise AccountError(f"no login {login!r}")
            if disabled:
                await conn.execute(delete(SessionRow).where(SessionRow.login == login))

    # --- login ----------------------------------------------------------------------------------
    async def login(self, login: str, password: str, *, address: str | None = None,
                    agent: str | None = None, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        refused = LoginRefused("用户名或密码错误")
        if not isinstance(password, str) or not 0 < len(password) <= MAX_PASSWORD:
            raise refused
        async with self.db.read() as conn:
            row = (await conn.execute(select(UserRow).where(UserRow.login == login))).mappings().first() \
                if LOGIN_RE.fullmatch(login or "") else None
        if row is None:
            self._verify(self._dummy, password)  # the same time as a real account
            raise refused
        if row["locked_until"] and row["locked_until"] > now:
            raise LoginRefused("登录失败次数过多，账户已锁定", row["locked_until"])
        ok = self._verify(row["password_hash"], password)
        if ok and row["disabled"]:  # the right password is no reason to count a failure
            raise refused
        if not ok:
            failures = int(row["failed_logins"]) + 1
            lock = now + self.lockout_s if failures >= self.max_failures else None
            async with self.db.write() as conn:  # committed before the refusal is raised
                await conn.execute(update(UserRow).where(UserRow.id == row["id"]).values(
                    failed_logins=0 if lock else failures, locked_until=lock, updated_at=now))
            if lock:
                raise LoginRefused("登录失败次数过多，账户已锁定", lock)
            raise refused
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login_at": now,
                                  "updated_at": now}
        if self.hasher.check_needs_rehash(row["password_hash"]):
            values["password_hash"] = self.hasher.hash(password)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = now + self.max_s
        async with self.db.write() as conn:
            await conn.execute(update(UserRow).where(UserRow.id == row["id"]).values(**values))
            await conn.execute(delete(SessionRow).where(SessionRow.expires_at < now))
            await conn.execute(insert(SessionRow), {
                "id": _digest(token), "login": row["login"], "csrf": csrf, "created_at": now,
                "seen_at": now, "expires_at": expires, "address": (address or "")[:64] or None,
                "agent": (agent or "")[:128] or None})
        account = _account({**row, "last_login_at": now, "failed_logins": 0, "locked_until": None})
        return Session(token, csrf, account, expires)

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self.hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def session(self, token: str, *, now: float | None = None) -> tuple[Account, str] | None:
        """The account and CSRF token of a live session, or ``None`` (unknown, expired, disabled)."""
        if not token or len(token) > 128:
            return None
        now = time.time() if now is None else now
        sid = _digest(token)
        async with self.db.read() as conn:
            found = (await conn.execute(
                select(SessionRow, UserRow).join(UserRow, UserRow.login == SessionRow.login)
                .where(SessionRow.id == sid))).mappings().first()
        if found is None or found["disabled"]:
            return None
        if found["expires_at"] <= now or found["seen_at"] + self.idle_s <= now:
            await self.logout(token)
            return None
        if now - found["seen_at"] >= TOUCH_EVERY_S:
            async with self.db.write() as conn:
                await conn.execute(update(SessionRow).where(SessionRow.id == sid).values(seen_at=now))
        return _account(found), str(found["csrf"])

    async def logged_in(self, now: float | None = None) -> set[str]:
        """The logins with a live session now (the wallboard's "logged in")."""
        now = time.time() if now is None else now
        async with self.db.read() as conn:
            rows = await conn.execute(select(SessionRow.login).where(
                SessionRow.expires_at > now, SessionRow.seen_at > now - self.idle_s).distinct())
            return {r[0] for r in rows}

    async def logout(self, token: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(delete(SessionRow).where(SessionRow.id == _digest(token)))


def csrf_matches(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode(
        "ascii", "replace"))


def _account(row: Any) -> Account:
    return Account(row["login"], row["display_name"], row["role"], row["platform"], row["seat"],
                   row["handler"], bool(row["disabled"]), row["locked_until"], row["last_login_at"])
