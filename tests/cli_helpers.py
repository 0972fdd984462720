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
