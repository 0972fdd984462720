"""What a reader sees in the figures: distinct colours, labelled series, no hidden duplicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba

from pagecore.plotting import fig08_dynamic_reallocation, io_remapping, scan_sharing_over_time, whatif_memory_manager


def _labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []


def test_fig08_balloon_and_shared_differ_in_colour_and_state_line_off_the_frame():
    t = np.arange(0, 90, 5.0)
    panels = pd.DataFrame({"t_min": t} | {f"{w}_{k}": t + i for i, w in enumerate(("total", "citrix", "sql"))
                                          for k in ("alloc", "active", "balloon", "shared")})  # fmt: skip
    host = pd.DataFrame({"t": t * 60, "state": ["high"] * len(t)})
    fig = fig08_dynamic_reallocation(panels, host)
    ax_state, ax_all = fig.axes[0], fig.axes[1]
    colours = {line.get_label(): to_rgba(line.get_color()) for line in ax_all.get_lines()}
    assert colours["Balloon"] != colours["Shared"]
    assert len(set(colours.values())) == 4
    lo, hi = sorted(ax_state.get_ylim())
    for line in ax_state.get_lines():
        y = np.asarray(line.get_ydata(), float)
        assert (y > lo + 0.2).all() and (y < hi - 0.2).all(), "state line on the frame"


def test_whatif_rates_on_their_own_axis_and_every_series_labelled():
    rows = []
    for v in (0.0, 0.5, 0.75):
        rows.append({"dim": "tau", "value": v, "idle_alloc_mb": 180 - 100 * v, "active_alloc_mb": 180 + 70 * v,
                     "active_guest_paging_mb_min": 5 - 4 * v})  # fmt: skip
    for v in (10, 100):
        rows.append({"dim": "sample_pages", "value": v, "rmse_mb": 30 / v, "bias_mb": 1.0, "sample_rmse_mb": 40 / v})
    for v in (1.0, 1.6):
        rows.append({"dim": "overcommit", "value": v, "mean_balloon_mb": 10 * v, "swapped_out_mb": v,
                     "guest_pageouts_mb": 2 * v, "time_not_high_pct": 20 * v})  # fmt: skip
    fig = whatif_memory_manager(pd.DataFrame(rows))
    a, _, c, a2, c2 = fig.axes  # the twins come last
    assert "MB/min" in a2.get_ylabel() and "MB/min" not in a.get_ylabel()
    assert not [line for line in a.get_lines() if "MB/min" in line.get_label()]
    for ax, twin in ((a, a2), (c, c2)):
        legend = _labels(ax)
        for line in twin.get_lines():
            assert line.get_label() in legend, (line.get_label(), legend)
    assert c.get_ylabel()


def test_io_remapping_draws_one_baseline_when_workloads_coincide():
    thr = pd.DataFrame(
        [{"workload": w, "threshold": t, "copies": (1000 if t < 0 else 10 * (t + 1)) + j}
         for j, w in enumerate(("network", "disk", "mixed")) for t in (-1, 0, 1, 3, 7)]
    )  # fmt: skip
    scar = pd.DataFrame(
        [{"policy": p, "low_pages": n, "copies": 1000.0} for p in ("no remapping", "random", "cost_benefit")
         for n in (64, 128)]
    )  # fmt: skip
    ax = io_remapping(thr, scar, 8).axes[0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and "1,000–1,002" in dashed[0].get_label()
    assert dashed[0].get_label() in _labels(ax)
    thr.loc[(thr.workload == "disk") & (thr.threshold < 0), "copies"] = 5000
    ax = io_remapping(thr, scar, 8).axes[0]
    assert len([line for line in ax.get_lines() if line.get_linestyle() == "--"]) == 2


def test_scan_target_line_is_labelled_and_below_the_top():
    tl = pd.DataFrame({"model": ["esx"] * 3 + ["ksm"] * 3, "setting": ["ESX a"] * 3 + ["KSM b"] * 3,
                       "t": [0, 1, 2] * 2, "saved_mb": [0, 5, 10] * 2, "work_pages": [1, 10, 100] * 2})  # fmt: skip
    summ = pd.DataFrame({"model": ["esx", "ksm"], "exact_saved_mb": [10.0, 10.0]})
    ax = scan_sharing_over_time(tl, summ).axes[0]
    targets = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(targets) == 1 and "10.0 MB" in targets[0].get_label() and targets[0].get_label() in _labels(ax)
    assert ax.get_ylim()[1] > 10.0
