"""Memory in flight, bounded by bytes of decoded pixels rather than by image count."""

from __future__ import annotations

import threading


class ByteBudget:
    """A counting semaphore in bytes. One request larger than the whole budget is let in alone.

    ``peak`` is the most ever held at once, for benchmarks and tests.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()

    def _fits(self, n: int) -> bool:
        return self.used == 0 or self.used + n <= self.limit

    def _take(self, n: int) -> None:
        self.used += n
        self.peak = max(self.peak, self.used)

    def try_acquire(self, n: int) -> bool:
        """Take ``n`` bytes if they fit now."""
        with self._cond:
            if not self._fits(n):
                return False
            self._take(n)
            return True

    def acquire(self, n: int, stop: threading.Event) -> bool:
        """Wait until ``n`` bytes fit; False if ``stop`` is set first."""
        with self._cond:
            while not self._fits(n):
                if stop.is_set():
                    return False
                self._cond.wait(0.1)
            self._take(n)
            return True

    def release(self, n: int) -> None:
        if n:
            with self._cond:
                self.used -= n
                self._cond.notify_all()
