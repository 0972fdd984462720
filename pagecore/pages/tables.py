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

Metadata (key ``pagecore``, JSON) in both the Parquet footer and the Arrow schema, so
``pyarrow.parquet.read_schema(path).metadata[b"pagecore"]`` has it, and tables read with
:func:`read_page_table` carry it too (:func:`page_table_frame` puts it in ``DataFrame.attrs``):
``vm``, ``source_path``,
``source_size``, ``format``, ``page_size``, ``hash_algorithm``, ``hash_key_id`` (``none`` when
unkeyed; never the key), ``verified`` (whether equal hashes were byte-compared), counts
``pages_read``, ``pages_skipped``, ``pages_excluded`` (left out by the dump itself, e.g. by a
kdump ``dump_level``), ``pages_partial`` (edge pages of segments that do not cover a whole page),
``bytes_skipped``, format details such as ``dump_level``, and ``pagecore_version``. Hash-only
tables (no dump behind them, e.g. synthetic or imported traces) set ``hash_only`` and
``hash_bits``. Each field carries its meaning (``description``) and, where it has one, its
``unit`` in the Arrow field metadata.

Writers stream row groups to a temporary file and rename it into place on success.
"""

from __future__ import annotations

import base64
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
        pa.field("vm", pa.dictionary(pa.int32(), pa.string()), nullable=False, metadata={"description": "VM name"}),
        pa.field(
            "gpfn",
            pa.uint64(),
            nullable=False,
            metadata={"unit": "page (4096 bytes)", "description": "guest-physical frame number (address // 4096)"},
        ),
        pa.field(
            "hash",
            pa.uint64(),
            nullable=False,
            metadata={"description": "page content hash (hash_algorithm in the table metadata)"},
        ),
        pa.field("zero", pa.bool_(), nullable=False, metadata={"description": "every byte of the page is zero"}),
    ]
)


def schema_with_metadata(schema: pa.Schema, meta: dict) -> pa.Schema:
    """``schema`` carrying ``meta`` as JSON under the ``pagecore`` key."""
    return schema.with_metadata({**(schema.metadata or {}), META_KEY: json.dumps(meta, sort_keys=True)})


def arrow_schema_footer(schema: pa.Schema) -> dict[bytes, str]:
    """Footer entry that stores ``schema`` (with its metadata) as the file's Arrow schema.

    Parquet keeps the Arrow schema as base64 of its IPC serialization under ``ARROW:schema``;
    writing it again at close replaces the one stored at open, so schema metadata known only at
    the end (page counts) still reaches ``pyarrow.parquet.read_schema``.
    """
    return {b"ARROW:schema": base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")}


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
                schema = schema_with_metadata(PAGE_TABLE_SCHEMA, meta)
                self._writer.add_key_value_metadata(
                    {META_KEY: json.dumps(meta, sort_keys=True), **arrow_schema_footer(schema)}
                )
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
        table = pq.read_table(path, columns=list(columns) if columns else None)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(path, f"not a readable Parquet page table ({exc})") from None
    want = PAGE_TABLE_SCHEMA if columns is None else pa.schema([PAGE_TABLE_SCHEMA.field(c) for c in columns])
    for f in want:
        if f.name not in table.column_names:
            raise InputError(path, f"missing column {f.name!r}", expected="a page table written by `pagecore hash`")
        got = table.schema.field(f.name).type
        if f.name == "vm":
            if not (pa.types.is_dictionary(got) or pa.types.is_string(got) or pa.types.is_large_string(got)):
                raise InputError(path, f"column 'vm' has type {got}", expected="string")
        elif got != f.type:
            raise InputError(path, f"column {f.name!r} has type {got}", expected=str(f.type))
    meta = (table.schema.metadata or {}).get(META_KEY) or (pq.ParquetFile(path).metadata.metadata or {}).get(META_KEY)
    if meta:  # older tables kept it in the footer only
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: meta})
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
    metas = [json.loads((t.schema.metadata or {}).get(META_KEY, b"{}")) for t in tables]
    # one schema for all (vm as plain strings so dictionaries unify), with the fields' units
    fields = {f.name: f for f in PAGE_TABLE_SCHEMA}
    fields["vm"] = fields["vm"].with_type(pa.string())
    names = list(columns) if columns else tables[0].column_names
    casted = []
    for t in tables:
        t = t.select(names).replace_schema_metadata(None)
        casted.append(t.cast(pa.schema([fields.get(n, t.schema.field(n)) for n in names])))
    table = pa.concat_tables(casted)
    # one table: its metadata as written; several: the list of them, in the order given
    meta = metas[0] if len(metas) == 1 else metas
    return table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True)})


def page_table_frame(paths, columns: Sequence[str] | None = None):
    """Page tables as one pandas DataFrame; ``df.attrs["pagecore"]`` holds each table's metadata.

    ``paths`` is one path or several; ``attrs["pagecore"]`` is then a dict or a list of dicts
    (``vm``, ``source_path``, ``hash_algorithm``, counts, ``pagecore_version`` …).
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    table = read_page_tables(paths, columns)
    df = table.to_pandas()
    df.attrs["pagecore"] = json.loads(table.schema.metadata[META_KEY])
    return df
