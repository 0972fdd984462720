"""Counting sets larger than memory, and on a cluster: scatter by hash prefix, count, gather.

Pages with equal content have equal hashes, so partitioning a set of page tables by the top
``bits`` of the hash puts every content group wholly in one partition, and the counts of
:mod:`.counts` simply add up across partitions:

1. **scatter** (:func:`scatter_table`, one job per page table): write the table's pages as a
   Parquet file with one row group per partition, in partition order (columns ``hash``,
   ``zero``, ``vm``: the index of the page's VM in the set's VM list);
2. **count** (:func:`count_partition`, one job per partition): read row group ``p`` of every
   scattered table and count it in core (:func:`pagecore.sharing.count_sharing`); save the
   additive counts (:func:`save_counts`);
3. **gather** (:func:`gather`): sum the partitions' counts.

Memory per job is bounded by the largest page table (scatter) or the largest partition
(count) — ``2**bits`` partitions of a set of N pages hold about N / 2**bits pages each.
Partitioned counts are hash-only: nothing is byte-verified (verify shards with
:mod:`pagecore.pages.verify` where the dumps exist).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pagecore._util import atomic_path
from pagecore.errors import InputError
from pagecore.pages.tables import check_same_hashes, page_table_metadata, read_page_table, vm_index_dtype
from pagecore.sharing.counts import SharingCounts, count_sharing

SCATTER_SCHEMA = pa.schema(
    [
        pa.field("hash", pa.uint64(), nullable=False),
        pa.field("zero", pa.bool_(), nullable=False),
        pa.field("vm", pa.uint32(), nullable=False),
    ]
)
META_KEY = b"pagecore_scatter"
#: random hashes neither compress nor dictionary-encode: stored plain, so that writing and
#: reading them is a copy (16 M rows: written in 0.42 s instead of 0.99 s, read in 0.13 s
#: instead of 0.56 s, 8.0 bytes per page on disk instead of 7.3)
SCATTER_WRITE_OPTIONS = dict(
    compression={"hash": "none", "zero": "zstd", "vm": "zstd"},
    use_dictionary=["vm"],
    column_encoding={"hash": "PLAIN", "zero": "PLAIN"},
    # a CRC per data page, checked by count_partition (as page tables since session 24): the hash
    # column is plain and uncompressed, so a flipped byte decoded fine and moved a page's content
    # into another group, or another partition, with exit 0
    write_page_checksum=True,
)


def vm_list_digest(vm_names: Sequence[str]) -> str:
    """SHA-256 of a VM list (its JSON), by which scatter files name the list they index."""
    return hashlib.sha256(json.dumps(list(vm_names)).encode()).hexdigest()


def scatter_table(
    table_path: str | os.PathLike,
    out_path: str | os.PathLike,
    vm_names: Sequence[str],
    bits: int,
    *,
    store_names: bool = True,
) -> dict:
    """Write ``table_path``'s pages as ``2**bits`` hash-prefix row groups in ``out_path``.

    Returns the scatter metadata (also stored in the file): partitions, rows per partition,
    the number of VMs and their list's digest (:func:`vm_list_digest`), the VM names unless
    ``store_names`` is false, the source table and its hash metadata. Without the names, the
    count jobs are given the list (:func:`count_partition`'s ``vm_names``): bigcount's 4,096
    scatter files of 262,144 VMs each held the list, 3.1 MB a file, 12.6 GB in all, and every
    count job parsed all of them.
    """
    if not 0 <= bits <= 16:
        raise ValueError(f"bits must be in 0..16, got {bits}")
    nparts = 1 << bits
    table = read_page_table(table_path, ["vm", "hash", "zero"])
    present: set[int] = set()
    vm = _vm_indices(table["vm"], {n: i for i, n in enumerate(vm_names)}, table_path, present)
    h = table["hash"].to_numpy()
    z = table["zero"].to_numpy(zero_copy_only=False)
    src_meta = page_table_metadata(table_path)
    # the top bits of the hash's own width: a 32-bit hash (Memory Buddies traces) has nothing in
    # the top bits of the uint64 (every page went to partition 0)
    width = int(src_meta.get("hash_bits", 64))
    if not bits <= width <= 64:
        raise InputError(table_path, f"hash_bits {width}: cannot partition by {bits} bits of the hash")
    # partition numbers as uint16: NumPy's stable sort of 16-bit keys is a radix sort (one
    # pass, where a 64-bit key took a merge sort); stable, so each partition keeps the table's
    # order and the counter still sees each VM's pages as one block
    if bits:
        part = ((h >> np.uint64(width - bits)) & np.uint64(nparts - 1)).astype(np.uint16)
    else:
        part = np.zeros(len(h), np.uint16)
    order = np.argsort(part, kind="stable")
    bounds = np.zeros(nparts + 1, np.int64)
    np.cumsum(np.bincount(part, minlength=nparts), out=bounds[1:])
    meta = {
        "partitions": nparts,
        "bits": bits,
        "rows": [int(bounds[p + 1] - bounds[p]) for p in range(nparts)],
        "vms": len(vm_names),
        "vm_list_sha256": vm_list_digest(vm_names),
        "source_table": str(table_path),
        "hash_algorithm": src_meta.get("hash_algorithm"),
        "hash_bits": src_meta.get("hash_bits", 64),
        "hash_key_id": src_meta.get("hash_key_id", "none"),
        "page_size": src_meta.get("page_size", 4096),
        "vm_runs": _runs(sorted(present)),
    }
    if store_names:
        meta["vm_names"] = list(vm_names)
    with atomic_path(out_path) as tmp:
        with pq.ParquetWriter(tmp, SCATTER_SCHEMA, **SCATTER_WRITE_OPTIONS) as w:
            for p in range(nparts):
                sel = order[bounds[p] : bounds[p + 1]]
                t = pa.table({"hash": h[sel], "zero": z[sel], "vm": vm[sel]}, schema=SCATTER_SCHEMA)
                w.write_table(t, row_group_size=max(1, t.num_rows))
            w.add_key_value_metadata({META_KEY: json.dumps(meta)})
    return meta


def _vm_indices(col: pa.ChunkedArray, index: dict[str, int], path, present: set | None = None) -> np.ndarray:
    """Global VM index of every row, decoding dictionary chunks without materializing strings
    (``present``: gets the indices of the VMs that have rows)."""
    out = []
    for chunk in col.chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_encode()
        names = chunk.dictionary.to_pylist()
        missing = [n for n in names if n not in index]
        if missing:
            raise InputError(path, f"VM {missing[0]!r} is not in the set's VM list")
        lut = np.array([index[n] for n in names], np.uint32)
        ix = chunk.indices.to_numpy(zero_copy_only=False)
        if present is not None and len(ix):
            present.update(lut[np.bincount(ix, minlength=len(lut)) > 0].tolist())
        out.append(lut[ix])
    return np.concatenate(out) if out else np.zeros(0, np.uint32)


def _runs(ix: list[int]) -> list[list[int]]:
    """Sorted indices as [first, last] runs (a shard's consecutive VMs are one)."""
    out: list[list[int]] = []
    for i in ix:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def scatter_metadata(path: str | os.PathLike) -> dict:
    raw = (pq.ParquetFile(path).metadata.metadata or {}).get(META_KEY)
    if raw is None:
        raise InputError(path, "not a scatter file", hint="make it with pagecore.sharing.partition.scatter_table")
    return json.loads(raw)


def count_partition(
    scatter_paths: Sequence[str | os.PathLike], p: int, *, vm_names: Sequence[str] | None = None, **kw
) -> SharingCounts:
    """Count partition ``p`` across the scattered tables (other keyword arguments go to
    :func:`pagecore.sharing.count_sharing`).

    ``vm_names``: the set's VM list, required when the files were scattered without it
    (``store_names=False``); every file's list digest must match it. Without it, the list is
    the one the files hold (which must agree)."""
    # files that hold the set's VM list: keep one (1,024 shards of 65,536 VMs held 67 M names,
    # about 4 GB at 62 bytes a name, in every count job); bigcount's hold only its digest
    names = None if vm_names is None else list(vm_names)
    want = None if names is None else vm_list_digest(names)
    metas = []
    sources: dict[str, str] = {}
    for s in scatter_paths:
        m = scatter_metadata(s)
        held = m.pop("vm_names", None)
        digest = m.get("vm_list_sha256")
        if held is not None and (digest is None or want is None):  # files before session 25, or the list to adopt
            digest = vm_list_digest(held)  # (a stored digest is not trusted for the list adopted)
        if digest is None:
            raise InputError(s, "a scatter file with neither a VM list nor its digest", hint="re-run the scatter job")
        if want is None:
            if held is None:
                raise InputError(s, "scattered without the set's VM list (store_names=False): pass vm_names")
            names, want = held, digest
        if digest != want or (metas and m["partitions"] != metas[0]["partitions"]):
            raise ValueError("scatter files disagree on VM list or partition count")
        del held
        # as `share` refuses them: a table scattered twice counted its pages twice, and tables
        # of other hashes (a 32-bit Memory Buddies trace beside 64-bit pcx64 tables, another key)
        # were compared hash by hash (exit 0, wrong counts)
        src = os.path.abspath(str(m.get("source_table", s)))
        if src in sources:
            raise InputError(s, f"scatters {src}, as {sources[src]} does: give each page table once")
        sources[src] = str(s)
        metas.append(m)
    check_same_hashes(scatter_paths, metas)  # as `share` does (algorithm, key, width, page size)
    # one VM's pages in two tables (two dumps hashed under one VM name): `share` refuses them;
    # here they were counted as one VM (intra- and inter-VM sharing and per-VM counts wrong, exit 0)
    runs = sorted((a, b, i) for i, m in enumerate(metas) for a, b in m.get("vm_runs", ()))
    for (_, b0, i0), (a1, _, i1) in itertools.pairwise(runs):
        if a1 <= b0:
            raise InputError(
                scatter_paths[i1],
                f"VM {names[a1]!r} is also in {scatter_paths[i0]}: give each VM's pages in one page table",
            )
    if not 0 <= p < metas[0]["partitions"]:
        raise ValueError(f"partition {p} out of range 0..{metas[0]['partitions'] - 1}")
    kw.setdefault("hash_bits", min(int(m.get("hash_bits") or 64) for m in metas))
    # the VM index in the dtype `share` hands the counter (compact_vm_index: uint8 up to 256 VMs,
    # uint16 up to 65,536), not the file's uint32: one kernel signature for every caller, and 2-3
    # bytes a page less for the counter to read (issue 18 audit C: bigcount ran another signature
    # than the one `pagecore bench count` measures)
    dt = vm_index_dtype(len(names))
    if len(scatter_paths) == 1:  # one row group: count NumPy views of its Arrow columns
        t = _row_group(scatter_paths[0], metas[0], p)
        h = t["hash"].to_numpy()  # no copy of a single chunk
        vm = _checked_vm(t["vm"].to_numpy(), len(names), scatter_paths[0]).astype(dt, copy=False)
        counts = count_sharing(h, t["zero"].to_numpy(zero_copy_only=False), vm, names, **kw)
        counts.partition = (p, metas[0]["partitions"])
        return counts
    # one row group at a time into arrays of the partition's size (known from the metadata), so
    # the job holds the pages once (13 bytes each) beside the counter's scratch, not an Arrow
    # copy of all of them as well (measured on the largest partition of the full run, every
    # zero page: 3.3 GB instead of 4.6 GB)
    n = sum(int(m["rows"][p]) for m in metas)
    h = np.empty(n, np.uint64)
    z = np.empty(n, np.bool_)
    vm = np.empty(n, dt)
    at = 0
    for s, m in zip(scatter_paths, metas, strict=True):
        t = _row_group(s, m, p)
        k = t.num_rows
        h[at : at + k] = t["hash"].to_numpy()
        z[at : at + k] = t["zero"].to_numpy(zero_copy_only=False)
        vm[at : at + k] = _checked_vm(t["vm"].to_numpy(), len(names), s)  # in range, so the cast is exact
        at += k
        del t
    pa.default_memory_pool().release_unused()  # the last row group's buffers, before the scratch
    counts = count_sharing(h, z, vm, names, **kw)
    counts.partition = (p, metas[0]["partitions"])
    return counts


def _row_group(path, meta: dict, p: int) -> pa.Table:
    """Row group ``p`` of a scatter file, checked: its data pages' checksums (files written
    before session 25 have none to check), the scatter schema without nulls, the row count its
    metadata gives, and every hash in partition ``p`` (a page in another partition's row group
    would be counted apart from its content's other copies: wrong counts with exit 0)."""
    try:
        f = pq.ParquetFile(path, page_checksum_verification=True)
        groups, nparts = f.metadata.num_row_groups, int(meta["partitions"])
        if groups != nparts:
            raise InputError(path, f"{groups:,} row groups, its metadata says {nparts:,} partitions")
        t = f.read_row_group(p)
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).splitlines()[0]
        crc = "crc" in first.lower() or "checksum" in first.lower()
        what = "a data page fails its checksum" if crc else "unreadable"
        raise InputError(
            path, f"corrupted scatter file: row group {p}: {what} ({first})",
            hint="the file was damaged after it was written; delete it and re-run the scatter job",
        ) from None  # fmt: skip
    for f in SCATTER_SCHEMA:
        if f.name not in t.column_names or t.schema.field(f.name).type != f.type:
            got = t.schema.field(f.name).type if f.name in t.column_names else "missing"
            raise InputError(path, f"scatter column {f.name!r}: {got}", expected=str(f.type))
        if t.column(f.name).null_count:
            raise InputError(path, f"scatter column {f.name!r} of row group {p} has null values")
    want = int(meta["rows"][p])
    if t.num_rows != want:
        raise InputError(path, f"row group {p} holds {t.num_rows:,} rows, its metadata says {want:,}")
    bits = int(meta.get("bits", 0))
    if bits and t.num_rows:
        width = int(meta.get("hash_bits") or 64)
        # as scatter_table computes it
        top = (t["hash"].to_numpy() >> np.uint64(width - bits)) & np.uint64((1 << bits) - 1)
        bad = np.flatnonzero(top != np.uint64(p))
        if len(bad):
            raise InputError(
                path, f"row group {p} holds {len(bad):,} hashes of other partitions "
                f"(the first: {int(t['hash'][int(bad[0])].as_py()):#018x}, partition {int(top[bad[0]])})",
                hint="the file was altered after it was written; delete it and re-run the scatter job",
            )  # fmt: skip
    return t


def _checked_vm(vm: np.ndarray, nvm: int, path) -> np.ndarray:
    """``vm`` if every index names a VM of the set's list (a narrower dtype would wrap the others)."""
    if len(vm) and int(vm.max()) >= nvm:
        raise InputError(path, f"VM index {int(vm.max()):,} is beyond the set's {nvm:,} VMs")
    return vm


def save_counts(counts: SharingCounts, path: str | os.PathLike) -> None:
    """Store additive counts as JSON (atomically)."""
    state = {
        "vm_names": counts.vm_names,
        "totals": counts.totals.tolist(),
        "per_vm": counts.per_vm.tolist(),
        "shrdsvd": counts.shrdsvd.tolist(),
        "top": [[str(h), s, c, k, zz] for h, s, c, k, zz in counts.top],
        "use_zero_pages": counts.use_zero_pages,
        "max_page_sharing": counts.max_page_sharing,
        "verified": counts.verified,
        "false_matches": counts.false_matches,
        "hash_bits": counts.hash_bits,
        "page_size": counts.page_size,
        "top_n": counts.top_n,
        "partition": counts.partition,
    }
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(state))


def load_counts(path: str | os.PathLike) -> SharingCounts:
    s = json.loads(Path(path).read_text())
    return SharingCounts(
        vm_names=s["vm_names"],
        totals=np.array(s["totals"], np.int64),
        per_vm=np.array(s["per_vm"], np.int64).reshape(len(s["vm_names"]), -1),
        shrdsvd=np.array(s["shrdsvd"], np.float64),
        top=[(int(h), int(sa), int(c), int(k), bool(zz)) for h, sa, c, k, zz in s["top"]],
        use_zero_pages=s["use_zero_pages"],
        max_page_sharing=s["max_page_sharing"],
        verified=s["verified"],
        false_matches=s["false_matches"],
        hash_bits=s["hash_bits"],
        page_size=s["page_size"],
        top_n=s["top_n"],
        partition=tuple(s["partition"]) if s.get("partition") is not None else None,
    )


def gather(count_paths: Sequence[str | os.PathLike]) -> SharingCounts:
    """Sum the saved counts of every partition.

    Counts saved from :func:`count_partition` name their partition: a partition given twice, or
    counts of a set in another number of partitions, or a missing partition, is refused (a glob
    over a counts directory that also held an earlier run's partitions summed both, exit 0).
    """
    total = None
    seen: dict[tuple[int, int], str] = {}
    for p in count_paths:
        c = load_counts(p)
        if c.partition is not None:
            if c.partition in seen:
                raise InputError(p, f"partition {c.partition[0]} of {c.partition[1]} is also in {seen[c.partition]}")
            if seen and next(iter(seen))[1] != c.partition[1]:
                raise InputError(p, f"counts of {c.partition[1]} partitions beside {next(iter(seen))[1]}'s")
            seen[c.partition] = str(p)
        total = c if total is None else total + c
    if total is None:
        raise ValueError("no partition counts to gather")
    if seen:
        nparts = next(iter(seen))[1]
        missing = sorted(set(range(nparts)) - {k for k, _ in seen})
        if missing:
            raise ValueError(f"partitions missing: {len(missing)} of {nparts} (the first: {missing[0]})")
    return total
