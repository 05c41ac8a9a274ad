"""Wall-clock timing of several workloads side by side (interleaved), robust to machine noise."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def time_interleaved(
    steps: dict[str, Callable[[], object]], *, warmup: int = 1, repeats: int = 3
) -> dict[str, list[float]]:
    """Run every step ``warmup`` times, then ``repeats`` rounds of one call each; return seconds.

    Rounds alternate the order of the steps (forward, then reversed), so a slow patch of a busy
    machine hits every step about equally and ratios between steps stay meaningful.
    """
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """Return ``{median_ms, min_ms, max_ms}`` of a list of durations in seconds."""
    return {
        "median_ms": 1000 * statistics.median(seconds),
        "min_ms": 1000 * min(seconds),
        "max_ms": 1000 * max(seconds),
    }
