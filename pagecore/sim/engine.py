"""The one loop that steps simulated time through ESX's memory manager (paper §3, §5, §6).

Time advances in steps of the balloon driver's polling interval (1 s, §3.2). In each step:

1. scheduled events: parameter changes (τ), VM power-on (admission control, §6.2) and
   power-off; each triggers a recomputation of targets (§6.3);
2. every running, unblocked VM executes one step of *VM time*: its access-trace events are
   replayed through the touch path (:func:`pagecore.sim.memory.replay`), and each completed
   sampling period updates its active-memory estimate (§5.3);
3. background page sharing (``sim.mechanisms.sharing``: zero pages, or by content with hint
   and shared frames, §4.2-4.3);
4. the free-memory state is updated (§6.3); a change of state recomputes targets, as does
   the periodic rebalance (``rebalance_s``);
5. balloon drivers poll for their targets (§3.2): a VM below its target deflates; one above
   it inflates by the difference outside the high state (§6.3's table: high, "no
   reclamation"; the default, as in the workflow config). With ``balloon_in_high`` it
   inflates in every state, since "in every state, targets are computed" (§6.3) and the
   paper's allocations converge to their targets while the host is in the high state
   (Figure 7: 179/179 MB; Figure 8: balloons stay inflated through the high periods): a
   reading chosen by looking at those figures (``workflow/config/figure_informed.yaml``).
   The swap daemon pages where ballooning is impossible (soft), and
   everywhere above target (hard, low; §3.3); in low, VMs above their target are blocked;
6. every ``record_s`` one timeline row per VM and one for the host are recorded.

Machine memory is conserved exactly at every step::

    system = free + Σ_vm (private + unshared zero pages) + Σ_running overhead_used + esx
             + shared content pages

(the one machine zero page that backs all shared zero pages is counted in ``esx``; every
non-zero content that is shared holds one machine page, whatever its reference count, until
the count drops to zero; ``check=True`` asserts this, and every reference count, every step).

Page contents (§4.2) come from the trace's writes (fresh content; zero-filling writes zeros)
and, optionally, from ``contents``: per VM an int64 content id per gpfn that the datum holds
when first touched (:mod:`pagecore.sim.contents` builds them from page tables or from a
synthetic content model).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from pagecore.config import off_step
from pagecore.errors import ConfigError, InputError
from pagecore.sim import memory as m
from pagecore.sim.contents import check_contents
from pagecore.sim.contracts import create
from pagecore.sim.state import HostView, VMState, mb, pages_of
from pagecore.synth.specs import HostSpec, VMSpec
from pagecore.timelines import HOST_TIMELINE_SCHEMA, VM_TIMELINE_SCHEMA

STATE_ORDER = ("high", "soft", "hard", "low")

DEFAULT_MECHANISMS = {
    "sampling": "esx",
    "allocation": "idle_tax",
    "admission": "reservation",
    "states": "esx",
    "balloon": "esx",
    "paging": "random",
    "sharing": "zero",
}


@dataclass
class SimParams:
    """Engine parameters; ``mechanisms`` maps each kind to a registered name and
    ``settings`` holds each kind's parameters (the config sections ``sim.<kind>``)."""

    duration_s: float
    seed: int = 0
    tau: float = 0.75
    tau_schedule: list = field(default_factory=list)  # [(host time s, tau), ...]
    rebalance_s: float = 15.0
    record_s: float = 5.0
    balloon_in_high: bool = False  # §6.3: no reclamation in high (see the module docstring)
    target_pool: str = "high_threshold"  # or "reservations" (the pre-issue-14 rule)
    credit_shared: bool = True
    mechanisms: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    check: bool = False  # assert conservation and counters every step (tests)

    def __post_init__(self):
        # the config schema's rules, for parameters built in code: a negative duration gave an
        # empty timeline, a NaN time in the τ schedule held back every later change, a negative
        # record_s or rebalance_s was taken as one step
        if not 0 <= self.duration_s < math.inf:
            raise ConfigError(f"sim: duration_s must be >= 0 and finite, got {self.duration_s}")
        if not 0 <= self.tau < 1:
            raise ConfigError(f"sim.tau: the tax rate must be in [0, 1) (§5.2: k = 1/(1 − τ)), got {self.tau}")
        for item in self.tau_schedule or []:
            if len(item) != 2 or not 0 <= item[0] < math.inf or not 0 <= item[1] < 1:
                raise ConfigError(
                    f"sim: tau_schedule entries must be (host time >= 0 s, τ in [0, 1)), got {tuple(item)!r}"
                )
        for key in ("rebalance_s", "record_s"):
            if not 0 < getattr(self, key) < math.inf:
                raise ConfigError(f"sim.{key} must be > 0 and finite, got {getattr(self, key)}")
        if self.target_pool not in ("high_threshold", "reservations"):
            raise ConfigError(f"sim.target_pool must be high_threshold or reservations, got {self.target_pool!r}")


@dataclass
class SimResult:
    """Simulator output: the per-VM and host timelines (schemas in :mod:`pagecore.timelines`)
    and the event log (``t``, ``vm``, ``event``, ``detail``)."""

    vms: pd.DataFrame
    host: pd.DataFrame
    events: pd.DataFrame


def _batches(trace):
    if trace is None:
        return iter(())
    if isinstance(trace, pd.DataFrame):
        return iter((trace,))
    return iter(trace)


def _as_arrays(batch):
    """(vm names, per-row codes into names, t, gpfn, flags) of a trace batch; a time that is not
    finite or is negative is refused (a NaN stopped the VM's replay there without a word)."""
    have = batch.schema.names if isinstance(batch, pa.RecordBatch | pa.Table) else list(batch.columns)
    missing = [c for c in ("t", "vm", "gpfn", "write") if c not in have]
    if missing:
        raise InputError(
            None, f"access trace lacks column(s) {', '.join(missing)}", expected="columns t, vm, gpfn, write [, zero]"
        )
    if isinstance(batch, pa.RecordBatch | pa.Table):
        col = batch.column("vm")
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_dictionary(col.type):
            names = col.dictionary.to_pylist()
            codes = col.indices.to_numpy(zero_copy_only=False)
        else:
            names, codes = np.unique(col.to_numpy(zero_copy_only=False).astype(str), return_inverse=True)
            names = list(names)

        def get(c):
            return batch.column(c).to_numpy(zero_copy_only=False)

        has_zero = "zero" in batch.schema.names
    else:
        cat = batch["vm"].astype("category")
        names = [str(x) for x in cat.cat.categories]
        codes = cat.cat.codes.to_numpy()

        def get(c):
            return batch[c].to_numpy()

        has_zero = "zero" in batch
    t = np.ascontiguousarray(get("t"), dtype=np.float64)
    if t.size and not (np.isfinite(t).all() and t.min() >= 0):
        bad = int(np.flatnonzero(~(np.isfinite(t) & (t >= 0)))[0])
        raise InputError(
            None,
            f"access trace event {bad} has time t = {float(t[bad])!r}",
            expected="a finite time >= 0 (seconds of the VM's time since its power-on)",
        )
    g = get("gpfn")
    # (an empty column has no integer dtype to check: a trace without events replays nothing)
    if g.size and (g.dtype.kind not in "ui" or (g.dtype.kind == "i" and g.min() < 0)):
        bad = "not an integer" if g.dtype.kind not in "ui" else f"{int(g.min())}"
        # a float gpfn was truncated (1.5 -> 1), a negative one named as 2^64 - 1 in the error
        raise InputError(None, f"access trace gpfn {bad} ({g.dtype})", expected="integer gpfns >= 0 (uint64)")
    g = np.ascontiguousarray(g, dtype=np.uint64)
    w = np.asarray(get("write"), dtype=np.bool_)
    f = w.astype(np.uint8)
    if has_zero:
        z = np.asarray(get("zero"), dtype=np.bool_)
        if z.size and bool((z & ~w).any()):
            # the touch path zeroed a private page on it but left a shared one as it was
            bad = int(np.flatnonzero(z & ~w)[0])
            raise InputError(
                None,
                f"access trace event {bad} has zero = true but write = false",
                expected="zero only on writes (zero: the write fills the page with zeros)",
            )
        f |= z.astype(np.uint8) << 1
    return names, codes, t, g, f


class PreparedTrace:
    """A whole access trace read once and split per VM (time-sorted arrays), to replay many times.

    Replaying it gives the same result as replaying ``trace`` itself (the engine replays the
    same events in the same order; it only skips reading and splitting the batches again), so
    sweeps and seeds that replay one trace under several settings read it once. The arrays are
    shared by every replay and never written. Holds the whole trace in memory (17 bytes per
    event)."""

    def __init__(self, trace):
        parts: dict[str, tuple[list, list, list]] = {}
        last: dict[str, float] = {}
        for batch in _batches(trace):
            names, codes, t, g, f = _as_arrays(batch)
            if len(t) == 0:
                continue
            for name, part in _split_by_vm(names, codes):
                ts = t[part]
                _check_sorted(name, ts, last.get(name, -math.inf))
                last[name] = ts[-1]
                lists = parts.setdefault(name, ([], [], []))
                lists[0].append(ts)
                lists[1].append(g[part])
                lists[2].append(f[part])
        self.vms = {
            name: tuple(a[0] if len(a) == 1 else np.concatenate(a) for a in lists) for name, lists in parts.items()
        }

    def __len__(self) -> int:
        """Events in the trace."""
        return sum(len(t) for t, _, _ in self.vms.values())


def _check_sorted(name, ts, after):
    """Refuse one VM's event times ``ts`` unless they are sorted and start at or after ``after``
    (the VM's last time so far). An event earlier than the one before it was replayed late, at
    the later one's time, without a word."""
    if ts[0] < after or (ts.size > 1 and bool((ts[1:] < ts[:-1]).any())):
        at = ts[0] if ts[0] < after else ts[1:][ts[1:] < ts[:-1]][0]
        raise InputError(
            None,
            f"access trace is not sorted by time within VM {name!r}: t = {float(at)!r} comes after a later event",
            hint="sort by (t) before replay",
        )


def _split_by_vm(names, codes):
    """(VM name, row indexes) per VM of one batch, rows in their order."""
    # stable sort by VM; numpy sorts 8-bit keys by radix (linear), 4x faster than int32
    key = codes.astype(np.int8) if len(names) <= 127 else codes
    order = np.argsort(key, kind="stable")
    sc = codes[order]
    cuts = np.flatnonzero(np.diff(sc)) + 1
    for part in np.split(order, cuts):
        yield names[codes[part[0]]], part


def headroom_pages(system_pages: int, pct: float) -> int:
    """The fewest free pages the state machine counts as above ``pct`` % of ``system_pages``
    (it compares strictly: with ceil, a host whose pct·system/100 is a whole number settled
    exactly at pct, in soft for good): what the ``high_threshold`` target pool keeps free."""
    headroom = max(0, math.floor(pct * system_pages / 100.0))
    while not 100.0 * headroom / system_pages > pct:
        headroom += 1
    return headroom


def high_threshold_pool_pages(system_pages: int, managed_pages: int, vms: int, overhead_used: int, pct: float) -> int:
    """The ``high_threshold`` target pool before shared content pages: the memory ESX manages for
    VMs less each of ``vms`` VMs' overhead in use and :func:`headroom_pages` above ``pct`` %
    (high + hysteresis) of system memory (:meth:`Simulator._target_pool`)."""
    return managed_pages - vms * overhead_used - headroom_pages(system_pages, pct)


class Simulator:
    """Replay ``trace`` (a DataFrame or an iterable of Arrow batches / DataFrames, sorted by
    ``t`` — VM time since each VM's power-on) for ``vms`` on ``host``."""

    def __init__(self, vms: list[VMSpec], host: HostSpec, params: SimParams, trace=None, contents=None):
        if not vms:
            raise ConfigError("no VMs to simulate: the scenario's VM list is empty")
        names = [v.name for v in vms]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate VM names in {names}")
        images = check_contents(contents, {v.name: pages_of(v.max_mb) for v in vms})
        self.params = params
        self.host = HostView(host)
        mech = {**DEFAULT_MECHANISMS, **(params.mechanisms or {})}
        self.mech = {k: create(k, n, (params.settings or {}).get(k)) for k, n in mech.items()}
        ss = np.random.SeedSequence(params.seed)
        kids = ss.spawn(len(vms) + 1)
        self.rng = np.random.default_rng(kids[0])
        self.host.content_sharing = bool(getattr(self.mech["sharing"], "uses_contents", False))
        self.vms = [
            VMState(s, i, self.host, np.random.default_rng(kids[i + 1]), image=images.get(s.name))
            for i, s in enumerate(vms)
        ]
        # fresh content ids (writes) start above every given one
        self.host.next_id[0] = 1 + max([0] + [int(a.max(initial=0)) for a in images.values()])
        self.by_name = {v.name: v for v in self.vms}
        self.tau = float(params.tau)
        self._trace_source = trace if isinstance(trace, PreparedTrace) else None
        self._trace = iter(()) if self._trace_source is not None else _batches(trace)
        self._trace_done = trace is None
        self._trace_max = -math.inf
        self.events: list[tuple] = []
        self.vm_rows: list[tuple] = []
        self.host_rows: list[tuple] = []
        self.state = self.mech["states"].state
        dt = float(self.mech["balloon"].poll_s)
        for key, what in (("record_s", "the timeline would have had a row every"),
                          ("rebalance_s", "allocations would have been rebalanced every")):  # fmt: skip
            off = off_step(getattr(params, key), dt, what)
            if off:
                raise ConfigError(f"sim.{key} = {off}")

    # ----------------------------------------------------------------------------- trace
    def _fill(self, upto: float):
        """Pull trace batches until every event with t < ``upto`` is buffered."""
        if isinstance(self._trace_source, PreparedTrace):
            # the whole trace at once: the replay sees exactly the events it would have pulled
            self._trace_source, prepared = None, self._trace_source
            self._trace_done = True
            for name, (t, g, f) in prepared.vms.items():
                self._buffer(name, t, g, f)
            return
        while not self._trace_done and self._trace_max < upto:
            try:
                batch = next(self._trace)
            except StopIteration:
                self._trace_done = True
                break
            names, codes, t, g, f = _as_arrays(batch)
            if len(t) == 0:
                continue
            self._trace_max = max(self._trace_max, float(t.max()))
            for name, part in _split_by_vm(names, codes):
                self._buffer(name, t[part], g[part], f[part])

    def _buffer(self, name, t, g, f):
        """Append one VM's events to its buffer, checking the VM and its gpfns exist."""
        if name not in self.by_name:
            raise InputError(
                None,
                f"access trace names VM {name!r}, which is not in the scenario",
                expected=f"one of {sorted(self.by_name)}",
            )
        v = self.by_name[name]
        if g.size and int(g.max()) >= v.pages:
            raise InputError(
                None,
                f"access trace touches gpfn {int(g.max())} of VM {name!r}, which has only {v.pages} pages",
                expected="gpfn < max_mb·256",
            )
        _check_sorted(name, t, v.buf.last_t)
        v.buf.append(t, g, f)

    # ----------------------------------------------------------------------------- events
    def _log(self, t, vm, event, detail=""):
        self.events.append((float(t), vm, event, detail))

    def _power_on(self, vm, now):
        """Admit ``vm`` (§6.2) and start it once it holds its overhead memory in use.

        Admission reserves ``min + overhead``, so the memory exists, but other VMs may hold it
        (their allocations above their own reservations): the VM then takes what is free
        (never more: free memory cannot go below zero), waits as ``starting`` while
        reclamation frees the rest (the free-memory states see the shortage, the targets count
        its whole overhead as in use), and starts at the step it holds all of it. (It used to
        start at once and drive free memory below zero: machine memory made up.)"""
        h = self.host
        if vm.status == "waiting":
            adm = self.mech["admission"]
            ok, why = adm.admit(vm, h)
            if not ok:
                vm.status = "refused"
                self._log(now, vm.name, "refused", why)
                return
            adm.reserve(vm, h)
            vm.status = "starting"
        take = int(min(max(h.free[0], 0), h.overhead_used - vm.overhead_held))
        h.free[0] -= take
        h.overhead_pages += take
        vm.overhead_held += take
        if vm.overhead_held < h.overhead_used:
            if not vm.waited:
                vm.waited = True
                self._log(
                    now,
                    vm.name,
                    "power_on_wait",
                    f"needs {mb(h.overhead_used):.1f} MB of overhead in use, found {mb(vm.overhead_held):.1f} MB free",
                )
            return
        vm.status = "running"
        vm.clock = 0.0
        self.mech["sampling"].start(vm, vm.rng)
        vm.next_period = self.mech["sampling"].period_s
        self.mech["balloon"].start(vm)
        self._log(now, vm.name, "power_on", f"reserved {mb(vm.min_pages + vm.overhead_pages):.0f} MB")

    def _power_off(self, vm, now):
        mem = vm.mem
        mem.release_shared(self.host.free)
        self.host.free[0] += mem.machine + self.host.overhead_used
        self.host.swap_free[0] += mem.count(m.SWAPPED)
        self.host.overhead_pages -= self.host.overhead_used
        self.mech["admission"].release(vm, self.host)
        vm.status = "stopped"
        mem.state[:] = m.UNBACKED
        mem.cont[:] = -1
        mem.c[:6] = 0
        mem.c[m.C_SHARED_CONTENT] = 0
        mem.c[m.UNBACKED] = vm.pages
        self._log(now, vm.name, "power_off")

    def target_pool_pages(self, run) -> int:
        """Pages the targets of the running VMs ``run`` add up to (§6.3).

        ``high_threshold`` (the paper): "in every state, targets are computed to drive free
        memory above the high threshold". Free memory is ``system − esx − Σ overhead in use −
        Σ machine pages of the VMs − shared content pages`` (one machine page per shared
        non-zero content, which no VM holds alone); a VM whose targets are met holds ``target``
        machine pages (shared pages credited, see :meth:`_need`), so free memory settles at or
        above the high threshold iff ``Σ target ≤ system − esx − Σ overhead_used − shared − high``
        (without the credit, targets count every mapped frame, shared content pages among them).
        (Without the shared content pages, a host sharing them settled that many pages below the
        threshold, in soft for good once it got there.) We aim at
        high + the hysteresis margin, the level at which the state machine returns to high
        (aiming at exactly 6 % would leave a system that once dropped to soft stuck there): the
        fewest pages strictly above that level, since the state machine needs it exceeded.
        The overhead of admitted VMs still waiting to start counts as in use.
        ``reservations``: memory minus the VMs' overhead reservations (32 MB each), the
        pre-issue-14 rule, which holds the high state only through unused overhead.
        """
        h = self.host
        if self.params.target_pool == "reservations":
            return h.managed_pages - sum(v.overhead_pages for v in run + self._starting())
        if self.params.target_pool != "high_threshold":
            raise ConfigError(
                f"sim.target_pool must be high_threshold or reservations, got {self.params.target_pool!r}"
            )
        st = self.mech["states"]
        pct = float(getattr(st, "high_pct", 6.0)) + float(getattr(st, "hysteresis_pct", 0.0))
        # targets counting every mapped frame (no credit) already count each shared content's
        # page at least once among its frames
        shared = h.shared_pages if self.params.credit_shared else 0
        pool = high_threshold_pool_pages(
            h.system_pages, h.managed_pages, len(run) + len(self._starting()), h.overhead_used, pct
        )
        return pool - shared

    def _starting(self):
        """Admitted VMs waiting for free memory for their overhead (:meth:`_power_on`)."""
        return [v for v in self.vms if v.status == "starting"]

    def _need(self, v) -> int:
        """Pages VM ``v`` must give up to reach its target. With ``credit_shared`` only the
        machine pages it holds alone count (a shared page costs the host nothing more), so a VM
        whose pages are shared needs less reclaimed; otherwise every mapped frame counts. Never
        more than takes the VM's mapped frames below its min (§6.1: a guaranteed lower bound),
        which a credited target below ``min`` machine pages (:meth:`_bounds`) would."""
        need = self._held(v) - v.target
        if self.params.credit_shared:
            need = min(need, v.mem.alloc - v.min_pages)
        return need

    def _held(self, v) -> int:
        """Machine memory VM ``v`` counts as holding (see :meth:`_need`)."""
        return v.mem.machine if self.params.credit_shared else v.mem.alloc

    def _over_limit(self, v, dt: float) -> int:
        """Pages VM ``v`` must give up for its limit (``VMSpec.limit_mb``): what it holds above
        it, and, while a touch waits at the limit for a new page, the paging rate's worth more
        (ESX reclaims a VM at its limit for the pages it asks for, however free the host); 0
        within it or without one."""
        if v.limit_pages >= v.pages:
            return 0
        over = max(0, self._held(v) - v.limit_pages)
        return max(over, self.mech["paging"].rate_pages(dt)) if v.limit_wait else over

    def _bounds(self, run):
        """Per VM the (min, max) its target may take, in the units of :meth:`_held`. max (or
        the VM's limit when lower) bounds the frames a VM maps (§6.1); with ``credit_shared``
        the target counts machine pages held alone, and a VM mapping ``s`` shared frames holds
        at most ``max − s`` of those, so that is its bound (a bound in frames gave it a target
        above its max, stranding that memory while other VMs were reclaimed for it); a limit
        already counts the pages held alone (:meth:`_over_limit`), so it bounds as is. min stays
        ``min`` machine pages (at most the bound): ``min − s`` would let the guest's balloon,
        which takes shared zero frames first (they are free pages to the guest), take the VM
        below ``min`` frames; :meth:`_need` never reclaims a VM below them."""
        lo = np.array([v.min_pages for v in run], np.int64)
        hi = np.array([v.limit_pages for v in run], np.int64)  # max, or the VM's limit when lower
        if self.params.credit_shared:
            alone = np.array([v.pages - v.mem.count(m.SHARED) for v in run], np.int64)
            hi = np.minimum(hi, alone)
            lo = np.minimum(lo, hi)
        return lo, hi

    def _recompute(self):
        run = [v for v in self.vms if v.running]
        if not run:
            return
        avail = self.target_pool_pages(run)
        est = self.mech["sampling"]
        lo, hi = self._bounds(run)
        t = self.mech["allocation"].targets(
            np.array([v.shares for v in run]),
            lo,
            hi,
            np.array([est.estimate(v) for v in run]),
            avail,
            self.tau,
        )
        for v, x in zip(run, t, strict=True):
            v.target = int(x)

    # ----------------------------------------------------------------------------- stepping
    def _run_vm(self, vm, dt):
        end = vm.clock + dt
        smp = self.mech["sampling"]
        mem = vm.mem
        b = vm.buf
        limited = vm.limit_pages < vm.pages
        while vm.clock < end - 1e-12:
            seg = min(end, vm.next_period)
            if limited:  # new pages only up to the limit: at it, a touch waits for reclamation
                free = self.host.free
                budget = np.array([min(int(free[0]), vm.limit_pages - self._held(vm))], np.int64)
                before = int(budget[0])
                i = mem.replay(b.t, b.g, b.f, b.pos, seg, vm.period, budget)
                free[0] += int(budget[0]) - before
                # waiting at its limit (not for the host): reclamation must make room (_reclaim)
                vm.limit_wait = i < len(b.t) and b.t[i] < seg and int(budget[0]) <= 0 < int(free[0])
            else:
                i = mem.replay(b.t, b.g, b.f, b.pos, seg, vm.period, self.host.free)
            b.pos = i
            if i < len(b.t) and b.t[i] < seg:  # stalled: no free machine memory
                vm.clock = max(vm.clock, float(b.t[i]))
                return
            vm.clock = seg
            if vm.clock >= vm.next_period - 1e-12:
                smp.period_end(vm, vm.rng)
                vm.active_true = int(mem.c[m.C_DISTINCT])
                mem.c[m.C_DISTINCT] = 0
                vm.period += 1
                vm.next_period += smp.period_s

    def _reclaim(self, now, dt):
        run = [v for v in self.vms if v.running]
        bal = self.mech["balloon"]
        state = self.state
        for v in run:
            size = v.mem.count(m.BALLOONED)
            need = self._need(v)
            over = self._over_limit(v, dt)
            if state == "high" and not self.params.balloon_in_high:
                if over > 0:  # a limit reclaims whatever the host has free
                    v.balloon_target = int(np.clip(size + over, 0, bal.max_pages(v)))
                else:
                    v.balloon_target = max(0, size - max(0, -need))
            else:
                v.balloon_target = int(np.clip(size + (max(need, over) if over else need), 0, bal.max_pages(v)))
            bal.poll(v, v.balloon_target, now)
        self._sync_swap()
        pager = self.mech["paging"]
        page = []
        for v in run:
            # in the high state only a VM above its limit is reclaimed (as in soft: balloon first)
            over = self._over_limit(v, dt)
            need = over if state == "high" else max(self._need(v), over)
            if need <= 0:
                continue
            if state in ("high", "soft"):
                can_balloon = bal.available(v, now) and v.mem.count(m.BALLOONED) < bal.max_pages(v)
                if can_balloon:
                    continue
            page.append((v, need))
        if not page:
            return
        budget = pager.rate_pages(dt)
        if budget <= 0:
            return
        total = sum(n for _, n in page)
        for v, need in page:
            share = max(1, int(budget * need / total))
            pager.page_out(v, min(need, share), v.rng, self.host)

    def _sync_swap(self):
        """Free swap = swap − the pages swapped out now (§3.3). The model keeps no swap cache:
        a slot is in use only while its page is swapped out, so a swap-in (a touch) or the
        balloon taking a swapped frame frees it. (The touch and balloon kernels do not see the
        swap counter; without this the slots of pages swapped back in were never returned and
        a long run's paging stopped on a full swap that held far fewer pages.)"""
        h = self.host
        h.swap_free[0] = h.swap_pages - sum(v.mem.count(m.SWAPPED) for v in self.vms if v.running)

    def _block(self, now):
        for v in self.vms:
            if not v.running:
                continue
            want = self.state == "low" and self._need(v) > 0
            if want != v.blocked:
                v.blocked = want
                self._log(
                    now,
                    v.name,
                    "block" if want else "unblock",
                    f"alloc {mb(v.mem.alloc):.1f} MB, target {mb(v.target):.1f} MB",
                )

    def _check(self):
        h = self.host
        used = sum(v.mem.machine for v in self.vms if v.status in ("running",))
        shared = h.shared_pages
        if h.free[0] + used + h.overhead_pages + h.esx_pages + shared != h.system_pages:
            raise AssertionError(
                f"conservation: free {h.free[0]} + vms {used} + overhead {h.overhead_pages} + esx {h.esx_pages}"
                f" + shared content pages {shared} != system {h.system_pages}"
            )
        if h.free[0] < 0:
            raise AssertionError(f"free machine memory below zero: {h.free[0]} pages")
        swapped = sum(v.mem.count(m.SWAPPED) for v in self.vms if v.running)
        if h.swap_free[0] + swapped != h.swap_pages:
            raise AssertionError(f"swap: free {h.swap_free[0]} + swapped {swapped} != swap {h.swap_pages}")
        for v in self.vms:
            v.mem.check()
        states, conts, _ = h.frame_lists()
        h.table.check(states, conts)

    def _record(self, now):
        smp = self.mech["sampling"]
        h = self.host
        for v in self.vms:
            if not v.running:
                continue
            c = v.mem.c
            comp = smp.components(v)
            self.vm_rows.append(
                (
                    now,
                    v.name,
                    v.clock,
                    mb(v.mem.alloc),
                    # in frames: the credited target plus the frames shared now (more may have
                    # been shared since the target was computed: at most the VM's max)
                    mb(min(v.pages, v.target + (int(c[m.SHARED]) if self.params.credit_shared else 0))),
                    mb(v.active_true),
                    mb(smp.estimate(v)),
                    mb(comp["active_slow"]),
                    mb(comp["active_fast"]),
                    mb(comp["active_fast_cur"]),
                    mb(comp["active_sample"]),
                    mb(c[m.BALLOONED]),
                    mb(v.balloon_target),
                    mb(c[m.SWAPPED]),
                    mb(c[m.SHARED]),
                    mb(v.mem.zero_pages),
                    mb(c[m.PRIVATE]),
                    v.blocked,
                    mb(c[m.C_SWAP_OUT]),
                    mb(c[m.C_SWAP_IN]),
                    mb(c[m.C_SHARE_BEFORE_SWAP]),
                    mb(c[m.C_SCAN_SHARED]),
                    mb(c[m.C_GUEST_FAULT]),
                    mb(c[m.C_GUEST_PAGEOUT]),
                    mb(c[m.C_COW]),
                    mb(c[m.C_BALLOON_SHARED]),
                    int(c[m.C_EVENTS]),
                )
            )
        used = sum(v.mem.machine for v in self.vms if v.running)
        self.host_rows.append(
            (
                now,
                mb(h.free[0]),
                self.state,
                self.tau,
                mb(used),
                mb(h.overhead_pages),
                mb(h.esx_pages),
                mb(h.system_pages),
                mb(h.shared_pages),
            )
        )

    def run(self) -> SimResult:
        p = self.params
        dt = float(self.mech["balloon"].poll_s)
        steps = math.ceil(p.duration_s / dt - 1e-9)
        # by time only (stable): of two changes at one time the later listed holds, not the larger τ
        sched = sorted(((float(t), float(x)) for t, x in (p.tau_schedule or [])), key=lambda e: e[0])
        si = 0
        rec_every = max(1, round(p.record_s / dt))
        reb_every = max(1, round(p.rebalance_s / dt))
        states = self.mech["states"]
        self._record(0.0)
        for k in range(steps):
            now = k * dt
            trigger = False
            while si < len(sched) and sched[si][0] <= now + 1e-9:
                self.tau = sched[si][1]
                self._log(now, "", "tau", f"{self.tau:g}")
                si += 1
                trigger = True
            for v in self.vms:
                if v.status == "starting" and v.spec.stop_s <= now + 1e-9:  # never got its memory
                    self.mech["admission"].release(v, self.host)
                    self.host.free[0] += v.overhead_held
                    self.host.overhead_pages -= v.overhead_held
                    v.overhead_held = 0
                    v.status = "stopped"
                    self._log(now, v.name, "power_off", "before it could start")
                    trigger = True
                elif v.status in ("waiting", "starting") and v.spec.start_s <= now + 1e-9:
                    was = v.status
                    self._power_on(v, now)
                    trigger = trigger or v.running or (was == "waiting" and v.status == "starting")
                elif v.running and v.spec.stop_s <= now + 1e-9:
                    self._power_off(v, now)
                    trigger = True
            run = [v for v in self.vms if v.running]
            if run:
                self._fill(max(v.clock for v in run) + dt)
            for v in run:
                if not v.blocked:
                    self._run_vm(v, dt)
            self.mech["sharing"].scan(run, dt, self.rng, self.host)
            old = self.state
            self.state = states.update(int(self.host.free[0]), self.host.system_pages)
            if self.state != old:
                self._log(now + dt, "", "state", f"{old} -> {self.state}")
                trigger = True
            if trigger or k % reb_every == 0:
                self._recompute()
            self._reclaim(now + dt, dt)
            self._block(now + dt)
            if p.check:
                self._check()
            if (k + 1) % rec_every == 0:
                self._record(now + dt)
        return self._result()

    def _result(self):
        vms = pd.DataFrame(self.vm_rows, columns=VM_COLUMNS)
        host = pd.DataFrame(self.host_rows, columns=HOST_COLUMNS)
        ev = pd.DataFrame(self.events, columns=["t", "vm", "event", "detail"])
        return SimResult(vms, host, ev)


# Timeline columns, in the order rows are recorded: the contract in pagecore.timelines.
VM_COLUMNS = VM_TIMELINE_SCHEMA.names
HOST_COLUMNS = HOST_TIMELINE_SCHEMA.names


def simulate(vms: Iterable[VMSpec], host: HostSpec, params: SimParams, trace=None, contents=None) -> SimResult:
    """Replay an access trace through ESX's memory manager.

    Parameters
    ----------
    vms : list of VMSpec
        The scenario's VMs (see :func:`pagecore.synth.workloads.scenario`).
    host : HostSpec
        Machine memory, ESX's own memory, swap, used overhead per VM.
    params : SimParams
        Duration, seed, τ and its schedule, mechanism names and parameters.
    trace : pandas.DataFrame or iterable of Arrow record batches, optional
        The access trace (``t``, ``vm``, ``gpfn``, ``write``, optional ``zero``), sorted by
        ``t``, which is each VM's own execution time since power-on. Streamed: batches are
        pulled only as simulated time reaches them.
    contents : dict of str to numpy.ndarray of int64, optional
        Page contents per VM name: one content id per gpfn (``-1``: none given, ``0``: a zero
        page, other values: equal ids are identical pages), what each datum holds when it is
        first touched in its own frame. Build them with
        :func:`pagecore.sim.contents.contents_from_page_tables` (real page tables) or
        :func:`pagecore.sim.contents.synthetic_contents` (a content model per OS kind). Only
        ``sim.mechanisms.sharing: content`` shares non-zero contents; VMs not named get none.

    Returns
    -------
    SimResult
        ``vms`` (one row per VM per ``record_s``), ``host`` and ``events``; columns are
        documented in :mod:`pagecore.timelines`.

    Notes
    -----
    Paper §3 (ballooning, paging), §4 (page sharing), §5 (shares, idle memory tax, sampling),
    §6 (admission, dynamic reallocation).
    """
    return Simulator(list(vms), host, params, trace, contents).run()
