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
import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from pagecore import __version__
from pagecore._util import atomic_path, is_page_table
from pagecore.errors import InputError, not_a_file

META_KEY = b"pagecore"

#: guest frame numbers are below this: x86-64 physical addresses have at most 52 bits (4 KiB
#: pages; the dump readers' limit, :data:`pagecore.dumps._segments.PHYS_ADDR_LIMIT`)
MAX_GPFN = 1 << 40

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


def _arrow(a, typ: pa.DataType) -> pa.Array:
    """NumPy values as an Arrow array of fixed-width type ``typ``, zero-copy where it can be.

    ``pa.array`` asks pyarrow's pandas shim whether its input is a pandas object, which
    imports pandas: a second of start-up for ``pagecore hash`` (issue 18). Building the array
    from its buffers needs no pandas."""
    if pa.types.is_boolean(typ):
        bits = np.packbits(np.asarray(a, dtype=np.bool_).view(np.uint8), bitorder="little")
        return pa.Array.from_buffers(typ, len(a), [None, pa.py_buffer(bits)])
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        a = np.ascontiguousarray(a, dtype=typ.to_pandas_dtype())
        return pa.Array.from_buffers(typ, len(a), [None, pa.py_buffer(a)])
    return pa.array(np.asarray(a), type=typ)


def _vm_column(vm: str, n: int) -> pa.DictionaryArray:
    name = vm.encode()
    offsets = np.array([0, len(name)], np.int32)
    names = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(name)])
    return pa.DictionaryArray.from_arrays(_arrow(np.zeros(n, np.int32), pa.int32()), names)


def page_table_batch(
    vm: str, gpfn: np.ndarray, hashes: np.ndarray, zero: np.ndarray, extra: dict | None = None, schema=None
) -> pa.RecordBatch:
    """One record batch of the page-table schema (plus ``extra`` columns of ``schema``)."""
    n = len(gpfn)
    if not (len(hashes) == len(zero) == n):
        raise ValueError(f"column lengths differ: gpfn {n}, hash {len(hashes)}, zero {len(zero)}")
    schema = schema or PAGE_TABLE_SCHEMA
    cols = [
        _vm_column(vm, n),
        _arrow(gpfn, pa.uint64()),
        _arrow(hashes, pa.uint64()),
        _arrow(zero, pa.bool_()),
    ]
    for f in list(schema)[len(PAGE_TABLE_SCHEMA) :]:
        cols.append(_arrow((extra or {})[f.name], f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


#: How page tables are encoded (issue 18: 5 times less CPU than pyarrow's defaults with zstd
#: and a smaller file, measured on 1 M rows): only the VM name is dictionary-encoded (trying a
#: dictionary for random hashes is wasted work), frame numbers are delta-encoded, and hashes
#: (random bits) are stored uncompressed; the rest is zstd.
WRITE_OPTIONS = dict(
    compression={"vm": "zstd", "gpfn": "zstd", "hash": "none", "zero": "zstd"},
    use_dictionary=["vm"],
    column_encoding={"gpfn": "DELTA_BINARY_PACKED", "hash": "PLAIN", "zero": "PLAIN"},
    # a CRC per data page, checked by read_page_table: the hash column is stored plain and
    # uncompressed, so a flipped byte in it decoded fine and changed the counts with exit 0
    write_page_checksum=True,
)


def _pq():
    """``pyarrow.parquet``, imported when a table is read (writing does not need it)."""
    import pyarrow.parquet as pq

    return pq


#: ``pyarrow.parquet.ParquetWriter``'s defaults (pyarrow 26) for what it passes on.
_PQ_WRITER_DEFAULTS = dict(
    version="2.6",
    use_dictionary=True,
    compression="snappy",
    write_statistics=True,
    use_deprecated_int96_timestamps=False,
    compression_level=None,
    use_byte_stream_split=False,
    column_encoding=None,
    writer_engine_version="V2",
    data_page_version="1.0",
    use_compliant_nested_type=True,
    encryption_properties=None,
    write_batch_size=None,
    dictionary_pagesize_limit=None,
    store_schema=True,
    write_page_index=False,
    write_page_checksum=False,
    sorting_columns=None,
    store_decimal_as_integer=False,
    write_time_adjusted_to_utc=False,
    max_rows_per_page=None,
    bloom_filter_options=None,
    use_content_defined_chunking=False,
)


class LeanParquetWriter:
    """``pyarrow.parquet.ParquetWriter`` for a local path, without importing ``pyarrow.parquet``.

    That module imports ``pyarrow.fs`` and the cloud file systems with it, about 50 ms of every
    ``pagecore hash`` run's start-up (issue 18: the fixed cost). This writer builds the same
    ``pyarrow._parquet.ParquetWriter`` with the same arguments the public class passes for a
    local file (its defaults, then ``options``), so the file is byte for byte the same
    (``tests/test_tables.py`` compares them); where the private class is missing or takes other
    arguments (another pyarrow), :func:`parquet_writer` falls back to the public one.
    """

    def __init__(self, path, schema: pa.Schema, **options):
        from pyarrow import _parquet

        self.schema = schema
        self._sink = pa.OSFile(os.fspath(path), "wb")
        try:
            self._writer = _parquet.ParquetWriter(self._sink, schema, **{**_PQ_WRITER_DEFAULTS, **options})
        except BaseException:
            self._sink.close()
            raise

    def write_batch(self, batch: pa.RecordBatch, row_group_size: int | None = None) -> None:
        if not batch.schema.equals(self.schema, check_metadata=False):
            raise ValueError(f"batch schema does not match the file's:\n{batch.schema}\nvs.\n{self.schema}")
        self._writer.write_table(pa.Table.from_batches([batch], batch.schema), row_group_size=row_group_size)

    def write_table(self, table: pa.Table, row_group_size: int | None = None) -> None:
        if not table.schema.equals(self.schema, check_metadata=False):
            raise ValueError(f"table schema does not match the file's:\n{table.schema}\nvs.\n{self.schema}")
        self._writer.write_table(table, row_group_size=row_group_size)

    def add_key_value_metadata(self, key_value_metadata: dict) -> None:
        self._writer.add_key_value_metadata(key_value_metadata)

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._sink.close()


def parquet_writer(path, schema: pa.Schema, **options):
    """A Parquet writer for local ``path``: :class:`LeanParquetWriter`, or pyarrow's own."""
    try:
        return LeanParquetWriter(path, schema, **options)
    except (ImportError, AttributeError, TypeError):
        return _pq().ParquetWriter(path, schema, **options)


class PageTableWriter:
    """Stream page-table batches into a Parquet file that appears only when complete.

    Use as a context manager; call :meth:`write` per chunk and fill :attr:`metadata` before
    leaving the block (counts are only known at the end; they go into the file footer).
    Memory stays bounded by one row group: rows are written in row groups of :attr:`ROW_GROUP`
    rows (the last one shorter) whatever the size of each :meth:`write`, so the file does not
    depend on ``--chunk-pages`` (a row group per chunk made ``hash --chunk-pages 1`` of a 128 MiB
    dump a 23 MB table that ``share`` took 48 s to read).
    """

    ROW_GROUP = 1 << 20

    def __init__(self, path: str | os.PathLike, vm: str, metadata: dict | None = None, inputs=(), extra_fields=()):
        self.path = Path(path)
        self.schema = pa.schema([*PAGE_TABLE_SCHEMA, *extra_fields])
        self.vm = vm
        self.metadata = dict(metadata or {})
        self._ctx = atomic_path(self.path, inputs)
        self._writer: LeanParquetWriter | None = None
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []  # rows not yet written (copies: callers reuse their arrays)
        self._pending_rows = 0
        # whole row groups are encoded and written on a thread of their own (pyarrow releases the
        # GIL), one at a time and in order, while the caller hashes the next pages: written in
        # turn, a 1 M-row group held the hashing threads idle for 0.1-0.15 s every 4 GiB (issue 18)
        self._bg: threading.Thread | None = None
        self._bg_error: BaseException | None = None

    def __enter__(self):
        tmp = self._ctx.__enter__()
        self._writer = parquet_writer(tmp, self.schema, **WRITE_OPTIONS)
        return self

    def write(
        self, gpfn: np.ndarray, hashes: np.ndarray, zero: np.ndarray, vm: str | None = None, extra: dict | None = None
    ) -> None:
        """Append rows; ``vm`` overrides the writer's VM name for this batch (multi-VM tables);
        ``extra`` holds the columns of ``extra_fields``."""
        if extra is not None:
            extra = {k: np.array(v, copy=True) for k, v in extra.items()}
        # copies: the batch is built zero-copy on the caller's arrays, which hashing reuses
        batch = page_table_batch(
            self.vm if vm is None else vm, np.array(gpfn, copy=True), np.array(hashes, copy=True),
            np.array(zero, copy=True), extra, self.schema,
        )  # fmt: skip
        self._pending.append(batch)
        self._pending_rows += len(gpfn)
        self.rows += len(gpfn)
        if self._pending_rows >= self.ROW_GROUP:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Write the pending rows as whole row groups of :attr:`ROW_GROUP` rows (all of them when
        ``final``): the whole groups on the writing thread (:meth:`_write_behind`), the last rows
        of a ``final`` flush in this one once that thread is done."""
        if not self._pending:
            return
        n = self._pending_rows if final else self._pending_rows - self._pending_rows % self.ROW_GROUP
        if not n:
            return
        take: list[pa.RecordBatch] = []
        left = n
        while left:  # the first n rows, by zero-copy slices of the pending batches
            b = self._pending[0]
            if b.num_rows <= left:
                take.append(self._pending.pop(0))
                left -= b.num_rows
            else:
                take.append(b.slice(0, left))
                self._pending[0] = b.slice(left)
                left = 0
        self._pending_rows -= n
        if final:
            self._wait()
            self._write(take)
        else:
            self._write_behind(take)

    def _write(self, batches: list[pa.RecordBatch]) -> None:
        table = pa.Table.from_batches(batches, self.schema).combine_chunks()
        self._writer.write_table(table, row_group_size=self.ROW_GROUP)

    def _write_behind(self, batches: list[pa.RecordBatch]) -> None:
        """:meth:`_write` on the writing thread, after the group before it (the file's order)."""
        self._wait()

        def run():
            try:
                self._write(batches)
            except BaseException as err:  # handed to the caller at the next wait
                self._bg_error = err

        self._bg = threading.Thread(target=run, name="pagecore-parquet", daemon=True)
        self._bg.start()

    def _wait(self) -> None:
        """Wait for the writing thread; raise what it raised."""
        if self._bg is not None:
            self._bg.join()
            self._bg = None
        if self._bg_error is not None:
            err, self._bg_error = self._bg_error, None
            raise err

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None and self._bg is not None:  # the file is closed only once it is done with it
                with contextlib.suppress(BaseException):
                    self._wait()
            if exc_type is None:
                self._flush(final=True)
                self._wait()
                meta = {"vm": self.vm, "pagecore_version": __version__, **self.metadata}
                schema = schema_with_metadata(self.schema, meta)
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
    """Read one page table, checking it has the page-table columns and types and no nulls."""
    path = Path(path)
    if not path.is_file():
        raise not_a_file(path, "page table", hint="run `pagecore hash` first")
    try:
        names = _pq().ParquetFile(path).schema_arrow.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(path, f"not a readable Parquet page table ({str(exc).splitlines()[0]})") from None
    want = PAGE_TABLE_SCHEMA if columns is None else pa.schema([PAGE_TABLE_SCHEMA.field(c) for c in columns])
    for f in want:
        if f.name not in names:
            raise InputError(
                path, f"missing column {f.name!r} (has {', '.join(names) or 'none'})",
                expected="a page table written by `pagecore hash` (vm, gpfn, hash, zero)",
            )  # fmt: skip
    try:
        # tables written before page checksums have none to check (those pages are read as before)
        table = _pq().read_table(path, columns=[f.name for f in want], page_checksum_verification=True)
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).splitlines()[0]
        if "crc" in first.lower() or "checksum" in first.lower():
            raise InputError(
                path, f"corrupted page table: a data page fails its checksum ({first})",
                hint="the file was damaged after it was written; re-run `pagecore hash` on its dump",
            ) from None  # fmt: skip
        raise InputError(path, f"not a readable Parquet page table ({first})") from None
    for f in want:
        got = table.schema.field(f.name).type
        if f.name == "vm":
            if not (pa.types.is_dictionary(got) or pa.types.is_string(got) or pa.types.is_large_string(got)):
                raise InputError(path, f"column 'vm' has type {got}", expected="string")
        elif got != f.type:
            raise InputError(path, f"column {f.name!r} has type {got}", expected=str(f.type))
        nulls = table.column(f.name).null_count
        if nulls:
            raise InputError(path, f"column {f.name!r} has {nulls:,} null values", hint="re-run `pagecore hash`")
    meta = (table.schema.metadata or {}).get(META_KEY) or (_pq().ParquetFile(path).metadata.metadata or {}).get(
        META_KEY
    )
    _check_consistent(path, table, meta)
    if "vm" in table.column_names:
        _check_vm_names(path, table["vm"])
    if meta:  # older tables kept it in the footer only
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: meta})
    return table


def _check_vm_names(path: Path, column) -> None:
    """Refuse VM names `pagecore hash --vm` refuses (:func:`pagecore.pages.ingest.check_vm_name`:
    blank, unprintable, white space around): an edited or imported table with ``vm01\nall``
    printed a report row that split over two lines, one of them a forged "all" row."""
    import pyarrow.compute as pc

    from pagecore.errors import ConfigError
    from pagecore.pages.names import check_vm_name  # (no cycle: names imports only errors)

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(col.type):
        col = col.dictionary.take(pc.unique(col.indices))
    for vm in pc.unique(col).to_pylist():
        try:
            check_vm_name(vm)
        except ConfigError as exc:
            raise InputError(
                path, f"VM name {vm!r} is not usable: {str(exc).removeprefix('vm: ')}",
                hint="hash (or import) its dump again with --vm NAME",
            ) from None  # fmt: skip


def _check_consistent(path: Path, table: pa.Table, meta) -> None:
    """Refuse a table that contradicts itself: no rows, a row count other than the ``pages`` its
    metadata records (cut or edited), a page size other than 4096, a guest frame number no x86-64
    guest has (:data:`MAX_GPFN`), or ``zero`` flags that do not mark exactly the rows of one hash
    (the zero page's): each once gave a report with exit 0 (or a traceback)."""
    try:
        m = json.loads(meta) if meta else {}
    except (ValueError, UnicodeDecodeError):
        m = {}
    m = m if isinstance(m, dict) else {}
    if table.num_rows == 0:
        raise InputError(path, "the page table has no pages", hint="re-run `pagecore hash` on a dump with pages")
    pages = m.get("pages")
    if isinstance(pages, int) and not isinstance(pages, bool) and pages != table.num_rows:
        raise InputError(
            path, f"{table.num_rows:,} rows, but its metadata records {pages:,} pages: the table was cut or edited",
            hint="re-run `pagecore hash`",
        )  # fmt: skip
    if m.get("page_size", 4096) != 4096:
        raise InputError(path, f"page_size {m.get('page_size')!r}", expected="4096 (pagecore handles 4 KiB pages only)")
    if "gpfn" in table.column_names:
        import pyarrow.compute as pc

        top = pc.max(table["gpfn"]).as_py()
        if top is not None and top >= MAX_GPFN:
            raise InputError(
                path, f"guest frame number {top:,} is beyond x86-64's 52-bit physical address space",
                expected=f"frame numbers below 2^40 ({MAX_GPFN:,})",
                hint="the table was edited; re-run `pagecore hash`",
            )  # fmt: skip
    if "zero" in table.column_names and "hash" in table.column_names:
        zero = table["zero"].to_numpy(zero_copy_only=False)
        if zero.any():
            # one pass, one byte per row (every table read passes here; a copy of the non-zero
            # rows' hashes cost 8 bytes a row): a row is zero exactly when it has the zero hash
            h = table["hash"].to_numpy()
            if ((h == h[int(np.argmax(zero))]) != zero).any():
                raise InputError(
                    path, "the zero column does not mark exactly the pages of one hash (the zero page's)",
                    hint="the table was edited; re-run `pagecore hash`",
                )  # fmt: skip


def page_table_metadata(path: str | os.PathLike) -> dict:
    """The ``pagecore`` metadata of a page table (empty dict if absent)."""
    try:
        meta = _pq().ParquetFile(path).metadata.metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(path, f"not a readable Parquet page table ({str(exc).splitlines()[0]})") from None
    raw = meta.get(META_KEY)
    if not raw:
        return {}
    try:
        out = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        out = None
    if not isinstance(out, dict):
        raise InputError(path, "malformed pagecore metadata (not a JSON object)", hint="re-run `pagecore hash`")
    return out


#: Metadata that must agree between page tables compared with each other.
COMPARABLE = ("hash_algorithm", "hash_key_id", "hash_bits", "page_size")
#: Their values when a table does not record them, which are also how a dump is hashed without a key
HASH_DEFAULTS = {"hash_algorithm": "pcx64-v1", "hash_key_id": "none", "hash_bits": 64, "page_size": 4096}


def check_comparable(paths: Sequence[str | os.PathLike], metas: Sequence[dict] | None = None) -> list[dict]:
    """Refuse page tables that cannot be compared with each other; return their metadata.

    The same table given twice and tables hashed with different algorithms, keys or hash widths
    (a 32-bit Memory Buddies table with 64-bit ones) are each refused with one line saying what
    to do.
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise not_a_file(p, "page table", hint="run `pagecore hash` first")
    metas = list(metas) if metas is not None else [page_table_metadata(p) for p in paths]
    seen: dict[tuple[int, int], Path] = {}
    for p in paths:
        st = p.stat()
        if (st.st_dev, st.st_ino) in seen:
            raise InputError(p, f"the same {_kind(p)} is given twice (also as {seen[st.st_dev, st.st_ino]})")
        seen[st.st_dev, st.st_ino] = p
    _check_distinct_dumps(paths, metas)
    _check_no_bare_tables(paths, metas)
    check_same_hashes(paths, metas)
    warn_damaged(paths, metas)
    return metas


def check_same_hashes(paths: Sequence[str | os.PathLike], metas: Sequence[dict]) -> None:
    """Refuse files whose hashes were made differently (:data:`COMPARABLE`: algorithm, key, width,
    page size), with one line naming the first that differs from ``paths[0]``; ``metas`` are the
    files' pagecore metadata (page tables, or scatter files, which carry their table's)."""
    defaults = HASH_DEFAULTS
    for key in COMPARABLE:
        vals = [m.get(key, defaults[key]) for m in metas]
        if len(set(map(str, vals))) > 1:
            i = next(i for i, v in enumerate(vals) if str(v) != str(vals[0]))
            hint = {
                "hash_key_id": "hash every dump with the same --key-env/--key-file (or none)",
                "hash_bits": "tables of different hash widths cannot be compared; compare like with like",
            }.get(key, "re-hash the dumps with the same pagecore version")
            raise InputError(
                paths[i], f"{key} {vals[i]} differs from {vals[0]} of {paths[0]}: their hashes are not comparable",
                hint=hint,
            )  # fmt: skip


def _check_no_bare_tables(paths: Sequence[Path], metas: Sequence[dict]) -> None:
    """Refuse a page table without ``pagecore`` metadata beside other inputs: how its hashes were
    made (algorithm, key, width) is unknown, so they cannot be compared with anything (a table
    rewritten by pandas loses the metadata: a keyed table then counted against unkeyed ones as if
    comparable, with exit 0). Tables that all lack it are compared with each other as given."""
    bare = [i for i, m in enumerate(metas) if not m and _kind(paths[i]) == "page table"]
    if bare and len(bare) < len(paths):
        i = bare[0]
        j = next(j for j in range(len(paths)) if j not in bare)
        raise InputError(
            paths[i], f"has no pagecore metadata, so how its hashes were made (algorithm, key, width) is unknown: "
            f"they cannot be compared with {paths[j]}'s",
            hint="hash its dump again with `pagecore hash` (a table rewritten by pandas or another tool loses "
            "its metadata)",
        )  # fmt: skip


def damage_of(meta: dict) -> str | None:
    """How the dump behind a page table was damaged (``pagecore hash --skip-bad-pages`` records it:
    unreadable pages skipped, or a dump its producer did not finish), or None."""
    if meta.get("damage"):
        return str(meta["damage"])
    skipped = meta.get("pages_skipped") or 0
    parts = []
    if meta.get("incomplete"):
        parts.append("the dump's header says it is incomplete")
    if isinstance(skipped, int) and skipped > 0:
        parts.append(f"{skipped:,} unreadable pages were skipped")
    return "; ".join(parts) or None


def hashed_skipping(meta: dict) -> bool:
    """Whether the table was hashed with ``--skip-bad-pages`` from a dump that needed it (pages or
    bytes skipped, or a dump its producer did not finish): its dump must be read again the same
    way (verification, ``compress``) to give the same pages."""
    return bool(meta.get("pages_skipped") or meta.get("bytes_skipped") or meta.get("incomplete"))


_WARNED: set[str] = set()


def warn_damaged(paths: Sequence[str | os.PathLike], metas: Sequence[dict]) -> list[dict]:
    """Say on standard error, once per table and process, that a page table comes from a
    damaged dump (:func:`damage_of`): every number from it describes only the pages that could be
    read. Returns ``{"table", "vm", "source_path", "damage"}`` for each such table, for reports."""
    out = []
    for p, m in zip(paths, metas, strict=True):
        d = damage_of(m)
        if d is None:
            continue
        out.append({"table": os.fspath(p), "vm": m.get("vm"), "source_path": m.get("source_path"), "damage": d})
        if os.fspath(p) not in _WARNED:
            _WARNED.add(os.fspath(p))
            print(
                f"pagecore: WARNING: {os.fspath(p)}: hashed from a damaged dump ({d}): its numbers describe only "
                "the pages that could be read",
                file=sys.stderr,
            )
    return out


def _kind(path: Path) -> str:
    """``page table`` (a Parquet file) or ``dump``: what `host` was given at ``path``."""
    if not os.access(path, os.R_OK) or os.path.isdir(path):
        return "file"
    return "page table" if is_page_table(path) else "dump"


def source_identity(meta: dict) -> tuple | None:
    """``(source_path, source_size, source_digest)`` of the dump a page table was hashed from, or
    None when its metadata does not record all three (live reads, imported traces, synthetic
    tables): two tables with one identity read the same guest."""
    ident = (meta.get("source_path"), meta.get("source_size"), meta.get("source_digest"))
    return ident if all(ident) else None


def _dump_keys(meta: dict) -> list[tuple]:
    """What identifies the dump a table was hashed from: its recorded path, size and sample
    digest and, while that path still holds a file of that size, the file itself (device and
    inode, with the digest): a dump hashed once through a symbolic or hard link is the same dump."""
    ident = source_identity(meta)
    if ident is None:
        return []  # nothing to compare
    keys = [("source", *ident)]
    # a VMware guest's memory is read through its .vmss (format vmware, recording its .vmem) or as
    # its flat .vmem (raw): either way the .vmem file is the guest
    vmem = meta.get("vmem_path") or (ident[0] if str(ident[0]).endswith(".vmem") else None)
    if vmem:
        keys.append(("vmem", os.path.abspath(vmem)))
        with contextlib.suppress(OSError):
            st = os.stat(vmem)
            keys.append(("vmem file", st.st_dev, st.st_ino))
    try:
        st = os.stat(ident[0])
    except OSError:
        return keys
    if st.st_size == ident[1]:
        keys.append(("file", st.st_dev, st.st_ino, ident[2]))
    return keys


def _check_distinct_dumps(paths: Sequence[Path], metas: Sequence[dict]) -> None:
    """Refuse two tables hashed from one dump file (same recorded path, size and sample digest,
    or the same file reached through a link) under two VM names: every page of it would count as
    shared between two VMs."""
    seen: dict[tuple, int] = {}
    for i, m in enumerate(metas):
        for key in _dump_keys(m):
            if key in seen and metas[seen[key]].get("vm") != m.get("vm"):  # one name: a duplicate-frame error
                j = seen[key]
                raise InputError(
                    paths[i], f"hashed from the same dump as {paths[j]} ({m.get('source_path')}; VM {m.get('vm')!r} "
                    f"and {metas[j].get('vm')!r}): one guest given twice would count all its pages as shared",
                    hint="give each dump once (identical guests: `host --replicas identical`, or copies of the dump)",
                )  # fmt: skip
            seen[key] = i


def read_page_tables(paths: Iterable[str | os.PathLike], columns: Sequence[str] | None = None) -> pa.Table:
    """Concatenate page tables (vm dictionaries are unified) after checking they can be compared.

    Refuses (:func:`check_comparable`) tables that cannot be compared, and any (vm, gpfn)
    that occurs twice (duplicated rows, or two tables of one VM). The result's schema metadata
    holds the table's own metadata (one table) or the list of them in the order given.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError(None, "no page tables given")
    check_comparable(paths)
    cols = None if columns is None else list(dict.fromkeys([*columns, "vm", "gpfn"]))
    tables = [read_page_table(p, cols) for p in paths]
    metas = [json.loads((t.schema.metadata or {}).get(META_KEY, b"{}")) for t in tables]
    # one schema for all (vm as plain strings so dictionaries unify), with the fields' units
    fields = {f.name: f for f in PAGE_TABLE_SCHEMA}
    fields["vm"] = fields["vm"].with_type(pa.string())
    names = tables[0].column_names
    casted = []
    for t in tables:
        t = t.select(names).replace_schema_metadata(None)
        casted.append(t.cast(pa.schema([fields.get(n, t.schema.field(n)) for n in names])))
    _check_one_dump_per_vm(tables, paths, metas)
    table = pa.concat_tables(casted)
    _check_unique_frames(table, paths, np.repeat(np.arange(len(tables)), [t.num_rows for t in tables]))
    if columns is not None:
        table = table.select(list(columns))
    meta = metas[0] if len(metas) == 1 else metas
    return table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True)})


def vm_index_dtype(nvm: int):
    """The dtype of VM indices into ``nvm`` names that the counting kernels are handed: uint8 up
    to 256 VMs, uint16 up to 65,536, else int64. The count's one pass reads a page's VM index
    beside its hash (an int64 index is 7 bytes a page more to read and hold: at 50 M pages,
    ``count_sharing`` on one core took 1.08–1.75 times as long with int64 as with uint8, median
    1.18, paired on a loaded machine; ``share`` as a whole was not timed apart); every caller
    handing the kernels one dtype per size keeps one compiled signature (a fresh clone compiles
    each, about 4 CPU-s)."""
    return np.uint8 if nvm <= 1 << 8 else np.uint16 if nvm <= 1 << 16 else np.int64


def vm_index(column) -> tuple[list[str], np.ndarray]:
    """Sorted distinct VM names of a ``vm`` column and each row's index into them
    (:func:`vm_index_dtype`): what ``numpy.unique(names, return_inverse=True)`` gives, without
    making a Python string of every row (Arrow dictionary-encodes the column; issue 18: 10 times
    faster), and in the dtype the counting kernels take, with no second pass to convert it."""
    import pyarrow.compute as pc

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(col) == 0:
        return [], np.zeros(0, vm_index_dtype(0))
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    names = col.dictionary.to_pylist()
    order = sorted(range(len(names)), key=names.__getitem__)
    used = np.bincount(col.indices.to_numpy(zero_copy_only=False), minlength=len(names)) > 0
    # a dictionary may hold names no row uses: rank only the used ones, in sorted order
    pos = np.cumsum(used[order]) - 1  # rank of each sorted name among the used
    code = np.zeros(len(names), vm_index_dtype(int(used.sum())))
    code[order] = pos
    return [names[i] for i in order if used[i]], code[col.indices.to_numpy(zero_copy_only=False)]


def _check_one_dump_per_vm(tables: Sequence[pa.Table], paths: Sequence[Path], metas: Sequence[dict]) -> None:
    """Refuse one VM name in two tables unless both record the same source dump (path, size and
    sample digest): two dumps hashed under one name whose guest frames do not overlap were merged
    into one VM (its VM count, and its sharing counted intra-VM instead of inter-VM), exit 0."""
    import pyarrow.compute as pc

    if len(tables) < 2:
        return
    first: dict[str, int] = {}  # VM name -> the first table holding it
    for i, t in enumerate(tables):
        col = t["vm"].combine_chunks() if t.num_rows else pa.array([], pa.string())
        if pa.types.is_dictionary(col.type):
            col = col.dictionary.take(pc.unique(col.indices))
        for vm in pc.unique(col).to_pylist():
            j = first.setdefault(vm, i)
            if j == i:
                continue
            a, b = source_identity(metas[j]), source_identity(metas[i])
            if a is not None and a == b:  # parts of one dump (the frame check still refuses an overlap)
                continue
            src_i, src_j = (metas[k].get("source_path") or "no dump recorded" for k in (i, j))
            raise InputError(
                paths[i], f"VM {vm!r} is also in {paths[j]}, which comes from another source ({src_i}, not "
                f"{src_j}): the two would be counted as one VM",
                hint="pass distinct --vm NAMEs when hashing (or importing), one per dump",
            )  # fmt: skip


def _check_unique_frames(table: pa.Table, paths: Sequence[Path], source: np.ndarray) -> None:
    """Refuse any (vm, gpfn) that occurs twice; ``source[i]`` is the table of row ``i``."""
    if table.num_rows < 2:
        return
    names, vm_idx = vm_index(table["vm"])
    gpfn = table["gpfn"].to_numpy()
    order = np.lexsort((gpfn, vm_idx))
    dup = (vm_idx[order][1:] == vm_idx[order][:-1]) & (gpfn[order][1:] == gpfn[order][:-1])
    if not dup.any():
        return
    k = int(np.flatnonzero(dup)[0])
    a, b = order[k], order[k + 1]
    vm, frame = str(names[vm_idx[a]]), int(gpfn[a])
    if source[a] != source[b]:
        raise InputError(
            paths[source[b]], f"VM {vm!r} is also in {paths[source[a]]} (guest frame {frame} in both)",
            hint="pass --vm NAME when hashing, so each dump has its own VM name, and give each table once",
        )  # fmt: skip
    raise InputError(
        paths[source[a]], f"guest frame {frame} of VM {vm!r} occurs more than once ({int(dup.sum()):,} repeats)",
        hint="each (vm, gpfn) must be one page: re-run `pagecore hash`",
    )  # fmt: skip


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
