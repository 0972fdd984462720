"""Your VMs on a host: what each mechanism wins, how many VMs fit, how long until it pays (issue 15).

``pagecore host`` joins the two halves of pagecore: the VMs' *real page contents* (page tables,
or dumps hashed on the way) drive the sharing emulators and a steady-state memory-manager model
under one of four policies, and the answer is given in the mechanism keys of
:mod:`pagecore.vocab`.

Policies (:data:`POLICIES`)
---------------------------
``esx2002``
    The paper's manager: content-based sharing across all VMs (the ESX scanner of §4, at ESX
    2.x's ``Mem.ShareScanVM``/``ShareScanTotal`` rates), ballooning of idle memory chosen by the
    idle memory tax (τ = 0.75, §5.2, at most ``Mem.CtlMaxPercent`` = 65 % of a VM), the paper's
    free-memory states (swapping starts below the hard state, 2 % of memory, §6.3).
``esxi``
    Today's ESXi defaults where they differ: ``Mem.ShareForceSalting = 2`` (every VM its own
    salt, so pages share only within a VM, zero pages included), guest memory backed by 2 MiB
    large pages that are broken (and their 4 KiB pages shared) only when free memory falls below
    the vSphere 6+ *high* state (400 % of minFree), broken greedily where they win most
    (:func:`pagecore.sharing.largepages.large_page_savings`), swapping below *hard* (32 % of
    minFree), and pages about to be swapped compressed first into a cache of
    ``Mem.MemZipMaxPct`` = 10 % of the VM (when the tables carry ``csize_<alg>`` columns:
    ``pagecore hash --compress lz4``).
``kvm-ksm``
    A Linux host: KSM over every eligible page with its sysfs settings (the Numba emulator
    :mod:`pagecore.sharing.ksm`), no idle tax, no ballooning unless a host policy is named
    (``kvm_balloon: none`` by default; ``mom``: oVirt MOM's auto-balloon rule, :data:`MOM` — once
    host free memory is below 20 %, each guest gives its free memory above 20 % of its size, its
    ``guest_free`` pages when known, else its idle part). Guest RAM is THP-backed: an all-zero
    2 MiB-aligned region of a guest is one huge page that KSM does not merge until it is split (measured on real
    guests, formats-ksm-esxi.md), so its pages cost memory and win nothing; with the host view
    (``host_*`` columns from ``pagecore live``) pages not present or mapped to the zero page cost
    nothing and are not KSM candidates, and ``host_thp`` replaces the all-zero-region rule.
    The KSM emulator gets the huge pages (:func:`thp_backing`), so its timeline follows the
    stale zero node of Linux 6.12+ that the real-KSM check validated (merges one full scan late
    while an all-zero piece's tree node is stale; :class:`pagecore.sharing.ThpBacking`).
    Swapping starts below the low watermark (``min_free_kbytes`` = √(16 × memory in KiB) plus
    the larger of a quarter of it and ``watermark_scale_factor`` = 0.1 % of memory,
    mm/page_alloc.c; :func:`min_free_kvm_mb`).
``cooperative``
    A Linux host whose guests talk to it (issue 20): virtio-balloon free page reporting discards
    the guests' free memory in whole 2 MiB chunks (:func:`pagecore.experiments.cooperative.
    free_report`: the kernel's order, zone watermark and delay), then KSM acts on what is left
    (as ``kvm-ksm``) and the balloon driver may take idle memory (a cooperating guest has one).
    It needs each guest's free-page list (the ``guest_free`` column, from ``pagecore qemu
    freereport`` or a synthetic guest's content model) and refuses without it.

Model (all in pages; one line per quantity, documented in README "Your VMs on a host")
--------------------------------------------------------------------------------------
For ``N`` VMs of the mix (the input VMs cycled; see :func:`replicate`) on ``H`` MiB:

* ``touched_i``: pages of VM ``i`` that cost memory before any mechanism acts (every row of
  its table, or the host view's present, non-zero-page rows);
* sharing savings ``S`` per mechanism (``zero``, ``share_intra``, ``share_inter``) from the
  exact content counts of the N VMs (hash then byte comparison when the dumps are there):
  what the scanner or KSM reaches once converged (the emulators are run too, for the time it
  takes; the test suite checks that they converge to these counts);
* capacity ``C = H − hypervisor_mb − N·vm_overhead_mb − free floor`` (the free memory below
  which the policy swaps);
* ``demand = Σ touched_i − S``; if it exceeds ``C`` and the policy balloons, the balloon takes
  idle memory (``(1 − active_i)`` of VM ``i``'s pages, at most 65 % of it, never below its
  reservation) from the VMs the idle-tax allocation (:class:`pagecore.sim.allocation.IdleTax`)
  chooses; what still does not fit is compressed (``esxi``) or swapped.
* **fits** when nothing is swapped after every VM has booted; the boot-time swap (every VM
  touching its pages before any sharing is found or any balloon driver runs) is reported
  separately. The consolidation answer is the largest ``N`` that fits (found by sweeping).
* ``idle_tax``: memory the tax moves between VMs (half the L1 distance between the allocation
  with τ and with τ = 0), a *reallocation*, never added to the savings.

Time to 90 % and CPU cost come from running the policy's scanner on the input VMs (or the
``emulate_vms`` first VMs of the mix): the ESX scanner (:mod:`pagecore.sharing.scanner`, salted
per VM for ``esxi``) or the KSM emulator, reporting pages hashed or compared per second of
scanning and the time to reach 90 % of the converged savings.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pagecore._defaults import COMPRESS_ALGORITHMS, MAX_VMS
from pagecore._util import run_tmpdir
from pagecore.errors import ConfigError, InputError, not_a_file
from pagecore.vocab import HOST_VIEW_COLUMNS, MECHANISMS

PAGE_KIB = 4
PAGE_BYTES = 4096
PAGES_PER_MIB = 256
REGION_PAGES = 512  # 2 MiB large page on x86-64
#: how far a VM's ``size_mb`` may be from its page table's size, as a fraction of it (a dump may
#: lack a few of the VM's pages: a kdump's excluded pages, firmware holes); at least one page
SIZE_SLACK = 0.01

POLICIES = ("esx2002", "esxi", "kvm-ksm", "cooperative")
#: What ``pagecore host`` runs unless told otherwise (``cooperative`` needs guest free-page lists).
DEFAULT_POLICIES = ("esx2002", "esxi", "kvm-ksm")

#: Named activity profiles: fraction of a VM's pages active (touched within a sampling period).
#: ASSUMED round values for operators without traces; pass a trace or "idle:F" for your own.
ACTIVITY_PROFILES = {"idle": 0.05, "light": 0.25, "busy": 0.9}


# ------------------------------------------------------------------------------ inputs
@dataclass
class HostVM:
    """One VM of the mix: its pages and what the manager knows about it."""

    name: str
    frame: pd.DataFrame  # vm, gpfn, hash, zero (+ host_*, csize_*, guest_free) — one row per page
    size_mb: float
    reservation_mb: float = 0.0
    limit_mb: float | None = None
    shares: float | None = None
    active: float = ACTIVITY_PROFILES["light"]
    activity: str = "light"
    source: str = ""
    meta: dict = field(default_factory=dict, repr=False)  # the page table's metadata (hash, key, page size)
    cache: dict = field(default_factory=dict, repr=False)  # per-VM results reused across mix sizes

    def __post_init__(self):
        if self.shares is None:
            self.shares = 10.0 * self.size_mb  # ESX 2.x "normal": 10 shares per MB
        if self.limit_mb is None:
            self.limit_mb = self.size_mb


#: Most pages of one replicated mix that ``host`` evaluates or emulates: 2^30 pages = 4 TiB of
#: guest memory, already about 31 GiB of working arrays (31 bytes a page in :func:`page_set`).
MAX_MIX_PAGES = 1 << 30


def mix_pages(vms: list[HostVM], n: int) -> int:
    """Pages of the first ``n`` VMs of the mix (the input VMs cycled, :func:`replicate`)."""
    sizes = [len(v.frame) for v in vms]
    full, rest = divmod(n, len(sizes))
    return full * sum(sizes) + sum(sizes[:rest])


def check_mix_size(vms: list[HostVM], n: int, option: str) -> None:
    """Refuse, naming ``option``, a mix of ``n`` VMs over :data:`MAX_MIX_PAGES` pages."""
    pages = mix_pages(vms, n)
    if pages > MAX_MIX_PAGES:
        lo, hi = 0, n  # the largest mix within the bound (pages grow with n)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if mix_pages(vms, mid) <= MAX_MIX_PAGES else (lo, mid)
        raise ConfigError(
            f"host: a mix of {n:,} of these VMs holds {pages:,} pages ({pages / (1 << 18):,.0f} GiB); pagecore "
            f"evaluates at most {MAX_MIX_PAGES:,} pages ({MAX_MIX_PAGES >> 18:,} GiB) at once: "
            + (f"give {option} {lo:,} or less" if lo else "give smaller VMs")
        )


#: ``verify`` values: byte-compare pages with equal hashes always, when the dumps are there, never.
VERIFY = ("auto", "yes", "no")


def _is_real(v) -> bool:
    """A real number, NaN and infinities included (the caller bounds it), not a bool."""
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def _is_int(v) -> bool:
    """A whole number given as an integer (4.5 or 4.0 is not a count), not a bool."""
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _fields_by_kind(cls) -> dict:
    """``{field: "int" | "float" | "bool"}`` of a settings dataclass, from its defaults."""
    import dataclasses

    out = {}
    for f in dataclasses.fields(cls):
        kinds = ((bool, "bool"), (int, "int"), (float, "float"))  # bool first: a bool is an int
        out[f.name] = next((k for t, k in kinds if isinstance(f.default, t)), None)
    return out


def _ksm_fields() -> dict:
    from pagecore.sharing.ksm import KsmSettings

    kinds = _fields_by_kind(KsmSettings)
    kinds["advisor_mode"] = None  # a name, checked by _ksm_settings
    kinds.update({k: "float" if isinstance(v, float) else "int" for k, v in ADVISOR.items()})  # the advisor's knobs
    return kinds


def _scanner_fields() -> dict:
    from pagecore.sharing.scanner import ScannerSettings

    return _fields_by_kind(ScannerSettings)


def _reporting_fields() -> dict:
    from pagecore.experiments.cooperative import ReportingParams

    return _fields_by_kind(ReportingParams)


def _check_knobs(where: str, values: dict, kinds: dict) -> None:
    """Refuse, naming ``where.key``, a value of the wrong kind: the settings classes compare
    ranges only, so NaN, 2.5 pages or a boolean count passed them. Unknown keys are left to the
    class, which names them."""
    for key, v in values.items():
        kind = kinds.get(key)
        if kind == "bool" and not isinstance(v, bool | np.bool_):
            raise ConfigError(f"{where}.{key}: expected True or False, got {v!r}")
        if kind == "int" and not _is_int(v):
            raise ConfigError(f"{where}.{key}: expected a whole number, got {v!r}")
        if kind == "float" and not (_is_real(v) and math.isfinite(v)):
            raise ConfigError(f"{where}.{key}: expected a finite number, got {v!r}")


@dataclass
class HostSettings:
    """Everything ``pagecore host`` needs besides the VMs (the ``host:`` config section)."""

    memory_mb: list = field(default_factory=lambda: [1024.0])
    policies: tuple = DEFAULT_POLICIES
    hypervisor_mb: float = 0.0  # memory the hypervisor itself keeps (ESX: esx_mb)
    vm_overhead_mb: float = 16.0  # per-VM overhead in use (HostSpec.overhead_used_mb; UNCONFIRMED)
    replicas: str = "distinct"  # or "identical" (linked clones)
    max_vms: int = 256
    tau: float = 0.75  # Mem.IdleTax 75 % (paper §5.2; ESXi default unchanged)
    balloon_max_pct: float = 65.0  # Mem.CtlMaxPercent
    esx2002_hard_pct: float = 2.0  # paper §6.3: swapping below 2 % free
    esxi_high_pct_of_minfree: float = 400.0  # vSphere 6+: break large pages below 400 % of minFree
    esxi_hard_pct_of_minfree: float = 32.0  # vSphere 6+: hard state (compress + swap)
    esxi_memzip_max_pct: float = 10.0  # Mem.MemZipMaxPct
    compress_algorithm: str = "lz4"
    kvm_thp: bool = True
    kvm_balloon: str = "none"
    ksm: dict = field(default_factory=dict)  # KsmSettings fields
    scanner: dict = field(default_factory=dict)  # ScannerSettings fields
    emulate_vms: int | None = None  # VMs the scanner emulation runs on (default: the input VMs)
    verify: str = "auto"
    seed: int = 0
    activity: str = "light"  # of VMs that give none
    reporting: dict = field(default_factory=dict)  # free page reporting (ReportingParams fields)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Refuse, naming the field, a value of the wrong type or range (:class:`ConfigError`).

        Run on construction and again by :func:`host_report` and :func:`consolidation` (the
        fields may be assigned after construction). Every field is checked here, the one door
        for notebooks, the CLI and the config: NaN passed every comparison and made 0 VMs fit,
        a negative overhead made every VM fit, and a non-integer ``max_vms`` never ended the
        consolidation search.
        """
        mem = self.memory_mb
        if isinstance(mem, str | bytes | bool) or not np.ndim(mem) <= 1:
            raise ConfigError(f"host: memory_mb must be a host size in MiB or a list of them, got {mem!r}")
        for m in np.atleast_1d(mem).tolist():
            if not _is_real(m) or not 0 < m < math.inf:
                raise ConfigError(f"host: memory_mb: every host size must be a finite number > 0 MiB, got {m!r}")
        self.memory_mb = [float(m) for m in np.atleast_1d(mem).tolist()]
        if not self.memory_mb:
            raise ConfigError("host: memory_mb: give at least one host size in MiB")
        if isinstance(self.policies, str):
            raise ConfigError(
                f"host: policies must be a list of policy names, got the string {self.policies!r}; "
                f"write ({self.policies!r},)"
            )
        if not self.policies:
            raise ConfigError(f"host: no policy given; choose from {', '.join(POLICIES)}")
        bad = [p for p in self.policies if p not in POLICIES]
        if bad:
            raise ConfigError(f"host: unknown policy {bad[0]!r}; choose from {', '.join(POLICIES)}")
        for key, choices in (("replicas", ("distinct", "identical")), ("verify", VERIFY),
                             ("compress_algorithm", COMPRESS_ALGORITHMS)):  # fmt: skip
            if getattr(self, key) not in choices:
                raise ConfigError(f"host: {key} must be one of {', '.join(choices)}, got {getattr(self, key)!r}")
        if self.kvm_balloon not in ("none", "mom"):
            raise ConfigError(f"host: kvm balloon policy {self.kvm_balloon!r} is not known; use none or mom")
        if not isinstance(self.kvm_thp, bool | np.bool_):
            raise ConfigError(f"host: kvm_thp must be True or False, got {self.kvm_thp!r}")
        for key, lo, hi, hi_open in (
            ("tau", 0.0, 1.0, True),
            ("hypervisor_mb", 0.0, math.inf, True),
            ("vm_overhead_mb", 0.0, math.inf, True),
            ("balloon_max_pct", 0.0, 100.0, False),
            ("esx2002_hard_pct", 0.0, 100.0, False),
            ("esxi_high_pct_of_minfree", 0.0, math.inf, True),
            ("esxi_hard_pct_of_minfree", 0.0, math.inf, True),
            ("esxi_memzip_max_pct", 0.0, 100.0, False),
        ):
            v = getattr(self, key)
            if not _is_real(v) or not (lo <= v < hi if hi_open else lo <= v <= hi):
                what = f"in [{lo:g}, {hi:g}{')' if hi_open else ']'}" if hi < math.inf else f"a finite number >= {lo:g}"
                raise ConfigError(f"host: {key} must be {what}, got {v!r}")
        if self.esxi_high_pct_of_minfree < self.esxi_hard_pct_of_minfree:
            raise ConfigError(
                f"host: esxi_high_pct_of_minfree ({self.esxi_high_pct_of_minfree:g}) is below "
                f"esxi_hard_pct_of_minfree ({self.esxi_hard_pct_of_minfree:g}); the high state is above the hard state"
            )
        for key in ("max_vms", "emulate_vms"):
            v = getattr(self, key)
            if v is None and key == "emulate_vms":
                continue
            if not _is_int(v):
                raise ConfigError(f"host: {key} must be a whole number of VMs, got {v!r}")
            if not 1 <= v <= MAX_VMS:
                raise ConfigError(
                    f"host: {key} must be in [1, {MAX_VMS:,}] (pagecore's bound on VMs in a mix: 16 × vSphere 8's "
                    f"1,024 per host), got {v:,}"
                )
            setattr(self, key, int(v))
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"host: seed must be a whole number >= 0, got {self.seed!r}")
        if isinstance(self.activity, bool):
            raise ConfigError("host: activity: expected busy, light, idle, idle:F or active:F, got a boolean")
        parse_activity(self.activity)
        for key, cls in (("ksm", "KsmSettings"), ("scanner", "ScannerSettings"), ("reporting", "ReportingParams")):
            v = getattr(self, key)
            if not isinstance(v, dict):
                raise ConfigError(f"host: {key} must be a mapping of {cls} fields, got {v!r}")
        _check_knobs("host.ksm", self.ksm, _ksm_fields())
        _check_knobs("host.scanner", self.scanner, _scanner_fields())
        _check_knobs("host.reporting", {k: v for k, v in self.reporting.items() if k != "low_wmark_pages"},
                     _reporting_fields())  # fmt: skip
        _ksm_settings(self)  # refuse unknown or out-of-range KSM and scanner settings early
        _scanner_settings(self)
        self.reporting_params()  # refuse bad free page reporting settings early

    def reporting_params(self):
        """Free page reporting as configured (``host.reporting``; defaults: the kernel's order 9,
        2 s delay, 32 blocks per call — :class:`pagecore.experiments.cooperative.ReportingParams`)."""
        from pagecore.experiments.cooperative import ReportingParams

        try:
            return ReportingParams(**self.reporting)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"host.reporting: {exc}") from None


def parse_activity(text) -> tuple[float, str]:
    """``busy``/``light``/``idle``, ``idle:F`` (fraction F idle) or ``active:F``: the active
    fraction and its label."""
    if isinstance(text, int | float):
        f = float(text)
        label = f"active:{f:g}"
    else:
        s = str(text).strip()
        if s in ACTIVITY_PROFILES:
            return ACTIVITY_PROFILES[s], s
        kind, sep, val = s.partition(":")
        if not sep or kind not in ("idle", "active"):
            raise ConfigError(
                f"activity {s!r}: use one of {', '.join(ACTIVITY_PROFILES)}, idle:F or active:F (F in [0, 1])"
            )
        try:
            f = float(val)
        except ValueError:
            raise ConfigError(f"activity {s!r}: {val!r} is not a number in [0, 1]") from None
        if kind == "idle":
            f = 1.0 - f
        label = s
    if not 0.0 <= f <= 1.0:
        raise ConfigError(f"activity {text!r}: the fraction must be in [0, 1]")
    return f, label


def activity_from_trace(path, vm: str, pages: int, period_s: float = 60.0) -> float:
    """Active fraction of ``vm`` in an access trace (``pagecore synth`` format): the mean over
    sampling periods of distinct pages touched per period, over the VM's pages."""
    from pagecore.synth.workloads import read_trace

    seen = {}
    for b in read_trace(path):
        df = b.to_pandas()
        df = df[df["vm"].astype(str) == vm]
        for per, g in df.groupby((df["t"] // period_s).astype(np.int64)):
            seen.setdefault(int(per), set()).update(g["gpfn"].to_numpy().tolist())
    if not seen:
        raise InputError(path, f"trace has no accesses of VM {vm}; name the VM as in the trace")
    return float(min(1.0, np.mean([len(s) for s in seen.values()]) / max(pages, 1)))


def check_vm_entry(entry: dict, index: int) -> None:
    """Refuse VM-list values of the wrong type or range, naming the VM and key: a NaN size or
    reservation passed every comparison below and a negative ``shares`` reached the allocator."""
    for key in ("pages", "dump", "trace", "format"):
        if key in entry and not (isinstance(entry[key], str) and entry[key]):
            raise ConfigError(f"host VM #{index + 1}: {key}: expected a file name, got {entry[key]!r}")
    if "name" in entry and not isinstance(entry["name"], str | int):
        raise ConfigError(f"host VM #{index + 1}: name: expected a name, got {entry['name']!r}")
    for key, low, strict in (("size_mb", 0.0, True), ("reservation_mb", 0.0, False), ("limit_mb", 0.0, False),
                             ("shares", 0.0, True)):  # fmt: skip
        v = entry.get(key)
        if v is None:
            continue
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or (v <= low if strict else v < low):
            raise ConfigError(
                f"host VM #{index + 1}: {key}: expected a finite number {'>' if strict else '>='} {low:g}, got {v!r}"
            )
    if isinstance(entry.get("activity"), bool):
        raise ConfigError(
            f"host VM #{index + 1}: activity: expected busy, light, idle, idle:F or active:F, got a boolean"
        )


def load_vm(entry: dict, index: int, *, tmpdir: str | None = None, show_progress: bool = False) -> HostVM:
    """A VM from one entry of a VM list: ``pages`` (page table) or ``dump`` (hashed on the way),
    optional ``name``, ``size_mb``, ``reservation_mb``, ``limit_mb``, ``shares``, ``activity``
    (profile, ``idle:F``/``active:F``) or ``trace`` (access-trace file)."""
    known = {"pages", "dump", "format", "name", "size_mb", "reservation_mb", "limit_mb", "shares", "activity", "trace"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"host VM #{index + 1}: unknown key {unknown[0]!r}; keys are {', '.join(sorted(known))}")
    if ("pages" in entry) == ("dump" in entry):
        raise ConfigError(f"host VM #{index + 1}: give exactly one of pages: (a page table) or dump: (a memory dump)")
    check_vm_entry(entry, index)
    if "dump" in entry:
        from pagecore.pages.ingest import hash_dump

        dump = Path(entry["dump"])
        if not dump.is_file():
            raise not_a_file(dump, "dump", where=f" (host VM #{index + 1})")
        name = str(entry.get("name") or dump.stem)  # a YAML name: 5 is an int; hash_dump takes text
        source = str(dump)
        with contextlib.ExitStack() as stack:
            # hashed into a run directory that is removed whatever happens (a SIGKILLed run's is
            # removed by the next `host` run: pagecore._util.run_tmpdir)
            where = Path(tmpdir) if tmpdir else stack.enter_context(run_tmpdir("host"))
            path = where / f"vm{index}.parquet"
            stack.callback(path.unlink, missing_ok=True)
            hash_dump(dump, path, name, format=entry.get("format", "auto"), show_progress=show_progress)
            frame, meta = _read_vm_table(path)
    else:
        path = Path(entry["pages"])
        if not path.is_file():
            raise not_a_file(path, "page table", where=f" (host VM #{index + 1})")
        source = str(path)
        frame, meta = _read_vm_table(path)
    frame["vm"] = frame["vm"].astype(str)
    vms_in = frame["vm"].unique()
    if len(vms_in) != 1:
        raise InputError(
            source, f"holds {len(vms_in)} VMs ({', '.join(map(str, vms_in[:3]))}…); give one page table per VM"
        )
    name = str(entry.get("name") or vms_in[0])
    frame["vm"] = name
    pages = len(frame)
    table_mb = pages / PAGES_PER_MIB
    size_mb = float(entry.get("size_mb", table_mb))
    # a dump may lack a few of the VM's pages (a kdump's excluded pages, firmware holes): 1 % of
    # them, and never less than one page, but not a whole MiB of a small VM
    if abs(size_mb - table_mb) > max(SIZE_SLACK * table_mb, 1.0 / PAGES_PER_MIB):
        raise InputError(
            source,
            f"VM {name}: size_mb {size_mb:g} does not match its page table ({pages:,} pages = {table_mb:.6g} MiB); "
            f"set size_mb to {table_mb:.6g} or omit it",
        )
    if "trace" in entry:
        active = activity_from_trace(entry["trace"], name, pages)
        label = f"trace:{Path(entry['trace']).name}"
    else:
        active, label = parse_activity(entry.get("activity", "light"))
    res = float(entry.get("reservation_mb", 0.0))
    lim = entry.get("limit_mb")
    if res < 0 or res > size_mb:
        raise ConfigError(f"VM {name}: reservation_mb {res:g} must be in [0, size_mb = {size_mb:g}]")
    if lim is not None and not res <= float(lim):
        raise ConfigError(f"VM {name}: limit_mb {lim} is below its reservation_mb {res:g}")
    return HostVM(
        name=name,
        frame=frame,
        size_mb=size_mb,
        reservation_mb=res,
        limit_mb=None if lim is None else float(lim),
        shares=None if entry.get("shares") is None else float(entry["shares"]),
        active=active,
        activity=label,
        source=source,
        meta=meta,
    )


def _read_vm_table(path: Path) -> tuple[pd.DataFrame, dict]:
    from pagecore.pages.tables import page_table_metadata, read_page_tables

    frame = read_page_tables([path]).to_pandas()
    return _with_optional_columns(frame, path), page_table_metadata(path)


def _with_optional_columns(frame: pd.DataFrame, path) -> pd.DataFrame:
    """The page table's optional columns (:mod:`pagecore.vocab`: host view, compressed sizes,
    ``same_filled``, ``guest_free``) beside the base ones, in the same row order."""
    import pyarrow.parquet as pq

    from pagecore.vocab import COMPRESSED_SIZE_PREFIX, GUEST_FREE_COLUMN, SAME_FILLED_COLUMN

    names = pq.ParquetFile(path).schema_arrow.names
    want = [
        c
        for c in names
        if c in HOST_VIEW_COLUMNS
        or c in (GUEST_FREE_COLUMN, SAME_FILLED_COLUMN)
        or c.startswith(COMPRESSED_SIZE_PREFIX)
    ]
    if not want:
        return frame
    extra = pq.read_table(path, columns=want).to_pandas()
    if len(extra) != len(frame):
        raise InputError(path, "optional columns do not have one value per page", hint="re-run `pagecore hash`")
    for c in want:
        if extra[c].isna().any():
            raise InputError(path, f"column {c!r} has null values", hint="re-run `pagecore hash`")
        frame[c] = extra[c].to_numpy()
    return frame


def load_vms(entries, **kw) -> list[HostVM]:
    """VMs from a VM list; a VM named twice is refused with both sources named."""
    vms, seen = [], {}
    with contextlib.ExitStack() as stack:
        if any("dump" in e for e in entries) and kw.get("tmpdir") is None:
            kw["tmpdir"] = stack.enter_context(run_tmpdir("host"))  # one per run, not one per dump
        for i, e in enumerate(entries):
            v = load_vm(e, i, **kw)
            if v.name in seen:
                raise InputError(
                    v.source,
                    f"VM {v.name} is listed twice (also from {seen[v.name]}); list each VM once "
                    "or give the copies different name: values",
                )
            seen[v.name] = v.source
            vms.append(v)
    if not vms:
        raise ConfigError("host: no VMs given; list page tables or dumps")
    # pages are compared across VMs: refuse one file given twice under two names, and tables of
    # different hash algorithms, keys, widths or page sizes, exactly as `share` does
    from pagecore.pages.tables import check_comparable

    check_comparable([v.source for v in vms], [v.meta for v in vms])
    return vms


# ------------------------------------------------------------------------------ contents
@dataclass
class PageSet:
    """The pages of N VMs as flat arrays (one entry per page)."""

    names: list
    vm: np.ndarray  # int64 VM index
    gpfn: np.ndarray  # uint64
    key: np.ndarray  # uint64 content key (hash, remixed per true content when verified)
    zero: np.ndarray  # bool
    cost: np.ndarray  # bool: the page costs host memory before any mechanism
    eligible: np.ndarray  # bool: a candidate for sharing (KSM: present, not zero-page, not in a THP)
    csize: np.ndarray | None = None  # int32 compressed size, or None

    @property
    def n_vms(self) -> int:
        return len(self.names)


def _mix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x ^ (x >> np.uint64(33))
        z = z * np.uint64(0xFF51AFD7ED558CCD)
        z = z ^ (z >> np.uint64(33))
        z = z * np.uint64(0xC4CEB9FE1A85EC53)
        return z ^ (z >> np.uint64(33))


def content_keys(vms: list[HostVM], verify: str = "auto", dump_dir=None) -> list[np.ndarray]:
    """Per VM, a content key per page: the page hash, made distinct where byte verification
    found different contents behind one hash (the ESX scanner's full comparison, §4.2).

    ``verify``: ``yes`` refuses VMs whose page table has no dump behind it (naming the VM);
    ``auto`` verifies when every dump is there; ``no`` trusts the hashes.
    """
    keys = [v.frame["hash"].to_numpy(np.uint64) for v in vms]
    if verify == "no":
        return keys
    paths = [v.source for v in vms]
    if any(not str(p).endswith(".parquet") for p in paths):
        if verify == "yes":
            raise ConfigError(
                "host: --verify yes needs page tables with their dumps (VMs given as dumps are hashed here)"
            )
        return keys
    from pagecore.pages.verify import unavailable_reason, verify_tables

    for v in vms:
        reason = unavailable_reason([v.source], dump_dir)
        if reason is not None:
            if verify == "yes":
                raise InputError(
                    v.source,
                    f"VM {v.name}: its page table has no bytes behind it ({reason}); the ESX scanner compares "
                    "bytes before sharing: pass --dump-dir DIR where the dumps are, or --verify no",
                )
            return keys
    ver = verify_tables(paths, dump_dir=dump_dir)
    allk = ver.content_keys(np.concatenate(keys))
    inel = ver.ineligible
    # unresolved pages never share: give each its own key
    if inel.any():
        allk = allk.copy()
        allk[inel] = _mix64(np.flatnonzero(inel).astype(np.uint64) + np.uint64(0xA5A5_0000_0000_0000))
    out, lo = [], 0
    for k in keys:
        out.append(allk[lo : lo + len(k)])
        lo += len(k)
    return out


def replicate(vms: list[HostVM], keys: list[np.ndarray], n: int, replicas: str = "distinct"):
    """The first ``n`` VMs of the mix cycled (``vm``, ``vm#2``, …): ``(name, vm, keys, input
    index)`` per VM.

    ``distinct`` (default): a copy shares with the others exactly what the input VMs share
    with each other — a content found in two or more input VMs is common; a content found in
    only one input VM is that VM's own data, which each copy holds in its own version (its keys
    remapped one to one, so the copy's own duplicates stay duplicates). One input VM therefore
    gives copies that share only zero pages and their own duplicates: give at least two VMs of a
    kind to measure inter-VM sharing. ``identical``: linked clones, every page equal to the
    original's.
    """
    m = len(vms)
    own = _own_masks(vms, keys) if replicas == "distinct" and n > m else None
    out = []
    for j in range(n):
        i = j % m
        v, k = vms[i], keys[i]
        copy = j // m
        name = v.name if copy == 0 else f"{v.name}#{copy + 1}"
        if copy and own is not None:
            o = own[i]
            k = k.copy()
            k[o] = _mix64(k[o] ^ np.uint64(copy * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF))
        out.append((name, v, k, i))
    return out


def _own_masks(vms: list[HostVM], keys: list[np.ndarray]) -> list[np.ndarray]:
    """Per input VM, its pages whose non-zero content no other input VM holds (cached)."""
    tag = ("own", tuple(v.name for v in vms))
    if tag not in vms[0].cache:
        k_all = np.concatenate([np.unique(k) for k in keys])
        u, c = np.unique(k_all, return_counts=True)
        common = u[c > 1]
        vms[0].cache[tag] = [
            ~np.isin(k, common) & ~v.frame["zero"].to_numpy(bool) for v, k in zip(vms, keys, strict=True)
        ]
    return vms[0].cache[tag]


def page_set(members, policy: str, settings: HostSettings) -> PageSet:
    """Flat arrays of the replicated VMs, with the policy's cost and eligibility rules."""
    names, vm, gpfn, key, zero, cost, elig, cs = [], [], [], [], [], [], [], []
    alg = f"csize_{settings.compress_algorithm}"
    have_cs = all(alg in v.frame for _, v, _, _ in members)
    for name, v, k, _ in members:
        f = v.frame
        n = len(f)
        names.append(name)
        vm.append(np.full(n, len(names) - 1, np.int64))
        g = f["gpfn"].to_numpy(np.uint64)
        z = f["zero"].to_numpy(bool)
        gpfn.append(g)
        key.append(k)
        zero.append(z)
        c = np.ones(n, bool)
        e = np.ones(n, bool)
        if all(col in f for col in HOST_VIEW_COLUMNS):
            present = f["host_present"].to_numpy(bool)
            zp = f["host_zero_page"].to_numpy(bool)
            c = present & ~zp
            e = c.copy()
            if policy in ("kvm-ksm", "cooperative") and settings.kvm_thp:
                thp = f["host_thp"].to_numpy(bool)
                e &= ~(thp & z)  # an all-zero huge page is not merged until split
        elif policy in ("kvm-ksm", "cooperative") and settings.kvm_thp:
            e &= ~_zero_regions(g, z)
        cost.append(c)
        elig.append(e)
        if have_cs:
            cs.append(f[alg].to_numpy(np.int32))
    return PageSet(
        names,
        np.concatenate(vm),
        np.concatenate(gpfn),
        np.concatenate(key),
        np.concatenate(zero),
        np.concatenate(cost),
        np.concatenate(elig),
        np.concatenate(cs) if have_cs else None,
    )


def _zero_regions(gpfn: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """Pages in a fully present 2 MiB-aligned region whose pages are all zero."""
    reg = (gpfn // np.uint64(REGION_PAGES)).astype(np.int64)
    if not len(reg):
        return np.zeros(0, bool)
    u, inv, cnt = np.unique(reg, return_inverse=True, return_counts=True)
    zc = np.bincount(inv, weights=zero.astype(np.float64), minlength=len(u))
    full_zero = (cnt == REGION_PAGES) & (zc == REGION_PAGES)
    return full_zero[inv]


# ------------------------------------------------------------------------------ sharing at steady state
def sharing_savings(ps: PageSet, policy: str, settings: HostSettings, mask: np.ndarray | None = None) -> dict:
    """Pages saved per sharing mechanism once the scanner/KSM has converged, total and per VM.

    ``zero``: zero pages backed by one page (ESX; one per VM under salting; KSM: the kernel
    zero page with ``use_zero_pages``, else merged like any content); ``share_intra`` /
    ``share_inter``: the further copies of each non-zero content within / across VMs (for a
    content in ``v`` VMs with ``n_j`` copies in VM ``j``: intra ``Σ (n_j − 1)``, inter
    ``v − 1``); under KSM each content keeps ``ceil(n / max_page_sharing)`` pages, the loss
    taken from ``share_inter`` first. Per-VM values attribute each saved page to the VMs
    holding the content in proportion to their copies.
    """
    sel = ps.eligible & ps.cost
    if mask is not None:
        sel &= mask
    vm = ps.vm[sel]
    key = ps.key[sel]
    zero = ps.zero[sel]
    nv = ps.n_vms
    salted = policy == "esxi"
    ksm = policy == "kvm-ksm"
    kset = _ksm_settings(settings)
    per_vm = {m: np.zeros(nv) for m in ("zero", "share_intra", "share_inter")}
    # zero pages
    zvm = vm[zero]
    zc = np.bincount(zvm, minlength=nv).astype(np.float64)
    if ksm and kset.use_zero_pages:
        per_vm["zero"] = zc
    elif ksm:
        tot = zc.sum()
        saved = tot - math.ceil(tot / kset.max_page_sharing) if tot else 0.0
        per_vm["zero"] = zc * (saved / tot) if tot else zc
    elif salted:
        per_vm["zero"] = np.maximum(zc - 1, 0)
    else:
        tot = zc.sum()
        per_vm["zero"] = zc * ((tot - 1) / tot) if tot else zc
    # non-zero contents
    nz = ~zero
    k, v = key[nz], vm[nz]
    if len(k):
        order = np.lexsort((v, k))
        k, v = k[order], v[order]
        new_pair = np.ones(len(k), bool)
        new_pair[1:] = (k[1:] != k[:-1]) | (v[1:] != v[:-1])
        pair_id = np.cumsum(new_pair) - 1
        n_pair = np.bincount(pair_id).astype(np.float64)
        pk, pv = k[new_pair], v[new_pair]
        new_c = np.ones(len(pk), bool)
        new_c[1:] = pk[1:] != pk[:-1]
        cid = np.cumsum(new_c) - 1
        n_c = np.bincount(cid, weights=n_pair)
        v_c = np.bincount(cid).astype(np.float64)
        intra_c = n_c - v_c  # Σ (n_j − 1)
        inter_c = v_c - 1 if not salted else np.zeros_like(v_c)
        if ksm:
            keep = np.ceil(n_c / kset.max_page_sharing)
            total = n_c - keep
            intra_c = np.minimum(intra_c, total)
            inter_c = total - intra_c
        w = n_pair / n_c[cid]  # the VM's share of the content's copies
        per_vm["share_intra"] = np.bincount(pv, weights=intra_c[cid] * w, minlength=nv)
        per_vm["share_inter"] = np.bincount(pv, weights=inter_c[cid] * w, minlength=nv)
    return {"total": {m: float(a.sum()) for m, a in per_vm.items()}, "per_vm": per_vm}


#: KSM's scan-time advisor (Linux 6.7+, mm/ksm.c; formats-ksm-esxi.md): target seconds per full
#: scan and the bounds of pages_to_scan it may choose.
ADVISOR = {"advisor_target_scan_time": 200.0, "advisor_min_pages_to_scan": 500, "advisor_max_pages_to_scan": 30000}


def _ksm_settings(settings: HostSettings, pages: int | None = None):
    """:class:`~pagecore.sharing.ksm.KsmSettings` from ``host.ksm``. With ``advisor_mode:
    scan-time`` the advisor's fixed point is used from the start: the ``pages_to_scan`` that makes
    one full scan of ``pages`` take ``advisor_target_scan_time``, within the advisor's bounds (the
    kernel reaches it by an EWMA over the first full scans)."""
    from pagecore.sharing.ksm import KsmSettings

    k = dict(settings.ksm)
    mode = k.pop("advisor_mode", "none")
    adv = {a: k.pop(a, d) for a, d in ADVISOR.items()}
    if mode not in ("none", "scan-time"):
        raise ConfigError(f"host.ksm.advisor_mode: none or scan-time, got {mode!r}")
    if not adv["advisor_target_scan_time"] > 0:
        raise ConfigError(f"host.ksm.advisor_target_scan_time: must be > 0 s, got {adv['advisor_target_scan_time']!r}")
    if not 1 <= adv["advisor_min_pages_to_scan"] <= adv["advisor_max_pages_to_scan"]:
        raise ConfigError(
            "host.ksm: need 1 <= advisor_min_pages_to_scan <= advisor_max_pages_to_scan, got "
            f"{adv['advisor_min_pages_to_scan']} and {adv['advisor_max_pages_to_scan']}"
        )
    if mode == "scan-time" and pages:
        sleep_s = k.get("sleep_millisecs", 20) / 1000.0
        want = math.ceil(pages * max(sleep_s, 1e-3) / adv["advisor_target_scan_time"])
        k["pages_to_scan"] = int(min(max(want, adv["advisor_min_pages_to_scan"]), adv["advisor_max_pages_to_scan"]))
    try:
        return KsmSettings(**k)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"host.ksm: {exc}") from None


def _scanner_settings(settings: HostSettings):
    from pagecore.sharing.scanner import ScannerSettings

    try:
        return ScannerSettings(**{"seed": settings.seed, **settings.scanner})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"host.scanner: {exc}") from None


# ------------------------------------------------------------------------------ the fit
#: vm.watermark_scale_factor default (Linux 4.6+): the kswapd watermarks' distance in 1/10,000 of memory.
WATERMARK_SCALE_FACTOR = 10


def min_free_kvm_mb(host_mb: float) -> float:
    """The low watermark of a Linux host: min_free_kbytes = √(16 × lowmem KiB)
    (``calculate_min_free_kbytes``, clamped to [128 KiB, 256 MiB], the kernel's bounds since 5.x)
    plus the larger of a quarter of it and ``watermark_scale_factor`` / 10,000 of memory
    (``__setup_per_zone_wmarks`` since Linux 4.6; taken over all of memory rather than zone by
    zone). Above about 1 GiB the scale factor wins: 97.5 MiB on 64 GiB, not 1.25 × 32 MiB."""
    kib = min(max(math.sqrt(16.0 * host_mb * 1024.0), 128.0), 262144.0)
    gap = max(kib / 4.0, host_mb * 1024.0 * WATERMARK_SCALE_FACTOR / 10000.0)
    return (kib + gap) / 1024.0


def min_free_esxi_mb(host_mb: float) -> float:
    """vSphere 6+ minFree: 6 % of the first 4 GiB, 4 % of the next 8, 2 % of the next 16, 1 %
    above (formats-ksm-esxi.md)."""
    tiers = ((4096.0, 0.06), (8192.0, 0.04), (16384.0, 0.02), (math.inf, 0.01))
    left, out = host_mb, 0.0
    for size, pct in tiers:
        take = min(left, size)
        out += take * pct
        left -= take
        if left <= 0:
            break
    return out


def free_floor_mb(policy: str, host_mb: float, settings: HostSettings) -> float:
    """Free memory below which the policy swaps."""
    if policy == "esx2002":
        return settings.esx2002_hard_pct / 100.0 * host_mb
    if policy == "esxi":
        return settings.esxi_hard_pct_of_minfree / 100.0 * min_free_esxi_mb(host_mb)
    return min_free_kvm_mb(host_mb)


def balloons(policy: str, settings: HostSettings) -> bool:
    return policy in ("esx2002", "esxi", "cooperative") or settings.kvm_balloon != "none"


#: oVirt MOM's auto-balloon rule (mom/doc/balloon.rules, balloon.policy): the host is under
#: pressure below 20 % free; a guest keeps at least 20 % of its memory free; targets move by at
#: most 5 % of a guest's memory per collection interval (the pace, not the steady state).
MOM = {"pressure_threshold": 0.20, "min_guest_free_percent": 0.20, "max_balloon_change_percent": 0.05}


@dataclass
class Fit:
    """The state of N VMs on H MiB under one policy (all memory in MiB)."""

    policy: str
    host_mb: float
    n_vms: int
    fits: bool
    capacity_mb: float
    demand_mb: float
    saved_mb: dict
    idle_tax_mb: float
    boot_swap_mb: float
    swap_mb: float
    per_vm: pd.DataFrame
    notes: list = field(default_factory=list)


def evaluate(members, policy: str, host_mb: float, settings: HostSettings) -> Fit:
    """Whether ``members`` (from :func:`replicate`) fit on ``host_mb`` under ``policy``."""
    from pagecore.sim.allocation import IdleTax

    ps = page_set(members, policy, settings)
    n = ps.n_vms
    notes = []
    thp_zero = int((ps.cost & ~ps.eligible).sum()) if policy in ("kvm-ksm", "cooperative") else 0
    if thp_zero:  # the reason `pagecore ksm` (every page a candidate) merges more
        notes.append(
            f"{n} VMs: {thp_zero:,} pages ({thp_zero / PAGES_PER_MIB:,.1f} MiB) are all-zero pieces of transparent "
            "huge pages: not KSM candidates, they cost memory and win nothing (host.kvm_thp; pagecore ksm and share "
            "count them as candidates)"
        )
    overhead = settings.hypervisor_mb + n * settings.vm_overhead_mb
    cap_mb = host_mb - overhead - free_floor_mb(policy, host_mb, settings)
    reserve = sum(v.reservation_mb for _, v, _, _ in members)
    touched = np.bincount(ps.vm, weights=ps.cost.astype(np.float64), minlength=n)
    sav = {m: np.zeros(n) for m in MECHANISMS}
    if policy == "cooperative":
        reported = _reported(members, ps, settings)
        sav["free_report"] = np.bincount(ps.vm, weights=(reported & ps.cost).astype(float), minlength=n)
        sh = sharing_savings(ps, "kvm-ksm", settings, mask=~reported)
    elif policy == "esxi":
        high_mb = host_mb - overhead - settings.esxi_high_pct_of_minfree / 100.0 * min_free_esxi_mb(host_mb)
        need = touched.sum() / PAGES_PER_MIB - high_mb
        sh = _esxi_break(members, ps, need * PAGES_PER_MIB, notes)
    else:
        sh = sharing_savings(ps, policy, settings)
    for m_ in ("zero", "share_intra", "share_inter"):
        sav[m_] = sav[m_] + sh["per_vm"][m_]
    backed = touched - sum(sav[m_] for m_ in ("zero", "share_intra", "share_inter", "free_report"))
    cap_pages = cap_mb * PAGES_PER_MIB
    demand = backed.sum()
    sizes = np.array([v.size_mb for _, v, _, _ in members]) * PAGES_PER_MIB
    res = np.array([v.reservation_mb for _, v, _, _ in members]) * PAGES_PER_MIB
    shares = np.array([v.shares for _, v, _, _ in members])
    act = np.array([v.active for _, v, _, _ in members])
    active_pages = act * backed
    idle_tax = 0.0
    target = backed.copy()
    mom = policy == "kvm-ksm" and settings.kvm_balloon == "mom"
    aim = cap_pages  # what the balloon aims to bring the VMs' memory down to
    if mom:  # MOM balloons while host free memory is under 20 %, only guest free memory above 20 %
        aim = min(cap_pages, ((1 - MOM["pressure_threshold"]) * host_mb - overhead) * PAGES_PER_MIB)
    if demand > aim and balloons(policy, settings):
        if mom:
            free = _guest_free_pages(members, ps, act, backed)
            give = np.maximum(free - MOM["min_guest_free_percent"] * sizes, 0.0)
        else:
            give = np.minimum((1 - act) * backed, settings.balloon_max_pct / 100.0 * sizes)
        floor = np.minimum(np.maximum(res, backed - give), backed)
        avail = max(int(aim), 0)
        tax = IdleTax()
        tau = 0.0 if mom else settings.tau  # MOM has no idle tax
        target = tax.targets(shares, np.ceil(floor), np.ceil(backed), active_pages, avail, tau).astype(float)
        flat = tax.targets(shares, np.ceil(floor), np.ceil(backed), active_pages, avail, 0.0).astype(float)
        idle_tax = 0.5 * float(np.abs(target - flat).sum())
        target = np.minimum(target, backed)
        sav["balloon"] = backed - target
    # limit_mb caps a VM's memory whatever the host has free: the ESX manager balloons the rest
    # (within what the balloon may take) and swaps what the balloon cannot; a Linux host's cgroup
    # limit swaps it (MOM balloons on host pressure only)
    lim = np.array([v.limit_mb for _, v, _, _ in members]) * PAGES_PER_MIB
    over = np.maximum(target - lim, 0.0)
    limit_swap = np.zeros(n)
    if over.any():
        room = np.zeros(n)
        if balloons(policy, settings) and not mom:
            give = np.minimum((1 - act) * backed, settings.balloon_max_pct / 100.0 * sizes)
            room = np.maximum(give - sav["balloon"], 0.0)
        b = np.minimum(over, room)
        sav["balloon"] = sav["balloon"] + b
        limit_swap = over - b
        target = target - over
        notes.append(
            f"{n} VMs: limit_mb holds {int((over > 0).sum())} VM(s) below their memory: "
            f"{b.sum() / PAGES_PER_MIB:,.1f} MiB ballooned, {limit_swap.sum() / PAGES_PER_MIB:,.1f} MiB swapped"
        )
    need = max(0.0, target.sum() - cap_pages)
    if need > 0 and policy == "esxi":
        if ps.csize is None:
            notes.append(f"no csize_{settings.compress_algorithm} column (hash --compress): compression not modelled")
        else:
            sav["compress"], sav["swap"] = _esxi_compress(ps, target, need, settings, ~sh["shared"], sizes)
            need = float(sav["swap"].sum())
    if not sav["swap"].any():
        sav["swap"] = target / max(target.sum(), 1) * need if need > 0 else np.zeros(n)
    sav["swap"] = sav["swap"] + limit_swap
    need += float(limit_swap.sum())
    boot_swap = max(0.0, touched.sum() - sav["free_report"].sum() - cap_pages)
    saved_mb = {m_: float(a.sum()) / PAGES_PER_MIB for m_, a in sav.items()}
    per_vm = pd.DataFrame(
        {
            "vm": ps.names,
            "touched_mb": touched / PAGES_PER_MIB,
            "active": act,
            **{f"{m_}_mb": a / PAGES_PER_MIB for m_, a in sav.items()},
        }
    )
    return Fit(
        policy=policy,
        host_mb=host_mb,
        n_vms=n,
        fits=need <= 0 and cap_mb >= reserve,
        capacity_mb=cap_mb,
        demand_mb=demand / PAGES_PER_MIB,
        saved_mb=saved_mb,
        idle_tax_mb=idle_tax / PAGES_PER_MIB,
        boot_swap_mb=boot_swap / PAGES_PER_MIB,
        swap_mb=need / PAGES_PER_MIB,
        per_vm=per_vm,
        notes=notes,
    )


def _guest_free_pages(members, ps: PageSet, act: np.ndarray, backed: np.ndarray) -> np.ndarray:
    """Per VM, the memory its guest holds free: its ``guest_free`` pages when the table says,
    else its idle part (``1 − active`` of what it backs)."""
    from pagecore.vocab import GUEST_FREE_COLUMN

    out = (1 - act) * backed
    for j, (_, v, _, _) in enumerate(members):
        if GUEST_FREE_COLUMN in v.frame:
            out[j] = float(v.frame[GUEST_FREE_COLUMN].to_numpy(bool).sum())
    return out


def _esxi_break(members, ps: PageSet, need_pages: float, notes: list) -> dict:
    """ESXi breaks large pages, most savings first, until ``need_pages`` are won or all are
    broken. Salting keeps sharing within each VM, so each VM's greedy breaking order
    (:func:`pagecore.sharing.largepages.large_page_savings`) is its own, and the host's greedy
    order is their merge by gain (the next region is always the best of any VM's next)."""
    import heapq

    n = ps.n_vms
    curves = [_vm_curve(v, k, ps, j) for j, (_, v, k, _) in enumerate(members)]
    # the pages outside whole 2 MiB regions were never large pages: their pseudo-region (first in
    # each curve that has one) is broken from the start, whatever the pressure
    broken = np.array([c[3] for c in curves], np.int64)
    won = float(sum(c[0][1] for c in curves if c[3]))
    heap = [(-int(c[0][1 + c[3]]), j, 1 + c[3]) for j, c in enumerate(curves) if len(c[0]) > 1 + c[3]]
    heapq.heapify(heap)
    while heap and won < need_pages:
        g, j, pos = heapq.heappop(heap)
        won += -g
        broken[j] = pos
        if pos + 1 < len(curves[j][0]):
            heapq.heappush(heap, (-int(curves[j][0][pos + 1]), j, pos + 1))
    forced = int(sum(c[3] for c in curves))
    total_regions = sum(len(c[0]) - 1 for c in curves) - forced
    if need_pages <= 0:
        notes.append(f"{n} VMs: large pages intact (free memory stays above the high state)")
    else:
        notes.append(f"{n} VMs: {int(broken.sum()) - forced:,} of {total_regions:,} large pages broken under pressure")
    if forced:
        small = sum(int(c[3]) and int(np.sum(c[2] == c[1][0])) for c in curves)
        notes.append(
            f"{n} VMs: {small:,} pages lie outside whole 2 MiB regions (a hole, or a VM not a multiple of 2 MiB): "
            "small pages, shared (within each VM) from the start"
        )
    per_vm = {m: np.zeros(n) for m in ("zero", "share_intra", "share_inter")}
    shared = np.zeros(len(ps.vm), bool)
    for j, (_, v, k, _) in enumerate(members):
        z, intra, gone = _vm_broken_savings(v, k, ps, j, int(broken[j]), curves[j])
        per_vm["zero"][j] = z
        per_vm["share_intra"][j] = intra
        shared[np.flatnonzero((ps.vm == j) & ps.cost)[gone]] = True
    # gain_pages: the curve's own count, where every zero page in a broken region is saved; the
    # savings above keep one zero page per VM (its salt domain), as sharing_savings does.
    # shared: the pages those savings free (all copies of a content but one), never a victim of
    # compression or swapping
    return {
        "total": {m: float(a.sum()) for m, a in per_vm.items()},
        "per_vm": per_vm,
        "gain_pages": won,
        "shared": shared,
    }


def _vm_curve(v: HostVM, k: np.ndarray, ps: PageSet, j: int):
    """(gains with a leading 0, regions in breaking order, each page's region, 1 if the VM has
    pages outside whole 2 MiB regions else 0) of one VM alone (cached per input VM: a copy's keys
    are a one-to-one remap, so its order is the same).

    A region with a frame missing from the table cannot be one large page
    (:func:`pagecore.sharing.largepages.backable_regions`, as ``pagecore share`` counts them): its
    pages are small pages from the start. They are gathered into one pseudo-region that leads the
    breaking order (given more zero pages than any real region can gain, then taken off its gain),
    so the greedy order of the real regions is the one with those pages already small."""
    from pagecore.sharing.largepages import backable_regions, large_page_savings

    tag = "esxi_curve"
    if tag not in v.cache:
        sel = (ps.vm == j) & ps.cost
        gpfn, key, zero = ps.gpfn[sel], ps.key[sel], ps.zero[sel]
        reg = (gpfn // np.uint64(REGION_PAGES)).astype(np.int64)
        in_b, _, _ = backable_regions(np.zeros(len(gpfn), np.int64), gpfn)
        forced = int((~in_b).any())
        pad = 0
        if forced:
            pad = REGION_PAGES + 1  # a region's gain is at most its 512 pages
            reg = np.where(in_b, reg, int(reg.max()) + 1)
            gpfn = np.concatenate([reg, np.full(pad, reg.max())]).astype(np.uint64) * np.uint64(REGION_PAGES)
            key = np.concatenate([key, np.zeros(pad, np.uint64)])
            zero = np.concatenate([zero, np.ones(pad, bool)])
        _, curve = large_page_savings(np.zeros(len(gpfn), np.int64), gpfn, key, zero)
        gain = curve["gain"].to_numpy(np.int64).copy()
        order = curve["region"].to_numpy(np.int64)[1:]
        gain[1 : 1 + forced] -= pad
        v.cache[tag] = (gain, order, reg, forced)
    return v.cache[tag]


def _vm_broken_savings(v: HostVM, k, ps: PageSet, j: int, nbroken: int, curve) -> tuple[float, float, np.ndarray]:
    """Zero-page and intra-VM savings of one VM with its first ``nbroken`` regions broken, and
    which of its pages (those that cost memory, in order) they free: every copy of a content in
    the broken regions but its first (a copy's keys are a one-to-one remap: the same pages)."""
    tag = ("esxi_broken", nbroken)
    if tag not in v.cache:
        sel = (ps.vm == j) & ps.cost
        m = np.isin(curve[2], curve[1][:nbroken])
        key, zero = ps.key[sel], ps.zero[sel]
        content = np.where(zero, np.uint64(0), key)  # all zero pages one content
        cls = pd.factorize(pd.MultiIndex.from_arrays([zero, content]))[0]
        gone = m & pd.Series(np.where(m, cls, -1)).duplicated().to_numpy()
        v.cache[tag] = (float(max(int((m & zero).sum()) - 1, 0)), float((gone & ~zero).sum()), gone)
    return v.cache[tag]


def _esxi_compress(
    ps: PageSet,
    target: np.ndarray,
    need: float,
    settings: HostSettings,
    resident: np.ndarray | None = None,
    vm_pages: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(pages won by compression, pages swapped) per VM when ``need`` pages must be reclaimed.

    Each VM gives its share of ``need`` (in proportion to its allocation) from victims in random
    order among its ``resident`` pages (default all; never a page sharing has already freed, which
    would count it twice), as ESXi does for pages chosen for swapping: a victim that compresses to
    at most 2 KiB takes the smallest slot (1 or 2 KiB) that holds it while the VM's cache stays
    within ``Mem.MemZipMaxPct`` of the VM's memory size (``vm_pages``, as ``pagecore compress``
    and vSphere's resource management guide size it; default its allocation ``target``), winning
    a page minus its slot; any other victim is swapped, winning a whole page. Victims are taken
    until the VM's share is won; when every page is a victim and the share is still not won,
    compressed pages are swapped out of the cache (each then wins a whole page) until it is.
    """
    from pagecore.sharing.compress import ESXI_MAX_COMPRESSED, ESXI_SLOTS

    n = ps.n_vms
    won = np.zeros(n)
    swapped = np.zeros(n)
    share = target / max(target.sum(), 1) * need
    rng = np.random.default_rng(settings.seed)
    slots = sorted(ESXI_SLOTS)
    for i in range(n):
        if share[i] <= 0:
            continue
        idx = rng.permutation(np.flatnonzero((ps.vm == i) & ps.cost & (True if resident is None else resident)))
        cs = ps.csize[idx].astype(np.int64)
        slot = np.zeros(len(cs), np.int64)
        for sz in reversed(slots):
            slot[cs <= sz] = sz
        ok = (cs <= ESXI_MAX_COMPRESSED) & (slot > 0)
        cap = (target if vm_pages is None else vm_pages)[i] * PAGE_BYTES * settings.esxi_memzip_max_pct / 100.0
        ok &= np.cumsum(np.where(ok, slot, 0)) <= cap
        gain = np.where(ok, 1.0 - slot / PAGE_BYTES, 1.0)
        k = int(np.searchsorted(np.cumsum(gain), share[i] - 1e-9)) + 1
        k = min(k, len(gain))
        won[i] = gain[:k][ok[:k]].sum()
        swapped[i] = float((~ok[:k]).sum())
        short = share[i] - won[i] - swapped[i]
        if short > 1e-9:  # every page a victim and still short: compressed pages go on to swap (each frees its slot)
            freed = np.cumsum(slot[:k][ok[:k]] / PAGE_BYTES)
            m = min(int(np.searchsorted(freed, short - 1e-9)) + 1, len(freed))
            won[i] -= float(gain[:k][ok[:k]][:m].sum())
            swapped[i] += m
    return won, swapped


def consolidation(vms, keys, policy: str, host_mb: float, settings: HostSettings, cache: dict | None = None):
    """The largest N (1 … ``max_vms``) whose mix fits on ``host_mb``; the fits evaluated.

    Exponential then binary search over N, assuming more VMs never need less memory (each
    adds its overhead and at least nothing); both neighbours of the answer are evaluated.
    """
    settings.validate()  # a max_vms of 4.5 assigned after construction never ended the search below
    cache = {} if cache is None else cache

    def fit(n):
        if n not in cache:
            check_mix_size(vms, n, "--max-vms (host.max_vms)")
            cache[n] = evaluate(replicate(vms, keys, n, settings.replicas), policy, host_mb, settings)
        return cache[n]

    if not fit(1).fits:
        return 0, cache
    lo, hi = 1, 2
    while hi <= settings.max_vms and fit(hi).fits:
        lo, hi = hi, hi * 2
    hi = min(hi, settings.max_vms + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fit(mid).fits:
            lo = mid
        else:
            hi = mid
    return lo, cache


# ------------------------------------------------------------------------------ over time
def thp_backing(members, ps: PageSet, sel: np.ndarray, ks, settings: HostSettings):
    """The :class:`~pagecore.sharing.ksm.ThpBacking` of the pages KSM walks (``sel`` of
    :func:`page_set`'s pages, in order), so the emulator models the stale zero node of
    THP-backed guest RAM as the real-KSM check validated it (``pagecore qemu ksmcheck``), or None
    (``kvm_thp`` off, ``use_zero_pages`` on, or ``stale_zero_node`` off).

    Huge pages: with the host view, the pages with ``host_thp``, grouped by 2 MiB block of the
    host virtual address (``mapping`` + position, else the guest frame number), as
    :func:`pagecore.qemu.ksmcheck.walk_thp` does; without it the policy's assumption that all of
    guest RAM is THP-backed: each 2 MiB-aligned block of guest frames is one huge page. The
    all-zero pieces that are walked but never merged are the pages :func:`page_set` made
    ineligible (with the host view: all-zero pages with ``host_thp``; without: the pages of an
    all-zero huge page). Without the host view the model therefore cannot change a prediction:
    the only unmergeable all-zero pieces lie in all-zero huge pages, where nothing merges, so the
    zero node never goes stale (the zero pages of mixed huge pages merge as zero pages, standing
    for their return to the zero page when the huge page is split)."""
    from pagecore.sharing.ksm import ThpBacking

    if not settings.kvm_thp or ks.use_zero_pages or not ks.stale_zero_node:
        return None
    blocks, start = [], 0
    for j, (_, v, _, _) in enumerate(members):
        f = v.frame
        n = len(f)
        gpfn = f["gpfn"].to_numpy(np.uint64).astype(np.int64)
        if all(c in f for c in HOST_VIEW_COLUMNS):
            thp = f["host_thp"].to_numpy(bool)
        else:
            thp = np.ones(n, bool)
        if "mapping" in f:
            mp = f["mapping"].to_numpy(np.uint64).astype(np.int64)
            first = pd.Series(gpfn).groupby(mp).transform("min").to_numpy()
            addr = mp + (gpfn - first) * 4096
        else:
            mp, addr = np.zeros(n, np.int64), gpfn * 4096
        key = pd.MultiIndex.from_arrays([np.full(n, j), mp, addr >> 21])
        blocks.append(np.where(thp, pd.factorize(key)[0] + start, -1))
        start += n  # factorize ids are < n: one id space over all VMs
    block = np.concatenate(blocks) if blocks else np.zeros(0, np.int64)
    zero = (block >= 0) & ~ps.eligible
    block, zero = block[sel], zero[sel]
    if not (block >= 0).any():
        return None
    return ThpBacking(block.astype(np.int64), zero)


def scan_over_time(members, policy: str, settings: HostSettings) -> dict:
    """Run the policy's scanner on ``members`` until it converges: the savings timeline (MiB),
    the time to 90 % of the converged savings and the scanning rate."""
    from pagecore.sharing.pagehistory import PageHistory

    ps = page_set(members, policy, settings)
    ksm = policy in ("kvm-ksm", "cooperative")
    # KSM walks every page that costs memory; the ineligible ones (all-zero pieces of a THP) cost
    # a visit but never merge (measured on real KSM: ksmcheck's walk_history), so they walk with
    # contents of their own
    sel = ps.cost.copy() if ksm else ps.eligible & ps.cost
    if policy == "cooperative":  # KSM on what free page reporting leaves
        sel &= ~_reported(members, ps, settings)
    key = ps.key[sel].copy()
    vm = ps.vm[sel]
    zero = ps.zero[sel].copy()
    if ksm:
        lone = ~ps.eligible[sel]
        key[lone] = _mix64(np.flatnonzero(lone).astype(np.uint64) ^ np.uint64(0x7A11_0000_0000_0001))
        zero[lone] = False
    if policy == "esxi":  # salting: each VM its own hash domain (zero pages too)
        key = _mix64(key ^ (vm.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
        zero[:] = False
    hist = PageHistory.from_pages(key, zero, vm, ps.names)
    if ksm:
        from pagecore.sharing.ksm import emulate_ksm

        ks = _ksm_settings(settings, len(key))
        wake_s = ks.sleep_millisecs / 1000.0 + ks.pages_to_scan * ks.scan_us_per_page * 1e-6
        if not wake_s > 0:
            raise ConfigError(
                "host.ksm: sleep_millisecs 0 with scan_us_per_page 0 makes KSM scan in no time at all "
                "(every time would be 0 s); set sleep_millisecs >= 1 or a scan_us_per_page"
            )
        r = emulate_ksm(hist, ks, thp=thp_backing(members, ps, sel, ks, settings))
        tl = r.timeline
        saved = tl["pages_sharing"].to_numpy(float) + tl["ksm_zero_pages"].to_numpy(float)
        rate = ks.pages_to_scan / wake_s
        what = "pages compared per second (KSM visits)"
        full_scan_s = len(key) / rate if rate else math.inf
    else:
        from pagecore.sharing.scanner import EsxScanner

        ss = _scanner_settings(settings)
        em = EsxScanner(hist, ss)
        try:  # rates that cannot finish a pass in the emulated time: refused, not a partial answer
            em.check_can_settle()
        except ValueError as exc:
            raise ConfigError(f"host.scanner ({policy}): {exc}") from None
        r = em.run()
        tl = r.timeline
        saved = tl["reclaimed_pages"].to_numpy(float)
        rate = min(ss.scan_rate_vm * ps.n_vms, ss.scan_rate_total)
        what = "pages hashed per second (ESX scanner)"
        full_scan_s = len(key) / rate if rate else math.inf
    from pagecore.sharing.ksmtime import time_to_fraction

    t = tl["t"].to_numpy(float)
    final = float(saved[-1]) if len(saved) else 0.0
    t90 = float(time_to_fraction(t, saved, 0.9)) if len(saved) else 0.0  # the real-KSM check's definition
    return {
        "policy": policy,
        "vms": ps.n_vms,
        "pages": len(key),
        "converged_saved_mb": final / PAGES_PER_MIB,
        # False: a time or scan limit stopped the run first (the savings and the time to 90 %
        # are then those of an unfinished run; the fits' notes say so)
        "settled": bool(r.settled),
        "seconds_to_90pct": t90,
        "scan_pages_per_s": float(rate),
        "scan_rate_means": what,
        "full_scan_s": float(full_scan_s),
        "timeline": pd.DataFrame({"policy": policy, "t_s": t, "saved_mb": saved / PAGES_PER_MIB}),
    }


# ------------------------------------------------------------------------------ the replay
def replay(
    members,
    policy: str,
    host_mb: float,
    settings: HostSettings,
    sim_cfg: dict | None = None,
    *,
    boot_s: float = 60.0,
    duration_s: float | None = None,
    period_s: float = 30.0,
) -> dict:
    """Run the paper's memory manager (:mod:`pagecore.sim`, ``sharing: content``: the scanner
    inside the replay) on ``members`` with their real page contents, and report what it swaps.

    Every VM boots at t = 0 and touches each of its pages once in random order within
    ``boot_s`` (the page's content, from its page table, loads on that first touch); then every
    ``period_s`` it reads its active pages (``active`` of them, a fixed random set). Reads keep
    shared pages shared; the idle pages are what sampling finds idle and the balloon takes.
    ``esxi`` keeps each VM's contents to itself (salting); a VM's ``limit_mb`` caps what it holds
    (``VMSpec.limit_mb``: ballooned, then swapped, however free the host); large pages and
    compression are not in the replay. The run lasts ``duration_s`` (default: three passes of the scanner over all
    pages at its rates, at least 15 minutes). Returns the memory written to swap after boot
    (MiB; the mix fits when it is 0 and admission control refused no VM), during boot, and the
    replay's swapped, shared and ballooned memory at the end.
    """
    from pagecore.config import load_config
    from pagecore.sim.contents import contents_from_page_tables
    from pagecore.sim.engine import DEFAULT_MECHANISMS
    from pagecore.sim.scenarios import sim_params
    from pagecore.synth.specs import HostSpec, VMSpec

    if policy not in ("esx2002", "esxi"):
        raise ConfigError(f"host: the replay runs the ESX manager (esx2002, esxi), not {policy}")
    sim_cfg = sim_cfg if sim_cfg is not None else load_config()["sim"]
    rng = np.random.default_rng(settings.seed)
    if duration_s is None:
        ss = _scanner_settings(settings)
        total = sum(len(v.frame) for _, v, _, _ in members)
        rate = min(ss.scan_rate_vm * len(members), ss.scan_rate_total)
        duration_s = max(900.0, boot_s + 3 * total / rate)
    specs, rows, tables = [], [], []
    for name, v, k, _ in members:
        n = len(v.frame)
        specs.append(
            VMSpec(
                name=name,
                max_mb=n / PAGES_PER_MIB,
                min_mb=min(v.reservation_mb, n / PAGES_PER_MIB),
                shares=v.shares,
                overhead_mb=settings.vm_overhead_mb,
                balloon_driver_s=boot_s,
                limit_mb=v.limit_mb,
            )
        )
        z = v.frame["zero"].to_numpy(bool)
        key = k if policy != "esxi" else _mix64(k ^ np.uint64(len(tables) * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF))
        tables.append(pd.DataFrame({"vm": name, "gpfn": np.arange(n, dtype=np.uint64), "hash": key, "zero": z}))
        order = rng.permutation(n)
        t_boot = np.sort(rng.uniform(0.0, boot_s, n))
        rows.append(pd.DataFrame({"t": t_boot, "vm": name, "gpfn": order.astype(np.uint64), "write": True,
                                  "zero": z[order]}))  # fmt: skip
        act = rng.permutation(n)[: round(v.active * n)]
        for t0 in np.arange(boot_s, duration_s, period_s):
            ts = np.sort(t0 + rng.uniform(0.0, period_s, len(act)))
            rows.append(
                pd.DataFrame({"t": ts, "vm": name, "gpfn": act.astype(np.uint64), "write": False, "zero": False})
            )

    trace = pd.concat(rows, ignore_index=True).sort_values(["t"], kind="stable").reset_index(drop=True)
    trace["vm"] = trace["vm"].astype("category")
    contents = contents_from_page_tables(
        pd.concat(tables, ignore_index=True), {sp.name: round(sp.max_mb * PAGES_PER_MIB) for sp in specs}
    )

    class _Scenario:  # what sim_params needs of a scenario
        name = "host"
        tau_schedule_min = ()

    _Scenario.duration_s = duration_s
    params = sim_params(
        sim_cfg, _Scenario, tau=settings.tau, mechanisms={**DEFAULT_MECHANISMS, **(sim_cfg.get("mechanisms") or {}),
                                                          "sharing": "content"}
    )  # fmt: skip
    host = HostSpec(system_mb=host_mb, esx_mb=settings.hypervisor_mb, overhead_used_mb=settings.vm_overhead_mb)
    from pagecore.sim.engine import simulate

    res = simulate(specs, host, params, trace, contents)
    vmtl, ev = res.vms, res.events
    refused = sorted(ev.loc[ev["event"] == "refused", "vm"].astype(str).unique()) if len(ev) else []
    settle = boot_s + 2 * period_s  # boot done and the balloon drivers running
    per_t = vmtl.groupby("t")[["swap_out", "swapped", "shared", "balloon"]].sum()
    before = per_t[per_t.index <= settle]
    out_at_settle = float(before["swap_out"].iloc[-1]) if len(before) else 0.0
    last = per_t.iloc[-1] if len(per_t) else pd.Series({"swap_out": 0.0, "swapped": 0.0, "shared": 0.0, "balloon": 0.0})
    return {
        "policy": policy,
        "host_mb": host_mb,
        "vms": len(members),
        "refused": refused,
        "duration_s": duration_s,
        "swap_out_after_boot_mb": float(last["swap_out"]) - out_at_settle,
        "swap_out_in_boot_mb": out_at_settle,
        "swapped_mb_end": float(last["swapped"]),
        "shared_mb_end": float(last["shared"]),
        "balloon_mb_end": float(last["balloon"]),
        "fits": not refused and float(last["swap_out"]) - out_at_settle <= 0.0,
    }


# ------------------------------------------------------------------------------ the report
def _reported(members, ps: PageSet, settings: HostSettings | None = None) -> np.ndarray:
    """Pages free page reporting discards (whole free 2 MiB chunks above the zone watermark),
    per page of ``ps``; the VMs must carry ``guest_free``."""
    from pagecore.experiments.cooperative import reportable_mask
    from pagecore.vocab import GUEST_FREE_COLUMN

    settings = settings or HostSettings()
    out = []
    for _, v, _, _ in members:
        if GUEST_FREE_COLUMN not in v.frame:
            raise InputError(
                v.source or None,
                f"VM {v.name}: the cooperative policy needs the guest's free pages (a {GUEST_FREE_COLUMN} column, "
                "from `pagecore qemu freereport` or a synthetic guest); pagecore does not guess them",
            )
        if "reported" not in v.cache:
            v.cache["reported"] = reportable_mask(v.frame, settings.reporting_params())
        out.append(v.cache["reported"])
    return np.concatenate(out) if out else np.zeros(0, bool)


def check_reservations(vms: list[HostVM], host_mb: float, settings: HostSettings) -> None:
    """One line when the host cannot hold the VMs' reservations and overheads at all."""
    need = settings.hypervisor_mb + sum(v.reservation_mb + settings.vm_overhead_mb for v in vms)
    if need > host_mb:
        big = max(vms, key=lambda v: v.reservation_mb)
        lower = (
            f"lower reservation_mb of VM {big.name} ({big.reservation_mb:g})"
            if big.reservation_mb > 0
            else f"lower vm_overhead_mb ({settings.vm_overhead_mb:g} per VM) or hypervisor_mb"
        )
        raise ConfigError(
            f"host: {host_mb:g} MiB is smaller than the {len(vms)} VMs' reservations and overheads ({need:g} MiB): "
            f"give at least {math.ceil(need)} MiB or {lower}"
        )


def host_report(
    vms: list[HostVM], settings: HostSettings, *, dump_dir=None, progress=None, with_replay: bool = False
) -> dict:
    """The whole answer: per policy and host size, savings per mechanism, the consolidation
    answer, boot-time swap, the time to 90 % and the scanning cost (see the module docstring).
    ``with_replay``: also run the memory-manager replay (:func:`replay`) at each ESX policy's
    consolidation answer and one VM more, as a cross-check of the steady-state model."""
    if not isinstance(settings, HostSettings):
        raise ConfigError(f"host: settings must be a HostSettings, got {type(settings).__name__}")
    settings.validate()  # fields assigned after construction are checked too
    check_reservations(vms, max(settings.memory_mb), settings)
    n_in = len(vms)
    n_emu = settings.emulate_vms or n_in
    check_mix_size(vms, n_emu, "--emulate-vms")  # before any work
    for v in vms:
        v.cache.clear()
    keys = content_keys(vms, settings.verify, dump_dir)
    rows, timelines, scans, fits = [], [], {}, []
    steps = [(p, h) for p in settings.policies for h in settings.memory_mb]
    for p in settings.policies:
        scans[p] = scan_over_time(replicate(vms, keys, n_emu, settings.replicas), p, settings)
        timelines.append(scans[p].pop("timeline"))
    for p, h in steps:
        n_fit, cache = consolidation(vms, keys, p, h, settings)
        at = cache[max(n_fit, 1)] if n_fit else cache[1]
        mine = cache.get(n_in) or evaluate(replicate(vms, keys, n_in, settings.replicas), p, h, settings)
        fits.append({"policy": p, "host_mb": h, "vms_fit": n_fit, "evaluated": sorted(cache),
                     "at_max_vms": n_fit == settings.max_vms})  # fmt: skip
        for m_ in MECHANISMS:
            rows.append(
                {
                    "policy": p,
                    "host_mb": h,
                    "vms_fit": n_fit,
                    "kind": "saving",
                    "mechanism": m_,
                    "saved_mb_input_vms": mine.saved_mb[m_],
                    "saved_mb_at_fit": at.saved_mb[m_] if n_fit else 0.0,
                    "boot_swap_mb_at_fit": at.boot_swap_mb if n_fit else 0.0,
                    "swap_mb_input_vms": mine.swap_mb,
                    "seconds_to_90pct": scans[p]["seconds_to_90pct"],
                    "scan_pages_per_s": scans[p]["scan_pages_per_s"],
                }
            )
        rows.append(
            {
                "policy": p,
                "host_mb": h,
                "vms_fit": n_fit,
                "kind": "reallocation",
                "mechanism": "idle_tax",
                "saved_mb_input_vms": mine.idle_tax_mb,
                "saved_mb_at_fit": at.idle_tax_mb if n_fit else 0.0,
                "boot_swap_mb_at_fit": at.boot_swap_mb if n_fit else 0.0,
                "swap_mb_input_vms": mine.swap_mb,
                "seconds_to_90pct": scans[p]["seconds_to_90pct"],
                "scan_pages_per_s": scans[p]["scan_pages_per_s"],
            }
        )
        fits[-1]["notes"] = list(dict.fromkeys(mine.notes + (at.notes if n_fit else [])))
        if not scans[p]["settled"]:
            fits[-1]["notes"].insert(
                0,
                f"the {p} scan stopped before it settled: its savings over time and time to 90 % are those "
                "of an unfinished scan (raise the scan rates)",
            )
        if n_fit == settings.max_vms:  # the search stopped at the bound: a lower bound, not the answer
            fits[-1]["notes"].insert(
                0,
                f"{n_fit} VMs is max_vms (--max-vms): at least this many fit; "
                + (
                    f"raise it (at most {MAX_VMS:,}) to find how many"
                    if n_fit < MAX_VMS
                    else "pagecore searches no further"
                ),
            )
        if progress:
            progress()
    table = pd.DataFrame(rows)
    return {
        "vms": [
            {
                "name": v.name,
                "source": v.source,
                "size_mb": v.size_mb,
                "reservation_mb": v.reservation_mb,
                "shares": v.shares,
                "activity": v.activity,
                "active": v.active,
                "ksm_eligibility": "host_view" if all(c in v.frame for c in HOST_VIEW_COLUMNS) else "all",
            }
            for v in vms
        ],
        "settings": {k: v for k, v in settings.__dict__.items()},
        "mechanisms": list(MECHANISMS),
        "reallocations": ["idle_tax"],
        "scan": scans,
        "fits": fits,
        "rows": table,
        "timelines": pd.concat(timelines, ignore_index=True) if timelines else pd.DataFrame(),
        "replay": _replays(vms, keys, fits, settings) if with_replay else [],
    }


def _replays(vms, keys, fits: list, settings: HostSettings) -> list:
    out = []
    for f in fits:
        if f["policy"] not in ("esx2002", "esxi"):
            continue
        for n in sorted({max(f["vms_fit"], 1), f["vms_fit"] + 1}):
            check_mix_size(vms, n, "--max-vms (host.max_vms)")
            r = replay(replicate(vms, keys, n, settings.replicas), f["policy"], f["host_mb"], settings)
            out.append({**r, "model_fits": n <= f["vms_fit"]})
    return out


def settings_from_config(cfg: dict, **over) -> HostSettings:
    """:class:`HostSettings` from the workflow config's ``host:`` section."""
    h = dict(cfg or {})
    for k in ("vms", "guests", "approaches_real"):  # workflow-only keys
        h.pop(k, None)
    known = set(HostSettings.__dataclass_fields__)
    bad = sorted(set(h) - known)
    if bad:
        raise ConfigError(f"host: unknown key {bad[0]!r}")
    if "policies" in h:
        h["policies"] = tuple(h["policies"])
    h.update({k: v for k, v in over.items() if v is not None})
    return HostSettings(**h)


__all__ = [
    "ACTIVITY_PROFILES",
    "POLICIES",
    "Fit",
    "HostSettings",
    "HostVM",
    "check_reservations",
    "check_vm_entry",
    "consolidation",
    "content_keys",
    "evaluate",
    "host_report",
    "load_vm",
    "load_vms",
    "parse_activity",
    "replay",
    "replicate",
    "scan_over_time",
    "settings_from_config",
    "sharing_savings",
]
