"""``pagecore bench count``: the counting path users run, against baselines in the same process.

``pagecore share``, the workflow and ``bigcount`` all count with
:func:`pagecore.sharing.count_sharing` (every vocabulary, attribution, top contents; salting is
a second call with per-page sharing domains; :func:`pagecore.sharing.fastcount.count_hashes` is
a wrapper of it). This benchmark times exactly that call on synthetic hashes with Figure-4-like
duplication over ``--vms`` VMs, on one thread and on ``--threads`` (default all cores, as
``pagecore share`` runs it; the counts must be the same to the bit), beside
``numpy.unique(return_counts=True)`` (one thread) on the same hashes (the obvious way to count
them, and the baseline: it finds only the distinct contents and their copies), checks that both
find the same number of distinct contents, and prints wall and CPU time (CPU = process time,
which other sessions on the machine do not inflate as much) with ratios. The methods take turns
in every round (``--repeat`` rounds; in each, a method is called ``--warm`` times in a row and
its least time counts, so that no method runs only on memory another one just left), so each
ratio is given twice: best time over best time, and *paired*, the median over the rounds of the
ratio within each round (the host's speed changes over tens of seconds; a slow period that spans
a round slows both sides of its ratio, while the best of each taken apart can pair a fast period
with a slow one). ``--verify`` also measures byte verification (:mod:`pagecore.pages.verify`,
what ``pagecore share`` does unless ``--no-verify``) on a synthetic raw dump with many
duplicates: bytes compared per second against the read bandwidth of the same file, and
``pagecore share --no-verify``'s library path
(:func:`pagecore.experiments.analyze.analyze_page_tables`, reading Parquet page tables) split
into loading and counting. Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from pagecore._argtypes import nonneg_int, positive_int
from pagecore.bench import mem_available, paired_ratio, timed, whole_number

# ----------------------------------------------------------------------------- memory
#: peak resident bytes of a run per page and per VM, and before the pages (imports), without the
#: salted rows: measured with /usr/bin/time at 5 M and 10 M pages (27.7 bytes a page; the
#: README's 500 M run peaked at 13.77 GB, 27.5) and at 2 M pages over 10^6 VMs (1,410 bytes a VM
#: above 100 VMs: names, per-VM counters and the counts' dictionaries), with margins
COUNT_BYTES_PER_PAGE = 32
COUNT_BYTES_PER_VM = 1600
COUNT_BASE_BYTES = 320 << 20
#: free memory the salted rows need beside the rest, per page (measured 8 bytes a page more at
#: 10 M pages; numpy.unique's turn comes while the salts are held)
SALT_BYTES_PER_PAGE = 40


def count_memory(n: int, vms: int) -> int:
    """Bytes a :func:`bench_count` run of ``n`` pages over ``vms`` VMs needs, without the salted
    rows (measured with uint8 VM indices; wider ones, over 256 VMs, cost their extra bytes twice)."""
    from pagecore.pages.tables import vm_index_dtype

    per_page = COUNT_BYTES_PER_PAGE + 2 * (np.dtype(vm_index_dtype(vms)).itemsize - 1)
    return per_page * n + COUNT_BYTES_PER_VM * vms + COUNT_BASE_BYTES


# ----------------------------------------------------------------------------- inputs
def make_pages(n: int, vms: int = 100, *, seed: int = 0, shared_fraction: float = 0.6, zero_fraction: float = 0.05):
    """Synthetic (hashes, zero, vm) of ``n`` pages over ``vms`` VMs, made in chunks.

    About ``shared_fraction`` of pages repeat a content (contents drawn uniformly from
    ``n · (1 − shared_fraction)`` random hashes, so copies spread over VMs), ``zero_fraction``
    are the zero page; each VM's pages are contiguous, as when page tables are concatenated.
    The VM index has the dtype ``pagecore share`` passes
    (:func:`pagecore.sharing.counts.compact_vm_index`: uint8 up to 256 VMs).
    """
    from pagecore.sharing.counts import compact_vm_index

    rng = np.random.default_rng(seed)
    n_unique = max(1, int(n * (1 - shared_fraction)))
    uniq = rng.integers(0, 2**64 - 1, size=n_unique, dtype=np.uint64)
    zero_hash = uniq[0]
    h = np.empty(n, np.uint64)
    z = np.empty(n, np.bool_)
    step = 1 << 24
    for a in range(0, n, step):
        b = min(n, a + step)
        h[a:b] = uniq[rng.integers(0, n_unique, size=b - a)]
        h[a:b][rng.random(b - a) < zero_fraction] = zero_hash
        np.equal(h[a:b], zero_hash, out=z[a:b])
    del uniq
    vm = compact_vm_index(np.arange(n, dtype=np.int64) * vms // max(n, 1), vms)
    return h, z, vm


def paired(row: dict, base: dict) -> tuple[float, float]:
    """:func:`pagecore.bench.paired_ratio` of a row of :func:`bench_count` against ``base``'s.

    In a round each method is called ``warm`` times in a row and its least time counts: a call
    right after another method's ran up to 1.3 times slower for ``numpy.unique`` (its sorted copy
    and outputs take more memory than the count's scratch, and memory this VM has not used
    recently arrives slowly), which would flatter the count."""
    return paired_ratio(base["rounds"], row["rounds"])


# ----------------------------------------------------------------------------- counting
def bench_count(
    n: int, vms: int = 100, repeat: int = 2, seed: int = 0, salts: bool = True, threads: int = 0, warm: int = 2
) -> list[dict]:
    """Rows (method, threads, wall s, CPU s, distinct contents) for counting ``n`` pages over
    ``vms`` VMs: :func:`pagecore.sharing.count_sharing` as ``share`` calls it (on one thread,
    and on ``threads``, 0 = all cores, ``share``'s default), with salts (``share --salting 2``:
    pairs of VMs share a salt) when ``salts`` and memory allow, and
    ``numpy.unique(return_counts=True)``, in ``repeat`` rounds in which the methods take turns,
    each called ``warm`` times in a row (:func:`paired`). Every call on more threads must give
    the counts of the call on one, to the bit."""
    from pagecore._jit import resolve_threads
    from pagecore.sharing import count_sharing
    from pagecore.sharing.counts import T_DISTINCT
    from pagecore.sharing.salting import salt_domains

    threads = resolve_threads(threads)
    counts = (1, threads) if threads > 1 else (1,)

    h, z, vm = make_pages(n, vms, seed=seed)
    names = [f"vm{i:03d}" for i in range(vms)]
    # compile (or load from the cache) outside the timing, for the dtypes used below
    k = min(n, 1000)
    count_sharing(h[:k], z[:k], vm[:k], names)
    count_sharing(h[:k], z[:k], vm[:k], names, salt=np.zeros(k, np.int64))
    calls = []  # (method, threads, fn, distinct_of), timed in turns, round by round
    for t in counts:
        calls.append(("count_sharing (share, workflow, bigcount)", t,
                      lambda t=t: count_sharing(h, z, vm, names, threads=t), lambda c: c.t(T_DISTINCT)))  # fmt: skip
    salt = None
    # salt 8 + records 8 bytes per page (salts of VMs: no salt scratch), and the salts stay while
    # numpy.unique takes its turn (its sorted copy and outputs, up to 24 bytes per page)
    if salts and mem_available() <= n * SALT_BYTES_PER_PAGE:
        from pagecore.bench import _size

        print(
            f"salted rows skipped: they need about {_size(n * SALT_BYTES_PER_PAGE)} more memory, "
            f"{_size(mem_available())} is available (give fewer --pages, or --no-salts to say so)",
            flush=True,
        )
    elif salts:
        # share --salting 2 with pairs of VMs sharing a salt: the second count_sharing call
        dom = salt_domains(names, 2, {nm: str(i // 2) for i, nm in enumerate(names)})
        salt = dom[vm]
        for t in counts:
            calls.append(("count_sharing with salts (share --salting 2)", t,
                          lambda t=t: count_sharing(h, z, vm, names, salt=salt, threads=t), lambda c: -1))  # fmt: skip
    calls.append(("numpy.unique(return_counts=True)", 1, lambda: np.unique(h, return_counts=True), lambda r: len(r[0])))
    rows = [
        {"method": m, "threads": t, "wall_s": float("inf"), "cpu_s": float("inf"), "rounds": []} for m, t, _, _ in calls
    ]
    first: dict = {}
    for _ in range(repeat):
        for row, (name, t, fn, distinct_of) in zip(rows, calls, strict=True):
            wall, cpu, out = timed(fn, warm)
            row["wall_s"], row["cpu_s"] = min(row["wall_s"], wall), min(row["cpu_s"], cpu)
            row["rounds"].append((wall, cpu))
            row["distinct"] = int(distinct_of(out))
            if hasattr(out, "to_dict"):  # the same counts on any number of threads
                d = out.to_dict()
                if first.setdefault(name, d) != d:
                    raise AssertionError(f"{name}: {t} threads counted differently from 1")
            del out
    want = rows[0]["distinct"]
    for r in rows:
        if r["distinct"] not in (want, -1):
            raise AssertionError(f"{r['method']} counted {r['distinct']} distinct contents, expected {want}")
    return rows


def print_count(n: int, vms: int, rows: list[dict], repeat: int, warm: int = 2) -> None:
    base = next(r for r in rows if r["method"].startswith("numpy.unique"))
    print(
        f"counting {n:,} page hashes over {vms} VMs (best of {repeat} rounds, the methods taking turns, each "
        f"called {warm} times in a row per round; "
        "CPU = process time, all threads; numpy.unique runs on one thread)"
    )
    print(
        "numpy.unique time / this: best / best, and paired (the median over the rounds of the ratio within "
        "each round, wall)"
    )
    print(f"{'':<54}{'wall':>19}{'CPU':>19}{'numpy.unique time / this':>34}")
    print(
        f"{'method':<46}{'threads':>8}{'s':>8}{'M pages/s':>11}{'s':>8}{'M pages/s':>11}{'x (wall)':>12}"
        f"{'x (CPU)':>10}{'paired':>10}"
    )
    for r in rows:
        print(
            f"{r['method']:<46}{r['threads']:>8}{r['wall_s']:>8.2f}{n / r['wall_s'] / 1e6:>11.1f}{r['cpu_s']:>8.2f}"
            f"{n / r['cpu_s'] / 1e6:>11.1f}{base['wall_s'] / r['wall_s']:>12.2f}{base['cpu_s'] / r['cpu_s']:>10.2f}"
            f"{paired(r, base)[0]:>10.2f}"
        )
    print(goals_line(n, rows))
    print()


def goals_line(n: int, rows: list[dict]) -> str:
    """Issue 18's goals for the count, read off ``rows``: >= 30 M pages/s on one core and >= 2 x
    ``numpy.unique`` (wall time), per thread count of the unsalted count, as best / best and as
    the paired median (:func:`paired`); "met" or "not met" for each."""
    base = next(r for r in rows if r["method"].startswith("numpy.unique"))
    plain = [r for r in rows if r["method"].startswith("count_sharing (")]
    one = next(r for r in plain if r["threads"] == 1)
    rate = n / one["cpu_s"] / 1e6
    parts = [f"goals (issue 18): one core >= 30 M pages/s: {rate:.1f} ({'met' if rate >= 30 else 'not met'})"]
    for r in plain:
        x, xp = base["wall_s"] / r["wall_s"], paired(r, base)[0]
        parts.append(
            f">= 2 x numpy.unique on {r['threads']} thread(s): best {x:.2f} x ({'met' if x >= 2 else 'not met'}), "
            f"paired {xp:.2f} x ({'met' if xp >= 2 else 'not met'})"
        )
    return "; ".join(parts)


# ----------------------------------------------------------------------------- share --no-verify and verify
def make_dump(path, mib: int, seed: int = 0, dup_fraction: float = 0.6, zero_fraction: float = 0.1) -> int:
    """A raw dump of ``mib`` MiB: ``zero_fraction`` zero pages, ``dup_fraction`` copies of 512
    common contents, the rest random. Returns its number of pages."""
    from pagecore import PAGE_SIZE

    rng = np.random.default_rng(seed)
    npages = mib * (1 << 20) // PAGE_SIZE
    common = rng.integers(0, 256, size=(512, PAGE_SIZE), dtype=np.uint8)
    with open(path, "wb") as f:
        step = 8192
        for a in range(0, npages, step):
            k = min(step, npages - a)
            pages = rng.integers(0, 256, size=(k, PAGE_SIZE), dtype=np.uint8)
            u = rng.random(k)
            dup = u < dup_fraction
            pages[dup] = common[rng.integers(0, len(common), size=int(dup.sum()))]
            pages[u > 1 - zero_fraction] = 0
            f.write(pages.tobytes())
    return npages


def _read_file(path, bufsize: int = 1 << 20) -> int:
    """Read the whole file (as ``cat`` would); returns bytes read."""
    buf = bytearray(bufsize)
    view = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            k = f.readinto(view)
            if not k:
                return total
            total += k


def bench_share(mib: int = 512, repeat: int = 2, seed: int = 0, tmpdir=None, threads: int = 0) -> dict:
    """``pagecore share``'s library path on a synthetic raw dump: counting with verification
    off (split into loading the page table and counting) and byte verification on its own,
    in bytes compared per second against the read bandwidth of the same file; counting on
    ``threads`` threads (0 = all cores, ``share``'s default)."""
    import tempfile
    from pathlib import Path

    from pagecore.experiments.analyze import analyze_page_tables, load_pages
    from pagecore.pages.ingest import hash_dump
    from pagecore.pages.verify import verify_tables
    from pagecore.sharing import count_sharing

    res: dict = {}
    with tempfile.TemporaryDirectory(dir=tmpdir) as d:
        dump = Path(d) / "guest.raw"
        table = Path(d) / "guest.parquet"
        npages = make_dump(dump, mib, seed)
        hash_dump(dump, table, "guest", format="raw", show_progress=False)
        size = dump.stat().st_size
        _read_file(dump)  # into the page cache
        # first calls load every kernel share and verification use (the large-page section's
        # too): outside the timing, or with --repeat 1 `share --no-verify`, timed first, paid
        # them and took longer than share with verification
        analyze_page_tables([table], verify="yes", threads=threads)
        res["pages"] = npages
        res["file_bytes"] = size
        res["read"] = timed(lambda: _read_file(dump), repeat)[:2]
        res["share_no_verify"] = timed(lambda: analyze_page_tables([table], verify="no", threads=threads), repeat)[:2]
        res["load"] = timed(lambda: load_pages([table]), repeat)[:2]
        hz = load_pages([table])
        res["count"] = timed(lambda: count_sharing(hz[0], hz[1], hz[2], hz[3], threads=threads), repeat)[:2]
        wall, cpu, v = timed(lambda: verify_tables([table]), repeat)
        res["verify"] = (wall, cpu)
        res["bytes_compared"] = v.bytes_compared
        res["pages_compared"] = v.pages_compared
        res["share_verify"] = timed(lambda: analyze_page_tables([table], verify="yes", threads=threads), repeat)[:2]
    return res


def print_share(mib: int, r: dict, repeat: int) -> None:
    n, size = r["pages"], r["file_bytes"]
    rd = size / r["read"][0] / 1e9
    print(f"pagecore share on one {mib} MiB raw dump ({n:,} pages, in the page cache; best of {repeat}; wall time)")
    print(f"{'step':<52}{'s':>8}{'rate':>22}{'x read bw':>11}")
    print(f"{'read the dump file (1 MiB reads, like cat)':<52}{r['read'][0]:>8.3f}{rd:>17.2f} GB/s{1:>11.2f}")
    for key, label in (
        ("share_no_verify", "share --no-verify (the whole report)"),
        ("load", "  load the page table (Parquet -> arrays)"),
        ("count", "  count_sharing"),
    ):
        print(f"{label:<52}{r[key][0]:>8.3f}{n / r[key][0] / 1e6:>13.1f} M pages/s")
    # the rows add up: what share does beside loading and counting (the large-page section, the
    # report's other parts) was in the first row's time but in no row below it
    rest = r["share_no_verify"][0] - r["load"][0] - r["count"][0]
    print(f"{'  the rest (large pages, the report; by difference)':<52}{_by_difference(rest)}")
    cmp_bw = r["bytes_compared"] / r["verify"][0] / 1e9
    file_bw = size / r["verify"][0] / 1e9
    print(
        f"{'verify: bytes compared':<52}{r['verify'][0]:>8.3f}{cmp_bw:>17.2f} GB/s{cmp_bw / rd:>11.2f}"
        f"   ({r['pages_compared']:,} pages, {r['bytes_compared'] / size:.0%} of the file)"
    )
    print(
        f"{'verify: file bytes read and checked':<52}{r['verify'][0]:>8.3f}{file_bw:>17.2f} GB/s{file_bw / rd:>11.2f}"
    )
    sv = r["share_verify"][0]
    print(f"{'share with verification (the whole report)':<52}{sv:>8.3f}")
    extra = sv - r["share_no_verify"][0] - r["verify"][0]
    print(f"{'  minus share --no-verify and verify (by difference)':<52}{_by_difference(extra)}")
    print()


def _by_difference(s: float) -> str:
    """A row computed as one best-of time minus others, each the best of separate runs: below
    zero it is within their run-to-run spread, and printed as such rather than as a negative time."""
    if s >= 0:
        return f"{s:>8.3f}"
    return f"{'< 0':>8}   (below the run-to-run spread of the rows it is computed from: {s:.3f} s)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pagecore bench count", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--pages",
        type=whole_number(1),
        nargs="+",
        default=[5_000_000],
        help="numbers of hashes to count, e.g. 50e6 500e6 (default 5e6: under a minute)",
    )
    p.add_argument(
        "--vms", type=positive_int, default=None, help="VMs the pages belong to (default 100, or --pages if fewer)"
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=2,
        help="rounds, the methods taking turns; best and paired ratios (default 2)",
    )
    p.add_argument(
        "--warm",
        type=positive_int,
        default=2,
        help="calls of each method in a row per round, the least counts (default 2)",
    )
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--no-salts", action="store_true", help="skip the salted call (share --salting)")
    p.add_argument(
        "--threads", type=nonneg_int, default=0, help="threads of the second count_sharing row (default 0: all cores)"
    )
    p.add_argument("--verify", action="store_true", help="also measure share --no-verify and byte verification")
    p.add_argument(
        "--verify-mib", type=positive_int, default=512, help="size of the synthetic raw dump (default 512 MiB)"
    )
    p.add_argument("--tmpdir", default=None, help="where to write the synthetic dump (default: system temp)")
    args = p.parse_args(argv)
    for n in args.pages:  # count_sharing's limit per call, before making the pages
        if n >= 1 << 31:
            p.error(f"argument --pages: at most 2**31 - 1 pages per count (larger sets: bigcount), got {n:,}")
    vms_given = args.vms is not None
    args.vms = args.vms if vms_given else 100
    if args.vms >= 1 << 31:  # count_sharing's limit, refused only after the names were made
        p.error(f"argument --vms: at most 2**31 - 1 VMs, got {args.vms:,}")
    if vms_given and args.vms > min(args.pages):
        p.error(f"argument --vms: {args.vms:,} VMs of {min(args.pages):,} pages leave VMs of no page; give fewer")
    from pagecore.bench import check_memory

    # before the pages are made: 1e9 pages met the OOM killer (or a late MemoryError) instead
    n = max(args.pages)
    what = f"bench count --pages {n:,} --vms {args.vms:,}"
    check_memory(count_memory(n, args.vms), what, "give fewer --pages or --vms")
    if args.verify:
        from pagecore.bench import check_dir, check_disk

        tmpdir = check_dir("--tmpdir", args.tmpdir)
        size = args.verify_mib * (1 << 20)
        what = f"bench count --verify --verify-mib {args.verify_mib}"
        check_disk(tmpdir, size + size // 128 + (64 << 20), what, "give a smaller --verify-mib or another --tmpdir")
        # the dump stays in the page cache (its read bandwidth is the baseline) beside the tables' arrays
        check_memory(size + size // 64 + (512 << 20), what, "give a smaller --verify-mib")
        args.tmpdir = tmpdir
    elif args.tmpdir is not None:
        p.error("argument --tmpdir: only --verify writes a dump; give it with --verify")
    for n in args.pages:
        vms = args.vms if vms_given else min(args.vms, n)  # the default: no VM of no page
        rows = bench_count(n, vms, args.repeat, args.seed, not args.no_salts, args.threads, args.warm)
        print_count(n, vms, rows, args.repeat, args.warm)
    if args.verify:
        r = bench_share(args.verify_mib, args.repeat, args.seed, args.tmpdir, args.threads)
        print_share(args.verify_mib, r, args.repeat)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
