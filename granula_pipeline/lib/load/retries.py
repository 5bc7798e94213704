"""How long to wait before trying a failed step again: exponential backoff, jittered, capped."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """`max_retries` more attempts after the first; before retry n (from 1), about
    `base * 2**(n-1)` seconds, between half and one and a half times that, at most `cap`."""

    max_retries: int
    base: float
    cap: float

    def wait_before(self, retry: int) -> float | None:
        """Seconds to wait before retry `retry`; None when no retry is left."""
        if retry > self.max_retries:
            return None
        wait = self.base * 2 ** (retry - 1) * (0.5 + random.random())
        return float(max(0.0, min(self.cap, wait)))
