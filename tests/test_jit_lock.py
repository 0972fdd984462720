"""pagecore._jit.install_compile_lock: concurrent processes compile a cached kernel once."""

import subprocess
import sys
import textwrap

import pytest

from pagecore._jit import JIT_DISABLED

pytestmark = pytest.mark.skipif(JIT_DISABLED, reason="needs Numba's compiler (NUMBA_DISABLE_JIT is set)")

KERNEL = textwrap.dedent(
    """
    from numba import njit

    from pagecore._jit import SERIAL


    @njit(**SERIAL)
    def total(x):
        s = 0
        for i in range(x.size):
            s += x[i] * (i % 7)
        return s
    """
)

# Both processes import Numba and the kernel module, then wait for the `go` file, so their
# first calls (cache lookups) happen at the same time; each prints its misses and hits.
CALLER = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import kern
    open(os.path.join(sys.argv[1], "ready" + sys.argv[2]), "w").close()
    while not os.path.exists(os.path.join(sys.argv[1], "go")):
        time.sleep(0.01)
    assert kern.total(np.arange(10, dtype=np.int64)) == sum(i * (i % 7) for i in range(10))
    print(sum(kern.total._cache_misses.values()), sum(kern.total._cache_hits.values()))
    """
)


def _race(tmp_path, env_extra=None):
    import os
    import time

    env = {**os.environ, **(env_extra or {})}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CALLER, str(tmp_path), str(i)], stdout=subprocess.PIPE, text=True, env=env
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "callers did not start"
        time.sleep(0.02)
    (tmp_path / "go").touch()
    out = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return sorted(tuple(int(v) for v in o) for o in out)


def test_two_processes_compile_a_new_kernel_once(tmp_path):
    (tmp_path / "kern.py").write_text(KERNEL)
    # one compiled (1 miss), the other waited and loaded the cached code (1 hit)
    assert _race(tmp_path) == [(0, 1), (1, 0)]
    # and the next process only loads it
    assert _race(tmp_path)[0] == (0, 1)


def test_options_are_fresh_dicts():
    from pagecore import _jit

    a = _jit.SERIAL
    a["cache"] = False
    assert _jit.SERIAL["cache"] is True
    assert _jit.PARALLEL["parallel"] is True and _jit.INLINE["inline"] == "always"
    with pytest.raises(AttributeError):
        _jit.NOT_AN_OPTION  # noqa: B018


def test_a_failed_compilation_releases_the_lock(tmp_path, monkeypatch):
    import fcntl
    import importlib
    import os

    (tmp_path / "kern_fails.py").write_text(KERNEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    kern = importlib.import_module("kern_fails")
    with pytest.raises(Exception, match=r"(?i)typing|resolution"):  # Numba's TypingError
        kern.total("not an array")
    (lock,) = tmp_path.rglob("*.lock")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while this process still held it
    finally:
        os.close(fd)
