# Workloads -> access traces -> replayed memory manager -> timelines (paper §3, §5, §6).


rule sim_trace:
    """Generate one scenario's access trace (Figures 6-8) from the workloads config."""
    output:
        trace="results/traces/{scenario}.parquet",
        spec="results/traces/{scenario}.spec.csv",
    wildcard_constraints:
        scenario="fig0[678]",
    params:
        workloads=scenario_workloads,
    log:
        "results/logs/sim_trace/{scenario}.log",
    benchmark:
        "results/benchmarks/sim_trace/{scenario}.tsv"
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
    benchmark:
        "results/benchmarks/sim_replay/{scenario}.tsv"
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
    benchmark:
        "results/benchmarks/sim_whatif/{dim}.tsv"
    script:
        "../scripts/sim_whatif.py"
