# Sharing of sets larger than memory: scatter by hash prefix, count each partition, gather.
# Optional: `snakemake --cores all bigcount` (not part of the default run).
# Each job asks for the memory its shard, VM or partition needs (mem_mb, used by cluster
# executors and by --resources mem_mb=...); the run stops with one line before any job starts
# if the file system of results/bigcount/ lacks the space its temporary page tables need.


localrules:
    bigcount,


rule bigcount_shard:
    """Write one shard of the synthetic larger-than-memory VM set as hash-only page tables."""
    input:
        bigcount_free_space,
    output:
        pages=temp("results/bigcount/pages/shard{shard}.parquet"),
    params:
        big=BIG,
        model=fig04_model(),
    resources:
        mem_mb=bigcount_mem_mb("shard"),
    log:
        "results/logs/bigcount_shard/shard{shard}.log",
    benchmark:
        "results/benchmarks/bigcount_shard/shard{shard}.tsv"
    script:
        "../scripts/bigcount_shard.py"


rule bigcount_scatter:
    """Partition one shard's page hashes by hash prefix (scatter)."""
    input:
        pages=rules.bigcount_shard.output.pages,
    output:
        scattered=temp("results/bigcount/scatter/shard{shard}.parquet"),
    params:
        bits=BIG["partition_bits"],
        vm_names=lambda wildcards: bigcount_vm_names(),
    resources:
        mem_mb=bigcount_mem_mb("scatter"),
    log:
        "results/logs/bigcount_scatter/shard{shard}.log",
    benchmark:
        "results/benchmarks/bigcount_scatter/shard{shard}.tsv"
    script:
        "../scripts/bigcount_scatter.py"


rule bigcount_count:
    """Count sharing within one hash-prefix partition."""
    input:
        scattered=bigcount_scattered,
    output:
        counts="results/bigcount/counts/part{part}.json",
    params:
        ksm=config["sharing"]["ksm"],
        # the set's VM list, given here once: the scatter files hold only its digest
        vm_names=lambda wildcards: bigcount_vm_names(),
    resources:
        mem_mb=bigcount_mem_mb("count"),
    log:
        "results/logs/bigcount_count/part{part}.log",
    benchmark:
        "results/benchmarks/bigcount_count/part{part}.tsv"
    script:
        "../scripts/bigcount_count.py"


rule bigcount:
    """Sum the partitions into one sharing report of the whole set (gather; `snakemake bigcount`)."""
    input:
        counts=bigcount_counts,
    output:
        report="results/bigcount/report.json",
    resources:
        mem_mb=bigcount_mem_mb("gather"),
    log:
        "results/logs/bigcount.log",
    script:
        "../scripts/bigcount_gather.py"
