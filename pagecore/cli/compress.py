"""``pagecore compress``: what zram, zswap and ESXi's compression cache keep of these pages.

::

    pagecore compress DUMP|PAGES... [--algorithm lzo-rle|lzo|lz4|zstd] [--format table|json|csv|parquet]
                      [--sample FRACTION|N] [--seed S] [--threads T] [-o OUT]

``--format`` is the one set of every reporting command (:mod:`pagecore.cli._args`): the JSON
report, or as CSV/Parquet rows the reclamation ladder with the mechanism key of each step
(sampled runs: the zram estimates with their intervals).

Inputs are dumps (any format :func:`pagecore.dumps.open_dump` reads; the VM is named after
the file) or page tables (``.parquet``, from ``pagecore hash``). Page tables hold no page
bytes: unless a table carries ``csize_<alg>`` columns (``pagecore hash --compress ALG``), the
pages are re-read from the dump recorded in its metadata (``source_path``), which must still
have the recorded size (``source_size``) and page count.

Every page table is checked before anything is counted
(:func:`pagecore.pages.compress.check_sized_page_table`: the checks of ``pagecore share``'s
table reader, then the ``csize_<alg>`` and ``same_filled`` columns): a cut, edited or
hand-made table is refused with one line naming the file and the problem.

``--sample`` examines a seeded Bernoulli sample of the pages and reports each ``mm_stat``
counter with a 95 % interval, both within what the guest's pages could give
(:func:`pagecore.sharing.compress.estimate_zram`). A sample of fewer than
:data:`~pagecore.sharing.compress.MIN_SAMPLE_PAGES` pages is refused (sample more, or run
exactly); one of fewer than :data:`~pagecore.sharing.compress.RELIABLE_SAMPLE_PAGES` is reported
with an ``UNRELIABLE`` warning (on stderr, in the table and as ``warning`` in JSON).

The library: :mod:`pagecore.experiments.compression` (collects sizes once per distinct content
with :func:`pagecore.pages.compress.page_sizes` and applies the models of
:mod:`pagecore.sharing.compress`); this module only parses and prints.
"""

from __future__ import annotations

import json
import time

from pagecore.cli._args import add_format_args, check_outputs, emit, float_in, int_at_least, nonneg_int


def register(subparsers):
    """Add the ``compress`` subcommand to the ``pagecore`` parser."""
    from pagecore._defaults import COMPRESS_ALGORITHMS as ALGORITHMS
    from pagecore._defaults import DEFAULT_COMPRESS_ALGORITHM as DEFAULT_ALGORITHM

    p = subparsers.add_parser(
        "compress",
        help="what zram, zswap and ESXi memory compression keep of these pages",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("inputs", nargs="+", metavar="DUMP|PAGES", help="memory dumps or page tables (.parquet)")
    p.add_argument(
        "--algorithm", choices=ALGORITHMS, default=DEFAULT_ALGORITHM, help="compressor (default: %(default)s)"
    )
    add_format_args(p)
    p.add_argument(
        "--sample",
        default=None,
        help="estimate from a seeded Bernoulli page sample: a fraction in (0, 1) or an expected number of pages "
        "(>= 1; the pages examined vary around it); exact by default; fewer than 5 sampled pages are refused, "
        "fewer than 100 flagged unreliable",
    )
    p.add_argument(
        "--seed",
        type=int_at_least(0, 2**64 - 1),  # the sample hashes a 64-bit seed: 2^64 drew seed 0's sample
        default=0,
        help="seed of the page sample (0 to 2^64 - 1)",
    )
    p.add_argument("--threads", type=nonneg_int, default=0, help="threads (0 = all cores)")
    p.add_argument("--salting", type=int, choices=(0, 1, 2), default=0, help="Mem.ShareForceSalting for the ladder")
    p.add_argument(
        "--esxi-cache-pct",
        type=float_in(0, 100),
        default=10.0,
        help="Mem.MemZipMaxPct: cache cap, %% of VM memory (default 10)",
    )
    p.add_argument(
        "--zswap-incompressible",
        choices=("reject", "store"),
        default="reject",
        help="zswap on pages that do not compress below a page: reject (classic) or store (2025 as-is patch)",
    )
    p.set_defaults(func=run)


def format_table(rep: dict) -> str:
    mb = 2**20
    lines = [
        f"compress: {rep['pages']:,} pages ({rep['algorithm']})"
        + ("" if rep["exact"] else f", estimated from {rep['pages_examined']:,} sampled pages")
    ]
    if rep["exact"]:
        z = rep["zram"]
        lines.append("zram mm_stat after writing every page once:")
        for k in ("orig_data_size", "compr_data_size", "mem_used_total"):
            lines.append(f"  {k:18s} {z[k]:>15,} B  ({z[k] / mb:,.1f} MiB)")
        lines.append(f"  {'same_pages':18s} {z['same_pages']:>15,}")
        lines.append(f"  {'huge_pages':18s} {z['huge_pages']:>15,}  (compressed >= {z['huge_class_size']} B)")
        w = rep["zswap"]
        lines.append(
            f"zswap: {w['accepted']:,} accepted, {w['rejected_compress_poor']:,} rejected (poor compression), "
            f"{w['zero_or_same_filled']:,} zero; pool {w['pool_bytes'] / mb:,.1f} MiB"
        )
        for vm, e in rep["esxi"].items():
            lines.append(
                f"ESXi {vm}: {e['compressed']:,} compressed "
                f"({e['slots_1024']:,} quarter, {e['slots_2048']:,} half slots), "
                f"{e['swapped']:,} swapped ({e['swapped_cache_full']:,} for a full cache), cache "
                f"{e['cache_bytes'] / mb:,.1f} of {e['cache_limit_bytes'] / mb:,.1f} MiB"
            )
        lines.append("reclamation ladder (MiB saved / resident after the step):")
        for r in rep["ladder"]:
            res = "" if r["resident_mb"] is None else f"{r['resident_mb']:>12,.1f}"
            key = f"  [{r['mechanism']}]" if r.get("mechanism") else ""
            lines.append(f"  {r['step']:44s} {r['saved_mb']:>12,.1f} {res:>12}{key}")
    else:
        if rep.get("warning"):
            lines.append(f"  *** {rep['warning']} ***")
        for k, v in rep["zram_estimate"].items():
            lines.append(f"  {k:18s} {v['estimate']:>15,.0f}  95% CI [{v['low']:,.0f}, {v['high']:,.0f}]")
    t = rep["timing"]
    lines.append(
        f"time: {t['wall_seconds']:.2f} s, {t['gb_per_s']:.2f} GB/s ({t['gb_per_s_per_core']:.2f} per core, "
        f"{t['threads']} threads) over {t['input_bytes'] / 1e9:.3f} GB"
    )
    return "\n".join(lines)


def run(args) -> int:
    """Run ``pagecore compress`` for parsed ``args``; writes the report in ``args.format``, returns 0."""
    import sys

    from pagecore.errors import PagecoreError
    from pagecore.experiments.compression import collect, report, report_rows

    if args.format == "parquet" and not args.output:
        raise PagecoreError("--format parquet needs -o/--output FILE")
    check_outputs([args.output], args.inputs)
    t0 = time.perf_counter()
    ps, nbytes = collect(args)  # every table checked as `share` checks it, its sizes too, before counting
    rep = report(ps, args, nbytes, time.perf_counter() - t0)
    if rep.get("warning"):  # a sample too small to trust: loud even with --format json
        print(f"pagecore: warning: {rep['warning']}", file=sys.stderr)
    rep["timing"]["wall_seconds"] = time.perf_counter() - t0
    rep["timing"]["gb_per_s"] = nbytes / rep["timing"]["wall_seconds"] / 1e9
    rep["timing"]["gb_per_s_per_core"] = rep["timing"]["gb_per_s"] / rep["timing"]["threads"]
    rep = json.loads(json.dumps(rep, default=_jsonable))  # plain types for every format
    emit(args, rep, lambda: report_rows(rep), lambda: format_table(rep))
    return 0


def _jsonable(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)
