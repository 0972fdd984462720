"""Compression of guest pages from config or command line: per-page sizes, then every model.

Joins the page stage (:func:`pagecore.pages.compress.page_sizes`: compressed sizes once per
distinct content, streaming dumps; or the ``csize_<alg>`` columns of tables hashed with
``pagecore hash --compress``) with the models of :mod:`pagecore.sharing.compress` (zram
``mm_stat``, zswap, ESXi memory compression, the reclamation ladder). Page tables without sizes
are re-read from their recorded dump, which must be unchanged since hashing
(:func:`pagecore.pages.provenance.locate_dump`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pagecore import PAGE_SIZE
from pagecore.dumps import open_dump
from pagecore.errors import ConfigError, InputError, not_a_file


@dataclass
class CompressOptions:
    """What ``pagecore compress`` was asked (the same names as its options)."""

    inputs: list = field(default_factory=list)
    algorithm: str = "lzo-rle"
    sample: str | float | None = None
    seed: int = 0
    threads: int = 0
    salting: int = 0
    esxi_cache_pct: float = 10.0
    zswap_incompressible: str = "reject"


# ------------------------------------------------------------------ sources
def _table_source(path: Path, algorithm: str):
    """(vm, chunk iterable or None, table-or-None, pages) for a page table, checked first as
    ``share`` checks it, its compressed sizes too (:func:`pagecore.pages.compress.check_sized_page_table`)."""
    import pyarrow.parquet as pq

    from pagecore.pages.compress import check_sized_page_table
    from pagecore.pages.tables import hashed_skipping, page_table_metadata

    table = check_sized_page_table(path, algorithm)  # the table with its sizes, read once, or None
    meta = page_table_metadata(path)
    vm = meta.get("vm", path.stem)
    rows = pq.ParquetFile(path).metadata.num_rows
    if table is not None:
        return vm, None, table, rows
    src = meta.get("source_path")
    if not src or meta.get("hash_only"):  # an imported trace records its trace file: no page bytes
        fmt = meta.get("format")
        raise InputError(
            path,
            "page table has no compressed sizes and records no dump to re-read"
            + (f" (a hash-only {fmt} table: its source holds hashes, not pages)" if meta.get("hash_only") else ""),
            expected=f"a csize_{algorithm} column or source_path metadata",
            hint=f"hash the dump with `pagecore hash --compress {algorithm}` or pass the dump itself",
        )
    from pagecore.pages.provenance import DumpChanged, locate_dump

    try:
        sp = locate_dump(path, meta)
    except DumpChanged as exc:  # its advice named share's --dump-dir and --no-verify, which compress lacks
        raise DumpChanged(
            exc.path,
            exc.problem.removeprefix("dump changed since hashing: "),
            hint="compress reads the pages from that dump: restore it, or give compress the dump itself, or a "
            f"table hashed with `pagecore hash --compress {algorithm}`",
        ) from None
    reader = open_dump(sp, meta.get("format", "auto"), skip_bad_pages=hashed_skipping(meta))  # as it was hashed
    return vm, reader, None, rows


def _sample_fraction(spec, total_pages: int) -> float | None:
    if spec is None:
        return None
    try:
        v = float(spec)
    except ValueError:
        raise ConfigError(f"--sample {spec!r} is not a number: give a fraction such as 0.05 or a page count") from None
    if not 0 < v < math.inf:  # NaN too (an InputError of no file printed "<input>: --sample ...")
        raise ConfigError(f"--sample must be a finite number > 0, got {spec}")
    if v < 1:
        return v
    return min(1.0, v / max(total_pages, 1))


def _kept_flags(paths: list, algorithm: str) -> list:
    """Whether each page table keeps its own hashes (it has ``csize_<algorithm>``; else its dump
    is re-read and hashed with the default key)."""
    import pyarrow.parquet as pq

    return [f"csize_{algorithm}" in pq.ParquetFile(p).schema_arrow.names for p in paths]


def _guest_keys(path: Path) -> list:
    """What identifies the guest an input reads: the file itself (device, inode) and, for a page
    table, the dump it records (that file, and its path, size and sample digest)."""
    import os

    st = path.stat()
    keys: list = [("file", st.st_dev, st.st_ino)]
    from pagecore._util import is_page_table

    if is_page_table(path):
        from pagecore.pages.tables import page_table_metadata, source_identity

        meta = page_table_metadata(path)
        src = meta.get("source_path")
        if isinstance(src, str) and src:
            ident = source_identity(meta)
            if ident is not None:
                keys.append(("source", *ident))
            try:
                sst = os.stat(src)
            except OSError:
                sst = None
            if sst is not None and sst.st_size == meta.get("source_size"):
                keys.append(("file", sst.st_dev, sst.st_ino))
    return keys


def collect(args: CompressOptions):
    """Per-page sizes for the inputs: (PageSizes, input bytes)."""
    import pandas as pd

    from pagecore._util import is_page_table
    from pagecore.dumps import open_dump
    from pagecore.pages.compress import PageSizes, SizeStats, page_sizes

    alg = args.algorithm
    streams, tables, total = [], [], 0
    seen: dict = {}
    vms_of: dict = {}  # VM name -> the table it came from
    for name in args.inputs:
        path = Path(name)
        if not path.is_file():
            raise not_a_file(path, "memory dump or page table", hint="pass one, or hash a dump with `pagecore hash`")
        for key in _guest_keys(path):
            if key in seen:
                raise InputError(
                    path, f"reads the same guest as {seen[key]} (one dump, or a page table and its dump): "
                    "its pages would be counted twice",
                    hint="give each guest once",
                )  # fmt: skip
            seen[key] = path
        if is_page_table(path):  # by content: a table named x.pq was read as a dump
            vm, reader, table, rows = _table_source(path, alg)
            if vm in vms_of:  # two tables of one VM name would be counted as one VM (its sharing intra-VM)
                raise InputError(
                    path, f"VM {vm!r} is also in {vms_of[vm]}: its pages would be counted as one VM's",
                    hint="pass --vm NAME when hashing, so each dump has its own VM name",
                )  # fmt: skip
            vms_of[vm] = path
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
    if tables:  # their own hashes meet the dumps' (hashed here with the default key) and each other's
        from pagecore.pages.tables import COMPARABLE, HASH_DEFAULTS, check_comparable, page_table_metadata

        kept = [Path(n) for n in args.inputs if is_page_table(n)]
        kept = [p for p, t in zip(kept, _kept_flags(kept, alg), strict=True) if t]
        others = [Path(n) for n in args.inputs if Path(n) not in kept]
        metas = [page_table_metadata(p) for p in kept]
        for p, m in zip(kept, metas, strict=True):  # each of the others is hashed here without a key
            diff = [k for k in COMPARABLE if m and str(m.get(k, HASH_DEFAULTS[k])) != str(HASH_DEFAULTS[k])]
            if others and diff:
                k = diff[0]
                raise InputError(
                    p, f"its hashes were made with {k} {m[k]}, but {others[0]} is hashed here from its dump with "
                    f"{k} {HASH_DEFAULTS[k]}: they cannot be compared",
                    hint=f"give compress {p.name}'s dump instead, or hash {others[0].name}'s dump the same way with "
                    f"`pagecore hash --compress {alg}`",
                )  # fmt: skip
        # the others' metadata is how they are hashed here (not {}: a table read as "no pagecore metadata")
        check_comparable(kept + others, metas + [dict(HASH_DEFAULTS) for _ in others])
    frac = _sample_fraction(args.sample, total)
    frames, stats, vm_pages = [], SizeStats(), {}
    if streams:
        try:
            ps = page_sizes(
                [(vm, r) for vm, r, _, _ in streams], [alg], threads=args.threads or None, sample=frac, seed=args.seed
            )
        finally:
            t_close = (time.perf_counter(), time.process_time())
            for _, r, _, _ in streams:
                r.close()
        ps.stats.stages["close"] = [time.perf_counter() - t_close[0], time.process_time() - t_close[1]]
        for _vm, r, tpath, rows in streams:
            if tpath is not None and r.stats.pages_read != rows:
                raise InputError(
                    tpath,
                    f"dump changed since hashing: {r.stats.pages_read:,} pages read, the table has {rows:,}",
                    hint="hash the dump again",
                )
        frames.append(None)  # ps.frame, built below only when tables join the dumps
        stats, vm_pages = ps.stats, dict(ps.vm_pages)
    for t in tables:
        df = t.to_pandas()
        df["vm"] = df["vm"].astype(str)
        if "same_filled" not in df:
            df["same_filled"] = df["zero"]  # a table without the flag: only zero pages are known same-filled
        df[f"csize_{alg}"] = df[f"csize_{alg}"].astype(np.int32)
        if frac is not None and frac < 1:
            from pagecore.pages.compress import sample_mask

            df = df[sample_mask(len(df), 0, frac, args.seed)]
        for vm, k in t.column("vm").to_pandas().astype(str).value_counts().items():
            vm_pages[vm] = vm_pages.get(vm, 0) + int(k)
        stats.pages += t.num_rows
        stats.pages_sampled += len(df)
        frames.append(df)
    nbytes = stats.pages * PAGE_SIZE  # every page counted, sampled or not
    if streams and not tables:  # the arrays as page_sizes made them (no DataFrame unless asked for)
        ps.vm_pages, ps.sample_fraction = vm_pages, frac or 1.0
        return ps, nbytes
    frames[0] = ps.frame if streams else frames[0]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return PageSizes(frame=frame, algorithms=[alg], stats=stats, sample_fraction=frac or 1.0, vm_pages=vm_pages), nbytes


# ------------------------------------------------------------------ report
#: Reclamation-ladder steps (by the start of their name) and the mechanism key each wins memory
#: by (:data:`pagecore.vocab.MECHANISMS`); "remains" and "salting removes" win nothing.
LADDER_MECHANISMS = (
    ("zero pages", "zero"),
    ("intra-VM sharing", "share_intra"),
    ("inter-VM sharing", "share_inter"),
    ("compression", "compress"),
)


def ladder_mechanism(step: str) -> str | None:
    """The mechanism key of a ladder step (``None`` for the rows that are not savings)."""
    return next((key for prefix, key in LADDER_MECHANISMS if step.startswith(prefix)), None)


def report_rows(rep: dict):
    """The rows of ``pagecore compress --format csv|parquet``: the reclamation ladder with its
    mechanism keys (exact runs), or the zram estimates with their intervals (sampled runs)."""
    import pandas as pd

    if rep["exact"]:
        df = pd.DataFrame(rep["ladder"])
    else:
        df = pd.DataFrame([{"quantity": k, **v} for k, v in rep["zram_estimate"].items()])
    df.insert(0, "algorithm", rep["algorithm"])
    return df


def _vm_rows(vm):
    """(name, row indices in order) per VM, in the order ``groupby("vm", observed=True, sort=True)``
    gives them (category order for a categorical column), without pandas' per-group objects."""
    import pandas as pd

    if isinstance(vm.dtype, pd.CategoricalDtype):
        codes = vm.cat.codes.to_numpy(np.int64)
        names = [str(c) for c in vm.cat.categories]
    else:
        codes, uniq = pd.factorize(vm, sort=True)
        names = [str(u) for u in uniq]
    return _rows_by_code(codes, names)


def _rows_by_code(codes: np.ndarray, names) -> list:
    """(name, row indices in order) for each of ``names`` that some row's code points at."""
    codes = np.asarray(codes, np.int64)
    if len(names) == 1:
        return [(str(names[0]), np.arange(len(codes)))] if len(codes) else []
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    return [(str(name), order[bounds[k] : bounds[k + 1]]) for k, name in enumerate(names) if bounds[k + 1] > bounds[k]]


def report(ps, args: CompressOptions, input_bytes: int, wall: float) -> dict:
    from pagecore.sharing.compress import (
        ESTIMATE_NOTE,
        estimate_zram,
        esxi_compression,
        ladder_from_arrays,
        sample_warning,
        sorted_vm_codes,
        zram_mm_stat,
        zswap_pool,
    )

    alg = args.algorithm
    cols = ps.columns  # numpy arrays (no DataFrame for dumps: see PageSizes)
    cs = np.asarray(cols[f"csize_{alg}"], np.int64)
    same = np.asarray(cols["same_filled"], np.bool_)
    zero = np.asarray(cols["zero"], np.bool_)
    frac = ps.sample_fraction
    out = {
        "algorithm": alg,
        "inputs": list(args.inputs),
        "pages": int(ps.stats.pages),
        "pages_examined": len(cs),
        "sample_fraction": frac,
        "exact": frac >= 1.0,
    }
    if frac >= 1.0:
        out["zram"] = zram_mm_stat(cs, same)
        out["zswap"] = zswap_pool(cs, zero, same, incompressible=args.zswap_incompressible)
        out["esxi"] = {}
        for vm, rows in _rows_by_code(cols["vm"], ps.vm_names):
            vb = ps.vm_pages.get(vm, len(rows)) * PAGE_SIZE
            out["esxi"][vm] = esxi_compression(cs[rows], vb, max_pct=args.esxi_cache_pct)
        vm_codes, vm_names = sorted_vm_codes(cols["vm"], ps.vm_names)
        lad = ladder_from_arrays(
            vm_codes,
            vm_names,
            cols["hash"],
            zero,
            cs,
            algorithm=alg,
            vm_pages=ps.vm_pages,
            salting=args.salting,
            max_pct=args.esxi_cache_pct,
            as_records=True,
        )
        for r in lad:
            r["mechanism"] = ladder_mechanism(r["step"])
            for k, v in r.items():  # JSON has no NaN: the "salting removes" row has no resident count
                if isinstance(v, float) and math.isnan(v):
                    r[k] = None
        out["ladder"] = lad
        keyed = [r for r in lad if r["mechanism"] is not None]
        out["savings_pages"] = {r["mechanism"]: float(r["saved_pages"]) for r in keyed}
        out["savings_mb"] = {r["mechanism"]: float(r["saved_mb"]) for r in keyed}
    else:
        out["zram_estimate"] = estimate_zram(cs, same, frac, int(ps.stats.pages))
        out["note"] = ESTIMATE_NOTE
        warning = sample_warning(len(cs), int(ps.stats.pages))
        if warning:
            out["warning"] = warning
    from pagecore._jit import resolve_threads

    threads = resolve_threads(getattr(args, "threads", 0) or None)
    out["timing"] = {
        "wall_seconds": wall,
        "input_bytes": input_bytes,
        "threads": threads,
        "gb_per_s": input_bytes / wall / 1e9 if wall else None,
        "gb_per_s_per_core": input_bytes / wall / 1e9 / threads if wall else None,
        "contents_compressed": int(ps.stats.distinct_compressed.get(alg, 0)),
        "compress_seconds": float(ps.stats.compress_seconds.get(alg, 0.0)),
    }
    return out
