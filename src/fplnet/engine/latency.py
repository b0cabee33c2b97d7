"""Latency statistics: one definition of the percentiles every command reports
(``fplnet benchmark``, ``fplnet predict``, scripts/gpu_speed.py)."""
from __future__ import annotations

import statistics
from typing import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` (0..1) of the sorted values, nearest rank: ``percentile(v, 0.9)``
    is the 90th percentile. No interpolation, so it is always a measured value."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summarize_ms(times_ms: Sequence[float]) -> dict:
    """Median, 90th percentile and minimum of a list of times in milliseconds."""
    return {"median": statistics.median(times_ms), "p90": percentile(times_ms, 0.9), "min": min(times_ms)}
