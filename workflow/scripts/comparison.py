"""Gather every figure's paper-vs-ours records into comparison.csv and a short summary."""

import json

from pagecore import atomic_path, job_log
from pagecore.experiments import comparison_table, summarize

with job_log(snakemake):
    records = []
    for path in snakemake.input.numbers:
        records += json.loads(open(path).read())
    c = snakemake.params.comparison
    table = comparison_table(records, c["tolerances"], c.get("abs_floor", {}))
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    text = summarize(table)
    with atomic_path(snakemake.output.summary) as tmp:
        tmp.write_text(text + "\n")
    print(text)
