"""Running the command line in a subprocess, as a user does, and checking its one-line errors."""

from __future__ import annotations

import subprocess
import sys


def cli(*args, cwd=None, env=None):
    """``python -m pagecore *args`` in a subprocess (output captured as text)."""
    return subprocess.run(
        [sys.executable, "-m", "pagecore", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def one_line_error(proc, code=1):
    """The single ``pagecore: ...`` line of a refused command (exit ``code``, no traceback)."""
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pagecore: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def tag_page(tag: int) -> bytes:
    """A 4 KiB page standing for ``tag``: all zeros for 0, else bytes drawn from a generator seeded
    with ``tag`` (equal tags, equal pages)."""
    import numpy as np

    if tag == 0:
        return bytes(4096)
    return np.random.default_rng(tag).integers(0, 256, 4096, dtype=np.uint8).tobytes()


def one_line_error_text(capsys) -> str:
    """The single ``pagecore: error: ...`` line an in-process ``main()`` wrote to stderr (no traceback)."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pagecore: error: ") and "Traceback" not in err, err
    return lines[0]


class ctrl_c_when:
    """Raise ``KeyboardInterrupt`` in the main thread (SIGALRM) once ``ready()`` is true, polled
    every ``poll_s`` from ``first_s`` on: a Ctrl-C that comes when the work under test has
    started, however slow the host is. The timer and the handler are restored on the way out."""

    def __init__(self, ready, first_s: float = 0.5, poll_s: float = 0.2):
        self.ready, self.first_s, self.poll_s = ready, first_s, poll_s

    def _fire(self, signum, frame):
        import signal

        if not self.ready():
            signal.setitimer(signal.ITIMER_REAL, self.poll_s)
            return
        raise KeyboardInterrupt

    def __enter__(self):
        import signal

        self._old = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, self.first_s)
        return self

    def __exit__(self, *exc):
        import signal

        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._old)
        return False
