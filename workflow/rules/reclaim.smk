# Guest page cache under ballooning / host paging, and hot I/O page remapping (paper §3, §7).


rule reclaim_guest:
    output:
        fig02="results/reclaim/fig02.csv",
        paging="results/reclaim/paging.csv",
        cost="results/reclaim/costmodel.json",
    params:
        reclaim=config["reclaim"],
    log:
        "results/logs/reclaim_guest.log",
    benchmark:
        "results/benchmarks/reclaim_guest.tsv"
    script:
        "../scripts/reclaim_guest.py"


rule reclaim_io:
    output:
        threshold="results/reclaim/io_threshold.csv",
        scarcity="results/reclaim/io_scarcity.csv",
        summary="results/numbers/io_remap.json",
    params:
        reclaim=config["reclaim"],
    log:
        "results/logs/reclaim_io.log",
    benchmark:
        "results/benchmarks/reclaim_io.tsv"
    script:
        "../scripts/reclaim_io.py"
