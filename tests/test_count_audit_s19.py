"""Session 19 audit of the counting path users run (``pagecore share``, ``count_sharing`` through
the library API, partitions summed, ``bigcount``'s plan, ``pagecore bench count``): each test is a
case that gave a wrong number with exit 0, a traceback or a job that failed after the run
started, and now gives the right number or one clear line before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import cli
from slow_twins_count import count_sharing_twin
from test_count_kernel import check

from pagecore.sharing import count_sharing
from pagecore.sharing.counts import T_SHARED, T_ZERO


# ----------------------------------------------------------------------------- count_sharing's API
def test_fractional_salts_are_refused_not_truncated():
    """Salts 0.5 and 0.7 were cast to 0 and 0: the pages of two sharing domains shared (4 shared
    pages instead of 2, exit 0). Whole floats still count as the integers they are."""
    h = np.array([1, 1, 2, 2, 3], np.uint64)
    vm = np.zeros(5, np.int64)
    for bad in ([0.5, 0.7, 0, 0, 0], [np.nan, 0, 0, 0, 0], [np.inf, 0, 0, 0, 0], [2.0**64, 0, 0, 0, 0]):
        with pytest.raises(ValueError, match="salt must hold whole numbers"):
            count_sharing(h, None, vm, ["a"], salt=np.array(bad))
    with pytest.raises(ValueError, match="salt must hold whole numbers"):
        count_sharing(h, None, vm, ["a"], salt=np.array(["x"] * 5))
    whole = count_sharing(h, None, vm, ["a"], salt=np.array([0.0, 1.0, 0, 0, 0]))
    assert whole.t(T_SHARED) == count_sharing(h, None, vm, ["a"], salt=np.array([0, 1, 0, 0, 0])).t(T_SHARED) == 2
    check(h, None, vm, 1, salt=np.array([0, 1, 0, 0, 0]))


def test_pages_without_vm_need_a_vm_name():
    """``vm=None`` puts every page in VM 0; with no VM names the zero pages and ineligible pages
    (counted per VM) were lost (zero_pages 0 of 1, exit 0), the ineligible one written past the
    end of the per-VM array."""
    h = np.array([1, 1, 2, 2, 0], np.uint64)
    z = h == 0
    for kw in ({}, {"eligible": np.array([1, 0, 1, 1, 1], bool)}):
        with pytest.raises(ValueError, match="vm_names is empty"):
            count_sharing(h, z, None, [], **kw)
    assert count_sharing(h, z, None, ["all"]).t(T_ZERO) == 1
    assert count_sharing(np.zeros(0, np.uint64), None, None, []).t(T_ZERO) == 0  # no pages, no VM: fine


def test_duplicate_vm_names_are_refused():
    """Two VMs named alike: ``to_dict()["by_vm"]`` kept one of them (2 of 5 pages, exit 0)."""
    h = np.array([1, 1, 2, 2, 3], np.uint64)
    with pytest.raises(ValueError, match="vm_names must be distinct, 'a' is given twice"):
        count_sharing(h, None, np.array([0, 1, 0, 1, 0]), ["a", "a"])


def test_max_page_sharing_must_be_a_whole_number_the_kernel_takes():
    """Above int64 it was an OverflowError (a Numba TypingError from ``share``); 2.5 was taken as 2."""
    h = np.array([1, 1, 1, 2], np.uint64)
    for bad in (2**70, 2.5, True, 1):
        with pytest.raises(ValueError, match="max_page_sharing must be"):
            count_sharing(h, None, None, ["a"], max_page_sharing=bad)
    big = count_sharing(h, None, None, ["a"], max_page_sharing=2**63 - 1)  # no cap in effect
    assert big.to_dict()["ksm"]["pages_sharing"] == 2
    for bad in (0, 65, 1.5):
        with pytest.raises(ValueError, match="hash_bits must be"):
            count_sharing(h, None, None, ["a"], hash_bits=bad)


def test_top_n_larger_than_the_pages():
    """``top_n`` is at most the pages' number of contents: 10**20 allocated arrays of that length
    (ValueError "Maximum allowed dimension exceeded" from NumPy; ``share --top`` a traceback)."""
    h = np.array([5, 5, 6, 6, 6, 7], np.uint64)
    huge = count_sharing(h, None, None, ["a"], top_n=10**20)
    assert huge.top == count_sharing(h, None, None, ["a"], top_n=6).top and len(huge.top) == 2
    assert huge.top_n == 10**20


def test_big_endian_arrays_count_as_native_ones():
    """Arrays read from a file in big-endian order: VM indices were a Numba TypingError; hashes
    were refused as not uint64 although they are."""
    rng = np.random.default_rng(3)
    h = rng.integers(0, 40, 500).astype(np.uint64)
    vm = rng.integers(0, 3, 500).astype(np.int32)
    want = count_sharing(h, h == 0, vm, ["a", "b", "c"], top_n=3)
    got = count_sharing(h.astype(">u8"), h == 0, vm.astype(">i4"), ["a", "b", "c"], top_n=3)
    assert np.array_equal(got.totals, want.totals) and np.array_equal(got.per_vm, want.per_vm)
    assert got.top == want.top


# ----------------------------------------------------------------------------- partitions summed
@pytest.mark.parametrize("trial", range(6))
def test_hash_prefix_partitions_with_salts_sum_to_the_in_core_counts(trial):
    """Counts of hash-prefix partitions added up (:meth:`SharingCounts.__add__`, the gather of
    ``bigcount``) equal one count of the whole set, the top contents included, with salts and
    ineligible pages. The top contents were chosen by hash before salt when summed, by salt before
    hash in core: with ties in copies the two lists named different contents."""
    r = np.random.default_rng(40 + trial)
    n = 3000
    h = r.integers(0, 300, n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    vm = np.sort(r.integers(0, 4, n)) if trial % 2 else r.integers(0, 4, n)
    kw = {"salt": r.integers(0, 3, n), "top_n": int(r.integers(1, 8)), "max_page_sharing": 3}
    if trial % 3 == 0:
        kw["eligible"] = r.random(n) > 0.1
    names = [f"vm{i}" for i in range(4)]
    whole = count_sharing(h, h == h[0], vm, names, **kw)
    bits = 1 + trial % 3
    part = (h >> np.uint64(64 - bits)).astype(np.int64)
    total = None
    for p in range(1 << bits):
        m = part == p
        c = count_sharing(h[m], (h == h[0])[m], vm[m], names, **{k: (v[m] if isinstance(v, np.ndarray) else v)
                                                                 for k, v in kw.items()})  # fmt: skip
        total = c if total is None else total + c
    assert np.array_equal(total.totals, whole.totals) and np.array_equal(total.per_vm, whole.per_vm)
    assert total.shrdsvd == pytest.approx(whole.shrdsvd, rel=1e-12)
    assert total.top == whole.top
    twin_top = count_sharing_twin(h, h == h[0], vm, 4, salt=kw["salt"], eligible=kw.get("eligible"),
                                  mps=3, top_n=kw["top_n"])[3]  # fmt: skip
    assert total.top == twin_top


def test_summed_counts_keep_the_narrowest_hash_and_one_page_size():
    h = np.array([1, 1, 2], np.uint64)
    a = count_sharing(h, None, None, ["a"], hash_bits=64)
    b = count_sharing(h, None, None, ["a"], hash_bits=32)
    assert (a + b).hash_bits == (b + a).hash_bits == 32  # expected false matches of the narrower hash
    b.page_size = 2 << 20
    with pytest.raises(ValueError, match="pages"):
        a + b


# ----------------------------------------------------------------------------- pagecore share
def _table(path, vm, hashes):
    from pagecore.pages.tables import write_page_table

    hashes = np.asarray(hashes, np.uint64)
    write_page_table(path, vm, np.arange(len(hashes), dtype=np.uint64), hashes, hashes == 0, {"hash_only": True})
    return str(path)


def test_share_refuses_a_max_page_sharing_ksm_cannot_have(tmp_path):
    """``--max-page-sharing 99999999999999999999999`` was a Numba TypingError traceback (exit 1);
    KSM's knob is a C int."""
    t = _table(tmp_path / "a.parquet", "a", [1, 1, 2, 0, 0])
    for bad in ("99999999999999999999999", str(2**31)):
        proc = cli("share", t, "--max-page-sharing", bad)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.splitlines()[-1].endswith(f"expected a number <= 2,147,483,647, got {int(bad):,}")
    proc = cli("share", t, "--max-page-sharing", str(2**31 - 1), "--format", "json", "-q")
    assert proc.returncode == 0, proc.stderr


def test_share_top_larger_than_any_set(tmp_path):
    """``--top 99999999999999999999`` was a NumPy ValueError traceback; now every shared content."""
    t = _table(tmp_path / "a.parquet", "a", [1, 1, 2, 0, 0, 3])
    proc = cli("share", t, "--top", "99999999999999999999", "--format", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    assert [x["copies"] for x in json.loads(proc.stdout)["top_shared"]] == [2, 2]


# ----------------------------------------------------------------------------- bench count
def test_bench_count_passes_the_vm_index_share_passes(tmp_path):
    """The benchmark's VM index has the dtype ``pagecore share`` hands the kernel (it was uint8
    where share passed int64: the kernel read 8 bytes a page more in share, so the benchmark
    measured a faster path than the one users ran; since session 19 share passes compact indices,
    uint8 up to 256 VMs, and the benchmark the same)."""
    from pagecore.bench.count import make_pages
    from pagecore.experiments.analyze import load_pages

    t = _table(tmp_path / "a.parquet", "a", [1, 1, 2])
    _table(tmp_path / "b.parquet", "b", [1, 3])
    share_vm = load_pages([t, str(tmp_path / "b.parquet")])[2]
    assert make_pages(1000, vms=7)[2].dtype == share_vm.dtype


# ----------------------------------------------------------------------------- scatter, count, gather
def test_gather_sums_each_partition_once(tmp_path):
    """The library's scatter / count / gather of three page tables equals one in-core count of
    them (every counter and the top contents); a partition given twice (a glob over a counts
    directory that also holds an earlier run's files) or missing was summed with exit 0."""
    from pagecore.errors import InputError
    from pagecore.experiments.analyze import load_pages
    from pagecore.sharing.partition import count_partition, gather, load_counts, save_counts, scatter_table

    rng = np.random.default_rng(5)
    tables = [
        _table(tmp_path / f"{vm}.parquet", vm, np.where(rng.random(400) < 0.1, 0, rng.integers(1, 150, 400)))
        for vm in ("a", "b", "c")
    ]
    h, z, vm, names, _ = load_pages(tables)
    want = count_sharing(h, z, vm, names, top_n=6)
    scattered = []
    for t in tables:
        scattered.append(str(tmp_path / f"s_{t.rsplit('/', 1)[1]}"))
        scatter_table(t, scattered[-1], names, 2)
    parts = []
    for p in range(4):
        parts.append(tmp_path / f"part{p}.json")
        save_counts(count_partition(scattered, p, top_n=6), parts[-1])
    assert load_counts(parts[1]).partition == (1, 4)
    got = gather(parts)
    assert np.array_equal(got.totals, want.totals) and np.array_equal(got.per_vm, want.per_vm)
    assert got.top == want.top and got.shrdsvd == pytest.approx(want.shrdsvd)
    with pytest.raises(InputError, match="partition 2 of 4 is also in"):
        gather([*parts, parts[2]])
    with pytest.raises(ValueError, match="partitions missing: 1 of 4"):
        gather(parts[:3])
    (tmp_path / "two").mkdir()
    for t, s in zip(tables, scattered, strict=True):  # the same set in 2 partitions
        scatter_table(t, tmp_path / "two" / s.rsplit("/", 1)[1], names, 1)
    two = tmp_path / "two" / "part0.json"
    save_counts(count_partition([str(p) for p in sorted((tmp_path / "two").glob("s_*"))], 0, top_n=6), two)
    with pytest.raises(InputError, match="counts of 2 partitions beside 4's"):
        gather([*parts, two])


def test_bench_count_refuses_more_pages_than_one_count_takes(capsys):
    """``bench count --pages 1e20`` was a NumPy traceback from making the pages; 2**31 pages were
    made (34 GB) before the counter refused them."""
    from pagecore.bench.count import main

    for pages in ("1e20", str(2**31)):
        with pytest.raises(SystemExit) as e:
            main(["--pages", pages])
        assert e.value.code == 2
        assert "at most 2**31 - 1 pages per count" in capsys.readouterr().err


def test_narrow_hashes_are_partitioned_by_their_own_top_bits(tmp_path):
    """32-bit hashes (Memory Buddies traces) have nothing in the top bits of the uint64: every
    page went to partition 0, so a partition job held the whole set (the counts still added up).
    Partitions now use the top bits of the hash's own width."""
    from pagecore.pages.tables import write_page_table
    from pagecore.sharing.partition import count_partition, gather, save_counts, scatter_table

    rng = np.random.default_rng(9)
    h = rng.integers(1, 2**32, 4000, dtype=np.uint64)
    h[rng.random(4000) < 0.3] = h[0]
    t = tmp_path / "mb.parquet"
    write_page_table(t, "mb", np.arange(4000, dtype=np.uint64), h, np.zeros(4000, bool),
                     {"hash_only": True, "hash_bits": 32})  # fmt: skip
    meta = scatter_table(t, tmp_path / "s.parquet", ["mb"], 3)
    rows = meta["rows"]
    assert sum(rows) == 4000 and max(rows) < 4000 * 0.3 + 4000 / 8 * 1.5, rows
    parts = []
    for p in range(8):
        parts.append(tmp_path / f"c{p}.json")
        save_counts(count_partition([tmp_path / "s.parquet"], p), parts[-1])
    got, want = gather(parts), count_sharing(h, None, None, ["mb"], hash_bits=32)
    assert np.array_equal(got.totals, want.totals) and got.top == want.top and got.hash_bits == 32


def test_share_refuses_a_set_larger_than_one_count_before_reading_it(tmp_path, monkeypatch, capsys):
    """More pages than one count takes (2**31 - 1) were all loaded (17 bytes a page) before the
    counter's ValueError came out as a traceback; now one line from the tables' row counts."""
    from pagecore.cli import main
    from pagecore.sharing import counts

    a = _table(tmp_path / "a.parquet", "a", [1, 1, 2, 0])
    b = _table(tmp_path / "b.parquet", "b", [1, 3, 0])
    monkeypatch.setattr(counts, "MAX_PAGES", 6)
    assert main(["share", a, b, "-q", "--format", "json"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pagecore: error: 7 pages in 2 page tables: one count takes at most 6;") and "\n" not in err
    with pytest.raises(ValueError, match="at most 2\\*\\*31 - 1 pages per call"):
        count_sharing(np.arange(7, dtype=np.uint64), None, None, ["a"])
    monkeypatch.setattr(counts, "MAX_PAGES", 7)
    assert main(["share", a, b, "-q", "--format", "json"]) == 0


def test_compact_vm_indices_keep_their_values_and_counts():
    """share and the Figure 4 sweep hand the kernel VM indices in the narrowest dtype (uint8 up to
    256 VMs, uint16 up to 65,536, else int64): the values, and every count, are those of int64."""
    from pagecore.sharing.counts import compact_vm_index, count_sharing

    for nvm, dt in ((1, np.uint8), (256, np.uint8), (257, np.uint16), (65536, np.uint16), (65537, np.int64)):
        idx = np.array([0, nvm - 1, nvm // 2], np.int64)
        got = compact_vm_index(idx, nvm)
        assert got.dtype == dt and got.tolist() == idx.tolist()
    with pytest.raises(ValueError, match=r"in \[0, 256\)"):
        compact_vm_index(np.array([0, 256]), 256)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        compact_vm_index(np.array([-1, 2]), 3)
    rng = np.random.default_rng(3)
    h = rng.integers(1, 50, 3000).astype(np.uint64)
    z = h == 7
    vm = np.repeat(np.arange(300), 10)
    names = [f"v{i}" for i in range(300)]
    a = count_sharing(h, z, vm.astype(np.int64), names).to_dict()
    b = count_sharing(h, z, compact_vm_index(vm, 300), names).to_dict()
    assert a == b
