"""Failed sign-ins throttled: a moving window of failures by username and by address, so
guessing one person's password or trying many people's from one place both stop."""

from __future__ import annotations

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter


class Throttle:
    def __init__(self, per_person: str = "5/15minutes", per_address: str = "30/15minutes") -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._person: RateLimitItem = parse(per_person)
        self._address: RateLimitItem = parse(per_address)

    async def allowed(self, username: str, address: str) -> bool:
        """Whether another attempt may be tried now (failures left in both windows)."""
        return await self._limiter.test(
            self._person, "person", username
        ) and await self._limiter.test(self._address, "address", address)

    async def failed(self, username: str, address: str) -> None:
        await self._limiter.hit(self._person, "person", username)
        await self._limiter.hit(self._address, "address", address)
