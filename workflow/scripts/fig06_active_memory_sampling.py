"""Figure 6 and its paper-vs-ours numbers."""

from pagecore import job_log, paper
from pagecore.experiments import fig06_error, fig06_records, write_records
from pagecore.plotting import fig06_active_memory_sampling, save_figure
from pagecore.timelines import read_timeline

with job_log(snakemake):
    vms = read_timeline(snakemake.input.vms, "vm")
    fig = fig06_active_memory_sampling(vms, snakemake.params.schedule, paper.FIG06)
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
    records = fig06_records(vms)
    write_records(snakemake.output.numbers, records)
    print(fig06_error(vms))
    for r in records:
        print(f"{r.quantity:32s} paper {r.paper:8.1f}  ours {r.ours:8.1f}  ({r.kind})")
