# Dumps -> page tables (vm, gpfn, hash, zero), streamed through the pcx64-v1 page hash.


rule hash_user_dump:
    """Hash one of your dumps (config: dumps) into a page table."""
    input:
        dump=user_dump_path,
    output:
        pages="results/pages/user/{vm}.parquet",
    params:
        vm="{vm}",
        format=user_dump_format,
        dump=user_dump_stamp,
        hashing=HASHING,
    log:
        "results/logs/hash_user_dump/{vm}.log",
    script:
        "../scripts/hash_dump.py"
