"""`pagecore host` (issue 15): steady-state savings against slow twins and the emulators, the fit
arithmetic by hand, the consolidation search against a linear scan, bad input, and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pytest

from pagecore.errors import ConfigError, InputError
from pagecore.experiments import host as H


def _vm(name, hashes, zero=None, gpfn=None, **kw):
    hashes = np.asarray(hashes, np.uint64)
    zero = hashes == 0 if zero is None else np.asarray(zero, bool)
    gpfn = np.arange(len(hashes), dtype=np.uint64) if gpfn is None else np.asarray(gpfn, np.uint64)
    frame = pd.DataFrame({"vm": name, "gpfn": gpfn, "hash": hashes, "zero": zero})
    return H.HostVM(name=name, frame=frame, size_mb=len(hashes) / 256, **kw)


def _members(vms, n=None, replicas="distinct"):
    keys = [v.frame["hash"].to_numpy(np.uint64) for v in vms]
    return H.replicate(vms, keys, n or len(vms), replicas)


# ------------------------------------------------------------------ slow twins
def _slow_savings(members, policy, mps=256, use_zero_pages=False):
    """Per-content counting with dictionaries: the obviously-correct version."""
    per = defaultdict(Counter)  # content -> Counter(vm -> copies)
    zeros = Counter()
    for j, (_, v, k, _) in enumerate(members):
        for h, z in zip(k.tolist(), v.frame["zero"].tolist(), strict=True):
            if z:
                zeros[j] += 1
            else:
                per[h][j] += 1
    out = {"zero": 0.0, "share_intra": 0.0, "share_inter": 0.0}
    nz = sum(zeros.values())
    if policy == "esx2002":
        out["zero"] = max(nz - 1, 0)
    elif policy == "esxi":
        out["zero"] = sum(max(c - 1, 0) for c in zeros.values())
    elif use_zero_pages:
        out["zero"] = nz
    else:
        out["zero"] = nz - math.ceil(nz / mps) if nz else 0
    for c in per.values():
        total_copies = sum(c.values())
        intra = sum(n - 1 for n in c.values())
        inter = len(c) - 1
        if policy == "esxi":
            inter = 0
        if policy == "kvm-ksm":
            total = total_copies - math.ceil(total_copies / mps)
            intra = min(intra, total)
            inter = total - intra
        out["share_intra"] += intra
        out["share_inter"] += inter
    return out


def _random_vms(rng, n_vms=4, pages=300, contents=60):
    vms = []
    for i in range(n_vms):
        h = rng.integers(0, contents, pages).astype(np.uint64)
        vms.append(_vm(f"v{i}", h))
    return vms


@pytest.mark.parametrize("policy", ["esx2002", "esxi", "kvm-ksm"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sharing_savings_equal_the_slow_twin(policy, seed):
    rng = np.random.default_rng(seed)
    vms = _random_vms(rng)
    st = H.HostSettings(kvm_thp=False, ksm={"max_page_sharing": 3 if seed == 2 else 256})
    members = _members(vms)
    ps = H.page_set(members, policy, st)
    got = H.sharing_savings(ps, policy, st)["total"]
    want = _slow_savings(members, policy, mps=st.ksm.get("max_page_sharing", 256))
    for m in want:
        assert got[m] == pytest.approx(want[m]), m


@pytest.mark.parametrize(
    "case",
    ["all_zero", "all_distinct", "all_same", "one_vm", "empty_vm"],
)
def test_sharing_savings_edge_cases(case):
    if case == "all_zero":
        vms = [_vm("a", np.zeros(100)), _vm("b", np.zeros(50))]
    elif case == "all_distinct":
        vms = [_vm("a", np.arange(1, 101)), _vm("b", np.arange(101, 201))]
    elif case == "all_same":
        vms = [_vm("a", np.full(100, 7)), _vm("b", np.full(100, 7))]
    elif case == "one_vm":
        vms = [_vm("a", [1, 1, 2, 0, 0])]
    else:
        vms = [_vm("a", [1, 1, 2]), _vm("b", np.zeros(0))]
    st = H.HostSettings(kvm_thp=False)
    for policy in ("esx2002", "esxi", "kvm-ksm"):
        members = _members(vms)
        got = H.sharing_savings(H.page_set(members, policy, st), policy, st)["total"]
        want = _slow_savings(members, policy)
        assert got == pytest.approx(want), (case, policy)


def test_ksm_emulator_converges_to_the_steady_state_savings():
    from pagecore.sharing.ksm import KsmSettings, emulate_ksm
    from pagecore.sharing.pagehistory import PageHistory

    rng = np.random.default_rng(5)
    vms = _random_vms(rng, pages=400, contents=80)
    st = H.HostSettings(kvm_thp=False)
    members = _members(vms)
    ps = H.page_set(members, "kvm-ksm", st)
    want = sum(H.sharing_savings(ps, "kvm-ksm", st)["total"].values())
    hist = PageHistory.from_pages(ps.key, ps.zero, ps.vm, ps.names)
    r = emulate_ksm(hist, KsmSettings(smart_scan=False))
    assert r.final["pages_sharing"] + r.final["ksm_zero_pages"] == want


def test_esx_scanner_converges_to_the_steady_state_savings():
    rng = np.random.default_rng(6)
    vms = _random_vms(rng, pages=300, contents=50)
    st = H.HostSettings()
    members = _members(vms)
    ps = H.page_set(members, "esx2002", st)
    want = sum(H.sharing_savings(ps, "esx2002", st)["total"].values())
    got = H.scan_over_time(members, "esx2002", st)
    assert got["converged_saved_mb"] * 256 == pytest.approx(want)
    assert 0 < got["seconds_to_90pct"] <= got["full_scan_s"] * 3


# ------------------------------------------------------------------ the fit, by hand
def _hand_vms():
    # each VM: 256 zero pages, 256 pages of contents common to both (1..256), 512 of its own
    a = np.concatenate([np.zeros(256), np.arange(1, 257), np.arange(1000, 1512)])
    b = np.concatenate([np.zeros(256), np.arange(1, 257), np.arange(5000, 5512)])
    return [_vm("a", a, activity="idle:0.5", active=0.5), _vm("b", b, activity="idle:0.5", active=0.5)]


def test_fit_arithmetic_by_hand():
    vms = _hand_vms()
    st = H.HostSettings(vm_overhead_mb=1.0, hypervisor_mb=2.0, kvm_thp=False)
    # esx2002: zero 511 pages saved, inter 256 → backed 2048 − 767 = 1281 pages = 5.00390625 MiB
    host = 100.0
    f = H.evaluate(_members(vms), "esx2002", host, st)
    assert f.saved_mb["zero"] == pytest.approx(511 / 256)
    assert f.saved_mb["share_inter"] == pytest.approx(1.0)
    assert f.saved_mb["share_intra"] == 0
    assert f.demand_mb == pytest.approx(1281 / 256)
    assert f.capacity_mb == pytest.approx(host - 2.0 - 2 * 1.0 - 0.02 * host)
    assert f.fits and f.swap_mb == 0 and f.saved_mb["balloon"] == 0
    # kvm-ksm: 512 zero pages merge into ceil(512/256) = 2 KSM pages
    f = H.evaluate(_members(vms), "kvm-ksm", host, st)
    assert f.saved_mb["zero"] == pytest.approx(510 / 256)
    assert f.capacity_mb == pytest.approx(host - 4.0 - H.min_free_kvm_mb(host))
    # a host too small for 1281 pages: capacity 4 MiB
    small = 8.0 / 0.98  # esx2002 capacity = small − 4 − 2 % of small = 4 MiB
    f = H.evaluate(_members(vms), "esx2002", small, st)
    assert f.capacity_mb == pytest.approx(4.0)
    # the balloon takes idle memory (half of each VM) down to the capacity: 1281 − 1024 pages
    assert f.fits and f.saved_mb["balloon"] == pytest.approx((1281 - 1024) / 256, abs=2 / 256)
    # KSM does not balloon: the same host swaps
    f = H.evaluate(_members(vms), "kvm-ksm", small, st)
    assert not f.fits and f.swap_mb > 0
    # boot-time swap: every page touched before any sharing
    assert f.boot_swap_mb == pytest.approx(2048 / 256 - f.capacity_mb)


def test_balloon_never_goes_below_reservation_or_active_memory():
    vms = _hand_vms()
    vms[0].reservation_mb = 4.0  # all of VM a
    st = H.HostSettings(vm_overhead_mb=0.0, esx2002_hard_pct=0.0)
    f = H.evaluate(_members(vms), "esx2002", 3.0, st)
    per = f.per_vm.set_index("vm")
    assert per.loc["a", "balloon_mb"] == pytest.approx(0.0, abs=1e-9)
    assert not f.fits


def test_consolidation_equals_a_linear_scan():
    rng = np.random.default_rng(3)
    vms = _random_vms(rng, n_vms=3, pages=256, contents=400)
    keys = [v.frame["hash"].to_numpy(np.uint64) for v in vms]
    for policy in ("esx2002", "esxi", "kvm-ksm"):
        st = H.HostSettings(vm_overhead_mb=0.5, max_vms=40)
        n, _ = H.consolidation(vms, keys, policy, 12.0, st)
        linear = [H.evaluate(H.replicate(vms, keys, k), policy, 12.0, st).fits for k in range(1, 41)]
        want = next((k for k, ok in enumerate(linear, 1) if not ok), 41) - 1
        assert n == want, policy
        assert all(linear[:want]), policy


def test_replicas_share_what_the_inputs_share():
    a = _vm("a", [0, 1, 2, 3, 3])
    b = _vm("b", [0, 1, 9, 9, 8])
    keys = [a.frame["hash"].to_numpy(np.uint64), b.frame["hash"].to_numpy(np.uint64)]
    m = H.replicate([a, b], keys, 4)
    a2 = m[2][2]
    assert m[2][0] == "a#2" and m[2][3] == 0
    assert a2[0] == 0 and a2[1] == 1  # zero and common content kept
    assert a2[2] != 2 and a2[3] == a2[4] != 3  # own contents remapped one to one
    same = H.replicate([a, b], keys, 4, "identical")
    assert np.array_equal(same[2][2], keys[0])


def test_esxi_shares_nothing_until_pressure_and_breaks_greedily():
    from pagecore.sharing.largepages import large_page_savings

    rng = np.random.default_rng(4)
    vms = []
    for i in range(3):
        h = rng.integers(1, 300, 2048).astype(np.uint64)
        h[rng.random(2048) < 0.2] = 0
        vms.append(_vm(f"v{i}", h))
    st = H.HostSettings(vm_overhead_mb=0.0)
    members = _members(vms)
    roomy = H.evaluate(members, "esxi", 4096.0, st)
    assert roomy.saved_mb["zero"] == 0 and roomy.saved_mb["share_intra"] == 0
    # the heap merge of per-VM greedy curves equals the greedy curve of all VMs with salting
    ps = H.page_set(members, "esxi", st)
    _, curve = large_page_savings(ps.vm, ps.gpfn, ps.key, ps.zero, domain=ps.vm)
    for need in (1, 50, 400, 10**9):
        notes = []
        res = H._esxi_break(members, ps, need, notes)
        got = res["total"]
        saved = curve["saved_pages"].to_numpy()
        k = int(np.flatnonzero(saved >= need)[0]) if (saved >= need).any() else len(saved) - 1
        assert res["gain_pages"] == saved[k], need
        assert f"{k:,} of {len(curve) - 1:,} large pages broken" in notes[0]
        # the savings keep one zero page per VM that has zero pages in its broken regions
        won = got["zero"] + got["share_intra"]
        assert saved[k] - len(vms) <= won <= saved[k], need
        assert got["share_inter"] == 0


def test_esxi_pages_outside_whole_regions_are_small_pages_shared_from_the_start():
    # a region with a frame missing cannot be one large page (as `share` counts backable regions):
    # its pages share within the VM however much memory is free; whole regions wait for pressure
    h = np.concatenate([np.full(512, 7), [0, 0, 5, 5, 5, 9, 9, 0]]).astype(np.uint64)
    a = _vm("a", h)
    st = H.HostSettings(vm_overhead_mb=0.0)
    roomy = H.evaluate(_members([a]), "esxi", 4096.0, st)
    assert roomy.saved_mb["zero"] * 256 == 2  # 3 zero pages, one kept (salted: one per VM)
    assert roomy.saved_mb["share_intra"] * 256 == 3  # 5 ×3 → 2, 9 ×2 → 1; the large page of 7s intact
    assert any("8 pages lie outside whole 2 MiB regions" in x for x in roomy.notes)
    assert any("large pages intact" in x for x in roomy.notes)
    # 520 pages, 514 after the small pages share, above the high state of 2.5 MiB (76 %: 486 pages)
    tight = H.evaluate(_members([a]), "esxi", 2.5, st)
    assert tight.saved_mb["share_intra"] * 256 == 3 + 511 and tight.saved_mb["zero"] * 256 == 2
    assert any("1 of 1 large pages broken" in x for x in tight.notes)
    # three 8-page VMs (no whole region): intra-VM sharing and zero pages as under esx2002 but salted
    vms = [
        _vm("A", [0, 0, 0, 1, 1, 2, 3, 4]),
        _vm("B", [0, 0, 1, 2, 5, 5, 5, 6]),
        _vm("C", [0, 1, 7, 8, 9, 10, 11, 12]),
    ]
    f = H.evaluate(_members(vms), "esxi", 4096.0, st)
    assert f.saved_mb["zero"] * 256 == 3 and f.saved_mb["share_intra"] * 256 == 3 and f.saved_mb["share_inter"] == 0


def test_kvm_low_watermark_by_hand():
    # min_free_kbytes = sqrt(16 × KiB); low = min + max(min / 4, 0.1 % of memory) (mm/page_alloc.c)
    assert H.min_free_kvm_mb(512.0) == pytest.approx(1.25 * math.sqrt(16 * 512 * 1024) / 1024)  # min/4 wins
    assert H.min_free_kvm_mb(65536.0) == pytest.approx(32.0 + 65.536)  # 32 MiB + 0.1 % of 64 GiB
    assert H.min_free_kvm_mb(1 << 20) == pytest.approx(128.0 + 1048.576)  # 1 TiB
    assert H.min_free_kvm_mb(1 << 24) == pytest.approx(256.0 + 16777.216)  # 16 TiB: min_free_kbytes capped


def test_memory_sizes_are_binary_in_every_spelling():
    from pagecore.cli.host import parse_memory

    assert parse_memory(["512", "512M", "0.5GB", "0.5GiB"]) == [512.0]
    assert parse_memory(["1T", "1TB", "1TiB", "1024G"]) == [1024.0**2]  # 1TB and 1TiB were refused
    assert parse_memory(["512:1G:256"]) == [512.0, 768.0, 1024.0]


def test_table_prints_a_small_vm_size_not_zero():
    from pagecore.cli.host import format_table

    vms = [_vm("a", [0, 0, 1, 1, 2, 3, 4, 5]), _vm("b", np.arange(1, 1281))]  # 8 pages; 1,280 pages = 5 MiB
    rep = H.host_report(vms, H.HostSettings(memory_mb=[1024.0], policies=("esx2002",), max_vms=2))
    assert "VMs of the mix: a (0.03125 MiB, light), b (5 MiB, light)" in format_table(rep)  # a was "0 MiB"


def test_thp_zero_regions_are_not_ksm_candidates():
    h = np.concatenate([np.zeros(512), np.arange(1, 513), np.zeros(100), np.ones(100)])
    v = _vm("a", h)
    on = H.page_set(_members([v]), "kvm-ksm", H.HostSettings(kvm_thp=True))
    off = H.page_set(_members([v]), "kvm-ksm", H.HostSettings(kvm_thp=False))
    assert (~on.eligible).sum() == 512 and off.eligible.all()
    assert on.cost.all()


def test_kvm_ksm_says_which_pages_the_thp_rule_leaves_out():
    # 1,024 pages: region 0 all zero (one THP KSM does not merge), region 1 256 zero + 256 distinct.
    # kvm-ksm merges 256 zero pages (keeps 1): 255 saved, where `pagecore ksm` merges all 768 (767):
    # the report must say why
    h = np.concatenate([np.zeros(768), np.arange(1, 257)]).astype(np.uint64)
    f = H.evaluate(_members([_vm("d", h)]), "kvm-ksm", 1024.0, H.HostSettings())
    assert f.saved_mb["zero"] * 256 == 255
    assert any("512 pages (2.0 MiB) are all-zero pieces of transparent huge pages" in x for x in f.notes)
    assert not any("transparent huge" in x for x in H.evaluate(_members([_vm("d", h)]), "esx2002", 1024.0,
                                                                    H.HostSettings()).notes)  # fmt: skip


def test_host_view_decides_cost_and_eligibility():
    h = np.array([0, 0, 5, 5, 0, 7], np.uint64)
    v = _vm("a", h)
    v.frame["host_present"] = [False, True, True, True, True, True]
    v.frame["host_zero_page"] = [False, True, False, False, False, False]
    v.frame["host_thp"] = [False, False, False, False, True, False]
    v.frame["host_ksm"] = False
    ps = H.page_set(_members([v]), "kvm-ksm", H.HostSettings())
    assert ps.cost.tolist() == [False, False, True, True, True, True]
    assert ps.eligible.tolist() == [False, False, True, True, False, True]


def test_ksm_advisor_fixed_point():
    st = H.HostSettings(ksm={"advisor_mode": "scan-time", "sleep_millisecs": 20})
    assert H._ksm_settings(st, 10_000).pages_to_scan == 500  # floor
    assert H._ksm_settings(st, 10**9).pages_to_scan == 30000  # ceiling
    assert H._ksm_settings(st, 2 * 10**7).pages_to_scan == 2000  # 2e7 pages × 0.02 s / 200 s


# ------------------------------------------------------------------ bad input
def _table(path, name, hashes):
    from pagecore.pages.tables import write_page_table

    hashes = np.asarray(hashes, np.uint64)
    write_page_table(path, name, np.arange(len(hashes), dtype=np.uint64), hashes, hashes == 0, {"hash_only": True})
    return path


@pytest.fixture
def tables(tmp_path):
    rng = np.random.default_rng(9)
    out = []
    for name in ("a", "b"):
        out.append(_table(tmp_path / f"{name}.parquet", name, rng.integers(0, 200, 1024)))
    return out


def test_bad_inputs_are_one_line_errors_naming_the_vm(tables, tmp_path):
    with pytest.raises(InputError, match=r"VM a is listed twice"):
        H.load_vms([{"pages": str(tables[0])}, {"pages": str(tables[0])}])
    with pytest.raises(InputError, match=r"VM a: size_mb 100 does not match its page table .*set size_mb to 4"):
        H.load_vms([{"pages": str(tables[0]), "size_mb": 100}])
    # 1 % of the table (4 MiB: 0.04 MiB) may be missing from a dump, never a whole MiB of a small VM
    with pytest.raises(InputError, match=r"VM a: size_mb 3 does not match"):
        H.load_vms([{"pages": str(tables[0]), "size_mb": 3}])
    assert H.load_vms([{"pages": str(tables[0]), "size_mb": 4.03}])[0].size_mb == 4.03
    vms = H.load_vms([{"pages": str(t), "reservation_mb": 4} for t in tables])
    with pytest.raises(ConfigError, match=r"smaller than the 2 VMs' reservations .*reservation_mb of VM a"):
        H.host_report(vms, H.HostSettings(memory_mb=[6], verify="no"))
    with pytest.raises(InputError, match=r"VM a: its page table has no bytes behind it"):
        H.host_report(vms, H.HostSettings(memory_mb=[64], verify="yes"))
    with pytest.raises(ConfigError, match="unknown policy"):
        H.HostSettings(policies=("vmware",))
    with pytest.raises(ConfigError, match="activity"):
        H.parse_activity("sleepy")
    with pytest.raises(ConfigError, match="give exactly one of pages"):
        H.load_vms([{"pages": str(tables[0]), "dump": "x"}])
    with pytest.raises(ConfigError, match="unknown key 'size'"):
        H.load_vms([{"pages": str(tables[0]), "size": 4}])
    for e in (InputError, ConfigError):
        assert issubclass(e, Exception)


def test_activity_profiles():
    assert H.parse_activity("idle:0.8") == (pytest.approx(0.2), "idle:0.8")
    assert H.parse_activity("active:0.3")[0] == pytest.approx(0.3)
    assert H.parse_activity("busy")[0] == H.ACTIVITY_PROFILES["busy"]
    with pytest.raises(ConfigError):
        H.parse_activity("idle:1.5")


def test_activity_from_a_trace(tmp_path):
    import pyarrow as pa

    from pagecore.synth.workloads import ACCESS_TRACE_SCHEMA, write_trace

    t = np.array([0.0, 1.0, 2.0, 61.0, 62.0])
    g = np.array([0, 1, 1, 2, 3], np.uint64)
    vm = pa.DictionaryArray.from_arrays(pa.array(np.zeros(5, np.int32)), pa.array(["a"]))
    b = pa.RecordBatch.from_arrays(
        [pa.array(t), vm, pa.array(g), pa.array(np.zeros(5, bool)), pa.array(np.zeros(5, bool))],
        schema=ACCESS_TRACE_SCHEMA,
    )
    path = tmp_path / "t.parquet"
    write_trace(path, [b])
    # two sampling periods touch 2 distinct pages each, of 8 pages
    assert H.activity_from_trace(path, "a", 8) == pytest.approx(0.25)
    with pytest.raises(InputError, match="no accesses of VM b"):
        H.activity_from_trace(path, "b", 8)


# ------------------------------------------------------------------ the command
def _run(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "pagecore", *args], capture_output=True, text=True, timeout=600)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_cli_every_format_plot_and_timelines(tables, tmp_path):
    a, b = map(str, tables)
    out = _run("host", a, b, "--memory", "64,96", "--policy", "esx2002,kvm-ksm", "--verify", "no", "-q").stdout
    assert "esx2002" in out and "kvm-ksm" in out and "fit" in out and "idle tax" in out
    rep = json.loads(_run("host", a, b, "--memory", "64", "--format", "json", "--verify", "no").stdout)
    assert rep["mechanisms"] == ["zero", "share_intra", "share_inter", "compress", "balloon", "swap", "free_report"]
    assert rep["reallocations"] == ["idle_tax"]
    assert {r["policy"] for r in rep["rows"]} == {"esx2002", "esxi", "kvm-ksm"}
    assert rep["vms"][0]["ksm_eligibility"] == "all"
    csv = _run("host", a, b, "--memory", "64", "--format", "csv", "--verify", "no").stdout
    assert csv.splitlines()[0].startswith("policy,host_mb,vms_fit,kind,mechanism")
    pq = tmp_path / "rows.parquet"
    png = tmp_path / "h.png"
    tl = tmp_path / "tl.parquet"
    _run("host", a, b, "--memory", "64", "--format", "parquet", "-o", str(pq), "--plot", str(png),
         "--timelines", str(tl), "--verify", "no")  # fmt: skip
    rows = pd.read_parquet(pq)
    assert set(rows["mechanism"]) == {"zero", "share_intra", "share_inter", "compress", "balloon", "swap",
                                      "free_report", "idle_tax"}  # fmt: skip
    assert (rows[rows["mechanism"] == "idle_tax"]["kind"] == "reallocation").all()
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert set(pd.read_parquet(tl)["policy"]) == {"esx2002", "esxi", "kvm-ksm"}


def test_cli_errors_are_one_line(tables, tmp_path):
    a = str(tables[0])
    p = _run("host", a, a, "--memory", "16", check=False)
    assert p.returncode != 0 and "listed twice" in p.stderr and "Traceback" not in p.stderr
    p = _run("host", a, "--memory", "16", "-o", a, "--format", "csv", check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = _run("host", a, "--memory", "lots", check=False)
    assert p.returncode != 0 and "expected a size" in p.stderr
    p = _run("host", a, "--memory", "16", "--format", "parquet", check=False)
    assert p.returncode != 0 and "needs -o" in p.stderr


def test_cli_plot_writes_exactly_the_file_named(tables, tmp_path):
    """--plot writes the path given (a name with dots in it too) in the format its suffix says, and
    checks that very path against the inputs: an input that ends in .png is never overwritten. A
    name without .png or .pdf is refused before any work, in one line."""
    a = str(tables[0])
    pdf = tmp_path / "fig.v2.pdf"
    _run("host", a, "--memory", "64", "--verify", "no", "-q", "--plot", str(pdf))
    assert pdf.read_bytes()[:5] == b"%PDF-" and sorted(p.name for p in tmp_path.glob("fig*")) == ["fig.v2.pdf"]
    guest = tmp_path / "guest.png"  # an input (a dump) whose name ends in .png
    guest.write_bytes(bytes(4096) * 8)
    before = guest.read_bytes()
    p = _run("host", a, str(guest), "--memory", "64", "--verify", "no", "-q", "--plot", str(tmp_path / "guest"),
             check=False)  # fmt: skip
    assert p.returncode != 0 and "Traceback" not in p.stderr and "--plot" in p.stderr
    p = _run("host", a, str(guest), "--memory", "64", "--verify", "no", "-q", "--plot", str(guest), check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert guest.read_bytes() == before
    for bad in ("plot", "./plot", "p.xyz", "p.svg"):
        p = _run("host", a, "--memory", "64", "--verify", "no", "-q", "--plot", str(tmp_path / bad), check=False)
        assert p.returncode != 0 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
        assert "must end in .png or .pdf" in p.stderr
    assert not list(tmp_path.glob("p*")) and not (tmp_path / "plot").exists()


def test_cli_vm_file_that_is_not_text(tmp_path):
    f = tmp_path / "vms.yaml"
    f.write_bytes(b"\xff\xfe\x00binary")
    p = _run("host", "--vms", str(f), "--memory", "64", check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "not a YAML text file" in p.stderr


def test_cli_vm_file_and_ranges(tables, tmp_path):
    import yaml

    f = tmp_path / "vms.yaml"
    f.write_text(yaml.safe_dump([{"pages": str(tables[0]), "activity": "busy", "shares": 5000},
                                 {"pages": str(tables[1]), "name": "bee", "activity": "idle:0.9"}]))  # fmt: skip
    rep = json.loads(_run("host", "--vms", str(f), "--memory", "48:64:8", "--format", "json", "--verify", "no").stdout)
    assert [v["name"] for v in rep["vms"]] == ["a", "bee"]
    assert sorted({r["host_mb"] for r in rep["rows"]}) == [48.0, 56.0, 64.0]
    assert rep["vms"][1]["active"] == pytest.approx(0.1)


def test_esxi_compresses_before_it_swaps():
    rng = np.random.default_rng(12)
    vms = []
    for i in range(2):
        v = _vm(f"c{i}", rng.integers(1, 10**9, 2048), active=0.9, activity="busy")
        vms.append(v)
    st = H.HostSettings(vm_overhead_mb=0.0, balloon_max_pct=0.0)
    host = 14.0  # 16 MiB of distinct pages: about 2 MiB must go
    plain = H.evaluate(_members(vms), "esxi", host, st)
    assert plain.swap_mb > 0 and plain.saved_mb["compress"] == 0
    assert any("compression not modelled" in n for n in plain.notes)
    for v in vms:  # every page compresses to 1000 bytes: a 1 KiB slot, 3 KiB saved per page
        v.frame["csize_lz4"] = np.int32(1000)
    zipped = H.evaluate(_members(vms), "esxi", host, st)
    # each victim wins 3/4 of a page in a 1 KiB slot; 4/3 × need victims fit in the 10 % caches
    need = plain.swap_mb
    assert zipped.saved_mb["compress"] == pytest.approx(need, abs=2 / 256)
    assert zipped.swap_mb == 0 and zipped.fits
    for v in vms:  # pages that do not compress below 2 KiB are swapped anyway
        v.frame["csize_lz4"] = np.int32(3000)
    f = H.evaluate(_members(vms), "esxi", host, st)
    assert f.saved_mb["compress"] == 0 and f.swap_mb == pytest.approx(need, abs=2 / 256)
    for v in vms:  # a cache of 1 % holds only part of it: the rest is swapped
        v.frame["csize_lz4"] = np.int32(1000)
    st.esxi_memzip_max_pct = 1.0
    f = H.evaluate(_members(vms), "esxi", host, st)
    cache_pages = 2 * int(0.01 * f.per_vm["touched_mb"].iloc[0] * 256 * 4096 // 1024)  # 1 KiB slots that fit
    assert f.saved_mb["compress"] == pytest.approx(cache_pages * 0.75 / 256, abs=4 / 256)
    assert f.swap_mb > 0 and not f.fits


def test_esxi_compresses_only_pages_sharing_left_resident():
    # 500 zero pages (20 bytes compressed) and 500 distinct incompressible pages, all small pages
    # (every other frame: no whole 2 MiB region). Sharing frees 499 zero pages; the 124.4 pages
    # still to reclaim on 1.5 MiB come from the 501 resident pages: 500 that do not compress and
    # one zero page. A zero page already shared cannot be compressed too (it was, 73 times).
    h = np.concatenate([np.zeros(500), np.arange(1, 501)]).astype(np.uint64)
    v = _vm("a", h, gpfn=2 * np.arange(1000))
    v.frame["csize_lz4"] = np.where(h == 0, 20, 3000).astype(np.int32)
    st = H.HostSettings(vm_overhead_mb=0.0, balloon_max_pct=0.0)
    f = H.evaluate(_members([v]), "esxi", 1.5, st)
    need = 1000 - 499 - f.capacity_mb * 256  # 501 backed pages on 376.6 pages of capacity
    assert f.saved_mb["zero"] * 256 == 499
    assert f.saved_mb["compress"] * 256 <= 0.75  # at most the one resident zero page, in a 1 KiB slot
    assert f.swap_mb * 256 >= math.floor(need) and not f.fits


def test_esxi_compression_cache_is_a_share_of_the_vm_size_not_of_what_sharing_left():
    # 1,000 pages (all small), 500 zero, 500 distinct compressing to 1,000 bytes (1 KiB slots).
    # On 1 MiB: 501 backed pages, capacity 251.08 -> 249.9 pages to reclaim = 334 victims at 3/4
    # page each. The cache may hold 10 % of the VM's 1,000 pages = 400 KiB = 400 slots: all fit,
    # nothing swapped (`pagecore compress` sizes it the same). 10 % of the 501 pages sharing left
    # (200 slots) swapped 100 pages.
    h = np.concatenate([np.zeros(500), np.arange(1, 501)]).astype(np.uint64)
    v = _vm("a", h, gpfn=2 * np.arange(1000))
    v.frame["csize_lz4"] = np.where(h == 0, 20, 1000).astype(np.int32)
    st = H.HostSettings(vm_overhead_mb=0.0, balloon_max_pct=0.0)
    f = H.evaluate(_members([v]), "esxi", 1.0, st)
    assert f.capacity_mb * 256 == pytest.approx(251.0848)
    assert f.saved_mb["compress"] * 256 == 334 * 0.75
    assert f.swap_mb == 0 and f.fits


def test_limit_mb_caps_a_vm_whatever_the_host_has_free():
    # 1,000 distinct pages, light (750 idle; the balloon may take 65 % = 650), a roomy host.
    # limit 2 MiB = 512 pages: 488 over it, ballooned under ESX, swapped by a Linux cgroup limit;
    # limit 1 MiB = 256 pages: 744 over it, 650 ballooned and 94 swapped (the limit was ignored)
    v = _vm("a", np.arange(1, 1001), gpfn=2 * np.arange(1000))
    st = H.HostSettings(vm_overhead_mb=0.0)
    for lim, pol, balloon, swap in ((2.0, "esx2002", 488, 0), (2.0, "kvm-ksm", 0, 488), (1.0, "esx2002", 650, 94),
                                    (1.0, "esxi", 650, 94), (1.0, "kvm-ksm", 0, 744)):  # fmt: skip
        v.limit_mb = lim
        f = H.evaluate(_members([v]), pol, 1024.0, st)
        assert (f.saved_mb["balloon"] * 256, f.saved_mb["swap"] * 256) == (balloon, swap), (lim, pol)
        assert f.swap_mb * 256 == swap and f.fits == (swap == 0), (lim, pol)
        assert any("limit_mb holds 1 VM(s)" in x for x in f.notes)


def test_esxi_compression_that_cannot_reach_the_need_swaps_the_rest():
    # 950 zero pages (949 shared) and 50 distinct pages compressing to 1 KiB: 51 resident pages on a
    # capacity of 6 -> 45 to reclaim. Compressing all 51 wins 38.25: 6.75 short. Swapping 27 of the
    # compressed pages frees their slots (27 × 0.25 = 6.75): 18 compressed, 27 swapped; the mix does
    # not fit (it was reported fitting with 6.75 pages nowhere)
    h = np.concatenate([np.zeros(950), np.arange(1, 51)]).astype(np.uint64)
    v = _vm("a", h, gpfn=2 * np.arange(1000))
    v.frame["csize_lz4"] = np.where(h == 0, 20, 1000).astype(np.int32)
    st = H.HostSettings(vm_overhead_mb=0.0, balloon_max_pct=0.0)
    f = H.evaluate(_members([v]), "esxi", 6 / 256 / (1 - 0.32 * 0.06), st)
    assert f.capacity_mb * 256 == pytest.approx(6.0)
    assert f.saved_mb["compress"] * 256 == 18.0 and f.saved_mb["swap"] * 256 == 27.0
    assert not f.fits


def test_cooperative_discards_reported_chunks_then_shares_the_rest():
    from pagecore.experiments.cooperative import free_report

    n = 59 * 512
    rng = np.random.default_rng(21)
    vms = []
    for name in ("g1", "g2"):
        h = rng.integers(1, 5000, n).astype(np.uint64)
        v = _vm(name, h, activity="busy", active=0.9)
        free = np.zeros(n, bool)
        free[20 * 512 :] = True  # the top 39 chunks are free in the guest
        v.frame["guest_free"] = free
        vms.append(v)
    st = H.HostSettings(vm_overhead_mb=0.0, kvm_thp=False)
    f = H.evaluate(_members(vms), "cooperative", 4096.0, st)
    want = sum(int(free_report(v.frame)["discarded"].sum()) for v in vms)
    assert want > 0
    assert f.saved_mb["free_report"] == pytest.approx(want / 256)
    # KSM shares only the pages that were not discarded
    ps = H.page_set(_members(vms), "kvm-ksm", st)
    reported = H._reported(_members(vms), ps)
    rest = H.sharing_savings(ps, "kvm-ksm", st, mask=~reported)["total"]
    assert f.saved_mb["share_inter"] == pytest.approx(rest["share_inter"] / 256)
    full = H.sharing_savings(ps, "kvm-ksm", st)["total"]
    assert rest["share_inter"] < full["share_inter"]
    # without the guests' free pages the policy refuses, naming the VM
    for v in vms:
        del v.frame["guest_free"]
        v.cache.clear()
    with pytest.raises(InputError, match=r"VM g1: the cooperative policy needs the guest's free pages"):
        H.evaluate(_members(vms), "cooperative", 4096.0, st)


def test_optional_columns_are_read_with_the_table(tmp_path):
    import pyarrow as pa

    from pagecore.pages.tables import PageTableWriter

    path = tmp_path / "g.parquet"
    fields = [
        pa.field("guest_free", pa.bool_()),
        pa.field("host_present", pa.bool_()),
        pa.field("csize_lz4", pa.int32()),
    ]
    g = np.arange(8, dtype=np.uint64)
    with PageTableWriter(path, "g", {"hash_only": True}, extra_fields=fields) as w:
        w.write(g, g + 1, np.zeros(8, bool), extra={"guest_free": g > 5, "host_present": g < 7,
                                                     "csize_lz4": np.full(8, 100, np.int32)})  # fmt: skip
    v = H.load_vm({"pages": str(path)}, 0)
    assert v.frame["guest_free"].tolist() == [False] * 6 + [True] * 2
    assert v.frame["host_present"].sum() == 7 and (v.frame["csize_lz4"] == 100).all()


def test_kvm_mom_balloons_guest_free_memory_above_20_percent():
    vms = _hand_vms()  # 2 × 1024 pages, active 0.5 → 512 idle pages each
    st = H.HostSettings(vm_overhead_mb=0.0, kvm_thp=False)
    small = 4.5
    assert not H.evaluate(_members(vms), "kvm-ksm", small, st).fits  # no balloon: swaps
    st.kvm_balloon = "mom"
    f = H.evaluate(_members(vms), "kvm-ksm", small, st)
    # each guest may give its free memory (the idle half of the 640.5 pages it backs after
    # sharing) above 20 % of its 1024 pages
    backed = 1281
    give = 2 * (0.5 * backed / 2 - 0.2 * 1024)
    aim = (0.8 * small) * 256
    assert f.saved_mb["balloon"] == pytest.approx(min(give, backed - aim) / 256, abs=3 / 256)
    assert f.idle_tax_mb == 0
    for v in vms:  # the guests' own free-page lists replace the idle estimate
        v.frame["guest_free"] = False
    f = H.evaluate(_members(vms), "kvm-ksm", small, st)
    assert f.saved_mb["balloon"] == 0 and not f.fits
    with pytest.raises(ConfigError, match="none or mom"):
        H.HostSettings(kvm_balloon="ovirt")


def test_replay_cross_check_shares_contents_and_reports_swap():
    rng = np.random.default_rng(41)
    common = rng.integers(1, 10**9, 256).astype(np.uint64)
    vms = []
    for i in range(2):
        h = np.concatenate([common, rng.integers(1, 10**9, 256).astype(np.uint64)])
        vms.append(_vm(f"r{i}", h, active=0.25, activity="light"))
    st = H.HostSettings(vm_overhead_mb=0.0, hypervisor_mb=0.0, scanner={"scan_rate_vm": 200, "scan_rate_total": 400})
    roomy = H.replay(_members(vms), "esx2002", 64.0, st, boot_s=5.0, duration_s=120.0)
    assert roomy["fits"] and roomy["swap_out_after_boot_mb"] == 0 and not roomy["refused"]
    # the 256 common pages are found and shared across the two VMs: one copy's frames map the other's
    assert roomy["shared_mb_end"] >= 0.9 * 256 / 256
    salted = H.replay(_members(vms), "esxi", 64.0, st, boot_s=5.0, duration_s=120.0)
    assert salted["shared_mb_end"] == 0  # salting: no content is shared across VMs
    tight = H.replay(_members(vms), "esx2002", 2.2, st, boot_s=5.0, duration_s=120.0)
    assert tight["swap_out_in_boot_mb"] > 0
    with pytest.raises(ConfigError, match="replay runs the ESX manager"):
        H.replay(_members(vms), "kvm-ksm", 64.0, st)


def test_replay_holds_a_vm_to_its_limit():
    """The replay ignored ``limit_mb`` (session 19): a 2-MiB VM of unique pages limited to 1 MiB on
    a roomy host held all 512 pages. By hand: it touches its 512 pages once in the 5-s boot and may
    hold 256, so at least 256 pages (1 MiB) go to swap during the boot, however free the host."""
    rng = np.random.default_rng(5)
    st = H.HostSettings(vm_overhead_mb=0.0, hypervisor_mb=0.0)
    free = H.replay(_members([_vm("l", rng.integers(1, 10**9, 512), activity="idle")]), "esx2002", 64.0, st,
                    boot_s=5.0, duration_s=60.0)  # fmt: skip
    assert free["swap_out_in_boot_mb"] == 0 and free["swapped_mb_end"] == 0
    v = _vm("l", rng.integers(1, 10**9, 512), activity="idle", limit_mb=1.0)
    lim = H.replay(_members([v]), "esx2002", 64.0, st, boot_s=5.0, duration_s=60.0)
    assert lim["swap_out_in_boot_mb"] >= 1.0


def test_ksm_walks_thp_zero_pieces_but_never_merges_them():
    h = np.concatenate([np.zeros(512), np.arange(1, 257), np.arange(1, 257), np.zeros(10)])
    v = _vm("t", h)
    st = H.HostSettings(kvm_thp=True, ksm={"smart_scan": False})
    got = H.scan_over_time(_members([v]), "kvm-ksm", st)
    assert got["pages"] == len(h)  # the all-zero huge page is walked (costs visits) ...
    ps = H.page_set(_members([v]), "kvm-ksm", st)
    want = sum(H.sharing_savings(ps, "kvm-ksm", st)["total"].values())
    assert want == 256 + 9  # ... but only the 256 copies and the 10 zero pages outside it merge
    assert got["converged_saved_mb"] * 256 == pytest.approx(want)


def test_cooperative_reporting_order_is_configurable():
    n = 59 * 512
    h = np.arange(1, n + 1, dtype=np.uint64)
    v = _vm("g", h)
    free = np.zeros(n, bool)
    free[20 * 512 :] = True
    free[20 * 512 + 300] = False  # one used page in the first free 2 MiB chunk
    v.frame["guest_free"] = free
    order9 = H.evaluate(_members([v]), "cooperative", 4096.0, H.HostSettings(kvm_thp=False)).saved_mb["free_report"]
    v.cache.clear()
    st = H.HostSettings(kvm_thp=False, reporting={"order": 8})
    order8 = H.evaluate(_members([v]), "cooperative", 4096.0, st).saved_mb["free_report"]
    assert order8 == pytest.approx(order9 + 1.0)  # the free 1 MiB half of the broken chunk is reported too
    with pytest.raises(ConfigError, match=r"host\.reporting"):
        H.HostSettings(reporting={"order": 12})


def test_mixed_page_tables_are_refused_before_any_number(tables, tmp_path):
    keyed = _table(tmp_path / "k.parquet", "k", np.arange(1, 1025))
    from pagecore.pages.tables import write_page_table

    write_page_table(keyed, "k", np.arange(1024, dtype=np.uint64), np.arange(1, 1025, dtype=np.uint64),
                     np.zeros(1024, bool), {"hash_only": True, "hash_key_id": "k1"})  # fmt: skip
    with pytest.raises(InputError, match="key"):
        H.load_vms([{"pages": str(tables[0])}, {"pages": str(keyed)}])
    with pytest.raises(InputError, match="given twice"):  # one file under two VM names
        H.load_vms([{"pages": str(tables[0])}, {"pages": str(tables[0]), "name": "other"}])


def test_cli_refuses_to_write_over_a_table_named_in_the_vm_file(tables, tmp_path):
    import yaml

    f = tmp_path / "vms.yaml"
    f.write_text(yaml.safe_dump([{"pages": str(tables[0])}, {"pages": str(tables[1])}]))
    before = tables[1].read_bytes()
    p = _run("host", "--vms", str(f), "--memory", "64", "--format", "csv", "-o", str(tables[1]), check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert tables[1].read_bytes() == before
