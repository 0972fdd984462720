"""Gather every figure's paper-vs-ours records (every seed) into comparison.csv and a summary.

First the influence step: the runs (rule influence) are checked against the pipeline's own
numbers, each change compared with the number's spread over the seeds (influence.csv), and every
predicted record a value chosen on its figure moves is labelled fitted before anything is scored."""

import pandas as pd

from pagecore import atomic_path, job_log
from pagecore.experiments import (
    check_defaults,
    comparison_table,
    figure_scores,
    fitted_points,
    gather_records,
    influence_moves,
    provenance_table,
    relabel,
    seed_spread,
    summarize,
)

with job_log(snakemake):
    default_seed = int(snakemake.params.default_seed)
    records = gather_records(snakemake.input.numbers, snakemake.input.seeds, default_seed)
    runs = pd.read_csv(snakemake.input.influence_runs)
    check_defaults(runs, [r for r in records if r["seed"] == default_seed])
    c = snakemake.params.comparison
    moved = influence_moves(runs, seed_spread(records), float(c.get("influence", {}).get("spread_k", 2.0)))
    with atomic_path(snakemake.output.influence) as tmp:
        moved.to_csv(tmp, index=False, float_format="%.6g")
    before = sum(r["kind"] == "predicted" for r in records if r["seed"] == default_seed)
    records = relabel(records, moved)
    after = sum(r["kind"] == "predicted" for r in records if r["seed"] == default_seed)
    fitted = fitted_points(snakemake.params.config)  # the null models of Figures 4 and 5 go through them
    table = comparison_table(records, c["tolerances"], c.get("abs_floor", {}), fitted)
    with atomic_path(snakemake.output.table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(snakemake.output.scores) as tmp:
        figure_scores(table).to_csv(tmp, index=False, float_format="%.4g")
    with atomic_path(snakemake.output.provenance) as tmp:
        provenance_table(snakemake.params.config).to_csv(tmp, index=False)
    text = summarize(table, default_seed)
    text += (
        f"\nInfluence step: {before - after} of the {before} records their figures label predicted move with a "
        "value chosen by looking at a figure (that one or another), so they count as fitted "
        "(results/numbers/influence.csv)."
    )
    with atomic_path(snakemake.output.summary) as tmp:
        tmp.write_text(text + "\n")
    print(text)
