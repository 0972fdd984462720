# Sharing over time (issue 8): the ESX page-sharing scanner and the KSM emulator on the
# Figure 4 guests, and duplicate lifetimes under a synthetic write trace.


rule scan_over_time:
    """Run the ESX scanner and the KSM emulator over the Figure 4 page tables to convergence."""
    input:
        pages=fig04_page_tables,
    output:
        timeline="results/scan/fig04.timeline.parquet",
        summary="results/scan/fig04.summary.csv",
    params:
        scan=pick(config["scan"], "esx", "ksm", "seed", "use_zero_pages"),
    log:
        "results/logs/scan_over_time.log",
    priority: priority_of("scan_over_time")
    script:
        "../scripts/scan_over_time.py"


rule scan_lifetimes:
    """Measure duplicate lifetimes of the Figure 4 guests under a synthetic write trace."""
    input:
        pages=fig04_page_tables,
    output:
        survival="results/scan/fig04.lifetime_survival.csv",
        catch="results/scan/fig04.lifetime_catch.csv",
    params:
        scan=pick(config["scan"], "writes", "snapshot_interval_s", "catch_rates_esx", "catch_rates_ksm", "seed"),
    log:
        "results/logs/scan_lifetimes.log",
    priority: priority_of("scan_lifetimes")
    script:
        "../scripts/scan_lifetimes.py"
