"""Signed-out dashboard sessions, known to every server process through the backend.

A session cookie stays valid until it expires, so signing out must be recorded where all
`conveyor serve` processes look. The record is a named lock of the backend (`try_lock`,
the verb behind leadership), so no backend needs a new verb:

- signing out takes the lock ``dashboard-session-revoked:<session id>`` as owner
  ``revoked`` until the session would have expired anyway;
- a request of a signed-in session probes the same lock as owner ``live`` for 1 ms: the
  backend answers no while ``revoked`` holds it. All probes share that owner, so
  concurrent requests of one session never see each other as a revocation; a sign-out
  that meets a probe's millisecond tries again.

A process remembers a live answer for `cache_seconds` (1 s), so a session revoked
elsewhere ends within a second, and a page with several requests costs one probe. On
SQLite each probe is a small write and each session that made a request keeps one row
in the locks table.
"""

from __future__ import annotations

import asyncio
import time

from ..app import Conveyor
from ..errors import BackendError

PREFIX = "dashboard-session-revoked:"
REVOKED = "revoked"
LIVE = "live"
_CACHE_LIMIT = 10_000


class Revocations:
    def __init__(self, conveyor: Conveyor, *, cache_seconds: float = 1.0) -> None:
        self.conveyor = conveyor
        self.cache_seconds = cache_seconds
        self._live_until: dict[str, float] = {}
        self._revoked: dict[str, float] = {}  # this process's own sign-outs, until expiry

    async def is_revoked(self, session_id: str) -> bool:
        now = time.monotonic()
        if self._revoked.get(session_id, 0.0) > now:
            return True
        if self._live_until.get(session_id, 0.0) > now:
            return False
        await self.conveyor.aopen()
        live = await self.conveyor.backend.try_lock(PREFIX + session_id, LIVE, 1)
        if live:
            if len(self._live_until) > _CACHE_LIMIT:
                self._live_until.clear()
            self._live_until[session_id] = now + self.cache_seconds
        return not live

    async def revoke(self, session_id: str, seconds_left: float) -> None:
        """Record the sign-out until the session would have expired."""
        ttl_ms = max(int(seconds_left * 1000), 1000)
        await self.conveyor.aopen()
        for _ in range(200):  # a probe holds the lock for 1 ms at a time
            if await self.conveyor.backend.try_lock(PREFIX + session_id, REVOKED, ttl_ms):
                break
            await asyncio.sleep(0.002)
        else:
            raise BackendError("could not record the sign-out: the session lock stayed busy")
        self._live_until.pop(session_id, None)
        if len(self._revoked) > _CACHE_LIMIT:
            self._revoked = {k: v for k, v in self._revoked.items() if v > time.monotonic()}
        self._revoked[session_id] = time.monotonic() + seconds_left
