"""Figure 8 and its paper-vs-ours numbers (plus a per-series error table)."""

from pagecore import atomic_path, job_log, paper
from pagecore.experiments import fig08_panels, fig08_records, series_error, write_records
from pagecore.plotting import fig08_dynamic_reallocation, save_figure
from pagecore.timelines import read_timeline

with job_log(snakemake):
    vms = read_timeline(snakemake.input.vms, "vm")
    host = read_timeline(snakemake.input.host, "host")
    fig = fig08_dynamic_reallocation(fig08_panels(vms), host, paper.FIG08, paper.FIG08_STATES)
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
    records = fig08_records(vms, host)
    write_records(snakemake.output.numbers, records)
    err = series_error(records)
    with atomic_path(snakemake.output.errors) as tmp:
        err.to_csv(tmp, index=False, float_format="%.4g")
    print(err.to_string())
    for r in records:
        if "@" not in r.quantity:
            print(f"{r.quantity:36s} paper {r.paper:8.1f}  ours {r.ours:8.1f}  ({r.kind})")
