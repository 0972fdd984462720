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
    Windows guests do, via the zero page thread [22]).
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

    def __post_init__(self):
        if self.max_mb <= 0:
            raise ConfigError(f"VM {self.name}: max_mb must be > 0, got {self.max_mb}")
        if not 0 <= self.min_mb <= self.max_mb:
            raise ConfigError(f"VM {self.name}: need 0 <= min_mb <= max_mb, got min {self.min_mb}, max {self.max_mb}")
        if self.shares is None:
            self.shares = 10.0 * self.max_mb
        if self.zero_freed is None:
            self.zero_freed = self.os == "windows"


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
