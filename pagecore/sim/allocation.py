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

import numpy as np

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


def _inverse_cost(c, active, k):
    return np.where(c <= active, c, active + (c - active) / k)


@mechanism("allocation", "idle_tax")
class IdleTax:
    """Min-funding revocation on ρ with the idle memory tax (the paper's policy)."""

    max_transfers: int = 10000

    def targets(self, shares, min_pages, max_pages, active, available, tau):
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
        return self._settle(p, s, lo, hi, a, tau)

    def _settle(self, p, s, lo, hi, a, tau):
        """Single-page min-funding transfers while one narrows the ρ gap."""
        for _ in range(self.max_transfers):
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
