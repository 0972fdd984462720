"""Issue 18 audit C of bigcount's count jobs (``pagecore.sharing.partition.count_partition``)."""

from __future__ import annotations

import numpy as np
import pytest

from pagecore.errors import InputError
from pagecore.pages.tables import vm_index_dtype, write_page_table
from pagecore.sharing import partition
from pagecore.sharing.counts import count_sharing


def _table(path, vm, hashes):
    hashes = np.asarray(hashes, np.uint64)
    write_page_table(path, vm, np.arange(len(hashes), dtype=np.uint64), hashes, hashes == 0, {"hash_only": True})
    return path


@pytest.mark.parametrize("nvm", [3, 300])
@pytest.mark.parametrize("files", [1, 2])
def test_count_partition_hands_the_counter_shares_vm_index(tmp_path, monkeypatch, nvm, files):
    """bigcount's count jobs handed ``count_sharing`` the scatter files' uint32 VM index, where
    ``share`` (and ``pagecore bench count``, which claims to measure bigcount's path) hand the
    compact one: another kernel signature and more bytes a page to read. The counts do not change."""
    from pagecore.experiments.analyze import load_pages

    names = [f"v{i:03d}" for i in range(nvm)]
    a = _table(tmp_path / "a.parquet", names[0], [1, 2, 3, 0, 7, 7])
    b = _table(tmp_path / "b.parquet", names[-1], [1, 2, 5, 0, 9])
    srcs = [a, b][:files]
    scattered = []
    for src in srcs:
        scattered.append(tmp_path / f"s_{src.name}")
        partition.scatter_table(src, scattered[-1], names, 0)
    seen = []

    def spy(h, z, vm, vm_names, **kw):
        seen.append(vm.dtype)
        return count_sharing(h, z, vm, vm_names, **kw)

    monkeypatch.setattr(partition, "count_sharing", spy)
    got = partition.count_partition(scattered, 0).to_dict()
    assert seen == [np.dtype(vm_index_dtype(nvm))]
    if nvm <= 256:  # share's own index of these tables
        assert seen[0] == load_pages(srcs)[2].dtype
    # the old path: the files' uint32 index, counted directly
    h, z, vm = [], [], []
    for s in scattered:
        t = partition.pq.read_table(s)
        h.append(t["hash"].to_numpy()), z.append(t["zero"].to_numpy(zero_copy_only=False))
        vm.append(t["vm"].to_numpy())
    want = count_sharing(np.concatenate(h), np.concatenate(z), np.concatenate(vm).astype(np.uint32), names)
    assert want.to_dict() == got


def test_count_partition_refuses_a_vm_index_beyond_the_list(tmp_path):
    """A narrower index would wrap a corrupt file's index 300 to VM 44 (uint8) and count it there."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["a", "b"]
    partition.scatter_table(_table(tmp_path / "a.parquet", "a", [1, 2]), tmp_path / "s.parquet", names, 0)
    f = pq.ParquetFile(tmp_path / "s.parquet")
    t = f.read().set_column(2, "vm", pa.array([0, 300], pa.uint32()))
    pq.write_table(t.replace_schema_metadata(None), tmp_path / "bad.parquet")
    bad = pq.ParquetFile(tmp_path / "bad.parquet")
    with pq.ParquetWriter(tmp_path / "bad2.parquet", bad.schema_arrow) as w:
        w.write_table(bad.read())
        w.add_key_value_metadata({partition.META_KEY: f.metadata.metadata[partition.META_KEY]})
    with pytest.raises(InputError, match="VM index 300 is beyond the set's 2 VMs"):
        partition.count_partition([tmp_path / "bad2.parquet"], 0)


def _rewrite(src, dst, table, meta=None):
    """``table`` written as a scatter file with ``src``'s metadata (or ``meta``), one row group per
    partition as ``scatter_table`` writes them."""
    import json

    import pyarrow.parquet as pq

    m = partition.scatter_metadata(src) if meta is None else meta
    with pq.ParquetWriter(dst, partition.SCATTER_SCHEMA, **partition.SCATTER_WRITE_OPTIONS) as w:
        at = 0
        for rows in m["rows"]:
            w.write_table(table.slice(at, rows), row_group_size=max(1, rows))
            at += rows
        w.add_key_value_metadata({partition.META_KEY: json.dumps(m)})
    return dst


def _scattered(tmp_path, bits=1):
    names = ["a", "b"]
    hashes = [1, 2, 3, 0, (1 << 63) | 5, (1 << 63) | 6, 7, 7]
    src = _table(tmp_path / "a.parquet", "a", hashes)
    out = tmp_path / "s.parquet"
    partition.scatter_table(src, out, names, bits)
    return out


@pytest.mark.parametrize("files", [1, 2])
def test_count_partition_refuses_a_flipped_hash_byte(tmp_path, files):
    """Scatter files stored the hash column plain without checksums: a flipped byte in it was
    counted as another content (session 24 left it open). Their data pages now carry CRCs."""
    s = _scattered(tmp_path)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(s).metadata.row_group(0).num_rows == 6
    data = bytearray(s.read_bytes())
    # the hash column's plain little-endian values of row group 0, in the table's order: flip a
    # byte of the first 7
    plain = b"".join(v.to_bytes(8, "little") for v in (1, 2, 3, 0, 7, 7))
    at = bytes(data).find(plain)
    assert at > 0
    data[at + 32] ^= 0x10
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(bytes(data))
    paths = [bad]
    if files == 2:  # and another table of the set: VM b's
        paths.append(tmp_path / "o.parquet")
        partition.scatter_table(_table(tmp_path / "b.parquet", "b", [9]), paths[-1], ["a", "b"], 1)
    with pytest.raises(InputError, match="corrupted scatter file: row group 0: a data page fails its checksum"):
        partition.count_partition(paths, 0)
    assert partition.count_partition([s], 0).totals[0] == 6  # the intact file counts


def test_count_partition_refuses_a_hash_in_another_partition(tmp_path):
    """A row group holding a hash of another partition split its content's copies over two
    count jobs (each counted it apart): refused, naming the hash and its partition."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    s = _scattered(tmp_path)
    t = pq.read_table(s)
    h = t["hash"].to_numpy().copy()
    h[0] = (1 << 63) | 9  # a partition-1 hash in row group 0
    col = pa.array(h, pa.uint64())
    bad = _rewrite(s, tmp_path / "bad.parquet", t.set_column(0, partition.SCATTER_SCHEMA.field("hash"), col))
    want = r"row group 0 holds 1 hashes of other partitions \(the first: 0x8000000000000009, partition 1\)"
    with pytest.raises(InputError, match=want):
        partition.count_partition([bad], 0)
    assert partition.count_partition([bad], 1).totals[0] == 2  # partition 1 itself is intact


def test_count_partition_refuses_rows_unlike_the_metadata_with_one_file(tmp_path):
    """With several files the row count of a row group was checked; with one it was not (the
    counts then held fewer or more pages than the set, exit 0)."""
    import json

    import pyarrow.parquet as pq

    s = _scattered(tmp_path)
    m = partition.scatter_metadata(s)
    t = pq.read_table(s)
    bad = _rewrite(s, tmp_path / "bad.parquet", t, meta=m)
    m2 = dict(m, rows=[m["rows"][0] + 1, m["rows"][1]])
    f = pq.ParquetFile(bad)
    with pq.ParquetWriter(tmp_path / "bad2.parquet", f.schema_arrow, **partition.SCATTER_WRITE_OPTIONS) as w:
        for g in range(f.metadata.num_row_groups):
            rg = f.read_row_group(g)
            w.write_table(rg, row_group_size=max(1, rg.num_rows))
        w.add_key_value_metadata({partition.META_KEY: json.dumps(m2)})
    with pytest.raises(InputError, match="row group 0 holds 6 rows, its metadata says 7"):
        partition.count_partition([tmp_path / "bad2.parquet"], 0)


def test_count_partition_refuses_another_schema(tmp_path):
    """A scatter file whose vm column is not uint32 (here int64) is refused by name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    s = _scattered(tmp_path, bits=0)
    t = pq.read_table(s)
    t = t.set_column(2, "vm", pa.array(t["vm"].to_numpy().astype(np.int64)))
    with pq.ParquetWriter(tmp_path / "bad.parquet", t.schema) as w:
        w.write_table(t)
        w.add_key_value_metadata({partition.META_KEY: pq.ParquetFile(s).metadata.metadata[partition.META_KEY]})
    with pytest.raises(InputError, match="scatter column 'vm': int64"):
        partition.count_partition([tmp_path / "bad.parquet"], 0)


def test_scatter_files_without_the_vm_list_count_as_with_it(tmp_path):
    """bigcount's scatter files hold the VM list's digest, not the list (4,096 files of 262,144 VMs
    held 12.6 GB of lists, each parsed by every count job): given the list, the counts are the
    same; without it, or with another list, they are refused."""
    import json

    import pyarrow.parquet as pq

    names = ["a", "b", "c"]
    a = _table(tmp_path / "a.parquet", "a", [1, 2, 3, 0, (1 << 63) | 7])
    b = _table(tmp_path / "b.parquet", "c", [1, 5, 0, (1 << 63) | 7])
    with_names, without = [], []
    for t in (a, b):
        with_names.append(tmp_path / f"w_{t.name}")
        without.append(tmp_path / f"n_{t.name}")
        partition.scatter_table(t, with_names[-1], names, 1)
        meta = partition.scatter_table(t, without[-1], names, 1, store_names=False)
        assert "vm_names" not in meta and meta["vms"] == 3
        stored = json.loads(pq.ParquetFile(without[-1]).metadata.metadata[partition.META_KEY])
        assert "vm_names" not in stored and stored["vm_list_sha256"] == partition.vm_list_digest(names)
    for p in (0, 1):
        want = partition.count_partition(with_names, p).to_dict()
        assert partition.count_partition(without, p, vm_names=names).to_dict() == want
        assert partition.count_partition(with_names, p, vm_names=names).to_dict() == want
        # one file of each kind: the same list
        assert partition.count_partition([with_names[0], without[1]], p).to_dict() == want
    with pytest.raises(InputError, match=r"scattered without the set's VM list \(store_names=False\): pass vm_names"):
        partition.count_partition(without, 0)
    with pytest.raises(ValueError, match="scatter files disagree on VM list"):
        partition.count_partition(without, 0, vm_names=["a", "c", "b"])  # another order: other VMs
    with pytest.raises(ValueError, match="scatter files disagree on VM list"):
        partition.count_partition(with_names, 0, vm_names=["a", "b"])
