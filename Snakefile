# pagecore: reproduce Waldspurger, "Memory Resource Management in VMware ESX Server" (OSDI '02).
#
# Run from the repository root:  snakemake --cores all
#
# results/
# ├── synth/fig04/vmNN.raw              synthetic guest memory as raw physical images
# ├── pages/fig04/vmNN.parquet          page tables: vm, gpfn, hash, zero (+ provenance)
# ├── pages/user/<vm>.parquet           page tables of your own dumps (config: dumps)
# ├── sharing/fig04.sweep.csv           sharing vs number of VMs (Figure 4)
# ├── sharing/user.json                 sharing of your own dumps
# ├── largepages/<guests>.*.parquet     large pages: breaking curve, savings per 2 MiB region (+ summary.json)
# ├── figures/figNN_<slug>.{png,pdf}    the paper's figures, paper data overlaid
# ├── numbers/figNN.json                paper vs ours: {figure, quantity, unit, paper, ours, kind}
# ├── notebooks/<name>.html             the notebooks executed on these results (config: notebooks)
# ├── logs/<rule>/…                     one log per job
# └── benchmarks/<rule>/…               one timing per job

import os

from snakemake.utils import min_version

min_version("8.0")

# Jobs draw figures without a display: the library never picks a matplotlib backend (that
# would break Jupyter), so the workflow sets one for its jobs, which inherit this environment.
os.environ.setdefault("MPLBACKEND", "Agg")
# Jobs share the cores: an OpenMP worker that spins after a parallel region (libgomp's default)
# burns the CPU another job needs, so the jobs' Numba threads wait passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Jobs do no BLAS-heavy work (2 x 2 solves at most): OpenBLAS starting its thread pool in each
# job that imports NumPy costs about 70 ms of CPU, so one thread unless the user chose otherwise
# (the `pagecore` command does the same).
if not any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


# Scheduling: rules carry `priority: priority_of(...)`, from one table (PRIORITY in
# workflow/rules/common.smk, which says why).

# The default config is found next to this Snakefile, so `--directory` runs work too;
# `--configfile` overrides it key by key.
configfile: os.path.join(workflow.basedir, "workflow/config/config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/sharing.smk"
include: "workflow/rules/bigcount.smk"
include: "workflow/rules/capture.smk"
include: "workflow/rules/realguests.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/reclaim.smk"
include: "workflow/rules/scan.smk"
include: "workflow/rules/host.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/notebooks.smk"
include: "workflow/rules/sensitivity.smk"


rule all:
    """Everything of the default run: figures, numbers, comparison, rendered notebooks."""
    default_target: True
    input:
        final_outputs() + CAPTURE_OUTPUTS + sensitivity_in_report(),


onstart:
    # Local runs: no job rate limit. With it (Snakemake's default --max-jobs-per-timespan 100/1s)
    # every scheduling round starts a 1 s timer thread whose end starts another round, and every
    # job's end starts one more such chain: by the end of the default run the main process ran
    # a round (checking the input sizes of every ready job) and started a thread 50-60 times a
    # second, ~1.7 ms of CPU each (47 s of the main process's 52 s in a 15-minute loaded run).
    # Without the limit Snakemake schedules when a job ends, as it always does. Remote executors
    # (SLURM) keep the limit, which protects their controller.
    if workflow.local_exec and getattr(workflow, "scheduler", None) is not None:
        workflow.scheduler.job_rate_limiter = None


onsuccess:
    # End every run of the default target with how many predicted numbers fall within tolerance
    # (issue: paper vs ours); after other targets the file may be an earlier config's.
    from pagecore._smk import closing_summary_shown

    if closing_summary_shown(workflow.dag_settings.targets) and os.path.exists("results/numbers/comparison.txt"):
        print("\npaper vs pagecore (results/numbers/comparison.csv):")
        print(open("results/numbers/comparison.txt").read())

