"""Session 22 audit of the scatter / count / gather path (``pagecore.sharing.partition``), the
library API ``pagecore share`` points to for sets larger than one count."""

from __future__ import annotations

import numpy as np
import pytest

from pagecore.errors import InputError
from pagecore.pages.tables import write_page_table
from pagecore.sharing.partition import count_partition, scatter_table


def _table(path, vm, hashes, **meta):
    hashes = np.asarray(hashes, np.uint64)
    write_page_table(
        path, vm, np.arange(len(hashes), dtype=np.uint64), hashes, hashes == 0, {"hash_only": True, **meta}
    )
    return path


def test_count_partition_refuses_a_table_scattered_twice(tmp_path):
    """A page table scattered into two files (or one file given twice) had its pages counted twice:
    3 tables of 4 pages gave 16 pages, exit 0; `share` refuses a table given twice."""
    names = ["a", "b"]
    a = _table(tmp_path / "a.parquet", "a", [1, 2, 3, 4])
    b = _table(tmp_path / "b.parquet", "b", [1, 2, 5, 6])
    for src, out in ((a, "s_a.parquet"), (b, "s_b.parquet"), (a, "s_a2.parquet")):
        scatter_table(src, tmp_path / out, names, 0)
    assert count_partition([tmp_path / "s_a.parquet", tmp_path / "s_b.parquet"], 0).to_dict()["total_pages"] == 8
    with pytest.raises(InputError, match="give each page table once"):
        count_partition([tmp_path / "s_a.parquet", tmp_path / "s_b.parquet", tmp_path / "s_a2.parquet"], 0)
    with pytest.raises(InputError, match="give each page table once"):
        count_partition([tmp_path / "s_a.parquet", tmp_path / "s_a.parquet", tmp_path / "s_b.parquet"], 0)


@pytest.mark.parametrize(("key", "value"), [("hash_bits", 32), ("hash_key_id", "k1"), ("hash_algorithm", "other")])
def test_count_partition_refuses_hashes_of_another_kind(tmp_path, key, value):
    """A 32-bit table's scatter file beside a 64-bit one's was counted hash by hash at the narrower
    width (exit 0); `share` refuses tables whose hashes are not comparable."""
    names = ["a", "b"]
    a = _table(tmp_path / "a.parquet", "a", [1, 2, 3, 4])
    b = _table(tmp_path / "b.parquet", "b", [1, 2, 5, 6], **{key: value})
    scatter_table(a, tmp_path / "s_a.parquet", names, 0)
    scatter_table(b, tmp_path / "s_b.parquet", names, 0)
    with pytest.raises(InputError, match=f"{key} .* not comparable"):
        count_partition([tmp_path / "s_a.parquet", tmp_path / "s_b.parquet"], 0)


def test_count_partition_refuses_one_vm_in_two_tables(tmp_path):
    """Two dumps hashed under one VM name: `share` refuses them; scattered, their pages were counted
    as one VM's (the 2 pages of content 1 as intra-VM sharing), exit 0."""
    names = ["a", "b"]
    a1 = _table(tmp_path / "a1.parquet", "a", [1, 2, 3, 4])
    a2 = _table(tmp_path / "a2.parquet", "a", [1, 5, 6, 7])
    b = _table(tmp_path / "b.parquet", "b", [8, 9])
    for src in (a1, a2, b):
        scatter_table(src, tmp_path / f"s_{src.name}", names, 1)
    assert count_partition([tmp_path / "s_a1.parquet", tmp_path / "s_b.parquet"], 0).to_dict()["vms"] == 2
    with pytest.raises(InputError, match=r"VM 'a' is also in .*s_a1\.parquet"):
        count_partition([tmp_path / "s_a1.parquet", tmp_path / "s_b.parquet", tmp_path / "s_a2.parquet"], 1)
