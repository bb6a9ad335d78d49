"""AMI client (panoramisk) that survives Asterisk restarts, and the one guard on what it sends.

panoramisk reconnects on a fixed delay and also after an explicit close; this wrapper adds
exponential backoff, a clean shutdown, and a hook that runs after every successful login (used to
resync live channels).

panoramisk writes ``Name: value`` lines as they are: a CR or LF inside a value ends the header and
starts another (a second action, chosen by whoever wrote the value). :func:`check_action` refuses
such an action before a byte is sent, whoever built it; :class:`GuardedManager` runs it on every
action, also the ones queued while disconnected and sent by panoramisk itself later.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from panoramisk import Manager

log = logging.getLogger(__name__)

OnLogin = Callable[[], Awaitable[None]]
OnEvent = Callable[[dict[str, str]], Awaitable[None] | None]

# A header name as Asterisk's actions spell them (Action, Channel, ExtraContext, Cause-txt).
HEADER_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
# What ends a header line or the string inside Asterisk: never inside a value.
_LINE_BREAKERS = re.compile(r"[\r\n\x00]")


class AmiHeaderRefused(ValueError):
    """An action that would not reach Asterisk as written: refused before anything is sent."""

    status = 400
    error_id = "ami_header_refused"


def check_action(action: Mapping[str, Any]) -> None:
    """Raise :class:`AmiHeaderRefused` unless every header name is a plain name and every value
    (each item of a list value such as ``Variable``) is a str or int without CR, LF or NUL.

    The log names the action and the header, never the value (it may carry a caller's number)."""
    verb = str(action.get("Action", "?"))[:32] if isinstance(action, Mapping) else "?"
    if not isinstance(action, Mapping):
        raise AmiHeaderRefused("an AMI action is a mapping of headers")
    for name, value in action.items():
        why = _refusal(name, value)
        if why:
            shown = name if isinstance(name, str) and HEADER_NAME_RE.fullmatch(name) else "<name>"
            log.warning("AMI action %r refused before sending: header %s %s", _printable(verb), shown, why)
            raise AmiHeaderRefused(f"AMI action {_printable(verb)!r}: header {shown} {why}")


def _refusal(name: object, value: object) -> str:
    if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name):
        return "has a name that is not a header name"
    items = value if isinstance(value, (list, tuple)) else (value,)
    for item in items:
        # bool is an int, and would be written "True"
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            return f"has a {type(item).__name__} value (only str and int are sent)"
        if isinstance(item, str) and (m := _LINE_BREAKERS.search(item)):
            return f"has a value with {m.group()!r} at {m.start()} of {len(item)} characters"
    return ""


def _printable(text: str) -> str:
    return _LINE_BREAKERS.sub("?", text)


class GuardedManager(Manager):  # type: ignore[misc]
    """A panoramisk Manager that checks every action (:func:`check_action`) before sending it."""

    def send_action(self, action: Any, as_list: bool | None = None, **kwargs: Any) -> Any:
        check_action({**action, **kwargs})
        return super().send_action(action, as_list=as_list, **kwargs)


class _Manager(GuardedManager):
    """panoramisk Manager with backoff and a closed flag."""

    def __init__(self, owner: AmiClient, **config: Any) -> None:
        super().__init__(**config)
        self._owner = owner

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if self._owner.closed:
            return
        if f.exception() is not None:
            self._owner._schedule_reconnect(f"connect failed: {f.exception()}")
            return
        super().connection_made(f)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        self.authenticated = False
        if self.pinger:  # type: ignore[has-type]
            self.pinger.cancel()  # type: ignore[has-type]
            self.pinger = None
        self._owner._on_lost()
        if not self._owner.closed:
            self._owner._schedule_reconnect(f"connection lost: {exc}")

    def ping(self) -> None:
        if self.protocol is not None and not self._owner.closed:
            self.pinger = self.loop.call_later(self.ping_interval, self.ping)
            self.protocol.send({"Action": "Ping"})


class AmiClient:
    def __init__(self, *, host: str, port: int, username: str, secret: str,
                 on_event: OnEvent, on_login: OnLogin | None = None,
                 min_backoff: float = 0.5, max_backoff: float = 10.0) -> None:
        self.closed = False
        self.connected = False
        self.logins = 0
        self._on_event = on_event
        self._on_login_cb = on_login
        self._backoff = min_backoff
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._reconnect: asyncio.TimerHandle | None = None
        self._login_event = asyncio.Event()
        self.manager = _Manager(self, host=host, port=port, username=username, secret=secret,
                                ping_delay=5, ping_interval=5, events="on",
                                loop=asyncio.get_running_loop(), on_login=self._logged_in)
        self.manager.register_event("*", self._dispatch)

    def _dispatch(self, _manager: Manager, event: Any) -> Awaitable[None] | None:
        return self._on_event(dict(event))

    def _logged_in(self, _manager: Manager) -> None:
        self.connected = True
        self.logins += 1
        self._backoff = self._min_backoff
        self._login_event.set()
        log.info("AMI logged in (login #%d)", self.logins)
        if self._on_login_cb is not None:
            asyncio.ensure_future(self._on_login_cb())

    def _on_lost(self) -> None:
        self.connected = False
        self._login_event.clear()
        log.warning("AMI connection lost")

    def _schedule_reconnect(self, why: str) -> None:
        if self.closed or (self._reconnect is not None and not self._reconnect.cancelled()
                           and self._reconnect.when() > asyncio.get_running_loop().time()):
            return
        delay = self._backoff
        self._backoff = min(self._backoff * 2, self._max_backoff)
        log.info("AMI %s; reconnecting in %.1fs", why, delay)
        self._reconnect = asyncio.get_running_loop().call_later(delay, self._connect)

    def _connect(self) -> None:
        if not self.closed:
            self.manager.connect()

    async def start(self, wait: float | None = None) -> None:
        self._connect()
        if wait:
            await self.wait_logged_in(wait)

    async def wait_logged_in(self, timeout: float) -> None:
        await asyncio.wait_for(self._login_event.wait(), timeout)

    async def action(self, action: dict[str, Any], *, as_list: bool | None = None,
                     timeout: float = 5.0, whole: bool = False) -> Any:
        """Send one action and wait for its answer (``whole``: with the events that follow it, such
        as an async Originate's OriginateResponse). Raises :class:`AmiHeaderRefused` (nothing sent)
        on a header that could smuggle a second action, ``ConnectionError`` when disconnected."""
        check_action(action)
        if not self.connected:
            raise ConnectionError("AMI not connected")
        resp = await asyncio.wait_for(self.manager.send_action(action, as_list=as_list), timeout)
        if as_list is None and isinstance(resp, list) and not whole:
            # panoramisk collects follow-up events for some actions (Originate): the first
            # message is the action's own response.
            return resp[0] if resp else {}
        return resp

    async def close(self) -> None:
        self.closed = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        self.manager.close()
