"""Session 19 fidelity audit (issue 14): numbers labelled ``predicted`` that inputs or arithmetic fix,
and quantities compared twice. Each test is built from the default run's case that was scored as a
prediction before the audit."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pagecore import paper
from pagecore.experiments.memory_manager import fig08_records

ROOT = Path(__file__).resolve().parents[1]
CFG = yaml.safe_load((ROOT / "workflow/config/config.yaml").read_text())


# ------------------------------------------------------------------------------ Figure 4
def test_fig04_zero_pages_of_n_guests_are_n_times_the_fitted_one():
    """Default run: zero_mb@n was 2.6992 x n MB for every n (n x the fitted zero_mb@1), scored as 9
    predictions (7 within, all of them also within for the null model 'linear in #VMs'). They are
    inputs now; the identity they rest on holds for the configured content model."""
    from pagecore.experiments.sharing_figures import fig04_records, fig04_sweep_from_config

    synth = copy.deepcopy(CFG["synth"])
    synth["fig04"]["vms"], synth["fig04"]["mem_mb"] = 4, 2  # the identity is per guest: small is enough
    sweep = fig04_sweep_from_config(synth).set_index("vms")
    assert np.allclose(sweep["zero_mb"], sweep.index * sweep.at[1, "zero_mb"], rtol=0, atol=1e-9)
    recs = {r.quantity: r for r in fig04_records(sweep.reset_index(), ["zero_mb@1", "shared_mb@2"])}
    assert recs["zero_mb@1"].kind == "fitted"
    for n in (2, 3, 4):
        r = recs[f"zero_mb@{n}"]
        assert r.kind == "input" and "zero_mb@1" in r.source
    assert recs["shared_mb@3"].kind == "predicted" and recs["reclaimed_mb@4"].kind == "predicted"


# ------------------------------------------------------------------------------ Figure 5
def test_fig05_zero_pages_of_c_are_the_fraction_fitted_on_b_times_c():
    """Default run: zero_reclaimed_mb@C was 62.84 MB = catalogue.os.linux.zero (0.0379, fitted on B's
    70 MB) x C's 1658 MB, scored as a prediction (the null model gives 62.87). It is an input."""
    from pagecore.experiments.sharing_figures import fig05_records, fig05_table_from_config

    table = fig05_table_from_config(CFG)
    c = table.set_index("workload").loc["C"]
    frac = CFG["catalogue"]["os"]["linux"]["zero"]
    assert c["zero_reclaimed_mb"] == pytest.approx(
        frac * paper.FIG05.set_index("workload").at["C", "total_mb"], abs=0.1
    )
    recs = {r.quantity: r for r in fig05_records(table, CFG["fig05"]["fitted_to"])}
    assert recs["zero_reclaimed_mb@B"].kind == "fitted"
    assert recs["zero_reclaimed_mb@C"].kind == "input" and "zero_reclaimed_mb@B" in recs["zero_reclaimed_mb@C"].source
    assert recs["shared_mb@C"].kind == "predicted" and recs["reclaimed_mb@C"].kind == "predicted"
    # with no zero fraction fitted, C's zero pages stay a prediction
    recs = {r.quantity: r for r in fig05_records(table, ["reclaimed_mb@A"])}
    assert recs["zero_reclaimed_mb@C"].kind == "predicted"
    from pagecore.experiments.sharing_figures import fig05_os

    assert fig05_os("C") == fig05_os("B") == "linux" and fig05_os("A") == "winnt4"


# ------------------------------------------------------------------------------ Figure 8
VMAX = dict(zip(paper.FIG08_VMS.vm, paper.FIG08_VMS.max_mb.astype(float), strict=True))


def _fig08_run(balloon_gap_mb: float = 0.0, sql_alloc: float = 200.0):
    """A hand-made 90-min Figure 8 timeline, one row per VM every 5 s: after 3 min every VM's
    max = alloc + balloon + swapped + ``balloon_gap_mb`` (untouched memory); SQL's allocation is
    ``sql_alloc`` from 30 to 60 min and 200 MB elsewhere, each other VM's 60 % of its max."""
    t = np.arange(0, 90 * 60 + 1, 5.0)
    rows = []
    for vm, mx in VMAX.items():
        alloc = np.full(t.size, 0.6 * mx)
        if vm == "sql":
            alloc = np.where((t >= 1800) & (t <= 3600), sql_alloc, 200.0)
        swapped = np.full(t.size, 4.0)
        gap = np.where(t > 180, balloon_gap_mb, 50.0)
        balloon = mx - alloc - swapped - gap
        rows.append(
            pd.DataFrame(
                {"t": t, "vm": vm, "alloc": alloc, "balloon": balloon, "swapped": swapped, "active_est": 10.0,
                 "shared": 5.0, "share_before_swap": 0.0, "swap_out": 0.0}
            )
        )  # fmt: skip
    vms = pd.concat(rows, ignore_index=True)
    host = pd.DataFrame({"t": t, "state": "high"})
    return vms, host


def test_fig08_balloon_is_the_allocation_again_when_memory_is_all_accounted():
    """Default run: after the boot every VM had max = alloc + balloon + swapped at every record
    (e.g. SQL at 10 min 200.75 + 119.25 + 0 = 320), so each balloon point repeated the allocation
    at the same time: 46 balloon points and 2 balloon extremes were scored as predictions beside
    their allocations. Now the balloon is input, naming the allocation record; the allocation stays
    predicted. With untouched memory (a gap) the balloon is not fixed by the allocation."""
    vms, host = _fig08_run()
    recs = {r.quantity: r for r in fig08_records(vms, host)}
    for who in ("total", "citrix", "sql"):
        b, a = recs[f"{who}_balloon@40min"], recs[f"{who}_alloc@40min"]
        assert b.kind == "input" and f"{who}_alloc@40min" in b.source
        assert a.kind == "predicted" or (who == "sql" and a.kind == "input")
        assert recs[f"{who}_balloon@5min"].kind == "fitted"  # the boot window stays fitted
    assert recs["total_balloon_max_mb"].kind == "input" and "total_alloc_min_mb" in recs["total_balloon_max_mb"].source
    assert recs["sql_query_balloon_min_mb"].kind == "input"
    # flat allocations through the windows: each extreme is every mark's reading there (session 24)
    assert recs["total_alloc_min_mb"].kind == "input" and "total_alloc@15min" in recs["total_alloc_min_mb"].source
    peak = recs["sql_query_alloc_peak_mb"]
    assert peak.kind == "input" and "sql_alloc@65min" in peak.source

    vms, host = _fig08_run(balloon_gap_mb=3.0)
    recs = {r.quantity: r for r in fig08_records(vms, host)}
    assert recs["sql_balloon@40min"].kind == "predicted" and recs["total_balloon@70min"].kind == "predicted"
    # the balloons are flat here, so each extreme is a (predicted) mark's reading again (session 24)
    assert "total_balloon@15min" in recs["total_balloon_max_mb"].source
    assert "sql_balloon@65min" in recs["sql_query_balloon_min_mb"].source
    from pagecore.experiments.memory_manager import FIG08_IDENTITY_MB, fig08_identity_gap

    gap = fig08_identity_gap(_fig08_run()[0])
    assert (gap.loc[gap.index > 180].to_numpy() <= FIG08_IDENTITY_MB).all()
    late = fig08_identity_gap(vms).loc[gap.index > 180]  # 3 MB untouched per VM, 15 MB in total
    assert np.allclose(late.drop(columns="total"), 3.0) and np.allclose(late["total"], 15.0)


def test_fig08_allocation_at_min_mb_is_the_floor():
    """Default run: SQL's allocation was exactly its min_mb 160 at 30, 35, 40, 45, 50 and 60 min,
    scored as 6 non-trivial predictions within tolerance, while the same floor in
    sql_alloc_idle_min_mb was already an input. An allocation at its VM's min_mb in the paper's
    panel and in the run is min_mb compared with itself (input); session 21: only both, so the
    label is the same for every run that clamps and never takes a miss out of the score (it was
    decided on the run's value alone, so a run at the floor where the paper's VM was far above it
    dropped out, and the number of predicted records changed with the seed)."""
    vmin = dict(zip(paper.FIG08_VMS.vm, paper.FIG08_VMS.min_mb.astype(float), strict=True))
    at_floor = paper.FIG08.t_min[paper.FIG08.sql_alloc == vmin["sql"]].tolist()
    assert at_floor == [35, 40, 45]  # the paper's panel (d) sits at 160 MB there
    vms, host = _fig08_run(sql_alloc=vmin["sql"])
    recs = {r.quantity: r for r in fig08_records(vms, host)}
    for m in at_floor:
        r = recs[f"sql_alloc@{m}min"]
        assert r.kind == "input" and "min_mb 160" in r.source
    # the run at the floor, the paper's VM above it (167, 167, 168 MB): the model's clamp, a prediction
    for m in (30, 50, 60):
        assert recs[f"sql_alloc@{m}min"].kind == "predicted", m
    assert recs["sql_alloc@20min"].kind == "predicted"
    # the paper at the floor, the run above it: a prediction (a miss here would count)
    vms, host = _fig08_run(sql_alloc=vmin["sql"] + 1.5)
    assert {r.quantity: r.kind for r in fig08_records(vms, host)}["sql_alloc@40min"] == "predicted"
    vms, host = _fig08_run(sql_alloc=250.0)
    r = {r.quantity: r for r in fig08_records(vms, host)}["sql_alloc@40min"]
    assert r.kind == "predicted" and r.ours == 250.0


# ------------------------------------------------------------------------------ provenance
def test_balloon_limit_chosen_after_looking_at_figure7_is_declared_so():
    """The config says sim.balloon.max_fraction 0.65 (ESX 4) "was preferred after looking at
    Figure 7" over the paper-era 0.5 (ESX 2.x), but its provenance row was a plain "doc" value
    chosen on no figure, so the influence step never ran it. It is chosen on Figure 7 now."""
    from pagecore.experiments.provenance import PARAMETERS

    cfg_text = (ROOT / "workflow/config/config.yaml").read_text()
    assert "preferred\n                          # after looking at Figure 7" in cfg_text
    row = {p.key: p for p in PARAMETERS}["sim.balloon.max_fraction"]
    assert row.kind == "fitted" and row.chosen_on == ("fig07",)
    assert (row.low, row.high) == (0.5, 0.65)  # still swept over the documented range


def test_rows_that_say_a_value_was_chosen_on_a_figure_declare_it():
    """A provenance row whose source says the value was read off, tuned or preferred by looking at a
    figure is ``fitted`` and names the figure in ``chosen_on`` (or is a declared fit)."""
    import re

    from pagecore.experiments.provenance import DECLARED_FITS, PARAMETERS

    said = re.compile(r"after looking at|read off Figure|iterated until|by eye|preferred|chosen (so|from)", re.I)
    rows = [p for p in PARAMETERS if said.search(p.source) and "not chosen" not in p.source]
    assert len(rows) >= 8
    for p in rows:
        assert p.kind == "fitted" and (p.chosen_on or p.key in DECLARED_FITS), p.key


# ------------------------------------------------------------------------------ paper values in the config
def _scenario(name):
    from pagecore.synth import scenario

    w = CFG["workloads"]
    return scenario(name, w[name], seed=w["seed"], chunk_s=w["chunk_s"])


def test_figure7_host_and_start_are_the_papers():
    """Figure 7's host (512 MB, TEXT), the memory it leaves for VMs (about 360 MB, TEXT: the τ = 0
    allocations are half of it) and VM2's start (5.2 min, GRAPH) were typed into the config with
    no test that they equal pagecore.paper."""
    sc = _scenario("fig07")
    overhead = sum(v.overhead_mb for v in sc.vms)
    assert all(v.overhead_mb == paper.PARAMETERS["overhead_mb"] for v in sc.vms)
    assert sc.host.system_mb == paper.FIG07["system_mb"]
    assert sc.host.system_mb - sc.host.esx_mb - overhead == paper.FIG07["available_mb"]
    assert [v.start_min for v in sc.vms] == [0.0, paper.FIG07["vm2_start_min"]]


def test_figure8_host_holds_the_papers_gigabyte_and_overhead():
    """Figure 8's host: system − ESX is the text's 1 GB for VMs and their overhead reservations add
    up to the text's 160 MB (5 x 32 MB), as provenance.py's workloads.fig08.host.system_mb row says."""
    sc = _scenario("fig08")
    assert sc.host.system_mb - sc.host.esx_mb == paper.FIG08_TEXT["host_mb"]
    assert sum(v.overhead_mb for v in sc.vms) == paper.FIG08_TEXT["overhead_mb"]
    assert all(v.overhead_mb == paper.PARAMETERS["overhead_mb"] for v in sc.vms)


def test_figure6_background_and_null_model_come_from_the_paper():
    """Figure 6's configured background (14 MB) lies in the text's 10-20 MB, and the null model's
    15 MB background and 250 MB toucher peak are paper.py's (they were typed in nullmodels.py)."""
    from pagecore.experiments import nullmodels

    lo, hi = paper.FIG06["background_text_mb"]
    assert lo <= CFG["workloads"]["fig06"]["vms"][0]["background"]["mb"] <= hi
    assert nullmodels.FIG06_BACKGROUND_MB == (lo + hi) / 2 == 15.0
    assert nullmodels.null_value("fig06", "peak_estimate_mb") == paper.FIG06_TOUCHER.mb.max() + 15.0 == 265.0


# ------------------------------------------------------------------------------ null models
def test_fig04_null_model_is_linear_through_the_fitted_points():
    """Figure 4's null model was n x the 1-VM point for every series, so the shared MB at 3-9 VMs
    (all within 10 % of the straight line between the *fitted* 2-VM and 10-VM points) counted
    as 7 non-trivial predictions. Hand-worked: shared@3 = 47.7 + (262.0 - 47.7) / 8 = 74.4875
    (paper 76.0: within 10 %), shared@9 = 47.7 + 7 x 26.7875 = 235.2125; reclaimed, fitted only
    at 1 VM, was n x 4.9 (since session 24: (1 - 1/n) x the null's shared MB, tests/test_fidelity_audit_s24.py)."""
    from pagecore.experiments.nullmodels import null_value

    assert null_value("fig04", "shared_mb@3") == pytest.approx(74.4875)
    assert null_value("fig04", "shared_mb@9") == pytest.approx(235.2125)
    assert null_value("fig04", "shared_mb@10") == pytest.approx(262.0)
    assert null_value("fig04", "shared_mb@1") == pytest.approx(6.6)
    assert null_value("fig04", "reclaimed_mb@10") == pytest.approx(0.9 * 262.0)


# ------------------------------------------------------------------------------ summary
def test_summary_names_every_seeds_count_of_predicted_numbers():
    """Whether an allocation sits at its floor, or a balloon repeats the allocation, is an outcome
    of each seed's run, so seeds can have different numbers of predicted records (Figure 8: 90-97
    over the 5 seeds). The per-figure line said "within 41-47 of 97", as if every seed had 97."""
    from pagecore.experiments.records import Record, comparison_table, summarize

    def rec(q, seed, ours):
        return {**Record("fig08", q, "MB", 100.0, ours, "predicted").__dict__, "seed": seed}

    recs = [rec("sql_alloc@10min", 1, 100.0), rec("sql_alloc@15min", 1, 100.0), rec("sql_alloc@10min", 2, 100.0)]
    text = summarize(comparison_table(recs, {"fig08": 0.25}, {"MB": 2.0}), 1)
    assert "fig08: within 1-2 of 1-2," in text
