# Synthetic guests written as real raw physical memory dumps.


rule fig04_guest:
    """Write one synthetic Figure 4 guest as a raw memory dump and hash that dump into a page table (one job)."""
    output:
        dump=fig04_dump("results/synth/fig04/vm{idx}.raw"),
        pages="results/pages/fig04/vm{idx}.parquet",
    params:
        model=fig04_model(),
        vm="vm{idx}",
        hashing=HASHING,
    log:
        "results/logs/fig04_guest/vm{idx}.log",
    priority: priority_of("fig04_guest")
    script:
        "../scripts/fig04_guest.py"


rule synth_fig05_pages:
    """Write the guests of one Figure 5 host as a hash-only page table."""
    output:
        pages="results/pages/fig05/{scenario}.parquet",
    params:
        scenario=fig05_scenario,
        catalogue=config["catalogue"],
        seed=FIG05["seed"],
    log:
        "results/logs/synth_fig05_pages/{scenario}.log",
    priority: priority_of("synth_fig05_pages")
    script:
        "../scripts/synth_fig05_pages.py"
