"""Check the zram model against a real zram device: write a dump's pages, read ``mm_stat``.

``pagecore qemu zramcheck DUMP [--algorithm lz4 ...] [--device zram0]`` (root only)

For each algorithm the device offers: the device's settings are saved to
``STATE_DIR/pagecore-zramcheck-<dev>.json`` (every readable attribute; comp_algorithm and
disksize are the ones changed and restored), the device is reset, set to the algorithm, sized to the dump, every page
is written once with ``O_DIRECT`` in page order, ``mm_stat`` is read, and the device is reset and
its settings restored; the saved file is removed only after the restore. A saved file left by
a killed run is restored at the start of the next run (after checking it: this user's, this
boot's, this device's, nothing anyone else could have written). A device that holds data
(non-zero ``disksize``, listed in /proc/swaps or mounted) is never touched, and one check at a
time uses a device (``flock`` on its sysfs directory).

The prediction is :func:`pagecore.sharing.compress.zram_mm_stat` on the sizes
:mod:`pagecore.pages.compress` computes for the same pages.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import mmap
import os
import re
import stat
import sys
from pathlib import Path

import numpy as np

from pagecore import PAGE_SIZE
from pagecore.errors import InputError, PagecoreError

STATE_DIR = Path(os.environ.get("PAGECORE_STATE_DIR", "/var/tmp"))
MM_STAT_FIELDS = (
    "orig_data_size",
    "compr_data_size",
    "mem_used_total",
    "mem_limit",
    "mem_used_max",
    "same_pages",
    "pages_compacted",
    "huge_pages",
    "huge_pages_since",
)
#: Tolerances of issue 16 for lz4 (PyPI lz4 is the same compressor as the kernel's).
LZ4_TOLERANCE = {"same_pages": 0.0, "huge_pages": 0.01, "compr_data_size": 0.02, "mem_used_total": 0.02}
#: Goal for our own lzo-rle implementation.
LZO_GOAL = 0.05


class ZramUnavailable(RuntimeError):
    """No usable zram device (the message says why)."""


def sysfs(dev: str) -> Path:
    return Path("/sys/block") / dev


def _read(p: Path) -> str:
    return p.read_text().strip()


def _write(p: Path, value: str) -> None:
    with open(p, "w") as fh:
        fh.write(value)


def algorithms(dev: str = "zram0") -> list[str]:
    """Algorithms the device offers (the selected one is in brackets in sysfs)."""
    return [a.strip("[]") for a in _read(sysfs(dev) / "comp_algorithm").split()]


def selected_algorithm(dev: str = "zram0") -> str:
    for a in _read(sysfs(dev) / "comp_algorithm").split():
        if a.startswith("["):
            return a.strip("[]")
    raise ZramUnavailable(f"/sys/block/{dev}/comp_algorithm shows no selected algorithm")


def available(dev: str = "zram0") -> tuple[bool, str]:
    """(True, "") if ``dev`` can be used for the check, else (False, reason)."""
    if not sysfs(dev).is_dir():
        return False, f"no /sys/block/{dev} (zram module not loaded?)"
    if os.geteuid() != 0:
        return False, "needs root to configure zram"
    if not Path("/dev", dev).exists():
        return False, f"no /dev/{dev}"
    try:
        if int(_read(sysfs(dev) / "disksize")) != 0 and not state_file(dev).exists():
            return False, f"{dev} is initialized (disksize != 0): it may hold someone's data"
    except OSError as exc:
        return False, f"cannot read {dev} settings: {exc}"
    if in_use(dev):
        return False, f"/dev/{dev} is in use (swap or mounted)"
    return True, ""


def in_use(dev: str) -> bool:
    """Whether ``/dev/dev`` is a swap device, mounted or held (device mapper, md, bcache).

    /proc/swaps and /proc/mounts show the path the device was opened by, which need not be
    ``/dev/dev`` (another device node, another mount namespace); the kernel's own answer is an
    exclusive open, refused (EBUSY) while the device is swap, mounted or held, and ``holders``.
    """
    swaps = Path("/proc/swaps").read_text() if Path("/proc/swaps").exists() else ""
    mounts = Path("/proc/mounts").read_text() if Path("/proc/mounts").exists() else ""
    if f"/dev/{dev} " in swaps or f"/dev/{dev} " in mounts:
        return True
    with contextlib.suppress(OSError):
        if any((sysfs(dev) / "holders").iterdir()):
            return True
    try:
        os.close(os.open(f"/dev/{dev}", os.O_RDONLY | os.O_EXCL | os.O_NONBLOCK))
    except OSError as exc:
        return exc.errno == errno.EBUSY
    return False


def state_file(dev: str) -> Path:
    return STATE_DIR / f"pagecore-zramcheck-{dev}.json"


#: Settings the check changes and restores. Every other readable attribute is recorded in the
#: state file too (``snapshot``), for the record; write-only ones (mem_limit, algorithm_params)
#: cannot be read back, and the check only runs on an unused device (disksize 0), where
#: ``reset`` has already cleared them.
RESTORED = ("comp_algorithm", "disksize")


def boot_id() -> str | None:
    """This boot's id (a state file from another boot describes a device the reboot reset)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


@contextlib.contextmanager
def lock(dev: str):
    """Hold ``dev`` for one check: a second check (another process) is refused, not let loose on
    the device (it restored, i.e. reset, the first one's device mid-run and removed its saved
    settings). The lock is ``flock`` on the device's sysfs directory, released when the process
    ends, however it ends."""
    try:
        fd = os.open(sysfs(dev), os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise ZramUnavailable(f"no /sys/block/{dev} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ZramUnavailable(f"another zramcheck is using {dev}; run one at a time") from None
        yield
    finally:
        os.close(fd)


def load_state(dev: str) -> dict | None:
    """The settings a killed run saved for ``dev`` (None if none), checked before anything is reset:
    the file must be a regular file of this user, not writable by others (``STATE_DIR`` is
    world-writable), of this boot, name this device, an algorithm it offers and ``disksize`` 0 (a
    check only runs on an unused device). Anything else is a one-line :class:`InputError`."""
    p = state_file(dev)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    fix = f"check /sys/block/{dev} by hand (reset it if nothing uses it), then remove the file"
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise InputError(p, "not a zramcheck state file of this user (a link, another owner or writable by others)",
                         hint=fix)  # fmt: skip
    try:
        state = json.loads(p.read_text())
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        if state.get("device") != dev:
            raise ValueError(f"it names device {state.get('device')!r}, not {dev}")
        algo, size = state.get("comp_algorithm"), state.get("disksize")
        if not isinstance(algo, str) or algo not in algorithms(dev):
            raise ValueError(f"comp_algorithm {algo!r} is not one {dev} offers")
        if size != 0 or isinstance(size, bool):
            raise ValueError(f"disksize {size!r} (a check only runs on an unused device, disksize 0)")
    except (ValueError, OSError) as exc:
        raise InputError(p, f"not a usable zramcheck state file ({exc})", hint=fix) from None
    saved_boot = state.get("boot_id")
    if saved_boot is not None and saved_boot != boot_id():
        raise InputError(p, "saved in another boot: the reboot reset the device since", hint=fix)
    return state


def save_settings(dev: str) -> dict:
    """Record the device's settings in the state file (atomically) and return them."""
    snapshot = {}
    for f in sorted(sysfs(dev).iterdir()):
        if f.is_file() and os.access(f, os.R_OK) and f.stat().st_mode & 0o444:
            try:
                snapshot[f.name] = _read(f)
            except OSError:
                continue
    st = {
        "device": dev,
        "comp_algorithm": selected_algorithm(dev),
        "disksize": int(_read(sysfs(dev) / "disksize")),
        "boot_id": boot_id(),
        "snapshot": snapshot,
    }
    from pagecore._util import write_state_json  # never through a link planted in STATE_DIR; 0644

    write_state_json(state_file(dev), st)
    return st


def restore_settings(dev: str) -> dict | None:
    """Reset the device and put back the settings of the state file, then remove the file."""
    p = state_file(dev)
    st = load_state(dev)
    if st is None:
        return None
    if in_use(dev):  # set up (swap, a file system) since the run that saved the file died
        raise InputError(
            p,
            f"/dev/{dev} is in use now (swap or mounted); not resetting it",
            hint=f"if it should not be, swapoff/umount it and run again; else remove {p.name}",
        )
    writes = [("reset", "1"), ("comp_algorithm", st["comp_algorithm"])]
    for name, value in writes + ([("disksize", str(st["disksize"]))] if st["disksize"] else []):
        try:
            _write(sysfs(dev) / name, value)
        except OSError as exc:  # EBUSY: in use in a way in_use() did not see; the file is kept
            raise InputError(
                sysfs(dev) / name, f"cannot write {value!r} ({exc.strerror}); {dev} not restored", hint=f"kept {p}"
            ) from None
    p.unlink()
    return st


def read_mm_stat(dev: str) -> dict:
    vals = [int(x) for x in _read(sysfs(dev) / "mm_stat").split()]
    return dict(zip(MM_STAT_FIELDS, vals, strict=False))


def write_pages(dev: str, algorithm: str, chunks, npages: int) -> dict:
    """Reset ``dev``, select ``algorithm``, write the pages of ``chunks`` (iterable of
    uint8[k, 4096]) with O_DIRECT, and return ``mm_stat``. The caller restores settings."""
    _write(sysfs(dev) / "reset", "1")
    _write(sysfs(dev) / "comp_algorithm", algorithm)
    size = max(npages, 1) * PAGE_SIZE
    size = -(-size // (1 << 20)) * (1 << 20)
    _write(sysfs(dev) / "disksize", str(size))
    fd = os.open(f"/dev/{dev}", os.O_WRONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 256 * PAGE_SIZE)  # page-aligned, as O_DIRECT needs
    whole = memoryview(buf)
    view = np.frombuffer(whole, np.uint8).reshape(256, PAGE_SIZE)
    try:
        off = 0
        for pages in chunks:
            for a in range(0, pages.shape[0], 256):
                part = pages[a : a + 256]
                k = part.shape[0]
                view[:k] = part
                done = 0
                while done < k * PAGE_SIZE:
                    with whole[done : k * PAGE_SIZE] as mv:
                        done += os.pwrite(fd, mv, off + done)
                off += k * PAGE_SIZE
        os.fsync(fd)
    finally:
        del view
        whole.release()
        os.close(fd)
        buf.close()
    return read_mm_stat(dev)


def kernel_page_sizes(dev: str, algorithm: str, pages: np.ndarray) -> np.ndarray:
    """The kernel's compressed length of each page: write pages one at a time to a fresh
    device and read the growth of ``compr_data_size`` (``PAGE_SIZE`` for huge pages, 0 for
    same-filled ones). The caller saves and restores the settings."""
    _write(sysfs(dev) / "reset", "1")
    _write(sysfs(dev) / "comp_algorithm", algorithm)
    size = -(-max(len(pages), 1) * PAGE_SIZE // (1 << 20)) * (1 << 20)
    _write(sysfs(dev) / "disksize", str(size))
    out = np.zeros(len(pages), np.int64)
    fd = os.open(f"/dev/{dev}", os.O_WRONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, PAGE_SIZE)
    whole = memoryview(buf)
    view = np.frombuffer(whole, np.uint8)
    try:
        prev = 0
        for i, p in enumerate(pages):
            view[:] = p
            os.pwrite(fd, whole, i * PAGE_SIZE)
            now = read_mm_stat(dev)["compr_data_size"]
            out[i] = now - prev
            prev = now
    finally:
        del view
        whole.release()
        os.close(fd)
        buf.close()
    return out


def _dump_chunks(path, fmt="auto"):
    from pagecore.dumps import open_dump

    with open_dump(path, fmt) as r:
        for c in r:
            yield np.ascontiguousarray(c.pages)


def check(path, algos=None, dev: str = "zram0", threads: int | None = None) -> list[dict]:
    """Predict and measure ``mm_stat`` for the pages of dump ``path``; one row per algorithm.

    Raises ZramUnavailable when the device cannot be used (also while another check runs on it).
    """
    if not re.fullmatch(r"zram\d+", dev):  # it names a sysfs directory and the state file
        raise ZramUnavailable(f"{dev!r} is not a zram device name (zram0, zram1, ...)")
    with lock(dev):
        return _check(path, algos, dev, threads)


def _check(path, algos, dev: str, threads: int | None) -> list[dict]:
    from pagecore.dumps import open_dump
    from pagecore.pages.compress import page_sizes
    from pagecore.sharing.compress import zram_mm_stat

    if os.path.lexists(state_file(dev)):
        restore_settings(dev)  # a killed run left the device configured
    ok, why = available(dev)
    if not ok:
        raise ZramUnavailable(why)
    offered = algorithms(dev)
    algos = [a for a in (algos or ["lz4", "lzo-rle", "lzo"]) if a in offered]
    if not algos:
        raise ZramUnavailable(f"{dev} offers none of the requested algorithms (it has {', '.join(offered)})")
    with open_dump(path) as r:
        ps = page_sizes([("vm", r)], algos, threads=threads)
    n = ps.stats.pages
    rows = []
    save_settings(dev)
    try:
        for a in algos:
            pred = zram_mm_stat(ps.frame[f"csize_{a}"].to_numpy(), ps.frame["same_filled"].to_numpy())
            meas = write_pages(dev, a, _dump_chunks(path), n)
            row = {"algorithm": a, "pages": n}
            for k in ("orig_data_size", "compr_data_size", "mem_used_total", "same_pages", "huge_pages"):
                m, p = meas[k], pred[k]
                row[f"{k}_measured"] = m
                row[f"{k}_predicted"] = p
                row[f"{k}_rel_err"] = (p - m) / m if m else (0.0 if p == 0 else float("inf"))
            row["huge_class_size"] = pred["huge_class_size"]
            rows.append(row)
    finally:
        restore_settings(dev)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="pagecore qemu zramcheck", description=__doc__.splitlines()[0])
    ap.add_argument("dump", help="guest memory dump (any format pagecore reads)")
    ap.add_argument("--algorithm", action="append", help="algorithm(s) to check (default: lz4, lzo-rle, lzo)")
    ap.add_argument("--device", default="zram0")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        rows = check(args.dump, args.algorithm, args.device)
    except ZramUnavailable as exc:
        print(f"zramcheck: skipped: {exc}", file=sys.stderr)
        return 2
    except PagecoreError as exc:
        print(f"pagecore: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['algorithm']}: {r['pages']:,} pages, huge_class_size {r['huge_class_size']}")
        for k in ("orig_data_size", "compr_data_size", "mem_used_total", "same_pages", "huge_pages"):
            print(
                f"  {k:16s} measured {r[k + '_measured']:>14,}  predicted {r[k + '_predicted']:>14,}"
                f"  error {100 * r[k + '_rel_err']:+.3f} %"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
