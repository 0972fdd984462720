# Workloads -> access traces -> replayed memory manager -> timelines (paper §3, §5, §6).


rule fit_fig08_active:
    """Fit Figure 8's per-VM foreground schedules on its active-memory panels: a declared fit."""
    # A declared fit: the MetaFrame and SQL VMs' working sets follow paper.FIG08 panels (c) and
    # (d), the other three VMs panel (b) minus (c) and (d), split by workloads.fig08_fit.split
    # (an assumption); targets, assumption and schedules are listed in the output. Every Figure 8
    # active number is "fitted" (results/numbers/fig08.json).
    output:
        fit="results/fits/fig08_active.json",
    params:
        fig08=config["workloads"]["fig08"],
        fit=config["workloads"].get("fig08_fit") or {},
    log:
        "results/logs/fit_fig08_active.log",
    priority: priority_of("fit_fig08_active")
    script:
        "../scripts/fit_fig08_active.py"


rule sim_trace:
    """Generate one scenario's access trace (Figures 6-8) from the workloads config."""
    input:
        unpack(scenario_fit),
    output:
        trace="results/traces/{scenario}.parquet",
        spec="results/traces/{scenario}.spec.csv",
    wildcard_constraints:
        scenario="fig0[678]",
    params:
        workloads=scenario_workloads,
    log:
        "results/logs/sim_trace/{scenario}.log",
    priority: priority_of("sim_trace")
    script:
        "../scripts/sim_trace.py"


rule sim_replay:
    """Replay one access trace through the ESX memory manager; write the timelines."""
    input:
        trace=rules.sim_trace.output.trace,
    output:
        vms="results/sim/{scenario}.vms.parquet",
        host="results/sim/{scenario}.host.parquet",
        events="results/sim/{scenario}.events.parquet",
    wildcard_constraints:
        scenario="fig0[678]",
    params:
        sim=scenario_sim,
        workloads=scenario_workloads,
    log:
        "results/logs/sim_replay/{scenario}.log",
    priority: priority_of("sim_replay")
    script:
        "../scripts/sim_replay.py"


rule sim_whatif:
    """One what-if sweep (τ, sample size or overcommitment) of the memory manager."""
    input:
        trace=whatif_trace,
    output:
        table="results/sim/whatif_{dim}.csv",
    wildcard_constraints:
        dim="tau|sample_pages|overcommit",
    params:
        sim=scenario_sim,
        workloads=scenario_workloads,
        scenario=whatif_scenario,
        values=whatif_values,
    log:
        "results/logs/sim_whatif/{dim}.log",
    priority: priority_of("sim_whatif")
    script:
        "../scripts/sim_whatif.py"
