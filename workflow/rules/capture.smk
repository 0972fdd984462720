# Optional: capture real guest memory dumps from a small QEMU guest, then hash them.
# Off by default; needs `apt-get install qemu-system-x86 linux-image-amd64 busybox-static`
# (and optionally makedumpfile). See `python -m pagecore.qemu.capture --help`.
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
# results/pages/capture/guest.<fmt>.parquet  one page table per captured dump

import sys

#: the interpreter running Snakemake, which has pagecore installed (`python` on PATH may not)
PYTHON = sys.executable

CAPTURE = {"enabled": False, "ram_mb": 128, "accel": "auto", "kvm_timeout_s": 30, **config.get("capture", {})}

#: the captured dumps hashed into page tables: the same paused guest in every format
CAPTURE_DUMPS = ["raw", "elf", "kdump-zlib.flat", "lime"]

#: add to `rule all` (e.g. `final_outputs() + CAPTURE_OUTPUTS`); empty unless capture.enabled
CAPTURE_OUTPUTS = (
    expand("results/pages/capture/guest.{name}.parquet", name=CAPTURE_DUMPS) if CAPTURE["enabled"] else []
)


rule capture_qemu_dumps:
    """Boot a small QEMU guest, pause it and dump its memory in every format (capture.enabled)."""
    output:
        manifest="results/capture/qemu/manifest.json",
        dumps=expand("results/capture/qemu/guest.{name}", name=CAPTURE_DUMPS),
    params:
        python=PYTHON,
        ram_mb=CAPTURE["ram_mb"],
        accel=CAPTURE["accel"],
        kvm_timeout=CAPTURE["kvm_timeout_s"],
    log:
        "results/logs/capture_qemu_dumps/capture.log",
    benchmark:
        "results/benchmarks/capture_qemu_dumps/capture.tsv"
    shell:
        '"{params.python}" -m pagecore.qemu.capture -o "$(dirname {output.manifest})" --ram-mb {params.ram_mb} '
        "--accel {params.accel} --kvm-timeout {params.kvm_timeout} > {log} 2>&1"


rule hash_captured_dump:
    """Hash one captured dump into a page table."""
    input:
        dump="results/capture/qemu/guest.{name}",
        manifest=rules.capture_qemu_dumps.output.manifest,
    output:
        pages="results/pages/capture/guest.{name}.parquet",
    params:
        python=PYTHON,
    log:
        "results/logs/hash_captured_dump/{name}.log",
    benchmark:
        "results/benchmarks/hash_captured_dump/{name}.tsv"
    shell:
        '"{params.python}" -m pagecore hash {input.dump} -o {output.pages} --vm captured-{wildcards.name} -q > {log} 2>&1'
