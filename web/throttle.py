"""Slowing, then refusing, sign-ins for a username after repeated failures.

After ``SLOW_AFTER`` failures within the window each further attempt must wait
longer than the last (5 s, 10 s, 20 s, ...); at ``MAX_FAILURES`` the username is
blocked for ``LOCKOUT``. Waiting is asked of the caller (a 429 with the time left),
never done by sleeping in the server, so slowed attempts cost the server nothing.

The counts live in memory, per process: with N gunicorn workers an attacker gets up
to N times the limit, and a restart forgets them. Acceptable for now; a shared store
(a table) is the fix when that matters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from engine import clock

MAX_FAILURES = 5
SLOW_AFTER = 2
FIRST_DELAY = timedelta(seconds=5)
WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
_PRUNE_ABOVE = 10_000


class LoginThrottle:
    def __init__(self, max_failures: int = MAX_FAILURES, window: timedelta = WINDOW,
                 lockout: timedelta = LOCKOUT, now: Callable[[], datetime] = clock.now):
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self._now = now
        self._failures: dict[str, list[datetime]] = {}
        self._locked_until: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def locked_until(self, username: str) -> datetime | None:
        """When sign-ins for ``username`` are allowed again, or None if they are now."""
        with self._lock:
            until = self._locked_until.get(username)
            if until is not None and until <= self._now():
                del self._locked_until[username]
                return None
            return until

    def wait_until(self, username: str) -> datetime | None:
        """Before when the next attempt for ``username`` is refused as too soon, if so."""
        now = self._now()
        with self._lock:
            recent = [t for t in self._failures.get(username, []) if now - t < self.window]
        if len(recent) < SLOW_AFTER:
            return None
        allowed = recent[-1] + FIRST_DELAY * 2 ** (len(recent) - SLOW_AFTER)
        return allowed if allowed > now else None

    def failed(self, username: str) -> datetime | None:
        """Count a failure; return the end of the lock-out if this one started it."""
        now = self._now()
        with self._lock:
            recent = [t for t in self._failures.get(username, []) if now - t < self.window]
            recent.append(now)
            if len(recent) >= self.max_failures:
                self._failures.pop(username, None)
                self._locked_until[username] = now + self.lockout
                return now + self.lockout
            self._failures[username] = recent
            if len(self._failures) > _PRUNE_ABOVE:
                self._prune(now)
            return None

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)

    def _prune(self, now: datetime) -> None:
        """Forget usernames with no recent failure (bounds memory under random names)."""
        for name in [n for n, ts in self._failures.items() if now - ts[-1] >= self.window]:
            del self._failures[name]
        for name in [n for n, until in self._locked_until.items() if until <= now]:
            del self._locked_until[name]
