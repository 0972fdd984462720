"""Deterministic access-trace generators standing in for the paper's workloads (§5–§6).

They are *models*: they take workload parameters (the ``workloads:`` section of the config,
each value with its source) and never read the paper's results.

Access trace (DESIGN.md contract, Parquet)
------------------------------------------
=========  ===========================  ===========================================================
column     type                         meaning
=========  ===========================  ===========================================================
t          float64                      seconds of the VM's own execution time since power-on
vm         dictionary<int32, string>    VM name
gpfn       uint64                       guest-physical frame of the datum touched
write      bool                         the access writes the page
zero       bool                         the write fills the page with zeros (boot-time zeroing,
                                        Windows' zero page thread); optional, false if absent
=========  ===========================  ===========================================================

Rows are sorted by ``t`` (ties in generation order) and written in row groups of
``chunk_s`` seconds, so replays stream them with bounded memory (:func:`read_trace`).
File metadata (key ``pagecore``, JSON): scenario name, seed, chunk_s, pagecore version.

The guest model
---------------
Each VM's frames are laid out as ``[0, os_mb)`` OS/kernel data, then the foreground region
(the toucher's memory, a file server's buffer cache, an application's working set):

* **boot** (``boot``): OS pages are written once, uniformly over ``boot_s`` seconds; a Windows
  guest with ``zero: true`` then zeroes every other frame once, in random order, at
  ``zero_mb_s`` (Windows zeroes all "physical" memory at boot, §6.3). The balloon driver
  starts when the boot (loading plus zeroing) is over.
* **background** (``background``): the first ``mb`` MB of OS pages, each touched once every
  ``period_s`` at a fixed random phase (Windows background activity, 10–20 MB in Figure 6).
* **foreground** (``foreground``): a schedule of ``[from_min, to_min, mb]`` phases in host
  minutes; during a phase the first ``mb`` MB of the region are each touched once every
  ``period_s`` (a fixed random phase per page); the first period of a phase writes every page
  (allocation), later touches write with probability ``write_frac``.
  An optional cold tail of ``cold_mb`` (capped by the VM size) is touched once every
  ``cold_period_s`` while the foreground runs: data the guest keeps cached but rarely uses
  (a file server's buffer cache fills all memory it is given).
* **zero page thread** (``zpt_mb_s > 0``, Windows): when the foreground becomes idle
  (``mb = 0``), every region page dirtied since the last run is zeroed at ``zpt_mb_s`` — the
  ZPT spike of Figure 6. With the scenario's ``free_on_shrink`` (default false), a phase that
  is smaller than the one before also frees the pages it gives up, and the zero page thread
  zeroes them at the start of the phase (an application that releases memory instead of
  keeping it cached; a what-if, no source says which Figure 8's applications did).

Per-event write flags come from a counter-based hash of (seed, vm, page, touch number), so
the trace does not depend on ``chunk_s``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pagecore import __version__
from pagecore._sort import stable_argsort
from pagecore._util import atomic_path
from pagecore.errors import ConfigError, InputError, not_a_file
from pagecore.synth.specs import HostSpec, VMSpec

META_KEY = b"pagecore"
PAGES_PER_MB = 256

ACCESS_TRACE_SCHEMA = pa.schema(
    [
        pa.field(
            "t", pa.float64(), nullable=False, metadata={"unit": "s", "description": "VM's own run time since power-on"}
        ),
        pa.field("vm", pa.dictionary(pa.int32(), pa.string()), nullable=False, metadata={"description": "VM name"}),
        pa.field(
            "gpfn",
            pa.uint64(),
            nullable=False,
            metadata={"unit": "page (4096 bytes)", "description": "guest-physical frame referenced"},
        ),
        pa.field("write", pa.bool_(), nullable=False, metadata={"description": "the reference writes"}),
        pa.field("zero", pa.bool_(), nullable=False, metadata={"description": "the write fills the page with zeros"}),
    ]
)

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer, vectorized (uint64 in, uint64 out)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _unit(x: np.ndarray) -> np.ndarray:
    """uint64 -> float64 in [0, 1)."""
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass
class VMWorkload:
    """One VM of a scenario: its spec for the simulator and its access pattern."""

    name: str
    os: str
    max_mb: float
    min_mb: float = 0.0
    shares: float | None = None
    overhead_mb: float = 32.0
    start_min: float = 0.0
    boot: dict = field(default_factory=dict)
    background: dict = field(default_factory=dict)
    foreground: dict = field(default_factory=dict)
    zpt_mb_s: float = 0.0
    balloon_driver_delay_s: float = 0.0
    #: the guest zeroes the pages its balloon gives back (VMSpec.zero_freed; None: Windows guests do)
    zero_freed: bool | None = None
    free_on_shrink: bool = False  # the scenario's ``free_on_shrink`` (see the module docstring)

    def __post_init__(self):
        b = {"zero": False, "zero_mb_s": 2.0, "os_mb": 32.0, "boot_s": 30.0, **self.boot}
        self.boot = b
        self.background = {"mb": 0.0, "period_s": 30.0, "write_frac": 0.3, **self.background}
        self.foreground = {
            "period_s": 30.0,
            "write_frac": 0.5,
            "schedule": [],
            "cold_mb": 0.0,
            "cold_period_s": 300.0,
            **self.foreground,
        }
        if b["os_mb"] > self.max_mb:
            raise ConfigError(f"workload {self.name}: boot.os_mb {b['os_mb']} exceeds max_mb {self.max_mb}")
        for part in ("background", "foreground"):
            d = getattr(self, part)
            if not 0.0 <= d["write_frac"] <= 1.0:
                raise ConfigError(f"workload {self.name}: {part}.write_frac must be in [0, 1], got {d['write_frac']}")
            if not d["period_s"] > 0:
                raise ConfigError(f"workload {self.name}: {part}.period_s must be > 0, got {d['period_s']}")
        if self.background["mb"] > b["os_mb"]:
            raise ConfigError(f"workload {self.name}: background.mb must be <= boot.os_mb")
        for row in self.foreground["schedule"]:
            if len(row) != 3 or row[1] < row[0]:
                raise ConfigError(
                    f"workload {self.name}: foreground.schedule rows are [from_min, to_min, mb], got {row}"
                )
            if (
                b["os_mb"] + row[2] + self.foreground["cold_mb"] > self.max_mb + 1e-9
                and self.foreground["cold_mb"] == 0
            ):
                raise ConfigError(
                    f"workload {self.name}: foreground {row[2]} MB does not fit above os_mb in max_mb {self.max_mb}"
                )

    @property
    def pages(self) -> int:
        return round(self.max_mb * PAGES_PER_MB)

    @property
    def os_pages(self) -> int:
        return round(self.boot["os_mb"] * PAGES_PER_MB)

    @property
    def boot_s(self) -> float:
        """Boot duration in VM seconds: loading (``boot_s``) plus, for zeroing guests, the
        zeroing time."""
        t = float(self.boot["boot_s"])
        if self.boot["zero"]:
            t += (self.max_mb - self.boot["os_mb"]) / self.boot["zero_mb_s"]
        return t

    def spec(self) -> VMSpec:
        return VMSpec(
            name=self.name,
            max_mb=self.max_mb,
            min_mb=self.min_mb,
            shares=self.shares,
            overhead_mb=self.overhead_mb,
            start_s=60.0 * self.start_min,
            balloon_driver_s=self.boot_s + self.balloon_driver_delay_s,
            os=self.os,
            zero_freed=None if self.zero_freed is None else bool(self.zero_freed),  # a swept flag may be 0.0 / 1.0
        )


@dataclass
class Scenario:
    """A scenario: host, VMs with workloads, duration, τ schedule and simulator overrides."""

    name: str
    duration_min: float
    host: HostSpec
    vms: list[VMWorkload]
    seed: int = 0
    chunk_s: float = 60.0
    tau_schedule_min: list = field(default_factory=list)

    def specs(self) -> list[VMSpec]:
        return [v.spec() for v in self.vms]

    def spec_frame(self) -> pd.DataFrame:
        """The workload spec table (DESIGN.md): one row per VM."""
        rows = []
        for v in self.vms:
            s = v.spec()
            rows.append(
                {
                    "vm": s.name,
                    "os": s.os,
                    "max_mb": s.max_mb,
                    "min_mb": s.min_mb,
                    "shares": s.shares,
                    "overhead_mb": s.overhead_mb,
                    "start_s": s.start_s,
                    "balloon_driver_s": s.balloon_driver_s,
                }
            )
        return pd.DataFrame(rows)

    @property
    def duration_s(self) -> float:
        return 60.0 * self.duration_min


def scenario(name: str, cfg: dict, seed: int = 0, chunk_s: float = 60.0) -> Scenario:
    """Build a :class:`Scenario` from its config section ``workloads.<name>``."""
    try:
        host = HostSpec(**cfg["host"])
        free_on_shrink = bool(cfg.get("free_on_shrink", False))  # a scenario key, given to each VM
        vms = [VMWorkload(**v, free_on_shrink=free_on_shrink) for v in cfg["vms"]]
    except TypeError as exc:
        raise ConfigError(f"config key workloads.{name}: {exc}") from None
    return Scenario(
        name,
        float(cfg["duration_min"]),
        host,
        vms,
        seed=seed,
        chunk_s=chunk_s,
        tau_schedule_min=[tuple(x) for x in cfg.get("tau_schedule_min", [])],
    )


# ------------------------------------------------------------------------------ generation
class _VMGen:
    """Event generator for one VM over windows of VM time."""

    def __init__(self, w: VMWorkload, idx: int, seed: int, duration_vm: float):
        self.w = w
        self.key = np.uint64((seed * 1_000_003 + idx * 7919 + 1) & 0xFFFFFFFFFFFFFFFF)
        rng = np.random.default_rng([seed, idx])
        n = w.pages
        osp = w.os_pages
        self.boot_s = w.boot_s
        self.duration = duration_vm
        # boot: OS pages written once over boot_s; the rest zeroed once (Windows) in random order
        self.os_order = rng.permutation(osp).astype(np.uint64)
        self.zero_order = (
            (osp + rng.permutation(n - osp)).astype(np.uint64) if w.boot["zero"] else np.zeros(0, np.uint64)
        )
        # background loop
        bgp = round(w.background["mb"] * PAGES_PER_MB)
        self.bg_pages = np.arange(bgp, dtype=np.uint64)
        self.bg_phase = rng.random(bgp) * w.background["period_s"]
        # foreground region: fixed random phase per page
        fgmax = max([r[2] for r in w.foreground["schedule"]] + [0.0])
        fgp = round(fgmax * PAGES_PER_MB)
        self.fg_pages = (osp + np.arange(fgp)).astype(np.uint64)
        self.fg_phase = rng.random(fgp) * w.foreground["period_s"]
        # cold tail of the foreground (e.g. a file server's rarely re-read files), capped at max
        cold = min(round(w.foreground["cold_mb"] * PAGES_PER_MB), n - osp - fgp)
        self.cold_pages = (osp + fgp + np.arange(max(cold, 0))).astype(np.uint64)
        self.cold_phase = rng.random(self.cold_pages.size) * w.foreground["cold_period_s"]
        # phases in VM seconds; ZPT sweeps at the start of idle phases
        off = 60.0 * w.start_min
        self.phases = [
            (60.0 * a - off, 60.0 * b - off, round(mb_ * PAGES_PER_MB)) for a, b, mb_ in w.foreground["schedule"]
        ]
        self.zpt = []  # (t0, pages array) sweeps
        if w.zpt_mb_s > 0:
            hw = 0
            for a, _b, p in self.phases:
                if p == 0 and hw > 0:
                    self.zpt.append((max(a, 0.0), rng.permutation(self.fg_pages[:hw])))
                    hw = 0
                elif w.free_on_shrink and 0 < p < hw:  # the pages given up are freed, then zeroed
                    self.zpt.append((max(a, 0.0), rng.permutation(self.fg_pages[p:hw])))
                    hw = p
                hw = max(hw, p)

    def _loop(self, pages, phase, period, a, b, lo, hi, write_frac, first_write_until, tag):
        """Touches of ``pages`` at phase + k·period within [max(a,lo), min(b,hi))."""
        s, e = max(a, lo), min(b, hi)
        if e <= s or pages.size == 0:
            return None
        k0 = np.ceil((s - phase) / period)
        k1 = np.ceil((e - phase) / period)
        cnt = np.maximum(k1 - k0, 0).astype(np.int64)
        tot = int(cnt.sum())
        if tot == 0:
            return None
        rep = np.repeat(np.arange(pages.size), cnt)
        start = np.repeat(np.cumsum(cnt) - cnt, cnt)
        k = np.repeat(k0, cnt) + (np.arange(tot) - start)
        t = phase[rep] + k * period
        g = pages[rep]
        h = _mix(
            self.key
            ^ _mix(g * np.uint64(0x10001) + (k.astype(np.int64).astype(np.uint64) << np.uint64(20)) + np.uint64(tag))
        )
        wr = (_unit(h) < write_frac) | (t < first_write_until)
        return t, g, wr, np.zeros(tot, np.bool_)

    def _sweep(self, order, t0, rate_pages_s, lo, hi, zero):
        """``order[i]`` touched (written) at ``t0 + i / rate`` within [lo, hi)."""
        if order.size == 0:
            return None
        i0 = max(0, math.ceil((lo - t0) * rate_pages_s))
        i1 = min(order.size, max(0, math.ceil((hi - t0) * rate_pages_s)))
        if i1 <= i0:
            return None
        i = np.arange(i0, i1)
        t = t0 + i / rate_pages_s
        n = i1 - i0
        return t, order[i0:i1], np.ones(n, np.bool_), np.full(n, zero, np.bool_)

    def window(self, lo, hi):
        w = self.w
        parts = []
        hi = min(hi, self.duration)
        if hi <= lo:
            return parts
        bs = max(float(w.boot["boot_s"]), 1e-9)
        parts.append(self._sweep(self.os_order, 0.0, self.os_order.size / bs, lo, hi, False))
        if w.boot["zero"]:
            zr = w.boot["zero_mb_s"] * PAGES_PER_MB
            parts.append(self._sweep(self.zero_order, float(w.boot["boot_s"]), zr, lo, hi, True))
        bg = w.background
        parts.append(
            self._loop(self.bg_pages, self.bg_phase, bg["period_s"], 0.0, math.inf, lo, hi, bg["write_frac"], -1.0, 1)
        )
        fg = w.foreground
        for j, (a, b, p) in enumerate(self.phases):
            if p > 0:
                parts.append(
                    self._loop(
                        self.fg_pages[:p],
                        self.fg_phase[:p],
                        fg["period_s"],
                        a,
                        b,
                        lo,
                        hi,
                        fg["write_frac"],
                        a + fg["period_s"],
                        2 + j,
                    )
                )
                parts.append(
                    self._loop(
                        self.cold_pages,
                        self.cold_phase,
                        fg["cold_period_s"],
                        a,
                        b,
                        lo,
                        hi,
                        fg["write_frac"],
                        a + fg["cold_period_s"],
                        1000 + j,
                    )
                )
        for t0, pages in self.zpt:
            parts.append(self._sweep(pages, t0, w.zpt_mb_s * PAGES_PER_MB, lo, hi, True))
        return [p for p in parts if p is not None]


def generate(sc: Scenario) -> Iterator[pa.RecordBatch]:
    """Yield the scenario's access trace as record batches of ``chunk_s`` VM seconds each,
    sorted by ``t`` (the access-trace schema above)."""
    names = [v.name for v in sc.vms]
    gens = [_VMGen(v, i, sc.seed, sc.duration_s - 60.0 * v.start_min) for i, v in enumerate(sc.vms)]
    dictionary = pa.array(names, type=pa.string())
    lo = 0.0
    while lo < sc.duration_s:
        hi = lo + sc.chunk_s
        ts, gs, ws, zs, vs = [], [], [], [], []
        for i, g in enumerate(gens):
            for t, p, wr, z in g.window(lo, hi):
                ts.append(t)
                gs.append(p)
                ws.append(wr)
                zs.append(z)
                vs.append(np.full(t.size, i, np.int32))
        if ts:
            t = np.concatenate(ts)
            order = stable_argsort(t)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(t[order]),
                    pa.DictionaryArray.from_arrays(pa.array(np.concatenate(vs)[order]), dictionary),
                    pa.array(np.concatenate(gs)[order]),
                    pa.array(np.concatenate(ws)[order]),
                    pa.array(np.concatenate(zs)[order]),
                ],
                schema=ACCESS_TRACE_SCHEMA,
            )
        lo = hi


def write_trace(path: str | os.PathLike, batches, metadata: dict | None = None) -> int:
    """Stream ``batches`` into a Parquet access trace (atomically); returns rows written."""
    rows = 0
    with atomic_path(path) as tmp:
        schema = ACCESS_TRACE_SCHEMA.with_metadata(
            {META_KEY: json.dumps({"pagecore_version": __version__, **(metadata or {})}, sort_keys=True)}
        )
        # only the VM name is dictionary-encoded: trying a dictionary on the times and frame numbers
        # (pyarrow's default) cost 3 times the CPU of the whole write and made the file larger
        # (the Figure 8 trace: 5.6 against 1.7 CPU-s, 192 against 151 MB; issue 18)
        with pq.ParquetWriter(tmp, schema, compression="zstd", use_dictionary=["vm"]) as w:
            for b in batches:
                w.write_batch(b.replace_schema_metadata(schema.metadata) if b.schema.metadata != schema.metadata else b)
                rows += b.num_rows
    return rows


def read_trace(path: str | os.PathLike, batch_rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
    """Stream an access trace's record batches, checking its columns first."""
    if not os.path.isfile(path):
        raise not_a_file(path, "access trace", hint="generate it with the workflow's trace rules")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(path, f"not a readable Parquet access trace ({exc})") from None
    names = pf.schema_arrow.names
    for col in ("t", "vm", "gpfn", "write"):
        if col not in names:
            raise InputError(path, f"missing column {col!r}", expected="an access trace (t, vm, gpfn, write[, zero])")
    want = ACCESS_TRACE_SCHEMA
    for col in ("t", "gpfn", "write"):
        got = pf.schema_arrow.field(col).type
        if got != want.field(col).type:
            raise InputError(path, f"column {col!r} has type {got}", expected=str(want.field(col).type))
    yield from pf.iter_batches(batch_size=batch_rows)


def trace_frame(sc: Scenario) -> pd.DataFrame:
    """The whole trace in memory (tests and small scenarios)."""
    batches = list(generate(sc))
    if not batches:
        return pa.Table.from_batches([], schema=ACCESS_TRACE_SCHEMA).to_pandas()
    return pa.Table.from_batches(batches).to_pandas()
