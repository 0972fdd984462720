"""Active-memory estimation by statistical sampling (paper §5.3, Figure 6).

Per VM and per sampling period of *VM time* (default 30 s), ESX picks ``n`` (default 100) of
the VM's "physical" pages uniformly at random and invalidates their cached mappings; the next
guest access to each is intercepted and counted (the touch path in
:func:`pagecore.sim.memory.replay` counts them). At the end of the period ``f = t / n``.

Three exponentially weighted moving averages of ``f`` are kept (after Kim & Noble [16]):
a **slow** one, a **fast** one, and the fast one **including the current, unfinished period**
(updated with every touch of a sampled page). The estimate is their maximum, so it rises fast
when a VM becomes active and falls slowly when it goes idle. Fractions are converted to pages
by the VM's configured size (the sampled population).

Parameters (all UNCONFIRMED except ``sample_pages`` and ``period_s``, which are TEXT):

``alpha_slow = 0.27``
    gain of the slow average per period. Fitted to Figure 6: after the zero-page-thread spike
    the slow line's distance to the new level shrinks by a factor of about 0.70–0.75 per 30-s
    step (reference §3 item 4), i.e. it closes 25–30 % of it: gain ≈ 0.25–0.30.
``alpha_fast = 0.7``
    gain of the fast average (same source: it removes about 70–75 % of the gap per sample).
``initial_fraction = 0.0``
    all averages at power-on; the paper does not say.
"""

from __future__ import annotations

import math

import numpy as np

from pagecore.sim.contracts import mechanism
from pagecore.sim.memory import C_DISTINCT, C_SAMPLE_HITS


@mechanism("sampling", "esx")
class EsxSampler:
    """The paper's estimator: random sampling, slow/fast/current EWMAs, estimate = max."""

    sample_pages: int = 100
    period_s: float = 30.0
    alpha_slow: float = 0.27
    alpha_fast: float = 0.7
    initial_fraction: float = 0.0

    def __post_init__(self):
        if self.sample_pages < 1:
            raise ValueError(f"sample_pages must be >= 1, got {self.sample_pages}")
        if not 0 < self.period_s < math.inf:  # NaN: no period ever ended, the estimate never moved
            raise ValueError(f"period_s must be > 0 and finite, got {self.period_s}")
        for a in ("alpha_slow", "alpha_fast"):
            if not 0 < getattr(self, a) <= 1:
                raise ValueError(f"{a} must be in (0, 1], got {getattr(self, a)}")
        if not 0 <= self.initial_fraction <= 1:  # a fraction: outside, the estimate left [0, VM size]
            raise ValueError(f"initial_fraction must be in [0, 1], got {self.initial_fraction}")

    def _draw(self, vm, rng):
        n = min(self.sample_pages, vm.pages)
        vm.mem.sampled[:] = 0
        vm.mem.sampled[rng.choice(vm.pages, n, replace=False)] = 1
        vm.est["n"] = n
        vm.mem.c[C_SAMPLE_HITS] = 0

    def start(self, vm, rng):
        f0 = float(self.initial_fraction)
        vm.est.update(slow=f0, fast=f0, last_f=f0)
        self._draw(vm, rng)

    def period_end(self, vm, rng):
        f = vm.mem.c[C_SAMPLE_HITS] / vm.est["n"]
        e = vm.est
        e["slow"] += self.alpha_slow * (f - e["slow"])
        e["fast"] += self.alpha_fast * (f - e["fast"])
        e["last_f"] = f
        self._draw(vm, rng)

    def _cur(self, vm):
        e = vm.est
        partial = vm.mem.c[C_SAMPLE_HITS] / e["n"]
        return e["fast"] + self.alpha_fast * (partial - e["fast"])

    def components(self, vm):
        e = vm.est
        p = vm.pages
        return {
            "active_slow": e["slow"] * p,
            "active_fast": e["fast"] * p,
            "active_fast_cur": self._cur(vm) * p,
            "active_sample": e["last_f"] * p,
        }

    def estimate(self, vm):
        e = vm.est
        return max(e["slow"], e["fast"], self._cur(vm)) * vm.pages


@mechanism("sampling", "oracle")
class OracleEstimator:
    """Not in the paper: the true number of frames touched in the last complete period
    (or the current one, if larger). A what-if baseline for the sampling error."""

    period_s: float = 30.0

    def __post_init__(self):
        if not 0 < self.period_s < math.inf:
            raise ValueError(f"period_s must be > 0 and finite, got {self.period_s}")

    def start(self, vm, rng):
        vm.est.update(last=0.0)

    def period_end(self, vm, rng):
        vm.est["last"] = float(vm.mem.c[C_DISTINCT])

    def components(self, vm):
        return {
            "active_slow": vm.est["last"],
            "active_fast": vm.est["last"],
            "active_fast_cur": float(vm.mem.c[C_DISTINCT]),
            "active_sample": vm.est["last"],
        }

    def estimate(self, vm):
        return float(max(vm.est["last"], vm.mem.c[C_DISTINCT]))


def ewma_reference(fractions, alpha: float, initial: float = 0.0) -> np.ndarray:
    """The averages after each period for a sequence of per-period fractions (documentation
    and tests): ``a_k = a_{k-1} + alpha·(f_k − a_{k-1})``."""
    out = np.empty(len(fractions))
    a = initial
    for i, f in enumerate(fractions):
        a += alpha * (f - a)
        out[i] = a
    return out
