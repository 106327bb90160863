"""Sign-in throttling: failed logins are counted per user name and per client address
over a sliding window; past a limit the login form answers 429 (with Retry-After) without
checking the password, until the oldest failure leaves the window.

The counts live in each server process (a guesser spread over N `conveyor serve`
processes gets N times the attempts); a successful login clears its name's count.
"""

from __future__ import annotations

import time
from collections import deque

WINDOW_S = 300.0
PER_USER = 5
PER_ADDRESS = 20
_KEYS_LIMIT = 10_000


class LoginThrottle:
    def __init__(self, *, per_user: int = PER_USER, per_address: int = PER_ADDRESS,
                 window_s: float = WINDOW_S) -> None:
        self.limits = {"user": per_user, "address": per_address}
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def wait_seconds(self, user: str, address: str) -> float:
        """How long this sign-in must wait (0: it may be checked now)."""
        now = time.monotonic()
        wait = 0.0
        for key in (("user", user), ("address", address)):
            failures = self._recent(key, now)
            if len(failures) >= self.limits[key[0]]:
                wait = max(wait, failures[0] + self.window_s - now)
        return wait

    def failed(self, user: str, address: str) -> None:
        now = time.monotonic()
        if len(self._failures) > _KEYS_LIMIT:
            self._forget_old(now)
        for key in (("user", user), ("address", address)):
            self._failures.setdefault(key, deque(maxlen=max(self.limits.values()))).append(now)

    def succeeded(self, user: str) -> None:
        self._failures.pop(("user", user), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] + self.window_s <= now:
            failures.popleft()
        return failures

    def _forget_old(self, now: float) -> None:
        self._failures = {k: v for k, v in self._failures.items()
                          if v and v[-1] + self.window_s > now}
