# Synthetic guests written as real raw physical memory dumps.


rule synth_fig04_guest:
    output:
        dump=fig04_dump("results/synth/fig04/vm{idx}.raw"),
    params:
        model=FIG04,
    log:
        "results/logs/synth_fig04_guest/vm{idx}.log",
    benchmark:
        "results/benchmarks/synth_fig04_guest/vm{idx}.tsv"
    script:
        "../scripts/synth_fig04_guest.py"


rule synth_fig05_pages:
    output:
        pages="results/pages/fig05/{scenario}.parquet",
    params:
        scenario=fig05_scenario,
        catalogue=config["catalogue"],
        seed=FIG05["seed"],
    log:
        "results/logs/synth_fig05_pages/{scenario}.log",
    benchmark:
        "results/benchmarks/synth_fig05_pages/{scenario}.tsv"
    script:
        "../scripts/synth_fig05_pages.py"
