"""Check the KSM emulator against the real KSM on real QEMU guests, over time and for several settings.

Where ``/sys/kernel/mm/ksm`` is writable (root), QEMU and a kernel are installed:

1. **save every KSM setting as found to a file** (:data:`STATE_FILE`, in ``/run``) before
   changing anything; a run that was killed leaves that file behind and the next run restores
   those settings (and ends the QEMU processes that run started, by PID and start time) first;
   one check at a time (``flock`` on the KSM directory), and a file that is damaged, hand-edited
   or of another boot is refused in one line;
2. boot the guests of a *scenario* — identical guests (one workload) or mixed guests (different
   workloads, :data:`WORKLOADS`) — all at once, and **pause** them, so their memory is static
   while KSM works; QEMU marks guest RAM ``MADV_MERGEABLE`` (``-machine mem-merge=on`` is its
   default) and ``MADV_HUGEPAGE`` (THP-backed);
3. for each KSM *setting* (default: ``pages_to_scan`` 1000 and 200, ``sleep_millisecs`` 20,
   smart scan off): read **the input** — every page ksmd will walk and the host's view of it
   (:func:`read_walk`: the process's mergeable mappings in address order, contents through
   ``/proc/PID/mem``, ``/proc/PID/pagemap`` present and ``/proc/kpageflags`` THP / zero page /
   KSM), or a ``pagecore live`` read (``--live``); turn KSM on, sample the real counters and
   ksmd's CPU time every 50 ms until two full scans change nothing (:func:`sample_real_ksm`);
   unmerge (``run=2``) and collapse the guests' RAM back into huge pages (``MADV_COLLAPSE``)
   so the next setting starts from the same host state (``--no-collapse``: leave the 4 KiB
   pages). KSM only runs while no other process has mergeable memory (it would merge theirs
   too): the check waits for them to end, and a run they disturb is unmerged and repeated;
4. compare (:func:`compare_with_emulator`, the one harness; any input reader can be plugged in):
   the emulator (:func:`pagecore.sharing.emulate_ksm`) fed the same pages under the THP rule of
   :func:`walk_history` predicts the steady ``pages_shared``/``pages_sharing``; ksmd's scan cost
   per page and per wake-up (:func:`pagecore.sharing.ksmtime.calibrate_scan_cost`) is fitted on
   one setting and the time to 90 % of the steady ``pages_sharing`` predicted for the other;
5. **restore every setting exactly as found** (in a ``finally``, also on SIGTERM; ``run`` last)
   and end only the QEMU processes started here, by PID.

``pagecore qemu ksmcheck --help``; the result is one JSON object. Measured (README, "Sharing
over time"): the steady counters agree within 0.5 %; on THP-backed guest RAM the real KSM makes
about a third of its merges one full scan later than the emulator, so predicted times to converge
are 25–34 % short there, and within 10 % on 4 KiB pages. (Cause, not modelled by the emulator: an
all-zero piece of a huge page in the unstable tree becomes the shared zero page when ksmd splits
the huge page; Linux 6.18 then abandons every search that crosses that stale node until the
next full scan.)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pagecore.qemu.capture import (
    DEFAULT_APPEND,
    QMP,
    CaptureError,
    _cpio_entry,
    _kill,
    _which,
    boot_guest,
    build_initramfs,
    newest_kernel,
)
from pagecore.sharing.ksm import COUNTERS as KSM_COUNTERS
from pagecore.sharing.ksm import KsmSettings

KSM = Path("/sys/kernel/mm/ksm")
#: where the settings found are saved while a check runs (``/run`` is emptied at boot, when the
#: kernel's own defaults come back anyway); ``PAGECORE_KSM_STATE`` overrides it
STATE_FILE = Path(os.environ.get("PAGECORE_KSM_STATE", "/run/pagecore-ksmcheck.json"))
#: knobs a check may change and restores afterwards, in this order (``run`` last, to its old value)
KNOBS = ("pages_to_scan", "sleep_millisecs", "use_zero_pages", "smart_scan", "max_page_sharing", "advisor_mode")
COUNTERS = KSM_COUNTERS  # the same sysfs counters the emulator reports
PAGE = 4096
#: present only on kernels (6.12+) whose THP split maps all-zero subpages to the shared zero page
THP_SPLIT_TO_ZEROPAGE = Path("/sys/kernel/mm/transparent_hugepage/shrink_underused")
SAMPLE_S = 0.05  # real counters are sampled this often


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


def read_ksm(ksm_dir: Path = KSM) -> dict:
    """Every readable KSM sysfs file (settings and counters) as text."""
    out = {}
    for f in sorted(Path(ksm_dir).iterdir()):
        with contextlib.suppress(OSError):
            out[f.name] = f.read_text().strip()
    return out


def knob_value(name: str, text: str) -> str:
    """The value to write back for a knob read as ``text`` (``advisor_mode`` reads "[none] scan-time")."""
    m = re.search(r"\[(\S+)\]", text)
    return m.group(1) if m else text.strip()


def _write(name: str, value, ksm_dir: Path = KSM) -> None:
    (Path(ksm_dir) / name).write_text(f"{value}\n")


def counters(ksm_dir: Path = KSM) -> dict:
    return {k: int((Path(ksm_dir) / k).read_text()) for k in COUNTERS if (Path(ksm_dir) / k).exists()}


# ------------------------------------------------------------------- settings saved to a file
def _proc_start(pid: int) -> int | None:
    """Start time of process ``pid`` (clock ticks since boot, /proc/PID/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _same_process(rec: dict) -> bool:
    """Whether the process recorded (PID and start time) is running (a record without a start time never is)."""
    return rec.get("pid") is not None and rec.get("start") is not None and _proc_start(int(rec["pid"])) == rec["start"]


def save_state(path: Path, found: dict, guests: Sequence[int] = (), applied: dict | None = None) -> dict:
    """Write the settings found (and the QEMU processes started so far, and the values the check
    has written: ``applied``) to ``path`` atomically."""
    from pagecore._util import write_state_json

    state = {
        "version": 1,
        "what": "KSM settings found by `pagecore qemu ksmcheck`; restored by its next run if this one died",
        "owner": {"pid": os.getpid(), "start": _proc_start(os.getpid())},
        "run": knob_value("run", found.get("run", "0")),
        "knobs": {k: knob_value(k, found[k]) for k in KNOBS if k in found},
        "guests": [{"pid": p, "start": _proc_start(p)} for p in guests],
        # what the check wrote last, knob by knob (recorded before each write): a killed check's
        # leftovers are these, so a KSM that differs was changed since, by someone else
        "applied": dict(applied or {}),
        "boot_id": _boot_id(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_state_json(path, state)  # never through a link planted at path; 0644 whatever the umask
    return state


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


#: what a saved knob may read back as (numbers: an unsigned int, as the kernel's kstrtouint reads them)
_KNOB_TEXT = {"use_zero_pages": "[01]", "smart_scan": "[01]", "advisor_mode": "none|scan-time"}


def _plausible(knob: str, value: str) -> bool:
    """Whether ``value`` is text the kernel could have shown for ``knob`` (checked before it is written back)."""
    if knob in _KNOB_TEXT:
        return re.fullmatch(_KNOB_TEXT[knob], value) is not None
    return re.fullmatch(r"[0-9]{1,10}", value) is not None and int(value) < 2**32


def load_state(path: Path) -> dict | None:
    """The saved state at ``path``, None if there is none; a damaged, hand-edited or other-boot
    file is a one-line error (checked whole before anything is written or ended)."""
    try:  # never through a link: the file names processes to end and values to write as root
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise CaptureError(
            f"{path}: not a ksmcheck state file to trust ({why}); check /sys/kernel/mm/ksm by hand, then remove it"
        ) from None
    try:
        st = os.fstat(fd)
        text = os.read(fd, 1 << 16).decode("utf-8", "replace") if stat.S_ISREG(st.st_mode) else ""
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise CaptureError(
            f"{path}: not a ksmcheck state file of this user (not a regular file, another owner or writable by others);"
            " check /sys/kernel/mm/ksm by hand, then remove it"
        )
    try:
        state = json.loads(text)
        if not isinstance(state, dict) or state.get("version") != 1 or not isinstance(state.get("knobs"), dict):
            raise ValueError("unknown layout")
        if state.get("run") != "0":  # a check only starts on an idle KSM (run=0)
            raise ValueError(f"run {state.get('run')!r}, not '0'")
        bad = [k for k, v in state["knobs"].items() if k not in KNOBS or not isinstance(v, str)]
        if bad:
            raise ValueError(f"knob {bad[0]!r} is not one a check changes, as text")
        bad = [(k, v) for k, v in state["knobs"].items() if not _plausible(k, v)]
        if bad:
            raise ValueError(f"knob {bad[0][0]} = {bad[0][1]!r} is not a value that knob can have")
        applied = state.get("applied", {})  # (files of session 24 and before have none)
        if not isinstance(applied, dict) or any(
            k not in (*KNOBS, "run")
            or not isinstance(v, str)
            or not _plausible(k, v)
            or (k == "run" and v not in ("0", "1", "2"))
            for k, v in applied.items()
        ):
            raise ValueError("'applied' is not knobs a check writes with values they can have")
        guests, owner = state.get("guests", []), state.get("owner", {})
        recs = [*guests, owner] if isinstance(guests, list) else [None]
        if not all(
            isinstance(g, dict) and all(isinstance(g.get(k), int | None) for k in ("pid", "start")) for g in recs
        ):
            raise ValueError("guests and owner are records of an integer pid and start time")
    except ValueError as exc:
        raise CaptureError(
            f"{path}: not a ksmcheck state file ({exc}); restore /sys/kernel/mm/ksm by hand, then remove it"
        ) from None
    if state.get("boot_id") not in (None, _boot_id()):  # its PIDs and start times are another boot's
        raise CaptureError(f"{path}: saved in another boot; check /sys/kernel/mm/ksm by hand, then remove it")
    return state


def restore_plan(state: dict, current: dict) -> list[tuple[str, str]]:
    """The sysfs writes that put KSM back as saved in ``state``, in order.

    ``run=2`` first (unmerge what the check's guests left behind: the check only starts on an idle,
    unused KSM, so nothing else is unmerged), then ``run=0``, every knob whose current value
    differs from the saved one, and ``run`` last, to its saved value.
    """
    plan = [("run", "2"), ("run", "0")]
    for k, v in state["knobs"].items():
        if k in current and knob_value(k, current[k]) != v:
            plan.append((k, v))
    plan.append(("run", state["run"]))
    return plan


def restore_settings(state: dict, ksm_dir: Path = KSM) -> list[str]:
    """Apply :func:`restore_plan`; return the writes that failed (each as "knob=value: why")."""
    failed = []
    for k, v in restore_plan(state, read_ksm(ksm_dir)):
        try:
            _write(k, v, ksm_dir)
        except OSError as exc:
            failed.append(f"{k}={v}: {exc.strerror or exc}")
    return failed


def _end_pid(pid: int, start: int) -> bool:
    """End process ``pid`` if it is still the one that started at ``start``: SIGTERM, SIGKILL after
    10 s. Signals go through a pidfd opened before the start time is checked, so a PID reused
    meanwhile (also during the 10 s) is never signalled. Returns whether it was that process."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone already
        return False
    try:
        if _proc_start(pid) != start:
            return False
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signal.SIGTERM)
            if not select.select([fd], [], [], 10.0)[0]:  # readable once it has exited
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        return True
    finally:
        os.close(fd)


def recover_leftovers(path: Path = STATE_FILE, ksm_dir: Path = KSM) -> dict | None:
    """If a killed check left its state file: end its QEMU processes, restore its settings.

    Returns what was done (None if there was no file). Refuses (:class:`CaptureError`) while the
    check that wrote the file is still running. Processes are ended only if PID *and* start time
    match the ones recorded (a reused PID is left alone).
    """
    state = load_state(path)
    if state is None:
        return None
    if _same_process(state.get("owner", {})) and state["owner"]["pid"] != os.getpid():
        raise CaptureError(f"another ksmcheck (pid {state['owner']['pid']}) is running; its state is {path}")
    from pagecore.qemu.live import qemu_reason

    ended, left = [], []
    for g in state.get("guests", []):
        if _same_process(g):
            if qemu_reason(int(g["pid"])) is None:  # the file records QEMUs: never end anything else
                if _end_pid(int(g["pid"]), g["start"]):
                    ended.append(int(g["pid"]))
            else:
                left.append(int(g["pid"]))
    if "applied" in state:  # leave a KSM alone that someone changed since the killed check
        expected = {"run": state["run"], **state["knobs"], **state["applied"]}
        current = read_ksm(ksm_dir)
        changed = [(k, knob_value(k, current[k]), v) for k, v in expected.items() if k in current]
        changed = [c for c in changed if c[1] != c[2]]
        if changed:
            k, now, left_at = changed[0]
            raise CaptureError(
                f"{path}: KSM was changed since the killed check ({k} is {now}, the check left it at {left_at}): "
                "not restoring it; the settings the check found are in this file: put them back by hand if you "
                "want them, then remove it"
            )
    failed = restore_settings(state, ksm_dir)
    if failed:
        raise CaptureError(f"could not restore the KSM settings saved in {path}: {'; '.join(failed)}")
    Path(path).unlink()
    return {
        "state_file": str(path),
        "ended_guests": ended,
        "left_running_not_qemu": left,
        "restored": state["knobs"] | {"run": state["run"]},
    }


class KsmSession:
    """Change KSM settings safely: the settings found are saved first and restored on leaving.

    ``with KsmSession() as s:`` recovers a killed run's leftovers, refuses unless KSM is idle
    (``run=0``, nothing merged), saves the settings to ``state_file``; :meth:`add_guest` records
    each QEMU process started; :meth:`set` writes knobs. Leaving (also by SIGTERM, turned into an
    exception meanwhile) restores every setting and removes the file.
    """

    def __init__(self, state_file: Path = STATE_FILE, ksm_dir: Path = KSM, foreign_wait_s: float = 300.0):
        self.state_file, self.ksm_dir = Path(state_file), Path(ksm_dir)
        #: how long to wait for other processes with mergeable memory to end before KSM runs
        self.foreign_wait_s = foreign_wait_s
        self.found: dict = {}
        self.guests: list[int] = []
        self.applied: dict[str, str] = {}
        self.recovered: dict | None = None
        self.restored: bool | None = None
        self._old_term = None
        self._lock: int | None = None

    def _take_lock(self) -> None:
        """``flock`` on the KSM directory for the whole session, whatever the state file: a second
        check (another ``--state-file``) found KSM idle while the first booted its guests, and on
        leaving "restored" it (run=2, run=0) under the first one's measurement."""
        import fcntl

        self._lock = os.open(self.ksm_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise CaptureError(f"another ksmcheck is using {self.ksm_dir}; run one at a time") from None

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> KsmSession:
        self._take_lock()
        try:
            self.recovered = recover_leftovers(self.state_file, self.ksm_dir)
            self.found = read_ksm(self.ksm_dir)
            if self.found.get("run") != "0" or int(self.found.get("pages_shared", "0")):
                raise CaptureError(f"KSM is already in use here (run={self.found.get('run')}); not touching it")
            self.state = save_state(self.state_file, self.found)
        except BaseException:
            self._release_lock()
            raise
        if threading.current_thread() is threading.main_thread():
            self._old_term = signal.signal(signal.SIGTERM, _raise_on_term)
        return self

    def add_guest(self, pid: int) -> None:
        self.guests.append(pid)
        self.state = save_state(self.state_file, self.found, self.guests, self.applied)

    def set(self, **knobs) -> None:
        for k in knobs:
            if k not in (*KNOBS, "run"):
                raise ValueError(f"not a knob this check restores: {k}")
        values = {k: int(v) if isinstance(v, bool) else v for k, v in knobs.items() if (self.ksm_dir / k).exists()}
        # recorded before they are written: a check killed after this finds them as it left them
        self.applied.update({k: str(v) for k, v in values.items()})
        self.state = save_state(self.state_file, self.found, self.guests, self.applied)
        for k, v in values.items():
            _write(k, v, self.ksm_dir)

    def __exit__(self, *exc) -> None:
        try:
            failed = restore_settings(self.state, self.ksm_dir)
            after = read_ksm(self.ksm_dir)
            self.restored = not failed and all(
                knob_value(k, after.get(k, "")) == knob_value(k, self.found.get(k, ""))
                for k in (*KNOBS, "run")
                if k in self.found
            )
            if self.restored:
                self.state_file.unlink(missing_ok=True)
        finally:
            self._release_lock()
            if self._old_term is not None:
                signal.signal(signal.SIGTERM, self._old_term)


def _raise_on_term(signum, frame):
    raise CaptureError("stopped by SIGTERM; KSM settings restored")


# ----------------------------------------------------------------------- the guests' workloads
@dataclass(frozen=True)
class Workload:
    """What a guest's ``/init`` leaves in memory (see :func:`pagecore.qemu.capture.build_initramfs`)
    plus files of seeded random bytes in the initramfs (``data``: (seed, pages) each): pages
    shared only with guests that carry the same seed."""

    copies: int = 2
    pattern_pages: int = 512
    zero_pages: int = 512
    data: tuple[tuple[int, int], ...] = ()


#: named workloads; "mixed" scenarios combine different ones
WORKLOADS = {
    "base": Workload(),
    "files": Workload(copies=5, pattern_pages=2048, zero_pages=0),
    "data": Workload(copies=1, pattern_pages=128, zero_pages=1024, data=((1, 2048), (2, 1024))),
}
#: scenario name → workloads of its guests
SCENARIOS = {"identical": ("base", "base"), "mixed": ("base", "files", "data")}


def build_workload_initramfs(path: Path, workload: Workload, busybox: Path = Path("/bin/busybox")) -> Path:
    """The capture initramfs for ``workload``, with its data files appended as a second cpio archive
    (the kernel unpacks concatenated archives in turn)."""
    build_initramfs(
        path, busybox, copies=workload.copies, pattern_pages=workload.pattern_pages, zero_pages=workload.zero_pages
    )
    if workload.data:
        entries = [
            _cpio_entry(
                f"data-{seed}.bin",
                0o100644,
                np.random.default_rng(seed).integers(0, 256, pages * PAGE, dtype=np.uint8).tobytes(),
                ino=100 + i,
            )
            for i, (seed, pages) in enumerate(workload.data)
        ]
        entries.append(_cpio_entry("TRAILER!!!", 0, ino=0))
        with open(path, "ab") as fh:
            fh.write(b"".join(entries))
    return path


# ------------------------------------------------------------------------------ the input
def mergeable_mappings(pid: int) -> list[tuple[int, int]]:
    """``(start, end)`` of every mapping of ``pid`` marked ``MADV_MERGEABLE`` (``mg``), in address
    order: what ksmd walks in that process."""
    out, cur = [], None
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
            if m:
                cur = (int(m.group(1), 16), int(m.group(2), 16))
            elif line.startswith("VmFlags:") and cur is not None:
                if "mg" in line.split()[1:]:
                    out.append(cur)
                cur = None
    return out


def read_walk(pid: int, name: str, key=None) -> pd.DataFrame:
    """The input from a paused process: every page ksmd will walk, and the host's view of it.

    One row per page of every mergeable mapping (:func:`mergeable_mappings`), in ksmd's walk
    order; ``gpfn`` is the position in that walk (the guest-RAM mapping comes first on QEMU, so
    for it this is the guest frame number up to the PCI hole). Columns: ``vm``, ``gpfn``,
    ``hash``, ``zero`` (the page table's), ``host_present``, ``host_thp``, ``host_zero_page``,
    ``host_ksm`` (:mod:`pagecore.vocab`'s host-view columns) and ``mapping`` (its start address).
    The host view is read before the contents; only present pages are read (reading a missing
    page would make the kernel map one); a missing page reads as zero to the guest.
    """
    from pagecore.pages.hashing import PageKey, hash_pages
    from pagecore.qemu.live import host_view

    key = key or PageKey.default()
    zh, _ = hash_pages(np.zeros((1, PAGE), np.uint8), key, threads=1)
    kpf = os.open("/proc/kpageflags", os.O_RDONLY)
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    parts, pos = [], 0
    try:
        for lo, hi in mergeable_mappings(pid):
            n = (hi - lo) // PAGE
            hv = host_view(pid, lo, n, kpf)
            h = np.full(n, zh[0], np.uint64)
            z = np.ones(n, bool)
            present = np.flatnonzero(hv["host_present"])
            if len(present):  # runs of present pages, at most 1024 pages per read
                brk = np.flatnonzero((np.diff(present) != 1) | (np.arange(1, len(present)) % 1024 == 0)) + 1
                for run in np.split(present, brk):
                    buf = np.empty((len(run), PAGE), np.uint8)
                    got = os.preadv(fd, [memoryview(buf).cast("B")], lo + int(run[0]) * PAGE)
                    if got != buf.nbytes:
                        raise CaptureError(f"/proc/{pid}/mem: short read at {lo + int(run[0]) * PAGE:#x}")
                    h[run], z[run] = hash_pages(buf, key, threads=1)
            parts.append(
                pd.DataFrame(
                    {"vm": name, "gpfn": np.arange(pos, pos + n, dtype=np.uint64), "hash": h, "zero": z, **hv,
                     "mapping": np.full(n, lo, np.uint64)}
                )
            )  # fmt: skip
            pos += n
    finally:
        os.close(fd)
        os.close(kpf)
    if not parts:
        raise CaptureError(f"process {pid} has no mergeable mapping (QEMU without mem-merge?)")
    return pd.concat(parts, ignore_index=True)


def host_hz() -> int:
    """The running kernel's tick rate (``CONFIG_HZ`` from ``/proc/config.gz`` or
    ``/boot/config-$(uname -r)``; ksmd's sleep is rounded up to whole jiffies), 0 when unknown
    (then the emulator does not round)."""
    import gzip

    for path, opener in ((Path("/proc/config.gz"), gzip.open), (Path(f"/boot/config-{os.uname().release}"), open)):
        with contextlib.suppress(OSError, ValueError, EOFError):
            with opener(path, "rt") as f:
                for line in f:
                    if line.startswith("CONFIG_HZ="):
                        return int(line.split("=", 1)[1])
    return 0


def thp_zero_pages_merge() -> bool:
    """False on kernels whose THP split maps all-zero subpages to the shared zero page (6.12+,
    detected by ``transparent_hugepage/shrink_underused``): there KSM never merges them."""
    return not THP_SPLIT_TO_ZEROPAGE.exists()


def walk_history(
    tables: Sequence[pd.DataFrame],
    *,
    use_zero_pages: bool = False,
    thp_zero_merge: bool | None = None,
    drop_zero: bool = False,
):
    """The emulator's input from the input tables (host-view columns), and what went where.

    Rules (what the real ksmd does, on this host's kernel):

    * a page not present on the host, or mapped to the kernel's zero page, is not walked (ksmd
      skips it: no rmap item, no ``pages_scanned``);
    * an **all-zero page inside a transparent huge page** (``host_thp``) is walked but never
      merged when ``use_zero_pages`` is off and the kernel maps the all-zero pieces of a split
      THP to the zero page (``thp_zero_merge`` False; default: :func:`thp_zero_pages_merge`):
      the unstable-tree match of two such pages splits the huge page and the pieces become zero
      page mappings instead of a KSM page. The emulator gets each a content of its own (it
      costs a visit, never merges; it ends in ``pages_unshared`` where the real one ends on the
      zero page or as volatile);
    * every other present page is walked with its content (non-zero pages inside a THP are
      merged after ksmd splits it, as on 4 KiB pages).

    ``drop_zero`` leaves every all-zero page out of the walk instead (the check's earlier rule:
    right counters, too short a walk).

    Returns ``(history, info)``: a :class:`~pagecore.sharing.pagehistory.PageHistory` (VMs in
    the order of ``tables``, pages in walk order) and page counts per class.
    """
    from pagecore.sharing.pagehistory import PageHistory

    if thp_zero_merge is None:
        thp_zero_merge = thp_zero_pages_merge()
    hs, zs, vms, gs, nevers = [], [], [], [], []
    info = {"pages": 0, "not_present": 0, "zero_page": 0, "walked": 0, "thp": 0, "zero": 0, "thp_zero_never_merged": 0}
    names = []
    for i, t in enumerate(tables):
        names.append(str(t["vm"].iloc[0]) if len(t) else f"vm{i}")
        present = t["host_present"].to_numpy(bool)
        zpage = t["host_zero_page"].to_numpy(bool)
        thp = t["host_thp"].to_numpy(bool)
        zero = t["zero"].to_numpy(bool)
        walk = present & ~zpage & ~(zero & drop_zero)
        never = walk & zero & thp & (not use_zero_pages) & (not thp_zero_merge)
        info["pages"] += len(t)
        info["not_present"] += int((~present).sum())
        info["zero_page"] += int((present & zpage).sum())
        info["walked"] += int(walk.sum())
        info["thp"] += int((walk & thp).sum())
        info["zero"] += int((walk & zero).sum())
        info["thp_zero_never_merged"] += int(never.sum())
        idx = np.flatnonzero(walk)
        hs.append(t["hash"].to_numpy(np.uint64)[idx])
        zs.append(zero[idx])
        vms.append(np.full(len(idx), i, np.int64))
        gs.append(t["gpfn"].to_numpy(np.uint64)[idx])
        nevers.append(never[idx])
    h, z, never = np.concatenate(hs), np.concatenate(zs), np.concatenate(nevers)
    uniq, content = np.unique(h, return_inverse=True)
    content = content.astype(np.int64)
    zc = int(content[np.argmax(z & ~never)]) if (z & ~never).any() else -1
    k = int(never.sum())
    content[never] = len(uniq) + np.arange(k)
    chash = np.concatenate([uniq, np.zeros(k, np.uint64)])  # contents of their own (hash unused)
    hist = PageHistory(names, np.concatenate(vms), np.concatenate(gs), content, chash, zc)
    return hist, info


def walk_thp(tables: Sequence[pd.DataFrame], *, use_zero_pages: bool = False, thp_zero_merge: bool | None = None):
    """Which of :func:`walk_history`'s pages (same arguments, same order) sit in transparent
    huge pages: a :class:`~pagecore.sharing.ksm.ThpBacking` (2 MiB block of the host virtual
    address — ``mapping`` + position in it — per page, and the all-zero pieces that are walked
    but never merged), or None when no walked page is THP-backed or the kernel merges all-zero
    THP pieces (then the stale zero node cannot arise). Tables without a ``mapping`` column
    (``pagecore live`` reads) take the guest frame number as the address."""
    from pagecore.sharing.ksm import ThpBacking

    if thp_zero_merge is None:
        thp_zero_merge = thp_zero_pages_merge()
    if use_zero_pages or thp_zero_merge:
        return None
    blocks, zeros = [], []
    for i, t in enumerate(tables):
        walk = t["host_present"].to_numpy(bool) & ~t["host_zero_page"].to_numpy(bool)
        thp = t["host_thp"].to_numpy(bool)
        gpfn = t["gpfn"].to_numpy(np.uint64).astype(np.int64)
        if "mapping" in t:
            mp = t["mapping"].to_numpy(np.uint64).astype(np.int64)
            first = pd.Series(gpfn).groupby(mp).transform("min").to_numpy()
            addr = mp + (gpfn - first) * 4096
        else:
            mp, addr = np.zeros(len(t), np.int64), gpfn * 4096
        key = pd.MultiIndex.from_arrays([np.full(len(t), i), mp, addr >> 21])
        blocks.append(np.where(thp, pd.factorize(key)[0], -1)[walk].astype(np.int64))
        zeros.append((thp & t["zero"].to_numpy(bool))[walk])
    # one id space over all processes
    offs = np.cumsum([0] + [int(b.max(initial=-1)) + 1 for b in blocks])
    block = np.concatenate([np.where(b >= 0, b + o, -1) for b, o in zip(blocks, offs, strict=False)])
    if not (block >= 0).any():
        return None
    return ThpBacking(block, np.concatenate(zeros))


# ------------------------------------------------------------------------------ the real KSM
def ksmd_pid() -> int | None:
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if (d / "comm").read_text().strip() == "ksmd":
                    return int(d.name)
    return None


def _ksmd_sched(pid: int | None) -> tuple[float, float, int] | None:
    """ksmd's cumulative run time and run-queue wait (seconds) and time slices
    (``/proc/PID/schedstat``), None if unreadable."""
    if pid is None:
        return None
    try:
        run, wait, slices = Path(f"/proc/{pid}/schedstat").read_text().split()[:3]
        return int(run) / 1e9, int(wait) / 1e9, int(slices)
    except (OSError, ValueError):
        return None


class Contaminated(CaptureError):
    """Another process's mergeable memory appeared while the real KSM ran."""


def foreign_mergeable(own: Sequence[int]) -> list[str]:
    """Other processes with mergeable memory (ksmd would scan and merge them too)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) in own or int(d.name) == os.getpid():
            continue
        try:
            stat = (d / "ksm_stat").read_text()
        except OSError:
            continue
        if "ksm_mergeable: yes" in stat or "ksm_merge_any: yes" in stat:
            with contextlib.suppress(OSError):
                out.append(f"{d.name} ({(d / 'comm').read_text().strip()})")
    return out


def wait_for_no_foreign(own: Sequence[int], wait_s: float) -> list[str]:
    """Wait up to ``wait_s`` for :func:`foreign_mergeable` to be empty; return what is left."""
    deadline = time.monotonic() + wait_s
    while True:
        others = foreign_mergeable(own)
        if not others or time.monotonic() >= deadline:
            return others
        time.sleep(2.0)


def _refuse_foreign(session: KsmSession) -> None:
    others = foreign_mergeable(session.guests)
    if others:
        _log(f"waiting up to {session.foreign_wait_s:.0f} s for {', '.join(others)} to end")
        others = wait_for_no_foreign(session.guests, session.foreign_wait_s)
    if others:
        raise CaptureError(
            f"other processes have mergeable memory (KSM would merge theirs too), still after "
            f"{session.foreign_wait_s:.0f} s: {', '.join(others)}; run the check when they have ended"
        )


def sample_real_ksm(
    session: KsmSession,
    settings: KsmSettings,
    *,
    timeout_s: float = 180.0,
    settle_scans: int = 2,
    sample_s: float = SAMPLE_S,
    foreign_every_s: float = 0.5,
) -> pd.DataFrame:
    """Turn the real KSM on with ``settings``, sample its counters until ``settle_scans`` full
    scans end with unchanged pages_shared/pages_sharing/ksm_zero_pages (or ``timeout_s``), stop
    it (``run=0``, merged pages stay). Columns: ``t`` (s since ``run=1``), :data:`COUNTERS`,
    ``ksmd_cpu_s``, ``ksmd_wait_s`` (run-queue wait), ``ksmd_slices`` (NaN if unreadable).

    Every ``foreign_every_s`` it looks for other processes with mergeable memory; if one
    appeared, KSM unmerges everything at once (``run=2``: theirs is given back). If a full
    scan had already ended unchanged (after at least three), the samples up to the previous
    check are returned (``attrs["truncated"]`` says why); otherwise :class:`Contaminated`.
    """
    session.set(
        pages_to_scan=settings.pages_to_scan, sleep_millisecs=settings.sleep_millisecs,
        use_zero_pages=settings.use_zero_pages, smart_scan=settings.smart_scan,
        max_page_sharing=settings.max_page_sharing, advisor_mode="none",
    )  # fmt: skip
    _refuse_foreign(session)
    kpid = ksmd_pid()
    rows = []
    c0 = counters(session.ksm_dir)
    s0 = _ksmd_sched(kpid)
    t0 = time.monotonic()
    session.set(run=1)
    prev_key, prev_scans = None, c0["full_scans"]
    settled, next_foreign = 0, foreign_every_s
    clean = (0, 0, 0)  # at the last check that found no other mergeable process: rows, settled, full scans
    truncated = None
    while True:
        c = counters(session.ksm_dir)
        sc = _ksmd_sched(kpid)
        t = time.monotonic() - t0
        d = (np.nan,) * 3 if sc is None or s0 is None else tuple(a - b for a, b in zip(sc, s0, strict=True))
        rows.append({"t": t, **c, "ksmd_cpu_s": d[0], "ksmd_wait_s": d[1], "ksmd_slices": d[2]})
        key = (c["pages_shared"], c["pages_sharing"], c.get("ksm_zero_pages", 0))
        if c["full_scans"] != prev_scans:  # a full scan ended since the last sample
            settled = settled + 1 if key == prev_key else 0
            prev_key, prev_scans = key, c["full_scans"]
        if (settled >= settle_scans and c["full_scans"] - c0["full_scans"] >= 3) or t > timeout_s:
            break
        if t >= next_foreign:
            next_foreign = t + foreign_every_s
            others = foreign_mergeable(session.guests)
            if others:
                session.set(run=2)  # give theirs back at once
                why = f"{', '.join(others)} started with mergeable memory at {t:.1f} s"
                if clean[1] >= 1 and clean[2] - c0["full_scans"] >= 3:
                    rows, truncated = rows[: clean[0]], why  # settled before: keep the clean part
                    break
                raise Contaminated(why)
            clean = (len(rows), settled, c["full_scans"])
        time.sleep(sample_s)
    session.set(run=0)
    df = pd.DataFrame(rows)
    for k in ("full_scans", "pages_scanned", "pages_skipped"):  # counters that never reset: from 0
        if k in df:
            df[k] -= c0[k]
    df.attrs["settled"] = settled >= settle_scans if truncated is None else clean[1] >= 1
    df.attrs["truncated"] = truncated
    df.attrs["foreign_after"] = foreign_mergeable(session.guests)
    return df


def unmerge(session: KsmSession, timeout_s: float = 120.0) -> None:
    """``run=2`` (break every KSM page of our guests), then ``run=0``."""
    session.set(run=2)
    deadline = time.monotonic() + timeout_s
    while counters(session.ksm_dir)["pages_shared"] and time.monotonic() < deadline:
        time.sleep(0.1)
    session.set(run=0)


MADV_COLLAPSE = 25
_SYS_PROCESS_MADVISE = 440  # x86_64, arm64 (since Linux 5.10)


def collapse_thp(pid: int, ranges: Sequence[tuple[int, int]]) -> str | None:
    """``process_madvise(MADV_COLLAPSE)`` over ``ranges`` of ``pid``: huge pages again after KSM split
    them (zero pages become real zero-filled pieces again). Returns None, or why it failed."""

    class IoVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    libc = ctypes.CDLL(None, use_errno=True)
    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError) as exc:
        return f"pidfd_open: {exc}"
    try:
        for lo, hi in ranges:
            lo2, hi2 = (lo + (1 << 21) - 1) & ~((1 << 21) - 1), hi & ~((1 << 21) - 1)
            if hi2 <= lo2:
                continue
            iov = IoVec(lo2, hi2 - lo2)
            r = libc.syscall(_SYS_PROCESS_MADVISE, pidfd, ctypes.byref(iov), 1, MADV_COLLAPSE, 0)
            if r < 0:
                return f"process_madvise(MADV_COLLAPSE): {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(pidfd)
    return None


# ------------------------------------------------------------------------------ the harness
def _final(df_or_dict) -> dict:
    d = df_or_dict.iloc[-1].to_dict() if isinstance(df_or_dict, pd.DataFrame) else df_or_dict
    return {k: int(d[k]) for k in COUNTERS if k in d}


def _rel(pred: float, real: float) -> float | None:
    return None if real == 0 else round((pred - real) / real, 4)


def _log(msg: str) -> None:
    print(f"ksmcheck {time.strftime('%H:%M:%S')}: {msg}", file=sys.stderr, flush=True)


def _calibration_window(real: pd.DataFrame) -> pd.DataFrame:
    """The samples up to the first one at the steady pages_sharing (the phase that sets the time
    to converge; the settling scans after it visit pages that no longer merge)."""
    v = real["pages_sharing"].to_numpy()
    k = int(np.argmax(v >= v[-1])) if v[-1] > 0 else len(v) - 1
    return real.iloc[: max(k + 1, min(2, len(real)))]


def _sched_summary(w: pd.DataFrame, pts: int) -> dict:
    """ksmd's time per wake-up in the window: running, waiting for a CPU, time slices."""
    wakeups = (w["pages_scanned"].iloc[-1] - w["pages_scanned"].iloc[0]) / pts
    if wakeups <= 0 or w["ksmd_cpu_s"].isna().any():
        return {}
    return {
        "run_ms_per_wakeup": round(1000 * (w["ksmd_cpu_s"].iloc[-1] - w["ksmd_cpu_s"].iloc[0]) / wakeups, 3),
        "wait_ms_per_wakeup": round(1000 * (w["ksmd_wait_s"].iloc[-1] - w["ksmd_wait_s"].iloc[0]) / wakeups, 3),
        "slices_per_wakeup": round(float(w["ksmd_slices"].iloc[-1] - w["ksmd_slices"].iloc[0]) / wakeups, 3),
    }


def _merges_by_scan(real: pd.DataFrame) -> list[int]:
    """pages_sharing gained during each full scan (the last sample of each scan)."""
    last = real.groupby("full_scans")["pages_sharing"].last().to_numpy()
    return [int(x) for x in np.diff(np.concatenate([[0], last]))]


def compare_with_emulator(
    session: KsmSession,
    read_input: Callable[[], Sequence[pd.DataFrame]],
    settings: Sequence[KsmSettings],
    *,
    calibrate_on: int = 0,
    between: Callable[[int], str | None] | None = None,
    thp_zero_merge: bool | None = None,
    timeout_s: float = 180.0,
    fraction: float = 0.9,
    timelines: dict | None = None,
    attempts: int = 5,
) -> dict:
    """The one harness: real KSM against the emulator, per setting, on the same input.

    Parameters
    ----------
    session : KsmSession
        Open session (settings saved, restored on leaving).
    read_input : callable
        Returns the input: one table per process in ksmd's walk order (columns ``vm``, ``gpfn``,
        ``hash``, ``zero``, ``host_present``, ``host_thp``, ``host_zero_page``; e.g.
        :func:`read_walk` of paused guests, or ``pagecore live`` tables). Called once per setting,
        before KSM is turned on.
    settings : sequence of KsmSettings
        Run in order (``scan_us_per_page`` ignored: it is calibrated).
    calibrate_on : int
        The setting whose measured ksmd cost (:func:`~pagecore.sharing.ksmtime.calibrate_scan_cost`)
        is used to predict every other setting's time to converge.
    between : callable, optional
        Called with the setting's index after it was measured and KSM unmerged (e.g. collapse
        the guests' huge pages); returns a note or None.
    timelines : dict, optional
        Filled with ``{(index, "real"|"predicted"|"input"): DataFrame}``.
    attempts : int
        Tries per setting: a run during which another process's mergeable memory appears is
        abandoned (:class:`Contaminated`), unmerged and repeated.

    Returns
    -------
    dict
        ``settings``: one record per setting (input counts, real and predicted final counters,
        their relative errors, real and predicted time to ``fraction`` of the steady
        ``pages_sharing``: nominal (no scan cost) and with the cost fitted on each setting,
        ``cost_of_J``; ``time_error_calibrated`` uses ``calibrate_on``'s); ``calibration``: the
        fitted cost per setting.
    """
    from pagecore.sharing.ksm import emulate_ksm
    from pagecore.sharing.ksmtime import ScanCost, calibrate_scan_cost, time_to_fraction

    runs, tables_of, thp_of = [], [], []
    hz = host_hz()
    settings = [replace(s, hz=s.hz or hz) for s in settings]  # ksmd's sleep in whole jiffies
    for i, s in enumerate(settings):
        notes = []
        for attempt in range(attempts):
            tables = list(read_input())
            hist, info = walk_history(tables, use_zero_pages=s.use_zero_pages, thp_zero_merge=thp_zero_merge)
            thp = walk_thp(tables, use_zero_pages=s.use_zero_pages, thp_zero_merge=thp_zero_merge)
            info["thp_huge_pages"] = 0 if thp is None else len(np.unique(thp.block[thp.block >= 0]))
            _log(f"setting {i} ({s.pages_to_scan}:{s.sleep_millisecs}), attempt {attempt + 1}: {info['walked']} pages")
            try:
                real = sample_real_ksm(session, s, timeout_s=timeout_s)
            except Contaminated as exc:
                notes.append(f"attempt {attempt + 1} abandoned: {exc}")
                _log(notes[-1])
                real = None
            unmerge(session)
            note = between(i) if between is not None else None
            if note:
                notes.append(note)
            if real is not None:
                break
        if real is None:
            raise CaptureError(f"setting {i}: every attempt was disturbed: " + "; ".join(notes))
        tables_of.append(tables)
        thp_of.append(thp)
        runs.append((s, hist, info, real, notes))
    costs, costs_cpu = [], []
    for s, _h, _i, real, _n in runs:
        w = _calibration_window(real)
        args = (w["t"], w["pages_scanned"], s.pages_to_scan, 1000.0 * s.sleep_s)
        costs.append(calibrate_scan_cost(*args))
        cpu = w["ksmd_cpu_s"].to_numpy() if w["ksmd_cpu_s"].notna().all() else None
        costs_cpu.append(calibrate_scan_cost(*args, cpu) if cpu is not None else costs[-1])
    out = []
    for i, (s, hist, info, real, note) in enumerate(runs):
        preds = {}
        cands = [("nominal", ScanCost(0.0, 0.0, "none"))] + [(f"cost_of_{j}", c) for j, c in enumerate(costs)]
        cands += [(f"cpu_wakeup_cost_of_{j}", c) for j, c in enumerate(costs_cpu)]
        thp = thp_of[i]
        for label, cost in cands:
            st = replace(s, scan_us_per_page=cost.scan_us_per_page(s.pages_to_scan))
            r = emulate_ksm(hist, st, thp=thp, sample_s=0.001)
            preds[label] = r
            if timelines is not None and label == f"cost_of_{calibrate_on}":
                timelines[(i, "predicted")] = r.timeline
        preds["calibrated"] = preds[f"cost_of_{calibrate_on}"]
        # the same without the stale zero node (ThpBacking), for comparison
        st = replace(s, scan_us_per_page=costs[calibrate_on].scan_us_per_page(s.pages_to_scan))
        preds["no_stale_node"] = emulate_ksm(hist, st, sample_s=0.001) if thp is not None else preds["calibrated"]
        if timelines is not None:
            timelines[(i, "real")] = real
            timelines[(i, "input")] = pd.concat(tables_of[i], ignore_index=True)
        rf, pf = _final(real), preds["calibrated"].final
        hist0, _ = walk_history(tables_of[i], use_zero_pages=s.use_zero_pages, drop_zero=True)
        p0 = emulate_ksm(hist0, replace(s, scan_us_per_page=costs[calibrate_on].scan_us_per_page(s.pages_to_scan)))
        t_real = time_to_fraction(real["t"], real["pages_sharing"], fraction)
        t_pred = {k: time_to_fraction(r.timeline["t"], r.timeline["pages_sharing"], fraction) for k, r in preds.items()}
        t_pred.pop("calibrated")
        rec = {
            "settings": {k: v for k, v in asdict(s).items() if k != "scan_us_per_page"},
            "input": info,
            "real": rf,
            "real_settled": bool(real.attrs.get("settled")),
            "real_truncated": real.attrs.get("truncated"),
            "foreign_mergeable_after": real.attrs.get("foreign_after", []),
            "predicted": {k: pf[k] for k in COUNTERS if k in pf},
            "predicted_without_zero_pages": {
                **{k: p0.final[k] for k in COUNTERS if k in p0.final},
                "seconds_to_converge": round(p0.seconds_to_converge, 3),
            },
            "error": {k: _rel(pf[k], rf[k]) for k in ("pages_shared", "pages_sharing") if k in rf},
            # the emulator leaves the never-merged THP zero pages in its unstable tree; the real
            # ksmd ends them on the zero page or as volatile rmap items
            "error_unshared_without_thp_zero": _rel(
                pf["pages_unshared"] - info["thp_zero_never_merged"], rf.get("pages_unshared", 0)
            ),
            f"seconds_to_{int(fraction * 100)}pct": {
                "real": round(t_real, 3),
                **{f"predicted_{k}": round(v, 3) for k, v in t_pred.items()},
            },
            "time_error_calibrated": _rel(t_pred[f"cost_of_{calibrate_on}"], t_real),
            "time_error_by_cost_of": {j: _rel(t_pred[f"cost_of_{j}"], t_real) for j in range(len(costs))},
            "time_error_cpu_wakeup_model": {
                j: _rel(t_pred[f"cpu_wakeup_cost_of_{j}"], t_real) for j in range(len(costs))
            },
            "real_merges_by_full_scan": _merges_by_scan(real),
            "predicted_merges_by_full_scan": _merges_by_scan(preds["calibrated"].timeline),
            "time_error_calibrated_without_stale_node": _rel(t_pred["no_stale_node"], t_real),
            "time_error_nominal": _rel(t_pred["nominal"], t_real),
            "calibrated_on": calibrate_on,
            "real_seconds": round(float(real["t"].iloc[-1]), 2),
            "real_samples": len(real),
        }
        if note:
            rec["notes"] = note
        out.append(rec)
    return {
        "settings": out,
        "calibration": [
            {
                "pages_to_scan": s.pages_to_scan,
                "sleep_millisecs": s.sleep_millisecs,
                "hz": s.hz,
                "window_s": round(float(_calibration_window(real)["t"].iloc[-1]), 3),
                "per_page": asdict(c),
                "cpu_wakeup": asdict(cc),
                "period_ms": round(c.period_ms(s.pages_to_scan, 1000.0 * s.sleep_s), 3),
                **_sched_summary(_calibration_window(real), s.pages_to_scan),
            }
            for (s, _h, _i, real, _n), c, cc in zip(runs, costs, costs_cpu, strict=True)
        ],
    }


# ------------------------------------------------------------------------------ guests
@dataclass
class _Guest:
    name: str
    proc: object
    qmp: QMP
    accel: str
    boot_s: float
    workload: str
    notes: list = field(default_factory=list)


def boot_scenario(
    session: KsmSession, workloads: Sequence[str], tmp: Path, *, ram_mb: int = 128, accel: str = "auto"
) -> list[_Guest]:
    """Boot one guest per workload (the first alone to find the accelerator, the rest at once),
    record each with the session, pause them all."""
    qemu = _which("qemu-system-x86_64", "apt-get install qemu-system-x86")
    kernel = newest_kernel()
    guests: list[_Guest | None] = [None] * len(workloads)
    errors: list[str] = []
    lock = threading.Lock()

    def boot(i: int, use: str) -> None:
        w = workloads[i]
        d = tmp / f"guest{i:02d}-{w}"
        d.mkdir(parents=True, exist_ok=True)
        initrd = build_workload_initramfs(d / "initramfs.cpio", WORKLOADS[w])
        notes: list[str] = []
        proc = None

        def started(pid: int) -> None:  # recorded before the boot is waited for: a check killed then
            with lock:  # (SIGKILL) left a QEMU running that its next run did not know to end
                session.add_guest(pid)

        try:
            proc, sock, used, secs = boot_guest(
                qemu, use, kernel, initrd, ram_mb, d, DEFAULT_APPEND, 30, 600, notes, on_start=started
            )
            qmp = QMP(sock)
            qmp.cmd("stop")
            guests[i] = _Guest(f"g{i}-{w}", proc, qmp, used, secs, w, notes)
        except Exception as exc:  # reported once every thread ended; our QEMU is ended
            if proc is not None:
                _kill(proc)
            with lock:
                errors.append(f"guest {i} ({w}): {exc}")
        finally:
            done[i].set()

    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise CaptureError(f"unknown workload {unknown[0]!r}; known: {', '.join(WORKLOADS)}")

    done = [threading.Event() for _ in workloads]
    started: list[int] = []
    try:
        boot(0, accel)
        if guests[0] is not None:
            threads = [threading.Thread(target=boot, args=(i, guests[0].accel)) for i in range(1, len(workloads))]
            for i, th in enumerate(threads, 1):
                th.start()
                started.append(i)
            for th in threads:
                th.join()
    except BaseException:  # SIGTERM or Ctrl-C while booting: no guest may outlive the check
        for i in started:  # (an interrupted join() may return at once for a live thread: wait on events)
            done[i].wait()  # a guest still booting is ended once it is up
        end_guests([g for g in guests if g is not None])
        raise
    booted = [g for g in guests if g is not None]
    if errors:
        end_guests(booted)
        raise CaptureError("; ".join(errors))
    # ksmd walks processes in the order their memory became mergeable: QEMU start order
    return sorted(booted, key=lambda g: _proc_start(g.proc.pid) or 0)


def end_guests(guests: Sequence[_Guest]) -> None:
    for g in guests:
        with contextlib.suppress(Exception):
            g.qmp.close()
        _kill(g.proc)


def run_scenarios(
    scenarios: dict[str, Sequence[str]],
    settings: Sequence[KsmSettings],
    *,
    ram_mb: int = 128,
    accel: str = "auto",
    calibrate_on: int = 0,
    timeout_s: float = 180.0,
    live_read: bool = False,
    state_file: Path = STATE_FILE,
    work_dir: str | None = None,
    timelines_dir: Path | None = None,
    foreign_wait_s: float = 300.0,
    collapse: bool = True,
) -> dict:
    """Boot each scenario's guests, run :func:`compare_with_emulator` on them, end them.

    ``collapse`` False leaves the guests' RAM as KSM's splits and unmerging left it between
    settings (4 KiB pages, all-zero pieces on the zero page), instead of huge pages again.
    """
    why = unavailable_reason()
    if why:
        raise CaptureError(f"cannot check against real KSM: {why}")
    if work_dir is None:
        remove_dead_work_dirs()
    tmp = Path(work_dir or tempfile.mkdtemp(prefix=f"ksmcheck-{os.getpid()}-"))
    result: dict = {"kernel": os.uname().release, "thp_zero_pages_merge": thp_zero_pages_merge(), "scenarios": {}}
    try:
        with KsmSession(state_file, foreign_wait_s=foreign_wait_s) as session:
            result["recovered_leftovers"] = session.recovered
            for name, workloads in scenarios.items():
                _refuse_foreign(session)
                _log(f"scenario {name}: booting {', '.join(workloads)}")
                guests = boot_scenario(session, workloads, tmp / name, ram_mb=ram_mb, accel=accel)
                try:

                    def read_input(guests=guests, name=name):
                        if live_read:
                            return [_live_table(g, tmp / name / f"{g.name}.parquet") for g in guests]
                        return [read_walk(g.proc.pid, g.name) for g in guests]

                    def between(i, guests=guests):
                        if not collapse:
                            return "huge pages left split (collapse off)"
                        for g in guests:
                            why = collapse_thp(g.proc.pid, mergeable_mappings(g.proc.pid))
                            if why:
                                return f"huge pages not collapsed again: {why}"
                        return None

                    tl: dict = {}
                    r = compare_with_emulator(
                        session, read_input, settings, calibrate_on=calibrate_on, between=between,
                        timeout_s=timeout_s, timelines=tl,
                    )  # fmt: skip
                    r["guests"] = [{"name": g.name, "workload": g.workload, "accel": g.accel,
                                    "boot_s": round(g.boot_s, 1)} for g in guests]  # fmt: skip
                    result["scenarios"][name] = r
                    if timelines_dir is not None:
                        _save_timelines(tl, Path(timelines_dir), name)
                finally:
                    end_guests(guests)
        result["settings_restored"] = session.restored
    finally:
        if work_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def remove_dead_work_dirs(parent: str | None = None) -> list[Path]:
    """Remove the temporary directories (``ksmcheck-PID-*``: initramfs, console logs) of checks that
    are gone without cleaning up (SIGKILL); only this user's, only of PIDs no longer running."""
    gone = []
    for d in Path(parent or tempfile.gettempdir()).glob("ksmcheck-*-*"):
        pid = d.name.split("-")[1]
        with contextlib.suppress(OSError):
            if pid.isdigit() and d.is_dir() and not d.is_symlink() and d.stat().st_uid == os.geteuid():
                if _proc_start(int(pid)) is None:
                    shutil.rmtree(d)
                    gone.append(d)
    return gone


def _live_table(g: _Guest, out: Path) -> pd.DataFrame:
    """The input from a paused ``pagecore live`` read (QMP-located RAM blocks, guest-physical order)."""
    import pyarrow.parquet as pq

    from pagecore.qemu.live import locate_by_qmp, read_guest

    guest = locate_by_qmp(g.proc.pid, g.qmp)
    guest.name = g.name
    read_guest(guest, out, qmp=g.qmp, pause=True, max_mb_per_s=None)
    return pq.read_table(out).to_pandas().sort_values("gpfn", kind="stable").reset_index(drop=True)


def _save_timelines(tl: dict, out: Path, scenario: str) -> None:
    """One scenario's timelines into ``out``, each file written atomically and all of them
    renamed together (an interrupted save leaves none, and no half-written CSV)."""
    from pagecore._util import all_or_nothing, atomic_path

    with all_or_nothing():
        for (i, kind), df in tl.items():
            if kind == "input":  # the pages and their host view, for replaying the comparison offline
                with atomic_path(out / f"{scenario}.setting{i}.input.parquet") as tmp:
                    df.to_parquet(tmp, index=False)
            else:
                with atomic_path(out / f"{scenario}.setting{i}.{kind}.csv") as tmp:
                    df.to_csv(tmp, index=False)


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
    """One setting on ``n`` identical guests (the check before settings and scenarios existed).

    Returns the result of :func:`run_scenarios` flattened for that one case: ``real``,
    ``predicted`` (THP rule of :func:`walk_history`), ``error``, ``seconds_to_90pct``,
    ``settings_restored``.
    """
    smart = False if smart_scan is None else smart_scan
    s = KsmSettings(pages_to_scan=pages_to_scan, sleep_millisecs=sleep_ms, use_zero_pages=use_zero_pages,
                    smart_scan=smart)  # fmt: skip
    r = run_scenarios({"identical": ("base",) * n}, [s], ram_mb=ram_mb, accel=accel, timeout_s=timeout_s,
                      live_read=live_read, work_dir=work_dir)  # fmt: skip
    rec = r["scenarios"]["identical"]["settings"][0]
    return {**rec, "settings_restored": r["settings_restored"], "kernel": r["kernel"]}


def _parse_setting(text: str, smart: bool, uzp: bool) -> KsmSettings:
    m = re.fullmatch(r"(\d+):(\d+)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"a setting is PAGES_TO_SCAN:SLEEP_MS, got {text!r}")
    return KsmSettings(pages_to_scan=int(m.group(1)), sleep_millisecs=int(m.group(2)), smart_scan=smart,
                       use_zero_pages=uzp)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pagecore qemu ksmcheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all",
                   help="identical (2 guests, one workload), mixed (3 guests, different workloads) or all")  # fmt: skip
    p.add_argument("--vms", type=int, help="identical guests of the base workload (replaces --scenario)")
    p.add_argument("--ram-mb", type=int, default=128, help="guest RAM in MB (default 128)")
    p.add_argument("--settings", default="1000:20,200:20",
                   help="KSM settings PAGES_TO_SCAN:SLEEP_MS, comma-separated (default 1000:20,200:20)")  # fmt: skip
    p.add_argument("--calibrate-on", type=int, default=0, help="index of the setting the scan cost is fitted on")
    p.add_argument("--use-zero-pages", action="store_true", help="use_zero_pages=1 during the check")
    p.add_argument(
        "--smart-scan",
        action="store_true",
        help="smart_scan=1 during the check (default 0)",
    )
    p.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto", help="accelerator (default auto)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for KSM to settle (default 180)")
    p.add_argument("--live", action="store_true", help="input from a paused `pagecore live` read")
    p.add_argument("--state-file", type=Path, default=STATE_FILE, help=f"saved settings (default {STATE_FILE})")
    p.add_argument(
        "--timelines", type=Path, help="write real and predicted counter timelines (CSV) and the inputs (Parquet) here"
    )
    p.add_argument(
        "--no-collapse",
        action="store_true",
        help="between settings, leave guest RAM split into 4 KiB pages (default: collapse into huge pages again)",
    )
    args = p.parse_args(argv)
    try:
        settings = [_parse_setting(x, args.smart_scan, args.use_zero_pages) for x in args.settings.split(",")]
    except (argparse.ArgumentTypeError, ValueError) as exc:
        p.error(f"--settings: {exc}")
    if not 0 <= args.calibrate_on < len(settings):
        p.error(f"--calibrate-on must index one of the {len(settings)} settings")
    if args.vms is not None and args.vms < 1:
        p.error(f"--vms must be at least 1, got {args.vms}")
    if not 0 < args.timeout < float("inf"):  # NaN never timed out; <= 0 stopped before KSM had scanned
        p.error(f"--timeout must be a finite number of seconds > 0, got {args.timeout}")
    if args.ram_mb < 1:
        p.error(f"--ram-mb must be at least 1, got {args.ram_mb}")
    if args.vms:
        scen = {"identical": ("base",) * args.vms}
    else:
        scen = dict(SCENARIOS) if args.scenario == "all" else {args.scenario: SCENARIOS[args.scenario]}
    try:
        r = run_scenarios(
            scen, settings, ram_mb=args.ram_mb, accel=args.accel, calibrate_on=args.calibrate_on,
            timeout_s=args.timeout, live_read=args.live, state_file=args.state_file, timelines_dir=args.timelines,
            collapse=not args.no_collapse,
        )  # fmt: skip
    except CaptureError as exc:
        print(f"pagecore: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(r, indent=2))
    if r.get("settings_restored") is False:  # said only inside the JSON, the run exited 0
        print(
            f"pagecore: error: the KSM settings found were not all restored; they are saved in {args.state_file} "
            "and the next run restores them (or restore /sys/kernel/mm/ksm by hand, then remove it)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
