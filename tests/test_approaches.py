"""Transparent vs cooperative reclamation (issue 20): every approach's settled value equals the
model it stands for, curves only grow, and the combinations add what each part leaves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pagecore.experiments import approaches as A
from pagecore.experiments import host as H
from pagecore.experiments.cooperative import free_report


def _vm(name, hashes, free, active):
    frame = pd.DataFrame(
        {"vm": name, "gpfn": np.arange(len(hashes), dtype=np.uint64), "hash": hashes, "zero": hashes == 0}
    )
    frame["guest_free"] = free
    return H.HostVM(name=name, frame=frame, size_mb=len(hashes) / 256, active=active)


@pytest.fixture
def vms():
    rng = np.random.default_rng(33)
    n = 59 * 512
    out = []
    for i, act in enumerate((0.2, 0.8)):
        h = rng.integers(1, 4000, n).astype(np.uint64)
        h[rng.random(n) < 0.1] = 0
        free = np.zeros(n, bool)
        free[20 * 512 :] = True
        out.append(_vm(f"g{i}", h, free, act))
    return out


def test_each_approach_settles_on_its_model(vms):
    st = H.HostSettings(kvm_thp=False)
    tl, tab, extra = A.compare_approaches(vms, st, host_mb=512.0)
    got = tab.set_index("approach")["reclaimed_mb"] * 256
    members = H.replicate(vms, [v.frame["hash"].to_numpy(np.uint64) for v in vms], 2)
    esx = H.sharing_savings(H.page_set(members, "esx2002", st), "esx2002", st)["total"]
    ksm = H.sharing_savings(H.page_set(members, "kvm-ksm", st), "kvm-ksm", st)["total"]
    assert got["zero pages (ESX scanner)"] == pytest.approx(esx["zero"])
    assert got["content sharing (ESX scanner)"] == pytest.approx(sum(esx.values()))
    assert got["content sharing (KSM)"] == pytest.approx(sum(ksm.values()))
    balloon = sum(min((1 - v.active) * len(v.frame), 0.65 * len(v.frame)) for v in vms)
    assert got["ballooning"] == pytest.approx(balloon)
    fpr = sum(int(free_report(v.frame)["discarded"].sum()) for v in vms)
    assert fpr > 0 and got["free page reporting"] == pytest.approx(fpr)
    assert extra["fpr_reports"] > 0
    # reporting first: KSM shares only what was not discarded
    assert (
        got["free page reporting"] < got["reporting + KSM"] < got["free page reporting"] + got["content sharing (KSM)"]
    )
    assert got["ESX sharing + ballooning"] < got["content sharing (ESX scanner)"] + got["ballooning"]
    for name, g in tl.groupby("approach"):
        assert (np.diff(g.sort_values("t_s")["reclaimed_mb"].to_numpy()) >= -1e-9).all(), name
    assert set(tab["needs_from_guest"]) >= {"nothing", "a balloon driver"}
    assert tab.set_index("approach").loc["ballooning", "idle_tax_moved_mb"] >= 0


def test_balloon_curve_follows_the_adaptive_rate():
    t = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 10.0])
    # one VM, plenty to take: 1, 2, 4 MB in the first three seconds, then 16 MB/s (cap 4)
    c = A._balloon_curve(np.array([1e9]), t, 1.0, 4.0) / 256
    assert c.tolist() == [0, 0, 1, 3, 7, 7 + 7 * 4]
    # capped by what the VM has
    assert A._balloon_curve(np.array([512.0]), t, 1.0, 4.0)[-1] == 512.0


def test_guest_free_from_the_content_model_only_when_missing(vms):
    own = vms[0].frame["guest_free"].copy()
    A.with_guest_free(vms)
    assert (vms[0].frame["guest_free"] == own).all()
    bare = H.HostVM(name="b", frame=vms[1].frame.drop(columns="guest_free"), size_mb=1.0)
    A.with_guest_free([bare], rule="zero")
    assert (bare.frame["guest_free"] == bare.frame["zero"]).all()


def test_reporting_wins_only_what_the_host_backed(vms):
    v = vms[0]
    v.frame["host_present"] = True
    v.frame["host_zero_page"] = False
    v.frame["host_thp"] = False
    v.frame["host_ksm"] = False
    v.frame.loc[v.frame.index[-512:], "host_present"] = False  # the last free chunk was never backed
    st = H.HostSettings(kvm_thp=False)
    _, tab, _ = A.compare_approaches([v], st)
    got = tab.set_index("approach").loc["free page reporting", "reclaimed_mb"] * 256
    assert got == int(free_report(v.frame)["discarded"].sum()) == 38 * 512
