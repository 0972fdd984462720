# Optional: Figure 4 measured on N identical real QEMU guests (pagecore.qemu.realguests), beside the
# synthetic one. Off by default (config fig04_real.enabled); needs QEMU, Debian's kernel and
# busybox (see README, "Real QEMU guests").


rule capture_identical_guests:
    """Boot N identical real QEMU guests and save their RAM (fig04_real.enabled)."""
    output:
        dumps=expand("results/real/fig04/guest{idx}.raw", idx=fig04_real_ids()),
        manifest="results/real/fig04/manifest.json",
    params:
        real=pick(config["fig04_real"], "vms", "ram_mb", "accel", "kvm_timeout_s"),
    log:
        "results/logs/capture_identical_guests.log",
    script:
        "../scripts/capture_identical_guests.py"


rule hash_real_guest:
    """Hash one real guest's RAM into a page table."""
    input:
        dump="results/real/fig04/guest{idx}.raw",
    output:
        pages="results/pages/real/guest{idx}.parquet",
    params:
        vm="guest{idx}",
        format="raw",
        hashing=HASHING,
    log:
        "results/logs/hash_real_guest/guest{idx}.log",
    script:
        "../scripts/hash_dump.py"


rule fig04_real_sweep:
    """Sharing of the first 1..N real guests (Figure 4 on real guests)."""
    input:
        pages=fig04_real_page_tables,
        dumps=expand("results/real/fig04/guest{idx}.raw", idx=fig04_real_ids()),
    output:
        sweep="results/sharing/fig04_real.sweep.csv",
    params:
        verify=config["sharing"]["verify"],
    log:
        "results/logs/fig04_real_sweep.log",
    script:
        "../scripts/vm_count_sweep.py"


rule fig04_real_guests:
    """Figure 4 on real QEMU guests beside the synthetic guests and the paper."""
    input:
        real=rules.fig04_real_sweep.output.sweep,
        synthetic=rules.fig04_sweep.output.sweep,
        manifest=rules.capture_identical_guests.output.manifest,
    output:
        png=report(
            "results/figures/fig04_real_guests.png",
            caption="../report/fig04_real_guests.rst",
            category="Page sharing",
        ),
        pdf="results/figures/fig04_real_guests.pdf",
    log:
        "results/logs/fig04_real_guests.log",
    script:
        "../scripts/fig04_real_guests.py"
