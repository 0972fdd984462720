# Dumps -> page tables (vm, gpfn, hash, zero), streamed through the pcx64-v1 page hash.


rule hash_fig04_guest:
    """Hash one synthetic Figure 4 dump into a page table (vm, gpfn, hash, zero)."""
    input:
        dump=rules.synth_fig04_guest.output.dump,
    output:
        pages="results/pages/fig04/vm{idx}.parquet",
    params:
        vm="vm{idx}",
        format="raw",
        hashing=config["hashing"],
    log:
        "results/logs/hash_fig04_guest/vm{idx}.log",
    benchmark:
        "results/benchmarks/hash_fig04_guest/vm{idx}.tsv"
    script:
        "../scripts/hash_dump.py"


rule hash_user_dump:
    """Hash one of your dumps (config: dumps) into a page table."""
    input:
        dump=user_dump_path,
    output:
        pages="results/pages/user/{vm}.parquet",
    params:
        vm="{vm}",
        format=user_dump_format,
        hashing=config["hashing"],
    log:
        "results/logs/hash_user_dump/{vm}.log",
    benchmark:
        "results/benchmarks/hash_user_dump/{vm}.tsv"
    script:
        "../scripts/hash_dump.py"
