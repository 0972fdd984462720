# Every figNN.json (and the Figures 6-8 re-runs at the other seeds) gathered into one
# paper-vs-ours table, scored against each figure's null model.


rule seed_numbers:
    """Replay Figures 6-8 under one more simulator seed and score its numbers (comparison.seeds)."""
    input:
        fig06="results/traces/fig06.parquet",
        fig07="results/traces/fig07.parquet",
        fig08="results/traces/fig08.parquet",
    output:
        numbers="results/numbers/seeds/{seed}.json",
    wildcard_constraints:
        seed=r"\d+",
    params:
        sim=config["sim"],
        workloads=config["workloads"],
    log:
        "results/logs/seed_numbers/{seed}.log",
    benchmark:
        "results/benchmarks/seed_numbers/{seed}.tsv"
    script:
        "../scripts/seed_numbers.py"


rule comparison:
    """Gather every paper-vs-ours number into comparison.csv and the summary comparison.txt."""
    input:
        numbers=figure_numbers,
        seeds=extra_seed_numbers,
    output:
        table=report(
            "results/numbers/comparison.csv",
            caption="../report/comparison.rst",
            category="Paper vs ours",
        ),
        scores="results/numbers/scores.csv",
        summary="results/numbers/comparison.txt",
        provenance="results/numbers/provenance.csv",
    params:
        comparison=config["comparison"],
        config=config,
        default_seed=config["sim"]["seed"],
    log:
        "results/logs/comparison.log",
    script:
        "../scripts/comparison.py"
