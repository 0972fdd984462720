"""Per-VM page state and the Numba kernels that change it (the simulator's hot path).

Two levels of memory are modelled for every VM, as in the paper (§2):

*Frames* are the VM's "physical" pages (PPNs, ``0 … pages−1``). ESX keeps one state per frame
(:data:`UNBACKED`, :data:`PRIVATE`, :data:`ZERO`, :data:`SHARED`, :data:`SWAPPED`,
:data:`BALLOONED`), which decides whether the frame is backed by a machine page (MPN).

*Data* is what the guest stores. An access trace names data by the frame it would live in on
an unconstrained guest (its ``gpfn``). Normally data ``x`` lives in frame ``x``; when the
balloon has taken frame ``x`` away, the guest keeps ``x`` in some other frame it chose itself
(``alias[x]``), evicting whatever that frame held — free pages first, then cold pages (CLOCK
second chance), then anything (paging to its own virtual disk; §3.2 "guest response"). So a
ballooned guest touches at most ``pages − balloon`` distinct frames, exactly like a real guest
with less memory, and the trace needs no knowledge of the balloon.

Frame state changes on a touch (write ``w``, zero-fill ``z``):

===========  =====================================  ============================================
state        read                                   write
===========  =====================================  ============================================
UNBACKED     new zeroed MPN → ZERO  (footnote 2)    new MPN → PRIVATE (ZERO if ``z``)
ZERO         –                                      PRIVATE unless ``z``
PRIVATE      –                                      ZERO if ``z``
SHARED       –                                      copy-on-write: new MPN → PRIVATE/ZERO (§4.1)
SWAPPED      swap-in: new MPN → PRIVATE (§3.3)      swap-in: new MPN → PRIVATE/ZERO
===========  =====================================  ============================================

Only zero pages are shared in this model (one machine zero page, counted with ESX's own
memory); the full content-based scanner is another module's job.

Layers (STYLE.md): ``@njit`` workers below write into per-VM arrays and a counter vector;
:class:`VMMemory` owns the arrays and is the public wrapper.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pagecore._jit import SERIAL

# frame states
UNBACKED, PRIVATE, ZERO, SHARED, SWAPPED, BALLOONED = 0, 1, 2, 3, 4, 5
STATE_NAMES = ("unbacked", "private", "zero", "shared", "swapped", "ballooned")
# owner[] sentinels
FREE = -2  # frame holds no guest data (a deflated balloon page)
BALLOON = -1  # frame is pinned by the balloon driver
# trace flags
F_WRITE = 1
F_ZERO = 2

# counter slots (int64[NC]); slots 0..5 are the number of frames in each state
C_SAMPLE_HITS = 6  # sampled frames touched for the first time in the current period
C_DISTINCT = 7  # distinct frames touched in the current period
C_SWAP_IN = 8  # pages swapped in on touch (§3.3)
C_COW = 9  # copy-on-write breaks of shared zero pages
C_GUEST_FAULT = 10  # touches of data the guest had to re-home (balloon took its frame)
C_GUEST_PAGEOUT = 11  # in-use data the guest evicted to its virtual disk
C_SWAP_OUT = 12  # pages written to ESX swap (§3.3)
C_SHARE_BEFORE_SWAP = 13  # zero pages shared by the swap daemon instead of written (§4.3)
C_SCAN_SHARED = 14  # zero pages shared by the background scanner
C_EVENTS = 15  # trace events replayed
NC = 16


@njit(**SERIAL)
def _guest_pick(owner, state, refbit, hands, avoid, c):
    """The frame the guest gives up next: a free (zero-content) frame, else a cold one (CLOCK
    second chance), else any unballooned frame. ``hands`` = [free hand, clock hand]. Returns -1
    only if every frame is ballooned. ``avoid`` is never chosen."""
    n = owner.shape[0]
    h = hands[0]
    # frames with zero content (or none) are the guest's free list; skip the pass if none
    nfree = c[UNBACKED] + c[ZERO] + c[SHARED]
    for _ in range(n if nfree > 0 else 0):
        h += 1
        if h >= n:
            h = 0
        s = state[h]
        if h != avoid and s != BALLOONED and (owner[h] == FREE or s == UNBACKED or s == ZERO or s == SHARED):
            hands[0] = h
            return h
    hands[0] = h
    h = hands[1]
    for _ in range(2 * n + 1):
        h += 1
        if h >= n:
            h = 0
        if state[h] == BALLOONED or h == avoid:
            continue
        if refbit[h]:
            refbit[h] = 0
            continue
        hands[1] = h
        return h
    hands[1] = h
    return -1


@njit(**SERIAL)
def _back(state, c, host, f, newstate):
    """Give frame ``f`` a fresh machine page (host free −1) and state ``newstate``."""
    c[state[f]] -= 1
    state[f] = newstate
    c[newstate] += 1
    host[0] -= 1


@njit(**SERIAL)
def _set(state, c, f, newstate):
    c[state[f]] -= 1
    state[f] = newstate
    c[newstate] += 1


@njit(**SERIAL)
def _resident(x, w, owner, alias, state):
    """Whether touching datum ``x`` (a write if ``w``) needs no new machine page: the datum
    sits in a frame backed by a machine page it may use as is (private or zero-content
    private page; a shared page only for a read)."""
    f = -1
    if owner[x] == x:
        f = x
    else:
        a = alias[x]
        if a >= 0 and owner[a] == x:
            f = a
    if f < 0:
        return False
    s = state[f]
    return s == PRIVATE or s == ZERO or (s == SHARED and not w)


@njit(**SERIAL)
def replay(ts, gpfn, flags, lo, t_end, state, owner, alias, refbit, sampled, stamp, period, hands, c, host):
    """Replay trace events ``lo …`` with ``ts < t_end`` through the touch path.

    Per event: resolve the frame holding the data (re-homing it if the balloon took its
    frame), apply the ESX fault rules of the module docstring, set the CLOCK reference bit,
    count the first touch of a sampled frame (§5.3) and the first touch of the frame in the
    current sampling period (true active memory). Stops early, before an event that needs a new
    machine page, when the host has none (``host[0] <= 0``): the VM waits for reclamation.
    Touches of data already in a backed frame (a read or write of a private page, a read of a
    shared one) need no machine memory and go on.

    Returns the index of the first event not replayed.
    """
    i = lo
    n = ts.shape[0]
    while i < n and ts[i] < t_end:
        x = np.int64(gpfn[i])
        fl = flags[i]
        w = (fl & F_WRITE) != 0
        z = (fl & F_ZERO) != 0
        if host[0] <= 0 and not _resident(x, w, owner, alias, state):
            return i
        if owner[x] == x:
            f = x
        else:
            a = alias[x]
            if a >= 0 and owner[a] == x:
                f = a
            elif owner[x] == FREE:
                f = x
                owner[x] = x
            else:
                # the balloon (or another datum) holds frame x: the guest re-homes x
                f = _guest_pick(owner, state, refbit, hands, -1, c)
                c[C_GUEST_FAULT] += 1
                o = owner[f]
                if o >= 0 and o != x and state[f] != ZERO and state[f] != SHARED and state[f] != UNBACKED:
                    c[C_GUEST_PAGEOUT] += 1
                owner[f] = x
                alias[x] = f
                w = True  # the guest writes x's data into its new frame
        s = state[f]
        if s == UNBACKED:
            _back(state, c, host, f, PRIVATE if (w and not z) else ZERO)
        elif s == ZERO:
            if w and not z:
                _set(state, c, f, PRIVATE)
        elif s == PRIVATE:
            if z:
                _set(state, c, f, ZERO)
        elif s == SHARED:
            if w:
                _back(state, c, host, f, ZERO if z else PRIVATE)
                c[C_COW] += 1
        elif s == SWAPPED:
            _back(state, c, host, f, ZERO if z else PRIVATE)
            c[C_SWAP_IN] += 1
        refbit[f] = 1
        if sampled[f]:
            sampled[f] = 0
            c[C_SAMPLE_HITS] += 1
        if stamp[f] != period:
            stamp[f] = period
            c[C_DISTINCT] += 1
        c[C_EVENTS] += 1
        i += 1
    return i


@njit(**SERIAL)
def inflate(count, state, owner, refbit, hands, c, host):
    """Balloon ``count`` frames the guest chooses (free, then cold, then any; §3.2).

    Each frame's machine page (if any) returns to the host; a swapped frame's slot is freed.
    Returns the number of frames ballooned."""
    done = 0
    for _ in range(count):
        f = _guest_pick(owner, state, refbit, hands, -1, c)
        if f < 0:
            break
        s = state[f]
        o = owner[f]
        if o >= 0 and s == PRIVATE:
            c[C_GUEST_PAGEOUT] += 1
        if s == PRIVATE or s == ZERO:
            host[0] += 1
        owner[f] = BALLOON
        refbit[f] = 0
        _set(state, c, f, BALLOONED)
        done += 1
    return done


@njit(**SERIAL)
def deflate(count, state, owner, hands, c, host, zero_fill):
    """Release ``count`` ballooned frames back to the guest's free list. ``hands[2]`` is the
    deflate hand. With ``zero_fill`` the guest zeroes each released page (Windows' zero page
    thread moves freed pages to its zeroed list), which backs it with a machine page while
    the host has one; otherwise it stays unbacked. Returns frames released."""
    n = state.shape[0]
    done = 0
    h = hands[2]
    scanned = 0
    while done < count and scanned < n:
        h += 1
        if h >= n:
            h = 0
        scanned += 1
        if state[h] == BALLOONED:
            if zero_fill and host[0] > 0:
                _back(state, c, host, h, ZERO)
            else:
                _set(state, c, h, UNBACKED)
            owner[h] = FREE
            done += 1
    hands[2] = h
    return done


@njit(**SERIAL)
def page_out(count, candidates, state, c, host, swap_free):
    """The swap daemon: reclaim up to ``count`` machine pages from random ``candidates``
    (§3.3), sharing zero pages instead of writing them (share before swap, §4.3).

    ``swap_free`` is int64[1], decremented per page written. Returns pages reclaimed."""
    done = 0
    for j in range(candidates.shape[0]):
        if done >= count:
            break
        f = candidates[j]
        s = state[f]
        if s == ZERO:
            _set(state, c, f, SHARED)
            host[0] += 1
            c[C_SHARE_BEFORE_SWAP] += 1
            done += 1
        elif s == PRIVATE and swap_free[0] > 0:
            _set(state, c, f, SWAPPED)
            host[0] += 1
            swap_free[0] -= 1
            c[C_SWAP_OUT] += 1
            done += 1
    return done


@njit(**SERIAL)
def scan_share(candidates, state, c, host):
    """Background page-sharing scan of ``candidates``: zero pages become shared. Returns pages
    shared."""
    done = 0
    for j in range(candidates.shape[0]):
        f = candidates[j]
        if state[f] == ZERO:
            _set(state, c, f, SHARED)
            host[0] += 1
            c[C_SCAN_SHARED] += 1
            done += 1
    return done


class VMMemory:
    """One VM's frames: ESX state, guest ownership, CLOCK bits, sampling marks, counters.

    Parameters
    ----------
    pages : int
        The VM's configured ("physical", max) size in 4 KiB pages.
    """

    def __init__(self, pages: int):
        if pages <= 0:
            raise ValueError(f"a VM needs at least one page, got {pages}")
        self.pages = int(pages)
        self.state = np.zeros(pages, np.uint8)
        self.owner = np.arange(pages, dtype=np.int64)
        self.alias = np.full(pages, -1, np.int64)
        self.refbit = np.zeros(pages, np.uint8)
        self.sampled = np.zeros(pages, np.uint8)
        self.stamp = np.full(pages, -1, np.int32)
        self.hands = np.array([-1, -1, -1], np.int64)
        self.c = np.zeros(NC, np.int64)
        self.c[UNBACKED] = pages

    def replay(self, ts, gpfn, flags, lo: int, t_end: float, period: int, host) -> int:
        """Replay trace events ``lo …`` with ``ts < t_end`` through :func:`replay` on this VM's
        frames; returns the index of the first event not replayed."""
        return replay(
            ts,
            gpfn,
            flags,
            lo,
            t_end,
            self.state,
            self.owner,
            self.alias,
            self.refbit,
            self.sampled,
            self.stamp,
            period,
            self.hands,
            self.c,
            host,
        )

    # counts -------------------------------------------------------------------------------
    @property
    def alloc(self) -> int:
        """Frames mapped to machine memory, shared ones included (the paper's "Alloc")."""
        c = self.c
        return int(c[PRIVATE] + c[ZERO] + c[SHARED])

    @property
    def machine(self) -> int:
        """Machine pages this VM holds alone (private and not-yet-shared zero pages)."""
        return int(self.c[PRIVATE] + self.c[ZERO])

    def count(self, st: int) -> int:
        return int(self.c[st])

    def check(self) -> None:
        """Assert the counters match the state array (for tests)."""
        got = np.bincount(self.state, minlength=6)[:6]
        if not np.array_equal(got, self.c[:6]):
            raise AssertionError(f"state counters {self.c[:6].tolist()} != actual {got.tolist()}")
