"""Benchmarks of the reclamation models (not tests): references replayed per second.

``pagecore bench guest`` prints, on one core,

* guest page-cache references replayed per second through the LRU kernel
  (:func:`pagecore.sim.guestcache.replay`), without and with host demand paging, on the
  dbench-like trace of Figure 2;
* I/Os replayed per second through the hot-page remapping kernel
  (:func:`pagecore.sim.ioremap.replay_io`), random and cost-benefit, with scarce low memory;
* the same for the slow twins (``OrderedDict`` LRU, brute-force copy count) on a short prefix,
  when run from a checkout with ``tests/`` present, as the speed-up baseline.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

from pagecore._argtypes import positive_int
from pagecore.bench import best_of
from pagecore.sim.guestcache import dbench_trace, replay
from pagecore.sim.ioremap import high_backing, io_trace, replay_io


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="pagecore bench guest", description=__doc__.splitlines()[0])
    ap.add_argument("--refs", type=positive_int, default=4_000_000, help="references in the guest trace (default 4M)")
    ap.add_argument("--ios", type=positive_int, default=4_000_000, help="I/Os in the remapping trace (default 4M)")
    ap.add_argument("--repeat", type=positive_int, default=3, help="best of N runs (default 3)")
    ap.add_argument("--no-twins", action="store_true", help="skip the slow-twin baseline")
    a = ap.parse_args(argv)
    from pagecore.bench import check_memory

    # the traces and the kernels' state: tens of bytes a reference or I/O
    check_memory(48 * (a.refs + a.ios), f"bench guest --refs {a.refs:,} --ios {a.ios:,}", "give fewer --refs or --ios")
    pages, write = dbench_trace(refs=a.refs, mb_per_client=6.5, popularity_power=2.0)
    cap = 50_000
    refs = pages.size  # the trace's own length: the rate is of the references replayed
    reclaim_frames = 64 * 256
    touched = np.unique(pages[: refs // 2]).size  # resident when the host pages out (cap > reclaim)
    if touched <= reclaim_frames:
        ap.error(
            f"argument --refs: {a.refs:,} references touch {touched:,} pages before the host pages out "
            f"{reclaim_frames:,} frames; need more than that (default 4,000,000)"
        )
    # compile / load the cache on a small trace of the same dtypes
    replay(np.arange(1000, dtype=np.int64) % 100, np.zeros(1000, np.bool_), 10, 2, 10)
    rows = []
    for label, reclaim in (("guest LRU", 0), ("guest LRU + host paging 64 MB", reclaim_frames)):
        s = best_of(lambda r=reclaim: replay(pages, write, cap, r, refs // 2, 1), a.repeat)
        rows.append((label, refs / s))
    io = io_trace(65536, a.ios, 0.5, 64)
    high = high_backing(65536, 128)
    replay_io(io[:100], high, 8, 0)
    for pol in ("random", "cost_benefit"):
        s = best_of(lambda p=pol: replay_io(io, high, 8, 0, p), a.repeat)
        rows.append((f"I/O remap ({pol}, 128 low pages)", io.size / s))
    tests = Path(__file__).resolve().parents[2] / "tests"
    if not a.no_twins and (tests / "slow_twins_reclaim.py").exists():
        spec = importlib.util.spec_from_file_location("slow_twins_reclaim", tests / "slow_twins_reclaim.py")
        twins = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(twins)
        lru_replay, io_copies = twins.lru_replay, twins.io_copies
        n = min(200_000, refs)
        s = best_of(lambda: lru_replay(pages[:n], write[:n], cap, reclaim_frames, n // 2, 1), 1)
        rows.append(("slow twin: OrderedDict LRU + host paging", n / s))
        m = min(200_000, io.size)
        s = best_of(lambda: io_copies(io[:m], high, 8, 0, "cost_benefit"), 1)
        rows.append(("slow twin: brute-force copy count", m / s))
    print(format_rows(rows))
    return 0


#: Each kernel's row and the row of its slow twin, the baseline it is divided by.
TWIN_OF = {
    "guest LRU + host paging 64 MB": "slow twin: OrderedDict LRU + host paging",
    "I/O remap (cost_benefit, 128 low pages)": "slow twin: brute-force copy count",
}


def format_rows(rows: list[tuple[str, float]]) -> str:
    """The table: each rate, and each kernel's ratio to its slow twin measured in the same run
    (printed beside each other before, the ratio left to the reader)."""
    rates = dict(rows)
    lines = [f"{'':45s} {'M refs/s':>8}  x slow twin (same run)"]
    for label, rate in rows:
        twin = rates.get(TWIN_OF.get(label, ""))
        lines.append(f"{label:45s} {rate / 1e6:8.2f}" + (f"  {rate / twin:8.1f}" if twin else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
