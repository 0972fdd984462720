"""Throughput benchmarks: ratios against baselines measured in the same run.

``pagecore bench count`` prints counting throughput (pages/s) of the sharing kernel
against ``numpy.unique``, pandas, polars and DuckDB on the same hashes.

``pagecore bench hash`` prints page-hash throughput on one and on all threads beside
two baselines on the same in-memory buffer: memory read bandwidth (``numpy.sum`` over it, the
ceiling for any hash that reads every byte) and a Python loop calling ``xxhash.xxh3_64`` per
page (a C hash library driven page by page). Ratios, not absolute numbers, are what compare
across noisy machines. This is a benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from pagecore import PAGE_SIZE
from pagecore._jit import max_threads
from pagecore.bench import best_of


def bench_hash(mib: int = 512, repeat: int = 5, seed: int = 0) -> dict[str, float]:
    """Measure GB/s of the page hash and its baselines on ``mib`` MiB of random pages."""
    from pagecore.pages.hashing import hash_pages

    npages = mib * (1 << 20) // PAGE_SIZE
    rng = np.random.default_rng(seed)
    pages = rng.integers(0, 2**63, size=(npages, PAGE_SIZE // 8), dtype=np.uint64)
    nbytes = pages.nbytes
    out = (np.empty(npages, np.uint64), np.empty(npages, np.bool_))
    hash_pages(pages[:4], threads=1)  # compile outside the timing
    threads = max_threads()
    if threads > 1:
        hash_pages(pages[:4], threads=threads)
    res = {}
    res["read_bandwidth"] = nbytes / best_of(lambda: pages.sum(), repeat) / 1e9
    res["hash_1_thread"] = nbytes / best_of(lambda: hash_pages(pages, threads=1, out=out), repeat) / 1e9
    if threads > 1:
        res[f"hash_{threads}_threads"] = (
            nbytes / best_of(lambda: hash_pages(pages, threads=threads, out=out), repeat) / 1e9
        )
    try:
        import xxhash
    except ImportError:  # optional: part of the test extra
        xxhash = None
    if xxhash is not None:
        b = pages.view(np.uint8)
        sub = b[: min(npages, 32768)]  # the Python loop is slow; 128 MiB is plenty

        def loop():
            f = xxhash.xxh3_64_intdigest
            for i in range(sub.shape[0]):
                f(sub[i])

        res["xxh3_python_loop"] = sub.nbytes / best_of(loop, max(1, repeat // 2)) / 1e9
    return res


def bench_count(n: int, repeat: int = 3, seed: int = 0, shared_fraction: float = 0.6, tmpdir=None) -> dict[str, float]:
    """Pages/s counting ``n`` hashes: pagecore's kernel vs numpy, pandas, polars and DuckDB.

    The hashes have Figure-4-like duplication: about ``shared_fraction`` of pages repeat a
    content. DuckDB reads the same hashes from a Parquet file (its GROUP BY over Parquet is
    how one would count a page table with it); the others count the in-memory array. Each
    baseline returns the same (distinct contents) number, checked here.
    """
    import tempfile
    from pathlib import Path

    import pandas as pd

    from pagecore.sharing.fastcount import count_hashes

    rng = np.random.default_rng(seed)
    n_unique = max(1, int(n * (1 - shared_fraction)))
    uniq = rng.integers(0, 2**64 - 1, size=n_unique, dtype=np.uint64)
    h = uniq[rng.integers(0, n_unique, size=n)]
    buf = np.empty_like(h)
    count_hashes(h[:1000])  # compile outside the timing
    res: dict[str, float] = {}
    want = count_hashes(h, buf)[0]

    def timed(name, fn, reps=repeat):
        got = fn()
        if got != want:
            raise AssertionError(f"{name} counted {got} distinct contents, expected {want}")
        res[name] = n / best_of(fn, reps)

    timed("pagecore count_hashes (1 thread)", lambda: count_hashes(h, buf)[0])
    timed("numpy.unique(return_counts)", lambda: len(np.unique(h, return_counts=True)[0]), max(1, repeat - 1))
    timed("pandas value_counts", lambda: len(pd.Series(h).value_counts(sort=False)), max(1, repeat - 1))
    try:
        import polars as pl

        ph = pl.Series("hash", h)
        df = pl.DataFrame({"hash": ph})
        timed(
            f"polars group_by ({pl.thread_pool_size()} threads)",
            lambda: df.group_by("hash").len().height,
            max(1, repeat - 1),
        )
    except ImportError:
        pass
    try:
        import duckdb
        import pyarrow as pa
        import pyarrow.parquet as pq

        with tempfile.TemporaryDirectory(dir=tmpdir) as d:
            path = Path(d) / "hashes.parquet"
            pq.write_table(pa.table({"hash": h}), path, compression="zstd")
            con = duckdb.connect()
            threads = con.execute("select current_setting('threads')").fetchone()[0]
            q = f"select count(*) from (select hash, count(*) from read_parquet('{path}') group by hash)"
            timed(
                f"DuckDB GROUP BY over Parquet ({threads} threads)",
                lambda: con.execute(q).fetchone()[0],
                max(1, repeat - 1),
            )
            con.close()
    except ImportError:
        pass
    return res


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    what = argv[0] if argv and argv[0] in ("hash", "count") else None
    p = argparse.ArgumentParser(
        prog=f"pagecore bench {what}" if what else "pagecore bench", description=__doc__.split("\n\n")[0]
    )
    if what:
        argv = argv[1:]
        p.set_defaults(what=what)
    else:
        p.add_argument("what", choices=["hash", "count"], help="benchmark to run")
    p.add_argument("--mib", type=int, default=512, help="buffer size in MiB (default 512; larger than caches)")
    p.add_argument("--repeat", type=int, default=5, help="repetitions; the best is reported (default 5)")
    p.add_argument(
        "--pages",
        type=int,
        nargs="+",
        default=[10_000_000, 100_000_000],
        help="count: numbers of hashes to count (default 10M and 100M)",
    )
    args = p.parse_args(argv)
    if args.what == "count":
        for n in args.pages:
            res = bench_count(n, repeat=min(args.repeat, 3))
            mine = next(iter(res.values()))
            fastest_other = max(v for k, v in list(res.items())[1:]) if len(res) > 1 else float("nan")
            print(f"counting {n:,} page hashes (best of {min(args.repeat, 3)}; 16 bytes/page in-core)")
            print(f"{'method':<48}{'M pages/s':>11}{'x pagecore':>12}")
            for k, v in res.items():
                print(f"{k:<48}{v / 1e6:>11.1f}{v / mine:>12.2f}")
            print(f"pagecore vs fastest other: {mine / fastest_other:.2f}x\n")
        return 0
    res = bench_hash(args.mib, args.repeat)
    print(format_hash_result(res, args.mib, args.repeat))
    return 0


def format_hash_result(res: dict[str, float], mib: int, repeat: int) -> str:
    """The hash benchmark's table; says so when the xxhash baseline could not run."""
    bw = res["read_bandwidth"]
    xx = res.get("xxh3_python_loop")
    lines = [f"page hash pcx64-v1 on {mib} MiB of random pages (best of {repeat})"]
    lines.append(f"{'measure':<22}{'GB/s':>8}{'x read bw':>11}" + (f"{'x xxh3 loop':>13}" if xx else ""))
    for k, v in res.items():
        lines.append(f"{k:<22}{v:>8.2f}{v / bw:>11.2f}" + (f"{v / xx:>13.2f}" if xx else ""))
    if not xx:
        lines.append(
            "xxhash is not installed, so the xxh3 baseline did not run and its column is left out "
            '(pip install xxhash, or pip install -e ".[test]")'
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
