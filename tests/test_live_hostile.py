"""`pagecore live` on careless or hostile input: the tables it writes stay inside ``-o``, never
replace each other or an input, and a refused run leaves nothing behind.

The guests are stand-in processes (a mergeable anonymous mapping, like QEMU's guest RAM) whose
command line carries ``-name``: QEMU's ``-name`` is whatever the guest's owner typed, so it is
hostile input to the reader. Each stand-in is ended by its PID.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest

HOLDER = """
import mmap, sys, time
n = int(sys.argv[1])
m = mmap.mmap(-1, n * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_MERGEABLE)  # what QEMU does to guest RAM
m.write(bytes(range(256)) * (n * 16))
print("ready", flush=True)
time.sleep(600)
"""

pytestmark = pytest.mark.skipif(not hasattr(mmap, "MADV_MERGEABLE"), reason="no MADV_MERGEABLE on this platform")


def _ptrace_scope() -> str:
    try:
        return Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip()
    except OSError:
        return "0"


#: the tests that read a stand-in's memory: `pagecore live` is its sibling, not its parent
reads_memory = pytest.mark.skipif(
    os.geteuid() != 0 and _ptrace_scope() != "0",
    reason="reading a sibling's /proc/PID/mem needs root or kernel.yama.ptrace_scope=0",
)


@pytest.fixture
def stand_in():
    """Start stand-in guests named by ``-name``; every one is ended by its PID."""
    procs: list[subprocess.Popen] = []

    def start(name: str | None, pages: int = 64) -> int:
        extra = ["-name", name] if name is not None else []
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(pages), *extra], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "ready"
        return p.pid

    yield start
    for p in procs:
        p.kill()
        p.wait()
        p.stdout.close()


def _live(*args):
    return subprocess.run(
        [sys.executable, "-m", "pagecore", "live", "--force", "--max-mb-per-s", "0", "--no-drift", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )


def _one_line_error(r, needle: str) -> None:
    assert r.returncode != 0 and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@reads_memory
def test_a_guest_name_with_a_path_stays_inside_the_output_directory(stand_in, tmp_path):
    """`-name ../escaped` wrote ``escaped.parquet`` beside the -o directory, not in it."""
    pid = stand_in("../escaped")
    out = tmp_path / "out"
    r = _live("--pid", pid, "-o", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in out.iterdir()] == ["_escaped.parquet"]
    import pyarrow.parquet as pq

    assert set(pq.read_table(out / "_escaped.parquet", columns=["vm"])["vm"].to_pylist()) == {"../escaped"}


def test_two_guests_of_one_name_are_refused_before_any_read(stand_in, tmp_path):
    """Two guests named alike (or one PID given twice) each wrote `<name>.parquet`: the second read
    replaced the first without a word."""
    a, b = stand_in("same"), stand_in("same", pages=128)
    out = tmp_path / "out"
    _one_line_error(_live("--pid", a, "--pid", b, "-o", out), "would both be written")
    _one_line_error(_live("--pid", a, "--pid", a, "-o", out), "given twice")
    assert not out.exists()


def test_a_table_never_replaces_the_key_file(stand_in, tmp_path):
    """`--key-file DIR/g.parquet -o DIR` replaced the secret with the table keyed by it."""
    pid = stand_in("g")
    key = tmp_path / "g.parquet"
    key.write_text("a secret of more than sixteen bytes\n")
    _one_line_error(_live("--pid", pid, "--key-file", key, "-o", tmp_path), "is the input")
    assert key.read_text() == "a secret of more than sixteen bytes\n"


def test_refused_runs_leave_no_directory(stand_in, tmp_path):
    """A run refused before reading created the -o directory anyway; -o naming a file is one line."""
    missing = tmp_path / "gone"
    _one_line_error(_live("--pid", 2**22 + 12345, "-o", missing), "no such process")
    assert not missing.exists()
    f = tmp_path / "file"
    f.write_text("kept\n")
    _one_line_error(_live("--pid", stand_in("g"), "-o", f), "not a directory")
    assert f.read_text() == "kept\n"


@reads_memory
def test_an_earlier_series_is_never_mixed_into_a_new_one(stand_in, tmp_path):
    """`--count 4`, then `--count 2` into the same directory: reads 0002 and 0003 of the first
    run stayed beside the new 0000 and 0001, and `ksm --series DIR/*.parquet` replayed four reads
    of two runs as one series. The same run again replaces its own files."""
    pid = stand_in("ser")
    out = tmp_path / "out"
    series = ["--count", "4", "--interval", "0.05"]
    assert _live("--pid", pid, *series, "-o", out).returncode == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert len(first) == 4
    _one_line_error(_live("--pid", pid, "--count", "2", "--interval", "0.05", "-o", out), "ser.0002.parquet")
    _one_line_error(_live("--pid", pid, "-o", out), "would mix the two runs")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == first
    r = _live("--pid", pid, *series, "-o", out)
    assert r.returncode == 0 and sorted(p.name for p in out.iterdir()) == sorted(first), r.stderr


@reads_memory
def test_a_guest_that_exits_mid_read_is_one_line_and_leaves_nothing(tmp_path):
    """The process ended 1.5 s into a rate-limited read: the error named /proc/PID/pagemap
    ("No such file or directory") and the -o directory it had created stayed, empty."""
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER.replace("time.sleep(600)", "time.sleep(1.5)"), "2048"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout.readline().strip() == "ready"
        out = tmp_path / "out"
        r = subprocess.run(
            [sys.executable, "-m", "pagecore", "live", "--pid", str(p.pid), "--force", "--max-mb-per-s", "2",
             "-o", str(out)],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )  # fmt: skip
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
    assert r.returncode == 1 and "exited during the read" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()


@reads_memory
def test_a_failure_on_one_guest_names_the_complete_tables_it_keeps(stand_in, tmp_path):
    """Each guest's table is renamed into place when complete: guest ``a`` read whole before
    ``b`` exited mid-read keeps its table, and the run says so (it did not)."""
    a = stand_in("a")
    b = subprocess.Popen(
        [sys.executable, "-c", HOLDER.replace("time.sleep(600)", "time.sleep(1.5)"), "2048", "-name", "b"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert b.stdout.readline().strip() == "ready"
        out = tmp_path / "out"
        r = subprocess.run(
            [sys.executable, "-m", "pagecore", "live", "--pid", str(a), "--pid", str(b.pid), "--force",
             "--no-drift", "--max-mb-per-s", "2", "-o", str(out)],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )  # fmt: skip
    finally:
        b.kill()
        b.wait()
        b.stdout.close()
    assert r.returncode == 1 and "exited during the read" in r.stderr, r.stderr
    assert "1 complete table(s) of this run kept" in r.stderr and "a.parquet" in r.stderr, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.parquet"]
