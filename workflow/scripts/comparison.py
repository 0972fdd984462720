"""Gather every figure's paper-vs-ours records (every seed) into comparison.csv and a summary."""

import json

from pagecore import atomic_path, job_log
from pagecore.experiments import comparison_table, figure_scores, provenance_table, summarize

with job_log(snakemake):
    default_seed = int(snakemake.params.default_seed)
    records = []
    for path in snakemake.input.numbers:
        records += [{**r, "seed": default_seed} for r in json.loads(open(path).read())]
    # another seed re-runs Figures 6-8; every other figure keeps its default-run records
    for path in snakemake.input.seeds:
        recs = json.loads(open(path).read())
        if not recs:
            continue
        seed = recs[0]["seed"]
        figs = {r["figure"] for r in recs}
        records += recs + [
            {**r, "seed": seed} for r in records if r["seed"] == default_seed and r["figure"] not in figs
        ]
    c = snakemake.params.comparison
    table = comparison_table(records, c["tolerances"], c.get("abs_floor", {}))
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(snakemake.output.scores) as tmp:
        figure_scores(table).to_csv(tmp, index=False, float_format="%.4g")
    with atomic_path(snakemake.output.provenance) as tmp:
        provenance_table(snakemake.params.config).to_csv(tmp, index=False)
    text = summarize(table, default_seed)
    with atomic_path(snakemake.output.summary) as tmp:
        tmp.write_text(text + "\n")
    print(text)
