"""Background page sharing (paper §4.2-4.3): zero pages only (``zero``) or by content
(``content``).

A scanner visits random pages of every running VM at capped rates. Rates are UNCONFIRMED in
the paper ("configuration options cap the per-VM and system-wide scan rates"); the defaults
are ESX 2.x's ``Mem.ShareScanVM`` = 50 pages/s per VM and ``Mem.ShareScanTotal`` = 200 pages/s
system-wide [DOC ESX 2.x]. Each running VM is scanned at ``min(rate_vm, rate_total / VMs)``
pages per second (fractional pages carry over), in random order (§4.3: "scanned randomly").
Set both rates to 0 to switch background sharing off (share-before-swap in
:mod:`pagecore.sim.paging` still works).

``zero``
    shares the pages whose contents are all zero (one machine zero page backs them all,
    copy-on-write).
``content``
    the scanner of §4.2/§4.3 (Figure 3): a scanned page's content id (the simulator's exact
    stand-in for its 64-bit hash and the full comparison) is looked up in the global
    :class:`~pagecore.sim.memory.ContentTable`. A zero page maps the zero page as above; a
    match with a *shared* frame maps the page copy-on-write to that frame's machine page (its
    reference count grows) and frees the page's own; a match with a *hint* re-checks the hint's
    page: still the same content, so both pages are shared (the hint becomes a shared frame
    with count 2 and one machine page is reclaimed); changed since, so the stale hint is
    replaced by this page; no match makes the page a hint (it is not marked copy-on-write).
    Writes break copy-on-write in the touch path (:func:`pagecore.sim.memory.replay`); a
    shared page is freed when its count reaches zero. Page contents come from the engine's
    ``contents`` (:mod:`pagecore.sim.contents`) and from the trace's writes. Share-before-swap
    uses the same table when this mechanism is selected.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from pagecore._jit import SERIAL
from pagecore._pcg64 import M32, S32, next32, read_state, write_state
from pagecore.sim import memory as m
from pagecore.sim.contracts import mechanism


def _check_rates(scanner):
    """Refuse a scan rate that is negative or not finite (NaN failed deep in a run)."""
    for key in ("rate_vm_pages_s", "rate_total_pages_s"):
        if not 0 <= getattr(scanner, key) < math.inf:
            raise ValueError(f"{key} must be >= 0 and finite (0: no background sharing), got {getattr(scanner, key)}")


def _counts(scanner, vms, dt):
    """Per VM, how many random frames it scans in ``dt`` seconds: ``[(vm, n), ...]``, n > 0."""
    if not vms or scanner.rate_vm_pages_s <= 0 or scanner.rate_total_pages_s <= 0:
        return []
    per_vm = min(scanner.rate_vm_pages_s, scanner.rate_total_pages_s / len(vms)) * dt
    out = []
    for vm in vms:
        # carry fractional pages so low rates still scan
        vm.scan_credit += per_vm
        n = int(vm.scan_credit)
        if n <= 0:
            continue
        vm.scan_credit -= n
        out.append((vm, n))
    return out


@njit(**SERIAL)
def _integers(st, high, out, o, n):
    """``out[o:o + n] = rng.integers(0, high, size=n)`` for a PCG64 generator whose state is
    ``st`` (uint64[6], see :mod:`pagecore._pcg64`), advancing ``st`` as NumPy does:
    ``random_bounded_uint64_fill`` for ``1 <= high < 2^32`` (``distributions.c``): nothing drawn
    for ``high == 1``, else Lemire's method on 32-bit draws (``buffered_bounded_lemire_uint32``)."""
    rng_ = np.uint64(high - 1)
    if rng_ == 0:
        out[o : o + n] = 0
        return
    excl = rng_ + np.uint64(1)
    for i in range(o, o + n):
        x = next32(st) * excl
        left = x & M32
        if left < excl:
            threshold = (M32 - rng_) % excl
            while left < threshold:
                x = next32(st) * excl
                left = x & M32
        out[i] = np.int64(x >> S32)


@njit(**SERIAL)
def _draw_all(st, high, count, out):
    """``out`` = the concatenated draws ``rng.integers(0, high[j], count[j])``, in order."""
    o = np.int64(0)  # not a literal 0: _integers would compile for it too
    for j in range(high.shape[0]):
        _integers(st, high[j], out, o, count[j])
        o += count[j]


def _pcg64_state(rng, picks):
    """(state dict, uint64[6] state) of ``rng`` for the kernels above, or None when they cannot
    reproduce its draws (not PCG64, a VM of 2^32 pages or more, Numba disabled)."""
    if any(vm.pages >= 1 << 32 for vm, _ in picks):
        return None
    return read_state(rng)


def _draws(rng, picks):
    """``(count, frames)``: each picked VM's ``rng.integers(0, vm.pages, size=n)``, in order and
    concatenated; drawn in one kernel call (:func:`_draw_all`) when it can reproduce NumPy's draws,
    which leaves ``rng`` where NumPy's own would."""
    count = np.array([n for _, n in picks], np.int64)
    got = _pcg64_state(rng, picks)
    if got is None:
        return count, np.concatenate([rng.integers(0, vm.pages, size=n) for vm, n in picks]).astype(np.int64)
    s, st = got
    frames = np.empty(int(count.sum()), np.int64)
    _draw_all(st, np.array([vm.pages for vm, _ in picks], np.int64), count, frames)
    write_state(rng, s, st)
    return count, frames


@mechanism("sharing", "zero")
class ZeroScanner:
    """Random-order scanning that shares zero pages."""

    rate_vm_pages_s: float = 50.0
    rate_total_pages_s: float = 200.0

    uses_contents = False

    def __post_init__(self):
        _check_rates(self)

    def scan(self, vms, dt, rng, host):
        picks = _counts(self, vms, dt)
        if not picks:
            return 0
        _, cand = _draws(rng, picks)
        done = o = 0
        for vm, n in picks:
            done += int(m.scan_share(cand[o : o + n], vm.mem.state, vm.mem.c, vm.host_free))
            o += n
        return done


@mechanism("sharing", "content")
class ContentScanner:
    """Random-order scanning that shares pages by content through hint and shared frames
    (§4.2-4.3). Same rate parameters as ``zero``."""

    rate_vm_pages_s: float = 50.0
    rate_total_pages_s: float = 200.0

    uses_contents = True

    def __post_init__(self):
        _check_rates(self)

    def scan(self, vms, dt, rng, host):
        picks = _counts(self, vms, dt)
        if not picks:
            return 0
        count, cand_f = _draws(rng, picks)
        cand_vm = np.repeat(np.array([vm.index for vm, _ in picks], np.int64), count)
        states, conts, counters = host.frame_lists()
        t = host.table
        t.reserve(len(cand_f), states, conts)
        return int(
            m.scan_content(cand_vm, cand_f, states, conts, counters, t.keys, t.refs, t.hvm, t.hfr, t.stat, host.free)
        )
