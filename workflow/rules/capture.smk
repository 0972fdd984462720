# Optional: capture real guest memory dumps from a small QEMU guest, then hash them.
# Off by default; needs `apt-get install qemu-system-x86 linux-image-amd64 busybox-static`
# (and optionally makedumpfile). See `python -m pagecore.capture --help`.
#
# config (all optional; defaults in brackets):
#   capture:
#     enabled: false      # true adds the captured page tables to `rule all`
#     ram_mb: 128         # guest RAM; Debian 12's kernel does not boot in 64 MiB
#     accel: auto         # auto = KVM under kvm_timeout_s, then TCG; or kvm / tcg
#     kvm_timeout_s: 30   # nested KVM often hangs: give up on it after this long
#
# results/capture/qemu/guest.*          the dumps (raw, elf, kdump-zlib.flat, lime, makedumpfile's)
# results/capture/qemu/manifest.json    versions, accelerator used, sha256 of every dump
# results/pages/capture/<name>.parquet  one page table per captured dump

CAPTURE = {"enabled": False, "ram_mb": 128, "accel": "auto", "kvm_timeout_s": 30, **config.get("capture", {})}

#: captured dump -> page-table name; the same guest in every format
CAPTURE_DUMPS = {
    "raw": "guest.raw",
    "elf": "guest.elf",
    "kdump-zlib-flat": "guest.kdump-zlib.flat",
    "lime": "guest.lime",
}


def capture_outputs(wildcards=None):
    """Page tables of the captured dumps, or nothing when capture.enabled is false."""
    if not CAPTURE["enabled"]:
        return []
    return expand("results/pages/capture/{name}.parquet", name=sorted(CAPTURE_DUMPS))


def capture_dump_path(wildcards):
    return f"results/capture/qemu/{CAPTURE_DUMPS[wildcards.name]}"


rule capture_qemu_dumps:
    output:
        manifest="results/capture/qemu/manifest.json",
        dumps=[f"results/capture/qemu/{f}" for f in CAPTURE_DUMPS.values()],
    params:
        out_dir="results/capture/qemu",
        ram_mb=CAPTURE["ram_mb"],
        accel=CAPTURE["accel"],
        kvm_timeout=CAPTURE["kvm_timeout_s"],
    log:
        "results/logs/capture_qemu_dumps/capture.log",
    benchmark:
        "results/benchmarks/capture_qemu_dumps/capture.tsv"
    shell:
        "python -m pagecore.capture -o {params.out_dir} --ram-mb {params.ram_mb} "
        "--accel {params.accel} --kvm-timeout {params.kvm_timeout} > {log} 2>&1"


rule hash_captured_dump:
    input:
        dump=capture_dump_path,
        manifest=rules.capture_qemu_dumps.output.manifest,
    output:
        pages="results/pages/capture/{name}.parquet",
    log:
        "results/logs/hash_captured_dump/{name}.log",
    benchmark:
        "results/benchmarks/hash_captured_dump/{name}.tsv"
    shell:
        "pagecore hash {input.dump} -o {output.pages} --vm captured-{wildcards.name} -q > {log} 2>&1"
