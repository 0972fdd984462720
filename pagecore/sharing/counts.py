"""Exact sharing analysis of a set of pages, in every vocabulary users compare with.

One kernel groups pages by (salt, hash) without sorting them and computes additive counts —
so it serves an in-core set and each hash-prefix partition of a set larger than memory, whose
:class:`SharingCounts` are then summed (:meth:`SharingCounts.__add__`). It is the only
counting kernel: ``pagecore share``, the workflow, ``bigcount`` and
:func:`pagecore.sharing.fastcount.count_hashes` all run it.

Vocabularies (per set, and per VM where it makes sense)
-------------------------------------------------------
paper (Figures 4/5)
    ``total_pages``; ``zero_pages``; ``shared_pages`` (pages in contents with ≥ 2 copies, all
    mapped COW); ``reclaimed_pages`` (copies beyond the first); ``shared_minus_reclaimed_pages``
    (machine pages holding one copy of each shared content).
Linux KSM, as KSM would report for the same pages if all were mergeable and fully scanned
    ``pages_shared`` (KSM pages: ⌈copies / max_page_sharing⌉ per content, because one KSM page
    has at most ``max_page_sharing`` sharers), ``pages_sharing`` (the other copies, i.e. pages
    saved), ``pages_unshared`` (contents seen once); with ``use_zero_pages=1`` zero pages are
    mapped to the kernel's zero page instead and counted only in ``ksm_zero_pages``.
    ``general_profit`` = (pages_sharing + ksm_zero_pages)·4 KiB − rmap_items·64 B, where every
    scanned page not mapped to the zero page has one rmap item (kernel admin guide, "General
    profit"). A content with k·max_page_sharing + 1 copies leaves its last copy unshared: a
    new KSM page needs two copies (checked against :mod:`pagecore.sharing.ksm`).
esxtop
    ``SHRD`` shared guest memory (zero pages included), ``ZERO`` zero pages, ``SHRDSVD``
    machine memory saved; per VM, SHRDSVD credits each of a VM's shared pages with
    (copies − 1)/copies of a page, so the per-VM values add up to the host's savings.
attribution
    saved pages that are intra-VM (copies a VM would save alone: Σ_v (c_v − 1)) or inter-VM
    (the rest: VMs-in-content − 1), and zero vs non-zero; the top shared contents.

Every page is accounted for: ``unshared + ineligible + shared = total`` and
``distinct + reclaimed = total``.

Ineligible pages (paper §4.3): a page whose hash matched a different content (a *false match*,
found by byte comparison in :mod:`pagecore.pages.verify`) is never shared; it counts as its own
content (unshared) here.

How it counts (issue 18)
------------------------
Contents are found by sorting the pages by (key, salt) in cache-sized pieces — not by a hash
table, whose "is this content new?" branch is a coin flip per page, and not by one large sort.
Steps 1-2 and step 3 each run on ``threads`` threads (``count_sharing(threads=)``, ``pagecore
share --threads``, all cores by default there; 1 by default in the library, so that workflow
jobs sharing the cores do not each take them all): the pages are scattered in ``threads`` ranges
(:func:`_scatter_ranges`: large enough that their blocks' unused tails add at most a quarter to
the scratch), each into blocks of its own, a level-1 bucket's chains read range by range, so its
records keep the input order; the buckets are counted in up to :data:`COUNT_CHUNKS` ranges of
about equal records, each into its own per-VM counters, added in range order. The ranges of
buckets depend on the input alone, so every count, SHRDSVD's float sums included, is the same to
the bit on any number of threads.

1. **Per-page bookkeeping** (in the same, only read of the hashes, VM indices and zero flags
   as step 2): pages and zero pages per VM (summed while the VM stays the same), ineligible
   pages (counted per VM and left out), and whether each VM's pages form one block.
2. **Scatter**: each eligible page becomes one 8-byte record in its level-1 bucket, one of
   ``2**b1`` chosen by the top bits of the mixed key ``k = (hash ^ salt · C3) · C1`` (for a
   given salt a bijection of the hash in which every hash bit counts, so a hash-prefix
   partition, a narrow hash or one content under many salts still spread evenly), stably
   (input order within a bucket): ``k << b1 | vm << 1 | zero`` — the top ``b1`` bits of ``k``
   are the bucket, known from where the record is, so the payload rides in their place (``b1``
   is raised to the payload's width, at most :data:`L1_MAX_BITS`; with more than 2048 VMs the
   payload goes to a second, 4-byte array). With salts, the salt goes to a third array —
   unless every page's salt is its VM's (``share --salting``: sharing domains are sets of VMs,
   checked in one read of the salts and VM indices first); then it is looked up by the VM index
   when a bucket is copied for step 3, so the records carry no salt and no 8 bytes of salt
   scratch per page are needed. A bucket is a chain of blocks of :data:`SCATTER_BLOCK`
   records (each bucket starts in its own block and takes the next free one when it fills), so
   no histogram pass is needed to place the buckets; records go through a write-combining
   buffer of two cache lines per bucket, written out as whole lines with one 64-byte
   non-temporal store each (no read of the line first). At most 4096 level-1 buckets, so the
   scatter writes to few enough places at once; buckets aim at :data:`BUCKET_TARGET` pages so
   that one fits in the core's L2 cache.
3. **Per level-1 bucket**, in cache: a counting sort by the next ``log2(pages)`` bits of
   the key (:data:`L2_SHIFT`) into a copy, then an insertion sort (stable, by key then salt)
   that only moves records within their sub-bucket of about one page; then one scan: each
   run of equal (key, salt) is a content with its copies, its pages in input order. When each
   VM's pages form one block (page tables concatenated VM by VM), a content's pages arrive VM
   by VM, so its (content, VM) pairs are runs; otherwise each content's pages are counted per
   VM in a small array. Per (content, VM) pair the scan adds to that VM's pages by their
   content's copies (2, 3, ... :data:`COPY_CLASSES` or more: shared pages and SHRDSVD are sums
   over these classes), inter-VM shared pages, pairs and one-page pairs (for the per-VM
   "alone" counters) and zero shared pages; per content, the totals, the KSM counters and the
   top contents.

The common case — VM indices and zero flags given, no salts or salts of VMs (``share
--salting``), every page eligible, the payload packed, each VM's pages one block — runs through
copies of the one pass, the bucket sort and the scan written out for it (fewer live values, so
the loops keep them in registers; indices unsigned, so Numba emits no wrap-around code for
negative ones; compiled apart with and without salts; entries of their own, chosen in Python,
so a process compiles only the path it runs): the general versions handle everything else, and
the tests run both against the twin. Its scan of a bucket whose contents have
several copies on average runs in three passes with no branch that depends on the data
(:func:`_scan_flat`: where contents start, per-content totals, per-record VM counters), since
the one-pass scan mispredicts about one branch per content and per (content, VM) run there;
contents that need more than additions are counted by the one-pass scan in content order, so
the results are the same to the bit. With salts of VMs the common case sorts the
records by key alone and its scan tells the salts apart by the VM index: a content is a run
of equal key and equal salt, and a key under several salts (two contents whose mixed keys are
equal) is sorted by salt and counted by the general scan, so the contents are counted in the
same order as by the general path.

Equal contents always land in the same bucket, so every count is exact. ``shrdsvd`` (float
sums per VM) may differ in the last bits from a sum in another order (never with the number of
threads). A content's first page
(for its zero flag) is its first eligible page in input order.

Bytes per page: the inputs (hash 8, zero 1, VM index 1–8 as given, optional salt 8 and
eligibility 1) plus 8 bytes of scratch (12 with more than 2048 VMs, 8 more with salts that are
not those of the pages' VMs) for the bucket-ordered records, allocated by NumPy (transparent
huge pages), plus the unused tail of each level-1 bucket's last block (at most 8 KiB a bucket,
32 MiB in all per thread), plus per thread a sorted copy of the largest level-1 bucket of its
ranges (8 bytes per page of it, 12 / 20 as above) and 512 KiB of level-2 counters, and per range
of buckets 184 bytes per VM (at most :data:`CHUNK_SCRATCH_BYTES` in all): with uniform hashes
well under 1 MiB; a content with very many copies (the zero page) makes its bucket large, e.g.
30 % zero pages add about 2.4 bytes per page overall. 500 M pages with a uint8 VM index and few
zero pages: 5 GB of input + 4 GB of scratch (the hash table kernel before this one needed 8
bytes per page plus 16 per page of its largest bucket, the sort-then-scan one before it about
75). At most 2**31 − 1 pages per call: larger sets are counted by hash-prefix partitions
(:mod:`.partition`).
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from pagecore import PAGE_SIZE
from pagecore._intrinsics import store_fence, stream_line, stream_store
from pagecore._jit import INLINE, JIT_DISABLED, SERIAL, resolve_threads

MB = 1 << 20
RMAP_ITEM_BYTES = 64  # sizeof(struct ksm_rmap_item) on 64-bit (kernel doc, "General profit")

# indices into the scalar totals array written by _scan
(
    T_PAGES,
    T_ZERO,
    T_DISTINCT,
    T_SHARED,
    T_SHARED_GROUPS,
    T_RECLAIMED,
    T_INTRA,
    T_INTER,
    T_ZERO_SAVED,
    T_INELIGIBLE,
    T_UNSHARED,
    T_KSM_SHARED,
    T_KSM_SHARING,
    T_KSM_UNSHARED,
    T_KSM_ZERO,
    T_INTER_SHARED,
    N_TOTALS,
) = range(17)
# indices into the per-VM array
(
    V_PAGES,
    V_ZERO,
    V_SHARED,
    V_ALONE_SHARED,
    V_ALONE_RECLAIMED,
    V_INTER_SHARED,
    V_INELIGIBLE,
    V_ZERO_SHARED,
    N_VM,
) = range(9)


#: the most pages one call counts (per-VM pair counters hold page counts in 31 bits): larger sets
#: are counted by hash-prefix partitions (:mod:`.partition`)
MAX_PAGES = (1 << 31) - 1

#: level-1 buckets aim at this many eligible pages, so that a bucket and its sorted copy (8
#: bytes per page each, plus the level-2 counters) stay in the core's L2 cache
BUCKET_TARGET = 1 << 15

#: at most this many bits of level-1 buckets, so that buckets stay cache-sized up to about 134 M
#: pages (at 200 M hashes, best of 2, load 4-5: 10 bits 45.0 ns/page, 12 bits 41.7; the scatter's
#: 4096 write streams cost less than buckets that spill out of L2)
L1_MAX_BITS = 12

#: at most this many bits of level-2 sub-buckets (the counting sort of a level-1 bucket, with
#: 4-byte counters: 512 KiB); a bucket of ``m`` pages gets ``log2(m)`` bits, so that a
#: sub-bucket holds about one page (buckets of 122 K pages at 500 M hashes get 17)
L2_MAX_BITS = 17

#: a level-1 bucket of ``m`` pages is split into ``2**(log2(m) - L2_SHIFT)`` sub-buckets (about
#: one page each; at 50 M hashes, same process, load 1.8: 0 20.4 ns/page, 1 22.0, 2 23.8, -1
#: 20.8; session 4 measured 1 fastest at 20 M hashes, before the one-pass scatter)
L2_SHIFT = 0

#: the level-1 buckets are counted in at most this many ranges of about equal records, on as
#: many threads as :func:`count_sharing` is given (the ranges never depend on the threads)
COUNT_CHUNKS = 8

#: the most per-VM scratch (each range's ``hist`` and ``svd`` rows and scan scratch, 184 bytes
#: per VM) all ranges may hold: sets of very many VMs are counted in fewer ranges
CHUNK_SCRATCH_BYTES = 1 << 26

#: the one pass over the pages runs on as many threads as it is given, each over a range of at
#: least this many pages, and of at least SCATTER_RANGE_TAILS times the records its buckets'
#: last blocks can leave unused (2**b1 blocks), so that more ranges add at most a quarter to
#: the scratch on machines with many cores
SCATTER_MIN_PAGES = 1 << 20
SCATTER_RANGE_TAILS = 4

#: records per block of the scatter's buckets (chains of blocks; a power of two, a multiple
#: of WC_LINE; smaller when the mean bucket is)
SCATTER_BLOCK = 1 << 10

#: records per write-combining buffer of the scatter: two 64-byte cache lines of int64, written
#: out together when full (one line: the flush's branch, mispredicted, came twice as often;
#: session 22, 50 M pages, same process: two lines 0.97-0.98 x the time of one, four 0.96-0.97)
WC_LINE = 16

#: pages are counted per VM by their content's copies 2, 3, ... up to this many (for shared
#: pages and SHRDSVD); contents with more copies add their SHRDSVD one page at a time
COPY_CLASSES = 16

#: the insertion sort that finishes a level-1 bucket gives up for a stable merge sort after this
#: many moves per page (only keys that agree in their top 20-odd bits cost moves)
SORT_MOVES = 64
#: records per window of :func:`_scan_flat` (its scratch: 5 bytes a record, in L1/L2 cache; its
#: per-content code keeps the copies, up to COPY_CLASSES, in the 6 bits above two flags)
SCAN_WINDOW = 1 << 14
#: :func:`_scan_flat` counts a window in its three passes when its contents have at least this
#: many copies on average, else by the one-pass scan, whose branches then mostly go one way (20 M
#: pages, 100 VMs, same process, best of 5, load 2: three passes / one pass 3.2 with 90 % of the
#: pages unique, i.e. 1.07 copies a content; 1.9 at 70 % (1.2); 1.3 at 50 % (1.5); 0.75 at 20 %
#: (2.1); 0.7 on `bench count`'s pages (2.75))
FLAT_MIN_COPIES = 1.75

_C1 = np.uint64(0x9E3779B97F4A7C15)  # key mixer (golden ratio), a bijection of uint64
_C1_INV = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))  # its inverse, to report a hash
_C3 = np.uint64(0x94D049BB133111EB)  # salt mixer (splitmix64)
_M64 = (1 << 64) - 1
_SIGN = np.int64(-(1 << 63))
_LOW32 = (1 << 32) - 1
_INT64_MAX = (1 << 63) - 1
# columns of the per-VM scratch of _scan_bucket: pages of shared zero contents; pages of
# contents in >= 2 VMs | (content, VM) pairs << 32 (each < 2**31 pages); pairs of one page; then
# pages by their content's copies (0, 1, 2, ..., COPY_CLASSES or more)
H_ZZ, H_INTER_PAIRS, H_SINGLES, H_CLASSES = range(4)
_PAIR = np.int64(1 << 32)
_U = np.uint64  # an index known to be >= 0: Numba then emits no wrap-around of negative indices


@njit(**INLINE)
def _mix(h, s):
    """The mixed key ``(h ^ s·C3)·C1`` (uint64): every bit of the hash ``h`` and the salt ``s``
    reaches its top bits, which choose the buckets (so hashes narrower than 64 bits, a
    partition's fixed prefix or one content under many salts still spread). For a given salt
    it is a bijection of ``h``; salt 0 leaves ``h·C1``."""
    return (np.uint64(h) ^ (np.uint64(s) * _C3)) * _C1


@njit(**INLINE)
def _record(k, b1, p, packed):
    """A page's 8-byte record (int64 bits): ``k << b1 | payload`` when packed (the top ``b1``
    bits of ``k`` are its level-1 bucket, known from where it is stored), else ``k``."""
    if packed:
        return np.int64((k << np.uint64(b1)) | np.uint64(p))
    return np.int64(k)


@njit(**INLINE)
def _top(x, drop, keep):
    """Bits ``[64 - drop - keep, 64 - drop)`` of ``x`` as an int: ``(x << drop) >> (64 - keep)``."""
    return np.int64((np.uint64(x) << np.uint64(drop)) >> np.uint64(64 - keep))


@njit(**INLINE)
def _hash_of(key, s, bucket, b1, packed):
    """The page hash (as int64 bits) of a content's key (payload bits cleared) and salt in
    level-1 bucket ``bucket``."""
    k = np.uint64(key)
    if packed:
        k = (np.uint64(bucket) << np.uint64(64 - b1)) | (k >> np.uint64(b1))
    return np.int64((k * _C1_INV) ^ (np.uint64(s) * _C3))


if JIT_DISABLED:  # plain Python (coverage runs): NumPy scalars would warn on the wrap-around

    def _mix(h, s):
        return ((int(h) & _M64 ^ ((int(s) * int(_C3)) & _M64)) * int(_C1)) & _M64

    def _record(k, b1, p, packed):
        r = ((int(k) << b1) & _M64) | int(p) if packed else int(k)
        return r - (1 << 64) if r >= 1 << 63 else r

    def _top(x, drop, keep):
        return ((int(x) << drop) & _M64) >> (64 - keep)

    def _hash_of(key, s, bucket, b1, packed):
        k = int(key) & _M64
        if packed:
            k = (int(bucket) << (64 - b1)) | (k >> b1)
        k = ((k * int(_C1_INV)) & _M64) ^ ((int(s) * int(_C3)) & _M64)
        return k - (1 << 64) if k >= 1 << 63 else k


@njit(**SERIAL)
def _log2_at_least(m):
    """Smallest ``b >= 1`` with ``2**b >= m``."""
    b = 1
    while (1 << b) < m:
        b += 1
    return b


@njit(**SERIAL)
def _top_insert(c, s, h, k, zz, top_c, top_s, top_h, top_k, top_z, ntop):
    """Keep the ``len(top_c)`` best contents by (copies desc, salt, hash); returns the new size.
    Hashes are int64 bit patterns of uint64 values, compared as unsigned."""
    cap = top_c.shape[0]
    if cap == 0:
        return ntop
    # position of the first kept entry that ranks after (c, s, h)
    p = ntop
    while p > 0:
        q = p - 1
        if top_c[q] > c or (top_c[q] == c and (top_s[q] < s or (top_s[q] == s and (top_h[q] ^ _SIGN) < (h ^ _SIGN)))):
            break
        p = q
    if p >= cap:
        return ntop
    last = min(ntop, cap - 1)
    for q in range(last, p, -1):
        top_c[q] = top_c[q - 1]
        top_s[q] = top_s[q - 1]
        top_h[q] = top_h[q - 1]
        top_k[q] = top_k[q - 1]
        top_z[q] = top_z[q - 1]
    top_c[p] = c
    top_s[p] = s
    top_h[p] = h
    top_k[p] = k
    top_z[p] = zz
    return min(ntop + 1, cap)


@njit(**SERIAL)
def _stable_order(kk, ss, has_s, m):
    """Indices ``0..m-1`` ordered stably by ``(kk, ss)`` (by ``kk`` alone without ``has_s``): a
    bottom-up merge sort, the insertion sort's fallback (written out: Numba's ``argsort(kind=
    "mergesort")`` costs seconds of compilation on every fresh install)."""
    a = np.empty(m, np.int64)
    for q in range(m):
        a[q] = q
    b = np.empty(m, np.int64)
    width = 1
    while width < m:
        for lo in range(0, m, 2 * width):
            mid = min(lo + width, m)
            hi = min(lo + 2 * width, m)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                x, y = a[i], a[j]
                if kk[y] < kk[x] or (has_s and kk[y] == kk[x] and ss[y] < ss[x]):  # equal: left first
                    b[k] = y
                    j += 1
                else:
                    b[k] = x
                    i += 1
                k += 1
            while i < mid:
                b[k] = a[i]
                i += 1
                k += 1
            while j < hi:
                b[k] = a[j]
                j += 1
                k += 1
        a, b = b, a
        width *= 2
    return a


@njit(**SERIAL)
def _sort_bucket(rk, rp, rs, m, keymask, packed, has_s, sort_moves):
    """Finish sorting ``m`` records (``rk`` int64 bits, payload ``rp`` when not packed, salt
    ``rs`` when ``has_s``) already ordered by their top bits, by (key, salt) as unsigned and
    signed ints, stably: an insertion sort, which moves each record only past the few records of
    its sub-bucket. Falls back to a stable merge sort if the moves exceed ``sort_moves`` per
    record (keys that agree in many top bits, which mixed keys make unlikely)."""
    limit = sort_moves * m + 1024
    moves = 0
    for i in range(1, m):
        x = rk[i]
        kx = (x & keymask) ^ _SIGN
        sx = rs[i] if has_s else np.int64(0)
        j = i
        while j > 0:
            ky = (rk[j - 1] & keymask) ^ _SIGN
            if ky < kx or (ky == kx and (not has_s or rs[j - 1] <= sx)):
                break
            j -= 1
        if j == i:
            continue
        px = rp[i] if not packed else np.uint32(0)
        for q in range(i, j, -1):
            rk[q] = rk[q - 1]
            if not packed:
                rp[q] = rp[q - 1]
            if has_s:
                rs[q] = rs[q - 1]
        rk[j] = x
        if not packed:
            rp[j] = px
        if has_s:
            rs[j] = sx
        moves += i - j
        if moves > limit:
            # stable: the sorted prefix keeps the input order of equal records, as does the rest
            kk = np.empty(m, np.int64)
            for q in range(m):
                kk[q] = (rk[q] & keymask) ^ _SIGN
            order = _stable_order(kk, rs, has_s, m)
            # element loops, not slice assignment: Numba would compile its shape-mismatch error
            # message (string formatting), seconds of compilation for a path never taken
            tk = rk[:m].copy()
            for q in range(m):
                rk[q] = tk[order[q]]
            if not packed:
                tp = rp[:m].copy()
                for q in range(m):
                    rp[q] = tp[order[q]]
            if has_s:
                ts = rs[:m].copy()
                for q in range(m):
                    rs[q] = ts[order[q]]
            return


@njit(**SERIAL)
def _sort_packed(rk, rp, rs, m, keymask, packed, has_s, sort_moves):
    """:func:`_sort_bucket` for records with their payload packed and no salts, written out
    for them (unsigned indices; ``packed`` and ``has_s`` are True and False, passed on so that
    :func:`_sort_bucket` is compiled once); past ``sort_moves`` moves per record it hands the
    rest to :func:`_sort_bucket`."""
    limit = sort_moves * m + 1024
    moves = 0
    for i in range(1, m):
        x = rk[_U(i)]
        kx = (x & keymask) ^ _SIGN
        j = i
        while j > 0:
            y = rk[_U(j - 1)]
            if ((y & keymask) ^ _SIGN) <= kx:
                break
            rk[_U(j)] = y
            j -= 1
        if j != i:
            rk[_U(j)] = x
            moves += i - j
            if moves > limit:
                _sort_bucket(rk, rp, rs, m, keymask, packed, has_s, sort_moves)
                return


@njit(**INLINE)
def _ksm_pages(c, max_page_sharing):
    """KSM pages and copies left unshared for one content of ``c`` ≥ 2 copies: one KSM page up to
    ``max_page_sharing`` copies; beyond, full KSM pages of ``max_page_sharing`` mappings and one
    more for the rest, except that a single leftover copy has no partner to start a new KSM page
    (mm/ksm.c stable_tree_search: all dups full -> wait for an unstable-tree match)."""
    if c <= max_page_sharing:
        return 1, 0
    kp = (c + max_page_sharing - 1) // max_page_sharing
    if c % max_page_sharing == 1:
        return kp - 1, 1
    return kp, 0


@njit(**INLINE)
def _add_totals(acc, distinct, shared, groups, vms_sum, zero_saved, inter_shared, ksm_shared, ksm_sharing,
                ksm_unshared, ksm_zero):  # fmt: skip
    """Add one bucket's scan totals to ``acc`` (the order :func:`_scan_bucket` documents)."""
    acc[0] += distinct
    acc[1] += shared
    acc[2] += groups
    acc[3] += vms_sum
    acc[4] += zero_saved
    acc[5] += inter_shared
    acc[6] += ksm_shared
    acc[7] += ksm_sharing
    acc[8] += ksm_unshared
    acc[9] += ksm_zero


@njit(**SERIAL)
def _scan_bucket(
    rk, rp, rs, m, keymask, pmask, packed, has_s, vm_blocks, bucket, b1, use_zero_pages, max_page_sharing,
    hist, svd, vcount, touched, top_c, top_s, top_h, top_k, top_z, ntop, acc,
):  # fmt: skip
    """Count the ``m`` records of one level-1 bucket sorted by (key, salt) (stably: each
    content's pages in input order). Adds per VM to ``hist`` (int64[nvm, H_CLASSES +
    COPY_CLASSES + 1], see :data:`H_ZZ` ...) and ``svd`` (pages of contents with
    ``COPY_CLASSES`` or more copies), and to ``acc`` (distinct, shared, groups, vms_sum,
    zero_saved, inter_shared, KSM shared, sharing, unshared, zero); returns the new size of the
    top list. ``vcount`` and ``touched`` (int64[nvm], ``vcount`` all 0) are scratch for VMs
    whose pages interleave."""
    ntop_max = top_c.shape[0]
    cap = hist.shape[1] - 1 - H_CLASSES
    distinct = shared = groups = vms_sum = zero_saved = inter_shared = 0
    ksm_shared = ksm_sharing = ksm_unshared = ksm_zero = 0
    i = 0
    while i < m:
        r0 = rk[i]
        key = r0 & keymask
        s0 = rs[i] if has_s else np.int64(0)
        j = i + 1
        while j < m and (rk[j] & keymask) == key and (not has_s or rs[j] == s0):
            j += 1
        c = j - i
        p0 = (r0 & pmask) if packed else np.int64(rp[i])
        zz = p0 & 1
        distinct += 1
        if c == 1:
            if use_zero_pages and zz:
                ksm_zero += 1
            else:
                ksm_unshared += 1
            i = j
            continue
        cls = H_CLASSES + min(c, cap)
        big = c >= cap
        f = (c - 1) / c
        if vm_blocks:  # a content's pages arrive VM by VM: its (content, VM) pairs are runs
            pl = (rk[j - 1] & pmask) if packed else np.int64(rp[j - 1])
            inter = np.int64(1) if (pl >> 1) != (p0 >> 1) else np.int64(0)
            k = 0
            q = i
            v = p0 >> 1
            while True:
                e = q + 1
                while e < j and (((rk[e] & pmask) if packed else np.int64(rp[e])) >> 1) == v:
                    e += 1
                r = e - q
                k += 1
                hist[v, cls] += r
                hist[v, H_INTER_PAIRS] += r * inter + _PAIR
                hist[v, H_SINGLES] += np.int64(r == 1)
                if zz:
                    hist[v, H_ZZ] += r
                if big:
                    svd[v] += r * f
                if e == j:
                    break
                q = e
                v = ((rk[q] & pmask) if packed else np.int64(rp[q])) >> 1
        else:  # count each VM's pages of the content, then one update per VM
            k = 0
            for q in range(i, j):
                v = ((rk[q] & pmask) if packed else np.int64(rp[q])) >> 1
                if vcount[v] == 0:
                    touched[k] = v
                    k += 1
                vcount[v] += 1
            inter = np.int64(1) if k >= 2 else np.int64(0)
            for t in range(k):
                v = touched[t]
                r = vcount[v]
                vcount[v] = 0
                hist[v, cls] += r
                hist[v, H_INTER_PAIRS] += r * inter + _PAIR
                hist[v, H_SINGLES] += np.int64(r == 1)
                if zz:
                    hist[v, H_ZZ] += r
                if big:
                    svd[v] += r * f
        if use_zero_pages and zz:
            ksm_zero += c
        else:
            kp, left = _ksm_pages(c, max_page_sharing)
            ksm_shared += kp
            ksm_sharing += c - kp - left
            ksm_unshared += left
        shared += c
        groups += 1
        vms_sum += k
        if zz:
            zero_saved += c - 1
        if k >= 2:
            inter_shared += c
        if ntop_max and (ntop < ntop_max or c >= top_c[ntop_max - 1]):  # rarely true once full
            ntop = _top_insert(
                c, s0, _hash_of(key, s0, bucket, b1, packed), k, zz != 0, top_c, top_s, top_h, top_k, top_z, ntop
            )
        i = j
    _add_totals(acc, distinct, shared, groups, vms_sum, zero_saved, inter_shared, ksm_shared, ksm_sharing,
                ksm_unshared, ksm_zero)  # fmt: skip
    return ntop


@njit(**SERIAL)
def _scan_mixed(rk, i, e, vs, pmask, bucket, b1, use_zero_pages, max_page_sharing, sort_moves, hist, svd, top_c,
                top_s, top_h, top_k, top_z, ntop, acc):  # fmt: skip
    """The records ``rk[i:e]`` of one key whose pages have different salts (salts of VMs,
    ``vs``): sorted by salt, stably, in a copy and counted by :func:`_scan_bucket` — the order
    of the general path, so even the float sums are the same. Returns the new size of the top
    list. Only for keys equal under two salts (``(h ^ s·C3)·C1`` of two different contents)."""
    m = e - i
    trk = rk[i:e].copy()
    trs = np.empty(m, np.int64)
    for q in range(m):
        trs[q] = vs[(trk[q] & pmask) >> 1]
    rp = np.empty(0, np.uint32)
    yes = np.bool_(True)  # not the literal True: the general kernels are compiled once
    keymask = ~pmask
    _sort_bucket(trk, rp, trs, m, keymask, yes, yes, sort_moves)
    nvm = hist.shape[0]
    vcount = np.zeros(nvm, np.int64)
    touched = np.zeros(nvm, np.int64)
    return _scan_bucket(
        trk, rp, trs, m, keymask, pmask, yes, yes, yes, bucket, b1, use_zero_pages, max_page_sharing, hist, svd,
        vcount, touched, top_c, top_s, top_h, top_k, top_z, ntop, acc,
    )  # fmt: skip


@njit(**SERIAL)
def _scan_packed(
    rk, m, pmask, vs, bucket, b1, use_zero_pages, max_page_sharing, sort_moves, hist, svd, top_c, top_s, top_h, top_k,
    top_z, ntop, acc,
):  # fmt: skip
    """:func:`_scan_bucket` for its most common case, written out for it: payloads packed in the
    records, no salts or salts of VMs (``vs``, int64[nvm]; None without salts, a compilation of
    its own without the salt's live values), each VM's pages one block (fewer live values: its
    loops keep them in registers). With salts of VMs the records were sorted by key alone: a
    content is a run of equal key and equal salt of its pages' VMs, and a key whose run holds
    several salts (two contents whose mixed keys are equal) goes to :func:`_scan_mixed`, so the
    contents are counted in the order of the general path."""
    ntop_max = top_c.shape[0]
    cap = hist.shape[1] - 1 - H_CLASSES
    keymask = ~pmask
    distinct = shared = groups = vms_sum = zero_saved = inter_shared = 0
    ksm_shared = ksm_sharing = ksm_unshared = ksm_zero = 0
    i = np.int64(0)  # not the literal 0: Numba would compile _scan_mixed twice
    while i < m:
        r0 = rk[_U(i)]
        key = r0 & keymask
        j = i + 1
        if vs is not None:  # (compiled out without salts)
            s0 = vs[_U((r0 & pmask) >> 1)]
            while j < m and (rk[_U(j)] & keymask) == key and vs[_U((rk[_U(j)] & pmask) >> 1)] == s0:
                j += 1
            if j < m and (rk[_U(j)] & keymask) == key:  # another salt under the same key: rare
                e = j + 1
                while e < m and (rk[_U(e)] & keymask) == key:
                    e += 1
                _add_totals(acc, distinct, shared, groups, vms_sum, zero_saved, inter_shared, ksm_shared, ksm_sharing,
                            ksm_unshared, ksm_zero)  # fmt: skip
                distinct = shared = groups = vms_sum = zero_saved = inter_shared = 0
                ksm_shared = ksm_sharing = ksm_unshared = ksm_zero = 0
                ntop = _scan_mixed(rk, i, e, vs, pmask, bucket, b1, use_zero_pages, max_page_sharing, sort_moves, hist,
                                   svd, top_c, top_s, top_h, top_k, top_z, ntop, acc)  # fmt: skip
                i = e
                continue
        else:
            s0 = np.int64(0)
            while j < m and (rk[_U(j)] & keymask) == key:
                j += 1
        c = j - i
        p0 = r0 & pmask
        zz = p0 & 1
        distinct += 1
        if c == 1:
            if use_zero_pages and zz:
                ksm_zero += 1
            else:
                ksm_unshared += 1
            i = j
            continue
        cls = H_CLASSES + min(c, cap)
        big = c >= cap
        inter = np.int64(1) if ((rk[_U(j - 1)] & pmask) >> 1) != (p0 >> 1) else np.int64(0)
        k = 0
        q = i
        v = p0 >> 1
        while True:
            e = q + 1
            while e < j and ((rk[_U(e)] & pmask) >> 1) == v:
                e += 1
            r = e - q
            k += 1
            hist[_U(v), _U(cls)] += r
            hist[_U(v), H_INTER_PAIRS] += r * inter + _PAIR
            hist[_U(v), H_SINGLES] += np.int64(r == 1)
            if zz:
                hist[_U(v), H_ZZ] += r
            if big:
                svd[_U(v)] += r * ((c - 1) / c)
            if e == j:
                break
            q = e
            v = (rk[_U(q)] & pmask) >> 1
        if use_zero_pages and zz:
            ksm_zero += c
        else:
            kp, left = _ksm_pages(c, max_page_sharing)
            ksm_shared += kp
            ksm_sharing += c - kp - left
            ksm_unshared += left
        shared += c
        groups += 1
        vms_sum += k
        if zz:
            zero_saved += c - 1
        if k >= 2:
            inter_shared += c
        if ntop_max and (ntop < ntop_max or c >= top_c[ntop_max - 1]):  # rarely true once full
            ntop = _top_insert(
                c, s0, _hash_of(key, s0, bucket, b1, True), k, zz != 0, top_c, top_s, top_h, top_k, top_z, ntop
            )
        i = j
    _add_totals(acc, distinct, shared, groups, vms_sum, zero_saved, inter_shared, ksm_shared, ksm_sharing,
                ksm_unshared, ksm_zero)  # fmt: skip
    return ntop


@njit(**INLINE)
def _flat_limit(ntop, top_c, cap, max_page_sharing):
    """The copies from which :func:`_scan_flat` counts a content whole, by :func:`_scan_packed`:
    ``COPY_CLASSES`` (per-VM SHRDSVD), more than ``max_page_sharing`` (several KSM pages), or as
    many as the top list's last entry (every content while the list is not full)."""
    ntop_max = top_c.shape[0]
    if ntop_max and ntop < ntop_max:
        return 0
    lim = min(cap, max_page_sharing + 1)
    return min(lim, top_c[ntop_max - 1]) if ntop_max else lim


@njit(**SERIAL)
def _scan_flat(
    rk, m, pmask, vs, bucket, b1, use_zero_pages, max_page_sharing, sort_moves, hist, svd, top_c, top_s, top_h, top_k,
    top_z, ntop, acc, starts, code,
):  # fmt: skip
    """:func:`_scan_packed` (no salts, or salts of VMs ``vs``) in three passes with no branch
    that depends on the data, over windows of records that end where a content ends: (1) the
    first record of each content (a window whose contents have fewer than
    :data:`FLAT_MIN_COPIES` copies on average then goes to :func:`_scan_packed`); (2) per
    content, the totals and a code (shared, in several VMs, copies); (3) per record, its VM's
    counters. Where the one-pass scan mispredicts a branch per content and per (content, VM)
    run, these passes compute flags and add them. A content that needs more than additions
    (``COPY_CLASSES`` or more copies, more than ``max_page_sharing``, a top-list candidate,
    shared zero pages, a key under several salts) is counted by :func:`_scan_packed` as it
    comes, in content order, so every count, the float sums and the top list are those of the
    one-pass scan. ``starts`` (int32[w + 1]) and ``code`` (uint8[w]) are scratch for windows
    of ``w`` >= 1 records (:data:`SCAN_WINDOW`)."""
    cap = hist.shape[1] - 1 - H_CLASSES
    keymask = ~pmask
    uzp = np.int64(1) if use_zero_pages else np.int64(0)
    lim = _flat_limit(ntop, top_c, cap, max_page_sharing)
    distinct = shared = groups = vms_sum = inter_shared = 0
    ksm_sharing = ksm_unshared = ksm_zero = 0
    a = np.int64(0)
    while a < m:
        w = min(m - a, code.shape[0])
        # pass 1: where each content of the window starts (rk[a] starts one); with salts of VMs, a
        # run of one key is a content unless its pages' salts differ (code 1: counted whole)
        nc = np.int64(0)
        prev = ~rk[_U(a)] & keymask
        if vs is None:  # (compiled out with salts)
            for i in range(a, a + w):
                k = rk[_U(i)] & keymask
                starts[_U(nc)] = i
                nc += np.int64(k != prev)
                prev = k
        else:
            s0 = mixed = np.int64(0)
            for i in range(a, a + w):
                x = rk[_U(i)]
                k = x & keymask
                sv = vs[_U((x & pmask) >> 1)]
                f = np.int64(k != prev)
                starts[_U(nc)] = i
                nc += f
                s0 = sv if f else s0
                mixed = (mixed & (1 - f)) | np.int64(sv != s0)
                code[_U(nc - 1)] = mixed
                prev = k
        end = a + w
        whole = False
        if end < m and (rk[_U(end)] & keymask) == prev:  # the last content goes on past the window
            if nc == 1:  # one content fills the window (with SCAN_WINDOW, a rare one): counted whole
                while end < m and (rk[_U(end)] & keymask) == prev:
                    end += 1
                whole = True
            else:
                nc -= 1
                end = np.int64(starts[_U(nc)])
        # mostly contents of one page: the one-pass scan is faster (its branches mostly go one way)
        if whole or end - a < FLAT_MIN_COPIES * nc:
            ntop = _scan_packed(rk[a:end], end - a, pmask, vs, bucket, b1, use_zero_pages, max_page_sharing,
                                sort_moves, hist, svd, top_c, top_s, top_h, top_k, top_z, ntop, acc)  # fmt: skip
            lim = _flat_limit(ntop, top_c, cap, max_page_sharing)
            a = end
            continue
        starts[_U(nc)] = end
        # pass 2, per content: the totals, and the code pass 3 reads (bit 0 shared, bit 1 inter-VM)
        for t in range(nc):
            s = np.int64(starts[_U(t)])
            e = np.int64(starts[_U(t + 1)])
            c = e - s
            x0 = rk[_U(s)]
            zz = x0 & 1
            sh = np.int64(c >= 2)
            mixed = np.int64(code[_U(t)]) if vs is not None else np.int64(0)
            if ((np.int64(c >= lim) | zz | mixed) & sh) != 0:  # rare: counted whole, in content order
                ntop = _scan_packed(rk[s:e], c, pmask, vs, bucket, b1, use_zero_pages, max_page_sharing, sort_moves,
                                    hist, svd, top_c, top_s, top_h, top_k, top_z, ntop, acc)  # fmt: skip
                lim = _flat_limit(ntop, top_c, cap, max_page_sharing)
                code[_U(t)] = 0
                continue
            inter = np.int64(((x0 ^ rk[_U(e - 1)]) & pmask) >= 2)  # first and last page in other VMs
            code[_U(t)] = sh | (inter << 1) | (min(c, cap) << 2)
            distinct += 1
            shared += sh * c
            groups += sh  # one KSM page each (c <= max_page_sharing here)
            inter_shared += sh * inter * c
            zq = uzp & zz  # zz only when c == 1 here
            ksm_zero += zq
            ksm_unshared += (1 - zq) & (1 - sh)
            ksm_sharing += sh * (c - 1)
        # pass 3, per record: its VM's pages by copies, inter-VM pages, pairs and one-page pairs
        t = np.int64(-1)
        vprev = np.int64(-1)
        kprev = ~rk[_U(a)] & keymask
        for i in range(a, end):
            x = rk[_U(i)]
            xn = rk[_U(min(i + 1, end - 1))]
            f = np.int64((x & keymask) != kprev)  # a content's first record
            kprev = x & keymask
            t += f
            cd = np.int64(code[_U(t)])
            sh = cd & 1
            v = (x & pmask) >> 1
            st = f | np.int64(v != vprev)  # a (content, VM) run's first record
            en = np.int64(((x ^ xn) & ~np.int64(1)) != 0) | np.int64(i + 1 == end)  # and its last
            hist[_U(v), _U(H_CLASSES + (cd >> 2))] += sh
            hist[_U(v), H_INTER_PAIRS] += sh * (((cd >> 1) & 1) + _PAIR * st)
            hist[_U(v), H_SINGLES] += sh & st & en
            vms_sum += sh & st
            vprev = v
        a = end
    _add_totals(acc, distinct, shared, groups, vms_sum, 0, inter_shared, groups, ksm_sharing, ksm_unshared, ksm_zero)
    return ntop


@njit(**SERIAL)
def _salt_per_vm(s, vm, nvm, vs):
    """Whether every page's salt is that of its VM (``share --salting``: sharing domains are sets
    of VMs), writing each VM's salt to ``vs`` (int64[nvm]); False as soon as one is not, or a VM
    index is outside ``[0, nvm)`` (left for :func:`_count` to report)."""
    has_vm = vm.shape[0] > 0
    seen = np.zeros(max(nvm, 1), np.bool_)
    for i in range(s.shape[0]):
        v = np.int64(vm[i]) if has_vm else np.int64(0)
        if v < 0 or v >= nvm:
            return False
        if seen[v]:
            if vs[v] != s[i]:
                return False
        else:
            seen[v] = True
            vs[v] = s[i]
    return True


@njit(**SERIAL)
def _scatter_packed(h, vs, vm, z, a, e, base, nvm, b1, bs, keys, nxt, per_vm, seen, order):
    """:func:`_scatter` written out for its most common case: VM indices and zero flags given,
    no salts or salts of VMs (``vs``, int64[nvm]; None without salts, a compilation of its own),
    every page eligible, payloads packed; an entry of its own, chosen in Python, so a process
    compiles only the scatter it runs. Each bucket's next record goes to ``pos[b]`` (one array
    read per page, not two); the records per bucket and the block each ends in are read off the
    chains at the end. A full write-combining buffer goes out as 64-byte non-temporal stores,
    one per line. Pages ``a <= i < e`` into the blocks from ``base`` on; returns what
    :func:`_scatter` returns."""
    nb = 1 << b1
    size = np.zeros(nb, np.int64)
    cur = np.empty(nb, np.int64)
    wcb = np.empty(nb * WC_LINE, np.int64)
    vm_blocks = np.bool_(True)
    free = np.int64(base + nb)
    prev = np.int64(-2)  # no VM index: a first page of VM -1 must meet the range check too
    nord = 0
    n_pages = n_zero = 0
    pos = (np.arange(nb) + base) * bs  # bucket b starts in block base + b
    for i in range(a, e):
        v = np.int64(vm[_U(i)])
        if v != prev:
            if v < 0 or v >= nvm:
                return size, 0, False, i
            if prev >= 0:
                per_vm[prev, V_PAGES] += n_pages
                per_vm[prev, V_ZERO] += n_zero
            n_pages = n_zero = 0
            if seen[v]:
                vm_blocks = False
            else:
                order[nord] = v
                nord += 1
            seen[v] = True
            prev = v
        n_pages += 1
        zi = np.int64(z[_U(i)])
        n_zero += zi
        k = _mix(h[_U(i)], vs[_U(v)] if vs is not None else 0)
        b = _U(_top(k, 0, b1))
        q = pos[b]
        pos[b] = q + 1
        w = b * _U(WC_LINE)
        wcb[w + _U(q & (WC_LINE - 1))] = _record(k, b1, (v << 1) | zi, True)
        if (q & (WC_LINE - 1)) == WC_LINE - 1:  # whole lines: written without reading them first
            for x in range(0, WC_LINE, 8):
                stream_line(keys, _U(q - (WC_LINE - 1) + x), wcb, w + _U(x))
            if (q & (bs - 1)) == bs - 1:
                nxt[_U(q // bs)] = free
                pos[b] = free * bs
                free += 1
    if e > a:
        per_vm[prev, V_PAGES] += n_pages
        per_vm[prev, V_ZERO] += n_zero
    for b in range(nb):  # records per bucket: full blocks of its chain and the last one's
        last = pos[b] // bs
        blk = base + b
        full = 0
        while blk != last:
            blk = nxt[blk]
            full += 1
        size[b] = full * bs + (pos[b] & (bs - 1))
        cur[b] = last
    _flush_lines(keys, size, cur, wcb, bs)
    return size, nord, vm_blocks, -1


@njit(**INLINE)
def _sub_bucket_starts(keys, nxt, bases, sizes, b, bs, drop, b2, cnt):
    """The counting sort's first pass over level-1 bucket ``b`` (its chain of blocks from each
    range of :func:`_scatter`: ``sizes[p, b]`` records from block ``bases[p] + b``): leaves in
    ``cnt[c]`` the first position of sub-bucket ``c`` (the ``b2`` bits of a record below its top
    ``drop``)."""
    nb2 = 1 << b2
    for c2 in range(nb2 + 1):
        cnt[_U(c2)] = 0
    for p in range(bases.shape[0]):  # each range's chain of blocks, all full but the last
        blk = bases[p] + b
        left = sizes[p, b]
        while left > 0:
            lo = blk * bs
            for i in range(lo, lo + min(bs, left)):
                cnt[_U(_top(keys[_U(i)], drop, b2) + 1)] += 1
            left -= bs
            blk = nxt[_U(blk)]
    for c2 in range(nb2):
        cnt[_U(c2 + 1)] += cnt[_U(c2)]


@njit(**SERIAL)
def _copy_packed(keys, nxt, bases, sizes, b, bs, b2, cnt, rk):
    """The counting sort of :func:`_buckets` for packed records: the records of level-1 bucket
    ``b`` (its chain of blocks from each range of :func:`_scatter`: ``sizes[p, b]`` records
    from block ``bases[p] + b``) into ``rk`` by their top ``b2`` bits, stably; ``cnt``
    (int32[>= 2**b2 + 1]) is scratch."""
    _sub_bucket_starts(keys, nxt, bases, sizes, b, bs, 0, b2, cnt)
    for p in range(bases.shape[0]):
        blk = bases[p] + b
        left = sizes[p, b]
        while left > 0:
            lo = blk * bs
            for i in range(lo, lo + min(bs, left)):
                x = keys[_U(i)]
                c2 = _U(_top(x, 0, b2))
                q = cnt[c2]
                cnt[c2] = q + 1
                rk[_U(q)] = x
            left -= bs
            blk = nxt[_U(blk)]


@njit(**SERIAL)
def _copy_sort(
    keys, pay, sal, vs, nxt, bases, sizes, b, m, bs, b2, drop2, cnt, rk, rp, rs, pmask, keymask, packed, has_s, keep_s,
    by_vm, sort_moves,
):  # fmt: skip
    """Level-1 bucket ``b`` of :func:`_buckets` (``m`` records in its chains of blocks in
    ``keys``, ``pay``, ``sal``, as :func:`_copy_packed`) sorted into ``rk``, ``rp``, ``rs``: a
    counting sort by the ``b2`` bits below ``drop2``, then :func:`_sort_bucket`. ``cnt``
    (int32[>= 2**b2 + 1]) is scratch."""
    _sub_bucket_starts(keys, nxt, bases, sizes, b, bs, drop2, b2, cnt)
    for p in range(bases.shape[0]):
        blk = bases[p] + b
        left = sizes[p, b]
        while left > 0:
            lo = blk * bs
            for i in range(lo, lo + min(bs, left)):
                x = keys[_U(i)]
                c2 = _U(_top(x, drop2, b2))
                q = cnt[c2]
                cnt[c2] = q + 1
                rk[_U(q)] = x
                if not packed:
                    rp[q] = pay[i]
                if keep_s:
                    rs[q] = sal[i]
            left -= bs
            blk = nxt[blk]
    if by_vm:  # the salt of each record's VM (a loop of its own keeps the one above as it was)
        for q in range(m):
            rs[q] = vs[((rk[q] & pmask) if packed else np.int64(rp[q])) >> 1]
    _sort_bucket(rk, rp, rs, m, keymask, packed, has_s, sort_moves)


@njit(**SERIAL)
def _scatter(h, s, vm, z, el, a, e, base, nvm, b1, packed, bs, keys, pay, sal, nxt, per_vm, seen, order):
    """The one pass over the pages of :func:`count_sharing` (see the module docstring, "How it
    counts", steps 1 and 2).

    ``s``, ``vm``, ``z``, ``el`` may be empty, meaning salt 0, VM 0, not zero and eligible for
    every page. When every page's salt is its VM's (``share --salting``), ``sal`` is empty: the
    records carry no salt through the scatter and it is looked up by the VM index when a
    level-1 bucket is copied for its sort. ``keys`` (int64[r]), ``pay``
    (uint32[r], or empty when ``packed``) and ``sal`` (int64[r], or empty without salts) are
    scratch space for the eligible pages' records in chains of blocks of ``bs`` records, one
    chain per level-1 bucket, ``r = (2**b1 + n // bs + 1) * bs`` (NumPy allocates them, with
    transparent huge pages, which the scatter needs; ``keys`` aligned to 64 bytes).
    ``b1`` level-1 bucket bits; ``packed``: a page's ``vm << 1 | zero`` fits in ``b1`` bits and
    is stored in its record. Pages ``a <= i < e`` only, into the blocks from ``base`` on (block
    ``base + b`` starts bucket ``b``; ``nxt`` links the blocks of a chain): ranges of pages into
    disjoint ranges of blocks can be scattered at the same time, and a bucket's chains, read
    range by range, hold its records in input order. Adds pages, zero pages and ineligible pages
    to ``per_vm`` (int64[nvm, N_VM]); marks the VMs met in ``seen`` (bool[nvm], all False) and
    lists them in the order first met in ``order``. Returns (records per bucket, number of VMs
    in ``order``, whether each VM's pages form one block in the range, -1) or (.., .., .., i)
    when page ``i`` has a VM index outside ``[0, nvm)``.
    """
    has_s = s.shape[0] > 0
    keep_s = sal.shape[0] > 0  # salts carried through the scatter (not when they are the VMs')
    has_vm = vm.shape[0] > 0
    has_z = z.shape[0] > 0
    has_el = el.shape[0] > 0
    nb = 1 << b1
    # VM range; pages and zero pages per VM (summed while the VM stays the same); is each VM's
    # set of pages one block?; and the scatter of eligible pages' records into their level-1
    # buckets, stably. A bucket is a chain of blocks of SCATTER_BLOCK records in ``keys`` (block
    # ``b`` starts bucket ``b``; a full block gets the next free one), so no histogram pass is
    # needed to place the buckets. Records go through write-combining buffers, WC_LINE records per
    # bucket, written as whole lines with non-temporal stores (blocks are whole buffers:
    # count_sharing aligns ``keys`` to WC_LINE records).
    size = np.zeros(nb, np.int64)  # records per bucket
    cur = np.arange(nb) + base  # the block each bucket fills
    free = np.int64(base + nb)
    wcb = np.empty(nb * WC_LINE, np.int64)
    nord = 0
    if not has_vm and e > a:
        order[0] = 0
        nord = 1
    vm_blocks = np.bool_(True)  # not the literal True: Numba would compile _scan_bucket twice
    prev = np.int64(-2) if has_vm else np.int64(0)  # no VM index: a first page of VM -1 meets the check
    n_pages = n_zero = 0
    for i in range(a, e):
        v = np.int64(0)
        if has_vm:
            v = np.int64(vm[i])
            if v != prev:
                if v < 0 or v >= nvm:
                    return size, nord, vm_blocks, i
                if prev >= 0:
                    per_vm[prev, V_PAGES] += n_pages
                    per_vm[prev, V_ZERO] += n_zero
                n_pages = n_zero = 0
                if seen[v]:
                    vm_blocks = False
                else:
                    order[nord] = v
                    nord += 1
                seen[v] = True
                prev = v
        n_pages += 1
        zi = np.int64(1) if has_z and z[i] else np.int64(0)
        n_zero += zi
        if has_el and not el[i]:
            per_vm[prev, V_INELIGIBLE] += 1
            continue
        si = np.int64(s[i]) if has_s else np.int64(0)
        k = _mix(h[i], si)
        b = _top(k, 0, b1)
        p = (v << 1) | zi
        off = size[_U(b)] & (bs - 1)
        size[_U(b)] += 1
        blk = cur[_U(b)]
        q = blk * bs + off
        t = off & (WC_LINE - 1)
        wcb[_U(b * WC_LINE + t)] = _record(k, b1, p, packed)
        if t == WC_LINE - 1:
            for x in range(WC_LINE):  # a whole line: written without reading it first
                stream_store(keys, q - (WC_LINE - 1) + x, wcb[_U(b * WC_LINE + x)])
            if off == bs - 1:
                nxt[blk] = free
                cur[b] = free
                free += 1
        if not packed:
            pay[q] = np.uint32(p)
        if keep_s:
            sal[q] = si
    if e > a and nvm:
        per_vm[prev, V_PAGES] += n_pages
        per_vm[prev, V_ZERO] += n_zero
    _flush_lines(keys, size, cur, wcb, bs)
    return size, nord, vm_blocks, -1


@njit(**SERIAL)
def _flush_lines(keys, size, cur, wcb, bs):
    """The end of a scatter: each bucket's last, partly filled line from its write-combining
    buffer into ``keys``, then a fence for the non-temporal stores."""
    for b in range(size.shape[0]):
        off = size[b] & (bs - 1)
        line = cur[b] * bs + off - (off & (WC_LINE - 1))
        for x in range(off & (WC_LINE - 1)):
            keys[line + x] = wcb[b * WC_LINE + x]
    store_fence()


@njit(**SERIAL)
def _buckets(
    keys, pay, sal, vs, nxt, bases, sizes, size, lo, hi, has_s, vm_blocks, use_zero_pages, max_page_sharing, b1,
    b2max, sort_moves, packed, bs, hist, svd, top,
):  # fmt: skip
    """Count the level-1 buckets ``lo <= b < hi`` left by :func:`_scatter` (in ``keys``,
    ``pay``, ``sal``: ``sizes[p, b]`` records from block ``bases[p] + b`` of each range ``p``
    of pages, linked by ``nxt``; ``size`` their sum):
    per bucket a counting sort by the next bits of the key into a copy that stays in cache, an
    insertion sort that finishes it, and one scan of the contents. Adds to ``hist``
    (int64[nvm, H_CLASSES + COPY_CLASSES + 1]) and ``svd`` (float64[nvm]) and keeps the top
    contents in ``top`` = (copies, salt, hash, vms, zero) arrays of the wanted length; returns
    (number of top entries, the scan totals (int64[10], the order of :func:`_add_totals`)).
    Buckets are independent: ranges of them can be counted at the same time, each into its own
    ``hist``, ``svd`` and ``top``."""
    top_c, top_s, top_h, top_k, top_z = top
    by_vm = vs.shape[0] > 0
    keep_s = sal.shape[0] > 0
    nvm = hist.shape[0]
    pmask = np.int64((1 << b1) - 1) if packed else np.int64(0)
    keymask = ~pmask
    drop2 = 0 if packed else b1  # level-2 bits are the record's top bits when packed
    max1 = 1
    for b in range(lo, hi):
        max1 = max(max1, size[b])
    rk = np.empty(max1, np.int64)
    rp = np.empty(0 if packed else max1, np.uint32)
    rs = np.empty(max1 if has_s else 0, np.int64)
    cnt = np.zeros((1 << b2max) + 1, np.int32)  # 4 bytes: half the cache of int64
    vcount = np.zeros(max(nvm, 1), np.int64)
    touched = np.zeros(max(nvm, 1), np.int64)
    acc = np.zeros(10, np.int64)
    ntop = np.int64(0)  # not the literal 0: Numba would compile _scan_bucket twice
    for b in range(lo, hi):
        m = size[b]
        if m == 0:
            continue
        b2 = max(1, min(b2max, _log2_at_least(m) - L2_SHIFT))
        if packed and not has_s:
            _copy_packed(keys, nxt, bases, sizes, b, bs, b2, cnt, rk)
            _sort_packed(rk, rp, rs, m, keymask, packed, has_s, sort_moves)
        else:
            _copy_sort(keys, pay, sal, vs, nxt, bases, sizes, b, m, bs, b2, drop2, cnt, rk, rp, rs, pmask, keymask,
                       packed, has_s, keep_s, by_vm, sort_moves)  # fmt: skip
        ntop = _scan_bucket(
            rk, rp, rs, m, keymask, pmask, packed, has_s, vm_blocks, b, b1, use_zero_pages, max_page_sharing,
            hist, svd, vcount, touched, top_c, top_s, top_h, top_k, top_z, ntop, acc,
        )  # fmt: skip
    return ntop, acc


@njit(**SERIAL)
def _buckets_packed(
    keys, vs, nxt, bases, sizes, size, lo, hi, use_zero_pages, max_page_sharing, b1, b2max, sort_moves, bs, hist, svd,
    top, starts, code,
):  # fmt: skip
    """:func:`_buckets` for packed records of VMs whose pages form blocks, without salts (``vs``
    None) or with salts of VMs (``vs``): the written-out copy, sort and scan, the records sorted
    by key alone (:func:`_scan_packed` tells the salts of VMs apart); a bucket is scanned by
    :func:`_scan_flat` (``starts`` and ``code`` its scratch) when the bucket before
    had :data:`FLAT_MIN_COPIES` copies a content on average. An entry of its own, so a
    process compiles only the bucket count it runs."""
    top_c, top_s, top_h, top_k, top_z = top
    pmask = np.int64((1 << b1) - 1)
    keymask = ~pmask
    max1 = 1
    for b in range(lo, hi):
        max1 = max(max1, size[b])
    rk = np.empty(max1, np.int64)
    rp = np.empty(0, np.uint32)
    rs = np.empty(0, np.int64)
    cnt = np.zeros((1 << b2max) + 1, np.int32)  # 4 bytes: half the cache of int64
    acc = np.zeros(10, np.int64)
    yes = np.bool_(True)  # the arguments _sort_bucket (its fallback) is compiled for elsewhere
    no_s = np.bool_(False)
    ntop = np.int64(0)
    flat = True
    distinct = np.int64(0)  # contents counted so far (acc[0])
    for b in range(lo, hi):
        m = size[b]
        if m == 0:
            continue
        b2 = max(1, min(b2max, _log2_at_least(m) - L2_SHIFT))
        _copy_packed(keys, nxt, bases, sizes, b, bs, b2, cnt, rk)
        _sort_packed(rk, rp, rs, m, keymask, yes, no_s, sort_moves)
        if flat:
            ntop = _scan_flat(
                rk, m, pmask, vs, b, b1, use_zero_pages, max_page_sharing, sort_moves, hist, svd, top_c, top_s, top_h,
                top_k, top_z, ntop, acc, starts, code,
            )  # fmt: skip
        else:
            ntop = _scan_packed(
                rk, m, pmask, vs, b, b1, use_zero_pages, max_page_sharing, sort_moves, hist, svd, top_c, top_s, top_h,
                top_k, top_z, ntop, acc,
            )  # fmt: skip
        # the next bucket by three passes if this one's contents had FLAT_MIN_COPIES copies on
        # average (the buckets of a set are alike: its hashes spread evenly)
        flat = m >= FLAT_MIN_COPIES * (acc[0] - distinct)
        distinct = acc[0]
    return ntop, acc


@njit(**SERIAL)
def _merge_top(top, ntop, part, npart):
    """Keep in ``top`` (of size ``ntop``) the best of it and the ``npart`` entries of ``part``
    (the same kind of arrays); returns the new size. The kept set does not depend on the order
    of the merges: :func:`_top_insert` ranks by (copies desc, salt, hash), unique per content."""
    top_c, top_s, top_h, top_k, top_z = top
    for q in range(npart):
        ntop = _top_insert(part[0][q], part[1][q], part[2][q], part[3][q], part[4][q], top_c, top_s, top_h, top_k,
                           top_z, ntop)  # fmt: skip
    return ntop


@njit(**SERIAL)
def _finish(n, hist, svd, acc, tot, per_vm):
    """The counts of :class:`SharingCounts` from the scan's per-VM ``hist``, ``svd`` (to which
    the pages of contents with fewer than COPY_CLASSES copies are added here), totals ``acc``
    and the scatter's pages per VM in ``per_vm``: writes ``per_vm`` and ``tot``."""
    nvm = per_vm.shape[0]
    # ---- per VM, from the (content, VM) pairs of shared contents and the pages by copies
    for v in range(nvm):
        sh = 0
        for c in range(2, COPY_CLASSES + 1):
            sh += hist[v, H_CLASSES + c]
        for c in range(2, COPY_CLASSES):
            svd[v] += hist[v, H_CLASSES + c] * ((c - 1) / c)
        pairs = hist[v, H_INTER_PAIRS] >> 32
        per_vm[v, V_SHARED] = sh
        per_vm[v, V_ZERO_SHARED] = hist[v, H_ZZ]
        per_vm[v, V_INTER_SHARED] = hist[v, H_INTER_PAIRS] & _LOW32
        per_vm[v, V_ALONE_SHARED] = sh - hist[v, H_SINGLES]
        per_vm[v, V_ALONE_RECLAIMED] = sh - pairs
    distinct, shared, groups, vms_sum, zero_saved, inter_shared = acc[0], acc[1], acc[2], acc[3], acc[4], acc[5]
    ksm_shared, ksm_sharing, ksm_unshared, ksm_zero = acc[6], acc[7], acc[8], acc[9]
    # ---- totals; ineligible pages are each their own unshared content
    inel = 0
    zero = 0
    for v in range(nvm):
        zero += per_vm[v, V_ZERO]
        inel += per_vm[v, V_INELIGIBLE]
    tot[T_PAGES] = n
    tot[T_ZERO] = zero
    tot[T_INELIGIBLE] = inel
    tot[T_DISTINCT] = distinct + inel
    tot[T_SHARED] = shared
    tot[T_SHARED_GROUPS] = groups
    tot[T_RECLAIMED] = shared - groups
    tot[T_UNSHARED] = n - shared
    tot[T_INTRA] = shared - vms_sum
    tot[T_INTER] = vms_sum - groups
    tot[T_ZERO_SAVED] = zero_saved
    tot[T_INTER_SHARED] = inter_shared
    tot[T_KSM_SHARED] = ksm_shared
    tot[T_KSM_SHARING] = ksm_sharing
    tot[T_KSM_UNSHARED] = ksm_unshared + inel
    tot[T_KSM_ZERO] = ksm_zero


@dataclass
class SharingCounts:
    """Additive sharing counts of a set of pages (see the module docstring).

    Sum two of them (``a + b``) when they describe disjoint hash ranges of the same VMs — the
    gather step of partitioned counting.
    """

    vm_names: list[str]
    totals: np.ndarray  # int64[N_TOTALS]
    per_vm: np.ndarray  # int64[nvm, N_VM]
    shrdsvd: np.ndarray  # float64[nvm], pages
    top: list[tuple[int, int, int, int, bool]] = field(default_factory=list)  # (hash, salt, copies, vms, zero)
    use_zero_pages: bool = False
    max_page_sharing: int = 256
    verified: bool = False
    false_matches: int = 0
    hash_bits: int = 64
    page_size: int = PAGE_SIZE
    top_n: int = 10
    #: (p, partitions) when these are the counts of hash-prefix partition p (:mod:`.partition`)
    partition: tuple[int, int] | None = None

    def __add__(self, other: SharingCounts) -> SharingCounts:
        if self.vm_names != other.vm_names:
            raise ValueError("cannot add counts of different VM sets")
        if (self.use_zero_pages, self.max_page_sharing) != (other.use_zero_pages, other.max_page_sharing):
            raise ValueError("cannot add counts made with different KSM settings")
        if self.page_size != other.page_size:
            raise ValueError(f"cannot add counts of {self.page_size}- and {other.page_size}-byte pages")
        # the kernel's choice of the top contents, by (copies desc, salt, hash), listed by (copies
        # desc, hash, salt): choosing by hash first kept other contents than one count of the whole
        # set under salts (ties in copies). As many as the shorter list promises: beyond its top_n one
        # side's next contents are unknown (top 1 of one part and top 3 of another listed the
        # second's 2-copy contents above the first's 4-copy one)
        top_n = min(self.top_n, other.top_n)
        top = sorted(self.top + other.top, key=lambda t: (-t[2], t[1], t[0]))[:top_n]
        top.sort(key=lambda t: (-t[2], t[0], t[1]))
        return SharingCounts(
            vm_names=self.vm_names,
            totals=self.totals + other.totals,
            per_vm=self.per_vm + other.per_vm,
            shrdsvd=self.shrdsvd + other.shrdsvd,
            top=top,
            use_zero_pages=self.use_zero_pages,
            max_page_sharing=self.max_page_sharing,
            verified=self.verified and other.verified,
            false_matches=self.false_matches + other.false_matches,
            hash_bits=min(self.hash_bits, other.hash_bits),
            page_size=self.page_size,
            top_n=top_n,
        )

    # ------------------------------------------------------------------ derived values
    def t(self, idx: int) -> int:
        return int(self.totals[idx])

    @property
    def expected_false_matches(self) -> float:
        """Expected colliding pairs among the distinct contents for this hash width."""
        d = float(self.t(T_DISTINCT))
        return d * (d - 1) / 2 / 2.0**self.hash_bits

    def mb(self, pages: float) -> float:
        return pages * self.page_size / MB

    def to_dict(self) -> dict:
        """Every metric, JSON-ready (see the module docstring for definitions)."""
        t = self.t
        # pages mapped to the kernel zero page lose their rmap item at ksmd's next pass
        ksm_rmap = t(T_KSM_SHARED) + t(T_KSM_SHARING) + t(T_KSM_UNSHARED)
        ksm_saved = t(T_KSM_SHARING) + t(T_KSM_ZERO)
        out = {
            "vms": len(self.vm_names),
            "total_pages": t(T_PAGES),
            "zero_pages": t(T_ZERO),
            "shared_pages": t(T_SHARED),
            "reclaimed_pages": t(T_RECLAIMED),
            "shared_minus_reclaimed_pages": t(T_SHARED) - t(T_RECLAIMED),
            "distinct_pages": t(T_DISTINCT),
            "unshared_pages": t(T_UNSHARED),
            "ineligible_pages": t(T_INELIGIBLE),
            "intra_vm_saved_pages": t(T_INTRA),
            "inter_vm_saved_pages": t(T_INTER),
            "zero_saved_pages": t(T_ZERO_SAVED),
            "nonzero_saved_pages": t(T_RECLAIMED) - t(T_ZERO_SAVED),
            "inter_vm_shared_pages": t(T_INTER_SHARED),
            "false_matches": int(self.false_matches),
            "verified": bool(self.verified),
            "hash_bits": self.hash_bits,
            "expected_false_matches": self.expected_false_matches,
            "page_size": self.page_size,
        }
        for k in ("total", "zero", "shared", "reclaimed", "shared_minus_reclaimed"):
            out[f"{k}_mb"] = self.mb(out[f"{k}_pages"])
        out["ksm"] = {
            "pages_shared": t(T_KSM_SHARED),
            "pages_sharing": t(T_KSM_SHARING),
            "pages_unshared": t(T_KSM_UNSHARED),
            "ksm_zero_pages": t(T_KSM_ZERO),
            "use_zero_pages": int(self.use_zero_pages),
            "max_page_sharing": self.max_page_sharing,
            "general_profit": ksm_saved * self.page_size - ksm_rmap * RMAP_ITEM_BYTES,
        }
        out["esxtop"] = {
            "SHRD_mb": self.mb(t(T_SHARED)),
            "ZERO_mb": self.mb(t(T_ZERO)),
            "SHRDSVD_mb": self.mb(t(T_RECLAIMED)),
        }
        out["top_shared"] = [
            {"hash": f"{h:016x}", "salt": int(s), "copies": int(c), "vms": int(k), "zero": bool(zz)}
            for h, s, c, k, zz in self.top
        ]
        by_vm = {}
        for i, name in enumerate(self.vm_names):
            row = self.per_vm[i]
            by_vm[name] = {
                "total_pages": int(row[V_PAGES]),
                "zero_pages": int(row[V_ZERO]),
                "shared_pages": int(row[V_SHARED]),
                "zero_shared_pages": int(row[V_ZERO_SHARED]),
                "inter_vm_shared_pages": int(row[V_INTER_SHARED]),
                "ineligible_pages": int(row[V_INELIGIBLE]),
                "alone_shared_pages": int(row[V_ALONE_SHARED]),
                "alone_reclaimed_pages": int(row[V_ALONE_RECLAIMED]),
                "esxtop": {
                    "SHRD_mb": self.mb(int(row[V_SHARED])),
                    "ZERO_mb": self.mb(int(row[V_ZERO])),
                    "SHRDSVD_mb": self.mb(float(self.shrdsvd[i])),
                },
            }
        out["by_vm"] = by_vm
        return out


def _flags(a, n: int, name: str) -> np.ndarray:
    """``a`` as a contiguous bool[n] (a view when it already is one); numbers must be 0 or 1 (a NaN
    flag was taken as True)."""
    a = np.asarray(a)  # a scalar keeps its shape () here (np.ascontiguousarray makes it one of 1)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    a = np.ascontiguousarray(a)
    if a.dtype != np.bool_:
        if a.dtype.kind not in "iuf" or not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must be bool flags (or numbers 0 and 1), got {a.dtype}")
        a = a.astype(np.bool_)
    return a


def _whole(a, n: int, name: str) -> np.ndarray:
    """``a`` as a contiguous int64[n] of the same numbers: integers, bools, or floats that are whole
    and within int64 (a float salt was truncated: salts 0.5 and 0.7 shared their pages)."""
    a = np.asarray(a)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    a = np.ascontiguousarray(a)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold whole numbers, got {a.dtype}")
    if a.dtype.kind == "f" and n and not (np.isfinite(a).all() and (a == np.floor(a)).all() and (abs(a) < 2**63).all()):
        raise ValueError(f"{name} must hold whole numbers, got {a.dtype} values that are not (or NaN)")
    return a.astype(np.int64, copy=False)


def compact_vm_index(idx: np.ndarray, nvm: int) -> np.ndarray:
    """VM indices ``0 <= idx < nvm`` in the dtype every caller of :func:`count_sharing` hands it
    (:func:`pagecore.pages.tables.vm_index_dtype`, which ``share``'s :func:`~pagecore.pages.tables.vm_index`
    produces directly): one kernel signature per size, and 7 bytes a page less than int64."""
    from pagecore.pages.tables import vm_index_dtype

    idx = np.asarray(idx)
    kind = idx.dtype.kind
    whole = kind in "iu" or (kind == "f" and np.isfinite(idx).all() and (idx == np.floor(idx)).all())
    if not whole:  # floats were truncated: 0.5 and 1.7 became VMs 0 and 1
        raise ValueError(f"VM indices must be whole numbers, got {idx.dtype} values that are not")
    dt = vm_index_dtype(nvm)
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= max(nvm, 1)):
        raise ValueError(f"VM indices must be in [0, {nvm}), got {int(idx.min())}..{int(idx.max())}")
    return idx.astype(dt, copy=False)


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a`` itself when read-only, else a read-only view of it."""
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


def _chunks(size: np.ndarray, nvm: int) -> list[tuple[int, int]]:
    """Ranges of level-1 buckets for :func:`_buckets`, about equal in records: at most
    :data:`COUNT_CHUNKS`, fewer when the ranges' per-VM scratch would pass
    :data:`CHUNK_SCRATCH_BYTES` in all. Fixed by the input alone (never by the
    number of threads), so the float sums add up in the same order whatever it is."""
    nb = size.shape[0]
    per_vm = (H_CLASSES + COPY_CLASSES + 1) * 8 + 8 + 16  # hist and svd rows, vcount and touched
    k = max(1, min(COUNT_CHUNKS, nb, CHUNK_SCRATCH_BYTES // max(1, nvm * per_vm)))
    ends = np.cumsum(size)
    total = int(ends[-1])
    cuts = [0]
    for j in range(1, k):
        c = int(np.searchsorted(ends, total * j // k, side="right"))
        if cuts[-1] < c < nb:
            cuts.append(c)
    cuts.append(nb)
    return list(itertools.pairwise(cuts))


def _scatter_ranges(n: int, threads: int, b1: int, bs: int) -> list[int]:
    """Bounds of the ranges of pages the one pass scatters on ``threads`` threads: as many as
    threads, but each of at least :data:`SCATTER_MIN_PAGES` pages and :data:`SCATTER_RANGE_TAILS`
    times its buckets' block tails (``2**b1`` blocks of ``bs`` records); one for small sets."""
    nparts = max(1, min(threads, n // max(1, SCATTER_MIN_PAGES, SCATTER_RANGE_TAILS * (1 << b1) * bs)))
    return [n * p // nparts for p in range(nparts + 1)]


def _run(fn, items, threads: int) -> list:
    """``[fn(x) for x in items]``, on up to ``threads`` threads (Numba kernels release the GIL)."""
    items = list(items)
    threads = min(threads, len(items))
    if threads <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pagecore-count") as pool:
        return list(pool.map(fn, items))


def _vm_blocks(in_blocks, orders) -> bool:
    """Whether each VM's pages form one block of the input, from the ranges of
    :func:`_scatter` (``in_blocks``: whether each range's VMs are one block each; ``orders``:
    each range's VMs in the order met): the ranges' orders joined (a VM that ends one range and
    starts the next once) all different."""
    if not all(in_blocks):
        return False
    seq: list[int] = []
    for order in orders:
        order = order.tolist()
        if seq and order and order[0] == seq[-1]:
            order = order[1:]
        seq.extend(order)
    return len(seq) == len(set(seq))


def _count_buckets(
    keys, pay, sal, vsalt, nxt, bases, sizes, nvm, has_s, vm_blocks, use_zero_pages, max_page_sharing, b1, packed, bs,
    svd, top, tot, per_vm, n, threads,
):  # fmt: skip
    """Step 3 of "How it counts" (module docstring) over ranges of level-1 buckets (:func:`_chunks`), on
    ``threads`` threads (Numba kernels release the GIL), each range into its own per-VM
    scratch; then the ranges' results are added in range order and :func:`_finish` writes
    ``tot``, ``per_vm`` and ``svd``. Returns the number of top entries in ``top``."""
    size = sizes.sum(axis=0)
    chunks = _chunks(size, nvm)
    # packed records of VMs whose pages form blocks, without salts or with salts of VMs: the
    # written-out copy, sort and scan (an entry of its own: compiled only where it runs)
    by_vm = vsalt.shape[0] > 0
    fast = packed and vm_blocks and (by_vm or not has_s)
    cols = H_CLASSES + COPY_CLASSES + 1
    top_n = top[0].shape[0]

    def one(lo_hi):
        lo, hi = lo_hi
        hist = np.zeros((max(nvm, 1), cols), np.int64)
        part_svd = np.zeros(nvm, np.float64)
        part_top = tuple(np.zeros(top_n, a.dtype) for a in top)
        if fast:
            ntop, acc = _buckets_packed(
                keys, vsalt if by_vm else None, nxt, bases, sizes, size, lo, hi, use_zero_pages, max_page_sharing, b1,
                L2_MAX_BITS, SORT_MOVES, bs, hist, part_svd, part_top, np.empty(SCAN_WINDOW + 1, np.int32),
                np.empty(SCAN_WINDOW, np.uint8),
            )  # fmt: skip
        else:
            ntop, acc = _buckets(
                keys, pay, sal, vsalt, nxt, bases, sizes, size, lo, hi, has_s, vm_blocks, use_zero_pages,
                max_page_sharing, b1, L2_MAX_BITS, SORT_MOVES, packed, bs, hist, part_svd, part_top,
            )  # fmt: skip
        return hist, part_svd, part_top, ntop, acc

    parts = _run(one, chunks, threads)
    hist = parts[0][0]
    acc = parts[0][4]
    ntop = np.int64(0)
    for j, (h, part_svd, part_top, part_ntop, part_acc) in enumerate(parts):
        if j:
            hist += h
            acc += part_acc
        svd += part_svd  # in range order: the same float sums for any number of threads
        ntop = _merge_top(top, ntop, part_top, part_ntop)
    _finish(n, hist[:nvm], svd, acc, tot, per_vm)
    return int(ntop)


def count_sharing(
    hashes: np.ndarray,
    zero: np.ndarray,
    vm: np.ndarray,
    vm_names: list[str],
    *,
    salt: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
    use_zero_pages: bool = False,
    max_page_sharing: int = 256,
    top_n: int = 10,
    verified: bool = False,
    false_matches: int = 0,
    hash_bits: int = 64,
    threads: int = 1,
) -> SharingCounts:
    """Exact sharing counts of a set of pages.

    Parameters
    ----------
    hashes : uint64[n]
        Content hashes.
    zero : bool[n] or None
        All-zero flags (None: no page is all-zero).
    vm : integer[n] or None
        Index of each page's VM in ``vm_names``, any integer dtype (None: every page is in
        VM 0). Compact dtypes (uint8, uint16, uint32) save memory; nothing is converted.
    vm_names : list of str
        Distinct; at least one when there are pages.
    salt : integer[n], optional
        Sharing domain of each page (ESXi salting, :mod:`pagecore.sharing.salting`): only pages
        with equal salt and equal content share (floats only when whole; uint64 salts are listed in
        ``top`` as given). Default: one domain.
    eligible : bool[n], optional
        False for pages made ineligible by a false match (:mod:`pagecore.pages.verify`).
    use_zero_pages : bool
        KSM's ``use_zero_pages``: zero pages go to the kernel zero page (``ksm_zero_pages``).
    max_page_sharing : int
        KSM's cap on sharers per KSM page (kernel default 256, minimum 2; at most 2**63 - 1).
    top_n : int
        How many of the most-copied contents to keep.
    threads : int
        Threads (0: all available) for the one pass over the pages (in ranges of at least
        :data:`SCATTER_MIN_PAGES` pages, one per thread) and for the per-bucket sort and scan
        (in the :data:`COUNT_CHUNKS` ranges of buckets). The result does not depend on it, to
        the bit.

    Returns
    -------
    SharingCounts

    Notes
    -----
    Time and memory as in the module docstring ("How it counts"). Contents are
    grouped by (salt, hash); a content's zero flag is that of its first eligible page.
    """
    hashes = np.asarray(hashes)  # a scalar stays one (np.ascontiguousarray made it a set of one page)
    if hashes.ndim != 1 or hashes.dtype.kind != "u" or hashes.dtype.itemsize != 8:
        raise ValueError(f"hashes must be uint64[n], got {hashes.dtype}{hashes.shape}")
    hashes = np.ascontiguousarray(hashes)
    if not hashes.dtype.isnative:
        hashes = hashes.astype(np.uint64)  # big-endian uint64 (read from a file as such)
    n = hashes.shape[0]
    if n > MAX_PAGES:
        raise ValueError(f"at most 2**31 - 1 pages per call, got {n:,}: count hash-prefix partitions (bigcount)")
    zero = np.zeros(0, np.bool_) if zero is None else _flags(zero, n, "zero")
    if vm is None:
        vm = given_vm = np.zeros(0, np.int64)
    else:
        given_vm = np.asarray(vm)  # as given, for the error message of a bad index (not wrapped)
        if given_vm.shape != (n,):
            raise ValueError(f"vm must have shape ({n},), got {given_vm.shape}")  # (zero's is checked)
        vm = np.ascontiguousarray(given_vm)
        if vm.dtype.kind == "f" and n and not (np.isfinite(vm).all() and (vm == np.floor(vm)).all()):
            raise ValueError(f"vm must hold whole VM indices, got {vm.dtype} values that are not (or NaN)")
        if vm.dtype.kind not in "iuf":
            raise ValueError(f"vm must be integer VM indices, got {vm.dtype}")
        if vm.dtype.kind == "f" and n and not ((vm >= 0).all() and (vm < len(vm_names)).all()):
            bad = int(np.flatnonzero((vm < 0) | (vm >= len(vm_names)))[0])  # before the cast: 1e19 was
            raise ValueError(f"vm indices must be in [0, {len(vm_names)}); page {bad} has {vm[bad]}")  # -2**63
        if vm.dtype.kind not in "iu" or vm.dtype == np.uint64:
            vm = vm.astype(np.int64)
        elif not vm.dtype.isnative:  # big-endian indices: Numba takes native byte order only
            vm = vm.astype(vm.dtype.newbyteorder("="))
    # at least 2 (KSM's minimum); the kernels take an int64 (any value >= the pages is "no cap")
    if isinstance(max_page_sharing, bool) or not isinstance(max_page_sharing, int | np.integer):
        raise ValueError(f"max_page_sharing must be a whole number, got {max_page_sharing!r}")
    if not 2 <= max_page_sharing <= _INT64_MAX:
        raise ValueError(f"max_page_sharing must be in [2, 2**63 - 1], got {max_page_sharing}")
    nvm = len(vm_names)
    if nvm >= 1 << 31:
        raise ValueError(f"at most 2**31 - 1 VMs, got {nvm}")
    if len(set(vm_names)) != nvm:  # to_dict's per-VM counts are keyed by name: one would hide another
        dup = next(x for i, x in enumerate(vm_names) if x in vm_names[:i])
        raise ValueError(f"vm_names must be distinct, {dup!r} is given twice")
    if vm.shape[0] == 0 and n and nvm == 0:  # no vm: every page is VM 0, which must have a name
        raise ValueError("vm_names is empty, but the pages (vm None: every page in VM 0) need VM 0's name")
    unsigned_salt = False
    if salt is None:
        salt = np.zeros(0, np.int64)
    else:
        given = np.asarray(salt)
        unsigned_salt = given.dtype.kind == "u" and given.dtype.itemsize == 8
        salt = _whole(given, n, "salt")
        if unsigned_salt:  # uint64 salts to int64 in their order (ties in the top list go by salt),
            salt = salt ^ _SIGN  # given back as uint64 values: 2**63 was listed as -2**63, first
    el = np.zeros(0, np.bool_) if eligible is None else _flags(eligible, n, "eligible")
    if el.shape[0] and el.all():  # every page eligible (no false match, as nearly always): the
        el = np.zeros(0, np.bool_)  # same counts as without flags, by the common path's kernels
    if isinstance(top_n, bool) or not isinstance(top_n, int | np.integer) or top_n < 0:
        raise ValueError(f"top_n must be a whole number >= 0, got {top_n!r}")
    if isinstance(hash_bits, bool) or not isinstance(hash_bits, int | np.integer) or not 1 <= hash_bits <= 64:
        raise ValueError(f"hash_bits must be a whole number in [1, 64], got {hash_bits!r}")
    for name, x in (("use_zero_pages", use_zero_pages), ("verified", verified)):  # bool("0") is True
        if not isinstance(x, bool | np.bool_) and not (isinstance(x, int | np.integer) and x in (0, 1)):
            raise ValueError(f"{name} must be True or False (or 0 or 1), got {x!r}")
    if isinstance(false_matches, bool) or not isinstance(false_matches, int | np.integer) or false_matches < 0:
        raise ValueError(f"false_matches must be a whole number >= 0, got {false_matches!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int | np.integer)):
        raise ValueError(f"threads must be a whole number >= 0 (0: all available), got {threads!r}")
    tot = np.zeros(N_TOTALS, np.int64)
    per_vm = np.zeros((nvm, N_VM), np.int64)
    svd = np.zeros(nvm, np.float64)
    keep = min(top_n, n)  # never more top contents than pages (share --top 10**20 was a traceback)
    top_arrays = (
        np.zeros(keep, np.int64),
        np.zeros(keep, np.int64),
        np.zeros(keep, np.int64),  # hash bits; read back as uint64
        np.zeros(keep, np.int64),
        np.zeros(keep, np.bool_),
    )
    # level-1 buckets: enough for sub-buckets of about BUCKET_TARGET pages, at most
    # 2**L1_MAX_BITS; and at least as many bits as a page's payload (vm << 1 | zero) when that
    # fits, so the payload rides in the bits of the key the bucket makes redundant
    b1 = 1
    while b1 < L1_MAX_BITS and (n >> b1) > BUCKET_TARGET:
        b1 += 1
    pbits = (2 * max(nvm, 1) - 1).bit_length()
    packed = pbits <= L1_MAX_BITS
    if packed:
        b1 = max(b1, pbits)
    # scratch for the bucket-ordered records, allocated by NumPy (which asks for transparent
    # huge pages on large arrays; the scatter writes to a thousand places at once and would
    # otherwise miss the TLB on most writes); untouched tails cost no memory
    # blocks: one per bucket to start, one more each time one fills; no larger than the mean
    # bucket (so small sets touch little more memory than their records)
    bs = SCATTER_BLOCK
    if bs < WC_LINE or bs & (bs - 1) or bs % WC_LINE:  # the scatter writes whole buffers into blocks
        raise ValueError(f"SCATTER_BLOCK must be a power of two and a multiple of WC_LINE {WC_LINE}, got {bs}")
    while bs > WC_LINE and bs > n >> b1:
        bs >>= 1
    # the one pass in ranges of pages, one per thread, each into blocks of its own
    threads = resolve_threads(threads)
    cuts = _scatter_ranges(n, threads, b1, bs)
    nparts = len(cuts) - 1
    blocks = [(1 << b1) + (e - a) // bs + 1 for a, e in itertools.pairwise(cuts)]
    bases = np.cumsum([0, *blocks[:-1]]).astype(np.int64)
    nrec = sum(blocks) * bs
    keys = np.empty(nrec + WC_LINE, np.int64)
    skip = (-(keys.ctypes.data // 8)) % WC_LINE  # records before the first buffer-aligned line
    keys = keys[skip : skip + nrec]
    # the scatter writes whole lines with 64-byte non-temporal stores, which fault when unaligned
    assert keys.ctypes.data % 64 == 0
    pay = np.empty(0 if packed else nrec, np.uint32)
    # salts that are sharing domains of VMs (share --salting) ride in the VM index: the scatter
    # then moves 8 bytes per page instead of 16
    vsalt = np.zeros(max(nvm, 1), np.int64) if salt.shape[0] else np.zeros(0, np.int64)
    if not (salt.shape[0] and _salt_per_vm(salt, vm, nvm, vsalt)):
        vsalt = np.zeros(0, np.int64)
    sal = np.empty(nrec if salt.shape[0] and not vsalt.shape[0] else 0, np.int64)
    # the kernel only reads the inputs: passing them all read-only (views, no copies) gives one
    # Numba signature per VM-index dtype, whether they came writable (NumPy, pandas) or not
    # (Arrow): each signature is one more compilation in a fresh clone (~4 CPU-s)
    hashes, salt, vm, zero, el = (_read_only(a) for a in (hashes, salt, vm, zero, el))
    nxt = np.zeros(nrec // bs, np.int64)  # next block of a bucket's chain
    # VM indices and zero flags given, every page eligible, no salts or salts of VMs, payloads
    # packed: the written-out scatter (an entry of its own: compiled only where it runs)
    fast = packed and vm.shape[0] > 0 and zero.shape[0] > 0 and el.shape[0] == 0 and nvm > 0
    fast = fast and (vsalt.shape[0] > 0 or salt.shape[0] == 0)

    def scatter(p):
        pv = np.zeros((nvm, N_VM), np.int64)
        seen = np.zeros(max(nvm, 1), np.bool_)
        order = np.zeros(max(nvm, 1), np.int64)
        if fast:  # the common case's written-out scatter; salts of VMs are looked up, not read
            size, nord, blocks_p, bad = _scatter_packed(
                hashes, vsalt if vsalt.shape[0] else None, vm, zero, cuts[p], cuts[p + 1], bases[p], nvm, b1, bs, keys,
                nxt, pv, seen, order,
            )  # fmt: skip
        else:
            size, nord, blocks_p, bad = _scatter(
                hashes, salt, vm, zero, el, cuts[p], cuts[p + 1], bases[p], nvm, b1, packed, bs, keys, pay,
                sal, nxt, pv, seen, order,
            )  # fmt: skip
        return size, pv, order[:nord], bool(blocks_p), int(bad)

    range_sizes, range_per_vm, orders, in_blocks, bads = zip(*_run(scatter, range(nparts), threads), strict=True)
    for bad in bads:  # the first bad page of the first range that has one: the first in the input
        if bad >= 0:
            raise ValueError(f"vm indices must be in [0, {nvm}); page {bad} has {given_vm[bad]}")
    for pv in range_per_vm:
        per_vm += pv
    sizes = np.stack(range_sizes)
    ntop = _count_buckets(
        keys, pay, sal, vsalt, nxt, bases, sizes, nvm, salt.shape[0] > 0, _vm_blocks(in_blocks, orders),
        bool(use_zero_pages), int(max_page_sharing), b1, packed, bs, svd, top_arrays, tot, per_vm, n, threads,
    )  # fmt: skip
    tc, ts, th, tk, tz = (a[:ntop].tolist() for a in (*top_arrays[:2], top_arrays[2].view(np.uint64), *top_arrays[3:]))
    if unsigned_salt:
        ts = [x + (1 << 63) for x in ts]
    top = sorted(zip(th, ts, tc, tk, tz, strict=True), key=lambda t: (-t[2], t[0], t[1]))
    return SharingCounts(
        vm_names=list(vm_names),
        totals=tot,
        per_vm=per_vm,
        shrdsvd=svd,
        top=top,
        use_zero_pages=bool(use_zero_pages),
        max_page_sharing=int(max_page_sharing),
        verified=bool(verified),
        false_matches=int(false_matches),
        hash_bits=int(hash_bits),  # NumPy ints are not JSON (to_dict, save_counts)
        top_n=int(top_n),
    )
