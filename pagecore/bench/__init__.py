"""Every benchmark behind ``pagecore bench …``, each measuring a path users run beside
baselines timed in the same process, and printing ratios.

Owns: timing helpers and one module per benchmark (``hashing``: the page hash;
``count``: the counting path of ``share``, the workflow and ``bigcount``;
``ingest``: dump readers; ``sim``: the memory-manager replay; ``guest``: guest-cache and I/O
remapping kernels; ``compress``: compression; ``scan``: the KSM and ESX scanner emulators; ``quickstart``: the
README's Quick start line 1 from a clean clone, step by step, with its jobs and compilations).
Must not: assert a speed anywhere (benchmarks print, tests never time).
"""

from __future__ import annotations

import argparse
import importlib
import math
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
    "quickstart": ("pagecore.bench.quickstart", []),
}


def whole_number(low: int = 1):
    """argparse type: a whole number >= ``low``, also written in float notation (``5e6``, as
    ``bench count --pages`` takes it); ``2.5``, ``nan`` and ``inf`` are refused, never truncated."""

    def parse(text: str) -> int:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not math.isfinite(v) or v != int(v):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
        if v < low:
            raise argparse.ArgumentTypeError(f"expected a number >= {low}, got {text}")
        return int(v)

    return parse


def mem_available() -> int:
    """Bytes of memory available to a new process now (``MemAvailable`` in ``/proc/meminfo``;
    unbounded where that cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        pass
    return 1 << 62


def _size(b: float) -> str:
    return f"{b / 2**30:,.1f} GiB" if b >= 2**30 else f"{b / 2**20:,.1f} MiB"


def check_memory(need: float, what: str, fix: str, available: int | None = None) -> None:
    """Refuse in one line, before anything is made, a run that needs about ``need`` bytes of
    memory when less is available: it was a misleading "use smaller --chunk-pages" line after
    minutes of work, or the kernel's OOM killer on a machine shared with others."""
    from pagecore.errors import PagecoreError

    avail = mem_available() if available is None else available
    if need > avail:
        raise PagecoreError(f"{what} needs about {_size(need)} of memory; {_size(avail)} is available; {fix}")


def check_dir(option: str, path) -> str:
    """``path`` (given as ``option``; None: the system's temporary directory) as an existing
    directory, or one line naming the option."""
    import os
    import tempfile

    from pagecore.errors import PagecoreError

    if path is None:
        return tempfile.gettempdir()
    if not os.path.exists(path):
        raise PagecoreError(f"{option} {path}: no such directory; create it or give another one")
    if not os.path.isdir(path):
        raise PagecoreError(f"{option} {path}: not a directory; give a directory for the scratch files")
    return os.fspath(path)


def check_disk(directory, need: float, what: str, fix: str, free: int | None = None) -> None:
    """Refuse in one line, before writing, scratch files of about ``need`` bytes that do not fit
    in ``directory``'s file system (they filled the disk, for everyone on it, before failing)."""
    import shutil

    from pagecore.errors import PagecoreError

    if free is None:
        try:
            free = shutil.disk_usage(directory).free
        except OSError:  # cannot tell: writing says so if it fails
            return
    if need > free:
        raise PagecoreError(f"{what} needs about {_size(need)} in {directory}; {_size(free)} is free there; {fix}")


def best_of(fn, repeat: int) -> float:
    """The shortest wall time in seconds of ``repeat`` calls of ``fn()``."""
    best = float("inf")
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def timed(fn, repeat: int = 1):
    """``(wall s, CPU s, result)``: the least wall and the least CPU time (process time, all
    threads), each taken on its own, of ``repeat`` calls of ``fn()`` in a row, and the last
    call's result (a call's result is freed before the next call, not held beside it)."""
    wall = cpu = float("inf")
    out = None
    for _ in range(max(1, repeat)):
        out = None
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def paired_ratio(base_rounds, rounds) -> tuple[float, float]:
    """The median over the rounds of the baseline's time over the measure's in the same round,
    for wall and CPU time (each round a ``(wall s, CPU s)`` pair of each; as many rounds of both).

    A measure and its baseline take turns in every round, seconds apart: a slow period of the
    host (this one's speed changes over tens of seconds) that spans a round slows both sides of
    its ratio, while the best of each taken apart can pair a fast period of one with a slow one
    of the other."""
    import statistics

    pairs = list(zip(base_rounds, rounds, strict=True))
    if not pairs:
        raise ValueError("no rounds to pair")
    return (
        float(statistics.median(b[0] / m[0] for b, m in pairs)),
        float(statistics.median(b[1] / m[1] for b, m in pairs)),
    )


def run(what: str, argv: list[str]) -> int:
    """Run benchmark ``what`` with its command-line arguments ``argv``."""
    from pagecore.errors import PagecoreError

    module, pre = BENCHMARKS[what]
    try:
        return importlib.import_module(module).main([*pre, *argv])
    except MemoryError:  # the command's own line names --chunk-pages, which no benchmark takes
        raise PagecoreError(
            f"out of memory; run `pagecore bench {what}` at a smaller size (`pagecore bench {what} --help`)"
        ) from None
