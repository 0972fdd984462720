# One rule per paper figure, named figNN_<slug> like its plotting function, output and caption.


rule fig04_page_sharing:
    input:
        sweep=rules.fig04_sweep.output.sweep,
    output:
        png=report(
            "results/figures/fig04_page_sharing.png",
            caption="../report/fig04_page_sharing.rst",
            category="Page sharing",
        ),
        pdf="results/figures/fig04_page_sharing.pdf",
        numbers="results/numbers/fig04.json",
    params:
        fitted=FIG04["fitted_to"],
    log:
        "results/logs/fig04_page_sharing.log",
    script:
        "../scripts/fig04_page_sharing.py"
