"""Guest page cache under ballooning / host paging, and hot I/O page remapping (§3, §7, Figure 2)."""

from __future__ import annotations

import numpy as np
import pytest
from slow_twins_reclaim import io_copies, lru_replay

from pagecore import paper
from pagecore.sim import create
from pagecore.sim.guestcache import CostModel, LRUGuest, dbench_trace, fig02_sweep, paging_sweep, replay
from pagecore.sim.ioremap import high_backing, io_trace, replay_io, scarcity_sweep, threshold_sweep


def _trace(n, pages, seed, wfrac=0.3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, pages, n), rng.random(n) < wfrac


# ------------------------------------------------------------------ LRU vs OrderedDict twin
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("capacity", "reclaim"), [(1, 0), (2, 1), (7, 0), (7, 3), (40, 0), (40, 25)])
def test_lru_matches_ordereddict_twin(seed, capacity, reclaim):
    pages, write = _trace(600, 60, seed)
    warm = 150
    assert replay(pages, write, capacity, reclaim, warm, seed) == lru_replay(
        pages, write, capacity, reclaim, warm, seed
    )


def test_lru_twin_on_dbench_trace():
    pages, write = dbench_trace(clients=4, mb_per_client=0.5, refs=20_000, seed=3)
    for reclaim in (0, 100):
        assert replay(pages, write, 300, reclaim, 5000, 1) == lru_replay(pages, write, 300, reclaim, 5000, 1)


def test_lru_edge_cases():
    """Empty trace; one page; all-identical references; capacity 1 thrashes."""
    e = np.zeros(0, np.int64)
    assert replay(e, e.astype(bool), 4)["refs"] == 0
    s = replay(np.zeros(10, np.int64), np.ones(10, bool), 1)
    assert s["misses"] == 1 and s["hits"] == 9 and s["writebacks"] == 0
    s = replay(np.array([0, 1, 0, 1]), np.array([True, False, False, False]), 1)
    assert s["misses"] == 4 and s["writebacks"] == 1  # page 0 dirty once, re-read clean
    with pytest.raises(ValueError, match="capacity"):
        replay(np.zeros(3, np.int64), np.zeros(3, bool), 0)
    with pytest.raises(ValueError, match="reclaim"):
        replay(np.zeros(3, np.int64), np.zeros(3, bool), 2, reclaim=2)


def test_double_paging_story():
    """Two frames, page 0 written then the host pages out frame 0; page 1 is touched, page 2
    then evicts page 0 (LRU, dirty) — the host reads frame 0 back from swap only for the guest
    to write it to its virtual disk: one double-paging event."""
    pages = np.array([0, 1, 1, 2])
    write = np.array([True, False, False, False])
    s = lru_replay(pages, write, 2, reclaim=1, warmup=2, seed=0)
    fast = replay(pages, write, 2, reclaim=1, warmup=2, seed=0)
    assert s == fast
    assert s["writebacks"] == 1 and s["misses"] == 1 and s["hits"] == 1
    # whichever frame the host picked, exactly one of the two stories happened
    assert s["double_paging"] + s["host_faults"] >= 1


def test_ballooned_guest_has_less_cache():
    g = LRUGuest()
    for m in (128, 160, 192, 224):
        assert g.cache_pages(m, 256) < g.cache_pages(m)
    # (256 - 128) MB of 68-byte descriptors: 2.125 MB = 544 pages less
    assert g.cache_pages(128) - g.cache_pages(128, 256) == pytest.approx(544, abs=1)
    with pytest.raises(ValueError, match="more memory"):
        g.cache_pages(300, 256)


def test_cost_model_fit_is_exact_on_its_points():
    a = {"refs": 1000, "misses": 400, "writebacks": 100, "host_faults": 0, "host_pageouts": 0}
    b = {"refs": 1000, "misses": 50, "writebacks": 20, "host_faults": 0, "host_pageouts": 0}
    cm = CostModel.fit([(a, 10.0), (b, 17.0)])
    assert cm.throughput_mbps(a) == pytest.approx(10.0) and cm.throughput_mbps(b) == pytest.approx(17.0)
    with pytest.raises(ValueError, match="exactly 2"):
        CostModel.fit([(a, 10.0)])


def test_fig02_shape_small():
    """A shortened Figure 2: configured beats ballooned at every size, both rise with memory."""
    pages, write = dbench_trace(refs=1_000_000, mb_per_client=6.5, popularity_power=2.0, seed=1)
    meas = dict(zip(paper.FIG02.vm_mb, paper.FIG02.configured_mbps, strict=True))
    df, cost = fig02_sweep(LRUGuest(), pages, write, measured=meas)
    assert df.loc[df.vm_mb == 128, "configured_mbps"].item() == pytest.approx(11.47)
    assert df.loc[df.vm_mb == 256, "configured_mbps"].item() == pytest.approx(17.80)
    d = df[df.vm_mb < 256]
    assert (d.ballooned_mbps < d.configured_mbps).all() and d.configured_mbps.is_monotonic_increasing
    p = paging_sweep(LRUGuest(), pages, write, cost, reclaim_mb=(0, 64), boot_mb=192)
    hp = p[(p.method == "host paging") & (p.reclaim_mb == 64)].iloc[0]
    bl = p[(p.method == "balloon") & (p.reclaim_mb == 64)].iloc[0]
    assert hp.double_paging > 0 and bl.double_paging == 0 and bl.host_faults == 0
    assert p[p.reclaim_mb == 0].throughput_mbps.nunique() == 1


# ------------------------------------------------------------------ I/O remapping vs brute force
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    ("threshold", "low_free", "low_pages"), [(-1, 0, 10), (0, 0, 10), (2, 3, 5), (4, 0, 1), (1, 0, 0)]
)
@pytest.mark.parametrize("policy", ["random", "cost_benefit"])
def test_io_copies_match_brute_force(seed, threshold, low_free, low_pages, policy):
    pages = io_trace(50, 800, net_fraction=0.6, net_buffers=6, seed=seed)
    high = high_backing(50, low_pages, seed)
    fast = replay_io(pages, high, threshold, low_free, policy, seed, cb_sample=4)
    assert fast == io_copies(pages, high, threshold, low_free, policy, seed, cb_sample=4)


def test_io_edge_cases():
    high = np.ones(4, bool)
    assert replay_io(np.zeros(0, np.int64), high, 1, 0)["copies"] == 0
    # all low: never a copy; remapping off: copies = I/Os on high pages
    assert replay_io(np.arange(4), np.zeros(4, bool), 0, 0)["copies"] == 0
    assert replay_io(np.array([0, 0, 1, 3]), np.array([True, False, False, True]), -1, 0)["copies"] == 3
    # one hot page, threshold 2, a free low page: 3 bounces + 1 remap, then none
    s = replay_io(np.zeros(10, np.int64), high, 2, 1)
    assert (s["bounce_copies"], s["remaps"], s["remaps_back"]) == (3, 1, 0)
    with pytest.raises(ValueError, match="policy"):
        replay_io(np.zeros(1, np.int64), high, 1, 0, "lru")


def test_network_reduction_orders_of_magnitude():
    df = threshold_sweep(4096, 500_000, {"network": 1.0}, [16], low_pages=512, low_free=64)
    off = df[df.threshold == -1].copies.item()
    on = df[df.threshold == 16].copies.item()
    assert off / on > 100  # §7: "several orders of magnitude"


def test_cost_benefit_beats_random_when_low_memory_is_scarce():
    df = scarcity_sweep(8192, 100_000, 0.5, [64], threshold=8, net_buffers=32).set_index("policy")
    assert df.at["cost_benefit", "copies"] < df.at["random", "copies"] < df.at["no remapping", "copies"]


def test_registered_models():
    g = create("guest_cache", "lru", {"fixed_mb": 20.0})
    assert g.cache_pages(64) == int((64 - 20 - 64 * 68 / 4096) * 256)
    r = create("io_remap", "cost_benefit", {"threshold": 3})
    s = r.run(np.zeros(10, np.int64), np.ones(2, bool), low_free=1)
    assert s["remaps"] == 1 and s["bounce_copies"] == 4
