# Page tables -> sharing metrics in the paper's vocabulary.


rule fig04_sweep:
    input:
        pages=fig04_page_tables,
    output:
        sweep="results/sharing/fig04.sweep.csv",
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
    log:
        "results/logs/share_user.log",
    script:
        "../scripts/share_report.py"
