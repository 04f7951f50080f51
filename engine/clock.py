"""The one clock of the engine, injectable for tests.

SpiffWorkflow 3.2.0 reads ``datetime.now(timezone.utc)`` inside its timer module to
decide whether a timer has fired. ``install`` points that module's ``datetime`` at a
subclass whose ``now`` asks the current clock, so that a test moves time by calling
``ManualClock.advance`` instead of sleeping.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _spiff_timer


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = instant.astimezone(UTC)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self._now = self._now + (delta or timedelta(**kwargs))
        return self._now


SYSTEM_CLOCK = Clock()
_current: contextvars.ContextVar[Clock] = contextvars.ContextVar("clock", default=SYSTEM_CLOCK)
_default: list[Clock] = [SYSTEM_CLOCK]


def current() -> Clock:
    clock = _current.get()
    return _default[0] if clock is SYSTEM_CLOCK else clock


def now() -> datetime:
    """The current instant, aware, in UTC."""
    return current().now()


def set_default(clock: Clock) -> None:
    """Use ``clock`` in every thread that has not chosen its own (tests, benchmarks)."""
    _default[0] = clock


@contextlib.contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)


class _ClockedDatetime(datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: D102 - same contract as datetime.now
        instant = now()
        return instant.astimezone(tz) if tz is not None else instant.astimezone().replace(
            tzinfo=None
        )


def install() -> None:
    """Make SpiffWorkflow's timers read the engine clock (idempotent)."""
    _spiff_timer.datetime = _ClockedDatetime


install()
