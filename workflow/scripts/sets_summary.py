"""A Figure-5-shaped table (one row per VM set) from the set analyses."""

import json

from pagecore import atomic_path, job_log
from pagecore.sharing import fig05_table

with job_log(snakemake):
    reports = {
        name: json.loads(open(path).read())
        for name, path in zip(snakemake.params.names, snakemake.input.reports, strict=True)
    }
    table = fig05_table(reports)
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.10g")
    print(table.to_string())
