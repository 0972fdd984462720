"""Figure 7 and its paper-vs-ours numbers."""

from pagecore import job_log, paper
from pagecore.experiments import fig07_records, write_records
from pagecore.plotting import fig07_idle_memory_tax, save_figure
from pagecore.timelines import read_timeline

with job_log(snakemake):
    vms = read_timeline(snakemake.input.vms, "vm")
    sc = snakemake.params.scenario
    idle, active = (v["name"] for v in sc["vms"][:2])
    t_change = sc["tau_schedule_min"][-1][0]
    fig = fig07_idle_memory_tax(vms, idle, active, t_change, paper.FIG07)
    save_figure(fig, snakemake.output.png.removesuffix(".png"))
    records = fig07_records(vms, idle, active, t_change, tau=sc["tau_schedule_min"][-1][1])
    write_records(snakemake.output.numbers, records)
    for r in records:
        print(f"{r.quantity:32s} paper {r.paper:8.1f}  ours {r.ours:8.1f}  ({r.kind})")
