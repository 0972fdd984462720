"""``workflow/profiles/slurm/local-cluster.sh`` against stand-in daemons (no SLURM needed): a
``start`` that fails stops what it started, and ``start`` on a running cluster refuses settings
other than those it runs with. The real daemons are ``tests/test_slurm.py``'s (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow/profiles/slurm/local-cluster.sh"

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0, reason="local-cluster.sh runs as root on Linux"
)

MUNGED = f"""#!{sys.executable}
import socket, sys, time
path = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--socket="))
s = socket.socket(socket.AF_UNIX)
s.bind(path)
time.sleep(300)
"""
DAEMON = f"#!{sys.executable}\nimport time\ntime.sleep(300)\n"  # its command line names it and the directory
SINFO = '#!/bin/sh\ncase "$*" in *%t*) echo idle ;; *) echo "CPUs=2 RealMemory=4096" ;; esac\n'


@pytest.fixture
def cluster(tmp_path):
    """(run, dir): ``run(cmd, **env)`` runs the script with stand-in daemons on PATH and its
    directory and symlink under ``tmp_path``; whatever it leaves running is stopped after."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, text in (("munged", MUNGED), ("slurmctld", DAEMON), ("slurmd", DAEMON), ("sinfo", SINFO)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    d = tmp_path / "slurm"
    link = tmp_path / "etc" / "slurm.conf"
    base = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "PAGECORE_SLURM_DIR": str(d)}
    base["PAGECORE_SLURM_ETC_CONF"] = str(link)

    def run(cmd: str, **env) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(SCRIPT), cmd], capture_output=True, text=True, timeout=120, env={**base, **env}
        )

    try:
        yield run, d, bin_, link
    finally:
        run("stop")
        for f in (d / "run").glob("*.pid") if (d / "run").is_dir() else []:
            try:  # a stand-in the script left running (its PID as the script recorded it)
                os.kill(int(f.read_text()), 9)
            except (ValueError, ProcessLookupError):
                pass
        etc = Path("/etc/slurm/slurm.conf")  # only if a version without the knob made it
        if etc.is_symlink() and str(tmp_path) in os.readlink(etc):
            etc.unlink()


def _alive(pid_file: Path) -> bool:
    if not pid_file.is_file():
        return False
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return False
    return True


def test_a_failed_start_stops_what_it_started(cluster):
    """slurmctld exiting at once: `start` said so, exit 1, and left munged running."""
    run, d, bin_, link = cluster
    (bin_ / "slurmctld").write_text("#!/bin/sh\necho 'slurmctld: fatal: port in use' >&2\nexit 1\n")
    proc = run("start")
    assert proc.returncode == 1
    assert "slurmctld exited at once: slurmctld: fatal: port in use; see " in proc.stderr, proc.stderr
    assert not _alive(d / "run" / "munged.pid"), "munged left running"
    assert not link.is_symlink(), "the symlink start made is left behind"


def test_start_refuses_a_symlink_of_another_cluster_before_starting_anything(cluster, tmp_path):
    """Another directory's cluster owns the symlink: refused only after munged had started."""
    run, d, _, link = cluster
    link.parent.mkdir()
    link.symlink_to(tmp_path / "other" / "slurm.conf")
    proc = run("start")
    assert proc.returncode == 1
    assert "is a symlink to" in proc.stderr and "started munged" not in proc.stdout, proc.stdout + proc.stderr
    assert not (d / "run" / "munged.pid").exists()


def test_start_on_a_running_cluster_refuses_other_settings(cluster):
    """`PAGECORE_SLURM_MEM_MB=8000 start` on a running cluster rewrote slurm.conf under the
    daemons and reported RealMemory=8000 of a node that had 4096, exit 0."""
    run, d, _, link = cluster
    first = run("start")
    assert first.returncode == 0, first.stderr
    assert link.is_symlink()
    conf = (d / "etc" / "slurm.conf").read_text()
    again = run("start")
    assert again.returncode == 0 and "already running" in again.stdout, again.stderr
    other = run("start", PAGECORE_SLURM_MEM_MB="8000")
    assert other.returncode == 1, other.stdout
    assert "other settings" in other.stderr and "stop" in other.stderr, other.stderr
    assert (d / "etc" / "slurm.conf").read_text() == conf
    assert all(_alive(d / "run" / f"{n}.pid") for n in ("munged", "slurmctld", "slurmd"))
    stop = run("stop")
    assert stop.returncode == 0 and stop.stdout.count("stopped") == 3, stop.stdout
    assert not link.is_symlink()
    assert run("stop").stdout.strip() == "local-cluster: nothing of ours was running"
