# Page tables -> sharing metrics in the paper's vocabulary.


rule fig04_sweep:
    input:
        pages=fig04_page_tables,
        dumps=fig04_dumps_for_verification,
    output:
        sweep="results/sharing/fig04.sweep.csv",
    params:
        verify=config["sharing"]["verify"],
    log:
        "results/logs/fig04_sweep.log",
    benchmark:
        "results/benchmarks/fig04_sweep.tsv"
    script:
        "../scripts/vm_count_sweep.py"


rule share_user:
    input:
        pages=user_page_tables,
    output:
        report="results/sharing/user.json",
    params:
        sharing=config["sharing"],
    log:
        "results/logs/share_user.log",
    script:
        "../scripts/share_report.py"


rule share_set:
    input:
        pages=set_page_tables,
        dumps=set_dumps_for_verification,
    output:
        report="results/sharing/sets/{set}.json",
    params:
        sharing=config["sharing"],
    log:
        "results/logs/share_set/{set}.log",
    benchmark:
        "results/benchmarks/share_set/{set}.tsv"
    script:
        "../scripts/share_report.py"


rule fig05_table:
    input:
        reports=set_reports,
    output:
        table="results/sharing/fig05_table.csv",
    params:
        names=set_names(),
    log:
        "results/logs/fig05_table.log",
    script:
        "../scripts/fig05_table.py"
