"""Full sharing analysis (JSON) of a set of page tables: verified, every vocabulary."""

from pagecore import job_log, write_json_atomic
from pagecore.experiments import analyze_page_tables

with job_log(snakemake):
    s = snakemake.params.sharing
    rep = analyze_page_tables(
        snakemake.input.pages,
        verify={True: "yes", False: "no"}.get(s["verify"], s["verify"]),
        salting_mode=s["salting"]["mode"],
        salts=s["salting"]["salts"],
        use_zero_pages=s["ksm"]["use_zero_pages"],
        max_page_sharing=s["ksm"]["max_page_sharing"],
        top_n=s["top_contents"],
        threads=snakemake.threads,
    )
    write_json_atomic(snakemake.output.report, rep)
