"""The workload spec (DESIGN.md): what a scenario says about each VM and the host.

Generators (:mod:`pagecore.synth.workloads`) build these; the simulator (:mod:`pagecore.sim`)
replays them. They live here, below both, so the generators need not import the simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pagecore.errors import ConfigError


@dataclass
class VMSpec:
    """One VM of a scenario (the DESIGN.md workload spec).

    ``shares`` defaults to 10 per MB of max (the ESX 2.x "normal" convention [DOC]);
    ``overhead_mb`` is the reservation (32 MB typical, §6.2); ``start_s``/``stop_s`` are host
    times; ``balloon_driver_s`` is VM time after power-on when the balloon driver starts;
    ``zero_freed`` says whether the guest zeroes pages it gets back from the balloon (default:
    Windows guests do, via the zero page thread [22]). ``limit_mb`` (not in the paper; ESX 3+'s
    per-VM limit, as ``pagecore host`` takes it) caps the machine memory the VM holds whatever
    the host has free: its target never exceeds it, a VM above it is reclaimed in every state
    (balloon, then paging), and a touch that needs a new page at the limit waits for that.
    """

    name: str
    max_mb: float
    min_mb: float = 0.0
    shares: float | None = None
    overhead_mb: float = 32.0
    start_s: float = 0.0
    stop_s: float = math.inf
    balloon_driver_s: float = 0.0
    os: str = ""
    zero_freed: bool | None = None
    limit_mb: float | None = None

    def __post_init__(self):
        if not 0 < self.max_mb < math.inf:
            raise ConfigError(f"VM {self.name}: max_mb must be > 0 and finite, got {self.max_mb}")
        if not 0 <= self.min_mb <= self.max_mb:
            raise ConfigError(f"VM {self.name}: need 0 <= min_mb <= max_mb, got min {self.min_mb}, max {self.max_mb}")
        if self.shares is None:
            self.shares = 10.0 * self.max_mb
        # the config schema's rules, for specs built in code: a negative or NaN share count was
        # taken as 0 shares, a negative overhead created memory, a NaN time never came
        if not 0 <= self.shares < math.inf:
            raise ConfigError(
                f"VM {self.name}: shares must be >= 0 and finite (0 pins the VM at min), got {self.shares}"
            )
        if not 0 <= self.overhead_mb < math.inf:
            raise ConfigError(f"VM {self.name}: overhead_mb must be >= 0 and finite, got {self.overhead_mb}")
        if not 0 <= self.start_s < math.inf:
            raise ConfigError(f"VM {self.name}: start_s must be >= 0 and finite (host seconds), got {self.start_s}")
        if not self.stop_s > self.start_s:
            raise ConfigError(
                f"VM {self.name}: stop_s must be after start_s (inf: never stops), got start {self.start_s}, "
                f"stop {self.stop_s}"
            )
        if not self.balloon_driver_s >= 0:
            raise ConfigError(
                f"VM {self.name}: balloon_driver_s must be >= 0 (inf: the driver never loads), "
                f"got {self.balloon_driver_s}"
            )
        if self.zero_freed is None:
            self.zero_freed = self.os == "windows"
        if self.limit_mb is not None and not self.min_mb <= self.limit_mb:  # NaN included
            raise ConfigError(
                f"VM {self.name}: limit_mb must be at least min_mb ({self.min_mb:g}; None or >= max_mb: no limit), "
                f"got {self.limit_mb}"
            )


@dataclass
class HostSpec:
    """The machine: ``system_mb`` of machine memory, ``esx_mb`` used by ESX itself, server
    swap ``swap_mb``, and ``overhead_used_mb``: how much of each VM's 32-MB overhead
    reservation is actually in use (frame buffer 4–8 MB [TEXT] plus pmap and shadow page
    tables; 16 MB is UNCONFIRMED). Unused reservation is free memory (§6.2: "unused
    reservations are not wasted")."""

    system_mb: float
    esx_mb: float = 0.0
    swap_mb: float = 4096.0
    overhead_used_mb: float = 16.0

    def __post_init__(self):
        # the config schema's rules, for hosts built in code: a negative esx_mb or overhead
        # created machine memory, a negative swap refused every VM with a puzzling reason
        if not 0 < self.system_mb < math.inf:
            raise ConfigError(f"host: system_mb must be > 0 and finite, got {self.system_mb}")
        for key in ("esx_mb", "swap_mb", "overhead_used_mb"):
            if not 0 <= getattr(self, key) < math.inf:
                raise ConfigError(f"host: {key} must be >= 0 and finite, got {getattr(self, key)}")
