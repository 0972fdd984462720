"""Live page tables without a guest: KSM eligibility from the host view, and series of reads.

Small synthetic tables stand in for what ``pagecore live`` writes (host-view columns, the read
time ``taken_at``), so every expected count below is worked out by hand in the test.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pagecore.cli import main
from pagecore.errors import InputError
from pagecore.pages.tables import write_page_table
from pagecore.sharing.pagehistory import read_history


def table(path, vm, hashes, *, gpfn=None, present=None, host_zero=None, meta=None):
    """A page table; with ``present`` also the host-view columns of ``pagecore live``."""
    h = np.asarray(hashes, np.uint64)
    n = len(h)
    g = np.arange(n, dtype=np.uint64) if gpfn is None else np.asarray(gpfn, np.uint64)
    write_page_table(path, vm, g, h, h == 0, {"hash_only": True, **(meta or {})})
    if present is not None:
        t = pq.read_table(path)
        cols = {
            "host_present": present,
            "host_thp": [False] * n,
            "host_zero_page": host_zero if host_zero is not None else [False] * n,
            "host_ksm": [False] * n,
        }
        for name, v in cols.items():
            t = t.append_column(pa.field(name, pa.bool_(), nullable=False), pa.array(v, pa.bool_()))
        pq.write_table(t, path)
    return str(path)


# ------------------------------------------------------------------ share: KSM eligibility
A = [5, 5, 5, 7, 7, 9, 0, 0]
B = [7, 11, 0, 5]


def _share_json(capsys, *paths):
    assert main(["share", *paths, "--format", "json", "-q"]) == 0
    return json.loads(capsys.readouterr().out)


def test_share_ksm_counts_all_pages_without_host_view(tmp_path, capsys):
    a, b = table(tmp_path / "a.parquet", "a", A), table(tmp_path / "b.parquet", "b", B)
    rep = _share_json(capsys, a, b)
    k = rep["ksm"]
    # contents with copies: 5 ×4, 7 ×3, zero ×3 (use_zero_pages=0: a KSM page like any other); 9, 11 alone
    assert (k["pages_shared"], k["pages_sharing"], k["pages_unshared"]) == (3, 7, 2)
    assert k["eligibility"] == "all" and "pages_not_eligible" not in k
    # mechanism keys: zero 3 − 1; 5: 3 in a + 1 in b -> intra 2, inter 1; 7: 2 + 1 -> intra 1, inter 1
    assert rep["savings_pages"] == {"zero": 2, "share_intra": 3, "share_inter": 2}
    assert sum(rep["savings_pages"].values()) == rep["reclaimed_pages"] == 7


def test_share_ksm_counts_only_the_host_view(tmp_path, capsys):
    # a: pages 2 and 4 not present in the host, page 6 (a zero page) mapped to the host's zero page
    a = table(
        tmp_path / "a.parquet",
        "a",
        A,
        present=[True, True, False, True, False, True, True, False],
        host_zero=[False] * 6 + [True, False],
    )
    b = table(tmp_path / "b.parquet", "b", B, present=[True] * 4)
    rep = _share_json(capsys, a, b)
    k = rep["ksm"]
    # eligible: a 5,5,7,9  b 7,11,0,5 -> 5 ×3, 7 ×2; 9, 11 and the one zero page alone
    assert (k["pages_shared"], k["pages_sharing"], k["pages_unshared"]) == (2, 3, 3)
    assert k["eligibility"] == "host_view" and k["pages_not_eligible"] == 4
    assert rep["reclaimed_pages"] == 7  # the paper's counts still see every page
    # every format says which eligibility it used
    assert main(["share", a, b, "-q"]) == 0
    assert "eligibility host_view" in capsys.readouterr().out
    assert main(["share", a, b, "-q", "--format", "csv"]) == 0
    rows = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert rows.set_index("set").loc["all", "ksm_eligibility"] == "host_view"
    assert rows.set_index("set").loc["all", "ksm_pages_sharing"] == 3
    out = tmp_path / "s.parquet"
    assert main(["share", a, b, "-q", "--format", "parquet", "-o", str(out)]) == 0
    assert pd.read_parquet(out).loc[0, "ksm_eligibility"] == "host_view"
    # pagecore ksm over the same tables: the emulator sees the same eight pages and ends where share's count does
    assert main(["ksm", a, b, "--format", "json", "--pages-to-scan", "4"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ksm_eligibility"] == "host_view" and rep["series"]["pages_not_eligible"] == 4
    assert (rep["pages_shared"], rep["pages_sharing"]) == (2, 3)
    assert main(["ksm", a, b, "--pages-to-scan", "4"]) == 0
    assert "eligibility: host_view" in capsys.readouterr().out
    # one table without the view: KSM over all pages, with a note saying why
    c = table(tmp_path / "c.parquet", "c", [3])
    rep = _share_json(capsys, a, b, c)
    assert rep["ksm"]["eligibility"] == "all" and "host view ignored" in rep["ksm"]["eligibility_note"]


# ------------------------------------------------------------------ series of live reads
def series(tmp_path, reads_a, reads_b, times_a, times_b, **kw):
    paths = []
    for k, (ha, hb) in enumerate(zip(reads_a, reads_b, strict=True)):
        paths.append(table(tmp_path / f"a.{k:04d}.parquet", "a", ha, meta={"taken_at": times_a[k]}, **kw))
        paths.append(table(tmp_path / f"b.{k:04d}.parquet", "b", hb, meta={"taken_at": times_b[k]}, **kw))
    return paths


READS_A = [[1, 2, 3, 4], [1, 1, 3, 4], [1, 1, 3, 3]]
READS_B = [[1, 9, 0, 8], [1, 9, 0, 8], [1, 9, 0, 0]]


def test_series_replays_the_changes_at_the_reads_times(tmp_path):
    paths = series(tmp_path, READS_A, READS_B, [100.0, 110.0, 125.0], [101.0, 111.0, 126.0])
    h, info = read_history(paths[::-1], series=True)  # any order: each VM's reads are sorted by time
    assert info["reads"] == 3 and info["times_from"] == "taken_at" and info["ksm_eligibility"] == "all"
    assert h.vm_names == ["a", "b"] or h.vm_names == ["b", "a"]
    a0 = h.vm_names.index("a")
    page = {(h.vm_names[v], int(g)): i for i, (v, g) in enumerate(zip(h.vm, h.gpfn, strict=True))}
    got = [
        (float(t), h.vm_names[h.vm[p]], int(h.gpfn[p]), int(h.content_hash[c]))
        for t, p, c in zip(h.t, h.page, h.new_content, strict=True)
    ]
    # a: page 1 -> 1 at its 2nd read (t = 110 − 100), page 3 -> 3 at its 3rd (t = 25); b: page 3 zeroed at 26
    assert got == [(10.0, "a", 1, 1), (25.0, "a", 3, 3), (26.0, "b", 3, 0)]
    assert int(h.content_hash[h.content[page["a", 1]]]) == 2 and a0 in (0, 1)
    assert info["writes"] == 3 and info["read_times_s"][-1] == 26.0


def test_ksm_and_scan_over_a_series_reach_the_last_reads_sharing(tmp_path, capsys):
    paths = series(tmp_path, READS_A, READS_B, [100.0, 110.0, 125.0], [101.0, 111.0, 126.0])
    # smart_scan off: with it, the settle rule (two equal full scans) can stop before ksmd revisits
    # b's long-unmerged zero page, which the page zeroed at the last read would merge with
    assert main(["ksm", *paths, "--series", "--format", "json", "--pages-to-scan", "4", "--no-smart-scan"]) == 0
    rep = json.loads(capsys.readouterr().out)
    # last reads: a 1,1,3,3  b 1,9,0,0 -> content 1 ×3 (a ×2, b ×1), 3 ×2 in a, zero ×2 in b
    assert rep["pages_sharing"] == 4 and rep["pages_shared"] == 3
    assert rep["savings_pages"] == {"zero": 1, "share_intra": 2, "share_inter": 1}
    assert rep["series"]["reads"] == 3 and rep["ksm_eligibility"] == "all"
    assert main(["scan", *paths, "--series", "--format", "json", "--rate-vm", "10"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["reclaimed_pages"] == 4 and rep["savings_pages"] == {"zero": 1, "share_intra": 2, "share_inter": 1}
    out = tmp_path / "k.csv"
    assert (
        main(["ksm", *paths, "--series", "--format", "csv", "-o", str(out), "--no-smart-scan", "--pages-to-scan", "4"])
        == 0
    )
    tl = pd.read_csv(out)
    assert tl["t"].is_monotonic_increasing and set(tl["ksm_eligibility"]) == {"all"}
    assert tl["pages_sharing"].iloc[-1] == 4


def test_series_with_host_view_leaves_out_pages_never_present(tmp_path, capsys):
    # page 2 of every read of b is absent from the host: its zero page cannot be merged by KSM
    paths = series(
        tmp_path,
        READS_A,
        READS_B,
        [100.0, 110.0, 125.0],
        [101.0, 111.0, 126.0],
        present=[True, True, True, True],
    )
    b_paths = [p for p in paths if "/b." in p]
    for p in b_paths:  # rewrite b's tables with page 2 absent
        t = pq.read_table(p)
        i = t.schema.get_field_index("host_present")
        t = t.set_column(i, t.schema.field(i), pa.array([True, True, False, True]))
        pq.write_table(t, p)
    h, info = read_history(paths, series=True)
    assert info["ksm_eligibility"] == "host_view" and info["pages_not_eligible"] == 1 and h.pages == 7
    assert main(["ksm", *paths, "--series", "--format", "json", "--pages-to-scan", "4", "--no-smart-scan"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["pages_sharing"] == 3 and rep["savings_pages"]["zero"] == 0  # b's two zero pages: one left


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing_read", "has 2 reads"),
        ("other_frames", "guest frames differ"),
        ("key", "hash_key_id"),
        ("page_size", "page_size"),
        ("no_time", "no read time recorded"),
        ("same_time", "read twice at the same time"),
    ],
)
def test_series_refuses_mixed_inputs_in_one_line(tmp_path, capsys, case, needle):
    paths = series(tmp_path, READS_A, READS_B, [100.0, 110.0, 125.0], [101.0, 111.0, 126.0])
    if case == "missing_read":
        paths = [p for p in paths if not p.endswith("b.0002.parquet")]
    elif case == "other_frames":
        paths[2] = table(tmp_path / "x.parquet", "a", [1, 1, 3, 4], gpfn=[0, 1, 2, 7], meta={"taken_at": 110.0})
    elif case == "key":
        paths[2] = table(tmp_path / "x.parquet", "a", [1, 1, 3, 4], meta={"taken_at": 110.0, "hash_key_id": "k1"})
    elif case == "page_size":
        paths[2] = table(tmp_path / "x.parquet", "a", [1, 1, 3, 4], meta={"taken_at": 110.0, "page_size": 2**21})
    elif case == "no_time":
        paths[2] = table(tmp_path / "x.parquet", "a", [1, 1, 3, 4])
    elif case == "same_time":
        paths[2] = table(tmp_path / "x.parquet", "a", [1, 1, 3, 4], meta={"taken_at": 100.0})
    with pytest.raises(InputError, match=needle):
        read_history(paths, series=True)
    assert main(["ksm", *paths, "--series"]) == 1
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_series_without_read_times_takes_the_interval(tmp_path):
    paths = [table(tmp_path / f"a.{k}.parquet", "a", r) for k, r in enumerate(READS_A)]
    h, info = read_history(paths, series=True, interval=30)
    assert info["times_from"] == "interval" and h.t.tolist() == [30.0, 60.0]
    for bad in (0, 1e-7, float("nan")):  # read times are kept to the microsecond
        with pytest.raises(InputError, match="interval must be at least 1e-06 s"):
            read_history(paths, series=True, interval=bad)


# ------------------------------------------------------------------ emulators' savings by mechanism
def slow_split(content, vm, zero_content):
    """Dict-counting twin: per content, c copies in k VMs save c − k within VMs and k − 1 across."""
    from collections import Counter, defaultdict

    copies, vms = Counter(), defaultdict(set)
    for c, v in zip(content.tolist(), vm.tolist(), strict=True):
        copies[c] += 1
        vms[c].add(v)
    out = {"zero": 0, "share_intra": 0, "share_inter": 0}
    for c, n in copies.items():
        if c == zero_content:
            out["zero"] += n - 1
        else:
            out["share_intra"] += n - len(vms[c])
            out["share_inter"] += len(vms[c]) - 1
    return out


@pytest.mark.parametrize("seed", range(3))
def test_emulator_savings_split_adds_up_and_matches_the_twin(seed):
    from pagecore.sharing import PageHistory, ksm_savings, scanner_savings, with_random_writes
    from pagecore.sharing.ksm import KsmEmulator, KsmSettings
    from pagecore.sharing.scanner import EsxScanner, ScannerSettings

    rng = np.random.default_rng(seed)
    n = 1500
    h = rng.integers(0, 200, n).astype(np.uint64)
    z = h < 15
    h[z] = 0
    vm = rng.integers(0, 3, n)
    static = PageHistory.from_pages(h, z, vm, ["a", "b", "c"], rng.permutation(n))  # not in address order
    # a static set converges to full sharing: the split is the twin's, exactly
    em = KsmEmulator(static, KsmSettings(pages_to_scan=500, smart_scan=False))
    em.run()
    assert ksm_savings(em) == slow_split(static.content, static.vm, static.zero_content)
    sc = EsxScanner(static, ScannerSettings(scan_rate_vm=1000, scan_rate_total=3000))
    sc.run()
    assert scanner_savings(sc) == slow_split(static.content, static.vm, static.zero_content)
    # with writes, chains and use_zero_pages: the split always adds up to the emulator's own total
    hist = with_random_writes(static, fraction=0.1, mean_interval_s=20, duration_s=60, zero_write_fraction=0.3)
    for uzp, mps in ((False, 256), (True, 3), (False, 2)):
        em = KsmEmulator(hist, KsmSettings(pages_to_scan=300, use_zero_pages=uzp, max_page_sharing=mps))
        f = em.run().final
        s = ksm_savings(em)
        assert sum(s.values()) == f["pages_sharing"] + f["ksm_zero_pages"], (uzp, mps)
        assert min(s.values()) >= 0 and (not uzp or s["zero"] >= f["ksm_zero_pages"])
    sc = EsxScanner(hist, ScannerSettings(scan_rate_vm=500, scan_rate_total=1500))
    f = sc.run().final
    assert sum(scanner_savings(sc).values()) == f["reclaimed_pages"]


def test_duplicate_lifetimes_from_a_series_of_reads(tmp_path, capsys):
    paths = series(tmp_path, READS_A, READS_B, [100.0, 110.0, 125.0], [101.0, 111.0, 126.0])
    out = tmp_path / "life.csv"
    assert main(["scan", *paths, "--series", "--format", "json", "--lifetimes", str(out)]) == 0
    capsys.readouterr()
    life = pd.read_csv(out)
    assert set(life["table"]) == {"survival", "catchable"}
    assert set(life.loc[life["table"] == "catchable", "model"]) == {"esx", "ksm"}
    # every duplicate the reads show starts after the first read and lasts to the end (censored)
    assert life.loc[life["table"] == "survival", "censored_fraction"].iloc[0] == 1.0
    assert main(["scan", paths[0], "--lifetimes", str(tmp_path / "x.csv")]) != 0
    assert "--lifetimes needs --series" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
