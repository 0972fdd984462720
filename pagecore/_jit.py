"""The one place that decides how pagecore's Numba kernels are compiled.

Every kernel module imports its decorator options from here, so a change of policy (caching,
bounds checks, threading layer) is made once. No kernel uses ``fastmath``: page hashes must be
bit-exact on every machine and thread count.
"""

from __future__ import annotations

import os
import sys

#: Options for serial leaf kernels. ``cache=True`` stores the machine code next to the module
#: so a second process does not pay the compile time again.
SERIAL = dict(nogil=True, cache=True, boundscheck=False)

#: Options for drivers that own a ``prange``. Caching parallel kernels works with the default
#: threading layer on Linux and saves about a second per process (measured with
#: ``pagecore bench hash``), so it is on.
PARALLEL = dict(nogil=True, cache=True, boundscheck=False, parallel=True)

#: Inline small helpers at Numba IR level so LLVM sees one loop nest.
INLINE = dict(nogil=True, cache=True, boundscheck=False, inline="always")

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")


def max_threads() -> int:
    """Number of threads Numba may use in this process.

    Numba's own setting once Numba is imported; before that the same rule (``NUMBA_NUM_THREADS``,
    else the CPUs this process may run on), so that code which needs no jitted kernel (the hash
    path of ``pagecore hash``) does not import Numba for it."""
    numba = sys.modules.get("numba")
    if numba is not None and hasattr(numba, "config"):
        return int(numba.config.NUMBA_NUM_THREADS)
    env = os.environ.get("NUMBA_NUM_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """Validate a user's thread count; ``None`` or 0 means all available threads."""
    if threads is None or threads == 0:
        return max_threads()
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    return min(int(threads), max_threads())
