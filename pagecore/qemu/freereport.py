"""Free page reporting on real QEMU guests: host memory measured against the cooperative model (issue 20).

Two guests of Debian's kernel run the same workload, one with ``-device
virtio-balloon-pci,free-page-reporting=on`` and one with the balloon device but reporting off
(so QEMU's own overhead is the same):

1. The initramfs loads ``virtio_pci`` and ``virtio_balloon`` (Debian 12 builds them as modules;
   ``CONFIG_PAGE_REPORTING=y``) and prints ``page_reporting_order`` from sysfs.
2. The workload, a small static C program built here from ``pcfree.c``, runs in phases:
   allocate and write ``alloc_mb`` MiB, hold, exit (free), wait; the same with ``reuse_mb`` MiB
   (pages the guest reported are allocated again and fault back in on the host), wait. Each
   phase prints a line on the serial console; the host notes when it sees it.
3. At the end the guest prints its buddy allocator's free pages (from ``/proc/kpageflags``, see
   ``pcfree.c`` for how block orders are inferred), ``/proc/buddyinfo`` and the watermarks of
   ``/proc/zoneinfo``.
4. Throughout, the host samples the QEMU process every ``interval`` s: ``VmRSS``
   (``/proc/PID/status``), ``Rss`` of ``/proc/PID/smaps_rollup`` and the guest RAM's resident
   pages (present bits of ``/proc/PID/pagemap`` over the RAM mapping).
5. It then pauses the guest, reads which RAM pages the host backs (``host_present``) and saves
   the RAM (``pmemsave``); the page table (``vm, gpfn, hash, zero, guest_free, host_present``)
   is written as Parquet.

Outputs in ``--out-dir``: ``fpr-on.pages.parquet`` / ``fpr-off.pages.parquet`` (page tables with the
optional ``guest_free`` and ``host_present`` columns), ``fpr-*.samples.csv`` (``t`` in s from the
workload marker, ``vmrss_kb``, ``rollup_rss_kb``, ``ram_kb``), ``fpr-*.console.log``, ``fpr-*.run.json``
(marks: host time each console line was seen; accelerator; parsed console) and ``freereport.json``
(the comparison).

:func:`compare` predicts the reporting guest's steady-state host memory from the *other* guest
(its dump, host view and free-page list; :func:`pagecore.experiments.cooperative.free_report`)
and the reclaim delay from :func:`pagecore.experiments.cooperative.reclaim_timeline`, and puts
them beside what was measured. Only the QEMU processes started here are ended, by PID; KVM is
tried under a time limit, then TCG. ``pagecore qemu freereport --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pagecore._util import all_or_nothing, atomic_path
from pagecore.errors import PagecoreError
from pagecore.experiments.cooperative import (
    X86_64_ZONES,
    ReportingParams,
    free_report,
    reclaim_timeline,
    reportable_mask,
)
from pagecore.qemu.capture import (
    MARKER,
    CaptureError,
    _cpio_entry,
    _which,
    boot_guest,
    newest_kernel,
    pause_and_save_ram,
    qemu_version,
    qmp_session,
)
from pagecore.vocab import GUEST_FREE_COLUMN

PAGE = 4096
#: Kernel command line: fixed layout, and no TSC check that stalls TCG guests.
APPEND = "nokaslr no_timer_check"
#: Guest modules, in load order (modules.dep of Debian 12's 6.1 kernel).
MODULES = (
    "virtio/virtio_ring",
    "virtio/virtio",
    "virtio/virtio_pci_legacy_dev",
    "virtio/virtio_pci_modern_dev",
    "virtio/virtio_pci",
    "virtio/virtio_balloon",
)
SOURCE = Path(__file__).with_name("pcfree.c")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in @MODULES@; do insmod /mod/$m.ko || echo "PCFREE-WARN insmod $m failed"; done
echo "PCFREE-ORDERPARAM $(cat /sys/module/page_reporting/parameters/page_reporting_order 2>/dev/null)"
echo "PCFREE-DMESG $(dmesg | grep -i 'page reporting' | tr '\n' ' ')"
echo "PCFREE-MEMFREE $(grep MemFree /proc/meminfo | tr -s ' ')"
echo "@MARKER@"
sleep @SETTLE@
/pcfree alloc @ALLOC_MB@ @HOLD@ phase1
sleep @GAP@
/pcfree alloc @REUSE_MB@ @HOLD@ phase2
sleep @GAP@
echo PCFREE-DUMP-BEGIN
sed 's/^/PCFREE-BUDDY /' /proc/buddyinfo
grep -E '^Node|^ +pages free|^ +low |^ +start_pfn|^ +managed' /proc/zoneinfo | sed 's/^/PCFREE-Z /'
/pcfree freelist
echo PCFREE-DONE
while true; do sleep 3600; done
"""


def _ram_mapping(pid: int, ram_bytes: int) -> int:
    """Host start address of the guest RAM block: the smallest anonymous mapping of at least
    ``ram_bytes`` in ``/proc/PID/maps`` (QEMU aligns the block at the end of a larger reservation)."""
    best = None
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)", line)
        if not m:
            continue
        lo, hi = int(m.group(1), 16), int(m.group(2), 16)
        if m.group(4) == "" and hi - lo >= ram_bytes and (best is None or hi - lo < best[1] - best[0]):
            best = (lo, hi)
    if best is None:
        raise CaptureError(f"guest RAM mapping of {ram_bytes} bytes not found in /proc/{pid}/maps")
    return best[1] - ram_bytes if (best[1] - best[0]) > ram_bytes else best[0]


def unavailable_reason() -> str | None:
    """Why real guests cannot run here, or None."""
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
    if not list(Path("/boot").glob("vmlinuz-*")):
        return "no kernel in /boot (apt-get install linux-image-amd64)"
    if not Path("/bin/busybox").exists():
        return "no /bin/busybox (apt-get install busybox-static)"
    if shutil.which("gcc") is None:
        return "gcc not found (the guest workload pcfree.c is built with gcc -static)"
    if os.geteuid() != 0:
        return "needs root (reads /proc/PID/pagemap of QEMU)"
    return None


def build_pcfree(out: Path) -> Path:
    """Compile the guest program ``pcfree.c`` statically."""
    gcc = _which("gcc", "apt-get install gcc libc6-dev")
    r = subprocess.run([gcc, "-O2", "-static", "-o", str(out), str(SOURCE)], capture_output=True, text=True)
    if r.returncode:
        raise CaptureError(f"gcc -static {SOURCE} failed: {r.stderr.strip()[-300:]}")
    return out


def build_initramfs(path: Path, busybox: Path, pcfree: Path, kver: str, **workload) -> Path:
    """A ``newc`` initramfs: busybox, the virtio balloon modules of kernel ``kver``, ``pcfree``, ``/init``."""
    init = INIT.replace("@MARKER@", MARKER).replace("@MODULES@", " ".join(m.split("/")[-1] for m in MODULES))
    for k, v in workload.items():
        init = init.replace(f"@{k.upper()}@", str(v))
    if re.search(r"@[A-Z_]+@", init):
        raise ValueError(f"workload parameters missing: {re.findall(r'@[A-Z_]+@', init)}")
    files = [("bin/busybox", busybox.read_bytes()), ("init", init.encode()), ("pcfree", pcfree.read_bytes())]
    for m in MODULES:
        src = Path(f"/lib/modules/{kver}/kernel/drivers/{m}.ko")
        if not src.exists():
            raise CaptureError(f"{src} missing: the guest needs virtio_balloon (apt-get install linux-image-{kver})")
        files.append((f"mod/{m.split('/')[-1]}.ko", src.read_bytes()))
    entries = [
        _cpio_entry("bin", 0o040755, ino=1),
        _cpio_entry("dev", 0o040755, ino=2),
        _cpio_entry("mod", 0o040755, ino=3),
        _cpio_entry("dev/console", 0o020600, ino=4),
    ]
    for i, (name, data) in enumerate(files):
        entries.append(_cpio_entry(name, 0o100755, data, ino=10 + i))
    entries.append(_cpio_entry("TRAILER!!!", 0, ino=0))
    raw = bytearray(b"".join(entries))
    h = raw.find(b"dev/console\0") - 110  # rdev 5:1 for /dev/console
    raw[h + 6 + 8 * 9 : h + 6 + 8 * 10] = b"%08x" % 5
    raw[h + 6 + 8 * 10 : h + 6 + 8 * 11] = b"%08x" % 1
    path.write_bytes(bytes(raw))
    return path


# ------------------------------------------------------------------ host-side sampling
def _kb(path: str, key: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise CaptureError(f"{key} not found in {path}")


def ram_present(pid: int, start: int, npages: int) -> np.ndarray:
    """Per guest page: backed by the host (``/proc/PID/pagemap`` present bit)."""
    with open(f"/proc/{pid}/pagemap", "rb") as fh:
        pm = np.frombuffer(os.pread(fh.fileno(), npages * 8, start // PAGE * 8), np.uint64)
    return (pm >> np.uint64(63)) == 1


def sample(pid: int, start: int, npages: int) -> dict:
    """One sample of the QEMU process's resident memory, in KiB."""
    return {
        "vmrss_kb": _kb(f"/proc/{pid}/status", "VmRSS:"),
        "rollup_rss_kb": _kb(f"/proc/{pid}/smaps_rollup", "Rss:"),
        "ram_kb": int(ram_present(pid, start, npages).sum()) * (PAGE // 1024),
    }


# ----------------------------------------------------------------- parsing the console
def parse_console(text: str) -> dict:
    """Free-page runs, buddyinfo, zone watermarks and checks from the guest's console output."""
    runs, orders, buddy, zones, used = [], {}, [], {}, {}
    zone = None
    info = {}
    for line in text.splitlines():
        line = line.strip("\r")
        if line.startswith("PCFREE-F "):
            a, n = line.split()[1:3]
            runs.append((int(a, 16), int(n, 16)))
        elif line.startswith("PCFREE-ORDER "):
            o, c = line.split()[1:3]
            orders[int(o)] = int(c)
        elif line.startswith("PCFREE-BUDDY "):
            f = line.split()
            buddy.append({"zone": f[4], "counts": [int(x) for x in f[5:]]})
        elif line.startswith("PCFREE-Z "):
            body = line[len("PCFREE-Z ") :].strip()
            m = re.match(r"Node \d+, zone\s+(\S+)", body)
            if m:
                zone = m.group(1)
                zones[zone] = {}
            elif zone is not None:
                m = re.match(r"(pages free|low|start_pfn:|managed)\s+(\d+)", body)
                if m:
                    zones[zone][m.group(1).rstrip(":").replace(" ", "_")] = int(m.group(2))
        elif line.startswith("PCFREE-U "):
            _, who, a, n = line.split()[:4]
            used.setdefault(who, []).append((int(a, 16), int(n, 16)))
        elif line.startswith("PCFREE-PFNS "):
            info["pfns"] = int(line.split()[1], 16)
        elif line.startswith(("PCFREE-ORDERPARAM", "PCFREE-DMESG", "PCFREE-MEMFREE", "PCFREE-WARN")):
            k, _, v = line.partition(" ")
            info.setdefault(k.removeprefix("PCFREE-").lower(), []).append(v.strip())
    free_pages = sum(n for _, n in runs)
    nr_free = sum(z.get("pages_free", 0) for z in zones.values())
    return {"runs": runs, "used": used, "orders": orders, "buddyinfo": buddy, "zones": zones,
            "free_pages": free_pages, "zoneinfo_free_pages": nr_free, **info}  # fmt: skip


def guest_free_mask(runs, npages: int) -> np.ndarray:
    """The ``guest_free`` column (gpfn 0..npages-1) from the guest's free runs."""
    free = np.zeros(npages, bool)
    for a, n in runs:
        free[a : min(a + n, npages)] = True
    return free


# ------------------------------------------------------------------------- page table
#: Columns a freereport page table adds to :data:`pagecore.pages.PAGE_TABLE_SCHEMA`.
EXTRA_FIELDS = (
    pa.field(GUEST_FREE_COLUMN, pa.bool_(), nullable=False,
             metadata={"description": "page in the guest's buddy free lists (KPF_BUDDY, guest /proc/kpageflags)"}),
    pa.field("host_present", pa.bool_(), nullable=False,
             metadata={"description": "page backed on the host (present bit of QEMU's /proc/PID/pagemap)"}),
)  # fmt: skip


def write_table(path: Path, vm: str, raw: Path, runs, present: np.ndarray, notes=()) -> int:
    """Hash the saved RAM ``raw`` into a page table with ``guest_free`` and ``host_present``; return pages."""
    from pagecore.pages import ALGORITHM, PageTableWriter, hash_pages

    pages = np.memmap(raw, np.uint8, "r").reshape(-1, PAGE)
    n = len(pages)
    if len(present) != n:
        raise CaptureError(f"{raw}: {n} pages saved but {len(present)} pagemap entries read")
    free = guest_free_mask(runs, n)
    meta = {"source_path": str(raw), "source_size": n * PAGE, "format": "raw", "page_size": PAGE,
            "hash_algorithm": ALGORITHM, "hash_key_id": "none", "verified": False, "pages_read": n,
            "pages_skipped": 0, "pages_excluded": 0, "pages_partial": 0, "bytes_skipped": 0,
            "guest_free": "the guest's KPF_BUDDY pages, printed on its console just before the pause",
            "host_view": "pagemap present bits of the QEMU process, read just before the pause",
            "notes": list(notes)}  # fmt: skip
    with PageTableWriter(path, vm, meta, extra_fields=EXTRA_FIELDS) as w:
        step = 1 << 16
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            h, z = hash_pages(pages[lo:hi])
            w.write(np.arange(lo, hi, dtype=np.uint64), h, z,
                    extra={GUEST_FREE_COLUMN: free[lo:hi], "host_present": present[lo:hi]})  # fmt: skip
    del pages
    return n


# --------------------------------------------------------------------------- one guest
def run_guest(
    name: str,
    reporting: bool,
    out_dir: Path,
    initrd: Path,
    kernel: Path,
    *,
    qemu: str,
    ram_mb: int,
    accel: str,
    kvm_timeout: float,
    tcg_timeout: float,
    interval: float,
    run_timeout: float,
    notes: list[str],
) -> dict:
    """Boot one guest, sample it through the workload, dump it; return samples, marks and the table path."""
    work = out_dir / f".work-{name}"
    work.mkdir(parents=True, exist_ok=True)
    extra = ("-device", f"virtio-balloon-pci,free-page-reporting={'on' if reporting else 'off'}")
    proc, sock, used, boot_s = boot_guest(
        qemu, accel, kernel, initrd, ram_mb, work, APPEND, kvm_timeout, tcg_timeout, notes, extra_args=extra
    )
    console = work / f"console-{used}.log"
    samples, marks = [], {}
    with qmp_session(proc, sock) as qmp:
        ram = qmp.cmd("query-memory-size-summary")["base-memory"]
        npages = ram // PAGE
        start = _ram_mapping(proc.pid, ram)
        t0 = time.monotonic()
        seen = 0
        while True:
            now = time.monotonic() - t0
            samples.append({"t": now, **sample(proc.pid, start, npages)})
            text = console.read_text(errors="replace")
            lines = text.splitlines()
            for line in lines[seen : len(lines) - (0 if text.endswith("\n") else 1)]:
                if line.startswith(("PCFREE ", "PCFREE-DUMP-BEGIN", "PCFREE-DONE")):
                    marks.setdefault(line.removeprefix("PCFREE ").strip(), now)
                seen += 1
            if "PCFREE-DONE" in marks:
                break
            if proc.poll() is not None:
                raise CaptureError(f"{name}: QEMU exited during the workload (console in {console})")
            if now > run_timeout:
                raise CaptureError(f"{name}: workload not done within {run_timeout:.0f} s (console in {console})")
            time.sleep(max(0.0, interval - (time.monotonic() - t0 - now)))
        present = ram_present(proc.pid, start, npages)
        raw = work / "ram.raw"
        pause_and_save_ram(qmp, raw)
    text = console.read_text(errors="replace")
    parsed = parse_console(text)
    table_path = out_dir / f"{name}.pages.parquet"
    res = {
        "name": name,
        "reporting": reporting,
        "accel": used,
        "boot_s": round(boot_s, 1),
        "ram_bytes": ram,
        "marks": marks,
        "samples": samples,
        "table": str(table_path),
        "console": {k: v for k, v in parsed.items() if k != "runs"},
        "notes": list(notes),
    }
    write_guest_files(out_dir, res, raw, parsed["runs"], present, console)
    raw.unlink()
    return res


def write_guest_files(out_dir: Path, res: dict, raw: Path, runs, present: np.ndarray, console: Path) -> None:
    """One guest's page table, samples, console log and ``NAME.run.json``, all or none: the run
    file is what ``--reuse-runs`` trusts, and a run stopped between them left a new table beside
    an earlier run's samples and run file."""
    name = res["name"]
    with all_or_nothing():
        note = f"reporting {'on' if res['reporting'] else 'off'}"
        write_table(Path(res["table"]), name, raw, runs, present, notes=[note])
        with atomic_path(out_dir / f"{name}.samples.csv") as tmp:
            pd.DataFrame(res["samples"]).to_csv(tmp, index=False)
        with atomic_path(out_dir / f"{name}.console.log") as tmp:
            shutil.copyfile(console, tmp)
        with atomic_path(out_dir / f"{name}.run.json") as tmp:
            tmp.write_text(json.dumps(res, indent=1, default=_json) + "\n")


# ---------------------------------------------------------------------------- compare
def _window(samples, lo: float, hi: float, key: str = "ram_kb") -> float:
    vals = [s[key] for s in samples if lo <= s["t"] <= hi]
    if not vals:
        raise CaptureError(f"no samples between {lo:.1f} s and {hi:.1f} s")
    return float(np.median(vals))


def params_for(guest: dict) -> ReportingParams:
    """Linux's defaults, with the guest's own low watermarks and reporting order (if it printed one)."""
    con = guest["console"]
    low = {z: v.get("low", 0) for z, v in con["zones"].items()}
    order = 9  # pageblock_order; a guest without a reporting device shows MAX_ORDER (unset) instead
    for v in con.get("orderparam", []):
        if v.strip().isdigit() and int(v) <= 10:
            order = int(v)
    return ReportingParams(order=order, zones=X86_64_ZONES, low_wmark_pages=low)


def reclaim_delay(samples, t_free: float, t_end: float, frac: float = 0.9) -> dict:
    """Seconds from ``t_free`` until the RAM residency has made ``frac`` of its drop (steady level
    = median of the last 2 s before ``t_end``)."""
    pre = _window(samples, t_free - 1.5, t_free)
    post = _window(samples, t_end - 2.0, t_end)
    drop = pre - post
    out = {"pre_kb": pre, "post_kb": post, "drop_kb": drop, "delay_s": None}
    if drop <= 0:
        return out
    for s in samples:
        if s["t"] > t_free and s["ram_kb"] <= pre - frac * drop:
            out["delay_s"] = s["t"] - t_free
            break
    return out


def compare(on: dict, off: dict, *, gap: float, steady_s: float = 4.0) -> dict:
    """Measured host memory of the reporting guest against the cooperative model's prediction.

    Steady state: medians over the last ``steady_s`` seconds before the guest's final dump.
    Prediction: the *non-reporting* guest's page table (host view + free-page list) through
    :func:`~pagecore.experiments.cooperative.free_report`, i.e. what reporting would discard
    from that guest. Delay: the first free (``phase1 freeing``) to 90 % of the drop, against
    :func:`~pagecore.experiments.cooperative.reclaim_timeline` on the reporting guest's table.
    """
    res = {}
    for g in (on, off):
        t_end = g["marks"]["PCFREE-DUMP-BEGIN"]
        res[g["name"]] = {
            k: _window(g["samples"], t_end - steady_s, t_end, k) for k in ("ram_kb", "vmrss_kb", "rollup_rss_kb")
        }
    off_table = pd.read_parquet(off["table"])
    on_table = pd.read_parquet(on["table"])
    pr = free_report(off_table, params_for(off), where=off["table"]).iloc[0]
    kb = PAGE // 1024
    pred_ram = pr["backed_after"] * kb
    m_on, m_off = res[on["name"]], res[off["name"]]
    pred_vmrss = m_off["vmrss_kb"] - pr["discarded"] * kb
    steady = {
        "measured_on_ram_kb": m_on["ram_kb"],
        "measured_off_ram_kb": m_off["ram_kb"],
        "predicted_on_ram_kb": pred_ram,
        "ram_error": (pred_ram - m_on["ram_kb"]) / m_on["ram_kb"],
        "measured_on_vmrss_kb": m_on["vmrss_kb"],
        "measured_off_vmrss_kb": m_off["vmrss_kb"],
        "predicted_on_vmrss_kb": pred_vmrss,
        "vmrss_error": (pred_vmrss - m_on["vmrss_kb"]) / m_on["vmrss_kb"],
        "off_model": {k: int(v) for k, v in pr.items() if k != "vm"},
    }
    own = free_report(on_table, params_for(on), where=on["table"]).iloc[0]
    mask = reportable_mask(on_table, params_for(on))
    present = on_table["host_present"].to_numpy(bool)
    free = on_table[GUEST_FREE_COLUMN].to_numpy(bool)
    consistency = {
        "on_model": {k: int(v) for k, v in own.items() if k != "vm"},
        "reported_pages_host_absent": float((~present[mask]).mean()) if mask.any() else None,
        "free_unreported_host_present": float(present[free & ~mask].mean()) if (free & ~mask).any() else None,
        "predicted_on_ram_from_own_table_kb": int((present & ~mask).sum()) * kb,
    }
    t_f = on["marks"]["phase1 freeing"]
    meas = reclaim_delay(on["samples"], t_f, t_f + gap)
    tl = reclaim_timeline(on_table, params_for(on))
    final = tl["reported"].iloc[-1]
    pred_delay = float(tl.loc[tl["reported"] >= 0.9 * final, "t"].iloc[0]) if final else None
    off_drop = reclaim_delay(off["samples"], off["marks"]["phase1 freeing"], off["marks"]["phase1 freeing"] + gap)
    delay = {
        "measured_delay_s": meas["delay_s"],
        "predicted_delay_s": pred_delay,
        "delay_error": (pred_delay - meas["delay_s"]) / meas["delay_s"] if meas["delay_s"] and pred_delay else None,
        "on_drop_kb": meas["drop_kb"],
        "off_drop_kb": off_drop["drop_kb"],
        "passes": int(tl["pass_no"].max()),
    }
    return {"steady": steady, "consistency": consistency, "delay": delay, "refault": refault(on, on_table, gap=gap)}


def refault(on: dict, on_table: pd.DataFrame, *, gap: float) -> dict | None:
    """Phase 2 allocates pages the guest reported after phase 1: measured host growth against the model.

    Model: :func:`~pagecore.experiments.cooperative.reclaim_timeline` on the reporting guest's final
    table (its free-page list stands in for the one after phase 1) with phase 2's frames (printed by
    the guest from ``/proc/self/pagemap``) reused after the report pass; per 4 KiB page, and per
    2 MiB chunk for a host that backs guest RAM with transparent huge pages.
    """
    frames = on["console"].get("used", {}).get("phase2")
    if not frames:
        return None
    gp = np.unique(np.concatenate([np.arange(a, a + n, dtype=np.uint64) for a, n in frames]))
    gp = gp[gp < len(on_table)]
    params = params_for(on)
    t_p1 = on["marks"]["phase1 freeing"]
    pre = _window(on["samples"], t_p1 + gap - 4.0, t_p1 + gap - 0.5)
    held = _window(on["samples"], on["marks"]["phase2 touched"] + 0.5, on["marks"]["phase2 freeing"])
    reuse = pd.DataFrame({"t": 100.0, "vm": on["name"], "gpfn": gp})
    tl = reclaim_timeline(on_table, params, reuse=reuse)
    before = tl.loc[tl["event"] == "report", "backed"].iloc[-1] if (tl["event"] == "report").any() else None
    after = tl["backed"].iloc[-1]
    mask = reportable_mask(on_table, params)
    hit = mask[gp.astype(np.int64)]
    chunks = np.unique(gp[hit] >> np.uint64(params.order))
    kb = PAGE // 1024
    return {
        "phase2_pages": len(gp),
        "phase2_pages_in_reported_chunks": int(hit.sum()),
        "measured_growth_kb": held - pre,
        "predicted_growth_kb_4k": None if before is None else int(after - before) * kb,
        "predicted_growth_kb_thp": len(chunks) * params.chunk_pages * kb,
    }


def run(
    out_dir: str | os.PathLike,
    *,
    ram_mb: int = 256,
    alloc_mb: int = 128,
    reuse_mb: int = 48,
    settle: int = 6,
    hold: int = 5,
    gap: int = 12,
    accel: str = "auto",
    kvm_timeout: float = 20.0,
    tcg_timeout: float = 300.0,
    interval: float = 0.1,
    qemu: str = "qemu-system-x86_64",
    busybox: Path = Path("/bin/busybox"),
    reuse_runs: bool = False,
) -> dict:
    """Both guests, one after the other, and :func:`compare`; the result is also ``out_dir/freereport.json``.

    ``reuse_runs``: compare the guests of an earlier call (``fpr-*.run.json`` in ``out_dir``) again.
    """
    why = unavailable_reason()
    if why:
        raise CaptureError(f"cannot run real guests: {why}")
    qemu = _which(qemu, "apt-get install qemu-system-x86")
    kernel = newest_kernel()
    kver = kernel.name.removeprefix("vmlinuz-")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pcfree = build_pcfree(out / "pcfree")
    initrd = build_initramfs(
        out / "initramfs.cpio", busybox, pcfree, kver, settle=settle, alloc_mb=alloc_mb, hold=hold, gap=gap,
        reuse_mb=reuse_mb,
    )  # fmt: skip
    notes: list[str] = []
    run_timeout = settle + 2 * (hold + gap) + 240
    kw = dict(qemu=qemu, ram_mb=ram_mb, accel=accel, kvm_timeout=kvm_timeout, tcg_timeout=tcg_timeout,
              interval=interval, run_timeout=run_timeout, notes=notes)  # fmt: skip
    if reuse_runs and (out / "fpr-on.run.json").exists() and (out / "fpr-off.run.json").exists():
        on, off = (json.loads((out / f"{n}.run.json").read_text()) for n in ("fpr-on", "fpr-off"))
        notes.append("guest runs reused from an earlier call (fpr-*.run.json)")
    else:
        on = run_guest("fpr-on", True, out, initrd, kernel, **kw)
        kw["accel"] = on["accel"]  # the same accelerator for both
        off = run_guest("fpr-off", False, out, initrd, kernel, **kw)
    result = {
        "qemu_version": qemu_version(qemu),
        "kernel": str(kernel),
        "ram_mb": ram_mb,
        "workload": {"alloc_mb": alloc_mb, "reuse_mb": reuse_mb, "settle_s": settle, "hold_s": hold, "gap_s": gap},
        "interval_s": interval,
        "guests": {g["name"]: {k: v for k, v in g.items() if k != "samples"} for g in (on, off)},
        "compare": compare(on, off, gap=gap),
        "notes": notes,
        "captured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for d in out.glob(".work-*"):
        shutil.rmtree(d, ignore_errors=True)
    with atomic_path(out / "freereport.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=_json) + "\n")
    return result


def _json(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(type(o))


def summary_lines(result: dict) -> list[str]:
    """The comparison in a few lines of text."""
    c = result["compare"]
    s, d, k = c["steady"], c["delay"], c["consistency"]
    mib = 1 / 1024
    lines = [
        f"guest RAM resident, steady state: reporting on {s['measured_on_ram_kb'] * mib:.1f} MiB measured, "
        f"{s['predicted_on_ram_kb'] * mib:.1f} MiB predicted from the reporting-off guest "
        f"({s['ram_error']:+.1%}); reporting off {s['measured_off_ram_kb'] * mib:.1f} MiB",
        f"QEMU VmRSS: on {s['measured_on_vmrss_kb'] * mib:.1f} MiB measured, {s['predicted_on_vmrss_kb'] * mib:.1f} "
        f"MiB predicted ({s['vmrss_error']:+.1%}); off {s['measured_off_vmrss_kb'] * mib:.1f} MiB",
        f"reclaim delay after the first free: measured {d['measured_delay_s']} s, predicted "
        f"{d['predicted_delay_s']} s ({d['passes']} pass(es)); drop on {d['on_drop_kb'] * mib:.1f} MiB, "
        f"off {d['off_drop_kb'] * mib:.1f} MiB",
        f"model-reported pages of the reporting guest absent on the host: {k['reported_pages_host_absent']}; "
        f"free but unreported pages present: {k['free_unreported_host_present']}",
    ]
    r = c.get("refault")
    if r:
        pred = r["predicted_growth_kb_4k"]
        lines.append(
            f"phase 2 reuses {r['phase2_pages_in_reported_chunks']} of its {r['phase2_pages']} pages from reported "
            f"chunks: host grew {r['measured_growth_kb'] * mib:.1f} MiB, predicted "
            f"{'-' if pred is None else f'{pred * mib:.1f}'} MiB per 4 KiB page, "
            f"{r['predicted_growth_kb_thp'] * mib:.1f} MiB per 2 MiB chunk"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pagecore qemu freereport", description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--out-dir", required=True, type=Path, help="directory for tables, samples, JSON")
    p.add_argument("--ram-mb", type=int, default=256, help="guest RAM in MiB (default 256)")
    p.add_argument("--alloc-mb", type=int, default=128, help="MiB allocated and freed in phase 1 (default 128)")
    p.add_argument("--reuse-mb", type=int, default=48, help="MiB allocated and freed in phase 2 (default 48)")
    p.add_argument("--hold", type=int, default=5, help="seconds each allocation is held (default 5)")
    p.add_argument("--gap", type=int, default=12, help="seconds after each free (default 12)")
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto", help="accelerator (default auto)")
    p.add_argument("--kvm-timeout", type=float, default=20.0, help="seconds to wait for a KVM boot (default 20)")
    p.add_argument("--interval", type=float, default=0.1, help="host sampling interval in s (default 0.1)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--reuse-runs", action="store_true", help="compare the guests of an earlier run in --out-dir")
    args = p.parse_args(argv)
    if not args.interval > 0 or args.interval == float("inf"):  # 0, negative: sampled as fast as it could
        p.error(f"--interval must be a finite number of seconds > 0, got {args.interval}")
    for opt in ("ram_mb", "alloc_mb", "reuse_mb", "hold", "gap"):
        if getattr(args, opt) < (1 if opt == "ram_mb" else 0):
            p.error(
                f"--{opt.replace('_', '-')} must be at least {1 if opt == 'ram_mb' else 0}, got {getattr(args, opt)}"
            )
    try:
        res = run(
            args.out_dir, ram_mb=args.ram_mb, alloc_mb=args.alloc_mb, reuse_mb=args.reuse_mb, hold=args.hold,
            gap=args.gap, accel=args.accel, kvm_timeout=args.kvm_timeout, interval=args.interval,
            reuse_runs=args.reuse_runs,
        )  # fmt: skip
    except PagecoreError as exc:
        print(f"pagecore: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(res, indent=2, default=_json))
    else:
        print("\n".join(summary_lines(res)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
