"""Make real saved-state files: a paused guest's migration stream beside its ELF dump and raw RAM.

On one booted capture guest (:func:`pagecore.qemu.capture.boot_guest`), over QMP: ``stop``;
``dump-guest-memory`` (ELF); ``pmemsave`` of base RAM; ``migrate "exec:cat > FILE"`` (QEMU's
``QEVM`` stream, exactly what ``virsh save`` puts after its header), waiting for ``completed``;
``quit``. All of a paused guest, so every file holds the same pages. Only the QEMU process
started here is ended, by PID.

``pagecore qemu savestate OUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from pagecore.qemu.capture import (
    DEFAULT_APPEND,
    QMP,
    CaptureError,
    _which,
    boot_guest,
    build_initramfs,
    newest_kernel,
    pause_and_save_ram,
    qemu_version,
    qmp_session,
)

MIGRATE_TIMEOUT = 300.0


def migrate_to_file(qmp: QMP, path: Path, timeout: float = MIGRATE_TIMEOUT) -> dict:
    """Write the guest's migration stream to ``path`` with ``migrate exec:cat``; return query-migrate."""
    qmp.cmd("migrate", uri="exec:cat > " + shlex.quote(str(path)))
    deadline = time.monotonic() + timeout
    while True:
        info = qmp.cmd("query-migrate")
        status = info.get("status")
        if status == "completed":
            return info
        if status in ("failed", "cancelled"):
            raise CaptureError(f"migrate to {path}: {status} {info.get('error-desc', '')}")
        if time.monotonic() > deadline:
            raise CaptureError(f"migrate to {path}: still {status} after {timeout:.0f} s")
        time.sleep(0.2)


def capture_saved_state(
    out_dir: Path,
    *,
    ram_mb: int = 128,
    accel: str = "auto",
    kvm_timeout: float = 20,
    tcg_timeout: float = 300,
) -> dict:
    """Boot, pause, and write ``guest.qevm``, ``guest.elf`` and ``guest.raw`` of the same paused guest.

    The files are written in a hidden directory inside ``out_dir`` and moved into it only when all
    of them are complete (with ``savestate.json``): a failed capture leaves no partial file and
    does not replace the files of an earlier one.

    Returns a manifest dict (versions, accelerator, files, query-migrate result).
    """
    qemu = _which("qemu-system-x86_64", "apt-get install qemu-system-x86")
    busybox = Path(_which("busybox", "apt-get install busybox-static"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kernel = newest_kernel()
    with tempfile.TemporaryDirectory(prefix=".pagecore-savestate-", dir=out_dir) as stage:
        manifest = _capture(Path(stage), qemu, busybox, kernel, ram_mb, accel, kvm_timeout, tcg_timeout)
        for f in sorted(Path(stage).iterdir()):  # all complete: only now replace an earlier capture's
            os.replace(f, out_dir / f.name)
    return manifest


def _capture(out_dir: Path, qemu, busybox: Path, kernel, ram_mb, accel, kvm_timeout, tcg_timeout) -> dict:
    """:func:`capture_saved_state` into the staging directory ``out_dir``."""
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pagecore-savestate-") as tmp:
        work = Path(tmp)
        initrd = build_initramfs(work / "initrd.cpio", busybox)
        proc, sock, used, _ = boot_guest(
            qemu, accel, kernel, initrd, ram_mb, work, DEFAULT_APPEND, kvm_timeout, tcg_timeout, notes
        )
        with qmp_session(proc, sock) as qmp:
            ram = pause_and_save_ram(qmp, out_dir / "guest.raw")
            qmp.cmd("dump-guest-memory", paging=False, protocol=f"file:{out_dir / 'guest.elf'}")
            t0 = time.monotonic()
            info = migrate_to_file(qmp, out_dir / "guest.qevm")
            secs = time.monotonic() - t0
            machine = qmp.cmd("query-target")
    manifest = {
        "qemu_version": qemu_version(qemu),
        "kernel": str(kernel),
        "accel": used,
        "ram_bytes": ram,
        "target": machine,
        "migrate_seconds": round(secs, 2),
        "query_migrate": info,
        "notes": notes,
        "files": {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()},
    }
    (out_dir / "savestate.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pagecore qemu savestate", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--ram-mb", type=int, default=128)
    ap.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    a = ap.parse_args(argv)
    try:
        m = capture_saved_state(a.out_dir, ram_mb=a.ram_mb, accel=a.accel)
    except CaptureError as e:
        print(f"pagecore: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(m, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
