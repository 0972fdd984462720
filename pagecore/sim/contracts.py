"""The small contracts every simulator mechanism implements, and the registry of them.

Each mechanism of ESX's memory manager is one module behind one contract below. A
mechanism is a class with a ``kind`` (which contract) and a ``name`` (its config name),
constructed from keyword parameters (the config section ``sim.<kind>``); the engine
(:mod:`pagecore.sim.engine`) calls its hooks. Implementations register themselves with
:func:`register`; :func:`create` builds one from config, rejecting unknown names and
parameters with a :class:`~pagecore.errors.ConfigError`.

Every override must be deterministic: all randomness comes from the ``rng``
(:class:`numpy.random.Generator`) the engine passes in, seeded from config.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from pagecore.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from pagecore.sim.state import HostView, VMState

KINDS = ("sampling", "allocation", "admission", "states", "balloon", "paging", "sharing", "guest_cache", "io_remap")

#: kind -> name -> implementation class
REGISTRY: dict[str, dict[str, type]] = {k: {} for k in KINDS}


def register(cls):
    """Class decorator: add a mechanism to :data:`REGISTRY` under ``cls.kind``/``cls.name``."""
    if cls.kind not in REGISTRY:
        raise ValueError(f"unknown mechanism kind {cls.kind!r}; expected one of {KINDS}")
    REGISTRY[cls.kind][cls.name] = cls
    return cls


def mechanism(kind: str | None = None, name: str = ""):
    """Class decorator: make ``cls`` a dataclass of its parameters and register it.

    ``@mechanism("balloon", "esx")`` sets ``cls.kind`` and ``cls.name`` and adds the class to
    :data:`REGISTRY`; a subclass of a mechanism may give only ``name`` and keeps its base's kind.
    """

    def wrap(cls):
        cls = dataclass(cls)
        if kind is not None:
            cls.kind = kind
        cls.name = name
        return register(cls)

    return wrap


def parameters(kind: str, name: str) -> dict:
    """The parameters (name -> default) of a registered mechanism."""
    cls = REGISTRY[kind][name]
    if dataclasses.is_dataclass(cls):
        return {f.name: f.default for f in dataclasses.fields(cls) if f.init}
    sig = inspect.signature(cls)
    return {k: p.default for k, p in sig.parameters.items()}


def create(kind: str, name: str, params: dict | None = None):
    """Build mechanism ``name`` of ``kind`` with ``params`` (a config section).

    A config section ``sim.<kind>`` may hold parameters of several implementations of the
    kind (so switching ``sim.mechanisms.<kind>`` needs no other edit): parameters another
    registered implementation of the kind knows are ignored; a parameter no implementation
    knows is an error naming the key.
    """
    if kind not in REGISTRY:
        raise ConfigError(f"config key sim.mechanisms: unknown kind {kind!r} (valid: {', '.join(KINDS)})")
    impls = REGISTRY[kind]
    if name not in impls:
        raise ConfigError(
            f"config key sim.mechanisms.{kind}: unknown {kind} mechanism {name!r} (valid: {', '.join(sorted(impls))})"
        )
    params = dict(params or {})
    known = parameters(kind, name)
    anywhere = set().union(*(parameters(kind, n) for n in impls))
    extra = sorted(set(params) - anywhere)
    if extra:
        raise ConfigError(
            f"config key sim.{kind}.{extra[0]}: not a parameter of any {kind} mechanism"
            f" ({name!r} takes: {', '.join(sorted(known)) or 'none'})"
        )
    return impls[name](**{k: v for k, v in params.items() if k in known})


@runtime_checkable
class Estimator(Protocol):
    """Active-memory estimation (paper §5.3).

    Hooks: ``start(vm, rng)`` when the VM powers on; ``period_end(vm, rng)`` at every end of a
    sampling period of *VM time* (``period_s`` seconds); ``estimate(vm)`` any time, the
    current estimate of active pages; ``components(vm)`` the named averages behind it (pages):
    ``active_slow``, ``active_fast``, ``active_fast_cur`` and ``active_sample`` (the last
    complete period's raw sample).

    Guarantees: ``0 <= estimate(vm) <= vm.pages``; the same rng stream gives the same values.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    period_s: float

    def start(self, vm: VMState, rng: np.random.Generator) -> None: ...
    def period_end(self, vm: VMState, rng: np.random.Generator) -> None: ...
    def estimate(self, vm: VMState) -> float: ...
    def components(self, vm: VMState) -> dict[str, float]: ...


@runtime_checkable
class AllocationPolicy(Protocol):
    """Target allocations (paper §5.1–5.2, §6.3).

    ``targets(shares, min_pages, max_pages, active, available, tau)`` takes float/int arrays,
    one entry per running VM, and returns int64 target pages.

    Guarantees: ``min <= target <= max``; ``sum(target) <= max(available, sum(min))``;
    VMs that are neither at min nor max share memory so that no single page moved between
    two of them narrows the gap between their highest and lowest adjusted price ρ.
    """

    kind: ClassVar[str]
    name: ClassVar[str]

    def targets(self, shares, min_pages, max_pages, active, available: int, tau: float): ...


@runtime_checkable
class Admission(Protocol):
    """Admission control (paper §6.2).

    ``admit(vm, host)`` returns ``(True, "")`` or ``(False, reason)``; ``reserve(vm, host)``
    and ``release(vm, host)`` book and return the VM's reservations. Guarantees: a refused VM
    reserves nothing; reservations never exceed the host's memory or swap.
    """

    kind: ClassVar[str]
    name: ClassVar[str]

    def admit(self, vm: VMState, host: HostView) -> tuple[bool, str]: ...
    def reserve(self, vm: VMState, host: HostView) -> None: ...
    def release(self, vm: VMState, host: HostView) -> None: ...


@runtime_checkable
class FreeStates(Protocol):
    """Free-memory states (paper §6.3): ``update(free_pages, system_pages)`` returns the
    state after seeing the current free memory, one of ``STATES`` (``high``, ``soft``,
    ``hard``, ``low``). Guarantee: the state only moves one way per call for a monotone input,
    and a move up needs free memory clearly above the threshold it crossed (hysteresis)."""

    kind: ClassVar[str]
    name: ClassVar[str]
    state: str

    def update(self, free_pages: int, system_pages: int) -> str: ...


@runtime_checkable
class Balloon(Protocol):
    """The balloon driver in one guest (paper §3.2).

    ``start(vm)`` on power-on; ``poll(vm, target, now)`` once per ``poll_s``: move the balloon
    toward ``target`` pages (the engine's balloon target for the VM) within the driver's rate
    limit, returns the signed change in balloon pages. ``available(vm, now)`` says whether the
    driver is running; ``max_pages(vm)`` is the largest balloon it allows.

    Guarantees: ``0 <= balloon <= max_pages(vm)``; nothing moves while unavailable.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    poll_s: float

    def start(self, vm: VMState) -> None: ...
    def available(self, vm: VMState, now: float) -> bool: ...
    def max_pages(self, vm: VMState) -> int: ...
    def poll(self, vm: VMState, target: int, now: float) -> int: ...


@runtime_checkable
class Pager(Protocol):
    """Demand paging by the ESX swap daemon (paper §3.3).

    ``rate_pages(dt)`` machine pages the daemon may reclaim host-wide in ``dt`` seconds;
    ``page_out(vm, count, rng, host)`` reclaims up to ``count`` machine pages from the VM
    and returns how many. Guarantees: shares a zero page before writing anything (§4.3);
    never writes more pages than the host has free swap.
    """

    kind: ClassVar[str]
    name: ClassVar[str]

    def rate_pages(self, dt: float) -> int: ...
    def page_out(self, vm: VMState, count: int, rng: np.random.Generator, host: HostView) -> int: ...


@runtime_checkable
class Sharing(Protocol):
    """Background page sharing (paper §4.3): ``scan(vms, dt, rng, host)`` examines pages of
    the running VMs for ``dt`` seconds and returns machine pages reclaimed. ``uses_contents``
    (class attribute) says whether it shares non-zero contents through ``host.table``; the
    engine then routes share-before-swap through the same table and the scenario glue gives
    the guests page contents. Guarantees: never changes what a guest reads (a frame's content
    id); machine memory stays conserved with one page per shared non-zero content."""

    kind: ClassVar[str]
    name: ClassVar[str]

    def scan(self, vms: list[VMState], dt: float, rng: np.random.Generator, host: HostView) -> int: ...


@runtime_checkable
class GuestCache(Protocol):
    """A guest's own page cache (paper §3.1–3.2, Figure 2; :mod:`.guestcache`).

    ``cache_pages(vm_mb, boot_mb)``: cache capacity of a guest booted with ``boot_mb`` MB and
    left ``vm_mb`` by its balloon; ``run(pages, write, vm_mb, boot_mb, host_reclaim_mb, seed)``
    replays a page-reference trace and returns counters. Guarantees: capacity never grows with
    ``boot_mb`` at fixed ``vm_mb``; runs are deterministic in the seed.
    """

    kind: ClassVar[str]
    name: ClassVar[str]

    def cache_pages(self, vm_mb: float, boot_mb: float | None = None) -> int: ...
    def run(self, pages, write, vm_mb, boot_mb=None, host_reclaim_mb=0.0, seed=0) -> dict: ...


@runtime_checkable
class IORemap(Protocol):
    """Hot I/O page remapping into low memory (paper §7; :mod:`.ioremap`).

    ``run(pages, high, low_free, seed)`` replays an I/O trace over guest pages, ``high[p]``
    saying whether page p starts in high machine memory, with ``low_free`` free low pages, and
    returns counters (bounce copies, remaps, remaps back). Guarantees: with remapping off
    (``threshold`` < 0) copies equal the I/Os to high pages; deterministic in the seed.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    threshold: int

    def run(self, pages, high, low_free: int, seed: int = 0) -> dict: ...


CONTRACTS = {
    "sampling": Estimator,
    "allocation": AllocationPolicy,
    "admission": Admission,
    "states": FreeStates,
    "balloon": Balloon,
    "paging": Pager,
    "sharing": Sharing,
    "guest_cache": GuestCache,
    "io_remap": IORemap,
}
