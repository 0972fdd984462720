"""Read running QEMU guests' memory from this host, read-only and rate-limited, into page tables.

For each QEMU process: find guest RAM in its address space, read it through ``/proc/PID/mem``
(opened ``O_RDONLY``; nothing is ever written to the guest or to QEMU), hash every page and
write one page table per guest, with the host's view of each page from ``/proc/PID/pagemap``
and ``/proc/kpageflags``: present, backed by a transparent huge page, mapped to the kernel's
zero page, already merged by KSM.

Finding guest RAM
-----------------
* **QMP** (``-qmp unix:PATH`` on QEMU's command line, or given): ``info ramblock`` names every
  RAM block and its size, ``info mtree -f`` maps guest-physical ranges onto blocks exactly as
  ``dump-guest-memory`` sees them (BIOS and option ROMs included); each block's host address is
  the one anonymous mapping of exactly its size that QEMU marked mergeable or huge-page
  (``VmFlags`` in ``/proc/PID/smaps``). A block whose size fits no single mapping is reported
  and not read.
* **maps only** (no QMP): the largest such mapping is taken as ``pc.ram`` of a PC machine,
  guest-physical from 0 (RAM above QEMU's i440fx below-4 GiB limit at 4 GiB); ROMs are not read.

Consistency
-----------
Default: a *fuzzy* snapshot of a running guest. Its drift is measured by hashing every page a
second time right after the first pass; pages whose hash changed are counted (``drift_pages``),
and the table is marked ``snapshot: "unverified (fuzzy)"``. ``pause=True`` stops the guest with
QMP ``stop`` for the read and resumes it with ``cont`` (always, also on errors and signals); the
pause time is reported and the table is a consistent snapshot (``snapshot: "paused"``). SIGINT
and SIGTERM stop a read cleanly: the guest is resumed, no partial table is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pagecore import PAGE_SIZE
from pagecore.errors import InputError, PagecoreError
from pagecore.pages.hashing import ALGORITHM, PageKey, hash_pages
from pagecore.pages.tables import META_KEY, PAGE_TABLE_SCHEMA, PageTableWriter, page_table_batch
from pagecore.qemu.capture import QMP, CaptureError

KPF_THP = 1 << 22
KPF_KSM = 1 << 21
KPF_ZERO_PAGE = 1 << 24
PM_PRESENT = 1 << 63
PM_PFN_MASK = (1 << 55) - 1
HOST_COLUMNS = ("host_present", "host_thp", "host_zero_page", "host_ksm")
LIVE_SCHEMA = pa.schema(list(PAGE_TABLE_SCHEMA) + [pa.field(c, pa.bool_(), nullable=False) for c in HOST_COLUMNS])
DEFAULT_MB_PER_S = 64.0
READ_PAGES = 1024  # pages per /proc/PID/mem read (4 MiB)
#: i440fx's below-4 GiB RAM limit for guests of 3.5 GiB and more (QEMU's default max-ram-below-4g)
PC_LOWMEM_BIG = 0xC0000000
PC_LOWMEM = 0xE0000000


class LiveStopped(PagecoreError):
    """A live read was stopped by SIGINT or SIGTERM."""

    exit_code = 130


@dataclass
class Region:
    """Guest-physical ``[gpa, gpa+length)`` backed by host virtual ``host`` (block ``block`` at ``offset``)."""

    gpa: int
    length: int
    host: int
    block: str
    offset: int


@dataclass
class Guest:
    pid: int
    name: str
    how: str  # how guest RAM was found
    regions: list[Region] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    qmp: str | None = None

    @property
    def pages(self) -> int:
        return sum(r.length for r in self.regions) // PAGE_SIZE


# ----------------------------------------------------------------------------- processes
def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError as e:
        raise InputError(f"/proc/{pid}", f"no such process ({e.strerror})", hint="check the PID") from None


def qemu_reason(pid: int) -> str | None:
    """None if ``pid`` is a QEMU system emulator, else why not."""
    try:
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError as e:
        return f"cannot read /proc/{pid}/exe ({e.strerror})"
    if exe.startswith(("qemu-system-", "qemu-kvm")) or exe == "kvm":
        return None
    return f"process {pid} runs {exe!r}, not qemu-system-*"


def find_qemu_pids() -> list[int]:
    """Every QEMU system emulator running on this host."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and qemu_reason(int(d.name)) is None:
            out.append(int(d.name))
    return sorted(out)


def guest_name(pid: int) -> str:
    args = _cmdline(pid)
    for i, a in enumerate(args[:-1]):
        if a == "-name":
            v = args[i + 1].split(",")[0]
            return v.removeprefix("guest=") or f"qemu-{pid}"
    return f"qemu-{pid}"


def table_stem(name: str, pid: int) -> str:
    """A file name stem for guest ``name``: QEMU's ``-name`` is anyone's text, so a ``/`` or a leading
    dot (``-name ../x``) must not place the table outside the output directory or hide it."""
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", name).lstrip(".")
    return stem or f"qemu-{pid}"


def qmp_socket_of(pid: int) -> str | None:
    """The QMP UNIX socket named by ``-qmp unix:PATH`` on QEMU's command line, if any."""
    args = _cmdline(pid)
    for i, a in enumerate(args[:-1]):
        if a == "-qmp" and args[i + 1].startswith("unix:"):
            return args[i + 1][5:].split(",")[0]
    return None


def qmp_socket_owned(pid: int, sock: str | os.PathLike) -> bool | None:
    """Whether process ``pid`` listens on the UNIX socket ``sock`` (None: no such socket file).

    A QMP socket of another QEMU (a mistyped ``--qmp``, or a path two QEMUs were given) would
    locate RAM by that guest's layout and ``--pause`` that guest, while the table said "paused".
    """
    if not os.path.exists(sock):
        return None
    want = os.path.realpath(sock)
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
                if m:
                    inodes.add(int(m.group(1)))
    try:
        table = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return True  # cannot tell: trust the caller, as before
    for line in table:
        f = line.split(None, 7)
        if len(f) == 8 and int(f[6]) in inodes:
            path = f[7] if f[7].startswith("/") else os.path.join(f"/proc/{pid}/cwd", f[7])
            if os.path.realpath(path) == want:
                return True
    return False


def ram_size_of(pid: int) -> int | None:
    """Guest RAM in bytes from QEMU's ``-m`` (QEMU's default 128 MiB without one; None if unreadable)."""
    args = _cmdline(pid)
    text = None
    for i, a in enumerate(args[:-1]):
        if a == "-m":
            text = args[i + 1]
    if text is None:
        return 128 << 20
    for part in text.split(","):
        k, eq, v = part.partition("=")
        v = v if eq else k
        if eq and k != "size":
            continue
        m = re.fullmatch(r"(\d+)([KMGT]?)[Bb]?", v.strip(), re.I)
        if not m:
            return None
        return int(m.group(1)) << {"": 20, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2).upper()]
    return None


# ------------------------------------------------------------------------------ mappings
def ram_mappings(pid: int) -> list[tuple[int, int, str]]:
    """Anonymous rw mappings QEMU marked as guest RAM (mergeable or huge-page): ``(start, end, flags)``."""
    out = []
    cur = None
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)", line)
            if m:
                cur = None
                if m.group(3).startswith("rw") and m.group(4) == "0" and m.group(5) in ("", "[heap]"):
                    cur = (int(m.group(1), 16), int(m.group(2), 16))
            elif line.startswith("VmFlags:") and cur is not None:
                flags = line.split()[1:]
                # not executable: TCG's translation buffer is an rwx huge-page mapping
                if ("mg" in flags or "hg" in flags) and "ex" not in flags:
                    out.append((cur[0], cur[1], " ".join(flags)))
                cur = None
    return out


def parse_ramblocks(text: str) -> dict[str, int]:
    """``info ramblock`` → {block name: (used bytes, total bytes)}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*(\S+)\s+\d+ [KMG]iB\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", line)
        if m:
            out[m.group(1)] = (int(m.group(3), 16), int(m.group(4), 16))
    return out


def parse_flatview(text: str) -> list[tuple[int, int, str, int]]:
    """``info mtree -f`` → RAM/ROM ranges of address space "memory": ``(gpa, length, block, offset)``."""
    out = []
    in_memory = False
    for line in text.splitlines():
        if line.startswith("FlatView"):
            in_memory = False
        elif line.strip() == 'AS "memory", root: system':
            in_memory = True
        elif in_memory:
            m = re.match(r"\s*([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, (ram|rom|romd)\): (\S+)(?: @([0-9a-f]+))?", line)
            if m:
                lo, hi = int(m.group(1), 16), int(m.group(2), 16)
                out.append((lo, hi + 1 - lo, m.group(4), int(m.group(5) or "0", 16)))
    return out


def locate_by_qmp(pid: int, qmp: QMP) -> Guest:
    """Guest RAM of ``pid`` from QMP (block sizes, guest-physical layout) and smaps (host addresses)."""
    hmp = lambda c: qmp.cmd("human-monitor-command", **{"command-line": c})  # noqa: E731
    blocks = parse_ramblocks(hmp("info ramblock"))
    flat = parse_flatview(hmp("info mtree -f"))
    maps = ram_mappings(pid)
    g = Guest(pid, guest_name(pid), "QMP (info ramblock, info mtree -f) + /proc/PID/smaps mapping sizes")
    host = {}
    for name, (_used, total) in blocks.items():
        fits = [lo for lo, hi, _ in maps if hi - lo == total]
        if len(fits) == 1:
            host[name] = fits[0]
        else:
            g.notes.append(f"block {name} ({total:#x} bytes): {len(fits)} mappings of that size; not read")
    for gpa, length, name, off in flat:
        if name in host and off + length <= blocks[name][0]:
            g.regions.append(Region(gpa, length, host[name] + off, name, off))
        elif name not in host:
            g.notes.append(f"guest-physical {gpa:#x}+{length:#x} ({name}) not read: no host address")
    if not g.regions:
        raise InputError(
            f"/proc/{pid}/smaps",
            "no guest RAM block matched a QEMU RAM mapping: " + "; ".join(g.notes),
            hint="run without a QMP socket to take the largest RAM mapping instead",
        )
    main = max(blocks, key=lambda n: blocks[n][1])
    if main not in host:  # a table of the ROMs alone would pass for the guest
        raise InputError(
            f"/proc/{pid}/smaps",
            f"the guest's main RAM block {main} ({blocks[main][1] >> 20} MiB) matches no anonymous QEMU RAM "
            "mapping (guest RAM in a memory-backend-file or shared memory is not read)",
            hint="dump the guest instead (QMP dump-guest-memory, `pagecore qemu savestate`) and hash the dump",
        )
    return g


def locate_by_maps(pid: int) -> Guest:
    """Guest RAM of ``pid`` as the largest QEMU RAM mapping, placed like ``pc.ram`` of a PC machine."""
    maps = ram_mappings(pid)
    if not maps:
        raise InputError(
            f"/proc/{pid}/smaps",
            "no anonymous mapping marked mergeable or huge-page (QEMU's guest RAM)",
            hint="start QEMU with mem-merge on (its default) or give its QMP socket with --qmp",
        )
    lo, hi, _ = max(maps, key=lambda m: m[1] - m[0])
    size = hi - lo
    ram = ram_size_of(pid) if qemu_reason(pid) is None else None  # (a process read with --force has no -m)
    if ram is not None and size != ram:  # the largest mapping is something else: not the guest's RAM
        raise InputError(
            f"/proc/{pid}/smaps",
            f"no anonymous RAM mapping of the guest's size ({ram >> 20} MiB, from -m); the largest is "
            f"{size >> 10} KiB (guest RAM in a memory-backend-file or shared memory is not read)",
            hint="dump the guest instead (QMP dump-guest-memory) and hash the dump",
        )
    g = Guest(
        pid,
        guest_name(pid),
        f"largest QEMU RAM mapping in /proc/PID/smaps ({size >> 20} MiB at {lo:#x}), taken as pc.ram of a PC "
        "machine (no QMP: layout assumed, ROMs not read)",
    )
    lowmem = PC_LOWMEM_BIG if size >= PC_LOWMEM else size
    g.regions.append(Region(0, min(size, lowmem), lo, "pc.ram", 0))
    if size > lowmem:
        g.regions.append(Region(1 << 32, size - lowmem, lo + lowmem, "pc.ram", lowmem))
    others = sorted((h - ll for ll, h, _ in maps if ll != lo), reverse=True)[:4]
    if others:
        g.notes.append("other RAM mappings (not read): " + ", ".join(f"{s >> 10} KiB" for s in others))
    return g


# ------------------------------------------------------------------------------- reading
class _Stop:
    """Turns SIGINT/SIGTERM into a flag checked between reads (handlers restored on exit)."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave handlers alone
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def check(self):
        if self.signum is not None:
            raise LiveStopped(f"stopped by {signal.Signals(self.signum).name}; no partial table written")

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


class _Pacer:
    """Keep the average read rate at most ``mb_per_s`` (None: unlimited)."""

    def __init__(self, mb_per_s: float | None):
        if mb_per_s is not None and not 0 <= mb_per_s < float("inf"):  # NaN or < 0 would read unthrottled
            raise ValueError(f"read rate limit must be a finite number >= 0 MiB/s, got {mb_per_s}")
        self.rate = None if not mb_per_s else mb_per_s * (1 << 20)
        self.t0 = time.monotonic()
        self.bytes = 0

    def done(self, n: int, stop: _Stop) -> None:
        self.bytes += n
        if self.rate is None:
            return
        wait = self.bytes / self.rate - (time.monotonic() - self.t0)
        while wait > 0:
            stop.check()
            time.sleep(min(wait, 0.1))
            wait = self.bytes / self.rate - (time.monotonic() - self.t0)


def host_view(pid: int, host: int, npages: int, kpf) -> dict[str, np.ndarray]:
    """Per page at host virtual ``host``: present, THP, zero page, KSM (pagemap + kpageflags)."""
    with open(f"/proc/{pid}/pagemap", "rb") as fh:
        pm = np.frombuffer(os.pread(fh.fileno(), npages * 8, host // PAGE_SIZE * 8), np.uint64)
    if len(pm) != npages:
        pm = np.concatenate([pm, np.zeros(npages - len(pm), np.uint64)])
    present = (pm & np.uint64(PM_PRESENT)) != 0
    pfn = pm & np.uint64(PM_PFN_MASK)
    flags = np.zeros(npages, np.uint64)
    if kpf is not None:
        for i in np.flatnonzero(present & (pfn != 0)):
            flags[i] = np.frombuffer(os.pread(kpf, 8, int(pfn[i]) * 8), np.uint64)[0]
    return {
        "host_present": present,
        "host_thp": present & ((flags & np.uint64(KPF_THP)) != 0),
        "host_zero_page": present & ((flags & np.uint64(KPF_ZERO_PAGE)) != 0),
        "host_ksm": present & ((flags & np.uint64(KPF_KSM)) != 0),
    }


def _read_pass(guest: Guest, fd: int, pacer: _Pacer, stop: _Stop, key: PageKey, sink) -> dict:
    """One pass over every region: hash pages, call ``sink(gpfn, hashes, zero, region, first_page)``."""
    buf = np.empty((READ_PAGES, PAGE_SIZE), np.uint8)
    unreadable = 0
    for r in guest.regions:
        for first in range(0, r.length // PAGE_SIZE, READ_PAGES):
            stop.check()
            k = min(READ_PAGES, r.length // PAGE_SIZE - first)
            view = buf[:k]
            ok = np.ones(k, bool)
            try:
                n = os.preadv(fd, [memoryview(view).cast("B")], r.host + first * PAGE_SIZE)
                if n != k * PAGE_SIZE:
                    raise OSError(5, "short read")
            except OSError:
                for i in range(k):  # page by page: count what cannot be read
                    try:
                        got = os.preadv(fd, [memoryview(view[i]).cast("B")], r.host + (first + i) * PAGE_SIZE)
                        ok[i] = got == PAGE_SIZE
                    except OSError:
                        ok[i] = False
                unreadable += int((~ok).sum())
            pacer.done(k * PAGE_SIZE, stop)
            h, z = hash_pages(view, key, threads=1)
            gpfn = np.arange(k, dtype=np.uint64) + np.uint64((r.gpa // PAGE_SIZE) + first)
            sink(gpfn[ok], h[ok], z[ok], r, first, ok)
    return {"pages_unreadable": unreadable}


class LiveTableWriter(PageTableWriter):
    """A page table with the host-view columns (``host_present``, ``host_thp``, ``host_zero_page``, ``host_ksm``)."""

    def __enter__(self):
        tmp = self._ctx.__enter__()
        self._writer = pq.ParquetWriter(tmp, LIVE_SCHEMA, compression="zstd")
        return self

    def write_live(self, gpfn, hashes, zero, host: dict[str, np.ndarray]) -> None:
        base = page_table_batch(self.vm, gpfn, hashes, zero)
        cols = list(base.columns) + [pa.array(host[c]) for c in HOST_COLUMNS]
        self._writer.write_batch(pa.RecordBatch.from_arrays(cols, schema=LIVE_SCHEMA), row_group_size=self.ROW_GROUP)
        self.rows += len(gpfn)


def read_guest(
    guest: Guest,
    out: str | os.PathLike,
    *,
    qmp: QMP | None = None,
    pause: bool = False,
    max_mb_per_s: float | None = DEFAULT_MB_PER_S,
    key: PageKey | None = None,
    measure_drift: bool = True,
) -> dict:
    """Read ``guest`` once into the page table ``out``; return its metadata (see the module doc)."""
    key = key or PageKey.default()
    if pause and qmp is None:
        raise InputError(f"/proc/{guest.pid}", "--pause needs QMP", hint="start QEMU with -qmp or pass --qmp")
    kpf = None
    with contextlib.suppress(OSError):
        kpf = os.open("/proc/kpageflags", os.O_RDONLY)
    hash_pages(np.zeros((1, PAGE_SIZE), np.uint8), key, threads=1)  # compile/load the kernel before timing or pausing
    fd = os.open(f"/proc/{guest.pid}/mem", os.O_RDONLY)
    meta: dict = {}
    paused_at = None
    try:
        with _Stop() as stop, LiveTableWriter(out, guest.name) as w:
            pacer = _Pacer(max_mb_per_s)
            first_hashes: list[np.ndarray] = []
            t0 = time.monotonic()
            if pause:
                status = qmp.cmd("query-status")
                if status.get("running"):
                    qmp.cmd("stop")
                    paused_at = time.monotonic()

            def sink(gpfn, h, z, r, first, ok):
                hv = host_view(guest.pid, r.host + first * PAGE_SIZE, len(ok), kpf)
                w.write_live(gpfn, h, z, {c: v[ok] for c, v in hv.items()})
                first_hashes.append(h.copy())

            res = _read_pass(guest, fd, pacer, stop, key, sink)
            read_s = time.monotonic() - t0
            drift = None
            if not pause and measure_drift:
                second: list[np.ndarray] = []
                _read_pass(guest, fd, pacer, stop, key, lambda g, h, z, r, f, ok: second.append(h.copy()))
                a, b = np.concatenate(first_hashes), np.concatenate(second)
                drift = int((a != b).sum()) if len(a) == len(b) else None
            pause_s = None
            if paused_at is not None:
                qmp.cmd("cont")
                pause_s = time.monotonic() - paused_at
                paused_at = None
            meta = {
                "source_path": f"/proc/{guest.pid}/mem",
                "format": "live",
                "page_size": PAGE_SIZE,
                "pid": guest.pid,
                "found_by": guest.how,
                "regions": [asdict(r) for r in guest.regions],
                "notes": guest.notes,
                "snapshot": "paused" if pause else "unverified (fuzzy)",
                "pause_seconds": None if pause_s is None else round(pause_s, 4),
                "drift_pages": drift,
                "read_seconds": round(read_s, 3),
                "max_mb_per_s": max_mb_per_s,
                "pages_read": w.rows,
                "pages_skipped": res["pages_unreadable"],
                "pages_excluded": 0,
                "pages_partial": 0,
                "bytes_skipped": 0,
                "hash_algorithm": ALGORITHM,
                "hash_key_id": key.key_id,
                "verified": False,
                "pages": w.rows,
                "host_view": "from /proc/PID/pagemap and /proc/kpageflags" if kpf is not None else "pagemap only",
                "taken_at": time.time(),
            }
            w.metadata.update(meta)
    except (FileNotFoundError, ProcessLookupError) as exc:  # /proc/PID/pagemap of a process that ended
        if _running(guest.pid):
            raise
        raise InputError(
            f"/proc/{guest.pid}", f"the process exited during the read ({exc.strerror}); no table written"
        ) from None
    finally:
        if paused_at is not None:  # error or signal while paused: always resume the guest
            with contextlib.suppress(CaptureError, OSError):
                qmp.cmd("cont")
        os.close(fd)
        if kpf is not None:
            os.close(kpf)
    return meta


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def read_live_table(path: str | os.PathLike):
    """A live page table with its host-view columns, as a pyarrow Table."""
    t = pq.read_table(path)
    missing = [c for c in HOST_COLUMNS if c not in t.column_names]
    if missing:
        raise InputError(path, f"no host-view columns {missing}", expected="a table written by `pagecore live`")
    return t


def page_table_meta(path) -> dict:
    import json

    raw = (pq.ParquetFile(path).metadata.metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


__all__ = [
    "Guest",
    "LiveStopped",
    "Region",
    "find_qemu_pids",
    "locate_by_maps",
    "locate_by_qmp",
    "qemu_reason",
    "qmp_socket_of",
    "qmp_socket_owned",
    "ram_size_of",
    "read_guest",
    "read_live_table",
    "table_stem",
]
