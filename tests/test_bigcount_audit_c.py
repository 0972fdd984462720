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
