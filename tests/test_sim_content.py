"""Content-based page sharing inside the replay (paper §4.2-4.3, Figure 3; issue 14): the Numba
kernels of pagecore.sim.memory against the slow twins of tests/slow_twins_content.py on random
inputs and named edge cases, hand-worked stories through the engine, machine memory conserved
every step, and the contents API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import scaled
from slow_twins_content import World

from pagecore.errors import ConfigError, InputError
from pagecore.sim import (
    HostSpec,
    SimParams,
    VMSpec,
    contents_from_page_tables,
    create,
    simulate,
    synthetic_contents,
)
from pagecore.sim import memory as m
from pagecore.sim.state import HostView, VMState

U, P, Z, S, W, B = m.UNBACKED, m.PRIVATE, m.ZERO, m.SHARED, m.SWAPPED, m.BALLOONED
ARRAYS = ("state", "cont", "owner", "alias", "refbit", "sampled", "stamp", "hands", "c")


# ----------------------------------------------------------------------------- helpers
class Host:
    """Several VMs' frames on one host, driven through the kernels (like the engine does)."""

    def __init__(self, sizes, images=None, free=10**6, swap=10**6, capacity=1 << 12):
        self.view = HostView(HostSpec(system_mb=4096.0, swap_mb=0.0))
        self.view.table = m.ContentTable(capacity)
        self.view.free[0] = free
        self.view.swap_free[0] = swap
        images = images or [None] * len(sizes)
        self.vms = [
            VMState(VMSpec(f"v{i}", max_mb=n / 256), i, self.view, np.random.default_rng(i), image=img)
            for i, (n, img) in enumerate(zip(sizes, images, strict=True))
        ]
        top = max([0] + [int(np.max(img)) for img in images if img is not None])
        self.view.next_id[0] = top + 1

    @property
    def mems(self):
        return [v.mem for v in self.vms]

    @property
    def table(self):
        return self.view.table

    def twin(self):
        return World(
            self.mems, self.table, int(self.view.free[0]), int(self.view.swap_free[0]), int(self.view.next_id[0])
        )

    def lists(self):
        return self.view.frame_lists()

    def replay(self, v, t, g, f):
        return self.mems[v].replay(t, g, f, 0, np.inf, 0, self.view.free)

    def scan(self, cand_vm, cand_f):
        st, co, cn = self.lists()
        t = self.table
        t.reserve(len(cand_f), st, co)
        return m.scan_content(
            np.asarray(cand_vm, np.int64), np.asarray(cand_f, np.int64), st, co, cn,
            t.keys, t.refs, t.hvm, t.hfr, t.stat, self.view.free,
        )  # fmt: skip

    def page_out(self, count, cand, v):
        st, co, cn = self.lists()
        t = self.table
        return m.page_out_content(
            count, np.asarray(cand, np.int64), v, st, co, cn, t.keys, t.refs, t.hvm, t.hfr, t.stat,
            self.view.free, self.view.swap_free,
        )  # fmt: skip

    def check(self):
        for mem in self.mems:
            mem.check()
        st, co, _ = self.lists()
        self.table.check(st, co)


def assert_same(h: Host, w: World):
    """Every frame array, counter and the live table entries agree with the twin."""
    for i, (mem, vm) in enumerate(zip(h.mems, w.vms, strict=True)):
        for k in ARRAYS:
            np.testing.assert_array_equal(getattr(mem, k), np.asarray(getattr(vm, k)), err_msg=f"vm {i} {k}")
    assert int(h.view.free[0]) == w.free
    assert int(h.view.swap_free[0]) == w.swap
    assert int(h.view.next_id[0]) == w.next_id
    st, co, _ = h.lists()
    # stale hints may linger in either (they never lead to sharing): compare the valid ones
    valid = {
        k: tuple(e)
        for k, e in w.table.items()
        if e[0] == "shared" or (w.vms[e[1]].state[e[2]] == P and w.vms[e[1]].cont[e[2]] == k)
    }
    assert h.table.entries(st, co) == valid
    assert h.table.shared_pages == w.shared_pages
    assert h.table.stat[m.T_FREED] == w.freed
    h.check()


def _trace(rng, n, k, zero_p=0.1, write_p=0.5):
    t = np.sort(rng.random(k))
    g = rng.integers(0, n, k).astype(np.uint64)
    w = rng.random(k) < write_p
    z = w & (rng.random(k) < zero_p)
    return t, g, (w.astype(np.uint8) | (z.astype(np.uint8) << 1))


def _images(rng, sizes, pool):
    """Images drawing from a small pool of contents, so VMs share some (ids 1..pool; some zero
    pages and some frames without an image)."""
    return [rng.choice(np.arange(-1, pool + 1), n).astype(np.int64) for n in sizes]


# ----------------------------------------------------------------------------- random inputs
@pytest.mark.parametrize("seed", range(scaled(30, 5)))
def test_kernels_match_twin_on_random_histories(seed):
    """Random VMs go through touches (images, fresh writes, zero fills), scans, share-before-swap
    paging, ballooning, deflation and more touches; after every step the kernels' frames,
    counters, host accounting and content table equal the twin's."""
    rng = np.random.default_rng(seed)
    sizes = [int(x) for x in rng.integers(8, 40, int(rng.integers(1, 4)))]
    h = Host(sizes, _images(rng, sizes, int(rng.integers(1, 6))), swap=int(rng.integers(0, 20)))
    w = h.twin()
    for _round in range(4):
        for v, n in enumerate(sizes):
            t, g, f = _trace(rng, n, int(rng.integers(0, 3 * n)))
            h.replay(v, t, g, f)
            w.replay(v, t, g, f)
            assert_same(h, w)
        k = int(rng.integers(0, 3 * sum(sizes)))
        cv = rng.integers(0, len(sizes), k)
        cf = np.array([rng.integers(0, sizes[v]) for v in cv], np.int64)
        assert h.scan(cv, cf) == w.scan(cv, cf)
        assert_same(h, w)
        v = int(rng.integers(0, len(sizes)))
        cand = rng.permutation(sizes[v])
        cnt = int(rng.integers(0, sizes[v]))
        assert h.page_out(cnt, cand, v) == w.page_out(cnt, cand, v)
        assert_same(h, w)
        v = int(rng.integers(0, len(sizes)))
        cnt = int(rng.integers(0, sizes[v] // 2 + 1))
        assert h.mems[v].inflate(cnt, h.view.free) == w.inflate(v, cnt)
        assert_same(h, w)
        # deflate has no content decision but its zero fill: mirror it on the twin by copying
        mem = h.mems[v]
        before = mem.state.copy()
        mem.deflate(int(rng.integers(0, cnt + 1)), h.view.free, bool(rng.integers(2)))
        changed = np.flatnonzero(before != mem.state)
        tv = w.vms[v]
        for f in changed:
            tv.set(int(f), int(mem.state[f]))
            tv.owner[f] = m.FREE
            tv.cont[f] = int(mem.cont[f])
            w.free -= int(mem.state[f] == Z)
        tv.hands = mem.hands.tolist()
        assert_same(h, w)
    # power-off drops every reference
    for v in range(len(sizes)):
        h.mems[v].release_shared(h.view.free)
        w.power_off_release(v)
    assert h.table.shared_pages == 0 and w.shared_pages == 0
    assert int(h.view.free[0]) == w.free


# ----------------------------------------------------------------------------- edge cases
def _loaded(images, **kw):
    """A host whose VMs read every page once (each frame takes its image content)."""
    h = Host([len(i) for i in images], [np.asarray(i, np.int64) for i in images], **kw)
    for v, img in enumerate(images):
        n = len(img)
        h.replay(v, np.arange(n, dtype=np.float64), np.arange(n, dtype=np.uint64), np.zeros(n, np.uint8))
    return h


def _scan_all(h, order=None):
    cv = np.concatenate([np.full(mem.pages, v) for v, mem in enumerate(h.mems)])
    cf = np.concatenate([np.arange(mem.pages) for mem in h.mems])
    if order is not None:
        cv, cf = cv[order], cf[order]
    w = h.twin()
    got = h.scan(cv, cf)
    assert got == w.scan(cv, cf)
    assert_same(h, w)
    return got


def test_all_zero_pages_share_the_zero_page_and_never_enter_the_table():
    h = _loaded([[0] * 10, [0] * 6])
    free0 = int(h.view.free[0])
    assert _scan_all(h) == 16
    assert int(h.view.free[0]) == free0 + 16
    assert h.table.stat[m.T_LOOKUPS] == 0 and h.table.entries() == {}
    assert all(mem.zero_pages == mem.pages for mem in h.mems)


def test_all_distinct_pages_become_hints_and_nothing_is_shared():
    """With every page unique the content scanner reclaims nothing and changes no frame state:
    exactly what the zero-page scanner does on pages without zeros."""
    h = _loaded([list(range(1, 11)), list(range(11, 19))])
    before = [mem.state.copy() for mem in h.mems]
    assert _scan_all(h) == 0
    assert all(np.array_equal(b, mem.state) for b, mem in zip(before, h.mems, strict=True))
    assert len(h.table.entries()) == 18 and h.table.shared_pages == 0
    # a second pass finds each page as its own hint: still nothing
    assert _scan_all(h) == 0 and h.table.stat[m.T_STALE] == 0


def test_all_same_content_is_one_machine_page():
    """Hand-worked: 12 + 8 frames of one content. The first scanned page becomes a hint; the
    second matches it (both shared, refs 2); each further one adds a reference. 20 frames, one
    machine page: 19 reclaimed."""
    h = _loaded([[7] * 12, [7] * 8])
    free0 = int(h.view.free[0])
    assert _scan_all(h) == 19
    assert h.table.entries() == {7: ("shared", 20)}
    assert int(h.view.free[0]) == free0 + 19 and h.table.shared_pages == 1
    assert h.table.stat[m.T_HINT_MATCH] == 1 and h.table.stat[m.T_SHARED_MATCH] == 18
    assert sum(mem.count(S) for mem in h.mems) == 20 and sum(mem.machine for mem in h.mems) == 0


def test_write_between_scans_leaves_a_stale_hint_that_is_replaced():
    """VM 0 frame 0 holds content 5 and is scanned (a hint). The guest then writes it (fresh
    content). VM 1 frame 0, also content 5, is scanned: the hint is re-checked, found stale,
    and replaced by VM 1's page; nothing is shared. A later page with content 5 shares with it."""
    h = _loaded([[5, 1], [5, 5]])
    assert h.scan([0], [0]) == 0
    assert h.table.entries() == {5: ("hint", 0, 0)}
    h.replay(0, np.array([0.0]), np.array([0], np.uint64), np.array([m.F_WRITE], np.uint8))
    w = h.twin()
    assert h.scan([1], [0]) == 0 == w.scan([1], [0])
    assert h.table.stat[m.T_STALE] == 1 == w.stale
    st, co, _ = h.lists()
    assert h.table.entries(st, co) == {5: ("hint", 1, 0)}
    assert h.scan([1], [1]) == 1
    assert h.table.entries() == {5: ("shared", 2)}
    assert_same(h, h.twin())


def test_page_is_never_shared_with_itself():
    h = _loaded([[9, 2]])
    assert h.scan([0, 0, 0], [0, 0, 0]) == 0
    assert h.table.entries() == {9: ("hint", 0, 0)} and h.mems[0].state[0] == P


def test_copy_on_write_and_reference_count_reaching_zero():
    """Three frames share content 3 (one machine page). Each write breaks copy-on-write: the
    writer gets a fresh private page and the count drops; the third write frees the shared
    page. Machine memory: 1 shared + 0 private -> 0 shared + 3 private."""
    h = _loaded([[3, 3], [3]])
    _scan_all(h)
    assert h.table.entries() == {3: ("shared", 3)}
    free0 = int(h.view.free[0])
    w = h.twin()
    for v, f, refs in ((0, 0, 2), (1, 0, 1)):
        args = (np.array([0.0]), np.array([f], np.uint64), np.array([m.F_WRITE], np.uint8))
        h.replay(v, *args)
        w.replay(v, *args)
        assert h.table.entries() == {3: ("shared", refs)}
        assert_same(h, w)
    args = (np.array([0.0]), np.array([1], np.uint64), np.array([m.F_WRITE | m.F_ZERO], np.uint8))
    h.replay(0, *args)
    w.replay(0, *args)
    assert_same(h, w)
    assert h.table.entries() == {} and h.table.stat[m.T_FREED] == 1
    assert int(h.view.free[0]) == free0 - 2  # three pages back, the shared one freed
    assert h.mems[0].state.tolist() == [P, Z] and h.mems[0].c[m.C_COW] == 2


def test_balloon_takes_shared_frames_last_and_releases_them():
    """A frame sharing non-zero content holds data: the guest gives up its free (zero) frame
    first; ballooning a shared frame drops its reference and frees the page at zero."""
    h = _loaded([[4, 0, 4], [4]])
    _scan_all(h)  # frames with 4 shared (refs 3), frame 1 shared zero
    mem = h.mems[0]
    w = h.twin()
    assert mem.inflate(1, h.view.free) == w.inflate(0, 1) == 1
    assert mem.state[1] == B and h.table.entries() == {4: ("shared", 3)}
    assert mem.inflate(2, h.view.free) == w.inflate(0, 2) == 2
    assert_same(h, w)
    assert h.table.entries() == {4: ("shared", 1)}
    assert mem.c[m.C_GUEST_PAGEOUT] == 2


def test_share_before_swap_uses_the_table():
    """§4.3 share before swap: victims whose content is shared or a valid hint's are shared,
    not written; a unique page is written; no hint is recorded for a page being paged out; a
    swapped page comes back with its content and can be shared again."""
    h = _loaded([[6, 6, 8, 0, 9], [6, 8]], swap=10)
    assert h.scan([0, 0], [0, 1]) == 1  # 6 shared (refs 2)
    assert h.scan([0], [2]) == 0  # 8 a hint (VM 0 frame 2)
    w = h.twin()
    got = h.page_out(5, [3, 4], 0)  # zero page shared, unique 9 swapped
    assert got == w.page_out(5, [3, 4], 0) == 2
    assert h.mems[0].state.tolist() == [S, S, P, S, W]
    got = h.page_out(5, [0, 1], 1)  # 6 shares with the shared entry, 8 with the hint
    assert got == w.page_out(5, [0, 1], 1) == 2
    assert_same(h, w)
    assert h.table.entries() == {6: ("shared", 3), 8: ("shared", 2)}
    assert h.mems[0].c[m.C_SHARE_BEFORE_SWAP] == 1 and h.mems[1].c[m.C_SHARE_BEFORE_SWAP] == 2
    assert int(h.view.swap_free[0]) == 9 and 9 not in h.table.entries()
    # swap-in on a read restores content 9; a second VM frame with 9 could now share with it
    h.replay(0, np.array([0.0]), np.array([4], np.uint64), np.array([0], np.uint8))
    assert h.mems[0].state[4] == P and h.mems[0].cont[4] == 9 and h.mems[0].c[m.C_SWAP_IN] == 1
    h.check()


def test_image_applies_to_the_first_touch_at_home_only():
    """A datum's image content is what its first touch in its own frame loads (read or write);
    later writes give fresh content; a zero-filling write gives zeros; a datum re-homed by the
    guest is written anew."""
    h = Host([4], [np.array([11, 12, -1, 0], np.int64)])
    mem = h.mems[0]
    h.replay(0, np.arange(4, dtype=np.float64), np.arange(4, dtype=np.uint64), np.array([0, 1, 1, 1], np.uint8))
    assert mem.cont.tolist() == [11, 12, 13, 0]  # image, image, fresh (next id 13), image zero
    assert mem.state.tolist() == [P, P, P, Z]
    h.replay(0, np.array([5.0, 6.0]), np.array([0, 1], np.uint64), np.array([1, 3], np.uint8))
    assert mem.cont.tolist() == [14, 0, 13, 0] and mem.state.tolist() == [P, Z, P, Z]


# ----------------------------------------------------------------------------- table upkeep
def test_reserve_grows_the_table_and_drops_only_stale_hints():
    h = _loaded([list(range(1, 41))], capacity=8)
    _scan_all(h)  # 40 hints: the table grew
    assert h.table.capacity >= 80 and len(h.table.entries()) == 40
    # rewrite half the pages: their hints go stale; growing again drops exactly those
    h.replay(0, np.arange(20, dtype=np.float64), np.arange(20, dtype=np.uint64), np.ones(20, np.uint8))
    cap = h.table.capacity
    h.table.reserve(cap, *h.lists()[:2])
    assert h.table.capacity > cap and h.table.stat[m.T_PURGED] == 20
    assert sorted(h.table.entries()) == list(range(21, 41))


# ----------------------------------------------------------------------------- the mechanism
def test_content_scanner_registered_with_the_zero_scanners_rates():
    z, c = create("sharing", "zero"), create("sharing", "content")
    assert (c.rate_vm_pages_s, c.rate_total_pages_s) == (z.rate_vm_pages_s, z.rate_total_pages_s) == (50.0, 200.0)
    assert c.uses_contents and not z.uses_contents


def test_content_scanner_equals_zero_scanner_without_shared_contents():
    """Same rng, same candidates: with every non-zero page unique, the content scanner changes
    exactly the frames the zero scanner changes."""
    zero = [np.tile([1, 1, 0, 0, 1, 0, 0, 1], 4) == 1, np.tile([1, 0, 0, 1], 4) == 1]
    images = [np.where(z, 0, 100 * k + np.arange(z.size)) for k, z in enumerate(zero, start=1)]
    out = []
    for name in ("zero", "content"):
        h = _loaded(images)
        sc = create("sharing", name, {"rate_vm_pages_s": 8, "rate_total_pages_s": 100})
        rng = np.random.default_rng(3)
        for _ in range(3):
            sc.scan(h.vms, 1.0, rng, h.view)
        out.append([mem.state.copy() for mem in h.mems])
    for a, b in zip(*out, strict=True):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- the engine
def _params(duration, sharing="content", **kw):
    return SimParams(
        duration_s=duration,
        seed=0,
        tau=0.0,
        record_s=1.0,
        check=True,
        mechanisms={"sharing": sharing},
        settings={"sharing": {"rate_vm_pages_s": 1e6, "rate_total_pages_s": 1e6}, "paging": {"swap_rate_mb_s": 0.0}},
        **kw,
    )


def test_story_two_vms_share_their_os_pages_until_written():
    """Hand-worked: VMs a and b (4 MB = 1024 pages each) hold identical contents in frames
    0-511 (ids 1..512) and read every frame once at t = 0.5 s. The scanner (unlimited rate)
    visits pages at random, so after 10 s every frame has been seen: 512 contents, each one
    machine page shared by 2 frames (512 MB·256 reclaimed = 2 MB), the other 512 frames of
    each VM are zero pages (shared with the zero page). At t = 20 s a writes its frames 0-255:
    copy-on-write gives a 256 private pages, the shared pages keep one reference each."""
    img = np.full(1024, -1, np.int64)
    img[:512] = np.arange(1, 513)
    reads = [
        pd.DataFrame({"t": 0.5, "vm": n, "gpfn": np.arange(1024, dtype=np.uint64), "write": False, "zero": False})
        for n in ("a", "b")
    ]
    writes = pd.DataFrame({"t": 20.5, "vm": "a", "gpfn": np.arange(256, dtype=np.uint64), "write": True, "zero": False})
    trace = pd.concat([*reads, writes], ignore_index=True).sort_values("t", kind="stable")
    vms = [VMSpec("a", max_mb=4, overhead_mb=0), VMSpec("b", max_mb=4, overhead_mb=0)]
    host = HostSpec(system_mb=64, esx_mb=0, swap_mb=64, overhead_used_mb=0)
    res = simulate(vms, host, _params(30), trace, contents={"a": img, "b": img.copy()})
    v, hst = res.vms, res.host
    at10 = v[v["t"] == 10.0].set_index("vm")
    assert at10.loc["a", "shared"] == at10.loc["b", "shared"] == 4.0  # every frame shared
    assert at10.loc["a", "zero"] == 2.0
    assert float(hst[hst["t"] == 10.0]["shared_machine"].iloc[0]) == 2.0  # 512 pages
    assert float(hst[hst["t"] == 10.0]["free"].iloc[0]) == 62.0  # 64 - 2 MB of shared pages
    end = v[v["t"] == 30.0].set_index("vm")
    assert end.loc["a", "private"] == 1.0 and end.loc["a", "shared"] == 3.0
    assert float(hst["shared_machine"].iloc[-1]) == 2.0  # b still maps all 512 contents
    np.testing.assert_allclose(
        hst["free"] + hst["vm_machine"] + hst["overhead"] + hst["esx"] + hst["shared_machine"], hst["system"]
    )


def _small():
    from test_sim import _small_scenario

    return _small_scenario()


def test_conservation_every_step_and_determinism_with_content_sharing():
    """The small overcommitted three-VM scenario with synthetic contents: check=True asserts
    conservation (shared content pages included) and every reference count after every step;
    the same inputs give identical timelines; non-zero contents do get shared."""
    from pagecore.synth.workloads import trace_frame

    sc = _small()
    trace = trace_frame(sc)
    contents = synthetic_contents(sc, {"os_shared": {"windows": 1.0, "linux": 0.5}}, seed=5)
    p = SimParams(
        duration_s=sc.duration_s, seed=11, tau=0.75, record_s=2.0, check=True, mechanisms={"sharing": "content"}
    )
    r1 = simulate(sc.specs(), sc.host, p, trace, contents)
    r2 = simulate(sc.specs(), sc.host, p, trace, contents)
    pd.testing.assert_frame_equal(r1.vms, r2.vms)
    pd.testing.assert_frame_equal(r1.host, r2.host)
    assert r1.host["shared_machine"].max() > 0
    h = r1.host
    np.testing.assert_allclose(
        h["free"] + h["vm_machine"] + h["overhead"] + h["esx"] + h["shared_machine"], h["system"]
    )


def test_power_off_releases_shared_contents():
    img = np.arange(1, 257, dtype=np.int64)
    reads = [
        pd.DataFrame({"t": 0.5, "vm": n, "gpfn": np.arange(256, dtype=np.uint64), "write": False, "zero": False})
        for n in ("a", "b")
    ]
    vms = [VMSpec("a", max_mb=1, overhead_mb=0, stop_s=10), VMSpec("b", max_mb=1, overhead_mb=0, stop_s=20)]
    host = HostSpec(system_mb=16, esx_mb=0, swap_mb=64, overhead_used_mb=0)
    res = simulate(vms, host, _params(25), pd.concat(reads), contents={"a": img, "b": img})
    hst = res.host.set_index("t")
    assert hst.loc[9.0, "shared_machine"] == 1.0 and hst.loc[9.0, "free"] == 15.0
    assert hst.loc[15.0, "shared_machine"] == 1.0  # b still maps every content alone
    assert hst.loc[25.0, "shared_machine"] == 0.0 and hst.loc[25.0, "free"] == 16.0


# ----------------------------------------------------------------------------- contents API
def test_contents_from_page_tables():
    t = pd.DataFrame(
        {
            "vm": ["a", "a", "a", "b", "b"],
            "gpfn": np.array([0, 1, 3, 0, 2], np.uint64),
            "hash": np.array([50, 9, 50, 9, 77], np.uint64),
            "zero": [False, False, False, False, True],
        }
    )
    got = contents_from_page_tables(t, pages={"a": 5})
    assert got["a"].tolist() == [2, 1, -1, 2, -1]  # hash 9 -> 1, 50 -> 2 (hash order)
    assert got["b"].tolist() == [1, -1, 0]
    with pytest.raises(InputError, match="lacks column 'zero'"):
        contents_from_page_tables(t.drop(columns="zero"))


def test_engine_rejects_bad_contents():
    vms = [VMSpec("a", max_mb=1)]
    host = HostSpec(system_mb=16)
    p = SimParams(duration_s=1)
    with pytest.raises(InputError, match="not in the scenario"):
        simulate(vms, host, p, contents={"zz": np.zeros(3, np.int64)})
    with pytest.raises(InputError, match="has 300 pages, the VM only 256"):
        simulate(vms, host, p, contents={"a": np.zeros(300, np.int64)})
    with pytest.raises(InputError, match="content id -5"):
        simulate(vms, host, p, contents={"a": np.full(3, -5)})
    with pytest.raises(InputError, match="1-D integer array"):
        simulate(vms, host, p, contents={"a": np.zeros(3)})


def test_synthetic_contents_share_os_pages_across_guests_of_one_kind():
    sc = _small()  # w1, w2 windows (os_mb 4: 1024 pages), l1 linux (os_mb 2: 512 pages)
    c = synthetic_contents(sc, {"os_shared": {"windows": 0.5, "linux": 0.25}}, seed=1)
    w1, w2, l1 = c["w1"], c["w2"], c["l1"]
    assert len(w1) == 24 * 256 and (w1[1024:] == -1).all()
    assert np.array_equal(np.sort(w1[w1 > 0]), np.sort(w2[w2 > 0]))  # the same 512 contents
    assert (w1 > 0).sum() == 512 and (l1 > 0).sum() == 128
    assert not np.array_equal(w1[:1024], w2[:1024])  # placed at different frames
    assert not set(l1[l1 > 0]) & set(w1[w1 > 0])  # OS kinds share nothing
    assert np.array_equal(synthetic_contents(sc, {"os_shared": {"windows": 0.5, "linux": 0.25}}, seed=1)["w1"], w1)
    with pytest.raises(ConfigError, match="no fraction for OS kind 'linux'"):
        synthetic_contents(sc, {"os_shared": {"windows": 0.5}}, seed=1)


def test_content_mechanism_without_shared_contents_replays_like_the_zero_mechanism():
    """No content is given and every write is unique, so the content scanner can share only
    zero pages: the whole replay (ballooning, share-before-swap through the table, stalls) must
    equal the zero mechanism's, row for row."""
    from pagecore.synth.workloads import trace_frame

    sc = _small()
    trace = trace_frame(sc)
    out = []
    for name in ("zero", "content"):
        p = SimParams(duration_s=sc.duration_s, seed=4, tau=0.75, record_s=2.0, mechanisms={"sharing": name})
        out.append(simulate(sc.specs(), sc.host, p, trace))
    pd.testing.assert_frame_equal(out[0].vms, out[1].vms)
    pd.testing.assert_frame_equal(out[0].events, out[1].events)
    assert out[1].host["shared_machine"].max() == 0


def test_table_slot_hash_is_the_same_with_and_without_the_jit():
    """The pure-Python home slot (used under NUMBA_DISABLE_JIT) is the compiled one."""
    from numba import njit

    jit = njit(m._slot0_jit)
    keys = np.random.default_rng(0).integers(1, 1 << 62, 200)
    for k in [1, 2, (1 << 63) - 1, *keys.tolist()]:
        for mask in (7, 1023, (1 << 20) - 1):
            assert m._slot0_py(k, mask) == jit(np.int64(k), np.int64(mask))


def test_page_table_snapshot_replayed_through_the_engine():
    """The path ``pagecore host`` takes: page tables -> content ids -> a load trace -> the
    replay. Two 1-MB VMs whose tables hold the same 100 non-zero pages (different frames), 50
    zero pages each and 106 unique pages: after the scanner has seen everything, 100 contents
    are shared (one machine page each), the zero pages map the zero page, and the unique pages
    stay private: machine memory = 100 + 2·106 pages."""
    from pagecore.sim import load_trace

    rng = np.random.default_rng(1)
    rows = []
    for k, name in enumerate(("a", "b")):
        g = rng.permutation(256)
        h = np.concatenate([np.arange(1000, 1100), np.zeros(50), 5000 + 1000 * k + np.arange(106)]).astype(np.uint64)
        z = np.r_[np.zeros(100, bool), np.ones(50, bool), np.zeros(106, bool)]
        rows.append(pd.DataFrame({"vm": name, "gpfn": g.astype(np.uint64), "hash": h, "zero": z}))
    contents = contents_from_page_tables(pd.concat(rows), pages={"a": 256, "b": 256})
    trace = load_trace(contents, t=0.5)
    assert len(trace) == 512 and not trace["write"].any()
    vms = [VMSpec("a", max_mb=1, overhead_mb=0), VMSpec("b", max_mb=1, overhead_mb=0)]
    host = HostSpec(system_mb=16, esx_mb=0, swap_mb=64, overhead_used_mb=0)
    res = simulate(vms, host, _params(20), trace, contents)
    last = res.host.iloc[-1]
    assert last["shared_machine"] * 256 == 100
    assert last["vm_machine"] * 256 == 2 * 106
    v = res.vms[res.vms["t"] == 20.0].set_index("vm")
    assert (v["shared"] * 256).tolist() == [150, 150] and (v["zero"] * 256).tolist() == [50, 50]
