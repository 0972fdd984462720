"""The idle-tax allocation kernel (pagecore.sim.allocation._idle_tax) against its NumPy twin:
the same pages, exactly, on random inputs and named edge cases."""

import numpy as np
import pytest
from slow_twins_alloc import idle_tax_targets

from pagecore.sim.allocation import IdleTax, _pairwise_sum


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 15, 16, 17, 64, 127, 128, 129, 200, 255, 256, 257, 1000, 4099])
def test_pairwise_sum_is_numpys_sum(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        x = rng.random(n) * 10.0 ** rng.integers(-3, 9, n)
        assert _pairwise_sum(x, 0, n) == x.sum()


def test_pairwise_sum_differs_from_a_running_sum_somewhere():
    """The test above can fail: a plain running sum is not NumPy's sum for 8+ elements."""
    rng = np.random.default_rng(0)
    bad = 0
    for _ in range(200):
        x = rng.random(12) * 10.0 ** rng.integers(0, 9, 12)
        run = 0.0
        for v in x:
            run += v
        bad += run != x.sum()
    assert bad > 0


def _case(rng, n):
    scale = int(rng.choice([10, 1000, 65536, 1 << 22] if n < 8 else [10, 1000, 65536]))
    hi = rng.integers(1, scale + 2, n)
    lo = (hi * rng.random(n) * rng.choice([0.0, 0.3, 0.9])).astype(np.int64)
    # (VMs without shares take the rounding pages one by one: named edge cases below, small)
    s = rng.integers(1, 5000, n).astype(float)
    if rng.random() < 0.3:
        s = rng.random(n) * 1e3
    a = rng.random(n) * hi * rng.choice([0.5, 1.0, 2.0])
    if rng.random() < 0.2:
        a[rng.integers(0, n)] = -5.0  # negative estimates are clipped to 0
    avail = int(rng.integers(max(0, lo.sum() - 5), hi.sum() + 5))
    tau = float(rng.choice([0.0, 0.3, 0.5, 0.75, 0.9, 0.99, float(rng.random() * 0.99)]))
    return s, lo, hi, a, avail, tau


@pytest.mark.parametrize("seed", range(40))
def test_kernel_equals_twin_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    pol = IdleTax()
    for _ in range(25):
        n = int(rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 20]))
        args = _case(rng, n)
        got = pol.targets(*args)
        want = idle_tax_targets(*args)
        assert got.dtype == np.int64
        assert got.tolist() == want.tolist(), args


@pytest.mark.parametrize(
    "s, lo, hi, a, avail, tau",
    [
        ([1.0, 1.0], [0, 0], [65536, 65536], [2534.4, 50688.0], 91648, 0.75),  # Figure 7's shape
        ([1.0, 1.0], [0, 0], [100, 100], [0.0, 0.0], 101, 0.0),  # a rounding page to hand out
        ([0.0, 0.0, 0.0], [0, 0, 0], [10, 20, 30], [5.0, 5.0, 5.0], 31, 0.75),  # no shares at all
        ([1.0, 0.0], [0, 0], [50, 50], [10.0, 10.0], 60, 0.5),  # one VM without shares
        ([3.0, 1.0, 2.0], [10, 10, 10], [10, 40, 50], [0.0, 40.0, 50.0], 60, 0.75),  # one VM pinned
        ([1.0, 1.0], [0, 0], [1, 1], [0.0, 0.0], 1, 0.75),  # a VM at zero pages: ρ = inf
        ([5.0, 5.0, 5.0], [0, 0, 0], [7, 7, 7], [7.0, 7.0, 7.0], 20, 0.9),  # all fully active
        ([1.0, 2.0], [0, 0], [1 << 40, 1 << 40], [1e12, 0.0], 1 << 40, 0.75),  # very large
    ],
)
def test_kernel_equals_twin_on_edge_cases(s, lo, hi, a, avail, tau):
    args = (np.array(s), np.array(lo), np.array(hi), np.array(a), avail, tau)
    assert IdleTax().targets(*args).tolist() == idle_tax_targets(*args).tolist()


@pytest.mark.parametrize("max_transfers", [0, 1, 2])
def test_kernel_equals_twin_with_few_transfers(max_transfers):
    rng = np.random.default_rng(7)
    pol = IdleTax(max_transfers=max_transfers)
    for _ in range(50):
        args = _case(rng, int(rng.integers(2, 7)))
        assert pol.targets(*args).tolist() == idle_tax_targets(*args, max_transfers=max_transfers).tolist()
