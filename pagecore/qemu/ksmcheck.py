"""Check the KSM emulator against the real KSM on real QEMU guests.

Where ``/sys/kernel/mm/ksm`` is writable (root), QEMU and a kernel are installed:

1. record every KSM sysfs setting as found (``run`` included);
2. boot N identical guests (the capture workload of :mod:`pagecore.qemu.capture`; KVM under a time
   limit, else TCG) and **pause** them, so their memory is static while KSM works; QEMU marks
   guest RAM ``MADV_MERGEABLE`` (``-machine mem-merge=on`` is QEMU's default);
3. find each guest's RAM in its QEMU process (``/proc/PID/maps``) and read which of its pages
   KSM can see (``/proc/PID/pagemap`` present, not the kernel zero page per ``/proc/kpageflags``;
   pages the guest never touched are not allocated on the host at all), and save the RAM with
   QMP ``pmemsave``; the emulator's prediction is made from exactly those pages;
4. turn KSM on with the chosen settings, sample the counters until two full scans change
   nothing, and read the pagemap again (pages a THP split mapped to the zero page are counted);
5. **restore every setting exactly as found** (in a ``finally``) and end only the QEMU processes
   started here, by PID.

``pagecore qemu ksmcheck --help``; the result is one JSON object (real and predicted final
counters, convergence times, what KSM could not see).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pagecore.qemu.capture import (
    DEFAULT_APPEND,
    QMP,
    CaptureError,
    _kill,
    _which,
    boot_guest,
    build_initramfs,
    newest_kernel,
    pause_and_save_ram,
)
from pagecore.sharing.ksm import COUNTERS as KSM_COUNTERS

KSM = Path("/sys/kernel/mm/ksm")
#: knobs restored after a check, in this order (``run`` last, to its old value)
KNOBS = ("pages_to_scan", "sleep_millisecs", "use_zero_pages", "smart_scan")
COUNTERS = KSM_COUNTERS  # the same sysfs counters the emulator reports
PAGE = 4096
KPF_ZERO_PAGE = 1 << 24
KPF_THP = 1 << 22
KPF_KSM = 1 << 21


def unavailable_reason() -> str | None:
    """Why a real check cannot run here, or None."""
    if not KSM.is_dir():
        return "no /sys/kernel/mm/ksm (kernel without CONFIG_KSM)"
    if not os.access(KSM / "run", os.W_OK):
        return "/sys/kernel/mm/ksm/run is not writable (needs root)"
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not installed"
    if not list(Path("/boot").glob("vmlinuz-*")):
        return "no kernel in /boot"
    if not Path("/bin/busybox").exists():
        return "no /bin/busybox (busybox-static)"
    if not os.access("/proc/kpageflags", os.R_OK):
        return "/proc/kpageflags not readable"
    return None


def read_ksm() -> dict:
    """Every readable KSM sysfs file (settings and counters) as text."""
    out = {}
    for f in sorted(KSM.iterdir()):
        with contextlib.suppress(OSError):
            out[f.name] = f.read_text().strip()
    return out


def _write(name: str, value) -> None:
    (KSM / name).write_text(f"{value}\n")


def counters() -> dict:
    return {k: int((KSM / k).read_text()) for k in COUNTERS if (KSM / k).exists()}


def _ram_mapping(pid: int, ram_bytes: int) -> int:
    """Host start address of the guest RAM block (an anonymous mapping of about that size)."""
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
    # QEMU aligns the block inside a larger reservation; guest RAM starts at the aligned end
    return best[1] - ram_bytes if (best[1] - best[0]) > ram_bytes else best[0]


def page_states(pid: int, start: int, npages: int) -> dict:
    """Per page: present, on the kernel zero page, THP-backed, KSM page (pagemap + kpageflags)."""
    with open(f"/proc/{pid}/pagemap", "rb") as fh:
        fh.seek(start // PAGE * 8)
        pm = np.frombuffer(fh.read(npages * 8), np.uint64)
    present = (pm >> np.uint64(63)) & np.uint64(1) == 1
    pfn = pm & np.uint64((1 << 55) - 1)
    flags = np.zeros(npages, np.uint64)
    with open("/proc/kpageflags", "rb") as fh:
        for i in np.flatnonzero(present):
            flags[i] = np.frombuffer(os.pread(fh.fileno(), 8, int(pfn[i]) * 8), np.uint64)[0]
    return {
        "present": present,
        "zero_page": present & (flags & np.uint64(KPF_ZERO_PAGE) != 0),
        "thp": present & (flags & np.uint64(KPF_THP) != 0),
        "ksm": present & (flags & np.uint64(KPF_KSM) != 0),
    }


def _live_states(g: dict, out: Path, npg: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Page states and hashes of a paused guest's base RAM from a ``pagecore live`` read."""
    import pyarrow.parquet as pq

    from pagecore.qemu.live import Guest, Region, read_guest

    guest = Guest(g["pid"], f"ksmcheck-{g['pid']}", "ksmcheck: base RAM at the mapping found in /proc/PID/maps")
    guest.regions.append(Region(0, npg * PAGE, g["start"], "pc.ram", 0))
    read_guest(guest, out, qmp=g["qmp"], pause=True, max_mb_per_s=None)
    t = pq.read_table(out)
    order = np.argsort(t["gpfn"].to_numpy())
    if len(order) != npg:
        raise CaptureError(f"live read of pid {g['pid']} gave {len(order)} pages, expected {npg}")
    col = {c: t[c].to_numpy(zero_copy_only=False)[order] for c in t.column_names if c != "vm"}
    st = {"present": col["host_present"], "zero_page": col["host_zero_page"], "thp": col["host_thp"],
          "ksm": col["host_ksm"]}  # fmt: skip
    return st, col["hash"], col["zero"]


def _page_hashes(raw: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.fromfile(raw, np.uint8).reshape(-1, PAGE)
    h = np.array(
        [int.from_bytes(hashlib.blake2b(p.tobytes(), digest_size=8).digest(), "little") for p in data], np.uint64
    )
    return h, ~data.any(axis=1)


def run_check(
    n: int = 2,
    *,
    ram_mb: int = 128,
    pages_to_scan: int = 1000,
    sleep_ms: int = 20,
    use_zero_pages: bool = False,
    smart_scan: bool | None = None,
    accel: str = "auto",
    timeout_s: float = 300.0,
    work_dir: str | None = None,
    live_read: bool = False,
) -> dict:
    """The whole check (see the module docstring); returns the result dict.

    ``live_read``: take the prediction's input from a paused ``pagecore live`` read of each
    guest (its page table and host-view columns) instead of ``pmemsave`` + ``page_states``.
    """
    from pagecore.sharing.ksm import KsmSettings, emulate_ksm
    from pagecore.sharing.pagehistory import PageHistory

    why = unavailable_reason()
    if why:
        raise CaptureError(f"cannot check against real KSM: {why}")
    found = read_ksm()
    if found.get("run") != "0" or int(found.get("pages_shared", "0")):
        raise CaptureError(f"KSM is already in use here (run={found.get('run')}); not touching it")
    qemu = _which("qemu-system-x86_64", "apt-get install qemu-system-x86")
    kernel = newest_kernel()
    tmp = Path(work_dir or tempfile.mkdtemp(prefix="ksmcheck-"))
    initrd = build_initramfs(tmp / "initramfs.cpio", Path("/bin/busybox"))
    procs, guests, notes = [], [], []
    smart = (found.get("smart_scan") == "1") if smart_scan is None else smart_scan
    result = {"settings_found": found, "notes": notes}
    try:
        use = accel
        for i in range(n):
            g = tmp / f"guest{i:02d}"
            g.mkdir(exist_ok=True)
            proc, sock, used, secs = boot_guest(qemu, use, kernel, initrd, ram_mb, g, DEFAULT_APPEND, 30, 600, notes)
            procs.append(proc)
            use = used
            qmp = QMP(sock)
            raw = g / "ram.raw"
            if live_read:
                qmp.cmd("stop")
                ram = qmp.cmd("query-memory-size-summary")["base-memory"]
            else:
                ram = pause_and_save_ram(qmp, raw)
            guests.append({"pid": proc.pid, "qmp": qmp, "ram": ram, "raw": raw, "accel": used, "boot_s": secs})
        vis_h, vis_z, vis_vm, vis_g = [], [], [], []
        seen = {"guest_pages": 0, "present": 0, "zero_page_before": 0, "thp_before": 0}
        for i, g in enumerate(guests):
            npg = g["ram"] // PAGE
            g["start"] = _ram_mapping(g["pid"], g["ram"])
            if live_read:
                st, h, z = _live_states(g, tmp / f"live{i:02d}.parquet", npg)
            else:
                st = page_states(g["pid"], g["start"], npg)
                h, z = _page_hashes(g["raw"])
            vis = st["present"] & ~st["zero_page"]
            seen["guest_pages"] += npg
            seen["present"] += int(st["present"].sum())
            seen["zero_page_before"] += int(st["zero_page"].sum())
            seen["thp_before"] += int(st["thp"].sum())
            idx = np.flatnonzero(vis)
            vis_h.append(h[idx])
            vis_z.append(z[idx])
            vis_vm.append(np.full(len(idx), i))
            vis_g.append(idx.astype(np.uint64))
        seen["visible"] = int(sum(len(x) for x in vis_h))
        result["pages"] = seen
        hist = PageHistory.from_pages(
            np.concatenate(vis_h), np.concatenate(vis_z), np.concatenate(vis_vm), [f"g{i}" for i in range(n)],
            np.concatenate(vis_g),
        )  # fmt: skip
        settings = KsmSettings(
            pages_to_scan=pages_to_scan, sleep_millisecs=sleep_ms, use_zero_pages=use_zero_pages, smart_scan=smart
        )
        pred = emulate_ksm(hist, settings)
        result["predicted"] = {
            **{k: pred.final[k] for k in COUNTERS if k in pred.final},
            "seconds_to_converge": pred.seconds_to_converge,
        }
        # recent kernels map the all-zero pieces of a split THP to the zero page: KSM never sees them
        allz = np.concatenate(vis_z)
        seen["visible_zero"] = int(allz.sum())
        nz = ~allz
        hist2 = PageHistory.from_pages(
            np.concatenate(vis_h)[nz], allz[nz], np.concatenate(vis_vm)[nz], [f"g{i}" for i in range(n)],
            np.concatenate(vis_g)[nz],
        )  # fmt: skip
        pred2 = emulate_ksm(hist2, settings)
        result["predicted_without_zero_pages"] = {k: pred2.final[k] for k in COUNTERS if k in pred2.final}
        result["predicted_without_zero_pages"]["seconds_to_converge"] = pred2.seconds_to_converge
        # turn KSM on
        _write("pages_to_scan", pages_to_scan)
        _write("sleep_millisecs", sleep_ms)
        _write("use_zero_pages", int(use_zero_pages))
        if (KSM / "smart_scan").exists():
            _write("smart_scan", int(smart))
        t0 = time.monotonic()
        _write("run", 1)
        samples = []
        last_change_scan, prev_key = None, None
        while time.monotonic() - t0 < timeout_s:
            c = counters()
            t = time.monotonic() - t0
            samples.append({"t": t, **c})
            key = (c["pages_shared"], c["pages_sharing"], c.get("ksm_zero_pages", 0))
            if key != prev_key:
                prev_key, last_change_scan = key, c["full_scans"]
            if c["full_scans"] >= 3 and c["full_scans"] - last_change_scan >= 2:
                break
            time.sleep(0.1)
        final = samples[-1]
        saved = [s["pages_sharing"] + s.get("ksm_zero_pages", 0) for s in samples]
        conv = next(s["t"] for s, v in zip(samples, saved, strict=True) if v == saved[-1])
        result["real"] = {**{k: final[k] for k in COUNTERS if k in final}, "seconds_to_converge": round(conv, 2)}
        result["samples"] = len(samples)
        after = {"zero_page_after": 0, "ksm_after": 0, "thp_after": 0}
        for g in guests:
            st = page_states(g["pid"], g["start"], g["ram"] // PAGE)
            after["zero_page_after"] += int(st["zero_page"].sum())
            after["ksm_after"] += int(st["ksm"].sum())
            after["thp_after"] += int(st["thp"].sum())
        result["pages"].update(after)
        result["settings_used"] = {
            "pages_to_scan": pages_to_scan, "sleep_millisecs": sleep_ms, "use_zero_pages": int(use_zero_pages),
            "smart_scan": int(smart), "max_page_sharing": int(found.get("max_page_sharing", 256)),
        }  # fmt: skip
        result["guests"] = [{"accel": g["accel"], "boot_s": round(g["boot_s"], 1), "ram": g["ram"]} for g in guests]
    finally:
        for g in guests:
            with contextlib.suppress(Exception):
                g["qmp"].close()
        for p in procs:
            _kill(p)
        # our guests are gone; run=2 drops the KSM pages and rmap items they left behind (KSM was
        # idle and unused when we started, so nothing else is unmerged), then the old values
        with contextlib.suppress(OSError):
            _write("run", 2)
        with contextlib.suppress(OSError):
            _write("run", 0)
        for k in KNOBS:
            if k in found:
                with contextlib.suppress(OSError):
                    _write(k, found[k])
        with contextlib.suppress(OSError):
            _write("run", found.get("run", "0"))
        after_restore = read_ksm()
        result["settings_restored"] = all(after_restore.get(k) == found.get(k) for k in (*KNOBS, "run"))
        if work_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pagecore qemu ksmcheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--vms", type=int, default=2, help="identical guests (default 2)")
    p.add_argument("--ram-mb", type=int, default=128, help="guest RAM in MB (default 128)")
    p.add_argument("--pages-to-scan", type=int, default=1000, help="KSM pages_to_scan during the check (default 1000)")
    p.add_argument("--sleep-ms", type=int, default=20, help="KSM sleep_millisecs during the check (default 20)")
    p.add_argument("--use-zero-pages", action="store_true", help="use_zero_pages=1 during the check")
    p.add_argument("--no-smart-scan", action="store_true", help="smart_scan=0 during the check (default: as found)")
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto", help="accelerator (default auto)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for KSM to settle (default 300)")
    p.add_argument("--live", action="store_true", help="predict from a paused `pagecore live` read, not pmemsave")
    args = p.parse_args(argv)
    try:
        r = run_check(
            args.vms, ram_mb=args.ram_mb, pages_to_scan=args.pages_to_scan, sleep_ms=args.sleep_ms,
            use_zero_pages=args.use_zero_pages, accel=args.accel, timeout_s=args.timeout,
            smart_scan=False if args.no_smart_scan else None, live_read=args.live,
        )  # fmt: skip
    except CaptureError as exc:
        print(f"pagecore: error: {exc}", file=sys.stderr)
        return 1
    r.pop("settings_found", None)
    print(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
