"""Hash, then verify, then count (issue: exact sharing): pagecore against the slow reference,
including forced hash collisions from a deliberately weak hash."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slow_twins import exact_sharing

from pagecore.errors import PagecoreError
from pagecore.experiments.analyze import analyze_page_tables
from pagecore.pages.hashing import hash_pages
from pagecore.pages.tables import write_page_table
from pagecore.sharing import count_sharing
from pagecore.sharing.salting import salt_domains

SCALAR = [
    "total_pages",
    "zero_pages",
    "shared_pages",
    "reclaimed_pages",
    "distinct_pages",
    "ineligible_pages",
    "false_matches",
    "unshared_pages",
    "intra_vm_saved_pages",
    "inter_vm_saved_pages",
    "zero_saved_pages",
    "inter_vm_shared_pages",
]


def weak_hash(pages: np.ndarray) -> np.ndarray:
    """A deliberately weak 'hash': the page's first byte. Collides all the time."""
    return pages[:, 0].astype(np.uint64)


def make_set(tmp_path, vm_pages: dict[str, np.ndarray], hasher=weak_hash):
    """Write each VM's pages as a raw dump plus a page table made with ``hasher``."""
    tables, ref = [], []
    for name, pages in vm_pages.items():
        dump = tmp_path / f"{name}.raw"
        dump.write_bytes(pages.tobytes())
        h = hasher(pages)
        z = ~pages.any(axis=1)
        table = tmp_path / f"{name}.parquet"
        write_page_table(
            table,
            name,
            np.arange(len(pages), dtype=np.uint64),
            h,
            z,
            {"source_path": str(dump), "source_size": dump.stat().st_size, "format": "raw"},
        )
        tables.append(table)
        ref.append((name, [(i, pages[i].tobytes(), int(h[i])) for i in range(len(pages))]))
    return tables, ref


def check(tables, ref, rehash=weak_hash, **kw):
    """``rehash``: the hash the tables were made with (verification re-hashes every page it reads)."""
    args = {k: v for k, v in kw.items() if k != "domain"}
    got = analyze_page_tables(tables, verify="yes", top_n=3, rehash=rehash, **args)
    want = exact_sharing(
        ref, use_zero_pages=kw.get("use_zero_pages", False), max_page_sharing=kw.get("max_page_sharing", 256)
    )
    for k in SCALAR:
        assert got[k] == want[k], k
    for k, v in want["ksm"].items():
        assert got["ksm"][k] == v, k
    # every page accounted for
    assert got["unshared_pages"] + got["shared_pages"] == got["total_pages"]
    assert got["distinct_pages"] + got["reclaimed_pages"] == got["total_pages"]
    assert got["intra_vm_saved_pages"] + got["inter_vm_saved_pages"] == got["reclaimed_pages"]
    assert got["zero_saved_pages"] + got["nonzero_saved_pages"] == got["reclaimed_pages"]
    assert sum(v["total_pages"] for v in got["by_vm"].values()) == got["total_pages"]
    assert sum(v["esxtop"]["SHRDSVD_mb"] for v in got["by_vm"].values()) == pytest.approx(got["esxtop"]["SHRDSVD_mb"])
    assert got["verified"] is True
    return got


def _pages(rng, n, alphabet):
    """n pages drawn from ``alphabet`` distinct contents (content 0 is the zero page)."""
    uniq = rng.integers(0, 256, size=(alphabet, 4096), dtype=np.uint8)
    uniq[0] = 0
    return uniq[rng.integers(0, alphabet, size=n)]


def test_forced_collisions_are_found_and_made_ineligible(tmp_path, rng):
    tables, ref = make_set(tmp_path, {"a": _pages(rng, 300, 60), "b": _pages(rng, 200, 60)})
    got = check(tables, ref)
    # pages of other contents under a colliding hash are not lost: they share among themselves
    assert got["false_matches"] > 0 and got["ineligible_pages"] == 0


def test_without_verification_the_weak_hash_overcounts(tmp_path, rng):
    tables, ref = make_set(tmp_path, {"a": _pages(rng, 300, 60)})
    unverified = analyze_page_tables(tables, verify="no")
    assert unverified["verified"] is False and unverified["false_matches"] == 0
    assert unverified["reclaimed_pages"] > exact_sharing(ref)["reclaimed_pages"]


def test_real_hash_agrees_exactly(tmp_path, rng):
    tables, ref = make_set(
        tmp_path,
        {"a": _pages(rng, 200, 30), "b": _pages(rng, 150, 30), "c": _pages(rng, 5, 3)},
        hasher=lambda p: hash_pages(p)[0],
    )
    got = check(tables, ref, rehash=None)
    assert got["false_matches"] == 0


@pytest.mark.parametrize(
    "case",
    ["all-zero", "all-identical", "one-page", "one-vm-unique", "max-page-sharing"],
)
def test_named_edge_cases(tmp_path, rng, case):
    if case == "all-zero":
        vm = {"a": np.zeros((40, 4096), np.uint8), "b": np.zeros((10, 4096), np.uint8)}
    elif case == "all-identical":
        vm = {"a": np.repeat(_pages(rng, 1, 2)[:1] | 1, 70, axis=0)}
    elif case == "one-page":
        vm = {"a": _pages(rng, 1, 5)}
    elif case == "one-vm-unique":
        vm = {"a": rng.integers(0, 256, size=(20, 4096), dtype=np.uint8)}
    else:
        vm = {"a": np.repeat(np.full((1, 4096), 7, np.uint8), 600, axis=0)}
    tables, ref = make_set(tmp_path, vm, hasher=lambda p: hash_pages(p)[0])
    for uzp in (False, True):
        got = check(tables, ref, rehash=None, use_zero_pages=uzp, max_page_sharing=256)
    if case == "max-page-sharing":
        assert got["ksm"]["pages_shared"] == 3 and got["ksm"]["pages_sharing"] == 597


def test_ksm_oracle():
    """100 identical pages -> pages_shared 1, pages_sharing 99; with 50 zero and
    use_zero_pages=1 -> ksm_zero_pages 50, pages_shared 1, pages_sharing 49."""
    h = np.full(100, 42, np.uint64)
    k = count_sharing(h, np.zeros(100, bool), np.zeros(100, int), ["vm"]).to_dict()["ksm"]
    assert (k["pages_shared"], k["pages_sharing"], k["ksm_zero_pages"]) == (1, 99, 0)
    h[:50] = 0
    z = np.arange(100) < 50
    k = count_sharing(h, z, np.zeros(100, int), ["vm"], use_zero_pages=True).to_dict()["ksm"]
    assert (k["ksm_zero_pages"], k["pages_shared"], k["pages_sharing"]) == (50, 1, 49)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 12)), min_size=0, max_size=200),
    uzp=st.booleans(),
    mps=st.integers(2, 5),
)
def test_counts_match_reference_on_random_sets(data, uzp, mps):
    """count_sharing on (vm, content) pairs equals the reference for any mix (no false matches)."""
    vm = np.array([v for v, _ in data], dtype=np.int64)
    content = np.array([c for _, c in data], dtype=np.uint64)
    zero = content == 0
    got = count_sharing(content, zero, vm, ["a", "b", "c", "d"], use_zero_pages=uzp, max_page_sharing=mps).to_dict()
    pages = {n: [] for n in "abcd"}
    for i, (v, c) in enumerate(data):
        pages["abcd"[v]].append((i, bytes([c]) * 4096 if c else bytes(4096), c))
    want = exact_sharing(list(pages.items()), use_zero_pages=uzp, max_page_sharing=mps)
    for k in SCALAR:
        assert got[k] == want[k], k
    for k, v in want["ksm"].items():
        assert got["ksm"][k] == v, k


def test_partition_sums_equal_whole(rng):
    """Counts over disjoint hash ranges add up to the counts of the whole set (gather step)."""
    n = 5000
    h = rng.integers(0, 900, size=n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = h == 0
    vm = rng.integers(0, 3, size=n)
    whole = count_sharing(h, z, vm, ["a", "b", "c"], top_n=5)
    parts = None
    top = h >> np.uint64(62)
    for p in range(4):
        sel = top == p
        c = count_sharing(h[sel], z[sel], vm[sel], ["a", "b", "c"], top_n=5)
        parts = c if parts is None else parts + c
    a, b = whole.to_dict(), parts.to_dict()
    for name in a["by_vm"]:  # float sums may differ in the last bit
        assert a["by_vm"][name]["esxtop"].pop("SHRDSVD_mb") == pytest.approx(
            b["by_vm"][name]["esxtop"].pop("SHRDSVD_mb")
        )
    assert a == b


def test_salting_modes(tmp_path, rng):
    common = _pages(rng, 50, 10)
    tables, _ = make_set(
        tmp_path, {"a": common, "b": common.copy(), "c": common.copy()}, hasher=lambda p: hash_pages(p)[0]
    )
    base = analyze_page_tables(tables, salting_mode=0)
    assert base["salting"]["reclaimed_pages_salted"] == base["reclaimed_pages"]
    m2 = analyze_page_tables(tables, salting_mode=2)["salting"]
    assert m2["cross_vm_shared_pages_salted"] == 0
    assert m2["reclaimed_pages_salted"] == base["intra_vm_saved_pages"]
    m2s = analyze_page_tables(tables, salting_mode=2, salts={"a": "x", "b": "x"})["salting"]
    assert 0 < m2s["reclaimed_pages_salted"] < base["reclaimed_pages"]
    m1 = analyze_page_tables(tables, salting_mode=1, salts={"c": "y"})["salting"]
    assert m1["domains"]["a"] == m1["domains"]["b"] != m1["domains"]["c"]
    assert list(salt_domains(["a", "b"], 1)) == [0, 0]
    with pytest.raises(ValueError, match="ShareForceSalting"):
        salt_domains(["a"], 3)


def test_verify_needs_the_dump(tmp_path, rng):
    tables, _ = make_set(tmp_path, {"a": _pages(rng, 20, 5)})
    (tmp_path / "a.raw").unlink()
    with pytest.raises(PagecoreError, match="dump changed since hashing: source dump not found"):
        analyze_page_tables(tables, verify="yes")
    assert analyze_page_tables(tables)["verified"] is False  # auto falls back, flagged


def test_cli_json_has_every_key(tmp_path, rng):
    tables, _ = make_set(tmp_path, {"a": _pages(rng, 30, 6)}, hasher=lambda p: hash_pages(p)[0])
    proc = subprocess.run(
        [sys.executable, "-m", "pagecore", "share", *map(str, tables), "--format", "json", "--use-zero-pages"],
        capture_output=True,
        text=True,
        check=True,
    )
    d = json.loads(proc.stdout)
    for k in (
        "total_pages",
        "zero_pages",
        "shared_pages",
        "reclaimed_pages",
        "intra_vm_saved_pages",
        "inter_vm_saved_pages",
        "false_matches",
    ):
        assert isinstance(d[k], int), k
    assert set(d["ksm"]) >= {"pages_shared", "pages_sharing", "pages_unshared", "ksm_zero_pages"}
    assert d["ksm"]["use_zero_pages"] == 1 and d["verified"] is True
