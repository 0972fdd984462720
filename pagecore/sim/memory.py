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

*Contents.* Every frame also carries a content id (``cont``, int64; 0 = all zeros), the
simulator's stand-in for the page's bytes and their 64-bit hash (§4.2: ids are exact, so a
hash match is a verified match). A write gives a frame fresh unique content (the host-wide
counter ``next_id``), a zero-filling write content 0. The first touch of a datum in its own
frame takes the datum's *image* content if one was given (``image[x] >= 0``: what the guest
loads at boot or holds in a snapshot, see :mod:`pagecore.sim.contents`); otherwise a read
gives a zeroed page and a write fresh content. Data the guest re-homes into another frame is
written anew (fresh content), and data returning to its own freed frame is touched like data
without an image, both as the zero-page model always treated them.

Invariants: ZERO frames hold content 0, PRIVATE and SWAPPED frames content > 0, SHARED frames
content 0 (mapped to the one machine zero page, counted with ESX's own memory) or > 0 (mapped
to the *shared page* of that content in the host-wide :class:`ContentTable`, one machine page
per shared content, §4.3). Sharing non-zero contents is the content scanner's job
(:func:`scan_content`, :func:`page_out_content`); a write to a shared page breaks
copy-on-write and drops the shared page's reference count, freeing it at zero.

Layers (STYLE.md): ``@njit`` workers below write into per-VM arrays and a counter vector;
:class:`VMMemory` owns the arrays and is the public wrapper.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pagecore._intrinsics import prefetch_write
from pagecore._jit import INLINE, JIT_DISABLED, SERIAL

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
C_COW = 9  # copy-on-write breaks of shared pages (zero or content; a re-homing write included)
C_GUEST_FAULT = 10  # touches of data the guest had to re-home (balloon took its frame)
C_GUEST_PAGEOUT = 11  # in-use data the guest evicted to its virtual disk
C_SWAP_OUT = 12  # pages written to ESX swap (§3.3)
C_SHARE_BEFORE_SWAP = 13  # zero pages shared by the swap daemon instead of written (§4.3)
C_SCAN_SHARED = 14  # zero pages shared by the background scanner
C_EVENTS = 15  # trace events replayed
C_SHARED_CONTENT = 16  # frames SHARED with non-zero content (mapped to a ContentTable page)
C_BALLOON_SHARED = 17  # shared frames (zero or content) the guest handed to its balloon: no machine page freed
NC = 18

# ContentTable: one global open-addressing hash table of shared frames and hint frames (§4.3)
EMPTY = -1  # table key of an unused slot
TOMB = -2  # table key of a deleted slot
# ContentTable.stat slots
T_SHARED = 0  # shared entries = machine pages backing shared non-zero contents
T_HINTS = 1  # hint entries (some may be stale)
T_USED = 2  # occupied slots, tombstones included
T_LOOKUPS = 3  # lookups of a scanned page's content
T_SHARED_MATCH = 4  # lookups that matched a shared entry
T_HINT_MATCH = 5  # lookups that matched a valid hint (both pages shared)
T_STALE = 6  # lookups that found a stale hint (its page changed since)
T_FREED = 7  # shared pages freed when their reference count reached zero
T_PURGED = 8  # stale hints dropped when the table was rebuilt
NT = 9


@njit(**INLINE)
def _guest_free(h, owner, state, cont):
    """Whether frame ``h`` is on the guest's free list (:func:`_guest_pick`'s first pass, and
    :func:`_guest_peek`'s): not ballooned, and free, unbacked or of zero content."""
    s = state[h]
    return s != BALLOONED and (owner[h] == FREE or s == UNBACKED or s == ZERO or (s == SHARED and cont[h] == 0))


@njit(**SERIAL)
def _guest_pick(owner, state, cont, refbit, hands, avoid, c):
    """The frame the guest gives up next: a free (zero-content) frame, else a cold one (CLOCK
    second chance), else any unballooned frame. A frame sharing non-zero content holds data,
    so it is not free. ``hands`` = [free hand, clock hand]. Returns -1
    only if every frame is ballooned. ``avoid`` is never chosen."""
    n = owner.shape[0]
    h = hands[0]
    # frames with zero content (or none) are the guest's free list; skip the pass if none
    nfree = c[UNBACKED] + c[ZERO] + c[SHARED]
    for _ in range(n if nfree > 0 else 0):
        h += 1
        if h >= n:
            h = 0
        if h != avoid and _guest_free(h, owner, state, cont):
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


# _back and _set are inlined into their callers: compiled on their own, a state constant passed
# as a literal would compile one copy per state (6 for _set) on a fresh clone
@njit(**INLINE)
def _back(state, c, host, f, newstate):
    """Give frame ``f`` a fresh machine page (host free −1) and state ``newstate``."""
    c[state[f]] -= 1
    state[f] = newstate
    c[newstate] += 1
    host[0] -= 1


@njit(**INLINE)
def _set(state, c, f, newstate):
    """Move frame ``f`` to ``newstate``, keeping the per-state counters."""
    c[state[f]] -= 1
    state[f] = newstate
    c[newstate] += 1


# ----------------------------------------------------------------------------- content table
def _slot0_py(key, mask):
    """Home slot of ``key``: the SplitMix64 finalizer of the content id, in Python integers
    (used when ``NUMBA_DISABLE_JIT`` is set, where numpy would warn about the wrap-around)."""
    m64 = (1 << 64) - 1
    z = (int(key) + 0x9E3779B97F4A7C15) & m64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m64
    return (z ^ (z >> 31)) & int(mask)


def _slot0_jit(key, mask):
    """Home slot of ``key`` (SplitMix64 finalizer of the content id; uint64 arithmetic wraps)."""
    z = np.uint64(key) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.int64(z & np.uint64(mask))


_slot0 = _slot0_py if JIT_DISABLED else njit(**SERIAL)(_slot0_jit)


@njit(**SERIAL)
def _find(keys, key):
    """Slot holding ``key`` (linear probing over tombstones), or -1."""
    mask = keys.shape[0] - 1
    i = _slot0(key, mask)
    for _ in range(keys.shape[0]):
        k = keys[i]
        if k == key:
            return i
        if k == EMPTY:
            return -1
        i = (i + 1) & mask
    return -1


@njit(**SERIAL)
def _insert(keys, refs, hvm, hfr, tstat, key, ref, vm, fr):
    """Put ``key`` (known absent) in the first free or deleted slot of its probe sequence."""
    mask = keys.shape[0] - 1
    i = _slot0(key, mask)
    for _ in range(keys.shape[0]):
        k = keys[i]
        if k == EMPTY or k == TOMB:
            if k == EMPTY:
                tstat[T_USED] += 1
            keys[i] = key
            refs[i] = ref
            hvm[i] = vm
            hfr[i] = fr
            return i
        i = (i + 1) & mask
    raise AssertionError("content table full (reserve() was not called)")


@njit(**SERIAL)
def _release(key, keys, refs, tstat, host):
    """A frame stops mapping the shared page of ``key``: drop its reference count and free the
    machine page at zero (§4.3)."""
    i = _find(keys, key)
    if i < 0 or refs[i] <= 0:
        raise AssertionError("a shared frame's content has no shared entry")
    refs[i] -= 1
    if refs[i] == 0:
        keys[i] = TOMB
        tstat[T_SHARED] -= 1
        tstat[T_FREED] += 1
        host[0] += 1


@njit(**SERIAL)
def _share_one(v, f, states, conts, counters, keys, refs, hvm, hfr, tstat, host, insert_hint, why):
    """Try to share frame ``f`` of VM ``v`` (§4.2, Figure 3). Returns 1 if a machine page was
    reclaimed, else 0.

    A zero page maps the machine zero page. A private page's content is looked up: a shared
    entry gains a reference; a hint whose page still holds that content (the re-check) turns
    into a shared entry with both pages mapped to the hint's machine page; a stale hint is
    replaced by this page (``insert_hint``) or dropped; no entry makes this page a hint
    (``insert_hint``). ``why`` is the counter slot credited (scan or share-before-swap)."""
    st = states[v]
    c = counters[v]
    s = st[f]
    if s == ZERO:
        _set(st, c, f, SHARED)
        host[0] += 1
        c[why] += 1
        return 1
    if s != PRIVATE:
        return 0
    key = conts[v][f]
    tstat[T_LOOKUPS] += 1
    i = _find(keys, key)
    if i >= 0:
        if refs[i] > 0:
            refs[i] += 1
            _set(st, c, f, SHARED)
            c[C_SHARED_CONTENT] += 1
            host[0] += 1
            c[why] += 1
            tstat[T_SHARED_MATCH] += 1
            return 1
        hv = hvm[i]
        hf = hfr[i]
        if hv == v and hf == f:
            return 0  # the page is its own hint
        if states[hv][hf] == PRIVATE and conts[hv][hf] == key:
            refs[i] = 2
            hvm[i] = -1
            hfr[i] = -1
            _set(states[hv], counters[hv], hf, SHARED)
            counters[hv][C_SHARED_CONTENT] += 1
            _set(st, c, f, SHARED)
            c[C_SHARED_CONTENT] += 1
            host[0] += 1
            c[why] += 1
            tstat[T_SHARED] += 1
            tstat[T_HINTS] -= 1
            tstat[T_HINT_MATCH] += 1
            return 1
        tstat[T_STALE] += 1
        if insert_hint:
            hvm[i] = v
            hfr[i] = f
        else:
            keys[i] = TOMB
            tstat[T_HINTS] -= 1
        return 0
    if insert_hint:
        _insert(keys, refs, hvm, hfr, tstat, key, np.int64(0), v, f)  # not a literal: one signature
        tstat[T_HINTS] += 1
    return 0


@njit(**SERIAL)
def scan_content(cand_vm, cand_f, states, conts, counters, keys, refs, hvm, hfr, tstat, host):
    """The page-sharing scanner (§4.2-4.3): share every candidate ``(cand_vm[j], cand_f[j])``
    that can be (zero pages, contents already shared, valid hints), recording unmatched
    private pages as hints. Returns machine pages reclaimed."""
    done = 0
    # flag and counter slot as run-time values: literals would compile _share_one once per caller
    hint, why = np.bool_(True), np.int64(C_SCAN_SHARED)
    for j in range(cand_f.shape[0]):
        done += _share_one(cand_vm[j], cand_f[j], states, conts, counters, keys, refs, hvm, hfr, tstat, host, hint, why)
    return done


@njit(**SERIAL)
def page_out_content(count, candidates, v, states, conts, counters, keys, refs, hvm, hfr, tstat, host, swap_free):
    """The swap daemon with share-before-swap through the content table (§3.3, §4.3): each
    random candidate of VM ``v`` is shared if its content is zero, already shared, or a valid
    hint's; otherwise a private page is written to swap (keeping its content id for the
    swap-in). No hint is recorded for a page being paged out. Returns pages reclaimed."""
    done = 0
    st = states[v]
    c = counters[v]
    hint, why = np.bool_(False), np.int64(C_SHARE_BEFORE_SWAP)  # run-time values (see scan_content)
    for j in range(candidates.shape[0]):
        if done >= count:
            break
        f = candidates[j]
        if _share_one(v, f, states, conts, counters, keys, refs, hvm, hfr, tstat, host, hint, why):
            done += 1
        elif st[f] == PRIVATE and swap_free[0] > 0:
            _set(st, c, f, SWAPPED)
            host[0] += 1
            swap_free[0] -= 1
            c[C_SWAP_OUT] += 1
            done += 1
    return done


@njit(**SERIAL)
def release_all(state, cont, c, keys, refs, tstat, host):
    """Drop every reference a VM's shared content frames hold (power-off). Returns frames
    released."""
    n = 0
    for f in range(state.shape[0]):
        if state[f] == SHARED and cont[f] != 0:
            _release(cont[f], keys, refs, tstat, host)
            n += 1
    c[C_SHARED_CONTENT] -= n
    return n


@njit(**SERIAL)
def _rebuild(okeys, orefs, ohvm, ohfr, keep, keys, refs, hvm, hfr, tstat):
    """Copy the slots marked ``keep`` into the empty table ``keys…``; returns slots used."""
    tstat[T_USED] = 0
    for i in range(okeys.shape[0]):
        if keep[i]:
            _insert(keys, refs, hvm, hfr, tstat, okeys[i], orefs[i], ohvm[i], ohfr[i])
    return tstat[T_USED]


# ----------------------------------------------------------------------------- touch path
@njit(**SERIAL)
def _guest_peek(owner, state, cont, refbit, hands, c):
    """The frame :func:`_guest_pick` would return (``avoid`` = -1), changing nothing: its free
    pass; else the first frame after the CLOCK hand whose reference bit is clear; else (every
    bit set: the pick clears them in one sweep) the first frame after the hand. -1 if every
    frame is ballooned."""
    n = owner.shape[0]
    if c[UNBACKED] + c[ZERO] + c[SHARED] > 0:
        h = hands[0]
        for _ in range(n):
            h += 1
            if h >= n:
                h = 0
            if _guest_free(h, owner, state, cont):
                return h
    first = -1
    h = hands[1]
    for _ in range(n):
        h += 1
        if h >= n:
            h = 0
        if state[h] == BALLOONED:
            continue
        if not refbit[h]:
            return h
        if first < 0:
            first = h
    return first


@njit(**SERIAL)
def _resident(x, w, owner, alias, state, cont, refbit, hands, c):
    """Whether touching datum ``x`` (a write if ``w``) needs no new machine page: the frame
    the touch uses (the datum's own or its alias; its own freed frame; else the frame the
    guest would re-home it to, written) is backed by a machine page it may use as is (private
    or zero-content private page; a shared page only for a read)."""
    a = alias[x]
    if owner[x] == x:
        f = x
    elif a >= 0 and owner[a] == x:
        f = a
    elif owner[x] == FREE:
        f = x
    else:
        f = _guest_peek(owner, state, cont, refbit, hands, c)
        w = True  # re-homed data is written into its new frame
    if f < 0:
        return False
    s = state[f]
    return s == PRIVATE or s == ZERO or (s == SHARED and not w)


_prefetch = prefetch_write  # the replay writes the frames it prefetches


#: Events ahead of the current one whose frame (at home) is prefetched by :func:`replay`.
AHEAD = 16


@njit(**SERIAL)
def _fresh(next_id):
    x = next_id[0]
    next_id[0] = x + 1
    return x


@njit(**SERIAL)
def replay(
    ts,
    gpfn,
    flags,
    lo,
    t_end,
    state,
    owner,
    alias,
    refbit,
    sampled,
    stamp,
    period,
    hands,
    c,
    host,
    cont,
    image,
    next_id,
    keys,
    refs,
    tstat,
):
    """Replay trace events ``lo …`` with ``ts < t_end`` through the touch path.

    Per event: resolve the frame holding the data (re-homing it if the balloon took its
    frame), apply the ESX fault rules of the module docstring, give the frame its new content
    (a write: fresh, or 0 if zero-filling; a first touch at home: the datum's image if any),
    set the CLOCK reference bit, count the first touch of a sampled frame (§5.3) and the first
    touch of the frame in the current sampling period (true active memory). A write to a frame
    sharing non-zero content releases its reference in the content table (``keys``, ``refs``,
    ``tstat``). Stops early, before an event that needs a new machine page, when the host has
    none (``host[0] <= 0``): the VM waits for reclamation. Touches of data already in a backed
    frame (a read or write of a private page, a read of a shared one; its own freed frame the
    guest zero-filled) and data the guest re-homes to a backed private or zero frame need no
    machine memory and go on.

    Traces touch frames in random order, so each event's frame arrays miss the caches; the
    kernel prefetches the home frame of the event :data:`AHEAD` events later (a hint only), which
    overlaps those misses (10-40 % less time in this kernel on Figure 8's trace, measured).

    Returns the index of the first event not replayed.
    """
    i = lo
    n = ts.shape[0]
    while i < n and ts[i] < t_end:
        if i + AHEAD < n:
            # traces touch frames at random: fetch a later event's frame while this one is done
            y = np.int64(gpfn[i + AHEAD])
            _prefetch(owner, y)
            _prefetch(state, y)
            _prefetch(refbit, y)
            _prefetch(sampled, y)
            _prefetch(stamp, y)
            _prefetch(cont, y)
        x = np.int64(gpfn[i])
        fl = flags[i]
        w = (fl & F_WRITE) != 0
        z = (fl & F_ZERO) != 0
        if host[0] <= 0 and not _resident(x, w, owner, alias, state, cont, refbit, hands, c):
            return i
        home = False
        if owner[x] == x:
            f = x
            home = True
        else:
            a = alias[x]
            if a >= 0 and owner[a] == x:
                f = a
            elif owner[x] == FREE:
                f = x
                owner[x] = x
            else:
                # the balloon (or another datum) holds frame x: the guest re-homes x
                f = _guest_pick(owner, state, cont, refbit, hands, -1, c)
                c[C_GUEST_FAULT] += 1
                o = owner[f]
                s0 = state[f]
                if o >= 0 and o != x and s0 != ZERO and s0 != UNBACKED and not (s0 == SHARED and cont[f] == 0):
                    c[C_GUEST_PAGEOUT] += 1
                owner[f] = x
                alias[x] = f
                w = True  # the guest writes x's data into its new frame
        s = state[f]
        if s == UNBACKED:
            if z:
                nc = 0
            elif home and image[x] >= 0:
                nc = image[x]
            elif w:
                nc = _fresh(next_id)
            else:
                nc = 0
            _back(state, c, host, f, PRIVATE if nc != 0 else ZERO)
            cont[f] = nc
        elif s == ZERO or s == PRIVATE:
            if z:
                if s != ZERO:
                    _set(state, c, f, ZERO)
                cont[f] = 0
            elif w:
                if s != PRIVATE:
                    _set(state, c, f, PRIVATE)
                cont[f] = _fresh(next_id)
        elif s == SHARED:
            if w:
                if cont[f] != 0:
                    _release(cont[f], keys, refs, tstat, host)
                    c[C_SHARED_CONTENT] -= 1
                nc = 0 if z else _fresh(next_id)
                _back(state, c, host, f, ZERO if z else PRIVATE)
                cont[f] = nc
                c[C_COW] += 1
        elif s == SWAPPED:
            if z:
                cont[f] = 0
            elif w:
                cont[f] = _fresh(next_id)
            _back(state, c, host, f, PRIVATE if cont[f] != 0 else ZERO)
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
def inflate(count, state, owner, refbit, hands, c, host, cont, keys, refs, tstat):
    """Balloon ``count`` frames the guest chooses (free, then cold, then any; §3.2).

    Each frame's machine page (if any) returns to the host; a frame sharing non-zero content
    drops its reference (the shared page is freed at zero). A shared frame (the zero page or a
    content's page) frees no machine page that is not still shared: the guest cannot tell shared
    free pages from private ones, so its balloon takes them alike; they are counted in
    ``c[C_BALLOON_SHARED]``. Returns the number of frames ballooned."""
    done = 0
    for _ in range(count):
        f = _guest_pick(owner, state, cont, refbit, hands, -1, c)
        if f < 0:
            break
        s = state[f]
        o = owner[f]
        if o >= 0 and (s == PRIVATE or (s == SHARED and cont[f] != 0)):
            c[C_GUEST_PAGEOUT] += 1
        if s == PRIVATE or s == ZERO:
            host[0] += 1
        elif s == SHARED:
            c[C_BALLOON_SHARED] += 1
            if cont[f] != 0:
                _release(cont[f], keys, refs, tstat, host)
                c[C_SHARED_CONTENT] -= 1
        owner[f] = BALLOON
        refbit[f] = 0
        cont[f] = -1
        _set(state, c, f, BALLOONED)
        done += 1
    return done


@njit(**SERIAL)
def deflate(count, state, owner, hands, c, host, zero_fill, cont):
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
                cont[h] = 0
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


class ContentTable:
    """ESX's global hash table of shared and hint frames (§4.3, Figure 3), keyed by content id.

    Open addressing with linear probing over four parallel arrays (the paper chains 16-byte
    frames; the layout has no effect on what is shared). A *shared* entry (``refs > 0``) is one
    machine page backing every frame mapped to that content; its reference count is exact (the
    paper's 16-bit count plus overflow table holds any count, so no limit is modelled). A
    *hint* entry (``refs == 0``) names the one unshared page (VM index ``hvm``, frame ``hfr``)
    last seen with that content; it is re-checked when matched and replaced if stale. The zero
    content never enters the table (shared zero pages map the one zero page).

    ``stat`` holds the counters ``T_*``; ``stat[T_SHARED]`` machine pages back shared contents.
    """

    def __init__(self, capacity: int = 64):
        cap = 1 << max(3, int(capacity - 1).bit_length())
        self._alloc(cap)
        self.stat = np.zeros(NT, np.int64)

    def _alloc(self, cap):
        self.keys = np.full(cap, EMPTY, np.int64)
        self.refs = np.zeros(cap, np.int64)
        self.hvm = np.full(cap, -1, np.int64)
        self.hfr = np.full(cap, -1, np.int64)

    @property
    def capacity(self) -> int:
        return int(self.keys.shape[0])

    @property
    def shared_pages(self) -> int:
        """Machine pages backing shared non-zero contents (one per content)."""
        return int(self.stat[T_SHARED])

    def entries(self, states=None, conts=None) -> dict:
        """The live entries: ``{content: ("shared", refs) | ("hint", vm, frame)}``; with the
        VMs' ``states``/``conts`` (indexed by VM) stale hints are left out."""
        out = {}
        for i in np.flatnonzero(self.keys >= 0):
            k = int(self.keys[i])
            if self.refs[i] > 0:
                out[k] = ("shared", int(self.refs[i]))
                continue
            v, f = int(self.hvm[i]), int(self.hfr[i])
            if states is not None and not (states[v][f] == PRIVATE and conts[v][f] == k):
                continue
            out[k] = ("hint", v, f)
        return out

    def reserve(self, n: int, states, conts) -> None:
        """Make room for ``n`` more inserts at load factor <= 1/2. When the table must be
        rebuilt, stale hints (their page no longer holds the content; ``states``/``conts`` are
        every VM's arrays, by VM index) are dropped: a stale hint can never lead to sharing, and
        a later match would replace it anyway, so this changes no outcome."""
        if 2 * (int(self.stat[T_USED]) + n) <= self.capacity:
            return
        live = self.keys >= 0
        keep = live.copy()
        hint = np.flatnonzero(live & (self.refs == 0))
        if hint.size:
            v, f, k = self.hvm[hint], self.hfr[hint], self.keys[hint]
            ok = np.zeros(hint.size, bool)
            for vm in np.unique(v):
                sel = v == vm
                st, co = states[int(vm)], conts[int(vm)]
                ok[sel] = (st[f[sel]] == PRIVATE) & (co[f[sel]] == k[sel])
            keep[hint[~ok]] = False
            self.stat[T_PURGED] += int((~ok).sum())
            self.stat[T_HINTS] -= int((~ok).sum())
        need = int(keep.sum()) + n
        cap = 1 << max(3, int(4 * need - 1).bit_length())
        old = (self.keys, self.refs, self.hvm, self.hfr)
        self._alloc(cap)
        _rebuild(*old, keep, self.keys, self.refs, self.hvm, self.hfr, self.stat)

    def check(self, states, conts) -> None:
        """Assert every shared entry's count equals the frames mapped to it, host-wide (tests)."""
        sh = [
            np.asarray(co)[(np.asarray(st) == SHARED) & (np.asarray(co) > 0)]
            for st, co in zip(states, conts, strict=True)
        ]
        got = np.concatenate(sh) if sh else np.zeros(0, np.int64)
        keys, counts = np.unique(got, return_counts=True)
        sel = (self.keys >= 0) & (self.refs > 0)
        order = np.argsort(self.keys[sel], kind="stable")
        wkeys, wrefs = self.keys[sel][order], self.refs[sel][order]
        if not (np.array_equal(keys, wkeys) and np.array_equal(counts, wrefs)):
            have = dict(zip(keys.tolist(), counts.tolist(), strict=True))
            want = dict(zip(wkeys.tolist(), wrefs.tolist(), strict=True))
            bad = sorted(set(have.items()) ^ set(want.items()))[:5]
            raise AssertionError(f"content table reference counts differ from the frames (first: {bad})")
        if wkeys.size != self.shared_pages:
            raise AssertionError(f"content table: {wkeys.size} shared entries, stat says {self.shared_pages}")


class VMMemory:
    """One VM's frames: ESX state, content ids, guest ownership, CLOCK bits, sampling marks,
    counters.

    Parameters
    ----------
    pages : int
        The VM's configured ("physical", max) size in 4 KiB pages.
    table : ContentTable, optional
        The host-wide content table (a private one if not given).
    next_id : numpy.ndarray of int64, shape (1,), optional
        The host-wide counter of fresh content ids (a private one if not given).
    image : numpy.ndarray of int64, optional
        Content id per gpfn the datum holds when first touched in its own frame (-1: none,
        0: zeros); see :mod:`pagecore.sim.contents`.
    """

    def __init__(self, pages: int, table: ContentTable | None = None, next_id=None, image=None):
        if pages <= 0:
            raise ValueError(f"a VM needs at least one page, got {pages}")
        self.pages = int(pages)
        self.state = np.zeros(pages, np.uint8)
        self.cont = np.full(pages, -1, np.int64)
        self.image = np.full(pages, -1, np.int64) if image is None else np.ascontiguousarray(image, np.int64)
        if self.image.shape != (self.pages,):
            raise ValueError(f"image must have one entry per page ({self.pages}), got shape {self.image.shape}")
        self.table = table if table is not None else ContentTable()
        if next_id is None:
            next_id = np.array([max(1, int(self.image.max(initial=0)) + 1)], np.int64)
        self.next_id = next_id
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
        t = self.table
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
            self.cont,
            self.image,
            self.next_id,
            t.keys,
            t.refs,
            t.stat,
        )

    def inflate(self, count: int, host) -> int:
        """Balloon ``count`` frames (:func:`inflate`); returns frames ballooned."""
        t = self.table
        return inflate(
            count, self.state, self.owner, self.refbit, self.hands, self.c, host, self.cont, t.keys, t.refs, t.stat
        )

    def deflate(self, count: int, host, zero_fill: bool) -> int:
        """Release ``count`` ballooned frames (:func:`deflate`); returns frames released."""
        return deflate(count, self.state, self.owner, self.hands, self.c, host, bool(zero_fill), self.cont)

    def release_shared(self, host) -> int:
        """Drop the references of every frame sharing non-zero content (power-off)."""
        t = self.table
        return release_all(self.state, self.cont, self.c, t.keys, t.refs, t.stat, host)

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

    @property
    def zero_pages(self) -> int:
        """Frames whose contents are zero, shared or not."""
        return int(self.c[ZERO] + self.c[SHARED] - self.c[C_SHARED_CONTENT])

    def count(self, st: int) -> int:
        return int(self.c[st])

    def check(self) -> None:
        """Assert the counters match the state array and the content invariants (for tests)."""
        got = np.bincount(self.state, minlength=6)[:6]
        if not np.array_equal(got, self.c[:6]):
            raise AssertionError(f"state counters {self.c[:6].tolist()} != actual {got.tolist()}")
        st, co = self.state, self.cont
        shc = int(((st == SHARED) & (co != 0)).sum())
        if shc != self.c[C_SHARED_CONTENT]:
            raise AssertionError(f"shared-content counter {self.c[C_SHARED_CONTENT]} != actual {shc}")
        for name, bad in (
            ("zero frames with content", (st == ZERO) & (co != 0)),
            ("private/swapped frames without content", ((st == PRIVATE) | (st == SWAPPED)) & (co <= 0)),
            ("shared frames without content", (st == SHARED) & (co < 0)),
        ):
            if bad.any():
                raise AssertionError(f"{name}: {int(bad.sum())} (first frame {int(np.flatnonzero(bad)[0])})")
