"""Who signs with which key and which transport reaches each platform, from the site and secrets.

An installation holding both platforms (一体化联动工作平台) delivers between them through its own
receiver, signed with the ``local`` key: the same verification and idempotency as between two
installations, without the network hop.
"""

from __future__ import annotations

from app.errors import ApiError
from app.exchange.outbox import Delivery, HttpTransport
from app.exchange.receiver import Receiver
from hotline.secrets import LOCAL_EXCHANGE, Secrets
from hotline.site import Site


class ExchangeKeys:
    def __init__(self, site: Site, secrets: Secrets) -> None:
        self.local = {p.value for p in site.exchange.platforms}
        self.peers = {p.value for p in site.exchange.peers}
        self.secrets = secrets

    def __call__(self, platform: str) -> str | None:
        """The key shared with ``platform`` (a sender to verify, or a recipient to sign for)."""
        if platform in self.local:
            return self.secrets.exchange_keys.get(LOCAL_EXCHANGE)
        return self.secrets.exchange_keys.get(platform) if platform in self.peers else None


class Transport:
    """Local platforms through the receiver in this process; peers over HTTP."""

    def __init__(self, site: Site, receiver: Receiver) -> None:
        self.local = {p.value for p in site.exchange.platforms}
        self.receiver = receiver
        self.http = HttpTransport(
            {p.value: t.url for p, t in site.exchange.peers.items()},
            {p.value: t.timeout_s for p, t in site.exchange.peers.items()},
        )

    async def __call__(self, peer: str, headers: dict[str, str], body: bytes) -> Delivery:
        if peer not in self.local:
            return await self.http(peer, headers, body)
        try:
            return Delivery(200, await self.receiver.receive(headers, body))
        except ApiError as exc:
            return Delivery(exc.status_code, exc.to_json(), exc.id)

    async def close(self) -> None:
        await self.http.close()


def retry_ceiling(site: Site) -> dict[str, float]:
    """The backoff ceiling towards each platform (this installation's own: 5 s)."""
    return {p.value: 5.0 for p in site.exchange.platforms} | {
        p.value: t.retry_max_s for p, t in site.exchange.peers.items()}
