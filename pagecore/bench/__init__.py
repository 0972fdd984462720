"""Every benchmark behind ``pagecore bench …``, each measuring a path users run beside
baselines timed in the same process, and printing ratios.

Owns: timing helpers and one module per benchmark (``hashing``: the page hash;
``count``: the counting path of ``share``, the workflow and ``bigcount``;
``ingest``: dump readers; ``sim``: the memory-manager replay; ``guest``: guest-cache and I/O
remapping kernels; ``compress``: compression; ``scan``: the KSM and ESX scanner emulators).
Must not: assert a speed anywhere (benchmarks print, tests never time).
"""

from __future__ import annotations

import importlib
import time

#: ``pagecore bench WHAT`` → (module, arguments put before the user's).
BENCHMARKS = {
    "hash": ("pagecore.bench.hashing", ["hash"]),
    "count": ("pagecore.bench.count", []),
    "ingest": ("pagecore.bench.ingest", []),
    "sim": ("pagecore.bench.sim", []),
    "guest": ("pagecore.bench.guest", []),
    "compress": ("pagecore.bench.compress", []),
    "scan": ("pagecore.bench.scan", []),
}


def best_of(fn, repeat: int) -> float:
    """The shortest wall time in seconds of ``repeat`` calls of ``fn()``."""
    best = float("inf")
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(what: str, argv: list[str]) -> int:
    """Run benchmark ``what`` with its command-line arguments ``argv``."""
    module, pre = BENCHMARKS[what]
    return importlib.import_module(module).main([*pre, *argv])
