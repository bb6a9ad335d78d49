"""What the admin page's Asterisk buttons need from the process that runs Asterisk.

``hotline up`` (operations) hands an implementation to :func:`app.factory.create_app`; the app only
knows this protocol, so it never imports the operations layer. The API run alone has none, and the
buttons answer 503 ``admin_ops_unavailable``.
"""

from __future__ import annotations

from typing import Protocol


class AdminOps(Protocol):
    def check_dialplan(self) -> list[str]:
        """Lint and load the dialplan in a throwaway Asterisk: the problems found (none: OK). Blocking."""
        ...

    async def reload(self) -> dict[str, str]:
        """Re-render the configuration and reload the dialplan and modules: module -> Asterisk's answer."""
        ...
