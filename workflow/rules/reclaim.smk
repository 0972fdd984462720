# Guest page cache under ballooning / host paging, and hot I/O page remapping (paper §3, §7).


rule fit_fig02_cost:
    """Fit Figure 2's cost model (t_ref, t_disk) on the paper's configured bars: a declared fit."""
    # A declared fit: Figure 2's cost model (t_ref, t_disk) solved on the paper's configured bars
    # at reclaim.fig02.fit_mb; the targets are listed in the output. No other rule reads paper
    # values into a model run.
    output:
        fit="results/fits/fig02_cost.json",
    params:
        reclaim=config["reclaim"],
    log:
        "results/logs/fit_fig02_cost.log",
    priority: priority_of("fit_fig02_cost")
    script:
        "../scripts/fit_fig02_cost.py"


rule reclaim_guest:
    """Replay the guest page-cache trace configured and ballooned (Figure 2) and under host paging."""
    input:
        fit=rules.fit_fig02_cost.output.fit,
    output:
        fig02="results/reclaim/fig02.csv",
        paging="results/reclaim/paging.csv",
        cost="results/reclaim/costmodel.json",
    params:
        reclaim=pick(config["reclaim"], "seed", "guest", "trace", "fig02", "cost", "paging"),
    log:
        "results/logs/reclaim_guest.log",
    priority: priority_of("reclaim_guest")
    script:
        "../scripts/reclaim_guest.py"


rule reclaim_io:
    """Replay network and disk I/O on a > 4 GB host with and without hot-page remapping."""
    output:
        threshold="results/reclaim/io_threshold.csv",
        scarcity="results/reclaim/io_scarcity.csv",
        summary="results/numbers/io_remap.json",
    params:
        reclaim=pick(config["reclaim"], "seed", "io"),
    log:
        "results/logs/reclaim_io.log",
    priority: priority_of("reclaim_io")
    script:
        "../scripts/reclaim_io.py"
