"""Page-table files: the lean Parquet writer writes the bytes pyarrow's own writer writes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pagecore.pages import tables
from pagecore.pages.tables import (
    PAGE_TABLE_SCHEMA,
    WRITE_OPTIONS,
    LeanParquetWriter,
    PageTableWriter,
    page_table_batch,
    parquet_writer,
    read_page_table,
)


def _batches(n, seed, schema=PAGE_TABLE_SCHEMA, step=1000):
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    z = rng.random(n) < 0.3
    h[z] = 2**63 + 1  # the zero page's hash: one value, on zero rows only (read_page_table checks it)
    g = rng.permutation(n).astype(np.uint64)
    extra = {f.name: rng.integers(0, 4096, size=n).astype(f.type.to_pandas_dtype()) for f in list(schema)[4:]}
    for lo in range(0, n, step):
        e = {k: v[lo : lo + step] for k, v in extra.items()}
        yield page_table_batch("vm-a", g[lo : lo + step], h[lo : lo + step], z[lo : lo + step], e, schema)


def _write(cls, path, schema, options, n, seed, meta):
    w = cls(path, schema, **options)
    for b in _batches(n, seed, schema):
        w.write_batch(b, row_group_size=1500)
    w.add_key_value_metadata(meta)
    w.close()
    return path.read_bytes()


@pytest.mark.parametrize("options", [WRITE_OPTIONS, {}, {"compression": "zstd", "write_statistics": False}])
@pytest.mark.parametrize("extra", [False, True])
@pytest.mark.parametrize("n", [0, 1, 4567])
def test_lean_writer_writes_pyarrows_bytes(tmp_path, options, extra, n):
    schema = PAGE_TABLE_SCHEMA
    if extra:
        schema = pa.schema([*schema, pa.field("csize_lz4", pa.uint16(), nullable=False)])
    meta = {"pagecore": '{"vm": "vm-a"}', "other": "x"}
    ours = _write(LeanParquetWriter, tmp_path / "a.parquet", schema, options, n, n, meta)
    theirs = _write(pq.ParquetWriter, tmp_path / "b.parquet", schema, options, n, n, meta)
    assert ours == theirs
    assert pq.read_table(tmp_path / "a.parquet").num_rows == n


def test_lean_writer_refuses_a_batch_of_another_schema(tmp_path):
    w = LeanParquetWriter(tmp_path / "a.parquet", PAGE_TABLE_SCHEMA, **WRITE_OPTIONS)
    other = pa.schema([*PAGE_TABLE_SCHEMA, pa.field("x", pa.uint8(), nullable=False)])
    with pytest.raises(ValueError, match="schema"):
        w.write_batch(next(_batches(10, 0, other)))
    w.close()


def test_falls_back_to_pyarrows_writer(tmp_path, monkeypatch):
    """Without the private class (another pyarrow), tables are written by the public one."""

    def missing(*a, **k):
        raise ImportError("no pyarrow._parquet")

    monkeypatch.setattr(tables, "LeanParquetWriter", missing)
    assert isinstance(parquet_writer(tmp_path / "x.parquet", PAGE_TABLE_SCHEMA), pq.ParquetWriter)
    with PageTableWriter(tmp_path / "t.parquet", "vm-a") as w:
        for b in _batches(100, 1):
            w.write(b.column(1).to_numpy(), b.column(2).to_numpy(), b.column(3).to_numpy(zero_copy_only=False))
    assert read_page_table(tmp_path / "t.parquet").num_rows == 100


def test_page_table_writer_uses_the_lean_writer_and_the_file_reads_back(tmp_path):
    with PageTableWriter(tmp_path / "t.parquet", "vm-a", {"format": "raw"}) as w:
        assert isinstance(w._writer, LeanParquetWriter)
        w.write(np.arange(5, dtype=np.uint64), np.arange(5, dtype=np.uint64) * 7, np.zeros(5, bool))
    t = read_page_table(tmp_path / "t.parquet")
    assert t.column("hash").to_pylist() == [0, 7, 14, 21, 28]
    assert tables.page_table_metadata(tmp_path / "t.parquet")["format"] == "raw"


def test_hashing_a_dump_does_not_import_pyarrow_parquet(tmp_path):
    """The reason for the lean writer: `pagecore hash` never imports pyarrow.parquet."""
    import subprocess
    import sys

    (tmp_path / "d.raw").write_bytes(bytes(4096) + b"x" * 4096)
    code = (
        "import sys; from pagecore.cli import main; "
        f"rc = main(['hash', {str(tmp_path / 'd.raw')!r}, '-o', {str(tmp_path / 'o.parquet')!r}, '--quiet']); "
        "print(rc, 'pyarrow.parquet' in sys.modules, 'pyarrow.fs' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "False", "False"]
    assert read_page_table(tmp_path / "o.parquet").num_rows == 2
