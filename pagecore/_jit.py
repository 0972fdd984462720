"""The one place that decides how pagecore's Numba kernels are compiled.

Every kernel module imports its decorator options from here, so a change of policy (caching,
bounds checks, threading layer) is made once. No kernel uses ``fastmath``: page hashes must be
bit-exact on every machine and thread count.
"""

from __future__ import annotations

import os
import sys

_OPTIONS = {
    # Serial leaf kernels. ``cache=True`` stores the machine code next to the module so a second
    # process does not pay the compile time again.
    "SERIAL": dict(nogil=True, cache=True, boundscheck=False),
    # Drivers that own a ``prange``. Caching parallel kernels works with the default threading
    # layer on Linux and saves about a second per process (measured with ``pagecore bench
    # hash``), so it is on.
    "PARALLEL": dict(nogil=True, cache=True, boundscheck=False, parallel=True),
    # Inline small helpers at Numba IR level so LLVM sees one loop nest.
    "INLINE": dict(nogil=True, cache=True, boundscheck=False, inline="always"),
}


def __getattr__(name: str):
    """``SERIAL``, ``PARALLEL``, ``INLINE``: the decorator options; a kernel module asking for
    them has imported Numba, so this is where :func:`install_compile_lock` is installed."""
    if name in _OPTIONS:
        install_compile_lock()
        install_compile_log()
        return dict(_OPTIONS[name])
    raise AttributeError(f"module 'pagecore._jit' has no attribute {name!r}")


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
    return usable_cpus()


def usable_cpus() -> int:
    """The CPUs this process (and its children) may run on: its affinity mask where the OS has
    one, else the machine's count; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None) -> int:
    """Validate a user's thread count; ``None`` or 0 means all available threads."""
    if threads is None or threads == 0:
        return max_threads()
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    return min(int(threads), max_threads())


#: How long a process waits for another one compiling the same kernel before compiling it itself.
COMPILE_LOCK_WAIT_S = 120.0

_lock_installed = False


def install_compile_lock() -> None:
    """Let one process at a time compile a cached kernel; the others then load its machine code.

    Without it, processes that first call the same kernel at the same time (two workflow jobs
    on a fresh clone, whose cache is empty) each compile it: up to 25 s of CPU in one default
    run. With it, a process whose cache lookup misses takes an exclusive ``flock`` on
    ``<index>.lock`` beside Numba's cache index, looks again (the process it waited for has
    usually written the kernel by then) and compiles only if it is still missing; saving the
    kernel, or the end of a failed compilation, releases the lock. Locks are taken in call
    order (a caller's before its callees'), so processes cannot deadlock; a process that dies
    releases its locks; one that holds a lock longer than :data:`COMPILE_LOCK_WAIT_S` is not
    waited for any more. Where a lock cannot be taken (no ``fcntl``, a read-only cache) Numba
    compiles as before. Machine code and results are the same either way. Idempotent;
    installed by the first kernel module that asks for its decorator options.
    """
    global _lock_installed
    if _lock_installed or JIT_DISABLED:
        return
    _lock_installed = True
    try:
        import fcntl

        from numba.core.caching import Cache
        from numba.core.dispatcher import Dispatcher

        load, save, compile_ = Cache.load_overload, Cache.save_overload, Dispatcher.compile
    except (ImportError, AttributeError):  # not POSIX, or a Numba without these hooks: compile as before
        return
    held: dict[str, int] = {}  # lock path -> file descriptor, this process

    def lock_path(cache) -> str | None:
        try:
            return os.path.join(cache._cache_path, cache._cache_file._index_name + ".lock")
        except AttributeError:
            return None

    def acquire(path: str) -> int | None:
        import time

        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            return None
        deadline = time.monotonic() + COMPILE_LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    return None
                time.sleep(0.05)
            except OSError:
                os.close(fd)
                return None

    def release(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def load_overload(self, sig, target_context):
        data = load(self, sig, target_context)
        if data is not None or not getattr(self, "_enabled", False):
            return data
        path = lock_path(self)
        if path is None or path in held:  # this process compiles this kernel already
            return data
        fd = acquire(path)
        if fd is None:
            return data
        data = load(self, sig, target_context)  # written by the process we waited for?
        if data is not None:
            release(fd)
            return data
        held[path] = fd
        return None

    def save_overload(self, sig, data):
        try:
            save(self, sig, data)
        finally:
            fd = held.pop(lock_path(self) or "", None)
            if fd is not None:
                release(fd)

    def compile(self, sig):
        """Numba's ``Dispatcher.compile``; the lock this call took is released however it ends
        (a failed compilation saves nothing, so ``save_overload`` would not release it)."""
        cache = getattr(self, "_cache", None)
        path = lock_path(cache) if isinstance(cache, Cache) else None
        already = path in held
        try:
            return compile_(self, sig)
        finally:
            if path is not None and not already:
                fd = held.pop(path, None)
                if fd is not None:
                    release(fd)

    Cache.load_overload, Cache.save_overload, Dispatcher.compile = load_overload, save_overload, compile


#: Environment variable naming a file to which each process appends the Numba compilations it
#: made (``pagecore bench quickstart`` sets it for the pipeline's jobs).
COMPILE_LOG_ENV = "PAGECORE_COMPILE_LOG"

_log_installed = False


def install_compile_log() -> None:
    """Where :data:`COMPILE_LOG_ENV` names a file, append to it, when this process exits, one
    tab-separated line per kernel Numba compiled in it: pid, the script it ran, the kernel
    (module.qualname), its CPU seconds without and with the kernels it compiled inside it
    (the callees a caller's compilation compiles), and the signature. Only measures: no effect
    on what is compiled. Idempotent; a no-op without the variable or with Numba's JIT off."""
    global _log_installed
    path = os.environ.get(COMPILE_LOG_ENV, "")
    if _log_installed or not path or JIT_DISABLED:
        return
    _log_installed = True
    import atexit
    import time

    try:
        from numba.core import event
    except ImportError:  # pragma: no cover - a Numba without compile events
        return
    stack: list[list[float]] = []  # [start CPU s, CPU s of the compilations inside] per open one
    rows: list[str] = []

    class _Listener(event.Listener):
        def on_start(self, ev):
            stack.append([time.process_time(), 0.0])

        def on_end(self, ev):
            if not stack:
                return
            t0, inner = stack.pop()
            total = time.process_time() - t0
            if stack:
                stack[-1][1] += total
            fn = getattr(ev.data.get("dispatcher"), "py_func", None)
            name = f"{fn.__module__}.{fn.__qualname__}" if fn is not None else "?"
            sig = str(ev.data.get("args", "")).replace("\t", " ").replace("\n", " ")
            script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "-"
            rows.append(f"{os.getpid()}\t{script}\t{name}\t{total - inner:.4f}\t{total:.4f}\t{sig[:300]}\n")

    def dump() -> None:
        if rows:
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write("".join(rows))
            except OSError:
                pass

    event.register("numba:compile", _Listener())
    atexit.register(dump)
