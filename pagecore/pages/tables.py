"""Arrow schemas and readers/writers for pagecore's on-disk tables.

Page table (one row per guest page)
-----------------------------------
=========  ===========================  ==============================================
column     type                         meaning
=========  ===========================  ==============================================
vm         dictionary<int32, string>    VM name (the same for every row of one dump)
gpfn       uint64                       guest-physical frame number (address // 4096)
hash       uint64                       ``pcx64-v1`` content hash (see pagecore.pages.hashing)
zero       bool                         every byte of the page is zero
=========  ===========================  ==============================================

File-level metadata (schema metadata key ``pagecore``, JSON): ``vm``, ``source_path``,
``source_size``, ``format``, ``page_size``, ``hash_algorithm``, ``hash_key_id`` (``none`` when
unkeyed; never the key), ``verified`` (whether equal hashes were byte-compared), counts
``pages_read``, ``pages_skipped``, ``pages_excluded`` (left out by the dump itself, e.g. by a
kdump ``dump_level``), ``pages_partial`` (edge pages of segments that do not cover a whole page),
``bytes_skipped``, format details such as ``dump_level``, and ``pagecore_version``. Hash-only
tables (no dump behind them, e.g. synthetic or imported traces) set ``hash_only`` and
``hash_bits``.

Writers stream row groups to a temporary file and rename it into place on success.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pagecore import __version__
from pagecore._util import atomic_path
from pagecore.errors import InputError

META_KEY = b"pagecore"

PAGE_TABLE_SCHEMA = pa.schema(
    [
        pa.field("vm", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("gpfn", pa.uint64(), nullable=False),
        pa.field("hash", pa.uint64(), nullable=False),
        pa.field("zero", pa.bool_(), nullable=False),
    ]
)


def _vm_column(vm: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([vm], type=pa.string()))


def page_table_batch(vm: str, gpfn: np.ndarray, hashes: np.ndarray, zero: np.ndarray) -> pa.RecordBatch:
    """One record batch of the page-table schema."""
    n = len(gpfn)
    if not (len(hashes) == len(zero) == n):
        raise ValueError(f"column lengths differ: gpfn {n}, hash {len(hashes)}, zero {len(zero)}")
    return pa.RecordBatch.from_arrays(
        [
            _vm_column(vm, n),
            pa.array(np.asarray(gpfn, dtype=np.uint64)),
            pa.array(np.asarray(hashes, dtype=np.uint64)),
            pa.array(np.asarray(zero, dtype=np.bool_)),
        ],
        schema=PAGE_TABLE_SCHEMA,
    )


class PageTableWriter:
    """Stream page-table batches into a Parquet file that appears only when complete.

    Use as a context manager; call :meth:`write` per chunk and fill :attr:`metadata` before
    leaving the block (counts are only known at the end; they go into the file footer).
    Memory stays bounded by one row group.
    """

    ROW_GROUP = 1 << 20

    def __init__(self, path: str | os.PathLike, vm: str, metadata: dict | None = None):
        self.path = Path(path)
        self.vm = vm
        self.metadata = dict(metadata or {})
        self._ctx = atomic_path(self.path)
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def __enter__(self):
        tmp = self._ctx.__enter__()
        self._writer = pq.ParquetWriter(tmp, PAGE_TABLE_SCHEMA, compression="zstd")
        return self

    def write(self, gpfn: np.ndarray, hashes: np.ndarray, zero: np.ndarray, vm: str | None = None) -> None:
        """Append rows; ``vm`` overrides the writer's VM name for this batch (multi-VM tables)."""
        batch = page_table_batch(self.vm if vm is None else vm, gpfn, hashes, zero)
        self._writer.write_batch(batch, row_group_size=self.ROW_GROUP)
        self.rows += len(gpfn)

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                meta = {"vm": self.vm, "pagecore_version": __version__, **self.metadata}
                self._writer.add_key_value_metadata({META_KEY: json.dumps(meta, sort_keys=True)})
            self._writer.close()
        except BaseException as err:
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        return self._ctx.__exit__(exc_type, exc, tb)


def write_page_table(path, vm: str, gpfn, hashes, zero, metadata: dict | None = None) -> None:
    """Write a whole page table at once (atomically)."""
    with PageTableWriter(path, vm, metadata) as w:
        w.write(gpfn, hashes, zero)


def read_page_table(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pa.Table:
    """Read one page table, checking it has the page-table columns and types."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such page table", hint="run `pagecore hash` first")
    try:
        if columns is None:  # only the page-table columns: extra ones (e.g. `pagecore live`'s host view) stay out
            names = pq.read_schema(path).names
            columns = [c for c in PAGE_TABLE_SCHEMA.names if c in names] or None
            want_all = True
        else:
            want_all = False
        table = pq.read_table(path, columns=list(columns) if columns else None)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(path, f"not a readable Parquet page table ({exc})") from None
    want = PAGE_TABLE_SCHEMA if want_all else pa.schema([PAGE_TABLE_SCHEMA.field(c) for c in columns])
    for f in want:
        if f.name not in table.column_names:
            raise InputError(path, f"missing column {f.name!r}", expected="a page table written by `pagecore hash`")
        got = table.schema.field(f.name).type
        if f.name == "vm":
            if not (pa.types.is_dictionary(got) or pa.types.is_string(got) or pa.types.is_large_string(got)):
                raise InputError(path, f"column 'vm' has type {got}", expected="string")
        elif got != f.type:
            raise InputError(path, f"column {f.name!r} has type {got}", expected=str(f.type))
    return table


def page_table_metadata(path: str | os.PathLike) -> dict:
    """The ``pagecore`` metadata of a page table (empty dict if absent)."""
    meta = pq.ParquetFile(path).metadata.metadata or {}
    raw = meta.get(META_KEY)
    return json.loads(raw) if raw else {}


def read_page_tables(paths: Iterable[str | os.PathLike], columns: Sequence[str] | None = None) -> pa.Table:
    """Concatenate page tables (vm dictionaries are unified)."""
    tables = [read_page_table(p, columns) for p in paths]
    if not tables:
        raise ValueError("no page tables given")
    if columns is None or "vm" in columns:
        tables = [t.cast(t.schema.set(t.schema.get_field_index("vm"), pa.field("vm", pa.string()))) for t in tables]
    return pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
