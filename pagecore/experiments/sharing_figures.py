"""Figures 4 and 5: paper-vs-ours records of the sharing measured on the synthetic guests.

The pipeline measures them on page tables it writes (Figure 4: raw dumps of the Figure 4
content model, hashed and byte-verified; Figure 5: hash-only tables of the composed guests, read
by the ``share_set`` analysis). :func:`fig04_sweep_from_config` and :func:`fig05_table_from_config`
measure the same in a temporary directory from a config alone, hash-only, for the sensitivity
sweep and the provenance check: equal contents get equal hashes either way, so the counts are
the pipeline's (``tests/test_parameter_provenance.py`` compares them with raw dumps).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace

import pandas as pd

from pagecore import paper
from pagecore.experiments.records import Record, sweep_records

#: What Figure 4's numbers compare: VM memory is the configured input (40 MB per guest), so it is
#: drawn but not compared; the percentages are the MB series over that input (each quantity once).
FIG04_COLUMNS = {"shared_mb": ("shared_mb", "MB"), "reclaimed_mb": ("reclaimed_mb", "MB"), "zero_mb": ("zero_mb", "MB")}
FIG04_SOURCE = "fitted: synth.fig04.fractions calibrated on these points (pagecore.synth.calibrate_fig04)"

#: Figure 5's percentages are the MB columns over the input host size: only the MB columns are compared.
FIG05_COLUMNS = {
    "shared_mb": ("shared_mb", "MB"),
    "reclaimed_mb": ("reclaimed_mb", "MB"),
    "zero_reclaimed_mb": ("zero_reclaimed_mb", "MB"),
}
FIG05_SOURCE = "fitted: catalogue.os shared_mb / zero calibrated on these points (pagecore.synth.guests.fit)"

#: Why Figure 4's zero pages of n guests are not a prediction: each guest's zero pages are the
#: fraction ``synth.fig04.fractions.zero`` of its memory, so n guests have n times one guest's.
FIG04_ZERO_SOURCE = (
    "input: n x one guest's zero pages (synth.fig04.fractions.zero x a guest's memory, the fraction fitted on "
    "zero_mb@1): arithmetic on the fitted point, the same as the null model's 'linear in #VMs'"
)
#: Why a Figure 5 host's zero pages are not a prediction when its OS's zero fraction was fitted on
#: another host: the catalogue gives every guest of an OS kind that fraction of its memory.
FIG05_ZERO_SOURCE = (
    "input: catalogue.os.{os}.zero (fitted on {fit}) x the host's {mb:g} MB of guest memory (paper.FIG05 total_mb): "
    "arithmetic on the fitted fraction"
)


def fig04_records(sweep: pd.DataFrame, fitted) -> list[Record]:
    """Figure 4's records from the VM-count sweep (:func:`pagecore.sharing.vm_count_sweep`);
    ``fitted``: the quantities ``synth.fig04.fitted_to`` names. The zero pages of n guests are
    ``input`` (:data:`FIG04_ZERO_SOURCE`): n times the fitted one-guest number."""
    recs = sweep_records("fig04", sweep, paper.FIG04, FIG04_COLUMNS, set(fitted), fitted_source=FIG04_SOURCE)
    return [
        replace(r, kind="input", source=FIG04_ZERO_SOURCE)
        if r.kind == "predicted" and r.quantity.startswith("zero_mb@")
        else r
        for r in recs
    ]


def fig05_os(workload: str) -> str:
    """The catalogue OS kind of a Figure 5 host's guests (paper.FIG05 ``guests``; the config's
    are tested equal)."""
    guests = paper.FIG05.set_index("workload").at[workload, "guests"]
    return "winnt4" if "WinNT" in guests else "linux"


def fig05_os_kinds(scenarios: dict) -> dict[str, str | None]:
    """Each Figure 5 host's catalogue OS kind from the config's ``fig05.scenarios`` (its guests'
    ``os``), None for a host whose guests run several kinds."""
    out = {}
    for host, sc in scenarios.items():
        kinds = {str(g.get("os")) for g in sc.get("guests", [])}
        out[str(host)] = kinds.pop() if len(kinds) == 1 else None
    return out


def fig05_records(table: pd.DataFrame, fitted, os_kinds: dict | None = None) -> list[Record]:
    """Figure 5's records from the hosts' table (:func:`pagecore.sharing.fig05_table`); ``fitted``:
    the quantities ``fig05.fitted_to`` names; ``os_kinds``: each host's OS kind
    (:func:`fig05_os_kinds` of the config; default: read off the paper's guest column,
    :func:`fig05_os`). A host's zero pages are ``input`` when its one OS kind's zero fraction was
    fitted on another host's (:data:`FIG05_ZERO_SOURCE`)."""
    recs = sweep_records(
        "fig05", table, paper.FIG05, FIG05_COLUMNS, set(fitted), key="workload", fitted_source=FIG05_SOURCE
    )
    os_of = os_kinds.get if os_kinds is not None else fig05_os
    fit_zero = {os_of(q.partition("@")[2]): q for q in fitted if q.startswith("zero_reclaimed_mb@")}
    fit_zero.pop(None, None)  # a host of mixed kinds calibrates no one kind
    total = paper.FIG05.set_index("workload")["total_mb"]
    out = []
    for r in recs:
        name, _, host = r.quantity.partition("@")
        os_kind = os_of(host)
        if r.kind == "predicted" and name == "zero_reclaimed_mb" and os_kind is not None and os_kind in fit_zero:
            src = FIG05_ZERO_SOURCE.format(os=os_kind, fit=fit_zero[os_kind], mb=float(total[host]))
            r = replace(r, kind="input", source=src)
        out.append(r)
    return out


def fig04_sweep_from_config(synth: dict) -> pd.DataFrame:
    """The Figure 4 sweep of the guests ``synth["fig04"]`` describes (names ``vm01`` ... as the
    pipeline's), from hash-only page tables."""
    from pagecore.sharing import vm_count_sweep
    from pagecore.synth import Fig04Model

    f = synth["fig04"]
    model = Fig04Model(mem_mb=f["mem_mb"], variants=f["variants"], seed=f["seed"], **f["fractions"])
    frames = []
    for vm in range(int(f["vms"])):
        _, h, z = model.page_table(vm)
        frames.append(pd.DataFrame({"vm": f"vm{vm + 1:02d}", "hash": h, "zero": z}))
    return vm_count_sweep(pd.concat(frames, ignore_index=True))


def fig05_table_from_config(cfg: dict, tmpdir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Figure 5's table for the hosts of ``cfg["fig05"]`` composed from ``cfg["catalogue"]``:
    each host's guests written as one hash-only page table (as the pipeline's
    ``synth_fig05_pages``) and analysed with the config's ``sharing`` settings (as ``share_set``)."""
    from pagecore.experiments.analyze import analyze_page_tables
    from pagecore.sharing import fig05_table
    from pagecore.synth import GuestSet, write_hash_only_tables

    f, s = cfg["fig05"], cfg["sharing"]
    reports = {}
    with tempfile.TemporaryDirectory(dir=tmpdir) as d:
        for name in sorted(f["scenarios"]):
            gs = GuestSet.from_config(f["scenarios"][name], cfg["catalogue"], f["seed"])
            names = [g.name for g in gs.guests]
            path = os.path.join(d, f"{name}.parquet")
            write_hash_only_tables(gs, range(len(names)), names, path, {"model": "GuestSet", "scenario": name})
            reports[name] = analyze_page_tables(
                [path],
                verify="no",
                salting_mode=s["salting"]["mode"],
                salts={vm: v for vm, v in s["salting"]["salts"].items() if vm in names},  # its own VMs'
                use_zero_pages=s["ksm"]["use_zero_pages"],
                max_page_sharing=s["ksm"]["max_page_sharing"],
                top_n=s["top_contents"],
            )
    return fig05_table(reports)
