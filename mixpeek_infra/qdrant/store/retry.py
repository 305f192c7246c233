"""Bounded retries of transient failures (the server store's calls)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    deadline_s: float,
    describe: Callable[[BaseException, int, float], Exception],
    max_attempts: int = 6,
    first_delay: float = 0.2,
    max_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn`, retrying transient failures with bounded exponential backoff.

    Gives up after `max_attempts` or once `deadline_s` seconds have passed, raising
    `describe(last_error, attempts, elapsed)`; non-transient errors propagate at once.
    """
    start = time.monotonic()
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc):
                raise
            elapsed = time.monotonic() - start
            remaining = deadline_s - elapsed
            if attempt >= max_attempts or remaining <= 0:
                raise describe(exc, attempt, elapsed) from None
            sleep(min(delay, max_delay, max(remaining, 0.0)))
            delay *= 2


__all__ = ["retry"]
