"""The open live WebSockets of one app, so that shutting the app down closes each of them cleanly."""

from __future__ import annotations

import contextlib

from aiohttp import WSCloseCode, web


class LiveSockets:
    def __init__(self) -> None:
        self._open: set[web.WebSocketResponse] = set()

    def add(self, ws: web.WebSocketResponse) -> None:
        self._open.add(ws)

    def discard(self, ws: web.WebSocketResponse) -> None:
        self._open.discard(ws)

    def __len__(self) -> int:
        return len(self._open)

    async def close_all(self) -> None:
        for ws in list(self._open):
            with contextlib.suppress(ConnectionError):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        self._open.clear()
