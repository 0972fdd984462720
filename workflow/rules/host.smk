# Your VMs on a host (issue 15): the Figure 4 guests placed on hosts of the configured sizes
# under each policy (pagecore.experiments.host; the same model as `pagecore host`).


rule host_whatif_run:
    """Place the Figure 4 guests on each host size under each policy: savings per mechanism, VMs that fit."""
    input:
        pages=fig04_page_tables,
    output:
        rows="results/host/fig04.rows.csv",
        report="results/host/fig04.json",
        timelines="results/host/fig04.timelines.parquet",
    params:
        host=config["host"],
    log:
        "results/logs/host_whatif_run.log",
    priority: priority_of("host_whatif_run")
    script:
        "../scripts/host_whatif.py"


rule reclamation_approaches_run:
    """Transparent vs cooperative reclamation on the Figure 4 guests (free pages from the content model)."""
    input:
        pages=fig04_page_tables,
    output:
        timeline="results/host/approaches.timeline.parquet",
        table="results/host/approaches.csv",
    params:
        host=config["host"],
        balloon=pick(config["sim"]["balloon"], "rate_min_mb_s", "rate_max_mb_s"),
    log:
        "results/logs/reclamation_approaches_run.log",
    priority: priority_of("reclamation_approaches_run")
    script:
        "../scripts/reclamation_approaches.py"


rule figures_host:
    """Figures: VMs that fit and memory won per host size and policy; the reclamation approaches over time."""
    input:
        host_whatif_rows=rules.host_whatif_run.output.rows,
        host_whatif_timelines=rules.host_whatif_run.output.timelines,
        approaches_timeline=rules.reclamation_approaches_run.output.timeline,
        approaches_table=rules.reclamation_approaches_run.output.table,
    output:
        host_whatif_png=report(
            "results/figures/host_whatif.png",
            caption="../report/host_whatif.rst",
            category="Your VMs on a host",
        ),
        host_whatif_pdf="results/figures/host_whatif.pdf",
        approaches_png=report(
            "results/figures/reclamation_approaches.png",
            caption="../report/reclamation_approaches.rst",
            category="Your VMs on a host",
        ),
        approaches_pdf="results/figures/reclamation_approaches.pdf",
    params:
        figures=["host_whatif", "reclamation_approaches"],
    log:
        "results/logs/figures_host.log",
    priority: priority_of("figures_host")
    script:
        "../scripts/figures.py"


rule freereport_capture:
    """Boot two real guests (free page reporting on and off), run the alloc/free workload, save RAM and free pages."""
    output:
        off="results/host/freereport/fpr-off.pages.parquet",
        on="results/host/freereport/fpr-on.pages.parquet",
        summary="results/host/freereport/freereport.json",
    params:
        real=config["host"]["approaches_real"],
    log:
        "results/logs/freereport_capture.log",
    script:
        "../scripts/freereport_capture.py"


rule reclamation_approaches_real_run:
    """Transparent vs cooperative reclamation on a real guest's RAM and its own free-page list."""
    input:
        pages=rules.freereport_capture.output.off,
    output:
        timeline="results/host/approaches_real.timeline.parquet",
        table="results/host/approaches_real.csv",
    params:
        host=config["host"],
        balloon=pick(config["sim"]["balloon"], "rate_min_mb_s", "rate_max_mb_s"),
    log:
        "results/logs/reclamation_approaches_real_run.log",
    script:
        "../scripts/reclamation_approaches.py"


rule reclamation_approaches_real:
    """Figure: the reclamation approaches on a real guest (optional: host.approaches_real.enabled)."""
    input:
        approaches_real_timeline=rules.reclamation_approaches_real_run.output.timeline,
        approaches_real_table=rules.reclamation_approaches_real_run.output.table,
    output:
        approaches_real_png=report(
            "results/figures/reclamation_approaches_real.png",
            caption="../report/reclamation_approaches.rst",
            category="Your VMs on a host",
        ),
        approaches_real_pdf="results/figures/reclamation_approaches_real.pdf",
    params:
        figures=["reclamation_approaches_real"],
    log:
        "results/logs/reclamation_approaches_real.log",
    script:
        "../scripts/figures.py"
