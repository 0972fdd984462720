"""``pagecore compress``: what zram, zswap and ESXi's compression cache keep of these pages.

::

    pagecore compress DUMP|PAGES... [--algorithm lzo-rle|lzo|lz4|zstd] [--format table|json]
                      [--sample FRACTION|N] [--seed S] [--threads T] [-o OUT]

Inputs are dumps (any format :func:`pagecore.dumps.open_dump` reads; the VM is named after
the file) or page tables (``.parquet``, from ``pagecore hash``). Page tables hold no page
bytes: unless a table carries ``csize_<alg>`` columns (``pagecore hash --compress ALG``), the
pages are re-read from the dump recorded in its metadata (``source_path``), which must still
have the recorded size (``source_size``) and page count.

The library: :func:`pagecore.pages.compress.page_sizes` (sizes once per distinct content)
and :mod:`pagecore.sharing.compress` (the models). The lead wires :func:`add_parser` /
:func:`run` into the CLI package.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from . import PAGE_SIZE
from ._util import atomic_path
from .errors import InputError


def add_parser(subparsers):
    """Register ``compress`` on an argparse ``subparsers`` object; returns the parser."""
    from .pages.compress import ALGORITHMS, DEFAULT_ALGORITHM

    p = subparsers.add_parser(
        "compress",
        help="what zram, zswap and ESXi memory compression keep of these pages",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("inputs", nargs="+", metavar="DUMP|PAGES", help="memory dumps or page tables (.parquet)")
    p.add_argument(
        "--algorithm", choices=ALGORITHMS, default=DEFAULT_ALGORITHM, help="compressor (default: %(default)s)"
    )
    p.add_argument("--format", choices=("table", "json"), default="table", dest="out_format")
    p.add_argument(
        "--sample",
        default=None,
        help="estimate from a page sample: a fraction in (0, 1) or a number of pages (>= 1); exact by default",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the page sample")
    p.add_argument("--threads", type=int, default=0, help="threads (0 = all cores)")
    p.add_argument("--salting", type=int, choices=(0, 1, 2), default=0, help="Mem.ShareForceSalting for the ladder")
    p.add_argument(
        "--esxi-cache-pct", type=float, default=10.0, help="Mem.MemZipMaxPct: cache cap, %% of VM memory (default 10)"
    )
    p.add_argument(
        "--zswap-incompressible",
        choices=("reject", "store"),
        default="reject",
        help="zswap on pages that do not compress below a page: reject (classic) or store (2025 as-is patch)",
    )
    p.add_argument("-o", "--output", default=None, help="also write the JSON report here")
    p.set_defaults(func=run)
    return p


# ------------------------------------------------------------------ sources
def _table_source(path: Path, algorithm: str):
    """(vm, chunk iterable or None, table-or-None, pages) for a page table."""
    import pyarrow.parquet as pq

    from .traces import page_table_metadata

    meta = page_table_metadata(path)
    names = pq.ParquetFile(path).schema_arrow.names
    vm = meta.get("vm", path.stem)
    rows = pq.ParquetFile(path).metadata.num_rows
    if f"csize_{algorithm}" in names:
        cols = ["vm", "gpfn", "hash", "zero", f"csize_{algorithm}"] + (
            ["same_filled"] if "same_filled" in names else []
        )
        return vm, None, _read(path, cols), rows
    src = meta.get("source_path")
    if not src:
        raise InputError(
            path,
            "page table has no compressed sizes and records no dump to re-read",
            expected=f"a csize_{algorithm} column or source_path metadata",
            hint=f"hash the dump with `pagecore hash --compress {algorithm}` or pass the dump itself",
        )
    sp = Path(src)
    if not sp.is_file() or sp.stat().st_size != int(meta.get("source_size", -1)):
        got = f"{sp.stat().st_size:,} bytes" if sp.is_file() else "missing"
        raise InputError(
            path,
            f"dump changed since hashing: {src} is {got}, "
            f"the table recorded {int(meta.get('source_size', -1)):,} bytes",
            hint="hash the dump again (`pagecore hash`) or pass the dump itself",
        )
    from .dumps import open_dump

    reader = open_dump(sp, meta.get("format", "auto"))
    return vm, reader, None, rows


def _read(path, cols):
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=cols)


def _sample_fraction(spec, total_pages: int) -> float | None:
    if spec is None:
        return None
    try:
        v = float(spec)
    except ValueError:
        raise InputError(
            None, f"--sample {spec!r} is not a number", hint="give a fraction such as 0.05 or a page count"
        ) from None
    if v <= 0:
        raise InputError(None, f"--sample must be > 0, got {spec}")
    if v < 1:
        return v
    return min(1.0, v / max(total_pages, 1))


def collect(args):
    """Per-page sizes for the inputs: (PageSizes, input bytes)."""
    import pandas as pd

    from .dumps import open_dump
    from .pages.compress import PageSizes, SizeStats, page_sizes

    alg = args.algorithm
    streams, tables, total = [], [], 0
    for name in args.inputs:
        path = Path(name)
        if not path.is_file():
            raise InputError(path, "no such file", hint="pass a memory dump or a page table from `pagecore hash`")
        if path.suffix == ".parquet":
            vm, reader, table, rows = _table_source(path, alg)
            total += rows
            if table is not None:
                tables.append(table)
            else:
                streams.append((vm, reader, path, rows))
        else:
            reader = open_dump(path)
            hint = reader.pages_hint or path.stat().st_size // PAGE_SIZE
            total += hint
            names = {v for v, *_ in streams}
            streams.append((path.name if path.name not in names else str(path), reader, None, None))
    frac = _sample_fraction(args.sample, total)
    frames, stats, vm_pages = [], SizeStats(), {}
    if streams:
        try:
            ps = page_sizes(
                [(vm, r) for vm, r, _, _ in streams], [alg], threads=args.threads or None, sample=frac, seed=args.seed
            )
        finally:
            for _, r, _, _ in streams:
                r.close()
        for _vm, r, tpath, rows in streams:
            if tpath is not None and r.stats.pages_read != rows:
                raise InputError(
                    tpath,
                    f"dump changed since hashing: {r.stats.pages_read:,} pages read, the table has {rows:,}",
                    hint="hash the dump again",
                )
        frames.append(ps.frame)
        stats, vm_pages = ps.stats, dict(ps.vm_pages)
    for t in tables:
        df = t.to_pandas()
        df["vm"] = df["vm"].astype(str)
        if "same_filled" not in df:
            df["same_filled"] = df["zero"]  # a table without the flag: only zero pages are known same-filled
        df[f"csize_{alg}"] = df[f"csize_{alg}"].astype(np.int32)
        if frac is not None and frac < 1:
            from .pages.compress import sample_mask

            df = df[sample_mask(len(df), 0, frac, args.seed)]
        for vm, k in t.column("vm").to_pandas().astype(str).value_counts().items():
            vm_pages[vm] = vm_pages.get(vm, 0) + int(k)
        stats.pages += t.num_rows
        stats.pages_sampled += len(df)
        frames.append(df)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    nbytes = stats.pages * PAGE_SIZE  # every page counted, sampled or not
    return PageSizes(frame=frame, algorithms=[alg], stats=stats, sample_fraction=frac or 1.0, vm_pages=vm_pages), nbytes


# ------------------------------------------------------------------ report
def report(ps, args, input_bytes: int, wall: float) -> dict:
    from .sharing.compress import estimate_zram, esxi_compression, reclamation_ladder, zram_mm_stat, zswap_pool

    alg = args.algorithm
    f = ps.frame
    cs = f[f"csize_{alg}"].to_numpy(np.int64)
    same = f["same_filled"].to_numpy(np.bool_)
    zero = f["zero"].to_numpy(np.bool_)
    frac = ps.sample_fraction
    out = {
        "algorithm": alg,
        "inputs": list(args.inputs),
        "pages": int(ps.stats.pages),
        "pages_examined": len(f),
        "sample_fraction": frac,
        "exact": frac >= 1.0,
    }
    if frac >= 1.0:
        out["zram"] = zram_mm_stat(cs, same)
        out["zswap"] = zswap_pool(cs, zero, same, incompressible=args.zswap_incompressible)
        out["esxi"] = {}
        for vm, sub in f.groupby("vm", observed=True, sort=True):
            vb = ps.vm_pages.get(str(vm), len(sub)) * PAGE_SIZE
            out["esxi"][str(vm)] = esxi_compression(sub[f"csize_{alg}"].to_numpy(), vb, max_pct=args.esxi_cache_pct)
        lad = reclamation_ladder(f, alg, vm_pages=ps.vm_pages, salting=args.salting, max_pct=args.esxi_cache_pct)
        out["ladder"] = json.loads(lad.to_json(orient="records"))
    else:
        out["zram_estimate"] = estimate_zram(cs, same, frac, int(ps.stats.pages))
        out["note"] = "estimates from a page sample (95 % normal intervals); sharing and the ladder need every page"
    out["timing"] = {
        "wall_seconds": wall,
        "input_bytes": input_bytes,
        "gb_per_s": input_bytes / wall / 1e9 if wall else None,
        "contents_compressed": int(ps.stats.distinct_compressed.get(alg, 0)),
        "compress_seconds": float(ps.stats.compress_seconds.get(alg, 0.0)),
    }
    return out


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
            lines.append(f"  {r['step']:44s} {r['saved_mb']:>12,.1f} {res}")
    else:
        for k, v in rep["zram_estimate"].items():
            lines.append(f"  {k:18s} {v['estimate']:>15,.0f}  95% CI [{v['low']:,.0f}, {v['high']:,.0f}]")
    t = rep["timing"]
    lines.append(f"time: {t['wall_seconds']:.2f} s, {t['gb_per_s']:.2f} GB/s over {t['input_bytes'] / 1e9:.3f} GB")
    return "\n".join(lines)


def run(args) -> int:
    """Run ``pagecore compress`` for parsed ``args``; prints the report, returns 0."""
    t0 = time.perf_counter()
    ps, nbytes = collect(args)
    rep = report(ps, args, nbytes, time.perf_counter() - t0)
    rep["timing"]["wall_seconds"] = time.perf_counter() - t0
    rep["timing"]["gb_per_s"] = nbytes / rep["timing"]["wall_seconds"] / 1e9
    text = json.dumps(rep, indent=2, default=_jsonable)
    if args.output:
        with atomic_path(args.output) as tmp:
            Path(tmp).write_text(text + "\n")
    print(text if args.out_format == "json" else format_table(rep), file=sys.stdout)
    return 0


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def main(argv=None) -> int:
    """Stand-alone entry (``python -m pagecore.cli_compress``) until the lead wires the subcommand."""
    import argparse

    from .errors import PagecoreError

    ap = argparse.ArgumentParser(prog="pagecore")
    sub = ap.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except PagecoreError as exc:
        print(f"pagecore: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
