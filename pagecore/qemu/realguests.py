"""Figure 4 on real guests: N identical QEMU Linux guests running the same workload.

The paper's Figure 4 ran 1–10 identical Red Hat Linux 7.2 VMs with the same SPEC95 programs.
This companion boots N identical guests of Debian's kernel (same kernel, same busybox
initramfs workload of :mod:`pagecore.qemu.capture`, same RAM size), one after another, pauses each
once its workload is ready and saves its RAM with QMP ``pmemsave`` as a raw dump. Hashing the
dumps and sweeping 1..N gives a measured Figure 4 beside the synthetic one.

Guests are booted one at a time, so the host never holds more than one; only the QEMU
processes started here are ended, by PID. KVM is tried under a time limit first (nested KVM is
unreliable on CI machines), then TCG. ``pagecore qemu realguests --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from pagecore.qemu.capture import (
    DEFAULT_APPEND,
    CaptureError,
    _which,
    boot_guest,
    build_initramfs,
    newest_kernel,
    pause_and_save_ram,
    publish,
    qemu_version,
    qmp_session,
    sha256_file,
    staging_dir,
)


def capture_identical(
    n: int,
    out_dir: str | os.PathLike,
    *,
    ram_mb: int = 128,
    accel: str = "auto",
    kvm_timeout: float = 30.0,
    tcg_timeout: float = 600.0,
    qemu: str = "qemu-system-x86_64",
    busybox: Path = Path("/bin/busybox"),
    append: str = DEFAULT_APPEND,
) -> dict:
    """Boot ``n`` identical guests in turn and save each one's RAM as ``guestNN.raw``.

    Returns the manifest (also written to ``out_dir/manifest.json``).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    qemu = _which(qemu, "apt-get install qemu-system-x86")
    if not busybox.exists():
        raise CaptureError(f"{busybox} not found; apt-get install busybox-static")
    kernel = newest_kernel()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".work"
    work.mkdir(exist_ok=True)
    initrd = build_initramfs(work / "initramfs.cpio", busybox)
    manifest = {
        "qemu_version": qemu_version(qemu),
        "kernel": str(kernel),
        "ram_mb": ram_mb,
        "append": append,
        "guests": {},
        "notes": [],
    }
    use = accel
    stage = staging_dir(out, "realguests")  # guests appear in `out` together, with their manifest
    try:
        for i in range(1, n + 1):
            gwork = work / f"guest{i:02d}"
            gwork.mkdir(exist_ok=True)
            proc, sock, used, secs = boot_guest(
                qemu, use, kernel, initrd, ram_mb, gwork, append, kvm_timeout, tcg_timeout, manifest["notes"]
            )
            manifest["guests"][f"guest{i:02d}"] = {"accel": used, "boot_s": round(secs, 1)}
            use = used  # the same accelerator for the rest: identical guests
            raw = stage / f"guest{i:02d}.raw"
            with qmp_session(proc, sock) as qmp:
                pause_and_save_ram(qmp, raw)
            manifest["guests"][f"guest{i:02d}"].update(bytes=raw.stat().st_size, sha256=sha256_file(raw))
        manifest["captured_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        publish(stage, out, [f"{g}.raw" for g in manifest["guests"]])
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pagecore qemu realguests", description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output-dir", required=True, help="directory for guestNN.raw and manifest.json")
    p.add_argument("--vms", type=int, default=4, help="number of identical guests (default 4)")
    p.add_argument("--ram-mb", type=int, default=128, help="guest RAM in MB (default 128)")
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto", help="accelerator (default auto)")
    p.add_argument("--kvm-timeout", type=float, default=30.0, help="seconds to wait for KVM (default 30)")
    args = p.parse_args(argv)
    if args.vms < 1:
        p.error(f"--vms must be at least 1, got {args.vms}")
    try:
        m = capture_identical(
            args.vms, args.output_dir, ram_mb=args.ram_mb, accel=args.accel, kvm_timeout=args.kvm_timeout
        )
    except CaptureError as exc:
        print(f"pagecore: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(m, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
