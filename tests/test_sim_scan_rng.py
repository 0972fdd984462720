"""The background scanners draw their random frames in one kernel call
(pagecore.sim.sharing._integers/_draw_all): the same frames as NumPy's
``rng.integers`` and the generator left in the same state; the same scan results as the
per-VM NumPy twins (tests/slow_twins_simscan.py)."""

import numpy as np
import pytest
from slow_twins_simscan import content_scan, zero_scan

from pagecore._pcg64 import write_state as _put_state
from pagecore.sim import memory as m
from pagecore.sim.contracts import create
from pagecore.sim.sharing import _draw_all, _integers, _pcg64_state
from pagecore.sim.state import HostView, VMState
from pagecore.synth.specs import HostSpec, VMSpec


def _state(rng):
    got = _pcg64_state(rng, [])
    if got is None:
        pytest.skip("the draw kernels run only compiled (NUMBA_DISABLE_JIT is set)")
    return got


@pytest.mark.parametrize(
    "high", [1, 2, 3, 7, 100, 256, 1000, 65536, 65537, 262144, 1 << 31, (1 << 31) + 12345, (1 << 32) - 2, (1 << 32) - 1]
)
def test_integers_equal_numpys_draws_and_state(high):
    a = np.random.default_rng(high)
    b = np.random.default_rng(high)
    for n in [0, 1, 2, 3, 5, 40, 50, 101]:  # odd counts leave half a 64-bit draw buffered
        want = a.integers(0, high, size=n)
        s, st = _state(b)
        got = np.full(n + 4, -7, np.int64)
        _integers(st, high, got, 2, n)
        _put_state(b, s, st)
        assert got[2 : 2 + n].tolist() == want.tolist()
        assert got[:2].tolist() == [-7, -7] and got[2 + n :].tolist() == [-7, -7]
        assert b.bit_generator.state == a.bit_generator.state
    assert a.integers(0, 1 << 40) == b.integers(0, 1 << 40)  # and both go on alike


def test_integers_reject_when_the_draw_falls_in_the_biased_zone():
    """A bound just above 2^31 rejects about half of the 32-bit draws: the loop that redraws is
    exercised (and must consume exactly NumPy's draws)."""
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    want = a.integers(0, (1 << 31) + 1, size=1000)
    s, st = _state(b)
    got = np.empty(1000, np.int64)
    _integers(st, (1 << 31) + 1, got, 0, 1000)
    _put_state(b, s, st)
    assert got.tolist() == want.tolist() and b.bit_generator.state == a.bit_generator.state


def test_draw_all_concatenates_per_vm_draws():
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    highs, counts = [300, 1, 70000, 5], [3, 4, 0, 11]
    want = np.concatenate([a.integers(0, h, size=n) for h, n in zip(highs, counts, strict=True)])
    s, st = _state(b)
    got = np.empty(sum(counts), np.int64)
    _draw_all(st, np.array(highs, np.int64), np.array(counts, np.int64), got)
    _put_state(b, s, st)
    assert got.tolist() == want.tolist() and b.bit_generator.state == a.bit_generator.state


def _host(seed, content):
    """Three VMs (one of a single page) with random frame states and contents."""
    rng = np.random.default_rng(seed)
    host = HostView(HostSpec(system_mb=64.0))
    host.content_sharing = content
    vms = []
    for i, mb_ in enumerate([1.0, 1.0 / 256, 2.0]):
        v = VMState(VMSpec(f"v{i}", max_mb=mb_), i, host, np.random.default_rng(seed + i))
        n = v.pages
        st = rng.choice([m.UNBACKED, m.PRIVATE, m.ZERO], n, p=[0.2, 0.4, 0.4]).astype(np.uint8)
        v.mem.state[:] = st
        v.mem.cont[:] = np.where(st == m.PRIVATE, rng.integers(1, 6, n), np.where(st == m.ZERO, 0, -1))
        v.mem.c[:6] = np.bincount(st, minlength=6)[:6]
        v.scan_credit = float(rng.random())
        v.status = "running"
        vms.append(v)
    host.free[0] = 10**6
    return host, vms


def _snapshot(host, vms):
    return (
        [v.mem.state.tolist() for v in vms],
        [v.mem.cont.tolist() for v in vms],
        [v.mem.c.tolist() for v in vms],
        [v.scan_credit for v in vms],
        int(host.free[0]),
        host.table.keys.tolist(),
        host.table.refs.tolist(),
        host.table.hvm.tolist(),
        host.table.hfr.tolist(),
        host.table.stat.tolist(),
    )


@pytest.mark.parametrize("kind", ["zero", "content"])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rates", [(50.0, 200.0), (0.7, 200.0), (500.0, 90.0), (0.0, 200.0)])
def test_scan_equals_the_per_vm_numpy_twin(kind, seed, rates):
    scanner = create("sharing", kind, {"rate_vm_pages_s": rates[0], "rate_total_pages_s": rates[1]})
    twin = zero_scan if kind == "zero" else content_scan
    h1, v1 = _host(seed, kind == "content")
    h2, v2 = _host(seed, kind == "content")
    r1, r2 = np.random.default_rng(seed), np.random.default_rng(seed)
    for step in range(30):
        run = [v for i, v in enumerate(v1) if (step + i) % 4]  # VMs come and go
        run2 = [v2[v.index] for v in run]
        d1 = scanner.scan(run, 1.0, r1, h1)
        d2 = twin(scanner, run2, 1.0, r2, h2)
        assert d1 == d2
        assert _snapshot(h1, v1) == _snapshot(h2, v2)
        assert r1.bit_generator.state == r2.bit_generator.state
    if rates[0] > 0:
        assert sum(v.mem.c[m.C_SCAN_SHARED] for v in v1) > 0  # something was shared


def test_other_bit_generators_take_numpys_path():
    scanner = create("sharing", "zero")
    h1, v1 = _host(3, False)
    h2, v2 = _host(3, False)
    r1, r2 = np.random.Generator(np.random.MT19937(4)), np.random.Generator(np.random.MT19937(4))
    for _ in range(5):
        assert scanner.scan(v1, 1.0, r1, h1) == zero_scan(scanner, v2, 1.0, r2, h2)
        assert _snapshot(h1, v1) == _snapshot(h2, v2)
    assert r1.integers(0, 1 << 40, size=4).tolist() == r2.integers(0, 1 << 40, size=4).tolist()
