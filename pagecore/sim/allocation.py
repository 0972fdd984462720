"""Share-based allocation with the idle memory tax (paper §5.1–5.2, §6.3).

Each running VM ``i`` has ``S_i`` shares, bounds ``min_i <= P_i <= max_i`` and an estimated
``A_i`` active pages. With tax rate ``τ`` (default 0.75, global: footnote 5) an idle page
costs ``k = 1/(1−τ)`` times an active one, and the VM's adjusted shares-per-page ratio is

    ρ_i = S_i / (P_i · (f_i + k·(1 − f_i))),   f_i = min(1, A_i / P_i)

i.e. ``S_i / cost_i(P_i)`` with ``cost(P) = min(P, A) + k·max(0, P − A)``. Dynamic
min-funding revocation takes memory from the VM with the lowest ρ and gives it to whoever
needs it, so at equilibrium every VM strictly between its bounds has the same ρ (the check
of Figure 7 in the reference: ρ₁ ≈ ρ₂ at 101/243 MB).

:class:`IdleTax` computes that equilibrium directly: bisection on the common price λ
(``P_i(λ) = clip(cost_i⁻¹(S_i/λ), min_i, max_i)``, ``Σ P_i = available``), then integer
rounding and single-page min-funding transfers until none narrows the gap between the highest
and lowest ρ.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from pagecore._jit import JIT_DISABLED, SERIAL
from pagecore.sim.contracts import mechanism


def idle_cost(pages, active, tau: float):
    """``P·(f + k(1−f))`` with ``f = min(1, A/P)``: the idle-taxed size of an allocation."""
    k = 1.0 / (1.0 - tau)
    pages = np.asarray(pages, float)
    a = np.minimum(np.asarray(active, float), pages)
    return a + k * (pages - a)


def rho(shares, pages, active, tau: float):
    """The adjusted shares-per-page ratio ρ of §5.2 (inf for an empty allocation)."""
    c = idle_cost(pages, active, tau)
    with np.errstate(divide="ignore"):
        return np.where(c > 0, np.asarray(shares, float) / np.where(c > 0, c, 1.0), np.inf)


@njit(**SERIAL)
def _pairwise_block(x, i0, n):
    """NumPy's float64 sum of ``x[i0:i0+n]`` for ``n <= 128``: below 8 elements one running
    sum; else eight running sums combined as a tree, then the rest."""
    if n < 8:
        res = -0.0
        for i in range(n):
            res += x[i0 + i]
        return res
    r0, r1, r2, r3 = x[i0], x[i0 + 1], x[i0 + 2], x[i0 + 3]
    r4, r5, r6, r7 = x[i0 + 4], x[i0 + 5], x[i0 + 6], x[i0 + 7]
    i = 8
    while i < n - n % 8:
        r0 += x[i0 + i]
        r1 += x[i0 + i + 1]
        r2 += x[i0 + i + 2]
        r3 += x[i0 + i + 3]
        r4 += x[i0 + i + 4]
        r5 += x[i0 + i + 5]
        r6 += x[i0 + i + 6]
        r7 += x[i0 + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += x[i0 + i]
        i += 1
    return res


@njit(**SERIAL)
def _pairwise_sum(x, i0, n):
    """NumPy's float64 ``sum`` of ``x[i0:i0+n]``, bit for bit (``loops_utils.h.src``
    ``pairwise_sum``): blocks of up to 128 (:func:`_pairwise_block`); a longer range is the sum
    of its two halves, the first a multiple of 8 long. The halving is walked with an explicit
    stack (Numba's cache mishandles recursive kernels)."""
    if n <= 128:
        return _pairwise_block(x, i0, n)
    start = np.empty(64, np.int64)
    size = np.empty(64, np.int64)
    stage = np.empty(64, np.int64)
    done = np.empty(64, np.float64)
    nd = 0
    top = 0
    start[0], size[0], stage[0] = i0, n, 0
    while top >= 0:
        m = size[top]
        if m <= 128:
            done[nd] = _pairwise_block(x, start[top], m)
            nd += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if stage[top] == 0:  # left half next
            stage[top] = 1
            start[top + 1], size[top + 1], stage[top + 1] = start[top], half, 0
            top += 1
        elif stage[top] == 1:  # then the right half
            stage[top] = 2
            start[top + 1], size[top + 1], stage[top + 1] = start[top] + half, m - half, 0
            top += 1
        else:  # both done: left + right
            done[nd - 2] = done[nd - 2] + done[nd - 1]
            nd -= 1
            top -= 1
    return done[0]


@njit(**SERIAL)
def _alloc_sum(lam, s, lo, hi, a, k, p):
    """``p`` = every VM's allocation at price ``lam`` (``clip(cost⁻¹(S/λ), min, max)``);
    returns its NumPy sum."""
    for i in range(s.shape[0]):
        x = 0.0
        if s[i] > 0:
            c = s[i] / lam
            x = c if c <= a[i] else a[i] + (c - a[i]) / k
        lo_i = float(lo[i])
        hi_i = float(hi[i])
        if x < lo_i:
            x = lo_i
        if x > hi_i:
            x = hi_i
        p[i] = x
    return _pairwise_sum(p, np.int64(0), p.shape[0])


@njit(**SERIAL)
def _rho1(s, pages, a, k):
    """ρ of one VM (:func:`rho`): ``S / cost(P)``, inf for a zero cost."""
    pf = float(pages)
    am = a if a < pf else pf
    c = am + k * (pf - am)
    return s / c if c > 0 else np.inf


@njit(**SERIAL)
def _idle_tax(s, lo, hi, a, available, k, max_transfers):
    """:meth:`IdleTax.targets` once neither bound decides: bisection on λ, rounding, then
    single-page transfers; the same floating-point operations in the same order as the NumPy
    formulation (tests/slow_twins_alloc.py), so the same pages."""
    n = s.shape[0]
    buf = np.empty(n, np.float64)
    lam_lo, lam_hi = 1e-12, 1.0  # (math, not NumPy, calls below: the same IEEE results, less to compile)
    while _alloc_sum(lam_hi, s, lo, hi, a, k, buf) > available:
        lam_hi *= 16
    for _ in range(200):
        mid = math.sqrt(lam_lo * lam_hi)
        if _alloc_sum(mid, s, lo, hi, a, k, buf) > available:
            lam_lo = mid
        else:
            lam_hi = mid
        if lam_hi / lam_lo < 1 + 1e-13:
            break
    _alloc_sum(lam_hi, s, lo, hi, a, k, buf)
    p = np.empty(n, np.int64)
    total = 0
    for i in range(n):
        v = math.floor(buf[i])
        if v < lo[i]:
            v = lo[i]
        if v > hi[i]:
            v = hi[i]
        p[i] = v
        total += v
    # hand out the pages lost to rounding, each to the highest-ρ VM that can take one
    left = available - total
    while left > 0:
        j = 0
        best = -np.inf
        for i in range(n):
            r = _rho1(s[i], p[i] + 1, a[i], k) if p[i] < hi[i] else -np.inf
            if i == 0 or r > best:
                best = r
                j = i
        if best == -np.inf:
            break
        p[j] += 1
        left -= 1
    # single-page min-funding transfers while one narrows the ρ gap
    r = np.empty(n, np.float64)
    for _ in range(max_transfers):
        rmax = -np.inf
        rmin = np.inf
        for i in range(n):
            r[i] = _rho1(s[i], p[i], a[i], k)
            rmax = max(rmax, r[i])
            rmin = min(rmin, r[i])
        gap = rmax - rmin
        m = abs(gap)
        if not m > 1.0:
            m = 1.0
        bar = gap - 1e-12 * m
        found = False
        bg, bi, bj = 0.0, -1, -1
        for i in range(n):
            if not p[i] > lo[i]:
                continue
            ri = _rho1(s[i], p[i] - 1, a[i], k)
            for j in range(n):
                if i == j or not p[j] < hi[j]:
                    continue
                rj = _rho1(s[j], p[j] + 1, a[j], k)
                hi_r = -np.inf
                lo_r = np.inf
                for q in range(n):
                    x = ri if q == i else (rj if q == j else r[q])
                    if x > hi_r:
                        hi_r = x
                    if x < lo_r:
                        lo_r = x
                g = hi_r - lo_r
                if g < bar and (not found or g < bg):
                    found = True
                    bg, bi, bj = g, i, j
        if not found:
            return p
        p[bi] -= 1
        p[bj] += 1
    return p


@mechanism("allocation", "idle_tax")
class IdleTax:
    """Min-funding revocation on ρ with the idle memory tax (the paper's policy)."""

    max_transfers: int = 10000

    def __post_init__(self):
        if not self.max_transfers >= 0:
            raise ValueError(f"max_transfers must be >= 0, got {self.max_transfers}")

    def targets(self, shares, min_pages, max_pages, active, available, tau):
        s = np.ascontiguousarray(shares, np.float64)
        lo = np.ascontiguousarray(min_pages, np.int64)
        hi = np.ascontiguousarray(max_pages, np.int64)
        a = np.ascontiguousarray(np.clip(np.asarray(active, float), 0, None), np.float64)
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
        args = (s, lo, hi, a, available, float(1.0 / (1.0 - tau)), int(self.max_transfers))
        if JIT_DISABLED:  # plain Python: a VM at 0 pages has ρ = inf, and inf − inf warns (NaN: no transfer)
            with np.errstate(invalid="ignore"):
                return _idle_tax(*args)
        return _idle_tax(*args)
