"""One background loop per app instance (the exchange sender, the deadline sweep): started and
stopped by the factory's ``cleanup_ctx``; ``_run`` is the subclass's loop."""

from __future__ import annotations

import asyncio


class Background:
    name = "background"
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        raise NotImplementedError
