"""Counters with a time window, for sign-in throttling: atomic in Redis, in-process otherwise."""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis

__all__ = ["MemoryThrottle", "RedisThrottle", "Throttle"]


class Throttle(Protocol):
    async def count(self, key: str) -> int: ...

    async def hit(self, key: str, window_seconds: int) -> int:
        """Add one to `key`; the count resets `window_seconds` after its first hit."""
        ...

    async def reset(self, key: str) -> None: ...


class MemoryThrottle:
    """Serves one process: enough for the SQLite default, not for replicas."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}

    async def count(self, key: str) -> int:
        value, expires = self._counts.get(key, (0, 0.0))
        return value if expires > time.monotonic() else 0

    async def hit(self, key: str, window_seconds: int) -> int:
        now = time.monotonic()
        value, expires = self._counts.get(key, (0, 0.0))
        if expires <= now:
            value, expires = 0, now + window_seconds
        self._counts[key] = (value + 1, expires)
        if len(self._counts) > 100_000:  # bound memory under a flood of distinct keys
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        return value + 1

    async def reset(self, key: str) -> None:
        self._counts.pop(key, None)


class RedisThrottle:
    """Shared by every replica: `INCR` and `EXPIRE NX` in one round trip."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self._prefix = f"{namespace}:throttle:"

    async def count(self, key: str) -> int:
        value = await self._redis.get(self._prefix + key)
        return int(value or 0)

    async def hit(self, key: str, window_seconds: int) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._prefix + key)
            pipe.expire(self._prefix + key, window_seconds, nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
