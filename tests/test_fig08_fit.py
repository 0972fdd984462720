"""Issue 14 item 6: Figure 8's working sets come from a declared fit on paper.FIG08's active
panels (c), (d) and (b) - (c) - (d), not from schedules typed into the config."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import pytest
import yaml

from pagecore import paper
from pagecore.experiments import apply_fig08_fit, fit_fig08_active

ROOT = Path(__file__).resolve().parents[1]
CFG = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())


def _fig08(**bg):
    """A small Figure 8 section: the paper's five VMs, OS 40 MB, given backgrounds."""
    vms = []
    for name, mx in zip(paper.FIG08_VMS.vm, paper.FIG08_VMS.max_mb, strict=True):
        vms.append(
            {
                "name": name,
                "os": "windows",
                "max_mb": float(mx),
                "boot": {"os_mb": 40.0},
                "background": {"mb": float(bg.get(name, 0.0))},
                "foreground": {"period_s": 30.0, "schedule": [[0.0, 90.0, 1.0]]},
            }
        )
    return {"duration_min": 90.0, "host": {"system_mb": 1272.0}, "vms": vms}


def test_targets_are_the_papers_panels_and_the_rest_split_by_max():
    fit = fit_fig08_active(_fig08())
    p = paper.FIG08.set_index("t_min")
    # worked by hand at 20 min: total 459, citrix 96, sql 119 -> the other three share 244
    # in proportion 256 : 256 : 320 (= 75.08, 75.08, 93.85 MB)
    assert fit["targets"]["citrix@20min"] == pytest.approx(96.0)
    assert fit["targets"]["sql@20min"] == pytest.approx(119.0)
    assert fit["targets"]["exchange@20min"] == pytest.approx(244 * 256 / 832, abs=1e-3)
    assert fit["targets"]["citrix_client@20min"] == pytest.approx(244 * 320 / 832, abs=1e-3)
    for t in p.index[p.index >= 5]:
        tot = sum(fit["targets"][f"{n}@{t:g}min"] for n in paper.FIG08_VMS.vm)
        assert tot == pytest.approx(p.at[t, "total_active"], abs=5e-3)
    assert "citrix@0min" not in fit["targets"]  # the 0-minute point is the boot, not a target


def test_schedule_segments_cover_the_run_and_subtract_the_background():
    fit = fit_fig08_active(_fig08(sql=12.0), lead_min=1.0)
    rows = fit["schedules"]["sql"]
    assert rows[0][0] == pytest.approx(5 - 2.5 - 1.0) and rows[-1][1] == 90.0
    assert all(a[1] == pytest.approx(b[0]) for a, b in itertools.pairwise(rows))  # contiguous
    assert rows[0][2] == pytest.approx(279 - 12)  # sql_active@5 minus its background
    assert rows[6][2] == pytest.approx(23 - 12)  # @35 min
    # a target at or below the VM's background keeps the 1-MB floor: never negative, and never
    # 0 (which would read as the application exiting and start the zero page thread)
    fit2 = fit_fig08_active(_fig08(sql=30.0))
    assert min(r[2] for r in fit2["schedules"]["sql"]) == 1.0


def test_cap_split_options_and_errors():
    f = _fig08()
    f["vms"][4]["max_mb"] = 200.0  # sql: 279 MB target does not fit above os 40 MB
    assert fit_fig08_active(f)["schedules"]["sql"][0][2] == pytest.approx(160.0)
    eq = fit_fig08_active(_fig08(), "equal")
    assert eq["targets"]["exchange@20min"] == pytest.approx(eq["targets"]["citrix_client@20min"])
    w = fit_fig08_active(_fig08(), {"exchange": 1.0})
    assert w["targets"]["exchange_client@20min"] == 0.0 and w["targets"]["exchange@20min"] == pytest.approx(244.0)
    with pytest.raises(ValueError, match="split"):
        fit_fig08_active(_fig08(), "nonsense")
    with pytest.raises(ValueError, match="lead_min"):
        fit_fig08_active(_fig08(), lead_min=3.0)
    bad = _fig08()
    bad["vms"] = bad["vms"][:2]
    with pytest.raises(ValueError, match="citrix"):
        fit_fig08_active(bad)


def test_apply_replaces_only_the_schedules():
    f = _fig08()
    before = copy.deepcopy(f)
    fit = fit_fig08_active(f)
    g = apply_fig08_fit(f, fit)
    assert f == before  # not modified
    for v, w in zip(g["vms"], before["vms"], strict=True):
        assert v["foreground"]["schedule"] == fit["schedules"][v["name"]]
        assert {k: x for k, x in v.items() if k != "foreground"} == {k: x for k, x in w.items() if k != "foreground"}
        assert v["foreground"]["period_s"] == w["foreground"]["period_s"]


def test_default_config_types_no_figure8_schedule_and_declares_the_fit():
    f8 = CFG["workloads"]["fig08"]
    assert all(not v.get("foreground", {}).get("schedule") for v in f8["vms"])
    assert CFG["workloads"]["fig08_fit"]["split"] == "max_mb"
    fit = fit_fig08_active(f8, **CFG["workloads"]["fig08_fit"])
    assert set(fit["schedules"]) == {v["name"] for v in f8["vms"]}


def test_a_shorter_run_keeps_only_the_segments_it_reaches():
    """A 10-minute Figure 8 run (the workflow test's): segments end at the run's end, none after it."""
    short = {**_fig08(), "duration_min": 10.0}
    rows = fit_fig08_active(short, lead_min=1.0)["schedules"]["sql"]
    # marks 5 and 10 start at 1.5 and 6.5 min; the 15-minute mark's segment would start at 11.5
    assert [r[:2] for r in rows] == [[1.5, 6.5], [6.5, 10.0]]
    full = fit_fig08_active(_fig08(), lead_min=1.0)["schedules"]["sql"]
    assert [r[2] for r in rows] == [r[2] for r in full[:2]]


def test_no_segment_starts_before_its_vm_has_booted():
    """Applications run on the booted guest (§6.3: the VMs boot, zeroing all memory, and the
    benchmarks start later): each VM's first segment starts at its boot's end, worked by hand."""
    f = _fig08()
    for v in f["vms"]:
        v["boot"] = {"zero": True, "zero_mb_s": 6.0, "os_mb": 40.0, "boot_s": 100.0}
    f["vms"][1]["start_min"] = 3.0  # exchange_client powers on at 3 min
    f["vms"][4]["boot"] = {"zero": False, "os_mb": 40.0, "boot_s": 500.0}  # sql: an 8.33-min boot, no zeroing
    fit = fit_fig08_active(f, lead_min=1.0)
    s = fit["schedules"]
    # exchange (256 MB): 100 s loading + (256 - 40) MB / 6 MB/s = 136 s = 2.2667 min, rounded up
    assert s["exchange"][0][:2] == [pytest.approx(2.267), pytest.approx(6.5)]
    # citrix (320 MB): 100 + 280 / 6 = 146.67 s = 2.4444 min -> 2.445; the next segment is unchanged
    assert s["citrix"][0][:2] == [pytest.approx(2.445), pytest.approx(6.5)]
    assert s["citrix"][1][:2] == [pytest.approx(6.5), pytest.approx(11.5)]
    # exchange_client starts at 3 min: booted at 3 + 2.2667 = 5.2667 min
    assert s["exchange_client"][0][0] == pytest.approx(5.267)
    # sql booted at 500 s = 8.333 min: the 1.5-6.5 segment is dropped, the 6.5-11.5 one starts at 8.334
    assert s["sql"][0][:2] == [pytest.approx(8.334), pytest.approx(11.5)]
    assert s["sql"][0][2] == pytest.approx(51.0)  # the 10-minute mark's target (sql_active@10)
    assert len(s["sql"]) == len(s["citrix"]) - 1
    # the targets are the paper's whatever the boot: the rule moves only when a segment starts
    assert fit["targets"] == fit_fig08_active(_fig08(), lead_min=1.0)["targets"]
