# The figures, one job per report category (workflow/scripts/figures.py draws each figure with a
# function named like the figure, its plotting function, output and caption). A job's Python start
# and Matplotlib import cost about 2.5 CPU-seconds, more than drawing most figures: one job per
# figure spent about 30 of the default run's CPU-seconds on that alone. A rule's inputs, outputs
# and params carry each figure's key as a prefix.


rule figures_page_sharing:
    """Figures 4 and 5 with their numbers, sharing over time and duplicate lifetimes (Page sharing)."""
    input:
        fig04_sweep=rules.fig04_sweep.output.sweep,
        fig05_reports=fig05_reports,
        scan_time_timeline=rules.scan_over_time.output.timeline,
        scan_time_summary=rules.scan_over_time.output.summary,
        scan_lifetime_survival=rules.scan_lifetimes.output.survival,
        scan_lifetime_catch=rules.scan_lifetimes.output.catch,
    output:
        fig04_png=report(
            "results/figures/fig04_page_sharing.png",
            caption="../report/fig04_page_sharing.rst",
            category="Page sharing",
        ),
        fig04_pdf="results/figures/fig04_page_sharing.pdf",
        fig04_numbers="results/numbers/fig04.json",
        fig05_png=report(
            "results/figures/fig05_real_world_sharing.png",
            caption="../report/fig05_real_world_sharing.rst",
            category="Page sharing",
        ),
        fig05_pdf="results/figures/fig05_real_world_sharing.pdf",
        fig05_numbers="results/numbers/fig05.json",
        fig05_table="results/numbers/fig05_vs_paper.csv",
        scan_time_png=report(
            "results/figures/scan_sharing_over_time.png",
            caption="../report/scan_sharing_over_time.rst",
            category="Page sharing",
        ),
        scan_time_pdf="results/figures/scan_sharing_over_time.pdf",
        scan_lifetime_png=report(
            "results/figures/scan_duplicate_lifetime.png",
            caption="../report/scan_duplicate_lifetime.rst",
            category="Page sharing",
        ),
        scan_lifetime_pdf="results/figures/scan_duplicate_lifetime.pdf",
    params:
        figures=["fig04_page_sharing", "fig05_real_world_sharing", "scan_sharing_over_time", "scan_duplicate_lifetime"],
        fig04_fitted=FIG04["fitted_to"],
        fig05_scenarios=sorted(FIG05["scenarios"]),
        fig05_fitted=FIG05["fitted_to"],
        fig05_guests=FIG05["scenarios"],  # each host's OS kinds (which zero fractions were fitted where)
    log:
        "results/logs/figures_page_sharing.log",
    priority: priority_of("figures_page_sharing")
    script:
        "../scripts/figures.py"


rule figures_memory_manager:
    """Figures 6, 7 and 8 with their numbers, and the what-if figure and table (Memory manager)."""
    input:
        fig06_vms="results/sim/fig06.vms.parquet",
        fig07_vms="results/sim/fig07.vms.parquet",
        fig08_vms="results/sim/fig08.vms.parquet",
        fig08_host="results/sim/fig08.host.parquet",
        whatif_tables=whatif_tables,
    output:
        fig06_png=report(
            "results/figures/fig06_active_memory_sampling.png",
            caption="../report/fig06_active_memory_sampling.rst",
            category="Memory manager",
        ),
        fig06_pdf="results/figures/fig06_active_memory_sampling.pdf",
        fig06_numbers="results/numbers/fig06.json",
        fig06_fit="results/fits/fig06_alpha_slow.json",
        fig07_png=report(
            "results/figures/fig07_idle_memory_tax.png",
            caption="../report/fig07_idle_memory_tax.rst",
            category="Memory manager",
        ),
        fig07_pdf="results/figures/fig07_idle_memory_tax.pdf",
        fig07_numbers="results/numbers/fig07.json",
        fig08_png=report(
            "results/figures/fig08_dynamic_reallocation.png",
            caption="../report/fig08_dynamic_reallocation.rst",
            category="Memory manager",
        ),
        fig08_pdf="results/figures/fig08_dynamic_reallocation.pdf",
        fig08_numbers="results/numbers/fig08.json",
        fig08_errors="results/numbers/fig08_errors.csv",
        fig08_sharing_budget="results/numbers/fig08_sharing_budget.csv",
        fig08_boot_paging="results/numbers/fig08_boot_paging.csv",
        whatif_png=report(
            "results/figures/whatif_memory_manager.png",
            caption="../report/whatif_memory_manager.rst",
            category="Memory manager",
        ),
        whatif_pdf="results/figures/whatif_memory_manager.pdf",
        whatif_table="results/sim/whatif.csv",
    params:
        figures=[
            "fig06_active_memory_sampling",
            "fig07_idle_memory_tax",
            "fig08_dynamic_reallocation",
            "whatif_memory_manager",
        ],
        fig06_schedule=config["workloads"]["fig06"]["vms"][0]["foreground"]["schedule"],
        fig06_sampling=scenario_section(config["sim"], "fig06", "sampling"),
        fig07_scenario=config["workloads"]["fig07"],
        fig07_sim=config["sim"],
        # the free-memory states Figure 8's replay used (its total allocation is the shared memory
        # again where free memory is held at their level: pagecore.experiments.fig08_pool_gap)
        fig08_states=scenario_section(config["sim"], "fig08", "states"),
    log:
        "results/logs/figures_memory_manager.log",
    priority: priority_of("figures_memory_manager")
    script:
        "../scripts/figures.py"


rule figures_reclamation:
    """Figure 2 with its numbers, balloon vs host paging, hot I/O page remapping (Reclamation)."""
    input:
        fig02_fig02=rules.reclaim_guest.output.fig02,
        paging_paging=rules.reclaim_guest.output.paging,
        io_threshold=rules.reclaim_io.output.threshold,
        io_scarcity=rules.reclaim_io.output.scarcity,
    output:
        fig02_png=report(
            "results/figures/fig02_balloon_performance.png",
            caption="../report/fig02_balloon_performance.rst",
            category="Reclamation",
        ),
        fig02_pdf="results/figures/fig02_balloon_performance.pdf",
        fig02_numbers="results/numbers/fig02.json",
        paging_png=report(
            "results/figures/reclaim_balloon_vs_paging.png",
            caption="../report/reclaim_balloon_vs_paging.rst",
            category="Reclamation",
        ),
        paging_pdf="results/figures/reclaim_balloon_vs_paging.pdf",
        io_png=report(
            "results/figures/io_remapping.png",
            caption="../report/io_remapping.rst",
            category="Reclamation",
        ),
        io_pdf="results/figures/io_remapping.pdf",
    params:
        figures=["fig02_balloon_performance", "reclaim_balloon_vs_paging", "io_remapping"],
        fig02_fitted=config["reclaim"]["fig02"]["fitted_to"],
        io_threshold=config["reclaim"]["io"]["scarcity"]["threshold"],
    log:
        "results/logs/figures_reclamation.log",
    priority: priority_of("figures_reclamation")
    script:
        "../scripts/figures.py"


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
    priority: priority_of("large_page_breaking")
    script:
        "../scripts/large_page_breaking.py"
