"""Count one hash-prefix partition across every scattered shard."""

from pagecore import job_log
from pagecore.sharing import count_partition, save_counts

with job_log(snakemake):
    k = snakemake.params.ksm
    counts = count_partition(
        snakemake.input.scattered,
        int(snakemake.wildcards.part),
        vm_names=snakemake.params.vm_names,
        use_zero_pages=k["use_zero_pages"],
        max_page_sharing=k["max_page_sharing"],
        threads=snakemake.threads,
    )
    save_counts(counts, snakemake.output.counts)
    print(f"partition {snakemake.wildcards.part}: {int(counts.totals[0]):,} pages")
