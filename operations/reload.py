"""Reload the configuration through AMI (as the least-privilege admin user) without dropping calls.

Asterisk's module reloads keep live channels: pbx_config swaps the dialplan atomically, app_queue
keeps callers waiting, res_pjsip keeps dialogs.
"""

from __future__ import annotations

import asyncio

from panoramisk import Manager

from operations.asterisk_runtime import AsteriskInstance
from operations.render import AMI_ADMIN_USER

RELOAD_MODULES = ("pbx_config", "res_pjsip", "app_queue", "features", "app_confbridge",
                  "res_musiconhold", "manager")


async def reload_via_ami(inst: AsteriskInstance, modules: tuple[str, ...] = RELOAD_MODULES,
                         timeout: float = 10.0) -> dict[str, str]:
    mgr = Manager(host=inst.site.ami_bind, port=inst.site.ami_port, username=AMI_ADMIN_USER,
                  secret=inst.secrets.ami_admin_secret, events="off", ping_delay=3600,
                  loop=asyncio.get_running_loop())
    await asyncio.wait_for(mgr.connect(), timeout)
    try:
        for _ in range(int(timeout * 10)):
            if mgr.authenticated:
                break
            await asyncio.sleep(0.1)
        else:
            raise ConnectionError("AMI admin login failed")
        result: dict[str, str] = {}
        for mod in modules:
            resp = await asyncio.wait_for(mgr.send_action({"Action": "Reload", "Module": mod}), timeout)
            result[mod] = resp.get("Response", "?") if resp else "?"
        return result
    finally:
        mgr.close()
