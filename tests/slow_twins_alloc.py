"""Slow twin of :func:`pagecore.sim.allocation._idle_tax`: the idle-tax targets written with
NumPy vector operations (the formulation the kernel replaced, kept verbatim)."""

from __future__ import annotations

import numpy as np

from pagecore.sim.allocation import rho


def idle_tax_targets(shares, min_pages, max_pages, active, available, tau, max_transfers=10000):
    # a VM at zero pages has ρ = inf, and inf − inf is NaN (a gap no transfer narrows)
    with np.errstate(invalid="ignore"):
        return _targets(shares, min_pages, max_pages, active, available, tau, max_transfers)


def _inverse_cost(c, active, k):
    return np.where(c <= active, c, active + (c - active) / k)


def _targets(shares, min_pages, max_pages, active, available, tau, max_transfers):
    s = np.asarray(shares, float)
    lo = np.asarray(min_pages, np.int64)
    hi = np.asarray(max_pages, np.int64)
    a = np.clip(np.asarray(active, float), 0, None)
    n = len(s)
    if n == 0:
        return np.zeros(0, np.int64)
    if not 0 <= tau < 1:
        raise ValueError(f"tax rate must be in [0, 1), got {tau}")
    available = int(available)
    if hi.sum() <= available:
        return hi.copy()
    if lo.sum() >= available:
        return lo.copy()
    k = 1.0 / (1.0 - tau)
    pos = s > 0

    def alloc(lam):
        p = np.where(pos, _inverse_cost(np.where(pos, s, 0) / lam, a, k), 0.0)
        return np.clip(p, lo, hi)

    # bracket λ: tiny λ gives max, huge λ gives min
    lam_lo, lam_hi = 1e-12, 1.0
    while alloc(lam_hi).sum() > available:
        lam_hi *= 16
    for _ in range(200):
        mid = np.sqrt(lam_lo * lam_hi)
        if alloc(mid).sum() > available:
            lam_lo = mid
        else:
            lam_hi = mid
        if lam_hi / lam_lo < 1 + 1e-13:
            break
    p = np.floor(alloc(lam_hi)).astype(np.int64)
    p = np.clip(p, lo, hi)
    # hand out the pages lost to rounding, each to the highest-ρ VM that can take one
    left = available - int(p.sum())
    while left > 0:
        r = np.where(p < hi, rho(s, p + 1, a, tau), -np.inf)
        j = int(np.argmax(r))
        if not np.isfinite(r[j]) and r[j] < 0:
            break
        p[j] += 1
        left -= 1
    return _settle(p, s, lo, hi, a, tau, max_transfers)


def _settle(p, s, lo, hi, a, tau, max_transfers):
    """Single-page min-funding transfers while one narrows the ρ gap."""
    for _ in range(max_transfers):
        r = rho(s, p, a, tau)
        gap = r.max() - r.min()
        best = None
        for i in np.flatnonzero(p > lo):
            for j in np.flatnonzero(p < hi):
                if i == j:
                    continue
                q = p.copy()
                q[i] -= 1
                q[j] += 1
                rq = rho(s, q, a, tau)
                g = rq.max() - rq.min()
                if g < gap - 1e-12 * max(1.0, abs(gap)) and (best is None or g < best[0]):
                    best = (g, i, j)
        if best is None:
            return p
        p[best[1]] -= 1
        p[best[2]] += 1
    return p
