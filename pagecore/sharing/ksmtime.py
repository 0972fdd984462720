"""KSM over time: the time to converge, and ksmd's scan cost calibrated on a real run.

Two small pure pieces shared by the real-KSM check (:mod:`pagecore.qemu.ksmcheck`) and anything
that reports "how long until KSM's savings appear":

* :func:`time_to_fraction` — the time a counter first reaches a fraction (default 90 %) of its
  steady value (its last sample), linearly interpolated between samples;
* :class:`ScanCost` / :func:`calibrate_scan_cost` — ksmd's wake-up period modelled as
  ``sleep_millisecs + wakeup_overhead_ms + pages_to_scan · cpu_us_per_page``: the CPU ksmd spends
  per page visited (from its ``/proc/PID/schedstat`` run time over ``pages_scanned``) and a fixed
  cost per wake-up (timer rounding to jiffies, wake-up latency, run-queue wait), both fitted on
  one measured run. The emulator's time model (:class:`~pagecore.sharing.ksm.KsmSettings`) has one
  per-page term, so :meth:`ScanCost.scan_us_per_page` folds the per-wake-up cost into it for a
  given ``pages_to_scan`` (every wake-up visits exactly ``pages_to_scan`` pages): a cost fitted
  on one setting predicts another. Without ksmd's CPU time — or by choice — the whole time
  beyond the sleeps is charged per page (``method="period"``): on a loaded host most of it is
  ksmd (nice 5) waiting for a CPU while runnable, which grows with the work of each wake-up
  rather than with the number of wake-ups (measured on the real-KSM check: README, "Sharing
  over time").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def time_to_fraction(t, values, fraction: float = 0.9) -> float:
    """The first time ``values`` reaches ``fraction`` of its steady (last) value.

    Parameters
    ----------
    t, values : array-like, same length
        Sample times (non-decreasing) and a counter sampled at those times (e.g.
        ``pages_sharing``); the last sample is taken as the steady state.
    fraction : float
        In (0, 1].

    Returns
    -------
    float
        The time, interpolated linearly between the last sample below the target and the first
        at or above it; ``t[0]`` if the first sample already reaches it; ``nan`` for no samples.
        A steady value ≤ 0 (nothing to converge to) gives ``t[0]``.
    """
    t = np.asarray(t, np.float64)
    v = np.asarray(values, np.float64)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"t and values must be 1-D of equal length, got {t.shape} and {v.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    if len(t) == 0:
        return math.nan
    if len(t) > 1 and np.any(np.diff(t) < 0):
        raise ValueError("sample times must be non-decreasing")
    target = fraction * v[-1]
    if v[-1] <= 0 or v[0] >= target:
        return float(t[0])
    i = int(np.argmax(v >= target))
    lo, hi = v[i - 1], v[i]
    return float(t[i - 1] + (target - lo) / (hi - lo) * (t[i] - t[i - 1]))


@dataclass(frozen=True)
class ScanCost:
    """ksmd's time per wake-up beyond ``sleep_millisecs`` (see the module docstring)."""

    cpu_us_per_page: float
    wakeup_overhead_ms: float
    #: how the cost was found ("schedstat": CPU per page measured, overhead the rest of the
    #: period; "period": no CPU time available, the whole excess period charged per page)
    method: str = "schedstat"

    def period_ms(self, pages_to_scan: int, sleep_millisecs: float) -> float:
        """Predicted wall time of one wake-up (visit ``pages_to_scan`` pages, then sleep)."""
        return sleep_millisecs + self.wakeup_overhead_ms + pages_to_scan * self.cpu_us_per_page / 1000.0

    def scan_us_per_page(self, pages_to_scan: int) -> float:
        """The emulator's ``KsmSettings.scan_us_per_page`` for this ``pages_to_scan``."""
        if pages_to_scan < 1:
            raise ValueError(f"pages_to_scan must be >= 1, got {pages_to_scan}")
        return max(0.0, self.cpu_us_per_page + 1000.0 * self.wakeup_overhead_ms / pages_to_scan)


def calibrate_scan_cost(
    t,
    pages_scanned,
    pages_to_scan: int,
    sleep_millisecs: float,
    ksmd_cpu_s=None,
) -> ScanCost:
    """Fit :class:`ScanCost` to one measured run of the real ksmd.

    Parameters
    ----------
    t : array-like
        Sample times in seconds (from the moment KSM was started).
    pages_scanned : array-like
        The ``pages_scanned`` counter at those times (smart scan off: every visit counts and
        each wake-up visits ``pages_to_scan`` pages).
    pages_to_scan, sleep_millisecs :
        The setting of that run.
    ksmd_cpu_s : array-like, optional
        ksmd's cumulative run time (seconds) at those times. Without it the whole time beyond
        the sleeps is charged per page (``method="period"``, no per-wake-up term).

    Returns
    -------
    ScanCost
        Fitted over the first to the last sample.

    Notes
    -----
    wake-ups = Δpages_scanned / pages_to_scan; period = Δt / wake-ups;
    cpu_us_per_page = Δcpu / Δpages_scanned; wakeup_overhead_ms = period − sleep − pages_to_scan ·
    cpu_us_per_page (it may come out slightly negative when ksmd's timer fires early; it is kept
    as measured).
    """
    t = np.asarray(t, np.float64)
    scanned = np.asarray(pages_scanned, np.float64)
    if len(t) < 2 or t.shape != scanned.shape:
        raise ValueError("need at least two samples of t and pages_scanned, of equal length")
    if pages_to_scan < 1:
        raise ValueError(f"pages_to_scan must be >= 1, got {pages_to_scan}")
    d_pages = scanned[-1] - scanned[0]
    d_t = t[-1] - t[0]
    if d_pages <= 0 or d_t <= 0:
        raise ValueError("ksmd scanned no pages between the first and the last sample")
    wakeups = d_pages / pages_to_scan
    period_ms = 1000.0 * d_t / wakeups
    if ksmd_cpu_s is None:
        return ScanCost(1000.0 * (period_ms - sleep_millisecs) / pages_to_scan, 0.0, "period")
    cpu = np.asarray(ksmd_cpu_s, np.float64)
    if cpu.shape != t.shape:
        raise ValueError("ksmd_cpu_s must have one value per sample")
    cpu_us = 1e6 * (cpu[-1] - cpu[0]) / d_pages
    return ScanCost(cpu_us, period_ms - sleep_millisecs - pages_to_scan * cpu_us / 1000.0, "schedstat")


__all__ = ["ScanCost", "calibrate_scan_cost", "time_to_fraction"]
