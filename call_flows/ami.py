"""AMI client (panoramisk) that survives Asterisk restarts.

panoramisk reconnects on a fixed delay and also after an explicit close; this wrapper adds
exponential backoff, a clean shutdown, and a hook that runs after every successful login (used to
resync live channels).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from panoramisk import Manager

log = logging.getLogger(__name__)

OnLogin = Callable[[], Awaitable[None]]
OnEvent = Callable[[dict[str, str]], Awaitable[None] | None]


class _Manager(Manager):  # type: ignore[misc]
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
                     timeout: float = 5.0) -> Any:
        if not self.connected:
            raise ConnectionError("AMI not connected")
        resp = await asyncio.wait_for(self.manager.send_action(action, as_list=as_list), timeout)
        if as_list is None and isinstance(resp, list):
            # panoramisk collects follow-up events for some actions (Originate): the first
            # message is the action's own response.
            return resp[0] if resp else {}
        return resp

    async def close(self) -> None:
        self.closed = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        self.manager.close()
