"""Capture real guest memory dumps from a small QEMU guest, in every format QEMU writes.

This is how the fixtures under ``data/dumps/`` were made, and how anyone can make more. It
needs programs that pagecore itself does not install; on Debian 12::

    apt-get install qemu-system-x86 linux-image-amd64 busybox-static   # required
    apt-get install makedumpfile xz-utils                                 # optional extras

Steps
-----
1. Build a tiny initramfs (``newc`` cpio, written here in Python) holding the static busybox,
   the ``qemu_fw_cfg`` kernel module (so the guest publishes VMCOREINFO) and an ``/init``
   script that runs a small workload: a file of a repeated pattern, several copies of one
   file (identical page-cache pages, the paper's sharing opportunity), zero-filled files,
   then prints a marker on the serial console and idles.
2. Boot Debian's kernel from ``/boot`` under ``qemu-system-x86_64`` with a small RAM size.
   ``-accel kvm`` is tried first under a time limit (nested KVM on CI machines is
   unreliable); if the marker does not appear in time, that QEMU is killed and the guest is
   booted again under TCG. Which one was used is recorded.
3. Over QMP: ``stop``; ``dump-guest-memory`` once for every format that
   ``query-dump-guest-memory-capability`` lists (``elf``, ``kdump-zlib``, ``kdump-lzo``,
   ``kdump-snappy`` on QEMU 7.2; ``kdump-raw-*`` and ``win-dmp`` where offered, the latter
   skipped as pagecore does not read it); ``pmemsave`` of guest RAM for the raw image;
   ``quit``. Only the QEMU process this script started is ever killed, by its PID.
4. Extras made from those real files: a LiME file written from the raw image by
   :func:`pagecore.dumps.lime.write_lime` (no real LiME producer runs here, it needs a
   kernel module inside the guest); where ``makedumpfile`` is installed, the flattened kdump
   files re-assembled with ``makedumpfile -R`` (real plain kdump files) and, from the ELF
   core with the guest's VMCOREINFO, a ``makedumpfile -d 31`` dump that excludes pages.
5. Write ``manifest.json`` (versions, accelerator, sizes, sha256 of every file) and, with
   ``--readme``, the "Real QEMU dumps" section of ``data/README.md``; with ``--compress``,
   ``.xz`` copies of every dump for committing.

Run ``pagecore qemu capture --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import lzma
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pagecore._util import atomic_path
from pagecore.errors import PagecoreError

MARKER = "PAGECORE-WORKLOAD-READY"
#: Extra kernel arguments: a fixed layout (no KASLR) and freed memory zeroed, so that dumps
#: compress well and repeat from run to run.
DEFAULT_APPEND = "nokaslr init_on_free=1"
QMP_TIMEOUT = 120.0

#: dump-guest-memory formats pagecore reads, mapped to output file suffixes.
FORMAT_FILES = {
    "elf": "elf",
    "kdump-zlib": "kdump-zlib.flat",
    "kdump-lzo": "kdump-lzo.flat",
    "kdump-snappy": "kdump-snappy.flat",
    "kdump-raw-zlib": "kdump-zlib.kdump",
    "kdump-raw-lzo": "kdump-lzo.kdump",
    "kdump-raw-snappy": "kdump-snappy.kdump",
}

INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /work
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# publish VMCOREINFO to QEMU (-device vmcoreinfo) so dumps carry it
insmod /qemu_fw_cfg.ko 2>/dev/null
mount -t tmpfs -o size=@TMPFS_MB@m tmpfs /work
cd /work
# pattern pages: one 4 KiB pattern repeated (many identical pages)
i=0; : > pattern.4k
line="pagecore-pattern-0123456789abcdef-pagecore-pattern-0123456789ab"
while [ $i -lt 64 ]; do echo "$line" >> pattern.4k; i=$((i+1)); done
i=0; while [ $i -lt @PATTERN_PAGES@ ]; do cat pattern.4k; i=$((i+1)); done > pattern.bin
# copies of one file: identical page-cache pages
i=0; while [ $i -lt @COPIES@ ]; do cp /bin/busybox copy$i.bin; i=$((i+1)); done
# zero-filled file pages
dd if=/dev/zero of=zero.bin bs=4096 count=@ZERO_PAGES@ 2>/dev/null
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
echo "@MARKER@ $(cat /proc/meminfo | head -3 | tr -s ' ' | tr '\n' ' ')"
while true; do sleep 3600; done
"""


class CaptureError(PagecoreError):
    """The capture could not be completed (missing program, guest did not boot, QMP error)."""


@dataclass
class CaptureResult:
    """What a capture produced, for the manifest."""

    out_dir: Path
    accel: str = ""
    qemu_version: str = ""
    kernel: str = ""
    kernel_version: str = ""
    ram_mb: int = 0
    formats_offered: list[str] = field(default_factory=list)
    files: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------ initramfs
def _cpio_entry(name: str, mode: int, data: bytes = b"", ino: int = 1) -> bytes:
    nb = name.encode() + b"\0"
    hdr = ("070701" + "".join(f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))).encode()
    out = hdr + nb
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def build_initramfs(
    path: Path,
    busybox: Path,
    *,
    module: Path | None = None,
    copies: int = 2,
    pattern_pages: int = 512,
    zero_pages: int = 512,
    tmpfs_mb: int = 48,
) -> Path:
    """Write an uncompressed ``newc`` initramfs with busybox, ``/init`` and the workload.

    Parameters
    ----------
    path : Path
        Output file.
    busybox : Path
        A statically linked busybox binary.
    module : Path, optional
        ``qemu_fw_cfg.ko`` of the guest kernel, loaded by ``/init`` if given.
    copies, pattern_pages, zero_pages, tmpfs_mb : int
        Workload size: copies of the busybox binary, pages of a repeated 4 KiB pattern,
        pages of a zero-filled file, tmpfs size limit.
    """
    init = (
        INIT_SCRIPT.replace("@MARKER@", MARKER)
        .replace("@COPIES@", str(copies))
        .replace("@PATTERN_PAGES@", str(pattern_pages))
        .replace("@ZERO_PAGES@", str(zero_pages))
        .replace("@TMPFS_MB@", str(tmpfs_mb))
    )
    entries = [
        _cpio_entry("bin", 0o040755, ino=1),
        _cpio_entry("dev", 0o040755, ino=2),
        _cpio_entry("dev/console", 0o020600, ino=3),
        _cpio_entry("bin/busybox", 0o100755, busybox.read_bytes(), ino=4),
        _cpio_entry("init", 0o100755, init.encode(), ino=5),
    ]
    if module is not None:
        entries.append(_cpio_entry("qemu_fw_cfg.ko", 0o100644, module.read_bytes(), ino=6))
    entries.append(_cpio_entry("TRAILER!!!", 0, ino=0))
    # dev/console needs rdev 5:1; patch the rdevmajor/minor fields of that entry
    raw = bytearray(b"".join(entries))
    i = raw.find(b"dev/console\0")
    hdr_start = i - 110
    raw[hdr_start + 6 + 8 * 9 : hdr_start + 6 + 8 * 10] = b"%08x" % 5
    raw[hdr_start + 6 + 8 * 10 : hdr_start + 6 + 8 * 11] = b"%08x" % 1
    path.write_bytes(bytes(raw))
    return path


# ------------------------------------------------------------------------------- QMP
class QMP:
    """A minimal, synchronous QMP client over a UNIX socket."""

    def __init__(self, path: Path, timeout: float = QMP_TIMEOUT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise CaptureError(f"QMP socket {path} did not appear") from None
                time.sleep(0.1)
        self._buf = b""
        self._recv()  # greeting
        self.cmd("qmp_capabilities")

    def _recv(self) -> dict:
        while b"\n" not in self._buf:
            data = self.sock.recv(65536)
            if not data:
                raise CaptureError("QMP connection closed by QEMU")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name: str, **args):
        """Run one command; return its ``return`` value, skipping asynchronous events."""
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._recv()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise CaptureError(f"QMP {name}: {reply['error'].get('desc', reply['error'])}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# --------------------------------------------------------------------------- helpers
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def newest_kernel(boot: Path = Path("/boot")) -> Path:
    kernels = sorted(boot.glob("vmlinuz-*"))
    if not kernels:
        raise CaptureError(f"no kernel in {boot}; apt-get install linux-image-amd64 or pass --kernel")
    return kernels[-1]


def qemu_version(qemu: str) -> str:
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


def _which(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CaptureError(f"{name} not found; {hint}")
    return path


def _kill(proc: subprocess.Popen) -> None:
    """End the QEMU this script started (by its PID only)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _boot(
    qemu: str,
    accel: str,
    kernel: Path,
    initrd: Path,
    ram_mb: int,
    work: Path,
    timeout: float,
    append: str,
    extra_args: tuple[str, ...] = (),
    on_start=None,
) -> tuple[subprocess.Popen, Path] | None:
    """Start QEMU; return (process, qmp socket) once the marker is on the console, else None.

    ``extra_args`` are appended to QEMU's command line (devices such as a virtio-balloon);
    ``on_start(pid)`` is called as soon as QEMU runs, before the boot is waited for (a caller that
    saves its PIDs to a file can then end it after being killed mid-boot; if it raises, QEMU is ended).
    """
    console = work / f"console-{accel}.log"
    qmp_sock = work / f"qmp-{accel}.sock"
    with contextlib.suppress(FileNotFoundError):
        qmp_sock.unlink()
    cmd = [
        qemu,
        "-machine",
        "pc",
        "-accel",
        accel,
        "-m",
        str(ram_mb),
        "-smp",
        "1",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        f"console=ttyS0 rdinit=/init panic=-1 edd=off quiet loglevel=3 {append}",
        "-serial",
        f"file:{console}",
        "-device",
        "vmcoreinfo",
        "-qmp",
        f"unix:{qmp_sock},server=on,wait=off",
        *extra_args,
    ]
    log = open(work / f"qemu-{accel}.log", "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + timeout
    try:
        if on_start is not None:
            on_start(proc.pid)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None
            if console.exists() and MARKER in console.read_text(errors="replace"):
                return proc, qmp_sock
            time.sleep(0.5)
    except BaseException:  # Ctrl-C or SIGTERM while waiting: the caller never gets this QEMU to end
        _kill(proc)
        raise
    _kill(proc)
    return None


def boot_guest(
    qemu: str,
    accel: str,
    kernel: Path,
    initrd: Path,
    ram_mb: int,
    work: Path,
    append: str,
    kvm_timeout: float,
    tcg_timeout: float,
    notes: list[str],
    extra_args: tuple[str, ...] = (),
    on_start=None,
) -> tuple[subprocess.Popen, Path, str, float]:
    """Boot under KVM (``accel`` auto/kvm, within ``kvm_timeout``) or else TCG.

    ``extra_args`` are appended to QEMU's command line; ``on_start(pid)`` is called for each QEMU
    started, as soon as it runs (see :func:`_boot`).

    Returns ``(process, qmp socket, accelerator used, seconds to the workload marker)``;
    appends what happened to ``notes``; raises :class:`CaptureError` if no try booted.
    """
    tries = []
    if accel in ("auto", "kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK):
        tries.append(("kvm", kvm_timeout))
    if accel in ("auto", "tcg"):
        tries.append(("tcg", tcg_timeout))
    for name, limit in tries:
        t0 = time.monotonic()
        booted = _boot(qemu, name, kernel, initrd, ram_mb, work, limit, append, tuple(extra_args), on_start)
        if booted is not None:
            secs = time.monotonic() - t0
            notes.append(f"guest booted under {name} in {secs:.1f} s")
            return booted[0], booted[1], name, secs
        notes.append(f"{name}: no workload marker within {limit:.0f} s (or QEMU exited)")
    raise CaptureError("guest did not boot: " + "; ".join(notes) + f" (logs in {work})")


def pause_and_save_ram(qmp: QMP, path: Path) -> int:
    """Stop the guest and ``pmemsave`` its whole base RAM to ``path``; return the RAM bytes."""
    qmp.cmd("stop")
    ram = qmp.cmd("query-memory-size-summary")["base-memory"]
    qmp.cmd("pmemsave", val=0, size=ram, filename=str(path))
    return ram


@contextlib.contextmanager
def qmp_session(proc: subprocess.Popen, sock: Path):
    """QMP on a booted guest; on leaving, ask QEMU to quit, close the socket, end our process."""
    qmp = None
    try:
        qmp = QMP(sock)
        yield qmp
        with contextlib.suppress(CaptureError, OSError):
            qmp.cmd("quit")
    finally:
        if qmp is not None:
            qmp.close()
        _kill(proc)


def makedumpfile_elf(src: Path, dst: Path) -> Path:
    """Copy a QEMU ELF core with its program headers moved right after the ELF header.

    makedumpfile 1.7.2 reads program headers at ``sizeof(Elf64_Ehdr)`` whatever ``e_phoff``
    says; QEMU 7.2 puts two section headers there (and writes ``e_ehsize`` = 8), so
    makedumpfile finds no PT_LOAD. Only header bytes change; segment data stay in place, and the
    old program header table, which QEMU writes at the end of the file, is cut off (an ELF core
    ends with its last segment, which pagecore's reader checks).
    """
    eh = struct.Struct("<16sHHIQQQIHHHHHH")
    with open(src, "rb") as fh:
        head = bytearray(fh.read(eh.size))
        f = list(eh.unpack_from(head, 0))
        phoff, phent, phnum = f[5], f[9], f[10]
        fh.seek(phoff)
        table = fh.read(phent * phnum)
    first_data = min(struct.unpack_from("<Q", table, i * phent + 8)[0] for i in range(phnum))
    if eh.size + len(table) > first_data:
        raise CaptureError(f"{src}: no room for the program headers before the first segment's data")
    shutil.copyfile(src, dst)
    f[5], f[6], f[8], f[11], f[12], f[13] = eh.size, 0, eh.size, 0, 0, 0
    eh.pack_into(head, 0, *f)
    with open(dst, "r+b") as fh:
        fh.write(head)
        fh.write(table)
        if phoff + len(table) == src.stat().st_size and phoff >= eh.size + len(table):
            fh.truncate(phoff)  # the old table was the file's tail: drop the stale copy
    return dst


def _makedumpfile_extras(mdf: str, made: dict, out_dir: Path, notes: list[str]) -> dict:
    """Real plain and filtered kdump files made by makedumpfile from QEMU's outputs."""
    extra = {}
    mver = subprocess.run([mdf, "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    notes.append(f"extras made with {mver}")
    if "kdump-zlib" in made:
        dst = out_dir / "guest.kdump-zlib.kdump"
        with open(made["kdump-zlib"], "rb") as fi:
            r = subprocess.run([mdf, "-R", str(dst)], stdin=fi, capture_output=True)
        if r.returncode == 0:
            extra["kdump-zlib re-assembled by makedumpfile -R"] = dst
        else:
            notes.append(f"makedumpfile -R failed: {r.stderr.decode(errors='replace')[-200:]}")
    if "elf" not in made:
        return extra
    fixed = out_dir / ".work" / "for-makedumpfile.elf"
    makedumpfile_elf(made["elf"], fixed)
    notes.append(
        "makedumpfile 1.7.2 cannot read QEMU 7.2's ELF core as written (it expects program "
        "headers right after the ELF header); the -d 31 dumps were made from a copy with the "
        "program headers moved there (pagecore.qemu.capture.makedumpfile_elf)"
    )
    jobs = [
        ("guest.d31-zlib.kdump", ["-c"], "makedumpfile -c -d 31 (zlib, zero/cache/user/free pages excluded)"),
        ("guest.d31-lzo.kdump", ["-l"], "makedumpfile -l -d 31 (lzo, zero/cache/user/free pages excluded)"),
        ("guest.d31-zlib.flat", ["-F", "-c"], "makedumpfile -F -c -d 31 (flattened, zlib)"),
    ]
    for name, opts, what in jobs:
        dst = out_dir / name
        if "-F" in opts:
            with open(dst, "wb") as fo:
                r = subprocess.run([mdf, *opts, "-d", "31", str(fixed)], stdout=fo, stderr=subprocess.PIPE, text=True)
        else:
            r = subprocess.run([mdf, *opts, "-d", "31", str(fixed), str(dst)], capture_output=True, text=True)
        if r.returncode == 0:
            extra[what] = dst
        else:
            dst.unlink(missing_ok=True)
            notes.append(f"makedumpfile {' '.join(opts)} -d 31 failed: {r.stderr.strip()[-300:]}")
    return extra


# ------------------------------------------------------------------------------ main
def staging_dir(out_dir: Path, what: str) -> Path:
    """A fresh ``out_dir/.<what>-PID`` for a run's outputs, moved into ``out_dir`` only when the run
    has made them all: a failed or interrupted run leaves no partial dump beside an earlier run's
    manifest and never overwrites that run's files. Staging directories of runs that are gone
    (SIGKILL) are removed."""
    for old in out_dir.glob(f".{what}-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    stage = out_dir / f".{what}-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    return stage


def publish(stage: Path, out_dir: Path, names, manifest: str = "manifest.json") -> None:
    """Move the staged files ``names`` into ``out_dir``, the manifest last."""
    for name in [*names, manifest]:
        os.replace(stage / name, out_dir / name)


def capture(
    out_dir: Path,
    *,
    ram_mb: int = 128,
    kernel: Path | None = None,
    busybox: Path = Path("/bin/busybox"),
    qemu: str = "qemu-system-x86_64",
    accel: str = "auto",
    kvm_timeout: float = 30.0,
    tcg_timeout: float = 600.0,
    copies: int = 2,
    makedumpfile: bool = True,
    append: str = DEFAULT_APPEND,
) -> CaptureResult:
    """Boot a guest, pause it and dump its memory in every format; see the module docstring.

    Returns
    -------
    CaptureResult
        Also written to ``out_dir/manifest.json``.
    """
    qemu = _which(qemu, "apt-get install qemu-system-x86")
    if not busybox.exists():
        raise CaptureError(f"{busybox} not found; apt-get install busybox-static")
    kernel = Path(kernel) if kernel else newest_kernel()
    kver = kernel.name.removeprefix("vmlinuz-")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / ".work"
    work.mkdir(exist_ok=True)
    module = Path(f"/lib/modules/{kver}/kernel/drivers/firmware/qemu_fw_cfg.ko")
    initrd = build_initramfs(
        work / "initramfs.cpio", busybox, module=module if module.exists() else None, copies=copies
    )
    res = CaptureResult(out_dir=out_dir, qemu_version=qemu_version(qemu), kernel=str(kernel))
    res.kernel_version = kver
    res.ram_mb = ram_mb
    res.notes.append(f"kernel command line extras: {append}")
    if not module.exists():
        res.notes.append(f"{module} missing: no VMCOREINFO in the dumps")

    proc, qmp_sock, res.accel, _ = boot_guest(
        qemu, accel, kernel, initrd, ram_mb, work, append, kvm_timeout, tcg_timeout, res.notes
    )
    stage = staging_dir(out_dir, "capture")
    try:
        _capture_into(stage, proc, qmp_sock, res, makedumpfile)
        publish(stage, out_dir, res.files)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return res


def _capture_into(stage: Path, proc, qmp_sock: Path, res: CaptureResult, makedumpfile: bool) -> None:
    """Dump the booted guest into ``stage`` (and end it); fill ``res`` and write the manifest there."""
    (stage / ".work").mkdir()
    with qmp_session(proc, qmp_sock) as qmp:
        raw_path = stage / "guest.raw"
        pause_and_save_ram(qmp, raw_path)
        res.formats_offered = list(qmp.cmd("query-dump-guest-memory-capability").get("formats", []))
        made = {"raw": raw_path}
        for fmt in res.formats_offered:
            if fmt not in FORMAT_FILES:
                res.notes.append(f"format {fmt} offered by QEMU but not read by pagecore: skipped")
                continue
            dst = stage / f"guest.{FORMAT_FILES[fmt]}"
            qmp.cmd("dump-guest-memory", paging=False, protocol=f"file:{dst}", format=fmt)
            made[fmt] = dst

    from pagecore.dumps.lime import lime_from_raw

    lime = stage / "guest.lime"
    lime_from_raw(made["raw"], lime)
    made["lime (written by pagecore from the raw image)"] = lime
    mdf = shutil.which("makedumpfile") if makedumpfile else None
    if mdf:
        made.update(_makedumpfile_extras(mdf, made, stage, res.notes))
    for key, path in made.items():
        if key == "raw":
            what = "QMP pmemsave of guest RAM"
        elif key in FORMAT_FILES:
            what = f"QMP dump-guest-memory format={key}"
        else:
            what = key
        res.files[path.name] = {
            "what": what,
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
        }
    manifest = {
        "qemu_version": res.qemu_version,
        "accel": res.accel,
        "kernel": res.kernel,
        "kernel_version": res.kernel_version,
        "ram_mb": res.ram_mb,
        "formats_offered": res.formats_offered,
        "files": res.files,
        "notes": res.notes,
        "captured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


#: Guest-physical windows (frame ranges) kept in the committed fixtures: the first MiB (BIOS
#: data, real-mode area), 512 KiB of kernel text at 16 MiB (nokaslr), and 4 MiB at 40 MiB
#: where this workload's pattern and page-cache pages land on Debian 12's kernel.
FIXTURE_WINDOWS = [(0, 256), (4096, 4224), (10240, 11264)]
FIXTURE_ARCHIVE = "qemu-guest.tar.xz"


def make_fixtures(capture_dir: Path, dest: Path, windows=FIXTURE_WINDOWS) -> dict:
    """Crop every dump of a capture to ``windows`` and pack them into one ``.tar.xz``.

    See :mod:`pagecore.dumps.crop` for what cropping keeps. One solid xz archive lets the
    identical bytes of the raw, ELF and LiME files (and of the zlib pages shared by QEMU's
    and makedumpfile's files) compress once. Returns the fixture manifest (also written
    into the archive as ``manifest.json``).
    """
    import tarfile

    from pagecore.dumps import detect_format
    from pagecore.dumps.crop import crop_elf, crop_kdump, crop_raw
    from pagecore.dumps.lime import write_lime

    capture_dir, dest = Path(capture_dir), Path(dest)
    manifest = json.loads((capture_dir / "manifest.json").read_text())
    stage = capture_dir / ".fixtures"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    files = {}
    raw_name = None
    for name, info in manifest["files"].items():
        src, dst = capture_dir / name, stage / name
        fmt = detect_format(src)
        if fmt == "raw":
            crop_raw(src, dst, windows)
            raw_name = name
        elif fmt == "elf":
            crop_elf(src, dst, windows)
        elif fmt in ("kdump", "kdump-flat"):
            crop_kdump(src, dst, windows, flattened=fmt == "kdump-flat")
        elif fmt == "lime":
            continue  # rewritten from the cropped raw image below
        files[name] = {**info, "format": fmt, "full_bytes": info["bytes"], "full_sha256": info["sha256"]}
    for name, info in manifest["files"].items():
        if info["what"].startswith("lime") and raw_name:
            data = (stage / raw_name).read_bytes()
            ps = 4096
            write_lime(stage / name, [(lo * ps, data[lo * ps : hi * ps]) for lo, hi in windows])
            files[name] = {**info, "format": "lime", "full_bytes": info["bytes"], "full_sha256": info["sha256"]}
    for name, info in files.items():
        info["bytes"] = (stage / name).stat().st_size
        info["sha256"] = sha256_file(stage / name)
    fixture = {k: v for k, v in manifest.items() if k != "files"}
    fixture["windows_pfn"] = [list(w) for w in windows]
    fixture["files"] = files
    (stage / "manifest.json").write_text(json.dumps(fixture, indent=2) + "\n")
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / FIXTURE_ARCHIVE
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 64 << 20}]
    # atomic: a failed or interrupted archive leaves neither a cut archive nor its temporary
    with (
        atomic_path(archive) as tmp,
        lzma.open(tmp, "wb", format=lzma.FORMAT_XZ, filters=filters) as xz,
        tarfile.open(fileobj=xz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in ["manifest.json", *sorted(files)]:
            ti = tar.gettarinfo(stage / name, arcname=name)
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mtime = 0
            ti.mode = 0o644
            with open(stage / name, "rb") as fh:
                tar.addfile(ti, fh)
    shutil.rmtree(stage, ignore_errors=True)
    fixture["archive"] = {"name": archive.name, "bytes": archive.stat().st_size, "sha256": sha256_file(archive)}
    return fixture


README_BEGIN = "<!-- BEGIN real-qemu-dumps (written by python -m pagecore.qemu.capture --readme) -->"
README_END = "<!-- END real-qemu-dumps -->"


def readme_section(manifest: dict, fixture: dict | None = None) -> str:
    """The "Real QEMU dumps" section of data/README.md, from a capture (and fixture) manifest."""
    lines = [
        README_BEGIN,
        "## Real QEMU dumps",
        "",
        "Captured by `pagecore qemu capture` (see its docstring): Debian's kernel booted "
        "with a busybox initramfs workload, paused with QMP `stop`, dumped once per format "
        "QEMU offers, plus `pmemsave` for the raw image and makedumpfile's files made from "
        "QEMU's. Debian 12's QEMU 7.2 offers `elf`, `kdump-zlib` (flattened) and `win-dmp` "
        "(not read by pagecore); it is built without lzo and snappy and predates the "
        "`kdump-raw-*` formats (QEMU 8.2), so the plain kdump and lzo files come from "
        "makedumpfile.",
        "",
        f"- QEMU: {manifest['qemu_version']}",
        f"- kernel: {manifest['kernel_version']} (`{manifest['kernel']}`)",
        f"- accelerator used: {manifest['accel']}",
        f"- guest RAM: {manifest['ram_mb']} MiB",
        f"- formats QEMU offered: {', '.join(manifest['formats_offered'])}",
        f"- captured: {manifest['captured_utc']}",
        "",
    ]
    if fixture:
        arch = fixture["archive"]
        wins = ", ".join(f"[{lo:#x}, {hi:#x})" for lo, hi in fixture["windows_pfn"])
        lines += [
            f"Committed: `data/dumps/{arch['name']}` ({arch['bytes']:,} bytes, sha256 "
            f"`{arch['sha256']}`), one solid xz archive of every dump **cropped** to the "
            f"guest frames {wins} by `pagecore.dumps.crop` (the full files are ~20-130 MB "
            "each, mostly the kernel image): raw zeroed outside the windows, ELF segments cut "
            "to the windows with the original headers and notes, kdump files keeping the "
            "producer's header blocks, 1st bitmap and compressed page bytes, with frames "
            "outside the windows cleared from the 2nd bitmap (so they count as excluded). The "
            "LiME file is written by `pagecore.dumps.lime.write_lime` from the raw image: no "
            "LiME producer runs here (it is a kernel module inside the guest). Tests unpack the "
            "archive into a temporary directory (`tests/dumps_helpers.py`).",
            "",
            "| file | format | what | full bytes | full sha256 | cropped bytes | cropped sha256 |",
            "|---|---|---|---:|---|---:|---|",
        ]
        for name, info in fixture["files"].items():
            lines.append(
                f"| `{name}` | {info['format']} | {info['what']} | {info['full_bytes']:,} | "
                f"`{info['full_sha256'][:16]}…` | {info['bytes']:,} | `{info['sha256'][:16]}…` |"
            )
    else:
        lines += ["| file | what | bytes | sha256 |", "|---|---|---:|---|"]
        for name, info in manifest["files"].items():
            lines.append(f"| `{name}` | {info['what']} | {info['bytes']:,} | `{info['sha256']}` |")
    if manifest.get("notes"):
        lines += ["", "Notes from the capture:", ""] + [f"- {n}" for n in manifest["notes"]]
    lines += ["", "Full sha256 values are in the archive's `manifest.json`.", README_END]
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, section: str) -> None:
    """Replace (or append) the marked section of ``readme``, leaving the rest untouched."""
    text = readme.read_text() if readme.exists() else "# data\n"
    pat = re.compile(re.escape(README_BEGIN) + r".*?" + re.escape(README_END) + r"\n?", re.S)
    if pat.search(text):
        text = pat.sub(lambda _m: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with atomic_path(readme) as tmp:
        tmp.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="pagecore qemu capture",
        description="Boot a small Debian-kernel guest under QEMU (KVM if it works, else TCG), "
        "pause it and dump its memory in every format QEMU offers. Needs: apt-get install "
        "qemu-system-x86 linux-image-amd64 busybox-static (optional: makedumpfile).",
    )
    p.add_argument("-o", "--out-dir", required=True, type=Path, help="directory for the dumps")
    p.add_argument(
        "--ram-mb", type=int, default=128, help="guest RAM in MiB (default 128; Debian 12's kernel needs more than 64)"
    )
    p.add_argument("--append", default=DEFAULT_APPEND, help="extra kernel command line (default: %(default)s)")
    p.add_argument("--kernel", type=Path, help="guest kernel (default: newest /boot/vmlinuz-*)")
    p.add_argument("--busybox", type=Path, default=Path("/bin/busybox"), help="static busybox")
    p.add_argument("--qemu", default="qemu-system-x86_64", help="QEMU binary")
    p.add_argument(
        "--accel", choices=["auto", "kvm", "tcg"], default="auto", help="auto tries KVM under --kvm-timeout, then TCG"
    )
    p.add_argument("--kvm-timeout", type=float, default=30.0, help="seconds to wait under KVM (default 30)")
    p.add_argument("--tcg-timeout", type=float, default=600.0, help="seconds to wait under TCG (default 600)")
    p.add_argument("--copies", type=int, default=2, help="copies of one file in the workload (default 2)")
    p.add_argument("--no-makedumpfile", action="store_true", help="skip the makedumpfile extras")
    p.add_argument("--fixtures", type=Path, help=f"write cropped copies as DIR/{FIXTURE_ARCHIVE}")
    p.add_argument("--readme", type=Path, help="update the 'Real QEMU dumps' section of this file")
    args = p.parse_args(argv)
    try:
        res = capture(
            args.out_dir,
            ram_mb=args.ram_mb,
            kernel=args.kernel,
            busybox=args.busybox,
            qemu=args.qemu,
            accel=args.accel,
            kvm_timeout=args.kvm_timeout,
            tcg_timeout=args.tcg_timeout,
            copies=args.copies,
            makedumpfile=not args.no_makedumpfile,
            append=args.append,
        )
        manifest = json.loads((res.out_dir / "manifest.json").read_text())
        fixture = make_fixtures(res.out_dir, args.fixtures) if args.fixtures else None
    except PagecoreError as exc:
        print(f"pagecore.qemu.capture: error: {exc}", file=sys.stderr)
        return 1
    if args.readme:
        update_readme(args.readme, readme_section(manifest, fixture))
    summary = {"accel": res.accel, "files": list(res.files), "notes": res.notes}
    if fixture:
        summary["fixture"] = fixture["archive"]
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
