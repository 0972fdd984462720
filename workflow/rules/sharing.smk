# Page tables -> sharing metrics in the paper's vocabulary.


rule fig04_sweep:
    """Sharing of the first 1..N Figure 4 guests, byte-verified (the Figure 4 sweep table)."""
    input:
        pages=fig04_page_tables,
        dumps=fig04_dumps_for_verification,
    output:
        sweep="results/sharing/fig04.sweep.csv",
    params:
        verify=config["sharing"]["verify"],
    log:
        "results/logs/fig04_sweep.log",
    priority: priority_of("fig04_sweep")
    script:
        "../scripts/vm_count_sweep.py"


rule share_user:
    """Sharing analysis of all your dumps together (config: dumps)."""
    input:
        pages=user_page_tables,
    output:
        report="results/sharing/user.json",
    params:
        sharing=user_sharing_params(),
    log:
        "results/logs/share_user.log",
    script:
        "../scripts/share_report.py"


rule share_set:
    """Full sharing analysis of one VM set (config: sharing.sets, plus the built-in sets)."""
    input:
        pages=set_page_tables,
        dumps=set_dumps_for_verification,
    output:
        report="results/sharing/sets/{set}.json",
    params:
        sharing=set_sharing_params,
    log:
        "results/logs/share_set/{set}.log",
    priority: priority_of("share_set")
    script:
        "../scripts/share_report.py"


rule sets_summary:
    """One row per VM set: the Figure-5-shaped summary of every set analysis."""
    input:
        reports=set_reports,
    output:
        table="results/sharing/sets_summary.csv",
    params:
        names=set_names(),
    log:
        "results/logs/sets_summary.log",
    priority: priority_of("sets_summary")
    script:
        "../scripts/sets_summary.py"


rule largepages:
    """Large pages (issue 16): savings per 2 MiB region and the breaking curve (Figure 4 or real guests)."""
    input:
        pages=largepage_page_tables,
    output:
        curves="results/largepages/{guests}.curves.parquet",
        regions="results/largepages/{guests}.regions.parquet",
        summary="results/largepages/{guests}.summary.json",
    wildcard_constraints:
        guests="fig04|real",
    log:
        "results/logs/largepages/{guests}.log",
    priority: priority_of("largepages")
    script:
        "../scripts/largepages.py"
