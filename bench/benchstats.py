"""Percentiles and summaries shared by the bench scripts (one definition for all of them)."""

from __future__ import annotations

import statistics


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank on the sorted values)."""
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def summary(xs: list[float], digits: int = 2) -> dict[str, float]:
    """Median, p99, min, mean and max of one series."""
    return {
        "p50": round(statistics.median(xs), digits),
        "p99": round(pct(xs, 99), digits),
        "min": round(min(xs), digits),
        "mean": round(statistics.fmean(xs), digits),
        "max": round(max(xs), digits),
    }


def ratio(ours: list[float], floor: list[float], digits: int = 2) -> dict[str, float]:
    """Ours / floor at the median and at the p99 (both series from the same run)."""
    return {
        "p50": round(statistics.median(ours) / statistics.median(floor), digits),
        "p99": round(pct(ours, 99) / pct(floor, 99), digits),
    }
