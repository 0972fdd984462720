# Sharing over time (issue 8): the ESX page-sharing scanner and the KSM emulator on the
# Figure 4 guests, and duplicate lifetimes under a synthetic write trace.


rule scan_over_time:
    input:
        pages=fig04_page_tables,
    output:
        timeline="results/scan/fig04.timeline.parquet",
        summary="results/scan/fig04.summary.csv",
    params:
        scan=config["scan"],
    log:
        "results/logs/scan_over_time.log",
    benchmark:
        "results/benchmarks/scan_over_time.tsv"
    script:
        "../scripts/scan_over_time.py"


rule scan_lifetimes:
    input:
        pages=fig04_page_tables,
    output:
        survival="results/scan/fig04.lifetime_survival.csv",
        catch="results/scan/fig04.lifetime_catch.csv",
    params:
        scan=config["scan"],
    log:
        "results/logs/scan_lifetimes.log",
    benchmark:
        "results/benchmarks/scan_lifetimes.tsv"
    script:
        "../scripts/scan_lifetimes.py"
