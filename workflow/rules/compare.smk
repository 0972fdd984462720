# Every figNN.json gathered into one paper-vs-ours table.


rule comparison:
    input:
        numbers=figure_numbers,
    output:
        table="results/numbers/comparison.csv",
        summary="results/numbers/comparison.txt",
    params:
        comparison=config["comparison"],
    log:
        "results/logs/comparison.log",
    script:
        "../scripts/comparison.py"
