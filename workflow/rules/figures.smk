# One rule per paper figure, named figNN_<slug> like its plotting function, output and caption.


rule fig04_page_sharing:
    """Figure 4: sharing vs number of identical VMs, paper points overlaid, and its numbers."""
    input:
        sweep=rules.fig04_sweep.output.sweep,
    output:
        png=report(
            "results/figures/fig04_page_sharing.png",
            caption="../report/fig04_page_sharing.rst",
            category="Page sharing",
        ),
        pdf="results/figures/fig04_page_sharing.pdf",
        numbers="results/numbers/fig04.json",
    params:
        fitted=FIG04["fitted_to"],
    log:
        "results/logs/fig04_page_sharing.log",
    script:
        "../scripts/fig04_page_sharing.py"


rule fig06_active_memory_sampling:
    """Figure 6: true vs estimated active memory of the toucher VM, and its numbers."""
    input:
        vms="results/sim/fig06.vms.parquet",
    output:
        png=report(
            "results/figures/fig06_active_memory_sampling.png",
            caption="../report/fig06_active_memory_sampling.rst",
            category="Memory manager",
        ),
        pdf="results/figures/fig06_active_memory_sampling.pdf",
        numbers="results/numbers/fig06.json",
    params:
        schedule=config["workloads"]["fig06"]["vms"][0]["foreground"]["schedule"],
    log:
        "results/logs/fig06_active_memory_sampling.log",
    script:
        "../scripts/fig06_active_memory_sampling.py"


rule fig07_idle_memory_tax:
    """Figure 7: two VMs' allocations as τ goes from 0 to 75 %, and its numbers."""
    input:
        vms="results/sim/fig07.vms.parquet",
    output:
        png=report(
            "results/figures/fig07_idle_memory_tax.png",
            caption="../report/fig07_idle_memory_tax.rst",
            category="Memory manager",
        ),
        pdf="results/figures/fig07_idle_memory_tax.pdf",
        numbers="results/numbers/fig07.json",
    params:
        scenario=config["workloads"]["fig07"],
    log:
        "results/logs/fig07_idle_memory_tax.log",
    script:
        "../scripts/fig07_idle_memory_tax.py"


rule fig08_dynamic_reallocation:
    """Figure 8: states, aggregate and per-VM allocations of the five-VM run, and its numbers."""
    input:
        vms="results/sim/fig08.vms.parquet",
        host="results/sim/fig08.host.parquet",
    output:
        png=report(
            "results/figures/fig08_dynamic_reallocation.png",
            caption="../report/fig08_dynamic_reallocation.rst",
            category="Memory manager",
        ),
        pdf="results/figures/fig08_dynamic_reallocation.pdf",
        numbers="results/numbers/fig08.json",
        errors="results/numbers/fig08_errors.csv",
    log:
        "results/logs/fig08_dynamic_reallocation.log",
    script:
        "../scripts/fig08_dynamic_reallocation.py"


rule whatif_memory_manager:
    """What-if figure and table: τ, sample size and overcommitment swept."""
    input:
        tables=whatif_tables,
    output:
        png=report(
            "results/figures/whatif_memory_manager.png",
            caption="../report/whatif_memory_manager.rst",
            category="Memory manager",
        ),
        pdf="results/figures/whatif_memory_manager.pdf",
        table="results/sim/whatif.csv",
    log:
        "results/logs/whatif_memory_manager.log",
    script:
        "../scripts/whatif_memory_manager.py"


rule fig05_real_world_sharing:
    """Figure 5: sharing on production hosts A, B, C beside the paper's table, and its numbers."""
    input:
        reports=fig05_reports,
    output:
        png=report(
            "results/figures/fig05_real_world_sharing.png",
            caption="../report/fig05_real_world_sharing.rst",
            category="Page sharing",
        ),
        pdf="results/figures/fig05_real_world_sharing.pdf",
        numbers="results/numbers/fig05.json",
        table="results/numbers/fig05_vs_paper.csv",
    params:
        scenarios=sorted(FIG05["scenarios"]),
        fitted=FIG05["fitted_to"],
    log:
        "results/logs/fig05_real_world_sharing.log",
    script:
        "../scripts/fig05_real_world_sharing.py"


rule fig02_balloon_performance:
    """Figure 2: throughput configured vs ballooned to the same size, and its numbers."""
    input:
        fig02=rules.reclaim_guest.output.fig02,
    output:
        png=report(
            "results/figures/fig02_balloon_performance.png",
            caption="../report/fig02_balloon_performance.rst",
            category="Reclamation",
        ),
        pdf="results/figures/fig02_balloon_performance.pdf",
        numbers="results/numbers/fig02.json",
    params:
        fitted=config["reclaim"]["fig02"]["fitted_to"],
    log:
        "results/logs/fig02_balloon_performance.log",
    script:
        "../scripts/fig02_balloon_performance.py"


rule reclaim_balloon_vs_paging:
    """Figure: ballooning vs random host demand paging of the same memory (double paging)."""
    input:
        paging=rules.reclaim_guest.output.paging,
    output:
        png=report(
            "results/figures/reclaim_balloon_vs_paging.png",
            caption="../report/reclaim_balloon_vs_paging.rst",
            category="Reclamation",
        ),
        pdf="results/figures/reclaim_balloon_vs_paging.pdf",
    log:
        "results/logs/reclaim_balloon_vs_paging.log",
    script:
        "../scripts/reclaim_balloon_vs_paging.py"


rule io_remapping:
    """Figure: bounce-buffer copies vs remapping threshold, and under scarce low memory."""
    input:
        threshold=rules.reclaim_io.output.threshold,
        scarcity=rules.reclaim_io.output.scarcity,
    output:
        png=report(
            "results/figures/io_remapping.png",
            caption="../report/io_remapping.rst",
            category="Reclamation",
        ),
        pdf="results/figures/io_remapping.pdf",
    params:
        threshold=config["reclaim"]["io"]["scarcity"]["threshold"],
    log:
        "results/logs/io_remapping.log",
    script:
        "../scripts/io_remapping.py"


rule scan_sharing_over_time:
    """Figure: memory the ESX scanner and KSM find over time at the configured rates."""
    input:
        timeline=rules.scan_over_time.output.timeline,
        summary=rules.scan_over_time.output.summary,
    output:
        png=report(
            "results/figures/scan_sharing_over_time.png",
            caption="../report/scan_sharing_over_time.rst",
            category="Page sharing",
        ),
        pdf="results/figures/scan_sharing_over_time.pdf",
    log:
        "results/logs/scan_sharing_over_time.log",
    script:
        "../scripts/scan_figures.py"


rule scan_duplicate_lifetime:
    """Figure: how long duplicates last under writes and what a scanner at rate R catches."""
    input:
        survival=rules.scan_lifetimes.output.survival,
        catch=rules.scan_lifetimes.output.catch,
    output:
        png=report(
            "results/figures/scan_duplicate_lifetime.png",
            caption="../report/scan_duplicate_lifetime.rst",
            category="Page sharing",
        ),
        pdf="results/figures/scan_duplicate_lifetime.pdf",
    log:
        "results/logs/scan_duplicate_lifetime.log",
    script:
        "../scripts/scan_figures.py"


rule large_page_breaking:
    """Figure: savings reached vs 2 MiB large pages broken, most profitable first, and where they lie."""
    input:
        curves="results/largepages/{guests}.curves.parquet",
        regions="results/largepages/{guests}.regions.parquet",
    output:
        png=report(
            "results/figures/large_page_breaking_{guests}.png",
            caption="../report/large_page_breaking.rst",
            category="Page sharing",
        ),
        pdf="results/figures/large_page_breaking_{guests}.pdf",
    wildcard_constraints:
        guests="fig04|real",
    log:
        "results/logs/large_page_breaking/{guests}.log",
    script:
        "../scripts/large_page_breaking.py"
