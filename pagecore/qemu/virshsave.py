"""A real ``virsh save`` image beside a QEMU dump of the same paused guest (issue 17 item 2).

libvirt needs its daemon. Where none answers on ``qemu:///system``, :class:`Libvirtd` starts
``virtlogd`` and ``libvirtd`` here in the foreground of their own processes (no systemd is
needed), remembers their PIDs and ends exactly those on leaving. Then:

1. a tiny *transient* domain (``<domain type='qemu'>``: TCG, so no ``/dev/kvm`` is needed;
   ``no_timer_check`` on the kernel command line, because TCG's timer can look broken to the
   guest's calibration) boots Debian's kernel with the capture initramfs of
   :mod:`pagecore.qemu.capture` and waits for its workload marker on the serial console;
2. ``virsh suspend`` pauses it; ``virsh dump --memory-only --format elf`` writes QEMU's
   ``dump-guest-memory`` ELF of the paused guest;
3. ``virsh save`` writes libvirt's save image (header, domain XML, QEMU's migration stream) and
   ends the transient domain; a domain still defined on any error is destroyed.

Both files then hold the pages of one paused guest, so the save image read by
:mod:`pagecore.dumps.libvirt_save` must give exactly the ELF's pages (``tests/test_savestate.py``).

``pagecore qemu virshsave OUT_DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pagecore.qemu.capture import DEFAULT_APPEND, MARKER, CaptureError, build_initramfs, newest_kernel, qemu_version

URI = "qemu:///system"
DOMAIN = "pagecore-virshsave"
#: libvirt's unprivileged QEMU user must reach the kernel, initramfs and console files.
_WORLD_READ = 0o755


class LibvirtUnavailable(CaptureError):
    """libvirtd is not there and could not be started here (tests skip with this reason)."""


def libvirt_reason() -> str | None:
    """Why a real ``virsh save`` cannot run here, or ``None``."""
    for tool in ("virsh", "libvirtd", "virtlogd", "qemu-system-x86_64", "busybox"):
        if shutil.which(tool) is None:
            pkg = {
                "virsh": "libvirt-clients",
                "qemu-system-x86_64": "qemu-system-x86",
                "busybox": "busybox-static",
            }.get(tool, "libvirt-daemon-system")
            return f"{tool} not found (apt-get install --no-install-recommends {pkg})"
    if os.geteuid() != 0:
        return "libvirtd's system instance needs root"
    try:
        newest_kernel()
    except CaptureError as e:
        return str(e)
    return None


def virsh(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``virsh -c qemu:///system ARGS``; raise :class:`CaptureError` with its message on failure."""
    proc = subprocess.run(
        ["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise CaptureError(f"virsh {args[0]}: {msg[-1] if msg else f'exit {proc.returncode}'}")
    return proc


def _answers() -> bool:
    try:
        return virsh("version", timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


class Libvirtd:
    """Use the running libvirtd, or start ``virtlogd`` + ``libvirtd`` and end exactly those on exit.

    ``started`` lists ``(name, pid)`` of the daemons started here; logs go to ``work``.
    """

    def __init__(self, work: Path, timeout: float = 60.0):
        self.work = Path(work)
        self.timeout = timeout
        self.procs: list[tuple[str, subprocess.Popen]] = []

    @property
    def started(self) -> list[tuple[str, int]]:
        return [(n, p.pid) for n, p in self.procs]

    def __enter__(self) -> Libvirtd:
        if _answers():
            return self
        try:
            for name in ("virtlogd", "libvirtd"):
                if shutil.which(name) is None:
                    raise LibvirtUnavailable(f"{name} not found (apt-get install libvirt-daemon-system)")
                log = open(self.work / f"{name}.log", "wb")
                self.procs.append(
                    (name, subprocess.Popen([name], stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.work))
                )
                log.close()
            deadline = time.monotonic() + self.timeout
            while not _answers():
                for name, p in self.procs:
                    if p.poll() is not None:
                        log = self.work / f"{name}.log"
                        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
                        raise LibvirtUnavailable(f"{name} exited with {p.returncode}: {' '.join(tail)}")
                if time.monotonic() > deadline:
                    raise LibvirtUnavailable(f"libvirtd did not answer on {URI} within {self.timeout:.0f} s")
                time.sleep(0.5)
        except BaseException:
            self._stop()
            raise
        return self

    def _stop(self) -> None:
        for _name, p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()  # this Popen's PID only
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
                    p.wait(10)

    def __exit__(self, *exc) -> None:
        self._stop()


def domain_xml(name: str, kernel: Path, initrd: Path, console: Path, ram_mb: int, append: str) -> str:
    """A transient TCG domain booting ``kernel`` + ``initrd`` with the serial console in ``console``."""
    cmdline = f"console=ttyS0 rdinit=/init panic=-1 edd=off quiet loglevel=3 no_timer_check {append}"
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{ram_mb}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{shutil.which("qemu-system-x86_64")}</emulator>
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def capture_virsh_save(out_dir: str | os.PathLike, *, ram_mb: int = 128, boot_timeout: float = 300.0) -> dict:
    """Boot, pause, dump and ``virsh save`` one tiny guest; write ``guest.elf``, ``guest.libvirt.save``
    and ``virshsave.json`` (versions, timings, the daemons started) into ``out_dir``.

    The files are written in a hidden directory inside ``out_dir`` and moved into it only when all
    are complete: a failed save left this run's ``guest.elf`` beside an earlier run's save image,
    two different guests under the names of one capture."""
    why = libvirt_reason()
    if why:
        raise CaptureError(why)
    final = Path(out_dir).resolve()
    final.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pagecore-virshsave-", dir=final) as stage:
        out = Path(stage)
        os.chmod(out, final.stat().st_mode & 0o777)  # libvirt writes here as it would in out_dir
        manifest = _capture(out, ram_mb, boot_timeout)
        for f in sorted(out.iterdir()):  # all complete: only now replace an earlier capture's
            os.replace(f, final / f.name)
    return manifest


def _capture(out: Path, ram_mb: int, boot_timeout: float) -> dict:
    """:func:`capture_virsh_save` into the staging directory ``out``."""
    kernel = newest_kernel()
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pagecore-virshsave-") as tmp:
        work = Path(tmp)
        os.chmod(work, _WORLD_READ)
        initrd = build_initramfs(work / "initrd.cpio", Path(shutil.which("busybox")))
        os.chmod(initrd, 0o644)
        console = work / "console.log"
        xml = work / "domain.xml"
        name = f"{DOMAIN}-{os.getpid()}"
        xml.write_text(domain_xml(name, kernel, initrd, console, ram_mb, DEFAULT_APPEND))
        with Libvirtd(work) as daemons:
            created = False
            try:
                virsh("create", str(xml))
                created = True
                t0 = time.monotonic()
                while MARKER not in (console.read_text(errors="replace") if console.exists() else ""):
                    if time.monotonic() - t0 > boot_timeout:
                        raise CaptureError(f"no workload marker on the console within {boot_timeout:.0f} s")
                    time.sleep(1)
                boot_s = time.monotonic() - t0
                virsh("suspend", name)
                virsh("dump", "--memory-only", "--format", "elf", name, str(out / "guest.elf"), timeout=600)
                t1 = time.monotonic()
                virsh("save", name, str(out / "guest.libvirt.save"), timeout=600)
                save_s = time.monotonic() - t1
                created = False  # a saved transient domain is gone
            finally:
                if created:
                    virsh("destroy", name, check=False)
            started = daemons.started
            libvirt_version = virsh("version", check=False).stdout.strip().splitlines()
    manifest = {
        "libvirt": libvirt_version,
        "qemu_version": qemu_version("qemu-system-x86_64"),
        "kernel": str(kernel),
        "domain_type": "qemu (TCG)",
        "ram_mb": ram_mb,
        "boot_seconds": round(boot_s, 1),
        "save_seconds": round(save_s, 2),
        "total_seconds": round(time.monotonic() - t_all, 1),
        "daemons_started_here": started,
        "files": {p: (out / p).stat().st_size for p in ("guest.elf", "guest.libvirt.save")},
    }
    (out / "virshsave.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pagecore qemu virshsave", description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="directory for guest.elf, guest.libvirt.save and virshsave.json")
    p.add_argument("--ram-mb", type=int, default=128, help="guest RAM (default 128)")
    p.add_argument("--boot-timeout", type=float, default=300.0, help="seconds to wait for the workload (TCG)")
    args = p.parse_args(argv)
    try:
        man = capture_virsh_save(args.out_dir, ram_mb=args.ram_mb, boot_timeout=args.boot_timeout)
    except CaptureError as e:
        print(f"pagecore qemu virshsave: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(man, indent=1))
    return 0
