# Every figNN.json (and the Figures 6-8 re-runs at the other seeds) gathered into one
# paper-vs-ours table, scored against each figure's null model.


if EXTRA_SEEDS:

    # One job for all seeds: it reads each trace once and replays it per seed (one job per seed
    # paid a Python start, the kernels' loading and three trace reads each).
    rule seed_numbers:
        """Replay Figures 6-8 under every other simulator seed and score their numbers (comparison.seeds)."""
        input:
            fig06="results/traces/fig06.parquet",
            fig07="results/traces/fig07.parquet",
            fig08="results/traces/fig08.parquet",
        output:
            numbers=extra_seed_numbers(),
        params:
            sim=config["sim"],
            workloads=config["workloads"],
            seeds=EXTRA_SEEDS,
            outputs=[(s, f"results/numbers/seeds/{s}.json") for s in EXTRA_SEEDS],
        log:
            "results/logs/seed_numbers.log",
        priority: priority_of("seed_numbers")
        script:
            "../scripts/seed_numbers.py"


rule influence:
    """Influence step runs: each value chosen on a figure perturbed, that figure's predicted numbers."""
    output:
        runs="results/numbers/influence_runs.csv",
    params:
        config=config,
    log:
        "results/logs/influence.log",
    priority: priority_of("influence")
    script:
        "../scripts/influence.py"


rule comparison:
    """Gather every paper-vs-ours number into comparison.csv and comparison.txt (influence step applied)."""
    input:
        numbers=figure_numbers,
        seeds=extra_seed_numbers,
        influence_runs="results/numbers/influence_runs.csv",
    output:
        table=report(
            "results/numbers/comparison.csv",
            caption="../report/comparison.rst",
            category="Paper vs ours",
        ),
        scores="results/numbers/scores.csv",
        summary="results/numbers/comparison.txt",
        provenance="results/numbers/provenance.csv",
        influence="results/numbers/influence.csv",
    params:
        comparison=config["comparison"],
        config=config,
        default_seed=config["sim"]["seed"],
    log:
        "results/logs/comparison.log",
    script:
        "../scripts/comparison.py"
