# Sensitivity of the compared numbers to every UNCONFIRMED parameter (not part of the default
# run): `snakemake --cores all sensitivity`. One job per parameter (results/sensitivity/<key>.csv,
# `*` in a key written `each`), then one tornado chart per figure (results/figures/sensitivity_figNN.png).

rule sensitivity_run:
    """Sweep one unconfirmed parameter over its plausible range and score every figure it moves."""
    output:
        table="results/sensitivity/{param}.csv",
    wildcard_constraints:
        param=r"baseline|\w+(\.\w+)+",
    params:
        figures=SENS_FIGURES,
        # the parameter and its range: a table is made again when either changes
        sweep=sensitivity_sweep,
        # the whole config: a table is made again when any value it was made from changes
        config=config,
    log:
        "results/logs/sensitivity/{param}.log",
    script:
        "../scripts/sensitivity_run.py"


rule sensitivity:
    """Tornado charts: which conclusions depend on guessed parameters (not in the default run)."""
    input:
        runs=sensitivity_runs,
    output:
        table="results/sensitivity/sensitivity.csv",
        pngs=report(
            expand("results/figures/sensitivity_{fig}.png", fig=SENS_FIGURES),
            caption="../report/sensitivity.rst",
            category="Sensitivity",
        ),
        pdfs=expand("results/figures/sensitivity_{fig}.pdf", fig=SENS_FIGURES),
        stamp=SENS_STAMP,
    params:
        figures=SENS_FIGURES,
        swept=sensitivity_runs,  # the tables' parameters: one added or removed makes the charts again
        # the config the charts are drawn under: the report leaves out charts of another config
        digest=SENS_DIGEST,
    log:
        "results/logs/sensitivity.log",
    script:
        "../scripts/sensitivity.py"
