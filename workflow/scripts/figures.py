"""Draw the figures a rule lists (params.figures) in one job, with their paper-vs-ours numbers.

One function per figure, named like the figure, its plotting function and its output. A rule's
inputs, outputs and params for a figure carry the figure's key as a prefix (``fig06_vms``,
``fig06_png``, ``fig06_numbers``, ``fig06_schedule``), so one job can draw several figures: each
job pays one Python start and one Matplotlib import (about 2.5 CPU-seconds) whatever it draws.
"""

import pandas as pd

from pagecore import atomic_path, job_log, paper
from pagecore.plotting import save_figure


def _save(fig, key):
    save_figure(fig, getattr(snakemake.output, f"{key}_png").removesuffix(".png"))


def _records(key, records, width, fmt=".1f"):
    from pagecore.experiments import write_records

    write_records(getattr(snakemake.output, f"{key}_numbers"), records)
    for r in records:
        print(f"{r.quantity:{width}s} paper {r.paper:8{fmt}}  ours {r.ours:8{fmt}}  ({r.kind})")


def fig02_balloon_performance(key="fig02"):
    """Figure 2: throughput configured vs ballooned."""
    from pagecore.experiments import fig02_records, paper_fig02
    from pagecore.plotting import fig02_balloon_performance as draw

    fig02 = pd.read_csv(snakemake.input.fig02_fig02)
    _save(draw(fig02, paper_fig02()), key)
    _records(key, fig02_records(fig02, snakemake.params.fig02_fitted), 24, ".2f")


def fig04_page_sharing(key="fig04"):
    """Figure 4: sharing vs number of identical VMs."""
    from pagecore.experiments import fig04_records, write_records
    from pagecore.plotting import fig04_page_sharing as draw

    sweep = pd.read_csv(snakemake.input.fig04_sweep)
    _save(draw(sweep, paper.FIG04), key)
    write_records(snakemake.output.fig04_numbers, fig04_records(sweep, snakemake.params.fig04_fitted))


def fig05_real_world_sharing(key="fig05"):
    """Figure 5 as a table and a chart (production hosts A, B, C), paper vs ours."""
    import json

    from pagecore.experiments import fig05_os_kinds, fig05_records, write_records
    from pagecore.plotting import fig05_real_world_sharing as draw
    from pagecore.sharing import fig05_structure, fig05_table

    p = snakemake.params
    reports = {
        s: json.loads(open(f).read()) for s, f in zip(p.fig05_scenarios, snakemake.input.fig05_reports, strict=True)
    }
    ours = fig05_table(reports)
    _save(draw(ours, paper.FIG05), key)
    write_records(snakemake.output.fig05_numbers, fig05_records(ours, p.fig05_fitted, fig05_os_kinds(p.fig05_guests)))
    side = ours.merge(paper.FIG05, on="workload", suffixes=("", "_paper"))
    # how the sharing is structured (copies per content, bounds on content in every VM / in pairs)
    structure = fig05_structure(ours).merge(fig05_structure(paper.FIG05), on="workload", suffixes=("", "_paper"))
    side = side.merge(structure, on="workload")
    with atomic_path(snakemake.output.fig05_table) as tmp:
        side.to_csv(tmp, index=False, float_format="%.10g")
    print(side.to_string())


def fig06_active_memory_sampling(key="fig06"):
    """Figure 6: true vs estimated active memory of the toucher VM."""
    from pagecore import write_json_atomic
    from pagecore.experiments import fig06_error, fig06_records, fit_fig06_alpha_slow
    from pagecore.plotting import fig06_active_memory_sampling as draw
    from pagecore.timelines import read_timeline

    vms = read_timeline(snakemake.input.fig06_vms, "vm")
    _save(draw(vms, snakemake.params.fig06_schedule, paper.FIG06), key)
    records = fig06_records(vms)
    print(fig06_error(vms))
    _records(key, records, 32)
    # the declared fit of the slow gain on the records' slow-average points
    sampling = snakemake.params.fig06_sampling
    fit = fit_fig06_alpha_slow(vms, float(sampling["alpha_slow"]), float(sampling["period_s"]))
    write_json_atomic(snakemake.output.fig06_fit, fit)
    if not fit["made"]:
        print(f"fit fig06_alpha_slow not made: {fit['reason']}")
        return
    best, rms, cfg_a = fit["alpha_slow"], fit["rmse_at_fit_mb"], fit["config_alpha_slow"]
    print(f"fit fig06_alpha_slow: {best:g} (RMS {rms:.2f} MB), config {cfg_a:g}")
    if not fit["config_is_fit"]:
        print(
            "WARNING: sim.sampling.alpha_slow is not the declared fit's result: Figure 6's slow-average records "
            "are labelled fitted but were not fitted with this value",
            flush=True,
        )


def fig07_idle_memory_tax(key="fig07"):
    """Figure 7: two VMs' allocations as τ goes from 0 to 75 %."""
    from pagecore.experiments import fig07_records, fig07_tau0_split_mb
    from pagecore.plotting import fig07_idle_memory_tax as draw
    from pagecore.timelines import read_timeline

    vms = read_timeline(snakemake.input.fig07_vms, "vm")
    sc = snakemake.params.fig07_scenario
    idle, active = (v["name"] for v in sc["vms"][:2])
    t_change = sc["tau_schedule_min"][-1][0]
    _save(draw(vms, idle, active, t_change, paper.FIG07), key)
    split = fig07_tau0_split_mb(sc, snakemake.params.fig07_sim)
    recs = fig07_records(vms, idle, active, t_change, tau=sc["tau_schedule_min"][-1][1], tau0_split_mb=split)
    _records(key, recs, 32)


def fig08_dynamic_reallocation(key="fig08"):
    """Figure 8: states, aggregate and per-VM allocations of the five-VM run (plus a per-series error table)."""
    from pagecore.experiments import (
        boot_paging,
        fig08_panels,
        fig08_records,
        series_error,
        sharing_budget,
        write_records,
    )
    from pagecore.plotting import fig08_dynamic_reallocation as draw
    from pagecore.timelines import read_timeline

    vms = read_timeline(snakemake.input.fig08_vms, "vm")
    host = read_timeline(snakemake.input.fig08_host, "host")
    _save(draw(fig08_panels(vms), host, paper.FIG08, paper.FIG08_STATES), key)
    records = fig08_records(vms, host, snakemake.params.fig08_states)
    write_records(snakemake.output.fig08_numbers, records)
    err = series_error(records)
    with atomic_path(snakemake.output.fig08_errors) as tmp:
        err.to_csv(tmp, index=False, float_format="%.4g")
    print(err.to_string())
    # where the shared frames came from and went once the benchmarks run (20-90 min): the
    # scanner's sharing against copy-on-write breaks and shared free frames the balloons took
    budget = sharing_budget(vms, 20.0, 90.0)
    with atomic_path(snakemake.output.fig08_sharing_budget) as tmp:
        budget.to_csv(tmp, index=False, float_format="%.4g")
    print(budget.to_string())
    # what the swap daemon reclaimed at boot, zero pages (shared) against data (written), per VM
    # and minute (§6.3: 325 MB of zero pages shared, 35 MB of data written)
    boot = boot_paging(vms, 10.0, 1.0)
    with atomic_path(snakemake.output.fig08_boot_paging) as tmp:
        boot.to_csv(tmp, index=False, float_format="%.4g")
    print(boot[boot["vm"] == "total"].to_string(index=False))
    for r in records:
        if "@" not in r.quantity:
            print(f"{r.quantity:36s} paper {r.paper:8.1f}  ours {r.ours:8.1f}  ({r.kind})")


def whatif_memory_manager(key="whatif"):
    """The what-if table (all sweeps) and its figure."""
    from pagecore.plotting import whatif_memory_manager as draw

    table = pd.concat([pd.read_csv(p) for p in snakemake.input.whatif_tables], ignore_index=True)
    with atomic_path(snakemake.output.whatif_table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    _save(draw(table, paper.FIG07), key)
    print(table.to_string())


def reclaim_balloon_vs_paging(key="paging"):
    """Balloon vs random host demand paging (§3.1, §3.3)."""
    from pagecore.plotting import reclaim_balloon_vs_paging as draw

    _save(draw(pd.read_csv(snakemake.input.paging_paging)), key)


def io_remapping(key="io"):
    """Hot I/O page remapping (§7)."""
    from pagecore.plotting import io_remapping as draw

    i = snakemake.input
    _save(draw(pd.read_csv(i.io_threshold), pd.read_csv(i.io_scarcity), snakemake.params.io_threshold), key)


def scan_sharing_over_time(key="scan_time"):
    """Memory the ESX scanner and KSM find over time."""
    from pagecore.plotting import scan_sharing_over_time as draw

    i = snakemake.input
    _save(draw(pd.read_parquet(i.scan_time_timeline), pd.read_csv(i.scan_time_summary)), key)


def scan_duplicate_lifetime(key="scan_lifetime"):
    """How long duplicates last under writes and what a scanner at rate R catches."""
    from pagecore.plotting import scan_duplicate_lifetime as draw

    i = snakemake.input
    _save(draw(pd.read_csv(i.scan_lifetime_survival), pd.read_csv(i.scan_lifetime_catch)), key)


def host_whatif(key="host_whatif"):
    """VMs that fit and memory won per mechanism against host size, per policy."""
    from pagecore.plotting import host_whatif as draw

    i = snakemake.input
    _save(draw(pd.read_csv(i.host_whatif_rows), pd.read_parquet(i.host_whatif_timelines)), key)


def reclamation_approaches(key="approaches", title="Figure 4 guests"):
    """Memory each reclamation approach wins over time, what it needs from the guest and spends."""
    from pagecore.plotting import reclamation_approaches as draw

    i = snakemake.input
    fig = draw(pd.read_parquet(getattr(i, f"{key}_timeline")), pd.read_csv(getattr(i, f"{key}_table")), title)
    _save(fig, key)


def reclamation_approaches_real():
    """The reclamation approaches on a real guest."""
    reclamation_approaches("approaches_real", "a real guest")


with job_log(snakemake):
    for name in snakemake.params.figures:
        globals()[name]()
