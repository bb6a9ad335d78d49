"""The one way a process of ours opens Redis: one client per process, on a bounded pool.

Every process (the API with the AMI listener and the media taps in `hotline up`, the FastAGI server,
the transcriber, a classic-AGI run) makes exactly one client here and hands it to each part. The
pool holds at most ``max_connections`` (``HOTLINE_REDIS_MAX_CONNECTIONS``); a command that finds
them all busy waits up to ``timeout_s`` for one to come back rather than failing at once with redis-py's
``Too many connections`` or opening a connection per concurrent task (which is how 100 WebSockets or a
burst of AMI events used to take Redis away from everything else). The live WebSockets do not take
connections from it per socket: one subscription per app process serves them all
(:mod:`app.transcripts.sockets`).

Replies are decoded to ``str``. Commands time out after ``timeout_s``; one quick retry covers a
connection Redis closed while idle.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

DEFAULT_MAX_CONNECTIONS = 32


def connect(url: str, *, max_connections: int = DEFAULT_MAX_CONNECTIONS, timeout_s: float = 1.0) -> Redis:
    """A client for ``url`` whose pool never holds more than ``max_connections`` connections."""
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,  # how long a command waits for a free connection
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1),
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes both


def pool_stats(client: Redis) -> dict[str, int]:
    """How many connections the client's pool holds and how many are in use (for ``/ready``)."""
    pool = client.connection_pool
    in_use = len(getattr(pool, "_in_use_connections", ()))
    available = len(getattr(pool, "_available_connections", ()))
    return {"max": int(pool.max_connections), "in_use": in_use, "open": in_use + available}
