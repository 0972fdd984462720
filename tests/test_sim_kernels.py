"""The simulator's Numba kernels (pagecore.sim.memory) against slow pure-Python twins written
from the module docstring: the touch path (replay), the guest's frame choice, balloon
inflate/deflate, the swap daemon and the zero-page scan. These twins are the zero-page model
written before page contents existed: they check that, without content sharing, the kernels
still change frame states exactly as before. The content-sharing twins are in
tests/test_sim_content.py."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import scaled

from pagecore.sim import memory as m

U, P, Z, S, W, B = m.UNBACKED, m.PRIVATE, m.ZERO, m.SHARED, m.SWAPPED, m.BALLOONED


# ----------------------------------------------------------------------------- slow twins
def _set(state, c, f, new):
    c[state[f]] -= 1
    state[f] = new
    c[new] += 1


def pick_twin(owner, state, refbit, hands, c):
    n = len(owner)
    if c[U] + c[Z] + c[S] > 0:
        for step in range(1, n + 1):
            h = (hands[0] + step) % n
            if state[h] != B and (owner[h] == m.FREE or state[h] in (U, Z, S)):
                hands[0] = h
                return h
        hands[0] = (hands[0] + n) % n
    h = hands[1]
    for _ in range(2 * n + 1):
        h = (h + 1) % n
        if state[h] == B:
            continue
        if refbit[h]:
            refbit[h] = 0
            continue
        hands[1] = h
        return h
    hands[1] = h
    return -1


def replay_twin(ts, g, fl, lo, t_end, state, owner, alias, refbit, sampled, stamp, period, hands, c, host):
    i = lo
    while i < len(ts) and ts[i] < t_end:
        x = int(g[i])
        w, z = bool(fl[i] & 1), bool(fl[i] & 2)
        if host[0] <= 0:
            home = x if owner[x] == x else (alias[x] if alias[x] >= 0 and owner[alias[x]] == x else -1)
            if home < 0 and owner[x] == m.FREE:
                home = x
            ww = w
            if home < 0:  # the frame the guest would re-home x to (a pick on copies), written
                home, ww = pick_twin(owner, state, refbit.copy(), hands.copy(), c), True
            if home < 0 or not (state[home] in (P, Z) or (state[home] == S and not ww)):
                return i  # only an event that needs a new machine page waits
        if owner[x] == x:
            f = x
        elif alias[x] >= 0 and owner[alias[x]] == x:
            f = alias[x]
        elif owner[x] == m.FREE:
            f = x
            owner[x] = x
        else:
            f = pick_twin(owner, state, refbit, hands, c)
            c[m.C_GUEST_FAULT] += 1
            o = owner[f]
            if o >= 0 and o != x and state[f] == P:
                c[m.C_GUEST_PAGEOUT] += 1
            owner[f] = x
            alias[x] = f
            w = True
        s = state[f]
        if s == U:
            _set(state, c, f, P if (w and not z) else Z)
            host[0] -= 1
        elif s == Z and w and not z:
            _set(state, c, f, P)
        elif s == P and z:
            _set(state, c, f, Z)
        elif s == S and w:
            _set(state, c, f, Z if z else P)
            host[0] -= 1
            c[m.C_COW] += 1
        elif s == W:
            _set(state, c, f, Z if z else P)
            host[0] -= 1
            c[m.C_SWAP_IN] += 1
        refbit[f] = 1
        if sampled[f]:
            sampled[f] = 0
            c[m.C_SAMPLE_HITS] += 1
        if stamp[f] != period:
            stamp[f] = period
            c[m.C_DISTINCT] += 1
        c[m.C_EVENTS] += 1
        i += 1
    return i


def inflate_twin(count, state, owner, refbit, hands, c, host):
    done = 0
    for _ in range(count):
        f = pick_twin(owner, state, refbit, hands, c)
        if f < 0:
            break
        if owner[f] >= 0 and state[f] == P:
            c[m.C_GUEST_PAGEOUT] += 1
        if state[f] in (P, Z):
            host[0] += 1
        elif state[f] == m.SHARED:
            c[m.C_BALLOON_SHARED] += 1
        owner[f] = m.BALLOON
        refbit[f] = 0
        _set(state, c, f, B)
        done += 1
    return done


def page_out_twin(count, cand, state, c, host, swap_free):
    done = 0
    for f in cand:
        if done >= count:
            break
        if state[f] == Z:
            _set(state, c, f, S)
            host[0] += 1
            c[m.C_SHARE_BEFORE_SWAP] += 1
            done += 1
        elif state[f] == P and swap_free[0] > 0:
            _set(state, c, f, W)
            host[0] += 1
            swap_free[0] -= 1
            c[m.C_SWAP_OUT] += 1
            done += 1
    return done


# ----------------------------------------------------------------------------- helpers
ARRAYS = ("state", "owner", "alias", "refbit", "sampled", "stamp", "hands", "c")


def _snapshot(mem):
    return {k: getattr(mem, k).copy() for k in ARRAYS}


def _random_vm(rng, n=64):
    """A VM whose frames went through touches, ballooning, deflation and paging."""
    mem = m.VMMemory(n)
    host = np.array([10**6], np.int64)
    swap = np.array([10**6], np.int64)
    k = 4 * n
    t = np.sort(rng.random(k))
    g = rng.integers(0, n, k).astype(np.uint64)
    f = rng.integers(0, 4, k).astype(np.uint8)
    mem.replay(t, g, f, 0, 2.0, 0, host)
    mem.inflate(int(rng.integers(1, n // 2)), host)
    mem.deflate(int(rng.integers(0, n // 8)), host, bool(rng.integers(2)))
    m.page_out(n // 8, rng.permutation(n).astype(np.int64), mem.state, mem.c, host, swap)
    mem.sampled[rng.integers(0, n, 10)] = 1
    mem.refbit[:] = rng.integers(0, 2, n)
    mem.check()
    return mem, host


def _trace(rng, n, k):
    t = np.sort(rng.random(k) * 10)
    return t, rng.integers(0, n, k).astype(np.uint64), rng.integers(0, 4, k).astype(np.uint8)


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("seed", range(scaled(25, 4)))
def test_replay_matches_twin(seed):
    rng = np.random.default_rng(seed)
    mem, host = _random_vm(rng)
    ref = _snapshot(mem)
    host_ref = host.copy()
    t, g, f = _trace(rng, mem.pages, scaled(3000, 300))
    i = mem.replay(t, g, f, 0, 7.5, 3, host)
    j = replay_twin(
        t,
        g,
        f,
        0,
        7.5,
        ref["state"],
        ref["owner"],
        ref["alias"],
        ref["refbit"],
        ref["sampled"],
        ref["stamp"],
        3,
        ref["hands"],
        ref["c"],
        host_ref,
    )
    assert i == j
    for k in ARRAYS:
        np.testing.assert_array_equal(getattr(mem, k), ref[k], err_msg=k)
    assert host[0] == host_ref[0]
    mem.check()


@pytest.mark.parametrize("seed", range(scaled(25, 4)))
def test_replay_without_free_memory_matches_twin(seed):
    """Random histories replayed with no free machine page: the kernel goes on exactly over
    the events the twin finds need no new page (its re-homing frame: a pick on copies)."""
    rng = np.random.default_rng(5000 + seed)
    mem, _ = _random_vm(rng)
    host = np.array([0], np.int64)
    ref = _snapshot(mem)
    host_ref = host.copy()
    t, g, f = _trace(rng, mem.pages, scaled(3000, 300))
    i = mem.replay(t, g, f, 0, 10.0, 3, host)
    keys = ("state", "owner", "alias", "refbit", "sampled", "stamp")
    j = replay_twin(t, g, f, 0, 10.0, *(ref[x] for x in keys), 3, ref["hands"], ref["c"], host_ref)
    assert i == j and host[0] == host_ref[0] == 0
    for x in ARRAYS:
        np.testing.assert_array_equal(getattr(mem, x), ref[x], err_msg=x)
    mem.check()


@pytest.mark.parametrize("k", [1, m.AHEAD - 1, m.AHEAD, m.AHEAD + 1, 2 * m.AHEAD + 3])
@pytest.mark.parametrize("start", [0, 1])
def test_replay_matches_twin_around_the_prefetch_distance(k, start):
    """Traces just shorter and longer than the prefetch distance (the kernel reads ``AHEAD``
    events ahead to prefetch their frames), replayed from a later start, stopping at ``t_end``
    or at the trace's end: the prefetch is a hint and changes nothing."""
    for t_end in (5.0, 11.0):
        rng = np.random.default_rng(1000 * k + 10 * start + int(t_end))
        mem, host = _random_vm(rng)
        ref = _snapshot(mem)
        host_ref = host.copy()
        t, g, f = _trace(rng, mem.pages, k)
        i = mem.replay(t, g, f, start, t_end, 1, host)
        keys = ("state", "owner", "alias", "refbit", "sampled", "stamp")
        j = replay_twin(t, g, f, start, t_end, *(ref[x] for x in keys), 1, ref["hands"], ref["c"], host_ref)
        assert i == j
        for x in ARRAYS:
            np.testing.assert_array_equal(getattr(mem, x), ref[x], err_msg=x)
        assert host[0] == host_ref[0]


@pytest.mark.parametrize("free", [0, 1, 5])
def test_replay_stalls_without_free_memory(free):
    """With ``free`` machine pages left, the VM replays until it would need one more."""
    mem = m.VMMemory(16)
    host = np.array([free], np.int64)
    t = np.arange(10, dtype=np.float64)
    g = np.arange(10, dtype=np.uint64)
    f = np.full(10, m.F_WRITE, np.uint8)
    i = mem.replay(t, g, f, 0, 100.0, 0, host)
    assert i == free
    assert host[0] == 0
    assert mem.alloc == free


def test_replay_without_free_memory_only_new_pages_wait():
    """Hand-worked: frames 0 (private) and 1 (shared zero page) are mapped, frame 2 is not,
    and the host has no free page. Re-reading/re-writing frame 0 and reading frame 1 need no
    machine page and go on; writing frame 1 (copy-on-write) would need one and waits."""
    mem = m.VMMemory(4)
    host = np.array([3], np.int64)
    t0 = np.array([0.0, 0.1])
    mem.replay(t0, np.array([0, 1], np.uint64), np.array([m.F_WRITE, 0], np.uint8), 0, 1.0, 0, host)
    m.scan_share(np.array([1], np.int64), mem.state, mem.c, host)  # frame 1 (zero) becomes shared
    assert mem.state[0] == P and mem.state[1] == S
    host[0] = 0
    t = np.array([1.0, 1.1, 1.2, 1.3, 1.4])
    g = np.array([0, 0, 1, 1, 2], np.uint64)
    f = np.array([0, m.F_WRITE, 0, m.F_WRITE, 0], np.uint8)
    i = mem.replay(t, g, f, 0, 100.0, 1, host)
    assert i == 3  # stops at the write to the shared frame
    assert host[0] == 0 and mem.state[1] == S
    # an unbacked frame also waits
    assert mem.replay(t, g, f, 4, 100.0, 1, host) == 4


def test_replay_without_free_memory_goes_on_where_the_guest_finds_a_backed_frame():
    """Hand-worked: a guest's data read (zero pages, backed), no free machine page left. (a)
    All four read; the balloon takes frames 0 and 1 (the guest's free list) and gives them back
    zero-filled (Windows): frame 0 is backed again, its datum's own freed frame; reading datum
    0 needs no new page and goes on. (b) All four read; the balloon holds frame 0: the guest
    re-homes datum 0 to its next free frame, 1 (backed, zero), and writes it there: no new page
    either. Both used to wait (only a datum's own or aliased frame was looked at). (c) Only
    data 0 and 3 read: the next free frame, 1, is unbacked; the re-homing needs a page and
    waits."""
    for case in "abc":
        mem = m.VMMemory(4)
        host = np.array([10], np.int64)
        g = np.array([0, 3] if case == "c" else [0, 1, 2, 3], np.uint64)
        mem.replay(np.arange(g.size, dtype=np.float64), g, np.zeros(g.size, np.uint8), 0, 9.0, 0, host)
        if case == "a":
            mem.inflate(2, host)
            mem.deflate(2, host, True)
            assert mem.owner.tolist() == [m.FREE, m.FREE, 2, 3] and mem.state.tolist() == [Z, Z, Z, Z]
        else:
            mem.inflate(1, host)
            assert mem.state[0] == B
        host[0] = 0
        before = mem.state.copy()
        i = mem.replay(np.array([10.0]), np.array([0], np.uint64), np.zeros(1, np.uint8), 0, 99.0, 1, host)
        assert host[0] == 0
        if case == "c":
            assert i == 0 and mem.state.tolist() == before.tolist() == [B, U, U, Z]
        else:
            assert i == 1
            assert mem.state.tolist() == ([Z, Z, Z, Z] if case == "a" else [B, P, Z, Z])
        mem.check()


def test_replay_empty_and_one_event():
    mem = m.VMMemory(4)
    host = np.array([10], np.int64)
    e = np.zeros(0)
    assert mem.replay(e, e.astype(np.uint64), e.astype(np.uint8), 0, 1.0, 0, host) == 0
    # a read of an untouched page backs it with a zeroed machine page (footnote 2)
    one = np.array([0.5])
    i = mem.replay(one, np.array([2], np.uint64), np.array([0], np.uint8), 0, 1.0, 0, host)
    assert i == 1 and mem.state[2] == Z and host[0] == 9


@pytest.mark.parametrize("seed", range(scaled(20, 3)))
def test_inflate_and_page_out_match_twins(seed):
    rng = np.random.default_rng(100 + seed)
    mem, host = _random_vm(rng)
    ref = _snapshot(mem)
    h2 = host.copy()
    k = int(rng.integers(0, mem.pages))
    a = mem.inflate(k, host)
    b = inflate_twin(k, ref["state"], ref["owner"], ref["refbit"], ref["hands"], ref["c"], h2)
    assert a == b
    for key in ("state", "owner", "refbit", "hands", "c"):
        np.testing.assert_array_equal(getattr(mem, key), ref[key], err_msg=key)
    cand = rng.permutation(mem.pages).astype(np.int64)
    s1, s2 = np.array([3], np.int64), np.array([3], np.int64)
    a = m.page_out(10, cand, mem.state, mem.c, host, s1)
    b = page_out_twin(10, cand, ref["state"], ref["c"], h2, s2)
    assert a == b and s1[0] == s2[0] and host[0] == h2[0]
    np.testing.assert_array_equal(mem.state, ref["state"])
    mem.check()


def test_guest_gives_free_pages_first_then_cold_then_any():
    """§3.2: a balloon takes free (zero/unbacked) frames first, then cold ones (CLOCK), and
    only then frames in use, which the guest must page to its own disk."""
    mem = m.VMMemory(8)
    host = np.array([100], np.int64)
    t = np.arange(8, dtype=np.float64)
    g = np.arange(8, dtype=np.uint64)
    fl = np.array([1, 1, 1, 1, 1, 1, 3, 3], np.uint8)  # frames 6, 7 zero-filled (guest free list)
    mem.replay(t, g, fl, 0, 100.0, 0, host)
    mem.refbit[:] = [1, 0, 1, 1, 1, 1, 1, 1]  # frame 1 is cold
    mem.inflate(2, host)
    assert sorted(np.flatnonzero(mem.state == B)) == [6, 7]
    assert mem.c[m.C_GUEST_PAGEOUT] == 0
    mem.inflate(1, host)
    assert mem.state[1] == B
    assert mem.c[m.C_GUEST_PAGEOUT] == 1
    mem.check()


def test_share_before_swap():
    """§4.3: the swap daemon shares a zero page instead of writing it."""
    mem = m.VMMemory(4)
    mem.state[:] = [Z, P, Z, P]
    mem.cont[:] = [0, 7, 0, 8]
    mem.c[:6] = np.bincount(mem.state, minlength=6)
    host = np.array([0], np.int64)
    swap = np.array([100], np.int64)
    n = m.page_out(3, np.array([1, 0, 2, 3], np.int64), mem.state, mem.c, host, swap)
    assert n == 3
    assert mem.state.tolist() == [S, W, S, P]
    assert mem.c[m.C_SHARE_BEFORE_SWAP] == 2 and mem.c[m.C_SWAP_OUT] == 1 and host[0] == 3
    mem.check()


def test_balloon_fault_rehomes_data_into_a_free_frame():
    """Touching data whose frame the balloon holds: the guest keeps it in a free frame
    instead (no disk I/O), so the VM still touches at most pages − balloon frames."""
    mem = m.VMMemory(4)
    host = np.array([100], np.int64)
    one = np.array([0.0])
    # frame 0 written (in use); balloon takes frames 1..3 (unbacked = free)
    mem.replay(one, np.array([0], np.uint64), np.array([1], np.uint8), 0, 1.0, 0, host)
    mem.inflate(2, host)
    assert mem.state.tolist() == [P, B, B, U]
    mem.replay(one, np.array([2], np.uint64), np.array([0], np.uint8), 0, 1.0, 0, host)
    assert mem.alias[2] == 3 and mem.owner[3] == 2 and mem.state[3] == P
    assert mem.c[m.C_GUEST_FAULT] == 1 and mem.c[m.C_GUEST_PAGEOUT] == 0
    mem.check()


def test_balloon_taking_a_shared_free_page_frees_no_machine_page():
    """Hand-worked (§3.2, §4.3): three frames read while untouched (zeroed machine pages,
    footnote 2: host 100 -> 97); the scanner shares frame 0 (host 98). The guest's balloon
    takes free frames in order: frame 0 is shared, so ballooning it frees nothing (host stays
    98) and is counted in C_BALLOON_SHARED; frame 1 is a private zero page (host 99)."""
    mem = m.VMMemory(3)
    host = np.array([100], np.int64)
    mem.replay(np.arange(3.0), np.arange(3, dtype=np.uint64), np.zeros(3, np.uint8), 0, 10.0, 0, host)
    assert mem.state.tolist() == [Z, Z, Z] and host[0] == 97
    assert m.scan_share(np.array([0], np.int64), mem.state, mem.c, host) == 1 and host[0] == 98
    assert mem.inflate(1, host) == 1
    assert mem.state.tolist() == [B, Z, Z] and host[0] == 98 and mem.c[m.C_BALLOON_SHARED] == 1
    assert mem.inflate(1, host) == 1
    assert mem.state.tolist() == [B, B, Z] and host[0] == 99 and mem.c[m.C_BALLOON_SHARED] == 1
    mem.check()


def test_cow_break_and_rehoming_into_a_shared_frame_count_as_cow():
    """Hand-worked: a write to a shared zero frame breaks copy-on-write (C_COW 1, a new
    machine page); data the guest re-homes into a shared free frame is written there, which is
    a second copy-on-write break (C_COW 2), not a balloon loss."""
    mem = m.VMMemory(3)
    host = np.array([100], np.int64)
    mem.replay(np.arange(3.0), np.arange(3, dtype=np.uint64), np.zeros(3, np.uint8), 0, 10.0, 0, host)
    m.scan_share(np.array([0, 1, 2], np.int64), mem.state, mem.c, host)
    assert mem.state.tolist() == [S, S, S] and host[0] == 100
    mem.replay(np.array([0.0]), np.array([0], np.uint64), np.array([1], np.uint8), 0, 1.0, 0, host)
    assert mem.state.tolist() == [P, S, S] and mem.c[m.C_COW] == 1 and host[0] == 99
    mem.inflate(1, host)  # the balloon takes frame 1 (shared, free): nothing freed
    assert mem.state.tolist() == [P, B, S] and mem.c[m.C_BALLOON_SHARED] == 1 and host[0] == 99
    # datum 1's frame is ballooned: the guest re-homes it into free frame 2 (shared) and writes it
    mem.replay(np.array([0.0]), np.array([1], np.uint64), np.array([0], np.uint8), 0, 1.0, 0, host)
    assert mem.alias[1] == 2 and mem.state.tolist() == [P, B, P]
    assert mem.c[m.C_COW] == 2 and mem.c[m.C_BALLOON_SHARED] == 1 and host[0] == 98
    mem.check()
