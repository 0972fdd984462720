"""Throughput benchmarks: ratios against baselines measured in the same run.

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
from pagecore._argtypes import positive_int
from pagecore._jit import max_threads
from pagecore.bench import best_of, check_memory


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


def _size_arg(text: str) -> int:
    """argparse type of ``--whole-process``: a size such as ``8G`` in bytes, whole pages."""
    from pagecore.bench.wholeproc import parse_size

    try:
        return parse_size(text)
    except (ValueError, KeyError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"expected a positive size in whole 4096-byte pages such as 8G or 512M, got {text!r}"
        ) from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["hash"]:
        argv = argv[1:]
    p = argparse.ArgumentParser(prog="pagecore bench hash", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--mib",
        type=positive_int,
        default=None,
        help="buffer size in MiB (default 512; larger than caches; not with --whole-process, whose SIZE is the dump's)",
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=5,
        help="repetitions; the best is reported (default 5; at most 3 with --whole-process, which says so)",
    )
    p.add_argument(
        "--whole-process",
        metavar="SIZE",
        type=_size_arg,
        help="instead: time the pagecore hash command on a raw dump of SIZE (e.g. 8G) in the page cache "
        "against cat of the same file, with the fixed cost apart (see pagecore.bench.wholeproc)",
    )
    p.add_argument("--tmpdir", default=None, help="where --whole-process writes its dump (default: system temp)")
    args = p.parse_args(argv)
    if args.whole_process and args.mib is not None:  # it was ignored without a word
        p.error("argument --mib: not used with --whole-process, whose SIZE is the dump's size; give one of them")
    args.mib = 512 if args.mib is None else args.mib
    if args.whole_process:
        from pagecore.bench.wholeproc import bench_whole_process, check_whole_process, print_whole_process

        tmpdir = check_whole_process(args.whole_process, args.tmpdir)
        repeat = min(args.repeat, 3)
        valid = print_whole_process(bench_whole_process(args.whole_process, repeat, tmpdir), repeat)
        return 0 if valid else 1  # ratios of a dump partly read from disk: not a result
    if args.tmpdir is not None:
        p.error("argument --tmpdir: only --whole-process writes a dump; give it with --whole-process SIZE")
    # the pages, and as much again at most while NumPy makes them
    check_memory(2 * args.mib * (1 << 20), f"bench hash --mib {args.mib}", "give a smaller --mib")
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
