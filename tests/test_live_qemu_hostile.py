"""`pagecore live` on real QEMU processes it must not read as if they were ordinary guests.

Each QEMU here runs no guest at all (no kernel: the BIOS finds nothing to boot and waits), under
TCG, for a few seconds; each is ended by its PID. Needs root (``/proc/PID/mem``) and
qemu-system-x86_64; skips with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (/proc/PID/mem of QEMU)"),
]


@pytest.fixture
def qemu(tmp_path):
    """Start BIOS-only QEMUs (64 MiB); every one is ended by its PID."""
    procs: list[subprocess.Popen] = []

    def start(name: str, *extra: str, qmp: bool = False) -> tuple[int, Path | None]:
        sock = tmp_path / f"{name}.sock" if qmp else None
        cmd = ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", "64", "-display", "none"]
        cmd += ["-nodefaults", "-name", name, *extra]
        if sock:
            cmd += ["-qmp", f"unix:{sock},server=on,wait=off"]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (sock.exists() if sock else Path(f"/proc/{p.pid}/smaps").exists()):
            time.sleep(0.1)
        time.sleep(0.5)
        assert p.poll() is None, f"QEMU {name} exited"
        return p.pid, sock

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _live(*args):
    return subprocess.run(
        [sys.executable, "-m", "pagecore", "live", "--max-mb-per-s", "0", "--no-drift", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )


def _refused(r, needle: str) -> None:
    assert r.returncode == 1 and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("qmp", [False, True])
def test_file_backed_guest_ram_is_refused_not_replaced_by_another_mapping(qemu, tmp_path, qmp):
    """RAM in a memory-backend-file: without QMP the largest anonymous mapping (2 MiB) was written
    as the 64 MiB guest's pc.ram (512 pages, rc 0); with QMP a table of the BIOS ROM alone (64
    pages, rc 0), the missing RAM only in notes."""
    backend = f"memory-backend-file,id=m0,size=64M,mem-path={tmp_path / 'ram'},share=on"
    pid, _ = qemu("filebacked", "-object", backend, "-machine", "memory-backend=m0", qmp=qmp)
    out = tmp_path / "out"
    r = _live("--pid", pid, "-o", out)
    _refused(r, "memory-backend-file")
    assert not out.exists()


def test_a_qmp_socket_of_another_qemu_is_refused(qemu, tmp_path):
    """`--qmp A=<B's socket> --pause` read A by B's layout and paused B, not A, and the table
    said "paused"."""
    from pagecore.qemu.capture import QMP

    a, _ = qemu("a", qmp=True)
    b, b_sock = qemu("b", qmp=True)
    out = tmp_path / "out"
    _refused(_live("--pid", a, "--qmp", f"{a}={b_sock}", "--pause", "-o", out), "not a socket of process")
    _refused(_live("--pid", a, "--qmp", f"{b}={b_sock}", "-o", out), "not one of the processes to read")
    assert not out.exists()
    q = QMP(b_sock, timeout=10)
    try:
        assert q.cmd("query-status")["running"] is True
    finally:
        q.close()
    r = _live("--pid", b, "--qmp", f"{b}={b_sock}", "--pause", "-o", out)  # its own socket: read
    assert r.returncode == 0 and (out / "b.parquet").exists(), r.stderr
