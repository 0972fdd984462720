"""Session 21: defects found re-reading sessions 19-20's work (each test fails on the code before)."""

from __future__ import annotations

import re

import pytest

from pagecore import PAGE_SIZE


def test_share_report_never_prints_a_negative_time(capsys):
    """The "by difference" rows of ``bench count --verify`` are one best-of time minus others,
    each the best of separate runs: when the parts' best runs were faster than the whole's, the
    report printed a negative time (e.g. ``-0.004``) as if it were a measurement. Such a row now
    says it is below the run-to-run spread, and still shows the difference."""
    from pagecore.bench.count import print_share

    r = {"pages": 1000, "file_bytes": 1000 * PAGE_SIZE, "read": (0.001, 0.001), "share_no_verify": (0.020, 0.02)}
    r.update(load=(0.012, 0.012), count=(0.012, 0.012), verify=(0.030, 0.03), share_verify=(0.045, 0.045))
    r.update(bytes_compared=600 * PAGE_SIZE, pages_compared=600)
    print_share(4, r, 1)
    out = capsys.readouterr().out
    rest = next(ln for ln in out.splitlines() if ln.startswith("  the rest"))
    extra = next(ln for ln in out.splitlines() if ln.startswith("  minus share --no-verify"))
    for line, diff in ((rest, -0.004), (extra, -0.005)):
        assert not re.search(r"\s-\d+\.\d+\s*$", line) and re.search(r"\s< 0\s", line), line
        assert f"{diff:.3f} s" in line and "run-to-run spread" in line, line


def test_null_models_go_through_the_points_the_run_was_fitted_on():
    """Figures 4 and 5's null models go through the paper points the model was fitted on, but
    those points were typed into ``nullmodels`` (FIG04_FITTED_VMS, hosts "A" and "B") beside the
    config's ``fitted_to``, kept equal by a test: a config fitted on other points was scored
    against a null model through the shipped points. The points now come from the run's config
    (``comparison_table(..., fitted)``; the shipped config's by default)."""
    from pagecore import paper
    from pagecore.config import default_config
    from pagecore.experiments import comparison_table, fitted_points, null_value

    p4 = paper.FIG04.set_index("vms")["shared_mb"]
    mine = {"fig04": ["shared_mb@1", "shared_mb@5"], "fig05": ["reclaimed_mb@A"]}
    # Figure 4: the straight line through the 1- and 5-VM points, then its continuation
    assert null_value("fig04", "shared_mb@3", mine) == pytest.approx(p4[1] + (p4[5] - p4[1]) * 2 / 4)
    assert null_value("fig04", "shared_mb@7", mine) == pytest.approx(p4[1] + (p4[5] - p4[1]) * 6 / 4)
    # the shipped config's points by default: 2 and 10 VMs for the shared series
    shipped = fitted_points(default_config())
    assert null_value("fig04", "shared_mb@3") == null_value("fig04", "shared_mb@3", shipped)
    assert null_value("fig04", "shared_mb@3") == pytest.approx(p4[2] + (p4[10] - p4[2]) / 8)
    # Figure 5: host A's reclaimed fraction alone; no zero fraction fitted: none
    p5 = paper.FIG05.set_index("workload")
    frac_a = p5.at["A", "reclaimed_mb"] / p5.at["A", "total_mb"]
    assert null_value("fig05", "reclaimed_mb@C", mine) == pytest.approx(frac_a * p5.at["C", "total_mb"])
    assert null_value("fig05", "zero_reclaimed_mb@C", mine) == 0.0
    rec = {"figure": "fig05", "quantity": "reclaimed_mb@C", "unit": "MB", "paper": 120.0, "ours": 120.0}
    t = comparison_table([{**rec, "kind": "predicted"}], {"fig05": 0.2}, {}, mine)
    assert t["null"].iloc[0] == pytest.approx(frac_a * p5.at["C", "total_mb"])
    # a fitted point the paper has no value at calibrated nothing: left out, not a KeyError
    assert null_value("fig04", "shared_mb@3", {"fig04": ["shared_mb@1", "shared_mb@5", "shared_mb@40"]}) == (
        null_value("fig04", "shared_mb@3", mine)
    )
    assert null_value("fig05", "reclaimed_mb@C", {"fig05": ["reclaimed_mb@A", "reclaimed_mb@Z"]}) == (
        null_value("fig05", "reclaimed_mb@C", mine)
    )
